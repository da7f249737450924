//! Streaming on the direct runner, step by step: TestStream events, per-PCollection watermarks,
//! watermark holds, lateness, processing time from the test clock. Each test reads the exact
//! panes each step caused through `runnel::transcript`.

use runnel::model::{TimestampCombiner, WindowedValue};
use runnel::prelude::*;
use runnel::transcript::{transcript, Recorder, Step, StepEvent};
use runnel::JobState;

fn kv(k: &str, v: i64, t: i64) -> ((String, i64), i64) {
    ((k.to_string(), v), t)
}

fn options() -> PipelineOptions {
    PipelineOptions::default()
}

/// A pane as data, for comparisons: value, window, timing, index, first, last, timestamp.
type Pane<T> = (T, Window, PaneTiming, i64, bool, bool, Timestamp);

fn panes<T: Clone + std::fmt::Debug>(step: &Step<T>) -> Vec<Pane<T>> {
    let mut v: Vec<Pane<T>> = step
        .outputs
        .iter()
        .map(|wv: &WindowedValue<T>| {
            (
                wv.value.clone(),
                wv.window,
                wv.pane.timing,
                wv.pane.index,
                wv.pane.is_first,
                wv.pane.is_last,
                wv.timestamp,
            )
        })
        .collect();
    v.sort_by_key(|p| format!("{p:?}"));
    v
}

fn on_time(k: &str, v: i64, w: (i64, i64), last: bool) -> Pane<(String, i64)> {
    ((k.to_string(), v), Window::interval(w.0, w.1), PaneTiming::OnTime, 0, true, last, Timestamp(w.1 - 1))
}

fn show<T: std::fmt::Debug>(steps: &[Step<T>]) -> String {
    steps.iter().map(|s| s.to_string()).collect()
}

/// With the default trigger, each window's ON_TIME pane fires in exactly the step whose watermark
/// advance passes the window's end, and not before; adding elements fires nothing.
#[test]
fn default_trigger_fires_on_time_pane_exactly_when_the_watermark_passes_the_window_end() {
    let p = Pipeline::new(options());
    let sums = p
        .apply(
            "Events",
            TestStream::new()
                .add_elements(vec![kv("a", 1, 1), kv("a", 2, 5), kv("b", 3, 12)])
                .advance_watermark_to(5)
                .advance_watermark_to(10)
                .add_elements(vec![kv("b", 4, 15)])
                .advance_watermark_to(19)
                .advance_watermark_to(20),
        )
        .apply("Window", WindowInto::new(FixedWindows::of(10)))
        .combine_per_key("Sum", combine::Sum::new());
    let steps = transcript(&p, &sums).unwrap();
    let text = show(&steps);
    assert_eq!(steps.len(), 7, "{text}");
    let events: Vec<StepEvent> = steps.iter().map(|s| s.event.clone()).collect();
    assert_eq!(events[1], StepEvent::AdvanceWatermark { to: Timestamp(5) });
    assert_eq!(events[6], StepEvent::AdvanceWatermark { to: Timestamp::MAX }, "the runner ends the stream at +inf");
    assert!(matches!(&events[0], StepEvent::AddElements { elements } if elements.len() == 3), "{text}");
    // Step by step: nothing, nothing (5 is inside [0, 10)), [0, 10) at 10, nothing, nothing
    // (19 is the max timestamp of [10, 20), not past it), [10, 20) at 20, nothing at +inf.
    let expected: Vec<Vec<Pane<(String, i64)>>> = vec![
        vec![],
        vec![],
        vec![on_time("a", 3, (0, 10), true)],
        vec![],
        vec![],
        vec![on_time("b", 7, (10, 20), true)],
        vec![],
    ];
    for (i, want) in expected.iter().enumerate() {
        assert_eq!(&panes(&steps[i]), want, "step {i}:\n{text}");
    }
    // The output watermark follows the input, held at the end of a window with buffered data.
    let marks: Vec<Timestamp> = steps.iter().map(|s| s.watermark).collect();
    assert_eq!(
        marks,
        vec![Timestamp::MIN, Timestamp(5), Timestamp(10), Timestamp(10), Timestamp(19), Timestamp(20), Timestamp::MAX],
        "{text}"
    );
}

