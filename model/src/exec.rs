//! The type-erased contracts a runner calls to execute user code.
//!
//! Runners never see element types. Elements travel in [`Batch`]es: one `Box<dyn Any + Send>`
//! holding a `Vec<WindowedValue<T>>` for the PCollection's `T`, so nothing is boxed or encoded per
//! element. Every operation that needs the type goes through an object the SDK built when the
//! pipeline was constructed ([`ElementOps`], [`DoFnInstance`], [`KeyedOperator`], …), collected in
//! [`Bindings`] next to the [`Graph`].

use crate::graph::{CombinePayload, Graph, ParDoPayload};
use crate::metrics::StepMetrics;
use crate::time::Timestamp;
use crate::window::Window;
use crate::windowing::WindowingStrategy;
use std::any::Any;
use std::collections::BTreeMap;
use std::sync::Arc;

/// A batch of windowed elements of one PCollection: a `Vec<WindowedValue<T>>` behind one handle.
pub type Batch = Box<dyn Any + Send>;

/// An error raised by user code or by the SDK code that wraps it.
pub type UserError = Box<dyn std::error::Error + Send + Sync>;

/// Typed operations on the batches of one PCollection.
pub trait ElementOps: Send + Sync {
    /// The Rust element type.
    fn type_name(&self) -> &'static str;
    /// Number of elements in `batch`.
    fn len(&self, batch: &Batch) -> usize;
    /// An empty batch.
    fn empty(&self) -> Batch;
    /// A copy of `batch` (for PCollections read by several consumers).
    fn clone_batch(&self, batch: &Batch) -> Batch;
    /// Moves the elements of `from` to the end of `into`.
    fn append(&self, into: &mut Batch, from: Batch);
    /// Cuts `batch` into batches of at most `max_len` elements.
    fn split(&self, batch: Batch, max_len: usize) -> Vec<Batch>;
    /// Reorders the elements pseudo-randomly from `seed`, except that retractions stay ahead of
    /// the other elements (a retraction reaches a consumer before the value that replaces it).
    fn shuffle(&self, batch: &mut Batch, seed: u64);
    /// Whether any element of the batch is a retraction (runners never let a later batch of the
    /// same PCollection overtake such a batch).
    fn has_retractions(&self, batch: &Batch) -> bool;
    /// Appends the encoding of every windowed element to `out`, element after element. Each
    /// element's encoding is self-delimiting (a length, then the bytes), so encodings of several
    /// batches written back to back form one valid stream: a data plane can send elements as they
    /// come and the receiver can cut the stream anywhere between two elements.
    fn encode(&self, batch: &Batch, out: &mut Vec<u8>) -> Result<(), UserError>;
    /// Decodes every element of a stream written by [`ElementOps::encode`] (one call or several,
    /// concatenated). A truncated element, or bytes left over after the last whole element, is an
    /// error naming the byte offset: nothing is dropped silently.
    fn decode(&self, bytes: &[u8]) -> Result<Batch, UserError>;
    /// Hands each element to `each` as its metadata and the bytes of its value alone (the
    /// element coder's encoding, without the windowing), with, for key-value pairs, the length
    /// of the key's part (the value's bytes are the key's then the value's): what a runner
    /// speaking another wire format (Beam's Fn API) re-frames.
    fn encode_values(&self, batch: &Batch, each: &mut ValueSink<'_>) -> Result<(), UserError>;
    /// Appends to `batch` the element whose value bytes (as [`ElementOps::encode_values`]
    /// gives them) are `value`, with `meta`; bytes that do not decode to exactly one value are
    /// an error.
    fn push_decoded(&self, batch: &mut Batch, meta: &ElementMeta, value: &[u8]) -> Result<(), UserError>;
    /// About how many bytes the batch's elements encode to: the encoded size of a few sampled
    /// elements, scaled to the batch (for progress reports; cheap, never exact).
    fn estimated_bytes(&self, batch: &Batch) -> u64;
    /// About how much memory the batch's elements take: their in-memory size plus their encoded
    /// size as an estimate of what they own on the heap (for memory budgets; cheap, never exact).
    fn estimated_memory(&self, batch: &Batch) -> u64;
    /// Encodes and decodes every element, failing if the coder cannot round-trip it.
    fn check_encoding(&self, batch: &Batch) -> Result<(), UserError>;
    /// Re-windows every element: `assign(timestamp, current window)` lists its new windows.
    fn assign_windows(&self, batch: Batch, assign: &mut dyn FnMut(Timestamp, &Window) -> Vec<Window>) -> Batch;
    /// The distinct windows present in the batch.
    fn windows(&self, batch: &Batch) -> Vec<Window>;
    /// The smallest element timestamp, if any.
    fn min_timestamp(&self, batch: &Batch) -> Option<Timestamp>;
    /// Splits a batch of key-value pairs into `n` batches by a hash of the deterministic key
    /// encoding; `None` when the element type is not a pair.
    fn partition_by_key(&self, batch: Batch, n: usize) -> Option<Vec<Batch>>;
    /// For key-value pairs: every element as its deterministic key encoding (equal keys, equal
    /// bytes) and its element encoding as [`ElementOps::encode`] writes it, in batch order, for
    /// runners that sort by key outside memory (spilled groupings). `Ok(None)` when the element
    /// type is not a pair.
    fn encode_keyed(&self, batch: &Batch) -> Result<Option<Vec<KeyedEncoding>>, UserError>;
    /// `Debug` text of each element, for messages and tests.
    fn debug_strings(&self, batch: &Batch) -> Vec<String>;
}

/// One element of a key-value batch as bytes: `(key encoding, element encoding)` (see
/// [`ElementOps::encode_keyed`]).
pub type KeyedEncoding = (Vec<u8>, Vec<u8>);
/// Receives an element's metadata, the bytes of its value, and for pairs the length of the
/// key's part (see [`ElementOps::encode_values`]).
pub type ValueSink<'a> = dyn FnMut(&ElementMeta, &[u8], Option<usize>) -> Result<(), UserError> + 'a;

/// Where an element is in event time, without its value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ElementMeta {
    /// Its timestamp.
    pub timestamp: Timestamp,
    /// Its window.
    pub window: Window,
    /// Its pane.
    pub pane: crate::window::PaneInfo,
}

