//! Combiner lifting gives the same panes as combining every element, wherever it is allowed.

use proptest::prelude::*;
use runnel_model::exec::DoFnInstance;
use runnel_model::exec::{Batch, ExecContext, KeyedContext, KeyedOperator, SideInputAccess, UserError, ViewValue};
use runnel_model::metrics::StepMetrics;
use runnel_model::{
    PaneInfo, Timestamp, TimestampCombiner, Trigger, Window, WindowFnSpec, WindowedValue, WindowingStrategy,
};
use runnel_runner_core::group::GroupAlsoByWindow;
use runnel_runner_core::lift::{allows_lifting, MergeAccumulators, Precombine};
use runnel_runner_core::windows::assign;

mod common;
use common::Sum as SumReducer;

struct NoSides;
impl SideInputAccess for NoSides {
    fn get(&self, _: usize, _: &Window) -> Result<&ViewValue, UserError> {
        Err("no side inputs".into())
    }
}

type Out = (u8, i64, Window, PaneInfo, Timestamp);

fn drive(op: &mut dyn KeyedOperator, batches: Vec<Batch>) -> Vec<Out> {
    let mut metrics = StepMetrics::default();
    let mut out: Vec<Batch> = Vec::new();
    {
        let mut sink = |b: Batch| out.push(b);
        let mut ctx =
            KeyedContext { step: "G", output: &mut sink, metrics: &mut metrics, processing_time: Timestamp(0) };
        for b in batches {
            op.process(b, &mut ctx).unwrap();
        }
        op.advance_watermark(Timestamp::MAX, &mut ctx).unwrap();
    }
    let mut v: Vec<Out> = out
        .into_iter()
        .flat_map(|b| *b.downcast::<Vec<WindowedValue<(u8, i64)>>>().unwrap())
        .map(|wv| (wv.value.0, wv.value.1, wv.window, wv.pane, wv.timestamp))
        .collect();
    v.sort_by_key(|o| (o.0, o.2, o.3.index));
    v
}

fn bundles(spec: &WindowFnSpec, events: &[(u8, i64, i64)], size: usize) -> Vec<Vec<WindowedValue<(u8, i64)>>> {
    events
        .chunks(size.max(1))
        .map(|chunk| {
            chunk
                .iter()
                .flat_map(|(k, v, t)| {
                    assign(spec, Timestamp(*t)).unwrap().into_iter().map(move |w| WindowedValue {
                        window: w,
                        ..WindowedValue::timestamped((*k, *v), Timestamp(*t))
                    })
                })
                .collect()
        })
        .collect()
}

fn lifted(strategy: &WindowingStrategy, input: Vec<Vec<WindowedValue<(u8, i64)>>>) -> Vec<Out> {
    let mut pre = Precombine::<u8, i64, _>::new(SumReducer);
    let mut accs: Vec<Batch> = Vec::new();
    let mut metrics = StepMetrics::default();
    for b in input {
        let mut sink = |_: usize, b: Batch| accs.push(b);
        let mut ctx = ExecContext { step: "P", output: &mut sink, side_inputs: &NoSides, metrics: &mut metrics };
        // Each input batch is a bundle: the precombine emits its accumulators when it finishes.
        pre.start_bundle(&mut ctx).unwrap();
        pre.process_batch(Box::new(b), &mut ctx).unwrap();
        pre.finish_bundle(&mut ctx).unwrap();
    }
    let mut op = GroupAlsoByWindow::<u8, i64, _>::new(MergeAccumulators::new(SumReducer), strategy).unwrap();
    drive(&mut op, accs)
}

fn direct(strategy: &WindowingStrategy, input: Vec<Vec<WindowedValue<(u8, i64)>>>) -> Vec<Out> {
    let mut op = GroupAlsoByWindow::<u8, i64, _>::new(SumReducer, strategy).unwrap();
    drive(&mut op, input.into_iter().map(|b| Box::new(b) as Batch).collect())
}

