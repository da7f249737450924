//! A job cancelled from its pipeline handle (`Pipeline::run_async`, `PipelineHandle::cancel`):
//! the runner sends the job server Cancel, and a job that would run for minutes ends CANCELLED,
//! on Prism and on Beam Python's job service (which marks a job cancelled without stopping its
//! work, a TODO in Beam; the program stops serving it, so its bundles then fail there).

use runnel::prelude::*;
use runnel::JobState;
use runnel_runner_portable::local_job_service::{LocalJobService, LocalPrism};
use std::time::Duration;

fn cancel_on(job_endpoint: &str) {
    let options = PipelineOptions::default().with_runner(RunnerKind::Portable).with_job_endpoint(job_endpoint);
    let p = Pipeline::new(options);
    p.apply("Numbers", Create::of((0..1000i64).collect::<Vec<_>>())).apply(
        "Slow",
        ParDo::from_fn(|x: i64, ctx: &mut DoFnContext<'_, '_, i64>| {
            // 1000 × 200 ms: minutes, unless cancelled.
            std::thread::sleep(Duration::from_millis(200));
            ctx.emit(x);
            Ok(())
        }),
    );
    let mut handle = p.run_async().unwrap();
    std::thread::sleep(Duration::from_secs(2));
    assert!(!handle.is_finished(), "the job ended before it was cancelled");
    handle.cancel();
    // Generous: only a hang fails here, the job ends within a second or two.
    assert!(handle.wait_until_finish_timeout(Duration::from_secs(60)), "the cancelled job did not end");
    assert_eq!(handle.wait_until_finish().unwrap().state(), JobState::Cancelled);
}

#[test]
fn a_job_cancelled_from_its_handle_is_cancelled_on_prism() {
    cancel_on(LocalPrism::start().unwrap().endpoint());
}

#[test]
fn a_job_cancelled_from_its_handle_ends_cancelled_on_beam_pythons_job_service() {
    cancel_on(LocalJobService::start().unwrap().endpoint());
}
