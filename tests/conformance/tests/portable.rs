//! The conformance suite on the portable runner, through Beam Python's local job service (one
//! service for the whole test binary, started on first use; it needs the venv that
//! `scripts/beam-venv.sh` installs). The job service is batch only and cannot run Runnel's
//! window functions: cases needing TestStream, unbounded sources, processing time, retractions
//! or user window functions must be refused up front.

use runnel_runner_portable::local_job_service::LocalJobService;
use std::sync::OnceLock;

/// The job service's endpoint; a service that cannot start fails every case with the reason.
fn job_endpoint() -> String {
    static SERVICE: OnceLock<Result<LocalJobService, String>> = OnceLock::new();
    match SERVICE.get_or_init(LocalJobService::start) {
        Ok(service) => service.endpoint().to_string(),
        Err(e) => panic!("cannot start Beam Python's job service: {e}"),
    }
}

// Where Beam Python's runner groups differently from Beam Java's (the reference, which Runnel
// follows): its on-time pane of a window other than the global one is not marked last although
// the window closes with it (allowed lateness zero), it rounds the end of a window ending at or
// before the epoch towards zero (0 ms where Java gives -1 ms), and the end of the global window
// it stamps is 1 ms early. Each such case must still fail with that difference.
const NOT_LAST: &str = "is_last: false, timing: OnTime";
const GLOBAL_END_EARLY: &str = "Global, PaneInfo { is_first: true, is_last: true, timing: OnTime, index: 0, \
                                nonspeculative_index: 0 }, 9223371950454774ms";

runnel_conformance::conformance_suite!(
    portable,
    runnel::PipelineOptions::default().with_runner(runnel::RunnerKind::Portable).with_job_endpoint(job_endpoint()),
    runnel_conformance::Capabilities::of(&[runnel_conformance::Capability::RunAsync]),
    deviations: {
        fixed_windows_combine_globally_gives_no_default_for_empty_windows: NOT_LAST,
        fixed_windows_combine_per_key: NOT_LAST,
        fixed_windows_group_by_key_fires_one_on_time_pane_per_window: NOT_LAST,
        fixed_windows_survive_a_second_grouping: NOT_LAST,
        fixed_windows_with_offset_shift_boundaries: NOT_LAST,
        remerge_merges_consumed_windows_again_at_the_next_grouping: NOT_LAST,
        sliding_windows_combine_counts_per_window: NOT_LAST,
        group_by_key_in_global_window_fires_one_on_time_pane: GLOBAL_END_EARLY,
    }
);
