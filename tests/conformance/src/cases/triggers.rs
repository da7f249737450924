//! Triggers, accumulation and closing/on-time behaviour in streaming, pane by pane: each case
//! drives a TestStream and checks the exact list of panes of one key and window, worked out by
//! hand from Beam's rules (triggers are evaluated once per bundle; an `add_elements` is one
//! bundle).

use crate::run_ok;
use runnel::prelude::*;
use runnel::testing::ExpectedPane;

fn kv(v: i64, t: i64) -> ((String, i64), i64) {
    (("a".to_string(), v), t)
}

const W: (i64, i64) = (0, 10);

fn window() -> Window {
    Window::interval(W.0, W.1)
}

/// Sums of key "a" in fixed windows of 10 ms under `strategy`, fed by `stream`.
fn sums(p: &Pipeline, stream: TestStream<(String, i64)>, strategy: WindowInto) -> PCollection<i64> {
    p.apply("Events", stream)
        .apply("Window", strategy)
        .combine_per_key("Sum", combine::Sum::new())
        .apply("Values", Values)
}

fn fixed() -> WindowInto {
    WindowInto::new(FixedWindows::of(10))
}

/// Repeatedly(AfterCount(2)), discarding: a pane per bundle that brings the count to 2; at the
/// end of the window (no lateness, so also expiry) an empty ON_TIME pane, because on-time panes
/// fire always.
pub fn repeated_count_discarding_then_empty_on_time_pane(options: PipelineOptions) {
    let p = Pipeline::new(options);
    let stream = TestStream::new()
        .add_elements(vec![kv(1, 1)])
        .add_elements(vec![kv(2, 2)])
        .add_elements(vec![kv(4, 3), kv(8, 4)])
        .advance_watermark_to(10);
    sums(&p, stream, fixed().triggering(Triggers::repeatedly(AfterCount::of(2)))).apply(
        "Check",
        PAssert::panes_in_window(
            window(),
            vec![
                ExpectedPane::early(0, vec![3]),
                ExpectedPane::early(1, vec![12]),
                ExpectedPane::on_time(2, vec![0]).last(),
            ],
        ),
    );
    run_ok(&p);
}

/// On-time behaviour FIRE_IF_NON_EMPTY drops that empty ON_TIME pane.
pub fn on_time_behaviour_fire_if_non_empty_skips_the_empty_pane(options: PipelineOptions) {
    let p = Pipeline::new(options);
    let stream =
        TestStream::new().add_elements(vec![kv(1, 1), kv(2, 2)]).add_elements(vec![kv(4, 3)]).advance_watermark_to(10);
    sums(
        &p,
        stream,
        fixed()
            .triggering(Triggers::repeatedly(AfterCount::of(2)))
            .with_on_time_behavior(OnTimeBehavior::FireIfNonEmpty),
    )
    .apply(
        "Check",
        PAssert::panes_in_window(
            window(),
            vec![ExpectedPane::early(0, vec![3]), ExpectedPane::on_time(1, vec![4]).last()],
        ),
    );
    run_ok(&p);
}

/// AfterEach(AfterCount(1), AfterCount(2)), accumulating: one pane, then one more after two
/// more elements, then the trigger has finished: the window is closed, later data is dropped and
/// counted, and nothing fires at its end.
pub fn after_each_fires_its_triggers_in_turn_then_closes_the_window(options: PipelineOptions) {
    let p = Pipeline::new(options);
    let stream = TestStream::new()
        .add_elements(vec![kv(1, 1)])
        .add_elements(vec![kv(2, 2)])
        .add_elements(vec![kv(4, 3)])
        .add_elements(vec![kv(8, 4)])
        .advance_watermark_to(10);
    sums(
        &p,
        stream,
        fixed().triggering(Triggers::after_each(vec![AfterCount::of(1), AfterCount::of(2)])).accumulating_fired_panes(),
    )
    .apply(
        "Check",
        PAssert::panes_in_window(
            window(),
            vec![ExpectedPane::early(0, vec![1]), ExpectedPane::early(1, vec![7]).last()],
        ),
    );
    let result = run_ok(&p);
    assert_eq!(result.counter("dropped_due_to_closed_window"), 1);
}

/// Repeatedly(AfterCount(1)).or_finally(AfterCount(3)), accumulating: a pane per element until
/// the third, which is the last.
pub fn or_finally_stops_the_main_trigger(options: PipelineOptions) {
    let p = Pipeline::new(options);
    let stream = TestStream::new()
        .add_elements(vec![kv(1, 1)])
        .add_elements(vec![kv(2, 2)])
        .add_elements(vec![kv(4, 3)])
        .advance_watermark_to(10);
    sums(
        &p,
        stream,
        fixed()
            .triggering(Triggers::repeatedly(AfterCount::of(1)).or_finally(AfterCount::of(3)))
            .accumulating_fired_panes(),
    )
    .apply(
        "Check",
        PAssert::panes_in_window(
            window(),
            vec![
                ExpectedPane::early(0, vec![1]),
                ExpectedPane::early(1, vec![3]),
                ExpectedPane::early(2, vec![7]).last(),
            ],
        ),
    );
    run_ok(&p);
}

