//! The conformance suite on the portable runner through Prism, Beam's Go runner (one Prism for
//! the whole test binary, started on first use; `scripts/prism.sh` installs it), told that it runs
//! streaming pipelines (`--streaming`): TestStream cases run there, with processing-time triggers;
//! cases needing unbounded sources, retractions or user window functions must be refused up
//! front.

use runnel_runner_portable::local_job_service::LocalPrism;
use std::sync::OnceLock;

/// Prism's job endpoint; a Prism that cannot start fails every case with the reason.
fn job_endpoint() -> String {
    static PRISM: OnceLock<Result<LocalPrism, String>> = OnceLock::new();
    match PRISM.get_or_init(LocalPrism::start) {
        Ok(prism) => prism.endpoint().to_string(),
        Err(e) => panic!("cannot start Prism: {e}"),
    }
}

// Where Prism differs from Beam Java (the reference, which Runnel follows). Prism's aggregation
// fires by the watermark "at most twice" (at the end of the window and when it closes) beside its
// triggers, and keeps its own pane flags; each case below must still fail with its difference.
//
// The pane of a session that merged several sessions is marked an early, not-first pane although
// it is the window's only, on-time pane.
const MERGED_SESSION_EARLY: &str = "IntervalWindow { start: 0ms, end: 22ms }), PaneInfo { is_first: false, \
                                    is_last: false, timing: Early";
const MERGED_SESSION_EARLY_TIMING: &str = "IntervalWindow { start: 0ms, end: 22ms }), Early, 21ms";
const MERGED_SESSION_EARLY_STREAMING: &str =
    "15 has inconsistent pane metadata PaneInfo { is_first: false, is_last: false, timing: Early, index: 0";
// A trigger that finished (AfterAll, AfterEach, OrFinally, not repeated) does not close the window:
// Prism fires an on-time pane after it.
const FINISHED_AFTER_ALL_FIRES_ON_TIME: &str = "but got EARLY 0: [7]; ON_TIME 1 (last): [7]";
const FINISHED_AFTER_EACH_FIRES_ON_TIME: &str = "but got EARLY 0: [1]; EARLY 1: [7]; ON_TIME 2 (last): [15]";
const FINISHED_OR_FINALLY_FIRES_ON_TIME: &str =
    "but got EARLY 0: [1]; EARLY 1: [3]; EARLY 2: [7]; ON_TIME 3 (last): [7]";
// No empty on-time pane after early panes (Beam's default on-time behaviour, FIRE_ALWAYS, emits
// one), and no empty final pane at expiry under FIRE_ALWAYS closing.
const NO_EMPTY_ON_TIME_AFTER_ANY: &str = "ON_TIME 2 (last): [0] but got EARLY 0: [1]; EARLY 1: [14]";
const NO_EMPTY_ON_TIME_REPEATED_COUNT: &str = "ON_TIME 2 (last): [0] but got EARLY 0: [3]; EARLY 1: [12]";
const NO_EMPTY_ON_TIME_NOT_LATE: &str = "but got [((\"b\", 1), Interval(IntervalWindow { start: 0ms, end: 10ms }), \
                                         PaneInfo { is_first: true, is_last: false, timing: Early, index: 0, \
                                         nonspeculative_index: -1 }, 9ms)]";
const NO_FINAL_PANE_AT_EXPIRY: &str = "LATE 1 (last): [0] but got ON_TIME 0: [1]";
// `Always` fires once per bundle, and Prism cuts bundles its own way (and adds no on-time pane).
const ALWAYS_PER_PRISM_BUNDLE: &str =
    "expected panes EARLY 0: [3]; EARLY 1: [4]; ON_TIME 2 (last): [0] but got EARLY 0";
// An aligned processing-time trigger does not fire before the watermark on Prism's TestStream clock
// (which starts at the wall clock, where Runnel's starts at 0).
const ALIGNED_PROCESSING_TIME_NOT_FIRED: &str = "EARLY 0: [3]; ON_TIME 1 (last): [0] but got ON_TIME 0 (last): [3]";
// Pane flags: an on-time pane past the allowed lateness is not marked last; a late pane before the
// window closes is marked last.
const ON_TIME_PANE_AT_EXPIRY_NOT_LAST: &str = "but got [((\"a\", 1), Interval(IntervalWindow { start: 0ms, end: 10ms \
                                               }), PaneInfo { is_first: true, is_last: false, timing: OnTime";
