//! The direct runner: Runnel's in-process reference runner, batch and streaming.
//!
//! It plans the graph with `runnel-runner-core`'s planner and runs every stage with core's stage
//! executor, in one thread; what it adds is only a **scheduler**: a queue of bundles between
//! stages, a watermark per PCollection (propagated in topological order and held back by
//! groupings' buffered data, main input waiting for side inputs, and bundles still queued), the
//! processing-time clock (wall clock, TestStream test clock, or a given
//! [`runnel_runner_core::runner::Clock`]) with the groupings' timers, the sources (Create bundles,
//! TestStream events one at a time, each run to quiescence and reported to a [`StepObserver`],
//! unbounded readers polled until their watermark reaches +∞ or the job is cancelled), and its
//! strict checks, on by default:
//! - the graph is round-tripped through its JSON form and validated before anything runs, so a
//!   pipeline that could not be shipped to a cluster fails here first;
//! - every element every transform produces is encoded and decoded with its coder;
//! - queued bundles are delivered in shuffled order, and elements within a bundle are shuffled,
//!   to expose code that depends on order.
//!
//! [`DirectOptions::checks`] off turns the checks off for speed. Combines are not lifted by
//! default (a single thread gains little, and the reference counts late data per element);
//! [`DirectOptions::lift_combines`] runs the lifted plan, as parallel runners do.
//!
//! Architecture invariant: depends on `runnel-model` and `runnel-runner-core` only; all
//! event-time logic and all execution of user code is core's.
#![warn(missing_docs)]

mod scheduler;

use runnel_model::exec::Job;
use runnel_model::Timestamp;
use runnel_runner_core::capability::{self, Capabilities};
use runnel_runner_core::plan::PlanOptions;
use runnel_runner_core::{JobResult, RunError, Runner, RunnerOptions};
use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

/// The direct runner's own options.
#[derive(Clone, Debug)]
pub struct DirectOptions {
    /// Check that every element round-trips through its coder, and deliver bundles in shuffled
    /// order.
    pub checks: bool,
    /// Seed of the shuffled order (a fixed seed makes a failure reproducible).
    pub seed: u64,
    /// Run the lifted plan: combines fold each bundle before their shuffle.
    pub lift_combines: bool,
    /// Told after each TestStream step (see [`StepObserver`]).
    pub step_observer: Option<StepObserver>,
    /// What it claims to support: all by default; fewer rehearses a runner that refuses more
    /// (the conformance suite checks its refusals this way).
    pub capabilities: Capabilities,
}

impl Default for DirectOptions {
    fn default() -> Self {
        DirectOptions {
            checks: true,
            seed: 0x5eed,
            lift_combines: false,
            step_observer: None,
            capabilities: Capabilities::all(),
        }
    }
}

/// The direct runner.
#[derive(Clone, Debug, Default)]
pub struct DirectRunner {
    /// Its options.
    pub options: DirectOptions,
}

impl DirectRunner {
    /// A direct runner with these options.
    pub fn new(options: DirectOptions) -> Self {
        DirectRunner { options }
    }
}

impl Runner for DirectRunner {
    fn name(&self) -> &'static str {
        "direct"
    }

    fn capabilities(&self) -> Capabilities {
        self.options.capabilities.clone()
    }

    fn plan_options(&self) -> PlanOptions {
        PlanOptions { lift_combines: self.options.lift_combines }
    }

    fn run(&self, job: Job, options: &RunnerOptions) -> Result<JobResult, RunError> {
        let graph = runnel_model::Graph::from_json(&job.graph.to_json())?;
        if graph != job.graph {
            return Err(RunError::Refused {
                runner: "direct",
                reason: "the graph does not survive a round trip through its JSON form".into(),
            });
        }
        graph.validate()?;
        capability::check(self.name(), &self.capabilities(), &graph)?;
        let plan = runnel_runner_core::plan::plan(&graph, self.plan_options())?;
        scheduler::Scheduler::new(&graph, &plan, job.bindings, options, &self.options)?.run()
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
