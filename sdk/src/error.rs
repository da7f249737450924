use thiserror::Error;

/// An error from user code: any error type, boxed.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Why a pipeline could not be built or run.
#[derive(Debug, Error)]
pub enum PipelineError {
    /// Construction went wrong (duplicate names, mismatched windowing, …).
    #[error("pipeline construction failed: {}", .0.join("; "))]
    Construction(Vec<String>),
    /// The chosen runner is not built yet.
    #[error("the {0} runner is not available yet in this build of Runnel (available: direct, rayon)")]
    RunnerNotAvailable(&'static str),
    /// The runner failed.
    #[error(transparent)]
    Run(#[from] runnel_runner_core::RunError),
    /// The graph is malformed.
    #[error(transparent)]
    Graph(#[from] runnel_model::GraphError),
    /// Writing the graph (`--dump-graph`) failed.
    #[error("cannot write the graph to {path}: {error}")]
    DumpGraph {
        /// Target file.
        path: String,
        /// The I/O error.
        error: std::io::Error,
    },
}
