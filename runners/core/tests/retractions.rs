//! Retractions applied by the shared grouping: a GroupByKey removes retracted values, a session
//! merge retracts what it merges away, and (property) a chain of two retracting groupings gives
//! downstream, after every pane, the aggregate of the latest upstream values.

use proptest::prelude::*;
use runnel_model::exec::{Batch, ElementOps, KeyedContext, KeyedOperator};
use runnel_model::metrics::StepMetrics;
use runnel_model::{AccumulationMode, Timestamp, Trigger, Window, WindowFnSpec, WindowedValue, WindowingStrategy};
use runnel_runner_core::group::{BufferValues, GroupAlsoByWindow, Reducer};
use runnel_runner_core::typed::TypedOps;
use runnel_runner_core::windows::assign;
use std::collections::BTreeMap;

mod common;
use common::Sum as SumReducer;

/// Runs `f` on `op` at processing time `now`, returning what it emitted, in order.
fn drive<O: 'static>(
    op: &mut dyn KeyedOperator,
    now: i64,
    f: impl FnOnce(&mut dyn KeyedOperator, &mut KeyedContext<'_>),
) -> Vec<WindowedValue<O>> {
    let mut metrics = StepMetrics::default();
    let mut batches: Vec<Batch> = Vec::new();
    {
        let mut sink = |b: Batch| batches.push(b);
        let mut ctx =
            KeyedContext { step: "G", output: &mut sink, metrics: &mut metrics, processing_time: Timestamp(now) };
        f(op, &mut ctx);
    }
    batches.into_iter().flat_map(|b| *b.downcast::<Vec<WindowedValue<O>>>().expect("output type")).collect()
}

fn element<K>(key: K, value: i64, timestamp: i64, window: Window, retraction: bool) -> WindowedValue<(K, i64)> {
    WindowedValue { retraction, window, ..WindowedValue::timestamped((key, value), Timestamp(timestamp)) }
}

fn retracting(window_fn: WindowFnSpec, trigger: Trigger) -> WindowingStrategy {
    WindowingStrategy {
        trigger,
        accumulation_mode: AccumulationMode::Retracting,
        ..WindowingStrategy::with_window_fn(window_fn)
    }
}

#[test]
fn a_group_loses_one_occurrence_per_retraction_even_one_that_arrives_before_its_value() {
    let (r, k) = (BufferValues, "k".to_string());
    let mut group = Reducer::<String, i64>::create(&r, &k).unwrap();
    for v in [1, 2, 2] {
        r.add(&k, &mut group, v).unwrap();
    }
    r.retract(&k, &mut group, 2).unwrap();
    // Retracted before it arrived: the 7 never shows.
    r.retract(&k, &mut group, 7).unwrap();
    r.add(&k, &mut group, 7).unwrap();
    let mut other = Reducer::<String, i64>::create(&r, &k).unwrap();
    r.retract(&k, &mut other, 1).unwrap();
    r.add(&k, &mut other, 5).unwrap();
    r.merge(&k, &mut group, other).unwrap();
    let mut values = Reducer::<String, i64>::extract(&r, &k, &group).unwrap();
    values.sort();
    assert_eq!(values, vec![2, 5]);
}

#[test]
fn shuffling_a_batch_keeps_its_retractions_ahead_of_its_values() {
    let ops = TypedOps::<(u8, i64)>::keyed();
    let w = Window::Global;
    let elements: Vec<_> = (0..40).map(|i| element(i as u8, i, 0, w, i % 3 == 0)).collect();
    for seed in 0..20 {
        let mut batch: Batch = Box::new(elements.clone());
        ops.shuffle(&mut batch, seed);
        let flags: Vec<bool> =
            batch.downcast_ref::<Vec<WindowedValue<(u8, i64)>>>().unwrap().iter().map(|wv| wv.retraction).collect();
        assert!(flags.windows(2).all(|p| p[0] || !p[1]), "a value before a retraction: {flags:?}");
    }
}

