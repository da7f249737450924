//! A job running on a thread of its own ([`PipelineHandle`]) and what a finished job reports
//! ([`PipelineResult`]).

use crate::error::PipelineError;
use runnel_model::exec::Job;
use runnel_model::metrics::MetricsSnapshot;
use runnel_runner_core::runner::CancelSignal;
use runnel_runner_core::{JobState, Runner, RunnerOptions};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::thread::JoinHandle;
use std::time::Duration;

/// A pipeline running on a thread of its own (see [`Pipeline::run_async`]).
///
/// Dropping the handle of a job that has not finished cancels it.
pub struct PipelineHandle {
    cancel: CancelSignal,
    outcome: Receiver<Result<PipelineResult, PipelineError>>,
    thread: Option<JoinHandle<()>>,
    result: Option<Result<PipelineResult, PipelineError>>,
}

impl PipelineHandle {
    pub(crate) fn spawn(job: Job, runner: Box<dyn Runner + Send>, mut options: RunnerOptions) -> Self {
        let cancel = CancelSignal::new();
        options.cancel = cancel.clone();
        let (tx, outcome) = std::sync::mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("runnel-job".into())
            .spawn(move || {
                let result = runner
                    .run(job, &options)
                    .map(|r| PipelineResult { state: r.state, metrics: r.metrics })
                    .map_err(PipelineError::from);
                let _ = tx.send(result);
            })
            .expect("the job thread starts");
        PipelineHandle { cancel, outcome, thread: Some(thread), result: None }
    }

    /// A handle of a job that already ended with `result`.
    pub(crate) fn finished(result: PipelineResult) -> Self {
        let (_, outcome) = std::sync::mpsc::channel();
        PipelineHandle { cancel: CancelSignal::new(), outcome, thread: None, result: Some(Ok(result)) }
    }

    /// Asks the job to stop; it ends in [`JobState::Cancelled`] at its next check (a job that
    /// already finished keeps its state).
    pub fn cancel(&self) {
        self.cancel.cancel();
    }

    /// Whether the job has ended (done, cancelled or failed).
    pub fn is_finished(&mut self) -> bool {
        self.wait_until_finish_timeout(Duration::ZERO)
    }

    /// Waits up to `timeout` for the job to end; true if it has.
    pub fn wait_until_finish_timeout(&mut self, timeout: Duration) -> bool {
        if self.result.is_some() {
            return true;
        }
        match self.outcome.recv_timeout(timeout) {
            Ok(result) => {
                self.result = Some(result);
                self.join();
                true
            }
            Err(RecvTimeoutError::Timeout) => false,
            Err(RecvTimeoutError::Disconnected) => {
                self.join();
                unreachable!("the job thread ended without a result and without panicking")
            }
        }
    }

    /// Waits for the job to end and returns how it ended.
    pub fn wait_until_finish(mut self) -> Result<PipelineResult, PipelineError> {
        if self.result.is_none() {
            let result = self.outcome.recv();
            self.join();
            self.result = Some(result.unwrap_or_else(|_| unreachable!("the job thread ended without a result")));
        }
        self.result.take().expect("result set above")
    }

    /// Cancels the job and waits for it to end.
    pub fn cancel_and_wait(self) -> Result<PipelineResult, PipelineError> {
        self.cancel();
        self.wait_until_finish()
    }

    /// Joins the job thread, re-raising its panic (a runner bug: user code panics are errors).
    fn join(&mut self) {
        if let Some(thread) = self.thread.take() {
            if let Err(panic) = thread.join() {
                std::panic::resume_unwind(panic);
            }
        }
    }
}

impl Drop for PipelineHandle {
    fn drop(&mut self) {
        if self.result.is_none() {
            self.cancel.cancel();
        }
    }
}

impl std::fmt::Debug for PipelineHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PipelineHandle").field("finished", &self.result.is_some()).finish()
    }
}

/// What a finished pipeline reports.
#[derive(Clone, Debug)]
pub struct PipelineResult {
    state: JobState,
    metrics: MetricsSnapshot,
}

impl PipelineResult {
    pub(crate) fn new(state: JobState, metrics: MetricsSnapshot) -> Self {
        PipelineResult { state, metrics }
    }

    /// How the job ended.
    pub fn state(&self) -> JobState {
        self.state
    }

    /// All metrics, keyed by transform and name.
    pub fn metrics(&self) -> &MetricsSnapshot {
        &self.metrics
    }

    /// A counter summed over every transform that reported it (0 if none did).
    pub fn counter(&self, name: &str) -> i64 {
        self.metrics.counter(name)
    }
}
