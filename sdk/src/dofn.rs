//! `DoFn`, `ParDo` and the context a DoFn sees: element metadata, outputs, side inputs, metrics.

use crate::error::BoxError;
use crate::pipeline::{OutputSpec, PCollection, PTransform, PrimitiveSpec};
use crate::side_input::{PCollectionView, SideInputBinding};
use runnel_model::exec::{Batch, DoFnInstance, ExecContext, Executable, UserError};
use runnel_model::{urns, FnRef, PaneInfo, ParDoPayload, SideInputSpec, Timestamp, Window, WindowedValue};
use runnel_runner_core::typed::{downcast, TypedOps};
use runnel_runner_core::Data;

use std::marker::PhantomData;
use std::sync::Arc;

/// Elements are handed on in batches of this many.
const FLUSH_AT: usize = 1024;

/// Element-wise processing: the heart of `ParDo`.
///
/// A runner creates instances by cloning (closures and unregistered types) or deserialising
/// (registered types, see [`crate::register_dofn!`]), calls `setup` once, then for each bundle
/// `start_bundle`, `process` per element and `finish_bundle`, and finally `teardown`.
pub trait DoFn: Send + 'static {
    /// Input element type.
    type In: Data;
    /// Main output element type.
    type Out: Data;

    /// Once per instance, before any bundle (open connections, compile patterns…).
    fn setup(&mut self) -> Result<(), BoxError> {
        Ok(())
    }
    /// At the start of each bundle.
    fn start_bundle(&mut self) -> Result<(), BoxError> {
        Ok(())
    }
    /// Processes one element; outputs go through `ctx`.
    fn process(&mut self, element: Self::In, ctx: &mut DoFnContext<'_, '_, Self::Out>) -> Result<(), BoxError>;
    /// At the end of each bundle; may emit (in the global window, at the minimum timestamp,
    /// unless the emit names another).
    fn finish_bundle(&mut self, ctx: &mut DoFnContext<'_, '_, Self::Out>) -> Result<(), BoxError> {
        let _ = ctx;
        Ok(())
    }
    /// Once, when the instance is discarded.
    fn teardown(&mut self) -> Result<(), BoxError> {
        Ok(())
    }
}

/// A typed tag naming an additional output of a ParDo.
pub struct OutputTag<T> {
    id: String,
    _t: PhantomData<fn() -> T>,
}

impl<T> Clone for OutputTag<T> {
    fn clone(&self) -> Self {
        OutputTag { id: self.id.clone(), _t: PhantomData }
    }
}

impl<T> std::fmt::Debug for OutputTag<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "OutputTag({})", self.id)
    }
}

impl<T: Data> OutputTag<T> {
    /// A tag; `id` must be unique among the ParDo's outputs and differ from `out`.
    pub fn new(id: impl Into<String>) -> Self {
        OutputTag { id: id.into(), _t: PhantomData }
    }

    /// The tag's id.
    pub fn id(&self) -> &str {
        &self.id
    }
}

impl<T> serde::Serialize for OutputTag<T> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.id.serialize(s)
    }
}

impl<'de, T> serde::Deserialize<'de> for OutputTag<T> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(OutputTag { id: String::deserialize(d)?, _t: PhantomData })
    }
}

/// What a DoFn sees while processing an element: its metadata, outputs, side inputs, metrics.
pub struct DoFnContext<'a, 'b, O> {
    timestamp: Timestamp,
    window: Window,
    pane: PaneInfo,
    retraction: bool,
    main: &'a mut Vec<WindowedValue<O>>,
    tagged: &'a mut [Option<Batch>],
    io: &'a DoFnIo,
    exec: &'a mut ExecContext<'b>,
}

impl<O: Data> DoFnContext<'_, '_, O> {
    /// The element's event timestamp.
    pub fn timestamp(&self) -> Timestamp {
        self.timestamp
    }

    /// The element's window.
    pub fn window(&self) -> Window {
        self.window
    }

    /// The pane that produced the element.
    pub fn pane(&self) -> PaneInfo {
        self.pane
    }

    /// Whether the element retracts an earlier value (retracting accumulation).
    pub fn is_retraction(&self) -> bool {
        self.retraction
    }

    fn meta<T>(&self, value: T, timestamp: Timestamp) -> WindowedValue<T> {
        WindowedValue { value, timestamp, window: self.window, pane: self.pane, retraction: self.retraction }
    }

