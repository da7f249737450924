//! Panes of the shared grouping checked against Beam Java's `ReduceFnRunner`, `WatermarkHold`,
//! `PaneInfoTracker` and `MergingActiveWindowSet`: watermark holds and pane timestamps, merged
//! windows' pane histories, closed merging windows and the empty on-time pane.
//!
//! Each test is a transcript: the steps (a bundle of elements `key:value@timestamp`, or a
//! watermark or processing-time advance), each followed by the panes it fires, written
//! `key window sum @timestamp TIMING index/non-speculative-index [last]`. The expected panes are
//! what Beam Java produces for the same steps; the comments say which of its rules decides.

use runnel_model::exec::{Batch, KeyedContext, KeyedOperator};
use runnel_model::metrics::{MetricsSnapshot, StepMetrics};
use runnel_model::{
    AccumulationMode, PaneTiming, Timestamp, TimestampCombiner, Trigger, Window, WindowFnSpec, WindowedValue,
    WindowingStrategy,
};
use runnel_runner_core::group::GroupAlsoByWindow;
use runnel_runner_core::windows::assign;

/// One emitted pane with everything Beam's `PaneInfo` and the output timestamp say.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Pane {
    key: String,
    window: Window,
    sum: i64,
    timestamp: i64,
    timing: PaneTiming,
    index: i64,
    nonspeculative: i64,
    first: bool,
    last: bool,
}

/// `key [start, end) sum @timestamp timing index/nonspeculative`, first when the index is 0.
#[allow(clippy::too_many_arguments)]
fn pane(
    key: &str,
    (start, end): (i64, i64),
    sum: i64,
    ts: i64,
    timing: PaneTiming,
    index: i64,
    ns: i64,
    last: bool,
) -> Pane {
    Pane {
        key: key.to_string(),
        window: Window::interval(start, end),
        sum,
        timestamp: ts,
        timing,
        index,
        nonspeculative: ns,
        first: index == 0,
        last,
    }
}

use PaneTiming::{Early, Late, OnTime};

