//! Streaming: TestStream (elements, watermark and processing-time advances), late data, watermark
//! holds, unbounded sources and cancellation. Each case checks exact panes (value, window, pane,
//! timestamp) with PAssert over `Reify`; step-by-step transcripts are in the direct runner's own
//! tests (they need its hooks).

use crate::{run_ok, Reify};
use runnel::model::TimestampCombiner;
use runnel::prelude::*;
use runnel::JobState;
use std::time::{Duration, Instant};

/// A keyed element and its timestamp, as a TestStream takes it.
type Event = ((String, i64), i64);

fn kv(k: &str, v: i64, t: i64) -> Event {
    ((k.to_string(), v), t)
}

/// A pane whose EARLY panes (if any) came first: the non-speculative index counts the others.
fn pane(timing: PaneTiming, index: i64, early_before: i64, is_first: bool, is_last: bool) -> PaneInfo {
    let nonspeculative_index = match timing {
        PaneTiming::Early => -1,
        _ => index - early_before,
    };
    PaneInfo { is_first, is_last, timing, index, nonspeculative_index }
}

type Sum = ((String, i64), Window, PaneInfo, Timestamp);

fn sum(k: &str, v: i64, w: (i64, i64), p: PaneInfo, ts: i64) -> Sum {
    ((k.to_string(), v), Window::interval(w.0, w.1), p, Timestamp(ts))
}

/// Sums per key in fixed windows of 10 ms, with the given tweaks to the windowing.
fn windowed_sums(
    p: &Pipeline,
    stream: TestStream<(String, i64)>,
    window: impl FnOnce(WindowInto) -> WindowInto,
) -> PCollection<Sum> {
    p.apply("Events", stream)
        .apply("Window", window(WindowInto::new(FixedWindows::of(10))))
        .combine_per_key("Sum", combine::Sum::new())
        .apply("Reify", Reify)
}

/// With the default trigger, each window fires one ON_TIME pane when the watermark passes its
/// end (and, with no allowed lateness, it is also the last), at the window's max timestamp.
pub fn test_stream_default_trigger_fires_on_time_panes_as_the_watermark_passes(options: PipelineOptions) {
    let p = Pipeline::new(options);
    let stream = TestStream::new()
        .add_elements(vec![kv("a", 1, 1), kv("a", 2, 5), kv("b", 3, 12)])
        .advance_watermark_to(10)
        .add_elements(vec![kv("b", 4, 15), kv("a", 5, 25)])
        .advance_watermark_to(20)
        .advance_watermark_to_infinity();
    let only = pane(PaneTiming::OnTime, 0, 0, true, true);
    windowed_sums(&p, stream, |w| w).apply(
        "Check",
        PAssert::equal_in_any_order(vec![
            sum("a", 3, (0, 10), only, 9),
            sum("b", 7, (10, 20), only, 19),
            sum("a", 5, (20, 30), only, 29),
        ]),
    );
    run_ok(&p);
}

/// A TestStream that never advances its watermark still ends: the runner advances it to +∞ after
/// the last event, and every window fires its ON_TIME pane then.
pub fn test_stream_ends_with_the_watermark_at_infinity(options: PipelineOptions) {
    let p = Pipeline::new(options);
    let stream = TestStream::new().add_elements(vec![kv("a", 1, 1), kv("a", 2, 15)]);
    let only = pane(PaneTiming::OnTime, 0, 0, true, true);
    windowed_sums(&p, stream, |w| w).apply(
        "Check",
        PAssert::equal_in_any_order(vec![sum("a", 1, (0, 10), only, 9), sum("a", 2, (10, 20), only, 19)]),
    );
    run_ok(&p);
}