/// Never: nothing fires until the window expires, then one final pane with everything (ON_TIME:
/// the watermark passed the end while the window held data, and no pane fired before).
pub fn never_fires_only_the_final_pane_at_expiry(options: PipelineOptions) {
    let p = Pipeline::new(options);
    let stream = TestStream::new()
        .add_elements(vec![kv(1, 1)])
        .advance_watermark_to(12)
        .add_elements(vec![kv(2, 2)])
        .advance_watermark_to(20);
    sums(&p, stream, fixed().triggering(Triggers::never()).with_allowed_lateness(5))
        .apply("Check", PAssert::panes_in_window(window(), vec![ExpectedPane::on_time(0, vec![3]).last()]));
    run_ok(&p);
}

/// Always: a pane for every bundle; discarding; the empty ON_TIME pane at the end.
pub fn always_fires_for_every_bundle(options: PipelineOptions) {
    let p = Pipeline::new(options);
    let stream =
        TestStream::new().add_elements(vec![kv(1, 1), kv(2, 2)]).add_elements(vec![kv(4, 3)]).advance_watermark_to(10);
    sums(&p, stream, fixed().triggering(Triggers::always())).apply(
        "Check",
        PAssert::panes_in_window(
            window(),
            vec![
                ExpectedPane::early(0, vec![3]),
                ExpectedPane::early(1, vec![4]),
                ExpectedPane::on_time(2, vec![0]).last(),
            ],
        ),
    );
    run_ok(&p);
}

/// Repeatedly(AfterAny(AfterCount(3), AfterProcessingTime(+5 ms))): whichever comes first.
pub fn after_any_fires_on_the_first_of_its_triggers(options: PipelineOptions) {
    let p = Pipeline::new(options);
    let stream = TestStream::new()
        .add_elements(vec![kv(1, 1)])
        .advance_processing_time(5)
        .add_elements(vec![kv(2, 2), kv(4, 3), kv(8, 4)])
        .advance_watermark_to(10);
    let trigger = Triggers::repeatedly(Triggers::after_any(vec![
        AfterCount::of(3),
        AfterProcessingTime::past_first_element_in_pane().plus_delay_of(5),
    ]));
    sums(&p, stream, fixed().triggering(trigger)).apply(
        "Check",
        PAssert::panes_in_window(
            window(),
            vec![
                ExpectedPane::early(0, vec![1]),
                ExpectedPane::early(1, vec![14]),
                ExpectedPane::on_time(2, vec![0]).last(),
            ],
        ),
    );
    run_ok(&p);
}

/// AfterAll(AfterCount(2), AfterProcessingTime(+5 ms)), once: it fires when both have fired.
pub fn after_all_waits_for_all_of_its_triggers(options: PipelineOptions) {
    let p = Pipeline::new(options);
    let stream = TestStream::new()
        .add_elements(vec![kv(1, 1), kv(2, 2)])
        .advance_processing_time(3)
        .add_elements(vec![kv(4, 3)])
        .advance_processing_time(2)
        .advance_watermark_to(10);
    let trigger = Triggers::after_all(vec![
        AfterCount::of(2),
        AfterProcessingTime::past_first_element_in_pane().plus_delay_of(5),
    ]);
    sums(&p, stream, fixed().triggering(trigger).accumulating_fired_panes())
        .apply("Check", PAssert::panes_in_window(window(), vec![ExpectedPane::early(0, vec![7]).last()]));
    run_ok(&p);
}

/// Aligned processing time: the pane fires at the next multiple of the period after the first
/// element, not a fixed delay after it.
pub fn aligned_processing_time_fires_at_the_period_boundary(options: PipelineOptions) {
    let p = Pipeline::new(options);
    let stream = TestStream::new()
        .advance_processing_time(3)
        .add_elements(vec![kv(1, 1)])
        .advance_processing_time(6) // now 9: before the boundary at 10
        .add_elements(vec![kv(2, 2)])
        .advance_processing_time(1) // now 10
        .advance_watermark_to(10);
    let trigger = Triggers::repeatedly(AfterProcessingTime::past_first_element_in_pane().aligned_to(10, 0));
    sums(&p, stream, fixed().triggering(trigger)).apply(
        "Check",
        PAssert::panes_in_window(
            window(),
            vec![ExpectedPane::early(0, vec![3]), ExpectedPane::on_time(1, vec![0]).last()],
        ),
    );
    run_ok(&p);
}