/// Side inputs as a DoFn sees them: the view of side input `index` for a main-input window.
pub trait SideInputAccess {
    /// The materialised view (downcast by the SDK to the view's type).
    fn get(&self, index: usize, main_window: &Window) -> Result<&ViewValue, UserError>;
}

/// A materialised side input view, e.g. an `Arc<HashMap<K, V>>` behind `dyn Any`.
pub type ViewValue = Arc<dyn Any + Send + Sync>;

/// Builds side input views from the whole side input PCollection.
pub trait ViewMaterializer: Send + Sync {
    /// One view per window present in the side input's batches.
    fn materialize(&self, batches: &[Batch]) -> Result<BTreeMap<Window, ViewValue>, UserError>;
    /// The view of a window with no elements (an error for a singleton without default).
    fn empty(&self) -> Result<ViewValue, UserError>;
    /// Whether the view looks values up by key ([`ViewMaterializer::lookup`]) where the runner
    /// can serve them by key, rather than reading the whole window.
    fn reads_by_key(&self) -> bool {
        false
    }
    /// The view of one window over `keyed`, which fetches the values of a key when asked (for
    /// views that [read by key](ViewMaterializer::reads_by_key)).
    fn lookup(&self, keyed: Arc<dyn KeyedSideInput>) -> Result<ViewValue, UserError> {
        let _ = keyed;
        Err("this side input view reads whole windows, not keys".into())
    }
}

/// One window of a side input of key-value pairs, read key by key (Beam's multimap side inputs):
/// what a runner that keeps the side input elsewhere gives a view that looks values up by key.
pub trait KeyedSideInput: Send + Sync {
    /// The values of the key whose Runnel encoding is `key`, each as its Runnel encoding, in no
    /// particular order (none for a key not in the window).
    fn values(&self, key: &[u8]) -> Result<Vec<Vec<u8>>, UserError>;
}

/// What a DoFn instance can reach while it runs.
pub struct ExecContext<'a> {
    /// Unique name of the transform being executed.
    pub step: &'a str,
    /// Receives output batches: `(output index in the payload's output tags, batch)`.
    pub output: &'a mut dyn FnMut(usize, Batch),
    /// Side input views.
    pub side_inputs: &'a dyn SideInputAccess,
    /// Metrics of this transform.
    pub metrics: &'a mut StepMetrics,
}

