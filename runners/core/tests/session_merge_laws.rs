//! Laws of session merging, checked with proptest through the public grouping operator
//! ([`GroupAlsoByWindow`] driven as a runner drives it: bundles in, then the watermark to +∞).
//!
//! For any input, in any order and any split into bundles: each key's sessions are exactly those of a reference model
//! (sort the timestamps, start a new session where the next proto-window `[t, t + gap)` does not overlap the current
//! one), every element lands in exactly one session, sessions of a key are disjoint, each session spans from its
//! first timestamp to its last plus the gap, and merged state is the state of the merged values (a summing reducer
//! agrees with buffering the values).

use proptest::prelude::*;
use runnel_model::exec::{Batch, KeyedContext, KeyedOperator};
use runnel_model::metrics::StepMetrics;
use runnel_model::{PaneInfo, Timestamp, Window, WindowFnSpec, WindowedValue, WindowingStrategy};
use runnel_runner_core::group::{BufferValues, GroupAlsoByWindow, Reducer};
use runnel_runner_core::typed::downcast;
use runnel_runner_core::windows::assign;
use std::collections::BTreeMap;

mod common;
use common::Sum as SumValues;

/// `(key, timestamp, value)`.
type Event = (u8, i64, i64);

/// What a grouping emitted: `(key, output)` per pane.
type Grouped<O> = Vec<WindowedValue<(u8, O)>>;

/// Groups `bundles` of events in sessions of `gap` (the default trigger, batch: the watermark stays at −∞ until every
/// bundle is in, then jumps to +∞). Returns the outputs and the step's metrics.
fn group<R: Reducer<u8, i64>>(reducer: R, gap: i64, bundles: &[Vec<Event>]) -> (Grouped<R::Output>, StepMetrics) {
    let spec = WindowFnSpec::Sessions { gap_ms: gap };
    let mut op = GroupAlsoByWindow::<u8, i64, R>::new(reducer, &WindowingStrategy::with_window_fn(spec.clone()))
        .expect("sessions are supported");
    let mut out = Vec::new();
    let mut metrics = StepMetrics::default();
    {
        let mut sink = |batch: Batch| out.extend(downcast::<(u8, R::Output)>(batch));
        let mut ctx =
            KeyedContext { step: "Group", output: &mut sink, metrics: &mut metrics, processing_time: Timestamp(0) };
        for bundle in bundles {
            let batch: Vec<WindowedValue<(u8, i64)>> = bundle
                .iter()
                .map(|&(key, ts, value)| WindowedValue {
                    value: (key, value),
                    timestamp: Timestamp(ts),
                    window: assign(&spec, Timestamp(ts)).unwrap()[0],
                    pane: PaneInfo::NO_FIRING,
                    retraction: false,
                })
                .collect();
            op.process(Box::new(batch), &mut ctx).expect("process");
        }
        op.advance_watermark(Timestamp::MAX, &mut ctx).expect("advance the watermark");
    }
    (out, metrics)
}

/// The reference sessions: per key, `(start, end)` → the values in it, sorted.
fn reference_sessions(events: &[Event], gap: i64) -> BTreeMap<(u8, i64, i64), Vec<i64>> {
    let mut by_key: BTreeMap<u8, Vec<(i64, i64)>> = BTreeMap::new();
    for &(key, ts, value) in events {
        by_key.entry(key).or_default().push((ts, value));
    }
    let mut sessions = BTreeMap::new();
    for (key, mut xs) in by_key {
        xs.sort_unstable();
        let mut current: Option<(i64, i64, Vec<i64>)> = None;
        for (ts, value) in xs {
            current = match current {
                Some((start, end, mut values)) if ts < end => {
                    values.push(value);
                    Some((start, end.max(ts + gap), values))
                }
                other => {
                    if let Some((start, end, values)) = other {
                        sessions.insert((key, start, end), values);
                    }
                    Some((ts, ts + gap, vec![value]))
                }
            };
        }
        if let Some((start, end, values)) = current {
            sessions.insert((key, start, end), values);
        }
    }
    for values in sessions.values_mut() {
        values.sort_unstable();
    }
    sessions
}

/// The grouped output as `(key, start, end)` → values, sorted; panics if a key and window appear twice.
fn normalise(out: &[WindowedValue<(u8, Vec<i64>)>]) -> BTreeMap<(u8, i64, i64), Vec<i64>> {
    let mut sessions = BTreeMap::new();
    for wv in out {
        let w = wv.window.as_interval().expect("sessions are intervals");
        let mut values = wv.value.1.clone();
        values.sort_unstable();
        let previous = sessions.insert((wv.value.0, w.start.millis(), w.end.millis()), values);
        assert!(previous.is_none(), "two panes for one key and session: {out:?}");
    }
    sessions
}

/// Up to 60 events of 3 keys over 0..2,000 ms, and a gap of 1..200 ms: sessions merge often, but not always.
fn events() -> impl Strategy<Value = (Vec<Event>, i64)> {
    (prop::collection::vec((0u8..3, 0i64..2_000, -50i64..50), 0..60), 1i64..200)
}