    /// Emits to the main output with the input's timestamp and window.
    pub fn emit(&mut self, value: O) {
        let wv = self.meta(value, self.timestamp);
        self.push_main(wv);
    }

    /// Emits to the main output with another timestamp (in the same window).
    pub fn emit_at(&mut self, value: O, timestamp: Timestamp) {
        let wv = self.meta(value, timestamp);
        self.push_main(wv);
    }

    /// Emits a fully specified windowed value to the main output.
    pub fn emit_windowed(&mut self, value: WindowedValue<O>) {
        self.push_main(value);
    }

    fn push_main(&mut self, wv: WindowedValue<O>) {
        self.main.push(wv);
        if self.main.len() >= FLUSH_AT {
            let full = std::mem::replace(self.main, Vec::with_capacity(FLUSH_AT));
            (self.exec.output)(0, Box::new(full));
        }
    }

    /// Emits to an additional output declared with [`ParDo::with_output`].
    pub fn emit_to<T: Data>(&mut self, tag: &OutputTag<T>, value: T) {
        let wv = self.meta(value, self.timestamp);
        let index = self.io.output_index(&tag.id);
        let Some(index) = index else {
            panic!("output tag '{}' was not declared with ParDo::with_output", tag.id);
        };
        let slot = &mut self.tagged[index - 1];
        let vec = slot.get_or_insert_with(|| Box::new(Vec::<WindowedValue<T>>::new()));
        let vec = vec
            .downcast_mut::<Vec<WindowedValue<T>>>()
            .unwrap_or_else(|| panic!("output tag '{}' used with two element types", tag.id));
        vec.push(wv);
    }

    /// The value of a side input declared with [`ParDo::with_side_input`], for this element's window.
    pub fn side_input<V: Send + Sync + 'static>(&self, view: &PCollectionView<V>) -> Result<&V, BoxError> {
        let index = self
            .io
            .side_inputs
            .iter()
            .position(|t| t == view.tag())
            .ok_or_else(|| format!("side input '{}' was not declared with ParDo::with_side_input", view.tag()))?;
        let value = self.exec.side_inputs.get(index, &self.window)?;
        value.downcast_ref::<V>().ok_or_else(|| format!("side input '{}' has an unexpected type", view.tag()).into())
    }

    /// Adds `n` to the counter `name` of this transform.
    pub fn inc_counter(&mut self, name: &str, n: i64) {
        self.exec.metrics.inc_counter(name, n);
    }

    /// Reports `value` to the distribution `name`.
    pub fn update_distribution(&mut self, name: &str, value: i64) {
        self.exec.metrics.update_distribution(name, value);
    }

    /// Sets the gauge `name`.
    pub fn set_gauge(&mut self, name: &str, value: i64) {
        self.exec.metrics.set_gauge(name, value);
    }

    /// The unique name of the transform running this DoFn.
    pub fn transform_name(&self) -> &str {
        self.exec.step
    }
}

/// Output tags and side input tags of one ParDo, from its payload.
#[derive(Clone, Debug)]
struct DoFnIo {
    outputs: Vec<String>,
    side_inputs: Vec<String>,
}

impl DoFnIo {
    fn from_payload(p: &ParDoPayload) -> Self {
        DoFnIo { outputs: p.outputs.clone(), side_inputs: p.side_inputs.iter().map(|s| s.tag.clone()).collect() }
    }

    fn output_index(&self, tag: &str) -> Option<usize> {
        self.outputs.iter().position(|t| t == tag).filter(|i| *i > 0)
    }
}

/// Runs a typed [`DoFn`] behind the runner-facing [`DoFnInstance`].
pub struct DoFnAdapter<F: DoFn> {
    f: F,
    io: DoFnIo,
}

impl<F: DoFn> DoFnAdapter<F> {
    /// Wraps `f` for the ParDo described by `payload`.
    pub fn new(f: F, payload: &ParDoPayload) -> Self {
        DoFnAdapter { f, io: DoFnIo::from_payload(payload) }
    }

    /// One empty slot per additional output.
    fn no_tagged_output(&self) -> Vec<Option<Batch>> {
        (1..self.io.outputs.len()).map(|_| None).collect()
    }

    fn flush(&self, main: Vec<WindowedValue<F::Out>>, tagged: Vec<Option<Batch>>, exec: &mut ExecContext<'_>) {
        if !main.is_empty() {
            (exec.output)(0, Box::new(main));
        }
        for (i, b) in tagged.into_iter().enumerate() {
            if let Some(b) = b {
                (exec.output)(i + 1, b);
            }
        }
    }
}