/// Data behind the watermark but within the allowed lateness fires a LATE pane in the step it
/// arrives; once the window has expired, data for it is dropped and counted.
#[test]
fn late_data_fires_a_late_pane_within_allowed_lateness_and_is_dropped_and_counted_beyond() {
    let p = Pipeline::new(options());
    let sums = p
        .apply(
            "Events",
            TestStream::new()
                .add_elements(vec![kv("a", 1, 1)])
                .advance_watermark_to(10)
                .add_elements(vec![kv("a", 5, 3)])
                .advance_watermark_to(20)
                .add_elements(vec![kv("a", 7, 4), kv("b", 1, 25)])
                .advance_watermark_to_infinity(),
        )
        .apply("Window", WindowInto::new(FixedWindows::of(10)).with_allowed_lateness(10))
        .combine_per_key("Sum", combine::Sum::new());
    let mut recorder = Recorder::new(&p);
    let capture = recorder.capture(&sums);
    let recording = recorder.run().unwrap();
    let steps = recording.steps(&capture);
    let text = show(&steps);
    assert_eq!(steps.len(), 6, "{text}");
    let w = Window::interval(0, 10);
    assert_eq!(panes(&steps[0]), vec![], "{text}");
    assert_eq!(panes(&steps[1]), vec![on_time("a", 1, (0, 10), false)], "{text}");
    // The late element (3 < watermark 10, but 10 <= 9 + 10) fires a LATE pane at once.
    assert_eq!(
        panes(&steps[2]),
        vec![(("a".to_string(), 5), w, PaneTiming::Late, 1, false, false, Timestamp(9))],
        "{text}"
    );
    assert_eq!(steps[2].outputs[0].pane.nonspeculative_index, 1);
    // At 20 the window expires (9 + 10 < 20); no data arrived since the last pane, so no final
    // pane (closing behaviour FIRE_IF_NON_EMPTY).
    assert_eq!(panes(&steps[3]), vec![], "{text}");
    // Now data for [0, 10) is dropped; [20, 30) is fine.
    assert_eq!(panes(&steps[4]), vec![], "{text}");
    // The jump to +inf passes the end of [20, 30) and expires it at once: one pane, on time and last.
    assert_eq!(panes(&steps[5]), vec![on_time("b", 1, (20, 30), true)], "{text}");
    assert_eq!(recording.result().counter("dropped_due_to_lateness"), 1);
    assert_eq!(recording.result().state(), JobState::Done);
}

/// The same elements in another order, within and across element events before the watermark
/// passes, give the same panes at the same steps, whatever the shuffling seed.
#[test]
fn reordered_input_gives_the_same_panes() {
    let run = |order: &[Vec<((String, i64), i64)>], seed: u64| {
        let p = Pipeline::new(options().with_seed(seed));
        let mut stream = TestStream::new();
        for batch in order {
            stream = stream.add_elements(batch.clone());
        }
        let grouped = p
            .apply("Events", stream.advance_watermark_to(10).advance_watermark_to(20))
            .apply("Window", WindowInto::new(FixedWindows::of(10)))
            .group_by_key("Group")
            .map("Sort", |(k, mut vs): (String, Vec<i64>)| {
                vs.sort();
                (k, vs)
            });
        let steps = transcript(&p, &grouped).unwrap();
        steps[order.len()..].iter().map(panes).collect::<Vec<_>>()
    };
    let forward = vec![vec![kv("a", 1, 1), kv("a", 2, 5), kv("b", 3, 12)], vec![kv("a", 4, 9), kv("b", 5, 19)]];
    let backward = vec![vec![kv("b", 5, 19), kv("a", 4, 9)], vec![kv("b", 3, 12), kv("a", 2, 5), kv("a", 1, 1)]];
    let one_by_one: Vec<Vec<_>> = forward.concat().into_iter().rev().map(|e| vec![e]).collect();
    let reference = run(&forward, 1);
    assert_eq!(reference[0].len(), 1, "{reference:?}");
    assert_eq!(reference[1].len(), 1, "{reference:?}");
    for seed in [1, 2, 3] {
        assert_eq!(run(&forward, seed), reference);
        assert_eq!(run(&backward, seed), reference);
        assert_eq!(run(&one_by_one, seed), reference);
    }
}