proptest! {
    #[test]
    fn lifted_combine_equals_the_plain_one(
        events in proptest::collection::vec((0u8..4, -50i64..50, 0i64..200), 0..60),
        bundle in 1usize..8,
        which in 0usize..3,
    ) {
        let window_fn = [
            WindowFnSpec::Fixed { size_ms: 30, offset_ms: 0 },
            WindowFnSpec::Sliding { size_ms: 30, period_ms: 10, offset_ms: 0 },
            WindowFnSpec::Sessions { gap_ms: 15 },
        ][which].clone();
        let strategy = WindowingStrategy::with_window_fn(window_fn.clone());
        prop_assert!(allows_lifting(&strategy));
        let input = bundles(&window_fn, &events, bundle);
        prop_assert_eq!(lifted(&strategy, input.clone()), direct(&strategy, input));
    }
}

#[test]
fn lifting_is_refused_where_it_could_change_panes() {
    let base = WindowingStrategy::with_window_fn(WindowFnSpec::Fixed { size_ms: 10, offset_ms: 0 });
    assert!(allows_lifting(&base));
    let counting = WindowingStrategy {
        trigger: Trigger::Repeatedly { trigger: Box::new(Trigger::AfterCount { count: 2 }) },
        ..base.clone()
    };
    assert!(!allows_lifting(&counting));
    assert!(!allows_lifting(&WindowingStrategy { timestamp_combiner: TimestampCombiner::Latest, ..base.clone() }));
    assert!(!allows_lifting(&WindowingStrategy { timestamp_combiner: TimestampCombiner::Earliest, ..base.clone() }));
    let merging_user = WindowingStrategy::with_window_fn(WindowFnSpec::Custom {
        name: "x".into(),
        merging: true,
        payload: serde_json::Value::Null,
    });
    assert!(!allows_lifting(&merging_user));
}

/// Why EARLIEST is not lifted. Fixed(10), default trigger, EARLIEST:
/// ```text
/// watermark 5
/// a:1@3 a:1@7 (one bundle)      3 is behind the output watermark: only 7 holds
/// watermark ∞   → plain:  a 2 [0,10) @7 ON_TIME
///               → lifted: a 2 [0,10) @9 ON_TIME  (the accumulator, stamped 3, holds nothing)
/// ```
#[test]
fn lifting_under_earliest_would_change_the_pane_timestamp() {
    let strategy = WindowingStrategy {
        timestamp_combiner: TimestampCombiner::Earliest,
        ..WindowingStrategy::with_window_fn(WindowFnSpec::Fixed { size_ms: 10, offset_ms: 0 })
    };
    let spec = strategy.window_fn.clone();
    let run = |op: &mut dyn KeyedOperator, batch: Batch| -> Timestamp {
        let mut metrics = StepMetrics::default();
        let mut out: Vec<Batch> = Vec::new();
        {
            let mut sink = |b: Batch| out.push(b);
            let mut ctx =
                KeyedContext { step: "G", output: &mut sink, metrics: &mut metrics, processing_time: Timestamp(0) };
            op.advance_watermark(Timestamp(5), &mut ctx).unwrap();
            op.process(batch, &mut ctx).unwrap();
            op.advance_watermark(Timestamp::MAX, &mut ctx).unwrap();
        }
        let panes: Vec<WindowedValue<(u8, i64)>> =
            out.into_iter().flat_map(|b| *b.downcast::<Vec<WindowedValue<(u8, i64)>>>().unwrap()).collect();
        assert_eq!(panes.len(), 1);
        assert_eq!(panes[0].value, (0, 2));
        panes[0].timestamp
    };
    let input = bundles(&spec, &[(0, 1, 3), (0, 1, 7)], 2);
    let mut plain = GroupAlsoByWindow::<u8, i64, _>::new(SumReducer, &strategy).unwrap();
    assert_eq!(run(&mut plain, Box::new(input[0].clone())), Timestamp(7));

    let mut pre = Precombine::<u8, i64, _>::new(SumReducer);
    let mut accs: Vec<Batch> = Vec::new();
    let mut metrics = StepMetrics::default();
    {
        let mut sink = |_: usize, b: Batch| accs.push(b);
        let mut ctx = ExecContext { step: "P", output: &mut sink, side_inputs: &NoSides, metrics: &mut metrics };
        pre.start_bundle(&mut ctx).unwrap();
        pre.process_batch(Box::new(input[0].clone()), &mut ctx).unwrap();
        pre.finish_bundle(&mut ctx).unwrap();
    }
    let mut lifted = GroupAlsoByWindow::<u8, i64, _>::new(MergeAccumulators::new(SumReducer), &strategy).unwrap();
    assert_eq!(run(&mut lifted, accs.remove(0)), Timestamp(9));
}

