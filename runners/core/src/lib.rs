//! Execution machinery shared by every Runnel runner.
//!
//! - [`typed`]: the typed implementation of [`runnel_model::exec::ElementOps`] for any element type.
//! - [`windows`]: window assignment of the built-in window functions, and side input window mapping.
//! - [`group`]: grouping per key and window ([`group::GroupAlsoByWindow`]), with panes, lateness and
//!   accumulation; GroupByKey and Combine both go through it.
//! - [`plan`]: the physical plan, a graph cut into stages of fused transforms (serde data, shown by
//!   `--explain`); [`stage`]: the stage executor every runner runs stages with.
//! - [`capability`]: what a runner can run, and the refusal of the rest before anything runs.
//! - [`runner`]: the small trait every runner implements, with its options and results.
//!
//! Architecture invariant: this crate knows no runner and no SDK; it is generic over element types
//! and the SDK instantiates it for concrete ones.
#![warn(missing_docs)]

pub mod capability;
pub mod group;
pub mod lift;
pub mod plan;
pub mod runner;
pub mod stage;
pub mod trigger;
pub mod typed;
pub mod windows;

pub use runner::{panic_message, JobResult, JobState, ProgressSink, RunError, Runner, RunnerOptions};

/// What an element type needs to travel through a pipeline: cloneable, thread-safe, printable and
/// encodable with serde.
pub trait Data:
    Clone + Send + Sync + std::fmt::Debug + serde::Serialize + serde::de::DeserializeOwned + 'static
{
}
impl<T> Data for T where
    T: Clone + Send + Sync + std::fmt::Debug + serde::Serialize + serde::de::DeserializeOwned + 'static
{
}

/// What a grouping key needs on top of [`Data`]: equality and hashing (its encoding must be
/// deterministic: equal keys give equal bytes).
pub trait Key: Data + Eq + std::hash::Hash {}
impl<T> Key for T where T: Data + Eq + std::hash::Hash {}

/// Names of the metrics the machinery itself reports.
pub mod metric_names {
    /// Elements dropped because their window had expired when they arrived.
    pub const DROPPED_DUE_TO_LATENESS: &str = "dropped_due_to_lateness";
    /// Elements dropped because the trigger of their window had finished.
    pub const DROPPED_DUE_TO_CLOSED_WINDOW: &str = "dropped_due_to_closed_window";
}
