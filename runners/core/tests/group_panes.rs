//! Panes of the shared grouping, driven step by step as a runner would: elements, watermark and
//! processing time in, panes out. Each test is a transcript in the style of Beam's trigger tests.

use runnel_model::exec::{Batch, KeyedContext, KeyedOperator};
use runnel_model::metrics::{MetricsSnapshot, StepMetrics};
use runnel_model::{
    AccumulationMode, ClosingBehavior, PaneTiming, TimeTransform, Timestamp, TimestampCombiner, Trigger, Window,
    WindowFnSpec, WindowedValue, WindowingStrategy,
};
use runnel_runner_core::group::GroupAlsoByWindow;
use runnel_runner_core::windows::assign;

mod common;
use common::Sum as SumReducer;

/// One emitted pane, flattened for comparison.
#[derive(Debug, Clone, PartialEq, Eq)]
struct P {
    key: &'static str,
    sum: i64,
    window: Window,
    timing: PaneTiming,
    index: i64,
    last: bool,
    retraction: bool,
}

struct Harness {
    op: Box<dyn KeyedOperator>,
    metrics: StepMetrics,
    now: Timestamp,
    spec: WindowFnSpec,
}

impl Harness {
    fn new(strategy: WindowingStrategy) -> Self {
        let spec = strategy.window_fn.clone();
        Harness {
            op: Box::new(GroupAlsoByWindow::<String, i64, _>::new(SumReducer, &strategy).expect("supported")),
            metrics: StepMetrics::default(),
            now: Timestamp(0),
            spec,
        }
    }

