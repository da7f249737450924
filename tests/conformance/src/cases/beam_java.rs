//! Event time exactly as Beam Java's `ReduceFnRunner`, `WatermarkHold`, `PaneInfoTracker` and
//! `MergingActiveWindowSet` give it, and the constructions Beam Java refuses. Each case is a
//! TestStream transcript: the events, then every pane the grouping emits (value, window,
//! timestamp, timing, index / non-speculative index, last), checked with PAssert over `Reify`.

use crate::{run_ok, Reify};
use runnel::model::TimestampCombiner;
use runnel::prelude::*;

type Event = ((String, i64), i64);

fn kv(k: &str, v: i64, t: i64) -> Event {
    ((k.to_string(), v), t)
}

type Sum = ((String, i64), Window, PaneInfo, Timestamp);

/// `key sum [start, end) @timestamp timing index/non-speculative-index [last]`.
#[allow(clippy::too_many_arguments)]
fn pane(k: &str, v: i64, w: (i64, i64), ts: i64, timing: PaneTiming, index: i64, ns: i64, last: bool) -> Sum {
    let info = PaneInfo { is_first: index == 0, is_last: last, timing, index, nonspeculative_index: ns };
    ((k.to_string(), v), Window::interval(w.0, w.1), info, Timestamp(ts))
}

fn sums(p: &Pipeline, stream: TestStream<(String, i64)>, window: WindowInto) -> PCollection<Sum> {
    p.apply("Events", stream).apply("Window", window).combine_per_key("Sum", combine::Sum::new()).apply("Reify", Reify)
}

/// Fixed(10), default trigger, EARLIEST.
/// ```text
/// watermark 5
/// a:1@2 a:1@3 a:1@7 a:1@8 b:1@2 b:1@3    2 and 3 are behind the output watermark (5): they add
///                                        no element hold, only the garbage-collection hold (9)
/// watermark 11   → a 4 [0,10) @7 ON_TIME 0/0 last     (the hold of 7 and 8)
///                → b 2 [0,10) @9 ON_TIME 0/0 last     (no element hold: the end of the window)
/// ```
pub fn earliest_stamps_panes_only_with_holds_not_behind_the_output_watermark(options: PipelineOptions) {
    let p = Pipeline::new(options);
    let stream = TestStream::new()
        .advance_watermark_to(5)
        .add_elements(vec![kv("a", 1, 2), kv("a", 1, 3), kv("a", 1, 7), kv("a", 1, 8), kv("b", 1, 2), kv("b", 1, 3)])
        .advance_watermark_to(11);
    let window = WindowInto::new(FixedWindows::of(10)).with_timestamp_combiner(TimestampCombiner::Earliest);
    sums(&p, stream, window).apply(
        "Check",
        PAssert::equal_in_any_order(vec![
            pane("a", 4, (0, 10), 7, PaneTiming::OnTime, 0, 0, true),
            pane("b", 2, (0, 10), 9, PaneTiming::OnTime, 0, 0, true),
        ]),
    );
    run_ok(&p);
}

/// Fixed(10), default trigger, LATEST, allowed lateness 20.
/// ```text
/// a:1@4 a:1@6                       element holds 4 and 6: LATEST combines them to 6
/// watermark 12   → a 2 [0,10) @6 ON_TIME 0/0
/// a:5@8                             late: no element hold, so the end of the window
///                → a 5 [0,10) @9 LATE 1/1
/// ```
pub fn latest_stamps_on_time_panes_by_their_holds_and_late_panes_at_the_end_of_the_window(options: PipelineOptions) {
    let p = Pipeline::new(options);
    let stream = TestStream::new()
        .add_elements(vec![kv("a", 1, 4), kv("a", 1, 6)])
        .advance_watermark_to(12)
        .add_elements(vec![kv("a", 5, 8)]);
    let window = WindowInto::new(FixedWindows::of(10))
        .with_timestamp_combiner(TimestampCombiner::Latest)
        .with_allowed_lateness(20);
    sums(&p, stream, window).apply(
        "Check",
        PAssert::equal_in_any_order(vec![
            pane("a", 2, (0, 10), 6, PaneTiming::OnTime, 0, 0, false),
            pane("a", 5, (0, 10), 9, PaneTiming::Late, 1, 1, false),
        ]),
    );
    run_ok(&p);
}