impl<F: DoFn> DoFnInstance for DoFnAdapter<F> {
    fn setup(&mut self) -> Result<(), UserError> {
        self.f.setup()
    }

    fn start_bundle(&mut self, _: &mut ExecContext<'_>) -> Result<(), UserError> {
        self.f.start_bundle()
    }

    fn process_batch(&mut self, input: Batch, exec: &mut ExecContext<'_>) -> Result<(), UserError> {
        let input = downcast::<F::In>(input);
        let mut main = Vec::with_capacity(input.len().min(FLUSH_AT));
        let mut tagged = self.no_tagged_output();
        for wv in input {
            let mut ctx = DoFnContext {
                timestamp: wv.timestamp,
                window: wv.window,
                pane: wv.pane,
                retraction: wv.retraction,
                main: &mut main,
                tagged: &mut tagged,
                io: &self.io,
                exec,
            };
            self.f.process(wv.value, &mut ctx)?;
        }
        self.flush(main, tagged, exec);
        Ok(())
    }

    fn finish_bundle(&mut self, exec: &mut ExecContext<'_>) -> Result<(), UserError> {
        let mut main = Vec::new();
        let mut tagged = self.no_tagged_output();
        let mut ctx = DoFnContext {
            timestamp: Timestamp::MIN,
            window: Window::Global,
            pane: PaneInfo::NO_FIRING,
            retraction: false,
            main: &mut main,
            tagged: &mut tagged,
            io: &self.io,
            exec,
        };
        self.f.finish_bundle(&mut ctx)?;
        self.flush(main, tagged, exec);
        Ok(())
    }

    fn teardown(&mut self) -> Result<(), UserError> {
        self.f.teardown()
    }
}

/// A DoFn registered under a stable name so it can be serialised into the graph and rebuilt from
/// it. Implement it with [`crate::register_dofn!`].
#[typetag::serde(tag = "type", content = "value")]
pub trait RegisteredDoFn: Send + Sync {
    /// A runnable instance for the ParDo described by `payload`.
    fn instantiate(&self, payload: &ParDoPayload) -> Box<dyn DoFnInstance>;
}

/// Registers a DoFn type under a stable name: its fields are serialised into the graph's payload,
/// and a runner rebuilds the DoFn from them. The type must implement `DoFn`, `Clone`, `Serialize`,
/// `Deserialize`, `Send` and `Sync`; the crate using the macro needs `typetag` as a dependency.
///
/// ```ignore
/// #[derive(Clone, Serialize, Deserialize)]
/// struct ExtractWords;
/// impl DoFn for ExtractWords { /* … */ }
/// runnel::register_dofn!(ExtractWords, "wordcount.ExtractWords");
/// ```
#[macro_export]
macro_rules! register_dofn {
    ($ty:ty, $name:literal) => {
        #[$crate::__private::typetag::serde(name = $name)]
        impl $crate::dofn::RegisteredDoFn for $ty {
            fn instantiate(&self, payload: &$crate::model::ParDoPayload) -> Box<dyn $crate::model::exec::DoFnInstance> {
                Box::new($crate::dofn::DoFnAdapter::new(::std::clone::Clone::clone(self), payload))
            }
        }
    };
}

/// How a ParDo finds its DoFn at run time.
enum DoFnSource<F> {
    Closure(F),
    Registered(serde_json::Value),
}

/// Applies a [`DoFn`] to every element.
pub struct ParDo<F: DoFn> {
    source: DoFnSource<F>,
    side_inputs: Vec<SideInputBinding>,
    extra_outputs: Vec<(String, ExtraOutput)>,
}

type ExtraOutput =
    Arc<dyn Fn(&mut crate::pipeline::Builder) -> (String, Arc<dyn runnel_model::exec::ElementOps>) + Send + Sync>;

impl<F: DoFn + Clone> ParDo<F> {
    /// A ParDo whose DoFn stays in the binary (cloned for each instance). Closures and types that
    /// are not registered use this; the graph names it by the transform's unique name.
    pub fn of(f: F) -> Self {
        ParDo { source: DoFnSource::Closure(f), side_inputs: Vec::new(), extra_outputs: Vec::new() }
    }
}

