//! The portable pipeline graph of Runnel, and the type-erased contracts runners call.
//!
//! A pipeline built with the `runnel` SDK becomes a [`Graph`]: pure data (transforms with URNs
//! and payloads, PCollections with coders and windowing strategies) that serialises to
//! deterministic JSON and to protobuf. The code a graph refers to (DoFns, CombineFns, coders) is
//! reached through the object-safe traits of [`exec`], so runners never see element types.
//!
//! Architecture invariant: this crate depends on no runner and no SDK.
#![warn(missing_docs)]

pub mod error;
pub mod exec;
pub mod graph;
pub mod metrics;
pub mod proto;
mod proto_convert;
pub mod time;
pub mod urns;
mod validate;
pub mod window;
pub mod windowing;

pub use error::GraphError;
pub use graph::*;
pub use time::Timestamp;
pub use window::{IntervalWindow, PaneInfo, PaneTiming, Window, WindowedValue};
pub use windowing::*;