/// Beam's lifted form for runners that group themselves: precombine each bundle, group the
/// accumulators per key and window, merge them element-wise, extract: the same sums as folding
/// every element.
#[test]
fn precombine_merge_grouped_and_extract_give_the_plain_combine() {
    use runnel_runner_core::lift::{ExtractOutputs, MergeGroupedAccumulators};
    use std::collections::BTreeMap;
    let events: Vec<(u8, i64, i64)> = (0..40).map(|i| ((i % 3) as u8, i as i64 - 7, (i * 7 % 50) as i64)).collect();
    let spec = WindowFnSpec::Fixed { size_ms: 20, offset_ms: 0 };
    let mut expected: BTreeMap<(u8, Window), i64> = BTreeMap::new();
    for (k, v, t) in &events {
        for w in assign(&spec, Timestamp(*t)).unwrap() {
            *expected.entry((*k, w)).or_default() += v;
        }
    }
    let mut metrics = StepMetrics::default();
    let mut outputs: Vec<Batch> = Vec::new();
    let mut pre = Precombine::<u8, i64, _>::new(SumReducer);
    for b in bundles(&spec, &events, 6) {
        let mut sink = |_: usize, b: Batch| outputs.push(b);
        let mut ctx = ExecContext { step: "P", output: &mut sink, side_inputs: &NoSides, metrics: &mut metrics };
        pre.start_bundle(&mut ctx).unwrap();
        pre.process_batch(Box::new(b), &mut ctx).unwrap();
        pre.finish_bundle(&mut ctx).unwrap();
    }
    // The runner's grouping per key and window.
    let mut grouped: BTreeMap<(u8, Window), Vec<i64>> = BTreeMap::new();
    for b in outputs {
        for wv in *b.downcast::<Vec<WindowedValue<(u8, i64)>>>().unwrap() {
            grouped.entry((wv.value.0, wv.window)).or_default().push(wv.value.1);
        }
    }
    let input: Vec<WindowedValue<(u8, Vec<i64>)>> = grouped
        .into_iter()
        .map(|((k, w), accs)| WindowedValue { window: w, ..WindowedValue::timestamped((k, accs), w.max_timestamp()) })
        .collect();
    let run = |instance: &mut dyn DoFnInstance, input: Batch| -> Vec<Batch> {
        let mut out = Vec::new();
        let mut metrics = StepMetrics::default();
        let mut sink = |_: usize, b: Batch| out.push(b);
        let mut ctx = ExecContext { step: "M", output: &mut sink, side_inputs: &NoSides, metrics: &mut metrics };
        instance.process_batch(input, &mut ctx).unwrap();
        out
    };
    let merged = run(&mut MergeGroupedAccumulators::<u8, i64, _>::new(SumReducer), Box::new(input));
    let mut extract = ExtractOutputs::<u8, i64, _>::new(SumReducer);
    let sums: BTreeMap<(u8, Window), i64> = merged
        .into_iter()
        .flat_map(|b| run(&mut extract, b))
        .flat_map(|b| *b.downcast::<Vec<WindowedValue<(u8, i64)>>>().unwrap())
        .map(|wv| ((wv.value.0, wv.window), wv.value.1))
        .collect();
    assert_eq!(sums, expected);
}