/// A grouping's buffered data holds its output watermark back, so a downstream grouping does not
/// advance past data still to come: with the EARLIEST timestamp combiner the first grouping's
/// output for [0, 10) is at 3, and the second grouping (windows of 5) must still accept it after
/// the input watermark passed 7.
#[test]
fn watermark_holds_keep_a_downstream_grouping_from_firing_early_or_dropping() {
    let p = Pipeline::new(options());
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
    let second =
        first.apply("Rewindow", WindowInto::new(FixedWindows::of(5))).combine_per_key("Second", combine::Sum::new());
    let mut recorder = Recorder::new(&p);
    let first_capture = recorder.capture(&first);
    let second_capture = recorder.capture(&second);
    let recording = recorder.run().unwrap();
    let firsts = recording.steps(&first_capture);
    let seconds = recording.steps(&second_capture);
    let text = format!("{}\n{}", show(&firsts), show(&seconds));
    assert_eq!(firsts.len(), 4, "{text}");
    // After the watermark reaches 7, the first grouping holds [0, 10)'s data from 3: its output
    // watermark is 3, not 7, and so is the second grouping's input.
    assert_eq!(firsts[1].event, StepEvent::AdvanceWatermark { to: Timestamp(7) });
    assert_eq!(firsts[1].watermark, Timestamp(3), "{text}");
    assert!(seconds[1].watermark <= Timestamp(3), "{text}");
    assert!(seconds[1].outputs.is_empty(), "{text}");
    // At 12 the first grouping fires at 3; the second gets it on time and fires [0, 5) in the
    // same step, since its input watermark then moves to 12.
    assert_eq!(
        panes(&firsts[2]),
        vec![(("a".to_string(), 3), Window::interval(0, 10), PaneTiming::OnTime, 0, true, true, Timestamp(3))],
        "{text}"
    );
    assert_eq!(panes(&seconds[2]), vec![on_time("a", 3, (0, 5), true)], "{text}");
    assert_eq!(recording.result().counter("dropped_due_to_lateness"), 0, "{text}");
}

/// Processing time comes from the test clock: it starts at 0 and moves only on the stream's
/// processing-time events, and a processing-time trigger fires in the step where it is due.
#[test]
fn processing_time_trigger_fires_when_the_test_clock_reaches_it() {
    let p = Pipeline::new(options());
    let sums = p
        .apply(
            "Events",
            TestStream::new()
                .add_elements(vec![kv("a", 1, 1)])
                .advance_processing_time(5)
                .add_elements(vec![kv("a", 2, 2)])
                .advance_processing_time(5)
                .add_elements(vec![kv("a", 4, 3)])
                .advance_processing_time(20),
        )
        .apply(
            "Window",
            WindowInto::new(GlobalWindows::of())
                .triggering(Triggers::repeatedly(AfterProcessingTime::past_first_element_in_pane().plus_delay_of(10)))
                .discarding_fired_panes(),
        )
        .combine_per_key("Sum", combine::Sum::new());
    let steps = transcript(&p, &sums).unwrap();
    let text = show(&steps);
    assert_eq!(steps.len(), 7, "{text}");
    let times: Vec<i64> = steps.iter().map(|s| s.processing_time.0).collect();
    assert_eq!(times, vec![0, 5, 5, 10, 10, 30, 30], "{text}");
    let values: Vec<Vec<(String, i64)>> = steps.iter().map(|s| s.values()).collect();
    // The first element at processing time 0 sets a timer for 10: due at step 3. The third
    // element, at 10, opens a new pane due at 20: fired by the advance to 30. At +inf the global
    // window ends: its ON_TIME pane fires although empty (on-time behaviour FIRE_ALWAYS).
    let expected: Vec<Vec<(String, i64)>> =
        vec![vec![], vec![], vec![], vec![("a".into(), 3)], vec![], vec![("a".into(), 4)], vec![("a".into(), 0)]];
    assert_eq!(values, expected, "{text}");
    assert_eq!(steps[3].outputs[0].pane.timing, PaneTiming::Early, "{text}");
    assert_eq!(steps[5].outputs[0].pane.index, 1, "{text}");
    let last = steps[6].outputs[0].pane;
    assert_eq!((last.timing, last.index, last.is_last), (PaneTiming::OnTime, 2, true), "{text}");
}

/// Without a TestStream, a transcript has no steps to report.
#[test]
fn transcript_needs_a_test_stream() {
    let p = Pipeline::new(options());
    let xs = p.apply("Create", Create::of(vec![1, 2, 3]));
    let err = transcript(&p, &xs).unwrap_err().to_string();
    assert!(err.contains("TestStream"), "{err}");
}