/// Sessions(10), Repeatedly(AfterCount(1)), discarding.
/// ```text
/// a:1@0          → a 1 [0,10) @9 EARLY 0/-1
/// a:2@5                             [5,15) and [0,10) merge into [0,15), a new window: it
///                                   starts with no panes (Beam clears the merged-away panes)
///                → a 2 [0,15) @14 EARLY 0/-1
/// a:4@3                             [3,13) merges into the existing [0,15): its panes go on
///                → a 4 [0,15) @14 EARLY 1/-1
/// watermark ∞    → a 0 [0,15) @14 ON_TIME 2/0 last   (empty: on-time panes fire always)
/// ```
pub fn merged_sessions_start_fresh_unless_the_result_already_existed(options: PipelineOptions) {
    let p = Pipeline::new(options);
    let stream = TestStream::new()
        .add_elements(vec![kv("a", 1, 0)])
        .add_elements(vec![kv("a", 2, 5)])
        .add_elements(vec![kv("a", 4, 3)]);
    let window = WindowInto::new(Sessions::with_gap(10)).triggering(Triggers::repeatedly(AfterCount::of(1)));
    sums(&p, stream, window).apply(
        "Check",
        PAssert::equal_in_any_order(vec![
            pane("a", 1, (0, 10), 9, PaneTiming::Early, 0, -1, false),
            pane("a", 2, (0, 15), 14, PaneTiming::Early, 0, -1, false),
            pane("a", 4, (0, 15), 14, PaneTiming::Early, 1, -1, false),
            pane("a", 0, (0, 15), 14, PaneTiming::OnTime, 2, 0, true),
        ]),
    );
    run_ok(&p);
}

/// Sessions(10), AfterCount(1) alone: the trigger finishes after one pane and closes the session.
/// ```text
/// a:1@0          → a 1 [0,10) @9 EARLY 0/-1 last
/// a:2@0                             [0,10) is closed: dropped, dropped_due_to_closed_window 1
/// a:4@5                             [5,15): closed windows take no part in merging, so a new
///                                   session
///                → a 4 [5,15) @14 EARLY 0/-1 last
/// watermark ∞                       nothing more
/// ```
pub fn a_session_closed_by_its_trigger_stays_closed(options: PipelineOptions) {
    let p = Pipeline::new(options);
    let stream = TestStream::new()
        .add_elements(vec![kv("a", 1, 0)])
        .add_elements(vec![kv("a", 2, 0)])
        .add_elements(vec![kv("a", 4, 5)]);
    let window = WindowInto::new(Sessions::with_gap(10)).triggering(AfterCount::of(1));
    sums(&p, stream, window).apply(
        "Check",
        PAssert::equal_in_any_order(vec![
            pane("a", 1, (0, 10), 9, PaneTiming::Early, 0, -1, true),
            pane("a", 4, (5, 15), 14, PaneTiming::Early, 0, -1, true),
        ]),
    );
    let result = run_ok(&p);
    assert_eq!(result.counter("dropped_due_to_closed_window"), 1, "{:?}", result.metrics());
}

/// Fixed(10), Repeatedly(AfterCount(1)), allowed lateness 100, on-time behaviour FIRE_ALWAYS.
/// ```text
/// a:1@1          → a 1 [0,10) @9 EARLY 0/-1
/// watermark 50                      the trigger does not watch the watermark: nothing; the
///                                   output watermark moves to 50, past the window's end
/// watermark ∞                       expiry: the pane would be LATE for the output watermark and
///                                   is empty, so it is not emitted (closing FIRE_IF_NON_EMPTY)
/// ```
/// A second run, with the watermark going straight to ∞:
/// ```text
/// b:1@1          → b 1 [0,10) @9 EARLY 0/-1
/// watermark ∞    → b 0 [0,10) @9 ON_TIME 1/0 last    (not late for the output watermark yet)
/// ```
pub fn the_empty_on_time_pane_fires_only_while_not_late_for_the_output_watermark(options: PipelineOptions) {
    let window = || {
        WindowInto::new(FixedWindows::of(10))
            .triggering(Triggers::repeatedly(AfterCount::of(1)))
            .with_allowed_lateness(100)
    };
    let p = Pipeline::new(options.clone());
    let stream = TestStream::new().add_elements(vec![kv("a", 1, 1)]).advance_watermark_to(50);
    sums(&p, stream, window())
        .apply("Check", PAssert::equal_in_any_order(vec![pane("a", 1, (0, 10), 9, PaneTiming::Early, 0, -1, false)]));
    run_ok(&p);

    let p = Pipeline::new(options);
    let stream = TestStream::new().add_elements(vec![kv("b", 1, 1)]);
    sums(&p, stream, window()).apply(
        "Check",
        PAssert::equal_in_any_order(vec![
            pane("b", 1, (0, 10), 9, PaneTiming::Early, 0, -1, false),
            pane("b", 0, (0, 10), 9, PaneTiming::OnTime, 1, 0, true),
        ]),
    );
    run_ok(&p);
}