/// The events shuffled and cut into bundles.
fn bundled(events: Vec<Event>) -> impl Strategy<Value = Vec<Vec<Event>>> {
    let n = events.len();
    (Just(events).prop_shuffle(), prop::collection::vec(0..=n, 0..4)).prop_map(|(events, mut cuts)| {
        cuts.sort_unstable();
        let mut bundles = Vec::new();
        let mut from = 0;
        for cut in cuts.into_iter().chain([events.len()]) {
            bundles.push(events[from..cut.max(from)].to_vec());
            from = cut.max(from);
        }
        bundles
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(500))]

    #[test]
    fn sessions_are_the_reference_sessions_whatever_the_order_and_bundles(
        (events, gap, bundles) in events().prop_flat_map(|(events, gap)| {
            (Just(events.clone()), Just(gap), bundled(events))
        })
    ) {
        let expected = reference_sessions(&events, gap);
        let (in_order, metrics) = group(BufferValues, gap, std::slice::from_ref(&events));
        prop_assert_eq!(normalise(&in_order), expected.clone());
        prop_assert!(metrics.is_empty(), "nothing dropped: {:?}", metrics);
        let (shuffled, _) = group(BufferValues, gap, &bundles);
        prop_assert_eq!(normalise(&shuffled), expected);
    }

    #[test]
    fn sessions_of_a_key_are_disjoint_spans_of_their_elements_in_one_on_time_pane(
        (events, gap) in events()
    ) {
        let (out, _) = group(BufferValues, gap, std::slice::from_ref(&events));
        prop_assert_eq!(out.iter().map(|wv| wv.value.1.len()).sum::<usize>(), events.len(), "each element once");
        let mut by_key: BTreeMap<u8, Vec<(i64, i64)>> = BTreeMap::new();
        for wv in &out {
            let (key, values) = &wv.value;
            let w = *wv.window.as_interval().unwrap();
            let (start, end) = (w.start.millis(), w.end.millis());
            // The session runs from its first element to its last plus the gap.
            let mine: Vec<i64> = events.iter().filter(|e| e.0 == *key && start <= e.1 && e.1 < end).map(|e| e.1).collect();
            prop_assert_eq!(mine.len(), values.len(), "{:?} holds exactly the key's elements in it", w);
            prop_assert_eq!(mine.iter().min().copied(), Some(start));
            prop_assert_eq!(mine.iter().max().map(|t| t + gap), Some(end));
            // Batch, default trigger: one ON_TIME pane, stamped with the end of the session.
            prop_assert_eq!(wv.pane, PaneInfo::ON_TIME_AND_ONLY_FIRING);
            prop_assert_eq!(wv.timestamp, Window::Interval(w).max_timestamp());
            by_key.entry(*key).or_default().push((start, end));
        }
        for spans in by_key.values_mut() {
            spans.sort_unstable();
            for pair in spans.windows(2) {
                prop_assert!(pair[0].1 <= pair[1].0, "sessions overlap: {:?}", pair);
            }
        }
    }

    #[test]
    fn merged_state_is_the_state_of_the_merged_values(
        (events, gap, bundles) in events().prop_flat_map(|(events, gap)| {
            (Just(events.clone()), Just(gap), bundled(events))
        })
    ) {
        let expected: BTreeMap<(u8, i64, i64), i64> =
            reference_sessions(&events, gap).into_iter().map(|(k, values)| (k, values.iter().sum())).collect();
        let (out, _) = group(SumValues, gap, &bundles);
        let mut sums = BTreeMap::new();
        for wv in out {
            let w = wv.window.as_interval().unwrap();
            prop_assert!(sums.insert((wv.value.0, w.start.millis(), w.end.millis()), wv.value.1).is_none());
        }
        prop_assert_eq!(sums, expected);
    }
}

#[test]
fn touching_sessions_do_not_merge_and_overlapping_ones_do() {
    // Proto-windows [0, 10) and [10, 20) touch but do not overlap; [25, 35) and [34, 44) overlap by one millisecond.
    let (out, _) = group(BufferValues, 10, &[vec![(0, 0, 1), (0, 10, 2), (0, 34, 4), (0, 25, 3)]]);
    let sessions = normalise(&out);
    let expected: BTreeMap<(u8, i64, i64), Vec<i64>> =
        [((0, 0, 10), vec![1]), ((0, 10, 20), vec![2]), ((0, 25, 44), vec![3, 4])].into_iter().collect();
    assert_eq!(sessions, expected);
    // An element in the gap between two sessions bridges them into one.
    let (out, _) = group(BufferValues, 10, &[vec![(0, 0, 1), (0, 18, 2)], vec![(0, 9, 3)]]);
    assert_eq!(normalise(&out), [((0, 0, 28), vec![1, 2, 3])].into_iter().collect());
}
