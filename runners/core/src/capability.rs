//! What a runner can run, what a pipeline needs, and the refusal of a pipeline a runner cannot
//! run faithfully — before anything runs, with the transform that needs the missing capability.

use crate::RunError;
use runnel_model::{urns, AccumulationMode, Graph, WindowFnSpec};
use std::fmt;

/// One thing a pipeline may need from its runner beyond bounded batch execution.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Capability {
    /// Unbounded sources (`ReadUnbounded`): streaming execution.
    UnboundedSources,
    /// A TestStream: scripted elements, watermark and processing-time advances.
    TestStream,
    /// Triggers with processing-time parts (they need a clock and timers).
    ProcessingTime,
    /// Retracting accumulation.
    Retractions,
    /// Running on a thread of its own with a handle that cancels (`Pipeline::run_async`).
    RunAsync,
    /// User window functions (`WindowInto::custom`), whose code only a Runnel process can run.
    UserWindowFns,
}

impl Capability {
    /// Every capability.
    pub const ALL: [Capability; 6] = [
        Capability::UnboundedSources,
        Capability::TestStream,
        Capability::ProcessingTime,
        Capability::Retractions,
        Capability::RunAsync,
        Capability::UserWindowFns,
    ];

    /// What it is, for messages.
    pub fn describe(self) -> &'static str {
        match self {
            Capability::UnboundedSources => "unbounded sources (streaming)",
            Capability::TestStream => "TestStream",
            Capability::ProcessingTime => "processing-time triggers",
            Capability::Retractions => "retracting accumulation",
            Capability::RunAsync => "running asynchronously with cancellation",
            Capability::UserWindowFns => "user window functions",
        }
    }
}

impl fmt::Display for Capability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.describe())
    }
}

/// The capabilities of a runner (bounded batch execution is assumed of every runner).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Capabilities(Vec<Capability>);

impl Capabilities {
    /// Every capability.
    pub fn all() -> Self {
        Capabilities(Capability::ALL.to_vec())
    }

    /// Bounded batch execution only.
    pub fn batch_only() -> Self {
        Capabilities(Vec::new())
    }

    /// These capabilities.
    pub fn of(list: &[Capability]) -> Self {
        let mut v = list.to_vec();
        v.sort();
        v.dedup();
        Capabilities(v)
    }

    /// Whether `c` is among them.
    pub fn supports(&self, c: Capability) -> bool {
        self.0.contains(&c)
    }
}

/// What a graph needs: each capability with the first transform (in topological order) that needs
/// it.
pub fn requirements(graph: &Graph) -> Result<Vec<(Capability, String)>, RunError> {
    let mut needs: Vec<(Capability, String)> = Vec::new();
    let mut need = |c: Capability, transform: &str| {
        if !needs.iter().any(|(have, _)| *have == c) {
            needs.push((c, transform.to_string()));
        }
    };
    for name in graph.leaf_order()? {
        let t = &graph.transforms[&name];
        match t.urn.as_str() {
            urns::TEST_STREAM => need(Capability::TestStream, &name),
            urns::READ_UNBOUNDED => need(Capability::UnboundedSources, &name),
            _ => {}
        }
        for output in t.outputs.values() {
            if let Some(WindowFnSpec::Custom { .. }) = graph.windowing_of(output).map(|ws| &ws.window_fn) {
                need(Capability::UserWindowFns, &name);
            }
        }
        if t.urn == urns::GROUP_BY_KEY || t.urn == urns::COMBINE_PER_KEY {
            for input in t.inputs.values() {
                let Some(ws) = graph.windowing_of(input) else { continue };
                if crate::trigger::uses_processing_time(&ws.trigger) {
                    need(Capability::ProcessingTime, &name);
                }
                if ws.accumulation_mode == AccumulationMode::Retracting {
                    need(Capability::Retractions, &name);
                }
            }
        }
    }
    needs.sort();
    Ok(needs)
}

/// Refuses, before anything runs, a graph that needs what `runner` (named `name`) cannot do;
/// the error names the capability and the transform that needs it.
pub fn check(name: &'static str, capabilities: &Capabilities, graph: &Graph) -> Result<(), RunError> {
    let missing: Vec<String> = requirements(graph)?
        .into_iter()
        .filter(|(c, _)| !capabilities.supports(*c))
        .map(|(c, transform)| format!("{c} (needed by '{transform}')"))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    Err(RunError::Refused { runner: name, reason: format!("it does not support {}", missing.join(", ")) })
}