    fn run(&mut self, f: impl FnOnce(&mut dyn KeyedOperator, &mut KeyedContext<'_>)) -> Vec<P> {
        let mut batches: Vec<Batch> = Vec::new();
        let mut sink = |b: Batch| batches.push(b);
        let mut ctx =
            KeyedContext { step: "G", output: &mut sink, metrics: &mut self.metrics, processing_time: self.now };
        f(self.op.as_mut(), &mut ctx);
        let mut out = Vec::new();
        for b in batches {
            for wv in *b.downcast::<Vec<WindowedValue<(String, i64)>>>().expect("output type") {
                let key: &'static str = Box::leak(wv.value.0.into_boxed_str());
                out.push(P {
                    key,
                    sum: wv.value.1,
                    window: wv.window,
                    timing: wv.pane.timing,
                    index: wv.pane.index,
                    last: wv.pane.is_last,
                    retraction: wv.retraction,
                });
            }
        }
        out
    }

    /// Adds elements `(key, value, timestamp)` as one bundle.
    fn add(&mut self, elements: &[(&str, i64, i64)]) -> Vec<P> {
        let mut batch = Vec::new();
        for (k, v, t) in elements {
            for w in assign(&self.spec, Timestamp(*t)).expect("built-in window fn") {
                batch.push(WindowedValue {
                    window: w,
                    ..WindowedValue::timestamped((k.to_string(), *v), Timestamp(*t))
                });
            }
        }
        self.run(|op, ctx| op.process(Box::new(batch), ctx).expect("process"))
    }

    fn watermark(&mut self, t: i64) -> Vec<P> {
        self.run(|op, ctx| op.advance_watermark(Timestamp(t), ctx).expect("watermark"))
    }

    fn processing_time(&mut self, t: i64) -> Vec<P> {
        self.now = Timestamp(t);
        self.run(|op, ctx| op.advance_processing_time(Timestamp(t), ctx).expect("processing time"))
    }

    fn counter(&mut self, name: &str) -> i64 {
        let mut snapshot = MetricsSnapshot::default();
        self.metrics.drain_into("G", &mut snapshot);
        snapshot.counter(name)
    }
}

fn fixed(size: i64) -> WindowingStrategy {
    WindowingStrategy::with_window_fn(WindowFnSpec::Fixed { size_ms: size, offset_ms: 0 })
}

fn w(start: i64, end: i64) -> Window {
    Window::interval(start, end)
}

fn pane(key: &'static str, sum: i64, window: Window, timing: PaneTiming, index: i64, last: bool) -> P {
    P { key, sum, window, timing, index, last, retraction: false }
}

#[test]
fn default_trigger_fires_on_time_when_the_watermark_passes_the_end() {
    let mut h = Harness::new(fixed(10));
    assert_eq!(h.add(&[("a", 1, 1), ("a", 2, 5), ("a", 4, 12)]), vec![]);
    assert_eq!(h.watermark(9), vec![], "the watermark has not passed 9, the window's max timestamp");
    assert_eq!(h.watermark(10), vec![pane("a", 3, w(0, 10), PaneTiming::OnTime, 0, true)]);
    assert_eq!(h.watermark(i64::MAX / 1000), vec![pane("a", 4, w(10, 20), PaneTiming::OnTime, 0, true)]);
}

#[test]
fn late_data_within_allowed_lateness_fires_late_panes_and_beyond_it_is_dropped_and_counted() {
    let mut h = Harness::new(WindowingStrategy { allowed_lateness_ms: 10, ..fixed(10) });
    h.add(&[("a", 1, 1)]);
    assert_eq!(h.watermark(10), vec![pane("a", 1, w(0, 10), PaneTiming::OnTime, 0, false)]);
    assert_eq!(h.add(&[("a", 5, 3)]), vec![pane("a", 5, w(0, 10), PaneTiming::Late, 1, false)]);
    assert_eq!(h.watermark(20), vec![], "expiry adds no empty pane (FIRE_IF_NON_EMPTY)");
    assert_eq!(h.add(&[("a", 7, 4)]), vec![]);
    assert_eq!(h.counter("dropped_due_to_lateness"), 1);
}

#[test]
fn closing_behaviour_fire_always_emits_an_empty_final_pane() {
    let mut h = Harness::new(WindowingStrategy {
        allowed_lateness_ms: 10,
        closing_behavior: ClosingBehavior::FireAlways,
        ..fixed(10)
    });
    h.add(&[("a", 1, 1)]);
    h.watermark(10);
    assert_eq!(h.watermark(20), vec![pane("a", 0, w(0, 10), PaneTiming::Late, 1, true)]);
}

#[test]
fn early_and_late_firings_with_accumulation() {
    let trigger = Trigger::AfterWatermark {
        early: Some(Box::new(Trigger::AfterProcessingTime { transforms: vec![TimeTransform::Delay { delay_ms: 5 }] })),
        late: Some(Box::new(Trigger::AfterCount { count: 1 })),
    };
    let mut h = Harness::new(WindowingStrategy {
        trigger,
        accumulation_mode: AccumulationMode::Accumulating,
        allowed_lateness_ms: 100,
        ..fixed(10)
    });
    h.add(&[("a", 1, 1)]);
    assert_eq!(h.processing_time(4), vec![]);
    assert_eq!(h.processing_time(5), vec![pane("a", 1, w(0, 10), PaneTiming::Early, 0, false)]);
    h.add(&[("a", 2, 2)]);
    assert_eq!(h.watermark(10), vec![pane("a", 3, w(0, 10), PaneTiming::OnTime, 1, false)]);
    assert_eq!(h.add(&[("a", 4, 3)]), vec![pane("a", 7, w(0, 10), PaneTiming::Late, 2, false)]);
    assert_eq!(h.add(&[("a", 8, 3)]), vec![pane("a", 15, w(0, 10), PaneTiming::Late, 3, false)]);
}

#[test]
fn on_time_pane_fires_even_when_early_firings_emptied_it() {
    let trigger = Trigger::AfterWatermark { early: Some(Box::new(Trigger::AfterCount { count: 1 })), late: None };
    let mut h = Harness::new(WindowingStrategy { trigger, ..fixed(10) });
    assert_eq!(h.add(&[("a", 1, 1)]), vec![pane("a", 1, w(0, 10), PaneTiming::Early, 0, false)]);
    assert_eq!(h.watermark(10), vec![pane("a", 0, w(0, 10), PaneTiming::OnTime, 1, true)]);
}

#[test]
fn a_finished_trigger_closes_the_window_and_counts_what_it_drops() {
    let mut h = Harness::new(WindowingStrategy { trigger: Trigger::AfterCount { count: 2 }, ..fixed(10) });
    assert_eq!(h.add(&[("a", 1, 1)]), vec![]);
    assert_eq!(h.add(&[("a", 2, 2)]), vec![pane("a", 3, w(0, 10), PaneTiming::Early, 0, true)]);
    assert_eq!(h.add(&[("a", 4, 3)]), vec![]);
    assert_eq!(h.watermark(100), vec![]);
    assert_eq!(h.counter("dropped_due_to_closed_window"), 1);
}

#[test]
fn a_trigger_fires_once_per_bundle() {
    let trigger = Trigger::Repeatedly { trigger: Box::new(Trigger::AfterCount { count: 2 }) };
    let mut h = Harness::new(WindowingStrategy { trigger, ..fixed(10) });
    assert_eq!(
        h.add(&[("a", 1, 1), ("a", 1, 1), ("a", 1, 1)]),
        vec![pane("a", 3, w(0, 10), PaneTiming::Early, 0, false)]
    );
}

#[test]
fn retracting_mode_retracts_the_previous_pane_before_the_new_one() {
    let trigger = Trigger::Repeatedly { trigger: Box::new(Trigger::AfterCount { count: 1 }) };
    let mut h =
        Harness::new(WindowingStrategy { trigger, accumulation_mode: AccumulationMode::Retracting, ..fixed(10) });
    assert_eq!(h.add(&[("a", 1, 1)]), vec![pane("a", 1, w(0, 10), PaneTiming::Early, 0, false)]);
    let second = h.add(&[("a", 2, 2)]);
    assert_eq!(
        second,
        vec![
            P { retraction: true, ..pane("a", 1, w(0, 10), PaneTiming::Early, 1, false) },
            pane("a", 3, w(0, 10), PaneTiming::Early, 1, false),
        ]
    );
    // A downstream sum of (value × ±1) equals the latest accumulated value after every pane.
    let all = [vec![pane("a", 1, w(0, 10), PaneTiming::Early, 0, false)], second].concat();
    let net: i64 = all.iter().map(|p| if p.retraction { -p.sum } else { p.sum }).sum();
    assert_eq!(net, 3);
}

#[test]
fn sessions_merge_and_their_state_merges() {
    let mut h = Harness::new(WindowingStrategy::with_window_fn(WindowFnSpec::Sessions { gap_ms: 10 }));
    h.add(&[("a", 1, 0), ("a", 2, 25)]);
    h.add(&[("a", 4, 8), ("b", 1, 3)]);
    h.add(&[("a", 8, 17)]); // bridges [0,18) and [25,35)
    let mut out = h.watermark(i64::MAX / 1000);
    out.sort_by_key(|p| p.key);
    assert_eq!(
        out,
        vec![pane("a", 15, w(0, 35), PaneTiming::OnTime, 0, true), pane("b", 1, w(3, 13), PaneTiming::OnTime, 0, true)]
    );
}

#[test]
fn timestamp_combiner_earliest_sets_output_time_and_holds_the_watermark() {
    let mut h = Harness::new(WindowingStrategy { timestamp_combiner: TimestampCombiner::Earliest, ..fixed(10) });
    h.add(&[("a", 1, 7), ("a", 1, 3)]);
    assert_eq!(h.op.watermark_hold(), Timestamp(3));
    h.watermark(10);
    assert_eq!(h.op.watermark_hold(), Timestamp::MAX);
}

#[test]
fn never_trigger_emits_only_the_final_pane() {
    let mut h = Harness::new(WindowingStrategy { trigger: Trigger::Never, allowed_lateness_ms: 5, ..fixed(10) });
    h.add(&[("a", 1, 1)]);
    assert_eq!(h.watermark(12), vec![]);
    assert_eq!(h.watermark(20), vec![pane("a", 1, w(0, 10), PaneTiming::OnTime, 0, true)]);
}
