//! The runner trait, its options and its results.

use runnel_model::exec::Job;
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

/// What one step of a TestStream did (the direct runner replays a TestStream one event at a
/// time, running the pipeline to quiescence after each).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StepEvent {
    /// Before the first event: bounded sources read and everything they caused.
    Start,
    /// Elements were added; `elements` holds `value @ timestamp` of each, as `Debug` text.
    AddElements {
        /// `value @ timestamp` per element.
        elements: Vec<String>,
    },
    /// The watermark of the stream advanced to `to` (`Timestamp::MAX` is +∞, the end).
    AdvanceWatermark {
        /// The new watermark.
        to: Timestamp,
    },
    /// Processing time advanced by `by_ms` milliseconds.
    AdvanceProcessingTime {
        /// The advance.
        by_ms: i64,
    },
}

impl fmt::Display for StepEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StepEvent::Start => write!(f, "start"),
            StepEvent::AddElements { elements } => write!(f, "add elements [{}]", elements.join(", ")),
            StepEvent::AdvanceWatermark { to } if *to == Timestamp::MAX => write!(f, "advance watermark to +inf"),
            StepEvent::AdvanceWatermark { to } => write!(f, "advance watermark to {to}"),
            StepEvent::AdvanceProcessingTime { by_ms } => write!(f, "advance processing time by {by_ms}ms"),
        }
    }
}

/// The state of a job after one TestStream step, as a [`StepObserver`] sees it.
#[derive(Clone, Debug)]
pub struct StepReport {
    /// The event the step replayed.
    pub event: StepEvent,
    /// Processing time after the step.
    pub processing_time: Timestamp,
    /// The watermark of every PCollection after the step, by PCollection id.
    pub watermarks: BTreeMap<String, Timestamp>,
}

/// Called by the direct runner after each TestStream step has run to quiescence (every bundle
/// delivered, watermarks propagated, due timers fired).
#[derive(Clone)]
pub struct StepObserver(pub Arc<dyn Fn(&StepReport) + Send + Sync>);

impl fmt::Debug for StepObserver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("StepObserver")
    }
}

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
    /// Processing-time clock; `None`: the wall clock (the direct runner uses a test clock for a
    /// pipeline with a TestStream).
    pub clock: Option<Arc<dyn Clock>>,
    /// Raised to cancel the job.
    pub cancel: CancelSignal,
    /// Direct runner: told after each TestStream step (see [`StepObserver`]).
    pub step_observer: Option<StepObserver>,
}

impl Default for RunnerOptions {
    fn default() -> Self {
        RunnerOptions {
            direct_checks: true,
            seed: 0x5eed,
            bundle_size: 1024,
            workers: None,
            extra: BTreeMap::new(),
            clock: None,
            cancel: CancelSignal::new(),
            step_observer: None,
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