/// Data behind the watermark within the allowed lateness fires a LATE pane (index 1,
/// non-speculative index 1); the window's last pane comes when it expires.
pub fn test_stream_late_data_within_allowed_lateness_fires_a_late_pane(options: PipelineOptions) {
    let p = Pipeline::new(options);
    let stream = TestStream::new()
        .add_elements(vec![kv("a", 1, 1)])
        .advance_watermark_to(10)
        .add_elements(vec![kv("a", 5, 3)])
        .advance_watermark_to(15)
        .add_elements(vec![kv("a", 7, 4)])
        .advance_watermark_to_infinity();
    windowed_sums(&p, stream, |w| w.with_allowed_lateness(10)).apply(
        "Check",
        PAssert::equal_in_any_order(vec![
            sum("a", 1, (0, 10), pane(PaneTiming::OnTime, 0, 0, true, false), 9),
            sum("a", 5, (0, 10), pane(PaneTiming::Late, 1, 0, false, false), 9),
            sum("a", 7, (0, 10), pane(PaneTiming::Late, 2, 0, false, false), 9),
        ]),
    );
    run_ok(&p);
}

/// Data for a window that has expired (watermark past its end plus allowed lateness) is dropped
/// and counted in `dropped_due_to_lateness`; other windows are unaffected.
pub fn test_stream_data_beyond_allowed_lateness_is_dropped_and_counted(options: PipelineOptions) {
    let p = Pipeline::new(options);
    let stream = TestStream::new()
        .add_elements(vec![kv("a", 1, 1)])
        .advance_watermark_to(25)
        .add_elements(vec![kv("a", 5, 3), kv("a", 6, 8), kv("a", 7, 26)])
        .advance_watermark_to_infinity();
    windowed_sums(&p, stream, |w| w.with_allowed_lateness(10)).apply(
        "Check",
        PAssert::equal_in_any_order(vec![
            // The watermark jumps from −∞ to 25, past the end (9) and the expiry (19) at once; and
            // from 25 to +∞, past both for [20, 30).
            sum("a", 1, (0, 10), pane(PaneTiming::OnTime, 0, 0, true, true), 9),
            sum("a", 7, (20, 30), pane(PaneTiming::OnTime, 0, 0, true, true), 29),
        ]),
    );
    let result = run_ok(&p);
    assert_eq!(result.counter("dropped_due_to_lateness"), 2, "{:?}", result.metrics());
}

/// The same elements in another order, within and across element events before the watermark
/// passes their windows, give the same panes.
pub fn test_stream_reordered_input_gives_the_same_panes(options: PipelineOptions) {
    let elements = [kv("a", 1, 1), kv("a", 2, 5), kv("b", 3, 12), kv("a", 4, 9), kv("b", 5, 19)];
    let orders: Vec<Vec<Vec<Event>>> = vec![
        vec![elements[..3].to_vec(), elements[3..].to_vec()],
        vec![elements.iter().rev().cloned().collect()],
        elements.iter().rev().map(|e| vec![e.clone()]).collect(),
    ];
    let only = pane(PaneTiming::OnTime, 0, 0, true, true);
    for order in orders {
        let p = Pipeline::new(options.clone());
        let mut stream = TestStream::new();
        for batch in order {
            stream = stream.add_elements(batch);
        }
        let stream = stream.advance_watermark_to(10).advance_watermark_to(20);
        windowed_sums(&p, stream, |w| w).apply(
            "Check",
            PAssert::equal_in_any_order(vec![sum("a", 7, (0, 10), only, 9), sum("b", 8, (10, 20), only, 19)]),
        );
        run_ok(&p);
    }
}

/// A grouping holds its output watermark at its buffered data, so a downstream grouping keeps
/// accepting what the upstream one will emit: with the EARLIEST timestamp combiner the first
/// grouping emits [0, 10) at 3 after the watermark passed 7, and the second grouping (windows of
/// 5) still takes it on time into [0, 5) instead of dropping it.
pub fn test_stream_watermark_hold_keeps_a_downstream_grouping_on_time(options: PipelineOptions) {
    let p = Pipeline::new(options);
    let first = p
        .apply(
            "Events",
            TestStream::new()
                .add_elements(vec![kv("a", 1, 3), kv("a", 2, 6)])
                .advance_watermark_to(7)
                .advance_watermark_to(12),
        )
        .apply("Window", WindowInto::new(FixedWindows::of(10)).with_timestamp_combiner(TimestampCombiner::Earliest))
        .combine_per_key("First", combine::Sum::new());
    first
        .apply("Rewindow", WindowInto::new(FixedWindows::of(5)))
        .combine_per_key("Second", combine::Sum::new())
        .apply("Reify", Reify)
        .apply(
            "Check",
            PAssert::equal_in_any_order(vec![sum("a", 3, (0, 5), pane(PaneTiming::OnTime, 0, 0, true, true), 4)]),
        );
    let result = run_ok(&p);
    assert_eq!(result.counter("dropped_due_to_lateness"), 0, "{:?}", result.metrics());
}

