//! The direct runner: Runnel's in-process reference runner, batch and streaming.
//!
//! It executes every leaf transform of the graph in one thread, pushing typed batches from
//! producers to consumers. Every PCollection has a watermark, propagated in topological order and
//! held back by groupings' buffered data and pending bundles; groupings fire as their input
//! watermark moves and as processing time (wall clock, TestStream test clock, or a given
//! [`runnel_runner_core::runner::Clock`]) reaches their timers. A TestStream is replayed one event
//! at a time, each run to quiescence (and reported to `RunnerOptions::step_observer`); unbounded
//! readers are polled until their watermark reaches +∞ or the job is cancelled
//! (`RunnerOptions::cancel`). It checks the model strictly by default:
//! - the graph is round-tripped through its JSON form and validated before anything runs, so a
//!   pipeline that could not be shipped to a cluster fails here first;
//! - every element delivered to a transform is encoded and decoded with its coder;
//! - pending bundles are processed in a shuffled order, and elements within a bundle are
//!   shuffled, to expose code that depends on order.
//!
//! `RunnerOptions::direct_checks = false` turns the checks off for speed.
//!
//! Architecture invariant: depends on `runnel-model` and `runnel-runner-core` only; all
//! event-time logic is core's.
#![warn(missing_docs)]

mod executor;

use runnel_model::exec::Job;
use runnel_runner_core::{JobResult, RunError, Runner, RunnerOptions};

/// The direct runner.
#[derive(Clone, Copy, Debug, Default)]
pub struct DirectRunner;

impl Runner for DirectRunner {
    fn name(&self) -> &'static str {
        "direct"
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
        executor::Executor::new(&graph, job.bindings, options)?.run()
    }
}
