//! The runner trait, its options and its results.

use crate::capability::Capabilities;
use crate::plan::PlanOptions;
use runnel_model::exec::{Batch, ElementOps, Job, UserError};
use runnel_model::metrics::MetricsSnapshot;
use runnel_model::{GraphError, Timestamp};
use std::collections::BTreeMap;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Arc;
use thiserror::Error;

/// Where processing time comes from.
///
/// Runners read processing time only through a clock, so tests can control it. Without one, a
/// runner uses the [`WallClock`] (and the direct runner, for a pipeline with a TestStream, a test
/// clock that only the stream's processing-time events move).
pub trait Clock: Send + Sync + fmt::Debug {
    /// The current processing time.
    fn now(&self) -> Timestamp;
}

/// The system clock: milliseconds since the Unix epoch.
#[derive(Clone, Copy, Debug, Default)]
pub struct WallClock;

impl Clock for WallClock {
    fn now(&self) -> Timestamp {
        let ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0);
        Timestamp(ms)
    }
}

/// A clock that moves only when told to: `set` or `advance` it from a test while a pipeline runs.
#[derive(Debug, Default)]
pub struct ManualClock {
    millis: AtomicI64,
}

impl ManualClock {
    /// A clock reading `start`.
    pub fn new(start: Timestamp) -> Self {
        ManualClock { millis: AtomicI64::new(start.0) }
    }

    /// Moves the clock to `t` (never backwards: an earlier `t` is ignored).
    pub fn set(&self, t: Timestamp) {
        self.millis.fetch_max(t.0, Ordering::SeqCst);
    }

    /// Moves the clock forward by `ms` (saturating at the maximum timestamp).
    pub fn advance(&self, ms: i64) {
        let now = self.now();
        self.set(now.plus(ms.max(0)));
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        Timestamp(self.millis.load(Ordering::SeqCst))
    }
}

/// Asks a running job to stop. Clones share the signal.
#[derive(Clone, Debug, Default)]
pub struct CancelSignal(Arc<AtomicBool>);

impl CancelSignal {
    /// A signal not yet raised.
    pub fn new() -> Self {
        Self::default()
    }

    /// Raises the signal: the job stops at its next check and ends in [`JobState::Cancelled`].
    pub fn cancel(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    /// Whether the signal was raised.
    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

/// Options every runner receives (the SDK parses them from the command line). Options of one
/// runner only live in that runner's own type.
#[derive(Clone, Debug)]
pub struct RunnerOptions {
    /// Elements per bundle that sources emit.
    pub bundle_size: usize,
    /// Worker count for runners that have workers.
    pub workers: Option<usize>,
    /// Flags for runners not known to this crate.
    pub extra: BTreeMap<String, String>,
    /// Processing-time clock; `None`: the wall clock (the direct runner uses a test clock for a
    /// pipeline with a TestStream).
    pub clock: Option<Arc<dyn Clock>>,
    /// Raised to cancel the job.
    pub cancel: CancelSignal,
    /// Told how many elements each transform has produced, as the job runs (`None`: nobody listens).
    /// Runners report per batch, never per element, and know nothing of terminals: the program
    /// decides whether and how to show it.
    pub progress: Option<Arc<dyn ProgressSink>>,
}

/// Receives a running job's progress: the elements each transform produces, and about how many
/// bytes they encode to ([`runnel_model::exec::ElementOps::estimated_bytes`]). Called from the
/// runner's threads, once per batch (never per element); implementations keep it cheap (add to
/// counters, render at most a few times a second).
pub trait ProgressSink: Send + Sync + std::fmt::Debug {
    /// `transform`, fused in stage `stage` (index in the plan), produced `elements` more elements
    /// of about `bytes` bytes.
    fn record(&self, stage: usize, transform: &str, elements: u64, bytes: u64);

    /// Records `batch`, produced by `transform` in stage `stage`: its length and estimated bytes.
    fn record_batch(&self, stage: usize, transform: &str, ops: &dyn ElementOps, batch: &Batch) {
        self.record(stage, transform, ops.len(batch) as u64, ops.estimated_bytes(batch));
    }
}

impl Default for RunnerOptions {
    fn default() -> Self {
        RunnerOptions {
            bundle_size: 1024,
            workers: None,
            extra: BTreeMap::new(),
            clock: None,
            cancel: CancelSignal::new(),
            progress: None,
        }
    }
}

/// How a job ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JobState {
    /// Every transform finished.
    Done,
    /// Cancelled before the end (see [`CancelSignal`]).
    Cancelled,
    /// Nothing ran: the program was asked only for the graph or the plan (`--dump-graph`,
    /// `--explain`).
    NotRun,
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
    #[error("transform '{transform}' failed: {source}")]
    UserCode {
        /// Unique name of the transform.
        transform: String,
        /// The user's error (its own source chain kept), or the panic message.
        #[source]
        source: UserError,
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
    /// The runner could not read or write its own files (spilled data, for instance).
    #[error("{context}: {source}")]
    Io {
        /// What the runner was doing, with the path.
        context: String,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// The runner (or the engine behind it) ran the job and reports it failed.
    #[error("the {runner} runner's job failed: {message}")]
    JobFailed {
        /// The runner.
        runner: &'static str,
        /// What the runner said.
        message: String,
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

impl RunError {
    /// A failure of user code in `transform`.
    pub fn user_code(transform: &str, source: impl Into<UserError>) -> Self {
        RunError::UserCode { transform: transform.to_string(), source: source.into() }
    }
}

/// A runner: executes a job.
pub trait Runner {
    /// Its name as given to `--runner`.
    fn name(&self) -> &'static str;
    /// What it can run; [`crate::capability::check`] refuses the rest before anything runs.
    fn capabilities(&self) -> Capabilities;
    /// How it plans a graph (see [`crate::plan::plan`]).
    fn plan_options(&self) -> PlanOptions;
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