/// Bounded inputs are read before the first event; what they cause is the `Start` step.
#[test]
fn bounded_sources_are_read_before_the_first_event() {
    let p = Pipeline::new(options());
    let stream = p.apply("Stream", TestStream::new().add_elements(vec![(10i64, 1)]));
    let fixed = p.apply("Fixed", Create::of(vec![1i64, 2]));
    let both = p.apply_to("Both", vec![stream, fixed], Flatten);
    let steps = transcript(&p, &both).unwrap();
    let text = show(&steps);
    assert_eq!(steps.len(), 3, "{text}");
    assert_eq!(steps[0].event, StepEvent::Start);
    let mut start = steps[0].values();
    start.sort();
    assert_eq!(start, vec![1, 2]);
    assert_eq!(steps[1].values(), vec![10]);
    // The Flatten's watermark is the stream's (the Create's went to +inf at once).
    assert_eq!(steps[1].watermark, Timestamp::MIN);
    assert_eq!(steps[2].watermark, Timestamp::MAX);
}

/// A pipeline with a TestStream, run normally, gives the same results as its transcript and
/// works with side inputs read from bounded sources.
#[test]
fn test_stream_runs_with_pipeline_run_and_side_inputs() {
    let p = Pipeline::new(options());
    let factor = View::as_singleton(&p.apply("Factor", Create::of(vec![10i64])));
    let read = factor.clone();
    p.apply("Events", TestStream::new().add_elements(vec![kv("a", 1, 1), kv("a", 2, 3)]).advance_watermark_to(20))
        .apply("Window", WindowInto::new(FixedWindows::of(10)))
        .combine_per_key("Sum", combine::Sum::new())
        .apply(
            "Scale",
            ParDo::from_fn(move |(k, v): (String, i64), ctx: &mut DoFnContext<'_, '_, (String, i64)>| {
                let f = *ctx.side_input(&read)?;
                ctx.emit((k, v * f));
                Ok(())
            })
            .with_side_input(&factor),
        )
        .apply("Check", PAssert::equal_in_any_order(vec![("a".to_string(), 30i64)]));
    let result = p.run().unwrap();
    assert_eq!(result.state(), JobState::Done);
}

/// A TestStream whose script breaks Beam's rules is a construction error naming the transform.
#[test]
fn test_stream_script_errors_name_the_transform() {
    let p = Pipeline::new(options());
    p.apply(
        "Backwards",
        TestStream::<i64>::new().advance_watermark_to(10).advance_watermark_to(5).advance_processing_time(0),
    );
    p.apply("AfterEnd", TestStream::<i64>::new().advance_watermark_to_infinity().add_elements(vec![(1, 1)]));
    let err = p.run().unwrap_err().to_string();
    assert!(err.contains("'Backwards'") && err.contains("watermark must advance"), "{err}");
    assert!(err.contains("positive amount"), "{err}");
    assert!(err.contains("'AfterEnd'") && err.contains("no event may follow"), "{err}");
}

/// The direct runner refuses two TestStreams (each would own the clock), naming both.
#[test]
fn two_test_streams_are_refused_naming_both() {
    let p = Pipeline::new(options());
    let a = p.apply("StreamA", TestStream::new().add_elements(vec![(1i64, 1)]));
    let b = p.apply("StreamB", TestStream::new().add_elements(vec![(2i64, 1)]));
    p.apply_to("Both", vec![a, b], Flatten);
    let err = p.run().unwrap_err().to_string();
    assert!(err.contains("'StreamA'") && err.contains("'StreamB'") && err.contains("one TestStream"), "{err}");
}

/// The graph of a TestStream is plain data: its events (element counts, watermark and
/// processing-time advances) are in the payload.
#[test]
fn test_stream_events_are_data_in_the_graph() {
    let p = Pipeline::new(options());
    let out = p.apply(
        "Events",
        TestStream::new().add_elements(vec![(1i64, 1), (2, 2)]).advance_watermark_to(7).advance_processing_time(3),
    );
    let g = p.graph();
    let t = &g.transforms["Events"];
    assert_eq!(t.urn, runnel::model::urns::TEST_STREAM);
    let payload: runnel::model::TestStreamPayload = t.payload_as().unwrap();
    use runnel::model::TestStreamEvent as E;
    assert_eq!(
        payload.events,
        vec![
            E::AddElements { count: 2 },
            E::AdvanceWatermark { watermark: Timestamp(7) },
            E::AdvanceProcessingTime { advance_ms: 3 }
        ]
    );
    assert_eq!(out.boundedness(), runnel::model::Boundedness::Unbounded);
    let back = runnel::model::Graph::from_json(&g.to_json()).unwrap();
    assert_eq!(back, g);
}