/// Beam Java accepts only one-shot triggers (`OnceTrigger`) as the sub-triggers of AfterAny
/// (`AfterFirst.of`) and AfterAll, as the early and late firings of AfterWatermark, and as the
/// `finally` of OrFinally. Anything else is a construction error naming the transform and the
/// sub-trigger; wrapping the whole trigger in Repeatedly is the way to fire again.
pub fn triggers_that_fire_again_where_beam_needs_one_shot_are_refused(options: PipelineOptions) {
    let every = || Triggers::repeatedly(AfterCount::of(1));
    let refused: Vec<(&str, Trigger, &str)> = vec![
        ("AnyWindow", Triggers::after_any(vec![AfterCount::of(2), every()]), "a sub-trigger of AfterAny"),
        ("AllWindow", Triggers::after_all(vec![Triggers::always(), AfterCount::of(2)]), "a sub-trigger of AfterAll"),
        (
            "EarlyWindow",
            AfterWatermark::past_end_of_window().with_early_firings(every()),
            "the early firings of AfterWatermark",
        ),
        (
            "LateWindow",
            AfterWatermark::past_end_of_window().with_late_firings(Triggers::default_trigger()),
            "the late firings of AfterWatermark",
        ),
        ("UntilWindow", every().or_finally(every()), "the finally trigger of OrFinally"),
    ];
    for (name, trigger, place) in refused {
        let p = Pipeline::new(options.clone());
        p.apply("Create", Create::of(vec![("a".to_string(), 1i64)]))
            .apply(name, WindowInto::new(FixedWindows::of(10)).triggering(trigger));
        let errors = p.construction_errors();
        assert!(
            errors.iter().any(|e| e.contains(&format!("'{name}'")) && e.contains(place) && e.contains("Repeatedly")),
            "construction errors: {errors:?}"
        );
        assert!(p.run().is_err(), "a pipeline with {place} not one-shot must not run");
    }
    // The one-shot forms, repeated at the top, are accepted and run.
    let p = Pipeline::new(options);
    let ok = Triggers::repeatedly(Triggers::after_any(vec![AfterCount::of(2), AfterWatermark::past_end_of_window()]))
        .or_finally(AfterCount::of(10));
    p.apply("Create", Create::of(vec![("a".to_string(), 1i64)]))
        .apply("Window", WindowInto::new(FixedWindows::of(10)).triggering(ok));
    assert_eq!(p.construction_errors(), Vec::<String>::new());
    run_ok(&p);
}

/// After a grouping over sessions (any merging window function) the windows are final: Beam
/// Java gives the output an invalid window function ("already consumed by previous
/// GroupByKey") and refuses a later grouping at construction. The error names both groupings
/// and offers `WindowInto::remerge()`.
pub fn a_second_grouping_over_consumed_sessions_is_refused(options: PipelineOptions) {
    let p = Pipeline::new(options.clone());
    p.apply("Create", Create::timestamped(vec![(("a".to_string(), 1i64), Timestamp(0))]))
        .apply("Sessions", WindowInto::new(Sessions::with_gap(10)))
        .apply("First", GroupByKey::new())
        .map("Sizes", |(k, vs): (String, Vec<i64>)| (k, vs.len() as i64))
        .combine_per_key("Second", combine::Sum::<i64>::new());
    let errors = p.construction_errors();
    assert!(
        errors.iter().any(|e| e.contains("'Second'") && e.contains("'First'") && e.contains("WindowInto::remerge()")),
        "construction errors: {errors:?}"
    );
    assert!(p.run().is_err(), "a grouping over consumed sessions must not run");

    // Fixed windows do not merge: a second grouping is fine.
    let p = Pipeline::new(options);
    p.apply("Create", Create::timestamped(vec![(("a".to_string(), 1i64), Timestamp(0))]))
        .apply("Fixed", WindowInto::new(FixedWindows::of(10)))
        .apply("First", GroupByKey::new())
        .map("Sizes", |(k, vs): (String, Vec<i64>)| (k, vs.len() as i64))
        .combine_per_key("Second", combine::Sum::<i64>::new());
    assert_eq!(p.construction_errors(), Vec::<String>::new());
}

/// `WindowInto::remerge()` (Beam's `Window.remerge()`) keeps each element's merged window and
/// lets the next grouping merge those windows again; a fresh `WindowInto::new(Sessions)` would
/// instead start new sessions from the first grouping's output timestamps.
/// ```text
/// Sessions(10), batch: a@0 a@5 b@12 c@40
/// First (count per key)   → a 2 [0,15) @14, b 1 [12,22) @21, c 1 [40,50) @49
/// re-keyed to "all", remerge, Second (sum per key): [0,15) and [12,22) overlap and merge
///                         → all 3 [0,22) @21 ON_TIME 0/0 last, all 1 [40,50) @49 ON_TIME 0/0 last
/// ```
pub fn remerge_merges_consumed_windows_again_at_the_next_grouping(options: PipelineOptions) {
    let p = Pipeline::new(options);
    let events = vec![("a", 0), ("a", 5), ("b", 12), ("c", 40)];
    p.apply(
        "Create",
        Create::timestamped(events.into_iter().map(|(k, t)| ((k.to_string(), 1i64), Timestamp(t))).collect()),
    )
    .apply("Sessions", WindowInto::new(Sessions::with_gap(10)))
    .combine_per_key("First", combine::Sum::<i64>::new())
    .map("AllOneKey", |(_, n): (String, i64)| ("all".to_string(), n))
    .apply("Remerge", WindowInto::remerge())
    .combine_per_key("Second", combine::Sum::<i64>::new())
    .apply("Reify", Reify)
    .apply(
        "Check",
        PAssert::equal_in_any_order(vec![
            pane("all", 3, (0, 22), 21, PaneTiming::OnTime, 0, 0, true),
            pane("all", 1, (40, 50), 49, PaneTiming::OnTime, 0, 0, true),
        ]),
    );
    run_ok(&p);
}