impl<F: DoFn + RegisteredDoFn + Sized> ParDo<F> {
    /// A ParDo whose DoFn is serialised into the graph (see [`crate::register_dofn!`]); runners
    /// rebuild it from the payload.
    pub fn registered(f: F) -> Self {
        let boxed: Box<dyn RegisteredDoFn> = Box::new(f);
        let value = serde_json::to_value(&boxed).unwrap_or_else(|e| serde_json::json!({ "error": e.to_string() }));
        ParDo { source: DoFnSource::Registered(value), side_inputs: Vec::new(), extra_outputs: Vec::new() }
    }
}

impl<F: DoFn> ParDo<F> {
    /// Makes a side input available to the DoFn through [`DoFnContext::side_input`].
    pub fn with_side_input<V: Send + Sync + 'static>(mut self, view: &PCollectionView<V>) -> Self {
        self.side_inputs.push(view.binding());
        self
    }

    /// Declares an additional output; the result of applying becomes [`ParDoOutputs`].
    pub fn with_output<T: Data>(mut self, tag: &OutputTag<T>) -> MultiParDo<F> {
        self.extra_outputs
            .push((tag.id.clone(), Arc::new(|b| (b.serde_coder::<T>(), Arc::new(TypedOps::<T>::new()) as _))));
        MultiParDo { inner: self }
    }

    fn build(self, input: PCollection<F::In>) -> Vec<String>
    where
        F: Clone,
    {
        let pipeline = input.pipeline().clone();
        let mut b = pipeline.lock();
        let name = b.current_name();
        let mut outputs = vec!["out".to_string()];
        for (tag, _) in &self.extra_outputs {
            if outputs.contains(tag) {
                b.error(format!("transform '{name}': output tag '{tag}' is declared twice or is 'out'"));
            }
            outputs.push(tag.clone());
        }
        let mut inputs = vec![("main".to_string(), input.id().to_string())];
        let mut side_specs = Vec::new();
        let mut materializers = Vec::new();
        for side in &self.side_inputs {
            if side_specs.iter().any(|s: &SideInputSpec| s.tag == side.tag) {
                b.error(format!("transform '{name}': side input '{}' is declared twice", side.tag));
                continue;
            }
            inputs.push((side.tag.clone(), side.pcollection.clone()));
            side_specs.push(SideInputSpec { tag: side.tag.clone(), view: side.kind });
            materializers.push(side.materializer.clone());
        }
        let (do_fn, instantiate): (FnRef, runnel_model::exec::DoFnFactory) = match self.source {
            DoFnSource::Closure(f) => {
                // A Mutex makes the prototype shareable across runner threads; it is only cloned.
                let prototype = std::sync::Mutex::new(f);
                (
                    FnRef::Closure { transform: name.clone() },
                    Arc::new(move |payload: &ParDoPayload| -> Result<Box<dyn DoFnInstance>, UserError> {
                        let f = prototype.lock().unwrap_or_else(|e| e.into_inner()).clone();
                        Ok(Box::new(DoFnAdapter::new(f, payload)))
                    }),
                )
            }
            DoFnSource::Registered(value) => (
                FnRef::Registered { value },
                Arc::new(|payload: &ParDoPayload| -> Result<Box<dyn DoFnInstance>, UserError> {
                    let FnRef::Registered { value } = &payload.do_fn else {
                        return Err("payload does not hold a registered DoFn".into());
                    };
                    let f: Box<dyn RegisteredDoFn> = serde_json::from_value(value.clone())
                        .map_err(|e| format!("cannot rebuild the registered DoFn from the graph: {e}"))?;
                    Ok(f.instantiate(payload))
                }),
            ),
        };
        let payload = ParDoPayload { do_fn, side_inputs: side_specs, outputs: outputs.clone() };
        let strategy = b.pcollection(input.id()).windowing_strategy_id.clone();
        let bounded = b.pcollection(input.id()).is_bounded;
        let mut specs = vec![OutputSpec {
            tag: "out".into(),
            coder: b.serde_coder::<F::Out>(),
            strategy: strategy.clone(),
            bounded,
            ops: Arc::new(TypedOps::<F::Out>::new()),
        }];
        for (tag, make) in &self.extra_outputs {
            let (coder, ops) = make(&mut b);
            specs.push(OutputSpec { tag: tag.clone(), coder, strategy: strategy.clone(), bounded, ops });
        }
        let payload_json = serde_json::to_value(&payload).expect("payload serialises");
        let mut ids = b.add_primitive(
            PrimitiveSpec {
                urn: urns::PAR_DO,
                inputs,
                payload: payload_json,
                executable: Some(Executable::ParDo { instantiate, side_inputs: materializers }),
            },
            specs,
        );
        // add_primitive returns ids in `specs` order: main first, then the extra outputs.
        ids.resize(outputs.len(), String::new());
        ids
    }
}