/// A Beam-style trigger transcript: early firings by processing time, the on-time pane, late
/// firings per element, accumulating. Each step shows exactly the pane it caused.
#[test]
fn early_on_time_and_late_firings_step_by_step() {
    let p = Pipeline::new(options());
    let sums = p
        .apply(
            "Events",
            TestStream::new()
                .add_elements(vec![kv("a", 1, 1), kv("a", 2, 2)])
                .advance_processing_time(5)
                .add_elements(vec![kv("a", 4, 3)])
                .advance_watermark_to(10)
                .add_elements(vec![kv("a", 8, 4)])
                .advance_watermark_to(200),
        )
        .apply(
            "Window",
            WindowInto::new(FixedWindows::of(10))
                .triggering(
                    AfterWatermark::past_end_of_window()
                        .with_early_firings(AfterProcessingTime::past_first_element_in_pane().plus_delay_of(5))
                        .with_late_firings(AfterCount::of(1)),
                )
                .accumulating_fired_panes()
                .with_allowed_lateness(100),
        )
        .combine_per_key("Sum", combine::Sum::new());
    let steps = transcript(&p, &sums).unwrap();
    let text = show(&steps);
    let w = Window::interval(0, 10);
    let pane = |v: i64, timing, index, first, last| (("a".to_string(), v), w, timing, index, first, last, Timestamp(9));
    let expected = vec![
        // add 1@1, 2@2: the early timer is set for processing time 5.
        vec![],
        // processing time 5: the EARLY pane.
        vec![pane(3, PaneTiming::Early, 0, true, false)],
        // add 4@3: a new early timer for 10, which never comes.
        vec![],
        // watermark 10 passes 9: the ON_TIME pane, accumulating.
        vec![pane(7, PaneTiming::OnTime, 1, false, false)],
        // add 8@4, late: a LATE pane at once (late firings after each element).
        vec![pane(15, PaneTiming::Late, 2, false, false)],
        // watermark 200 passes 9 + 100: the window expires; nothing new, so no final pane.
        vec![],
        // +inf: nothing left.
        vec![],
    ];
    assert_eq!(steps.iter().map(panes).collect::<Vec<_>>(), expected, "{text}");
}

/// A windowed side input in streaming: a main element waits only until the side input's
/// watermark passes the end of its window, then reads that window's view; later windows wait on.
#[test]
fn windowed_side_input_releases_main_input_window_by_window() {
    let p = Pipeline::new(options());
    let windowed = p
        .apply(
            "Events",
            TestStream::new()
                .add_elements(vec![kv("a", 1, 1), kv("a", 2, 5), kv("b", 3, 12)])
                .advance_watermark_to(10)
                .add_elements(vec![kv("b", 4, 15)])
                .advance_watermark_to(20),
        )
        .apply("Window", WindowInto::new(FixedWindows::of(10)));
    let totals =
        windowed.map("Values", |(_, v): (String, i64)| v).apply("Total", Combine::globally(combine::Sum::new()));
    let total = View::as_singleton(&totals);
    let read = total.clone();
    let shares = windowed.apply(
        "Share",
        ParDo::from_fn(move |(k, v): (String, i64), ctx: &mut DoFnContext<'_, '_, (String, i64, i64)>| {
            let t = *ctx.side_input(&read)?;
            ctx.emit((k, v, t));
            Ok(())
        })
        .with_side_input(&total),
    );
    let steps = transcript(&p, &shares).unwrap();
    let text = show(&steps);
    let sorted = |s: &Step<(String, i64, i64)>| {
        let mut v = s.values();
        v.sort();
        v
    };
    let got: Vec<Vec<(String, i64, i64)>> = steps.iter().map(sorted).collect();
    let expected: Vec<Vec<(String, i64, i64)>> = vec![
        vec![],
        vec![("a".into(), 1, 3), ("a".into(), 2, 3)],
        vec![],
        vec![("b".into(), 3, 7), ("b".into(), 4, 7)],
        vec![],
    ];
    assert_eq!(got, expected, "{text}");
    // The output watermark never passes an element still waiting (b@12).
    assert!(steps[1].watermark <= Timestamp(12) && steps[2].watermark <= Timestamp(12), "{text}");
    assert_eq!(steps[3].watermark, Timestamp(20), "{text}");
}
