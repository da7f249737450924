//! The runner trait, its options and its results.

use runnel_model::exec::Job;
use runnel_model::metrics::MetricsSnapshot;
use runnel_model::GraphError;
use std::collections::BTreeMap;
use thiserror::Error;

/// Options every runner receives (the SDK parses them from the command line).
#[derive(Clone, Debug)]
pub struct RunnerOptions {
    /// Direct runner: check that every element round-trips through its coder, and process
    /// bundles in shuffled order.
    pub direct_checks: bool,
    /// Seed for shuffled order (fixed seeds make a failure reproducible).
    pub seed: u64,
    /// Elements per bundle that sources emit.
    pub bundle_size: usize,
    /// Worker count for runners that have workers.
    pub workers: Option<usize>,
    /// Flags for runners not known to this crate.
    pub extra: BTreeMap<String, String>,
}

impl Default for RunnerOptions {
    fn default() -> Self {
        RunnerOptions { direct_checks: true, seed: 0x5eed, bundle_size: 1024, workers: None, extra: BTreeMap::new() }
    }
}

/// How a job ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JobState {
    /// Every transform finished.
    Done,
    /// Cancelled before the end.
    Cancelled,
}

/// What a finished job reports.
#[derive(Clone, Debug)]
pub struct JobResult {
    /// How it ended.
    pub state: JobState,
    /// Every metric reported, merged.
    pub metrics: MetricsSnapshot,
}

/// Why a job failed.
#[derive(Debug, Error)]
pub enum RunError {
    /// User code returned an error or panicked.
    #[error("transform '{transform}' failed: {message}")]
    UserCode {
        /// Unique name of the transform.
        transform: String,
        /// The error or panic message.
        message: String,
    },
    /// The graph is malformed.
    #[error("invalid pipeline graph: {0}")]
    Graph(#[from] GraphError),
    /// The runner cannot run this pipeline; nothing was run.
    #[error("the {runner} runner cannot run this pipeline: {reason}")]
    Refused {
        /// The runner.
        runner: &'static str,
        /// Why.
        reason: String,
    },
    /// A graph and its bindings disagree (a bug in the SDK or a hand-edited graph).
    #[error("transform '{transform}': {message}")]
    Binding {
        /// The transform.
        transform: String,
        /// What is missing.
        message: String,
    },
}

/// A runner: executes a job.
pub trait Runner {
    /// Its name as given to `--runner`.
    fn name(&self) -> &'static str;
    /// Runs the job to completion.
    fn run(&self, job: Job, options: &RunnerOptions) -> Result<JobResult, RunError>;
}

/// Text of a caught panic payload.
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        format!("panicked: {s}")
    } else if let Some(s) = payload.downcast_ref::<String>() {
        format!("panicked: {s}")
    } else {
        "panicked".to_string()
    }
}