mod common;
use common::Sum;

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
            op: Box::new(GroupAlsoByWindow::<String, i64, _>::new(Sum, &strategy).expect("supported")),
            metrics: StepMetrics::default(),
            now: Timestamp(0),
            spec,
        }
    }

    fn run(&mut self, f: impl FnOnce(&mut dyn KeyedOperator, &mut KeyedContext<'_>)) -> Vec<Pane> {
        let mut batches: Vec<Batch> = Vec::new();
        let mut sink = |b: Batch| batches.push(b);
        let mut ctx =
            KeyedContext { step: "G", output: &mut sink, metrics: &mut self.metrics, processing_time: self.now };
        f(self.op.as_mut(), &mut ctx);
        let mut out = Vec::new();
        for b in batches {
            for wv in *b.downcast::<Vec<WindowedValue<(String, i64)>>>().expect("output type") {
                out.push(Pane {
                    key: wv.value.0,
                    window: wv.window,
                    sum: wv.value.1,
                    timestamp: wv.timestamp.0,
                    timing: wv.pane.timing,
                    index: wv.pane.index,
                    nonspeculative: wv.pane.nonspeculative_index,
                    first: wv.pane.is_first,
                    last: wv.pane.is_last,
                });
            }
        }
        out.sort_by(|a, b| (&a.key, a.window).cmp(&(&b.key, b.window)));
        out
    }

    /// One bundle of `(key, value, timestamp)`.
    fn add(&mut self, elements: &[(&str, i64, i64)]) -> Vec<Pane> {
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

    fn watermark(&mut self, t: i64) -> Vec<Pane> {
        self.run(|op, ctx| op.advance_watermark(Timestamp(t), ctx).expect("watermark"))
    }

    fn hold(&self) -> Timestamp {
        self.op.watermark_hold()
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

fn sessions(gap: i64) -> WindowingStrategy {
    WindowingStrategy::with_window_fn(WindowFnSpec::Sessions { gap_ms: gap })
}

fn every_element() -> Trigger {
    Trigger::Repeatedly { trigger: Box::new(Trigger::AfterCount { count: 1 }) }
}

// ---- 1. Watermark holds and output timestamps ---------------------------------------------

/// Fixed(10), default trigger, EARLIEST.
/// ```text
/// watermark 5                       (output watermark 5)
/// a:1@2 a:1@3 a:1@7 a:1@8           2 and 3 are behind the output watermark: no element hold,
///                                   a garbage-collection hold at 9 instead; 7 and 8 hold at 7
/// watermark 11   → a [0,10) 4 @7 ON_TIME 0/0 last
/// ```
#[test]
fn earliest_stamps_the_pane_with_the_holds_of_elements_not_behind_the_output_watermark() {
    let mut h = Harness::new(WindowingStrategy { timestamp_combiner: TimestampCombiner::Earliest, ..fixed(10) });
    assert_eq!(h.watermark(5), vec![]);
    assert_eq!(h.add(&[("a", 1, 2), ("a", 1, 3), ("a", 1, 7), ("a", 1, 8)]), vec![]);
    assert_eq!(h.hold(), Timestamp(7));
    assert_eq!(h.watermark(11), vec![pane("a", (0, 10), 4, 7, OnTime, 0, 0, true)]);
}

/// Fixed(10), default trigger, EARLIEST.
/// ```text
/// watermark 5
/// a:1@2 a:1@3                       no element hold: the garbage-collection hold at 9
/// watermark 11   → a [0,10) 2 @9 ON_TIME 0/0 last
/// ```
#[test]
fn with_no_element_hold_the_pane_is_stamped_at_the_end_of_the_window() {
    let mut h = Harness::new(WindowingStrategy { timestamp_combiner: TimestampCombiner::Earliest, ..fixed(10) });
    h.watermark(5);
    assert_eq!(h.add(&[("a", 1, 2), ("a", 1, 3)]), vec![]);
    assert_eq!(h.hold(), Timestamp(9), "held at the end of the window, not at 2");
    assert_eq!(h.watermark(11), vec![pane("a", (0, 10), 2, 9, OnTime, 0, 0, true)]);
}

/// Fixed(10), default trigger, LATEST.
/// ```text
/// watermark 5
/// a:1@2 a:1@8 a:1@6                 2 adds no element hold; 8 and 6 combine to the latest, 8,
///                                   which is where the output watermark is held
/// watermark 11   → a [0,10) 3 @8 ON_TIME 0/0 last
/// ```
#[test]
fn latest_holds_and_stamps_at_the_latest_element_hold() {
    let mut h = Harness::new(WindowingStrategy { timestamp_combiner: TimestampCombiner::Latest, ..fixed(10) });
    h.watermark(5);
    h.add(&[("a", 1, 2), ("a", 1, 8), ("a", 1, 6)]);
    assert_eq!(h.hold(), Timestamp(8));
    assert_eq!(h.watermark(11), vec![pane("a", (0, 10), 3, 8, OnTime, 0, 0, true)]);
}

/// Fixed(10), default trigger, EARLIEST, allowed lateness 20.
/// ```text
/// a:1@7                             element hold 7
/// watermark 12   → a [0,10) 1 @7 ON_TIME 0/0
/// a:5@3                             late: past the end of its window for the input watermark,
///                                   so no element hold; the pane falls back to the window's end
///                → a [0,10) 5 @9 LATE 1/1
/// ```
#[test]
fn late_data_adds_no_element_hold_and_its_pane_is_stamped_at_the_end_of_the_window() {
    let mut h = Harness::new(WindowingStrategy {
        timestamp_combiner: TimestampCombiner::Earliest,
        allowed_lateness_ms: 20,
        ..fixed(10)
    });
    h.add(&[("a", 1, 7)]);
    assert_eq!(h.watermark(12), vec![pane("a", (0, 10), 1, 7, OnTime, 0, 0, false)]);
    assert_eq!(h.add(&[("a", 5, 3)]), vec![pane("a", (0, 10), 5, 9, Late, 1, 1, false)]);
}

/// Fixed(10), Repeatedly(AfterCount(2)), EARLIEST.
/// ```text
/// watermark 4                       (output watermark 4)
/// a:1@3                             behind the output watermark: holds at 9, not 3
/// a:1@6          → a [0,10) 2 @6 EARLY 0/-1      (not @3, which is behind the output watermark 4)
/// ```
#[test]
fn an_early_pane_is_never_stamped_behind_the_reported_output_watermark() {
    let trigger = Trigger::Repeatedly { trigger: Box::new(Trigger::AfterCount { count: 2 }) };
    let mut h =
        Harness::new(WindowingStrategy { trigger, timestamp_combiner: TimestampCombiner::Earliest, ..fixed(10) });
    h.watermark(4);
    assert_eq!(h.add(&[("a", 1, 3)]), vec![]);
    assert_eq!(h.hold(), Timestamp(9));
    assert_eq!(h.add(&[("a", 1, 6)]), vec![pane("a", (0, 10), 2, 6, Early, 0, -1, false)]);
    assert_eq!(h.hold(), Timestamp::MAX, "the firing released every hold");
}

/// Sessions(10), default trigger, EARLIEST: merged element holds combine by the combiner.
/// ```text
/// a:1@4  a:1@12                     sessions [4,14) hold 4 and [12,22) hold 12 → merge [4,22)
/// watermark 30   → a [4,22) 2 @4 ON_TIME 0/0 last
/// ```
#[test]
fn merged_windows_combine_their_element_holds() {
    let mut h = Harness::new(WindowingStrategy { timestamp_combiner: TimestampCombiner::Earliest, ..sessions(10) });
    h.add(&[("a", 1, 4)]);
    h.add(&[("a", 1, 12)]);
    assert_eq!(h.hold(), Timestamp(4));
    assert_eq!(h.watermark(30), vec![pane("a", (4, 22), 2, 4, OnTime, 0, 0, true)]);
}

// ---- 2. Merged windows start fresh ----------------------------------------------------------

/// Sessions(10), Repeatedly(AfterCount(1)), discarding.
/// ```text
/// a:1@0          → a [0,10) 1 @9 EARLY 0/-1
/// a:2@5                             [5,15) merges with [0,10) into [0,15), a new window: the
///                                   panes of [0,10) are cleared (Beam's PaneInfoTracker.clear)
///                → a [0,15) 2 @14 EARLY 0/-1   (first again, not index 1)
/// ```
#[test]
fn a_merge_into_a_new_window_starts_its_panes_afresh() {
    let mut h = Harness::new(WindowingStrategy { trigger: every_element(), ..sessions(10) });
    assert_eq!(h.add(&[("a", 1, 0)]), vec![pane("a", (0, 10), 1, 9, Early, 0, -1, false)]);
    assert_eq!(h.add(&[("a", 2, 5)]), vec![pane("a", (0, 15), 2, 14, Early, 0, -1, false)]);
}

/// Sessions(10), Repeatedly(AfterCount(1)), discarding.
/// ```text
/// a:1@0          → a [0,10) 1 @9 EARLY 0/-1
/// a:2@5          → a [0,15) 2 @14 EARLY 0/-1   (a new window: fresh panes)
/// a:4@3                             [3,13) merges into [0,15), which already exists: it keeps
///                                   its pane history
///                → a [0,15) 4 @14 EARLY 1/-1
/// ```
#[test]
fn a_merge_into_an_existing_window_keeps_its_panes() {
    let mut h = Harness::new(WindowingStrategy { trigger: every_element(), ..sessions(10) });
    h.add(&[("a", 1, 0)]);
    h.add(&[("a", 2, 5)]);
    assert_eq!(h.add(&[("a", 4, 3)]), vec![pane("a", (0, 15), 4, 14, Early, 1, -1, false)]);
}

// ---- 3. A closed window stays closed ----------------------------------------------------------

/// Sessions(10), AfterCount(1) alone (it finishes after one pane).
/// ```text
/// a:1@0          → a [0,10) 1 @9 EARLY 0/-1 last     (the trigger finished: [0,10) is closed)
/// a:2@0                             [0,10) again: closed, dropped, dropped_due_to_closed_window 1
/// a:4@5                             [5,15): the closed [0,10) takes no part in merging
///                → a [5,15) 4 @14 EARLY 0/-1 last
/// ```
#[test]
fn a_session_closed_by_its_trigger_is_not_reopened_by_later_data() {
    let mut h = Harness::new(WindowingStrategy { trigger: Trigger::AfterCount { count: 1 }, ..sessions(10) });
    assert_eq!(h.add(&[("a", 1, 0)]), vec![pane("a", (0, 10), 1, 9, Early, 0, -1, true)]);
    assert_eq!(h.add(&[("a", 2, 0)]), vec![]);
    assert_eq!(h.counter("dropped_due_to_closed_window"), 1);
    assert_eq!(h.add(&[("a", 4, 5)]), vec![pane("a", (5, 15), 4, 14, Early, 0, -1, true)]);
    assert_eq!(h.watermark(100), vec![]);
    assert_eq!(h.counter("dropped_due_to_closed_window"), 0, "nothing more was dropped");
}

/// Fixed(10), AfterCount(1) alone.
/// ```text
/// a:1@1          → a [0,10) 1 @9 EARLY 0/-1 last
/// a:2@2                             closed: dropped, dropped_due_to_closed_window 1
/// watermark 100                     nothing
/// ```
#[test]
fn a_fixed_window_closed_by_its_trigger_drops_and_counts_later_data() {
    let mut h = Harness::new(WindowingStrategy { trigger: Trigger::AfterCount { count: 1 }, ..fixed(10) });
    assert_eq!(h.add(&[("a", 1, 1)]), vec![pane("a", (0, 10), 1, 9, Early, 0, -1, true)]);
    assert_eq!(h.add(&[("a", 2, 2)]), vec![]);
    assert_eq!(h.watermark(100), vec![]);
    assert_eq!(h.counter("dropped_due_to_closed_window"), 1);
}

// ---- 5. The empty on-time pane ----------------------------------------------------------------

/// Fixed(10), Repeatedly(AfterCount(1)), allowed lateness 100, on-time behaviour FIRE_ALWAYS,
/// closing behaviour FIRE_IF_NON_EMPTY.
/// ```text
/// a:1@1          → a [0,10) 1 @9 EARLY 0/-1
/// watermark 50                      nothing fires; the output watermark (no holds) becomes 50
/// watermark 200                     expiry: the pane would be LATE (the output watermark 50 is
///                                   past the window's end 9) and it is empty: nothing
/// ```
#[test]
fn no_empty_on_time_pane_once_the_output_watermark_passed_the_end_of_the_window() {
    let mut h = Harness::new(WindowingStrategy { trigger: every_element(), allowed_lateness_ms: 100, ..fixed(10) });
    assert_eq!(h.add(&[("a", 1, 1)]), vec![pane("a", (0, 10), 1, 9, Early, 0, -1, false)]);
    assert_eq!(h.watermark(50), vec![]);
    assert_eq!(h.watermark(200), vec![]);
}

/// Fixed(10), Repeatedly(AfterCount(1)), allowed lateness 100, FIRE_ALWAYS on time.
/// ```text
/// a:1@1          → a [0,10) 1 @9 EARLY 0/-1
/// watermark 200                     expiry while the output watermark is still before the end
///                                   of the window: the pane is ON_TIME, emitted though empty
///                → a [0,10) 0 @9 ON_TIME 1/0 last
/// ```
#[test]
fn the_empty_on_time_pane_fires_while_it_is_not_late_for_the_output_watermark() {
    let mut h = Harness::new(WindowingStrategy { trigger: every_element(), allowed_lateness_ms: 100, ..fixed(10) });
    h.add(&[("a", 1, 1)]);
    assert_eq!(h.watermark(200), vec![pane("a", (0, 10), 0, 9, OnTime, 1, 0, true)]);
}

/// Fixed(10), AfterWatermark with early firings AfterCount(1) and late firings AfterCount(1),
/// allowed lateness 100, accumulating.
/// ```text
/// a:1@1          → a [0,10) 1 @9 EARLY 0/-1
/// watermark 10   → a [0,10) 1 @9 ON_TIME 1/0     (no new data; FIRE_ALWAYS)
/// a:2@2          → a [0,10) 3 @9 LATE 2/1
/// ```
#[test]
fn the_watermark_trigger_fires_an_empty_on_time_pane_with_allowed_lateness() {
    let trigger = Trigger::AfterWatermark {
        early: Some(Box::new(Trigger::AfterCount { count: 1 })),
        late: Some(Box::new(Trigger::AfterCount { count: 1 })),
    };
    let mut h = Harness::new(WindowingStrategy {
        trigger,
        allowed_lateness_ms: 100,
        accumulation_mode: AccumulationMode::Accumulating,
        ..fixed(10)
    });
    assert_eq!(h.add(&[("a", 1, 1)]), vec![pane("a", (0, 10), 1, 9, Early, 0, -1, false)]);
    assert_eq!(h.watermark(10), vec![pane("a", (0, 10), 1, 9, OnTime, 1, 0, false)]);
    assert_eq!(h.add(&[("a", 2, 2)]), vec![pane("a", (0, 10), 3, 9, Late, 2, 1, false)]);
}