#[test]
fn a_session_merge_retracts_the_last_output_of_every_window_merged_away_at_once() {
    let strategy = retracting(WindowFnSpec::Sessions { gap_ms: 10 }, Trigger::Always);
    let mut op = GroupAlsoByWindow::<String, i64, _>::new(SumReducer, &strategy).unwrap();
    let session = |t: i64| Window::interval(t, t + 10);
    let add = |op: &mut GroupAlsoByWindow<String, i64, SumReducer>, v: i64, t: i64| {
        drive::<(String, i64)>(op, 0, |op, ctx| {
            op.process(Box::new(vec![element("a".to_string(), v, t, session(t), false)]), ctx).unwrap()
        })
    };
    add(&mut op, 1, 0);
    add(&mut op, 3, 15);
    // [8, 18) bridges [0, 10) and [15, 25) into [0, 25).
    let out = add(&mut op, 4, 8);
    let seen: Vec<(i64, Window, bool, Timestamp)> =
        out.iter().map(|wv| (wv.value.1, wv.window, wv.retraction, wv.timestamp)).collect();
    let (first, second) = (Window::interval(0, 10), Window::interval(15, 25));
    let retractions: Vec<_> = seen.iter().filter(|s| s.2).cloned().collect();
    assert_eq!(retractions.len(), 2, "{seen:?}");
    assert!(retractions.contains(&(1, first, true, Timestamp(9))), "{seen:?}");
    assert!(retractions.contains(&(3, second, true, Timestamp(24))), "{seen:?}");
    assert_eq!(seen[2..], [(8, Window::interval(0, 25), false, Timestamp(24))], "retractions come first: {seen:?}");
    assert!(out[..2].iter().all(|wv| wv.pane.is_last), "a window merged away emits nothing more");
}

/// What happens next in the property: elements arrive upstream, or processing time moves (and
/// upstream's processing-time trigger fires what is pending).
#[derive(Clone, Debug)]
enum Step {
    Add(Vec<(u8, i64, i64)>),
    Tick,
}

fn steps() -> impl Strategy<Value = Vec<Step>> {
    let add = prop::collection::vec((0u8..6, -9i64..10, 0i64..30), 1..6).prop_map(Step::Add);
    prop::collection::vec(prop_oneof![3 => add, 2 => Just(Step::Tick)], 1..25)
}

/// The sessions of elements at `timestamps` with `gap`, merged from scratch.
fn user_sessions(timestamps: &[i64], gap: i64) -> Vec<Window> {
    let mut starts = timestamps.to_vec();
    starts.sort();
    let mut sessions: Vec<(i64, i64)> = Vec::new();
    for t in starts {
        match sessions.last_mut() {
            Some((_, end)) if t < *end => *end = (*end).max(t + gap),
            _ => sessions.push((t, t + gap)),
        }
    }
    sessions.into_iter().map(|(s, e)| Window::interval(s, e)).collect()
}