/// A live DoFn: setup, then bundles (start, batches, finish), then teardown.
pub trait DoFnInstance: Send {
    /// Once per instance, before any bundle.
    fn setup(&mut self) -> Result<(), UserError>;
    /// At the start of each bundle.
    fn start_bundle(&mut self, ctx: &mut ExecContext<'_>) -> Result<(), UserError>;
    /// Processes one batch of the main input.
    fn process_batch(&mut self, input: Batch, ctx: &mut ExecContext<'_>) -> Result<(), UserError>;
    /// At the end of each bundle; may emit.
    fn finish_bundle(&mut self, ctx: &mut ExecContext<'_>) -> Result<(), UserError>;
    /// Once, when the instance is discarded.
    fn teardown(&mut self) -> Result<(), UserError>;
}

/// What a keyed operator can reach while it runs.
pub struct KeyedContext<'a> {
    /// Unique name of the transform being executed.
    pub step: &'a str,
    /// Receives output batches.
    pub output: &'a mut dyn FnMut(Batch),
    /// Metrics of this transform (e.g. data dropped due to lateness).
    pub metrics: &'a mut StepMetrics,
    /// Current processing time.
    pub processing_time: Timestamp,
}

/// A grouping (GroupByKey or Combine) per key and window, driven by watermarks and time.
pub trait KeyedOperator: Send {
    /// Buffers or folds in a batch of key-value input.
    fn process(&mut self, input: Batch, ctx: &mut KeyedContext<'_>) -> Result<(), UserError>;
    /// The input watermark moved to `watermark`: fire and expire what that allows.
    fn advance_watermark(&mut self, watermark: Timestamp, ctx: &mut KeyedContext<'_>) -> Result<(), UserError>;
    /// Processing time moved to `now`: fire processing-time triggers that are due.
    fn advance_processing_time(&mut self, now: Timestamp, ctx: &mut KeyedContext<'_>) -> Result<(), UserError>;
    /// The output watermark may not pass this (buffered data holds it back).
    fn watermark_hold(&self) -> Timestamp;
    /// The earliest pending processing-time timer.
    fn next_processing_time_timer(&self) -> Option<Timestamp>;
}

/// Creates a DoFn instance from its transform's payload (registered types deserialise from it,
/// closures are cloned from the binary's table).
pub type DoFnFactory = Arc<dyn Fn(&ParDoPayload) -> Result<Box<dyn DoFnInstance>, UserError> + Send + Sync>;

/// Creates a keyed operator for a windowing strategy.
pub type KeyedFactory = Arc<dyn Fn(&WindowingStrategy) -> Result<Box<dyn KeyedOperator>, UserError> + Send + Sync>;

/// Creates a combining operator from its payload and windowing strategy.
pub type CombineFactory =
    Arc<dyn Fn(&CombinePayload, &WindowingStrategy) -> Result<Box<dyn KeyedOperator>, UserError> + Send + Sync>;

/// Creates one element-wise part of a lifted combine (see [`CombineHalves`]) from the combine's
/// payload.
pub type CombinePartFactory = Arc<dyn Fn(&CombinePayload) -> Result<Box<dyn DoFnInstance>, UserError> + Send + Sync>;

/// The halves of a Combine per key, for runners that lift it: fold each bundle's inputs into one
/// accumulator per key and window *before* the shuffle, and merge the accumulators after it.
/// They follow Beam's lifted combine (`beam:transform:combine_per_key_precombine:v1`,
/// `…_merge_accumulators:v1`, `…_extract_outputs:v1`); a runner that groups by window itself
/// uses [`CombineHalves::merge_grouping`] for the last two.
#[derive(Clone)]
pub struct CombineHalves {
    /// Pre-shuffle: `(K, In)` → `(K, Acc)`, one accumulator per key and window for each bundle
    /// (emitted at the end of the bundle, or earlier when its table grows large), stamped with the
    /// earliest input timestamp.
    pub precombine: CombinePartFactory,
    /// Post-shuffle grouping per key and window: `(K, Acc)` → `(K, Out)`, merging accumulators
    /// and firing panes as the unlifted combine would.
    pub merge_grouping: CombineFactory,
    /// Element-wise merge of grouped accumulators: `(K, Vec<Acc>)` → `(K, Acc)` (for runners that
    /// group by key and window themselves, such as Beam's).
    pub merge_accumulators: CombinePartFactory,
    /// Element-wise combine of grouped inputs: `(K, Vec<In>)` → `(K, Out)` (for runners that
    /// group by key and window themselves and do not lift).
    pub combine_grouped_values: CombinePartFactory,
    /// Element-wise extraction: `(K, Acc)` → `(K, Out)`.
    pub extract_outputs: CombinePartFactory,
    /// Element operations of the `(K, Acc)` pairs that cross the shuffle.
    pub accumulator_ops: Arc<dyn ElementOps>,
    /// Element operations of the `(K, Vec<Acc>)` pairs [`CombineHalves::merge_accumulators`]
    /// reads (accumulators grouped by a runner).
    pub grouped_accumulator_ops: Arc<dyn ElementOps>,
    /// Element operations of the `(K, Vec<In>)` pairs
    /// [`CombineHalves::combine_grouped_values`] reads.
    pub grouped_input_ops: Arc<dyn ElementOps>,
}

/// A user window function: the windows an element at `timestamp` belongs to.
pub trait WindowAssigner: Send + Sync {
    /// Assigns windows.
    fn assign(&self, timestamp: Timestamp, current: &Window) -> Vec<Window>;
    /// Merges windows (merging functions only): groups of windows to merge, each with its result.
    fn merge(&self, windows: &[Window]) -> Vec<(Vec<Window>, Window)>;
}

/// What one poll of an unbounded source gave.
pub struct SourcePoll {
    /// Elements read, if any (a batch of the output PCollection's type).
    pub batch: Option<Batch>,
    /// The source's watermark after this poll: no later element should have an earlier
    /// timestamp (those that do are late). [`Timestamp::MAX`] ends the source.
    pub watermark: Timestamp,
}

/// A reader of an unbounded source: the runner polls it until its watermark reaches +∞ or the
/// job is cancelled. A poll that returns no elements and does not move the watermark means "idle".
pub trait UnboundedReader: Send {
    /// Reads what is available now; `now` is the runner's processing time.
    fn poll(&mut self, now: Timestamp) -> Result<SourcePoll, UserError>;
}

/// Opens a reader of an unbounded source (once per run).
pub type ReaderFactory = Arc<dyn Fn() -> Result<Box<dyn UnboundedReader>, UserError> + Send + Sync>;

/// Produces a source's batches (once per run).
pub type BatchesFactory = Arc<dyn Fn() -> Result<Vec<Batch>, UserError> + Send + Sync>;

/// Describes the elements of a batch as text, one string per element.
pub type DescribeBatch = Arc<dyn Fn(&Batch) -> Vec<String> + Send + Sync>;

/// The code behind one leaf transform.
#[derive(Clone)]
pub enum Executable {
    /// Elements of a Create.
    Create {
        /// Produces all elements as one batch.
        elements: Arc<dyn Fn() -> Result<Batch, UserError> + Send + Sync>,
    },
    /// A ParDo.
    ParDo {
        /// Makes DoFn instances.
        instantiate: DoFnFactory,
        /// One materialiser per side input, in payload order.
        side_inputs: Vec<Arc<dyn ViewMaterializer>>,
    },
    /// A GroupByKey.
    GroupByKey {
        /// Makes the grouping operator.
        instantiate: KeyedFactory,
    },
    /// A Combine per key.
    Combine {
        /// Makes the combining operator (input: key-value pairs; output: key and combined value).
        instantiate: CombineFactory,
        /// The same combine in halves, for runners that lift it before a shuffle.
        halves: CombineHalves,
    },
    /// A WindowInto with a user window function.
    WindowInto {
        /// The user window function.
        window_fn: Arc<dyn WindowAssigner>,
    },
    /// The elements of a TestStream: one batch per `AddElements` event of its payload, in order.
    TestStream {
        /// Produces the batches.
        elements: BatchesFactory,
        /// `value @ timestamp` of each element of a batch, for reports of the steps.
        describe: DescribeBatch,
    },
    /// An unbounded source.
    ReadUnbounded {
        /// Opens the reader.
        open: ReaderFactory,
    },
}

/// The binary's half of a pipeline: the code for each leaf transform and the element operations
/// of each PCollection. Flatten, Reshuffle and built-in windowing need no entry.
#[derive(Clone, Default)]
pub struct Bindings {
    /// By transform id.
    pub transforms: BTreeMap<String, Executable>,
    /// By PCollection id.
    pub elements: BTreeMap<String, Arc<dyn ElementOps>>,
}

/// A job ready to run: the graph and the code it refers to.
#[derive(Clone)]
pub struct Job {
    /// The portable graph.
    pub graph: Graph,
    /// The code the graph refers to.
    pub bindings: Bindings,
}