impl<F: DoFn + Clone> PTransform<PCollection<F::In>> for ParDo<F> {
    type Output = PCollection<F::Out>;
    fn expand(self, input: PCollection<F::In>) -> PCollection<F::Out> {
        let pipeline = input.pipeline().clone();
        let ids = self.build(input);
        PCollection::from_id(&pipeline, ids.into_iter().next().unwrap_or_default())
    }
}

/// A ParDo with additional outputs.
pub struct MultiParDo<F: DoFn> {
    inner: ParDo<F>,
}

impl<F: DoFn> MultiParDo<F> {
    /// Declares another output.
    pub fn with_output<T: Data>(self, tag: &OutputTag<T>) -> MultiParDo<F> {
        self.inner.with_output(tag)
    }

    /// Makes a side input available to the DoFn.
    pub fn with_side_input<V: Send + Sync + 'static>(self, view: &PCollectionView<V>) -> Self {
        MultiParDo { inner: self.inner.with_side_input(view) }
    }
}

/// The outputs of a ParDo with additional outputs.
pub struct ParDoOutputs<O> {
    pipeline: crate::Pipeline,
    main: String,
    tagged: Vec<(String, String)>,
    _o: PhantomData<fn() -> O>,
}

impl<O: Data> ParDoOutputs<O> {
    /// The main output.
    pub fn main(&self) -> PCollection<O> {
        PCollection::from_id(&self.pipeline, self.main.clone())
    }

    /// The output of `tag` (panics if the tag was not declared: a construction bug).
    pub fn get<T: Data>(&self, tag: &OutputTag<T>) -> PCollection<T> {
        let id = self
            .tagged
            .iter()
            .find(|(t, _)| *t == tag.id)
            .map(|(_, id)| id.clone())
            .unwrap_or_else(|| panic!("output tag '{}' was not declared on this ParDo", tag.id));
        PCollection::from_id(&self.pipeline, id)
    }
}

impl<O> crate::PValue for ParDoOutputs<O> {
    fn pcollections(&self) -> Vec<(String, String)> {
        let mut v = vec![("out".to_string(), self.main.clone())];
        v.extend(self.tagged.iter().cloned());
        v
    }
}

impl<F: DoFn + Clone> PTransform<PCollection<F::In>> for MultiParDo<F> {
    type Output = ParDoOutputs<F::Out>;
    fn expand(self, input: PCollection<F::In>) -> ParDoOutputs<F::Out> {
        let pipeline = input.pipeline().clone();
        let tags: Vec<String> = self.inner.extra_outputs.iter().map(|(t, _)| t.clone()).collect();
        let ids = self.inner.build(input);
        let mut it = ids.into_iter();
        let main = it.next().unwrap_or_default();
        ParDoOutputs { pipeline, main, tagged: tags.into_iter().zip(it).collect(), _o: PhantomData }
    }
}

/// A DoFn from a closure `|element, ctx| -> Result<(), BoxError>`.
pub struct FnDoFn<I, O, F> {
    f: F,
    _t: PhantomData<fn(I) -> O>,
}

impl<I, O, F: Clone> Clone for FnDoFn<I, O, F> {
    fn clone(&self) -> Self {
        FnDoFn { f: self.f.clone(), _t: PhantomData }
    }
}

impl<I: Data, O: Data, F> DoFn for FnDoFn<I, O, F>
where
    F: FnMut(I, &mut DoFnContext<'_, '_, O>) -> Result<(), BoxError> + Send + 'static,
{
    type In = I;
    type Out = O;
    fn process(&mut self, element: I, ctx: &mut DoFnContext<'_, '_, O>) -> Result<(), BoxError> {
        (self.f)(element, ctx)
    }
}

impl<I: Data, O: Data, F> ParDo<FnDoFn<I, O, F>>
where
    F: FnMut(I, &mut DoFnContext<'_, '_, O>) -> Result<(), BoxError> + Send + Clone + 'static,
{
    /// A ParDo from a closure that sees the full context (timestamp, window, side inputs…).
    pub fn from_fn(f: F) -> Self {
        ParDo::of(FnDoFn { f, _t: PhantomData })
    }
}