const LATE_PANE_MARKED_LAST: &str = "but got [((\"a\", 15), Interval(IntervalWindow { start: 0ms, end: 10ms }), \
                                     PaneInfo { is_first: false, is_last: true, timing: Late, index: 2";
// Output timestamps: EARLIEST stamps the pane with the earliest element even where Beam Java's hold
// is behind the output watermark; LATEST stamps a late pane with its latest element, not the end of
// the window.
const EARLIEST_NOT_HELD_BY_OUTPUT_WATERMARK: &str = "timing: OnTime, index: 0, nonspeculative_index: 0 }, 2ms)";
const LATEST_LATE_PANE_NOT_AT_WINDOW_END: &str = "timing: Late, index: 1, nonspeculative_index: 1 }, 8ms)]";
// After the window closes, an accumulating window fires its whole contents again (twice).
const ACCUMULATING_REFIRES_AFTER_CLOSE: &str = "but got [(0, 1), (1, 3), (2, 3), (3, 7), (4, 7), (5, 7)]";
// Refused by Prism itself when preparing the job (features it does not implement).
const PRISM_REFUSES_STATEFUL_TRIGGERS_ON_SESSIONS: &str =
    "the job server refused the pipeline: found 2 uses of features unimplemented in prism";
const PRISM_REFUSES_TRIGGERED_GLOBAL_SIDE_INPUT: &str = "the job server refused the pipeline: found 1 uses of \
                                                         features unimplemented in prism";

runnel_conformance::conformance_suite!(
    prism,
    runnel::PipelineOptions::default()
        .with_runner(runnel::RunnerKind::Portable)
        .with_job_endpoint(job_endpoint())
        .with_streaming(true),
    runnel_conformance::Capabilities::of(&[
        runnel_conformance::Capability::TestStream,
        runnel_conformance::Capability::ProcessingTime,
        runnel_conformance::Capability::RunAsync
    ]),
    deviations: {
        remerge_merges_consumed_windows_again_at_the_next_grouping: MERGED_SESSION_EARLY,
        sessions_merge_per_key_in_batch: MERGED_SESSION_EARLY_TIMING,
        sessions_merge_in_streaming: MERGED_SESSION_EARLY_STREAMING,
        after_all_waits_for_all_of_its_triggers: FINISHED_AFTER_ALL_FIRES_ON_TIME,
        after_each_fires_its_triggers_in_turn_then_closes_the_window: FINISHED_AFTER_EACH_FIRES_ON_TIME,
        or_finally_stops_the_main_trigger: FINISHED_OR_FINALLY_FIRES_ON_TIME,
        after_any_fires_on_the_first_of_its_triggers: NO_EMPTY_ON_TIME_AFTER_ANY,
        repeated_count_discarding_then_empty_on_time_pane: NO_EMPTY_ON_TIME_REPEATED_COUNT,
        the_empty_on_time_pane_fires_only_while_not_late_for_the_output_watermark: NO_EMPTY_ON_TIME_NOT_LATE,
        closing_behaviour_fire_always_emits_the_final_pane: NO_FINAL_PANE_AT_EXPIRY,
        always_fires_for_every_bundle: ALWAYS_PER_PRISM_BUNDLE,
        aligned_processing_time_fires_at_the_period_boundary: ALIGNED_PROCESSING_TIME_NOT_FIRED,
        test_stream_data_beyond_allowed_lateness_is_dropped_and_counted: ON_TIME_PANE_AT_EXPIRY_NOT_LAST,
        test_stream_processing_time_advance_fires_early_pane: LATE_PANE_MARKED_LAST,
        earliest_stamps_panes_only_with_holds_not_behind_the_output_watermark: EARLIEST_NOT_HELD_BY_OUTPUT_WATERMARK,
        latest_stamps_on_time_panes_by_their_holds_and_late_panes_at_the_end_of_the_window:
            LATEST_LATE_PANE_NOT_AT_WINDOW_END,
        retracting_group_by_key_sum_equals_accumulating_in_every_pane: ACCUMULATING_REFIRES_AFTER_CLOSE,
        a_session_closed_by_its_trigger_stays_closed: PRISM_REFUSES_STATEFUL_TRIGGERS_ON_SESSIONS,
        merged_sessions_start_fresh_unless_the_result_already_existed: PRISM_REFUSES_STATEFUL_TRIGGERS_ON_SESSIONS,
        combine_globally_with_a_trigger_in_the_global_window: PRISM_REFUSES_TRIGGERED_GLOBAL_SIDE_INPUT,
    }
);
