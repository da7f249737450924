//! Runnel: data pipelines in Rust, in the model of Apache Beam.
//!
//! Write a pipeline once against this crate and run it on any runner by changing one flag
//! (`--runner=direct|rayon|grpc`).
//!
//! ```
//! use runnel::prelude::*;
//!
//! let p = Pipeline::new(PipelineOptions::default());
//! let words = p.apply("Words", Create::of(vec!["a", "b", "a"].into_iter().map(String::from).collect()));
//! let counts = words.apply("Count", CountPerElement::new());
//! counts.apply("Check", PAssert::equal_in_any_order(vec![("a".to_string(), 2u64), ("b".to_string(), 1)]));
//! p.run().unwrap();
//! ```
//!
//! The pipeline becomes a portable graph ([`runnel_model::Graph`], see [`Pipeline::graph`]) plus
//! the code it refers to; a runner executes both.
#![warn(missing_docs)]

mod builder;
pub mod combine;
pub mod dofn;
mod error;
mod handle;
mod launch;
pub mod options;
mod pipeline;
pub mod primitives;
pub mod progress;
pub mod side_input;
pub mod test_stream;
pub mod testing;
pub mod transcript;
pub mod transforms;
pub mod unbounded;
pub mod window;

pub use combine::{ArithmeticOverflow, CombineFn, CombinePerKey, Retraction, Summable};
pub use dofn::{DoFn, DoFnContext, OutputTag, ParDo, ParDoOutputs};
pub use error::{BoxError, PipelineError};
pub use handle::{PipelineHandle, PipelineResult};
pub use options::{PipelineOptions, Progress, RunnerKind, WorkerEnvironment};
pub use pipeline::{PBegin, PCollection, PTransform, PValue, Pipeline};
pub use runnel_model as model;
pub use runnel_model::{PaneInfo, PaneTiming, Timestamp, Window};
pub use runnel_runner_core::capability::{Capabilities, Capability};
pub use runnel_runner_core::runner::{Clock, ManualClock, WallClock};
pub use runnel_runner_core::{Data as Element, JobState, Key};
pub use side_input::{MapLookup, MultimapLookup, PCollectionView, View};
pub use transforms::Combine;

/// Everything a pipeline author usually needs.
pub mod prelude {
    pub use crate::combine::{self, CombineFn, CombinePerKey, Retraction};
    pub use crate::dofn::{DoFn, DoFnContext, OutputTag, ParDo};
    pub use crate::side_input::{MapLookup, MultimapLookup, PCollectionView, View};
    pub use crate::test_stream::TestStream;
    pub use crate::testing::{ExpectedPane, PAssert};
    pub use crate::transforms::*;
    pub use crate::unbounded::{ReadPoll, ReadUnbounded, UnboundedReader};
    pub use crate::window::{
        AfterCount, AfterProcessingTime, AfterWatermark, FixedWindows, GlobalWindows, Remerge, Sessions,
        SlidingWindows, TriggerExt, Triggers, WindowFn, WindowInto,
    };
    pub use crate::{BoxError, Element, Key, PCollection, PTransform, Pipeline, PipelineOptions, RunnerKind};
    pub use crate::{PaneInfo, PaneTiming, Timestamp, Window};
    pub use runnel_model::{AccumulationMode, ClosingBehavior, OnTimeBehavior, TimestampCombiner, Trigger};
}

#[doc(hidden)]
pub mod __private {
    pub use serde;
    pub use typetag;
}
