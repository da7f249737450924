//! Errors about graphs.

use thiserror::Error;

/// Why a graph is malformed or could not be read.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum GraphError {
    /// The JSON form did not parse.
    #[error("graph JSON is malformed at line {line}, column {column}: {message}")]
    Json {
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// The parser's message.
        message: String,
    },
    /// The protobuf form did not decode.
    #[error("graph protobuf is malformed: {0}")]
    Proto(String),
    /// A transform refers to a PCollection that does not exist.
    #[error("transform '{transform}': {role} '{tag}' refers to unknown pcollection '{pcollection}'")]
    DanglingPCollection {
        /// The transform.
        transform: String,
        /// `input` or `output`.
        role: &'static str,
        /// Local tag.
        tag: String,
        /// The missing id.
        pcollection: String,
    },
    /// A composite lists a subtransform, or the root list a transform, that does not exist.
    #[error("transform '{transform}' refers to unknown transform '{missing}'")]
    DanglingTransform {
        /// The referring transform (or `<root>`).
        transform: String,
        /// The missing id.
        missing: String,
    },
    /// A transform's map key differs from its unique name.
    #[error("transform id '{id}' differs from its unique name '{unique_name}'")]
    IdMismatch {
        /// Map key.
        id: String,
        /// unique_name field.
        unique_name: String,
    },
    /// A PCollection refers to a coder or windowing strategy that does not exist.
    #[error("pcollection '{pcollection}' refers to unknown {kind} '{id}'")]
    DanglingComponent {
        /// The PCollection.
        pcollection: String,
        /// `coder` or `windowing strategy`.
        kind: &'static str,
        /// The missing id.
        id: String,
    },
    /// A coder refers to a component coder that does not exist, or has an unknown URN.
    #[error("coder '{coder}': {message}")]
    BadCoder {
        /// The coder id.
        coder: String,
        /// What is wrong.
        message: String,
    },
    /// A leaf transform has a URN no runner knows.
    #[error("transform '{transform}' has unknown URN '{urn}'")]
    UnknownUrn {
        /// The transform.
        transform: String,
        /// Its URN.
        urn: String,
    },
    /// The leaf transforms form a cycle.
    #[error("transform '{transform}' is part of a cycle")]
    Cycle {
        /// A transform on the cycle.
        transform: String,
    },
    /// A PCollection is produced by two leaf transforms, or by none.
    #[error("pcollection '{pcollection}': {message}")]
    BadProducer {
        /// The PCollection.
        pcollection: String,
        /// What is wrong.
        message: String,
    },
    /// Input and output coders do not fit the transform.
    #[error("transform '{transform}': coder mismatch: {message}")]
    CoderMismatch {
        /// The transform.
        transform: String,
        /// What does not fit.
        message: String,
    },
    /// A transform's inputs or outputs are not what its URN needs.
    #[error("transform '{transform}': {message}")]
    BadShape {
        /// The transform.
        transform: String,
        /// What is wrong.
        message: String,
    },
    /// A payload does not decode.
    #[error("transform '{transform}': bad payload: {message}")]
    BadPayload {
        /// The transform.
        transform: String,
        /// The decoder's message.
        message: String,
    },
}