/// The team of a user.
fn team(user: u8) -> u8 {
    user % 2
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// Per-user sums (over fixed windows, or sessions that merge) fired at random times in
    /// retracting mode, re-keyed by team and re-windowed into fixed windows by their timestamps,
    /// feed a team sum and a team GroupByKey (retracting, firing for every bundle): after every
    /// pane, each equals the aggregate of the latest per-user sums of its window, computed from
    /// scratch.
    #[test]
    fn downstream_aggregates_after_every_pane_equal_the_aggregate_of_the_latest_upstream_values(
        steps in steps(),
        seed in any::<u64>(),
        sessions in any::<bool>(),
    ) {
        let fixed = WindowFnSpec::Fixed { size_ms: 10, offset_ms: 0 };
        let spec = if sessions { WindowFnSpec::Sessions { gap_ms: 4 } } else { fixed.clone() };
        let upstream_trigger = Trigger::Repeatedly {
            trigger: Box::new(Trigger::AfterProcessingTime { transforms: Vec::new() }),
        };
        let downstream_trigger = Trigger::Repeatedly { trigger: Box::new(Trigger::AfterCount { count: 1 }) };
        let mut users =
            GroupAlsoByWindow::<u8, i64, _>::new(SumReducer, &retracting(spec.clone(), upstream_trigger)).unwrap();
        let downstream = retracting(fixed.clone(), downstream_trigger);
        let mut sums = GroupAlsoByWindow::<u8, i64, _>::new(SumReducer, &downstream).unwrap();
        let mut groups = GroupAlsoByWindow::<u8, i64, _>::new(BufferValues, &downstream).unwrap();
        let ops = TypedOps::<(u8, i64)>::keyed();
        // Latest per-user sum per upstream window (with the downstream window its timestamp
        // falls in), as upstream emitted them; the timestamps each user sent; latest team outputs.
        let mut emitted: BTreeMap<(u8, Window), (i64, Window)> = BTreeMap::new();
        let mut sent: BTreeMap<u8, Vec<i64>> = BTreeMap::new();
        let mut team_sums: BTreeMap<(u8, Window), i64> = BTreeMap::new();
        let mut team_groups: BTreeMap<(u8, Window), Vec<i64>> = BTreeMap::new();
        let mut now = 0;
        for (i, step) in steps.into_iter().enumerate() {
            let fired: Vec<WindowedValue<(u8, i64)>> = match step {
                Step::Add(elements) => {
                    for (u, _, t) in &elements {
                        sent.entry(*u).or_default().push(*t);
                    }
                    let batch: Vec<_> = elements
                        .into_iter()
                        .map(|(u, v, t)| {
                            let w = assign(&spec, Timestamp(t)).unwrap()[0];
                            element(u, v, t, w, false)
                        })
                        .collect();
                    drive(&mut users, now, |op, ctx| op.process(Box::new(batch), ctx).unwrap())
                }
                Step::Tick => {
                    now += 1;
                    drive(&mut users, now, |op, ctx| op.advance_processing_time(Timestamp(now), ctx).unwrap())
                }
            };
            if fired.is_empty() {
                continue;
            }
            let rewindow = |t: Timestamp| assign(&fixed, t).unwrap()[0];
            for wv in &fired {
                let key = (wv.value.0, wv.window);
                if wv.retraction {
                    prop_assert_eq!(emitted.get(&key).map(|(v, _)| *v), Some(wv.value.1), "retracts the latest");
                } else {
                    emitted.insert(key, (wv.value.1, rewindow(wv.timestamp)));
                }
            }
            // From scratch: the latest sums of the windows each user has now (a session merged
            // away is gone, whatever upstream said about it).
            let live = |u: u8, w: &Window| !sessions || user_sessions(&sent[&u], 4).contains(w);
            let latest: BTreeMap<(u8, Window), (i64, Window)> =
                emitted.iter().filter(|((u, w), _)| live(*u, w)).map(|(k, v)| (*k, *v)).collect();
            // One upstream firing is one bundle downstream, re-windowed by timestamp, in any order
            // but retractions first (as runners deliver it).
            let mut batch: Batch = Box::new(
                fired
                    .into_iter()
                    .map(|wv| WindowedValue { value: (team(wv.value.0), wv.value.1), window: rewindow(wv.timestamp), ..wv })
                    .collect::<Vec<_>>(),
            );
            ops.shuffle(&mut batch, seed ^ i as u64);
            let copy = ops.clone_batch(&batch);
            let summed = drive::<(u8, i64)>(&mut sums, now, |op, ctx| op.process(batch, ctx).unwrap());
            let grouped = drive::<(u8, Vec<i64>)>(&mut groups, now, |op, ctx| op.process(copy, ctx).unwrap());
            for wv in summed.iter().filter(|wv| !wv.retraction) {
                team_sums.insert((wv.value.0, wv.window), wv.value.1);
            }
            for wv in grouped.into_iter().filter(|wv| !wv.retraction) {
                let mut values = wv.value.1;
                values.sort();
                team_groups.insert((wv.value.0, wv.window), values);
            }
            // From scratch: every team and window downstream fired for.
            for ((t, w), total) in &team_sums {
                let expected: i64 =
                    latest.iter().filter(|((u, _), (_, dw))| team(*u) == *t && dw == w).map(|(_, (v, _))| v).sum();
                prop_assert_eq!(*total, expected, "team {} window {:?}", t, w);
            }
            for ((t, w), values) in &team_groups {
                let mut expected: Vec<i64> =
                    latest.iter().filter(|((u, _), (_, dw))| team(*u) == *t && dw == w).map(|(_, (v, _))| *v).collect();
                expected.sort();
                prop_assert_eq!(values, &expected, "team {} window {:?}", t, w);
            }
        }
    }
}
