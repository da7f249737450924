//! Unbounded sources: `ReadUnbounded` polls a reader until its watermark reaches +∞ or the job is
//! cancelled (see [`crate::Pipeline::run_async`] and [`crate::PipelineHandle::cancel`]).

use crate::error::BoxError;
use crate::pipeline::{single_output, PBegin, PCollection, PTransform, PrimitiveSpec};
use runnel_model::exec::{Batch, Executable, SourcePoll, UnboundedReader as RawReader, UserError};
use runnel_model::{urns, Boundedness, Timestamp, WindowedValue, WindowingStrategy};
use runnel_runner_core::Data;
use std::sync::Arc;

/// What one poll of an [`UnboundedReader`] gave.
#[derive(Clone, Debug, PartialEq)]
pub struct ReadPoll<T> {
    /// Elements read now, each with its event timestamp (in the global window).
    pub elements: Vec<(T, Timestamp)>,
    /// The source's watermark: no later element will be earlier (those that are, are late).
    /// [`Timestamp::MAX`] ends the source.
    pub watermark: Timestamp,
}

impl<T> ReadPoll<T> {
    /// Nothing new; the watermark stays at `watermark`.
    pub fn idle(watermark: Timestamp) -> Self {
        ReadPoll { elements: Vec::new(), watermark }
    }

    /// The source has ended: its watermark is +∞.
    pub fn done() -> Self {
        ReadPoll { elements: Vec::new(), watermark: Timestamp::MAX }
    }
}

/// A reader of an unbounded source. The runner polls it repeatedly (sleeping briefly between
/// polls that bring nothing) until its watermark reaches +∞ or the job is cancelled.
pub trait UnboundedReader: Send + 'static {
    /// The element type.
    type Out: Data;
    /// Reads what is available now; `now` is the runner's processing time.
    fn poll(&mut self, now: Timestamp) -> Result<ReadPoll<Self::Out>, BoxError>;
}

/// A reader from a closure.
pub struct FnReader<T, F> {
    f: F,
    _t: std::marker::PhantomData<fn() -> T>,
}

impl<T: Data, F: FnMut(Timestamp) -> Result<ReadPoll<T>, BoxError> + Send + 'static> UnboundedReader
    for FnReader<T, F>
{
    type Out = T;
    fn poll(&mut self, now: Timestamp) -> Result<ReadPoll<T>, BoxError> {
        (self.f)(now)
    }
}

struct Adapter<R>(R);

impl<R: UnboundedReader> RawReader for Adapter<R> {
    fn poll(&mut self, now: Timestamp) -> Result<SourcePoll, UserError> {
        let poll = self.0.poll(now)?;
        let batch: Vec<WindowedValue<R::Out>> =
            poll.elements.into_iter().map(|(v, t)| WindowedValue::timestamped(v, t)).collect();
        Ok(SourcePoll { batch: (!batch.is_empty()).then(|| Box::new(batch) as Batch), watermark: poll.watermark })
    }
}

type Open = Arc<dyn Fn() -> Result<Box<dyn RawReader>, UserError> + Send + Sync>;

/// Reads an unbounded source: an unbounded PCollection in the global window.
///
/// The reader is opened once per run (the closure is held by the pipeline, so the graph names
/// the transform but cannot be shipped to another binary without the same construction code).
pub struct ReadUnbounded<T> {
    open: Open,
    _t: std::marker::PhantomData<fn() -> T>,
}

impl<T: Data> ReadUnbounded<T> {
    /// Opens a reader with `open` at the start of each run.
    pub fn new<R: UnboundedReader<Out = T>>(open: impl Fn() -> R + Send + Sync + 'static) -> Self {
        ReadUnbounded {
            open: Arc::new(move || -> Result<Box<dyn RawReader>, UserError> { Ok(Box::new(Adapter(open()))) }),
            _t: std::marker::PhantomData,
        }
    }

    /// A reader made of a poll closure: `open` makes a fresh one for each run.
    pub fn from_fn<F>(open: impl Fn() -> F + Send + Sync + 'static) -> Self
    where
        F: FnMut(Timestamp) -> Result<ReadPoll<T>, BoxError> + Send + 'static,
    {
        Self::new(move || FnReader { f: open(), _t: std::marker::PhantomData })
    }
}

impl<T: Data> PTransform<PBegin> for ReadUnbounded<T> {
    type Output = PCollection<T>;
    fn expand(self, input: PBegin) -> PCollection<T> {
        let spec = PrimitiveSpec {
            urn: urns::READ_UNBOUNDED,
            inputs: Vec::new(),
            payload: serde_json::Value::Null,
            executable: Some(Executable::ReadUnbounded { open: self.open }),
        };
        single_output(input.pipeline(), spec, WindowingStrategy::global_default(), Boundedness::Unbounded, None)
    }
}
