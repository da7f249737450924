//! The cases, grouped by area. Each is `pub fn name(options: PipelineOptions)` and panics on
//! failure; [`crate::conformance_suite!`] lists them all.

mod beam_java;
mod combining;
mod element_wise;
mod event_time;
mod failures;
mod grouping;
mod multi;
mod retractions;
mod side_inputs;
mod streaming;
mod structure;
mod triggers;
mod windowing;

pub use beam_java::*;
pub use combining::*;
pub use element_wise::*;
pub use event_time::*;
pub use failures::*;
pub use grouping::*;
pub use multi::*;
pub use retractions::*;
pub use side_inputs::*;
pub use streaming::*;
pub use structure::*;
pub use triggers::*;
pub use windowing::*;
