//! The conformance suite on the portable runner through Prism, Beam's Go runner (one Prism for
//! the whole test binary, started on first use; `scripts/prism.sh` installs it). The portable
//! runner submits batch pipelines only: cases needing TestStream, unbounded sources, processing
//! time, retractions, asynchronous runs or user window functions must be refused up front.

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

// Where Prism differs from Beam Java (the reference, which Runnel follows): the pane of a session
// that merged several sessions is marked an early, not-first pane although it is the window's only,
// on-time pane. Each such case must still fail with that difference.
const MERGED_SESSION_EARLY: &str = "IntervalWindow { start: 0ms, end: 22ms }), PaneInfo { is_first: false, \
                                    is_last: false, timing: Early";
const MERGED_SESSION_EARLY_TIMING: &str = "IntervalWindow { start: 0ms, end: 22ms }), Early, 21ms";

runnel_conformance::conformance_suite!(
    prism,
    runnel::PipelineOptions::default().with_runner(runnel::RunnerKind::Portable).with_job_endpoint(job_endpoint()),
    runnel_conformance::Capabilities::batch_only(),
    deviations: {
        remerge_merges_consumed_windows_again_at_the_next_grouping: MERGED_SESSION_EARLY,
        sessions_merge_per_key_in_batch: MERGED_SESSION_EARLY_TIMING,
    }
);