/// Closing behaviour FIRE_ALWAYS: the final pane at expiry fires even with nothing new.
pub fn closing_behaviour_fire_always_emits_the_final_pane(options: PipelineOptions) {
    let p = Pipeline::new(options);
    let stream = TestStream::new().add_elements(vec![kv(1, 1)]).advance_watermark_to(10).advance_watermark_to(30);
    sums(&p, stream, fixed().with_allowed_lateness(10).with_closing_behavior(ClosingBehavior::FireAlways)).apply(
        "Check",
        PAssert::panes_in_window(
            window(),
            vec![ExpectedPane::on_time(0, vec![1]), ExpectedPane::late(1, vec![0]).last()],
        ),
    );
    run_ok(&p);
}

/// Retracting GroupByKey: after every pane, summing the grouped values with retractions
/// subtracted gives the accumulating result of that pane.
pub fn retracting_group_by_key_sum_equals_accumulating_in_every_pane(options: PipelineOptions) {
    let build = |p: &Pipeline, retracting: bool| {
        let stream = TestStream::new()
            .add_elements(vec![kv(1, 1)])
            .add_elements(vec![kv(2, 2)])
            .advance_watermark_to(10)
            .add_elements(vec![kv(4, 3)])
            .advance_watermark_to(40);
        let strategy = fixed()
            .triggering(
                AfterWatermark::past_end_of_window()
                    .with_early_firings(AfterCount::of(1))
                    .with_late_firings(AfterCount::of(1)),
            )
            .with_allowed_lateness(20);
        let strategy = if retracting { strategy.retracting_fired_panes() } else { strategy.accumulating_fired_panes() };
        p.apply("Events", stream).apply("Window", strategy).group_by_key("Group").apply(
            "SignedSum",
            ParDo::from_fn(|(_, vs): (String, Vec<i64>), ctx: &mut DoFnContext<'_, '_, (i64, i64)>| {
                let s: i64 = vs.iter().sum();
                let index = ctx.pane().index;
                ctx.emit((index, if ctx.is_retraction() { -s } else { s }));
                Ok(())
            }),
        )
    };
    // Accumulating: panes 0..3 hold 1, 3, 3 (on time, nothing new), 7 (late).
    let expected_running = vec![(0i64, 1i64), (1, 3), (2, 3), (3, 7)];
    let p = Pipeline::new(options.clone());
    build(&p, false).apply("Check", PAssert::equal_in_any_order(expected_running.clone()));
    run_ok(&p);

    let p = Pipeline::new(options);
    build(&p, true).apply(
        "Check",
        // Retractions included: value assertions would leave them out.
        runnel::testing::Assert::on_elements(move |observed: &[runnel::testing::Observed<(i64, i64)>]| {
            let signed: Vec<(i64, i64)> = observed.iter().map(|o| o.value).collect();
            let mut running = Vec::new();
            let mut net = 0;
            for index in 0..4 {
                net += signed.iter().filter(|(i, _)| *i == index).map(|(_, s)| s).sum::<i64>();
                running.push((index, net));
            }
            if running == expected_running && signed.len() == 7 {
                Ok(())
            } else {
                Err(format!("running net sums {running:?} from {signed:?}"))
            }
        }),
    );
    run_ok(&p);
}

/// Session windows in streaming: sessions merge as bridging data arrives ([0,10) and [20,30) are
/// joined by [8,18) and [15,25)), and the merged window fires once when the watermark passes its
/// end.
pub fn sessions_merge_in_streaming(options: PipelineOptions) {
    let p = Pipeline::new(options);
    let stream = TestStream::new()
        .add_elements(vec![kv(1, 0), kv(2, 20)])
        .advance_watermark_to(5)
        .add_elements(vec![kv(4, 8), kv(8, 15)])
        .advance_watermark_to(100);
    p.apply("Events", stream)
        .apply("Sessions", WindowInto::new(Sessions::with_gap(10)))
        .combine_per_key("Sum", combine::Sum::new())
        .apply("Values", Values)
        .apply(
            "Check",
            PAssert::panes_in_window(Window::interval(0, 30), vec![ExpectedPane::on_time(0, vec![15i64]).last()]),
        );
    run_ok(&p);
}

/// Combine.globally under a non-default trigger in the global window still gives one output per
/// pane (the default for empty input joins the combine's output, whose trigger is the
/// continuation).
pub fn combine_globally_with_a_trigger_in_the_global_window(options: PipelineOptions) {
    let p = Pipeline::new(options);
    let stream = TestStream::new().add_elements(vec![1i64, 2].into_iter().map(|v| (v, 1)));
    p.apply("Events", stream)
        .apply(
            "Window",
            WindowInto::new(GlobalWindows::of())
                .triggering(Triggers::repeatedly(AfterCount::of(2)))
                .accumulating_fired_panes(),
        )
        .apply("Sum", Combine::globally(combine::Sum::<i64>::new()))
        .apply("Check", PAssert::satisfies(|xs: &[i64]| if xs.contains(&3) { Ok(()) } else { Err(format!("{xs:?}")) }));
    run_ok(&p);
}