/// Processing time moves only on the stream's processing-time events: an early firing after a
/// processing-time delay, then the ON_TIME pane, then a LATE pane per late element
/// (accumulating).
pub fn test_stream_processing_time_advance_fires_early_pane(options: PipelineOptions) {
    let p = Pipeline::new(options);
    let stream = TestStream::new()
        .add_elements(vec![kv("a", 1, 1), kv("a", 2, 2)])
        .advance_processing_time(5)
        .add_elements(vec![kv("a", 4, 3)])
        .advance_watermark_to(10)
        .add_elements(vec![kv("a", 8, 4)])
        .advance_watermark_to(200);
    let trigger = AfterWatermark::past_end_of_window()
        .with_early_firings(AfterProcessingTime::past_first_element_in_pane().plus_delay_of(5))
        .with_late_firings(AfterCount::of(1));
    windowed_sums(&p, stream, |w| w.triggering(trigger).accumulating_fired_panes().with_allowed_lateness(100)).apply(
        "Check",
        PAssert::equal_in_any_order(vec![
            sum("a", 3, (0, 10), pane(PaneTiming::Early, 0, 1, true, false), 9),
            sum("a", 7, (0, 10), pane(PaneTiming::OnTime, 1, 1, false, false), 9),
            sum("a", 15, (0, 10), pane(PaneTiming::Late, 2, 1, false, false), 9),
        ]),
    );
    run_ok(&p);
}

/// An unbounded source runs until its watermark reaches +∞; windows fire as it advances.
pub fn unbounded_source_runs_until_its_watermark_reaches_infinity(options: PipelineOptions) {
    let p = Pipeline::new(options);
    let read = ReadUnbounded::from_fn(|| {
        let mut n = 0i64;
        move |_now| {
            n += 1;
            Ok(if n <= 6 {
                ReadPoll { elements: vec![(("k".to_string(), n), Timestamp(5 * n))], watermark: Timestamp(5 * n) }
            } else {
                ReadPoll::done()
            })
        }
    });
    let only = pane(PaneTiming::OnTime, 0, 0, true, true);
    // 1@5 2@10 3@15 4@20 5@25 6@30
    windowed_sums_of(&p, read).apply(
        "Check",
        PAssert::equal_in_any_order(vec![
            sum("k", 1, (0, 10), only, 9),
            sum("k", 5, (10, 20), only, 19),
            sum("k", 9, (20, 30), only, 29),
            sum("k", 6, (30, 40), only, 39),
        ]),
    );
    run_ok(&p);
}

fn windowed_sums_of(p: &Pipeline, read: ReadUnbounded<(String, i64)>) -> PCollection<Sum> {
    p.apply("Read", read)
        .apply("Window", WindowInto::new(FixedWindows::of(10)))
        .combine_per_key("Sum", combine::Sum::new())
        .apply("Reify", Reify)
}

/// A pipeline reading a source that never ends runs until it is cancelled from its handle, and
/// then ends in state Cancelled.
pub fn unbounded_source_is_cancelled_from_the_pipeline_handle(options: PipelineOptions) {
    let p = Pipeline::new(options);
    let read = ReadUnbounded::from_fn(|| {
        let mut n = 0i64;
        move |_now| {
            n += 1;
            Ok(ReadPoll { elements: vec![(("k".to_string(), n % 7), Timestamp(n))], watermark: Timestamp(n) })
        }
    });
    windowed_sums_of(&p, read);
    let mut handle = p.run_async().unwrap_or_else(|e| panic!("the pipeline failed: {e}"));
    assert!(!handle.wait_until_finish_timeout(Duration::from_millis(100)), "a never-ending source ended");
    let cancelled_at = Instant::now();
    let result = handle.cancel_and_wait().expect("a cancelled job is not a failure");
    assert_eq!(result.state(), JobState::Cancelled);
    assert!(cancelled_at.elapsed() < crate::RUN_TIMEOUT, "cancelling hung");
}
