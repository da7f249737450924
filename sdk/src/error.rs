use thiserror::Error;

/// An error from user code: any error type, boxed.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Why a pipeline could not be built or run.
///
/// `Display` and `Debug` both print one line: the message and its chain of causes (`outer: inner`),
/// so `fn main() -> Result<(), Box<dyn Error>>`, which prints `Error: {:?}`, shows a readable
/// message rather than the enum's structure.
#[derive(Error)]
pub enum PipelineError {
    /// Construction went wrong (duplicate names, mismatched windowing, …).
    #[error("pipeline construction failed: {}", .0.join("; "))]
    Construction(Vec<String>),
    /// The chosen runner is not built yet.
    #[error("the {0} runner is not available yet in this build of Runnel (available: direct, rayon, portable)")]
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

impl std::fmt::Debug for PipelineError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&one_line(self))
    }
}

/// The error and its causes on one line, `outer: inner: innermost`; a cause whose text the
/// message already holds is not repeated, and line breaks become spaces.
pub(crate) fn one_line(error: &(dyn std::error::Error + 'static)) -> String {
    let mut message = String::new();
    let mut cause = Some(error);
    while let Some(e) = cause {
        let text = e.to_string().split_whitespace().collect::<Vec<_>>().join(" ");
        if !text.is_empty() && !message.contains(&text) {
            if !message.is_empty() {
                message.push_str(": ");
            }
            message.push_str(&text);
        }
        cause = e.source();
    }
    message
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_prints_the_message_and_its_causes_on_one_line() {
        let error = PipelineError::RunnerNotAvailable("grpc");
        assert_eq!(
            format!("{error:?}"),
            "the grpc runner is not available yet in this build of Runnel (available: direct, rayon, portable)"
        );
        let run = PipelineError::Run(runnel_runner_core::RunError::UserCode {
            transform: "Sum".into(),
            source: "key \"alice\":\nsum overflowed".into(),
        });
        assert_eq!(format!("{run:?}"), "transform 'Sum' failed: key \"alice\": sum overflowed");
    }
}
