//! `Pipeline`, `PCollection<T>` and applying transforms. The construction state is in
//! [`crate::builder`]; running a pipeline in [`crate::launch`]; a running job's handle in
//! [`crate::handle`].

use crate::builder::Scope;
pub(crate) use crate::builder::{Builder, OutputSpec, PrimitiveSpec};
use crate::error::PipelineError;
use crate::options::PipelineOptions;
use runnel_model::exec::Job;
use runnel_model::{urns, Boundedness, Environment, Graph, Transform, WindowingStrategy};
use runnel_runner_core::typed::TypedOps;
use runnel_runner_core::Data;
use std::cell::RefCell;
use std::marker::PhantomData;
use std::sync::{Arc, Mutex, MutexGuard};

/// A pipeline under construction. Cheap to clone: clones share the same graph.
#[derive(Clone)]
pub struct Pipeline {
    inner: Arc<Mutex<Builder>>,
}

/// A typed handle to a PCollection of the pipeline.
pub struct PCollection<T> {
    pipeline: Pipeline,
    id: String,
    _t: PhantomData<fn() -> T>,
}

impl<T> Clone for PCollection<T> {
    fn clone(&self) -> Self {
        PCollection { pipeline: self.pipeline.clone(), id: self.id.clone(), _t: PhantomData }
    }
}

impl<T> std::fmt::Debug for PCollection<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PCollection<{}>({})", std::any::type_name::<T>(), self.id)
    }
}

/// The input of root transforms such as `Create`.
#[derive(Clone)]
pub struct PBegin {
    pipeline: Pipeline,
}

/// A composable transform: `expand` applies other transforms (or registers a primitive).
pub trait PTransform<In> {
    /// What applying it produces.
    type Output;
    /// Builds the transform's part of the graph.
    fn expand(self, input: In) -> Self::Output;
}

/// Values that can be inputs or outputs of transforms: they name their PCollections.
pub trait PValue {
    /// `(local tag, PCollection id)` pairs.
    fn pcollections(&self) -> Vec<(String, String)>;
}

impl<T> PValue for PCollection<T> {
    fn pcollections(&self) -> Vec<(String, String)> {
        vec![("out".to_string(), self.id.clone())]
    }
}

impl PValue for PBegin {
    fn pcollections(&self) -> Vec<(String, String)> {
        Vec::new()
    }
}

impl PValue for () {
    fn pcollections(&self) -> Vec<(String, String)> {
        Vec::new()
    }
}

impl<T> PValue for Vec<PCollection<T>> {
    fn pcollections(&self) -> Vec<(String, String)> {
        self.iter().enumerate().map(|(i, p)| (i.to_string(), p.id.clone())).collect()
    }
}

macro_rules! tuple_pvalue {
    ($($name:ident $idx:tt),+) => {
        impl<$($name: PValue),+> PValue for ($($name,)+) {
            fn pcollections(&self) -> Vec<(String, String)> {
                let mut out = Vec::new();
                $(for (tag, id) in self.$idx.pcollections() {
                    out.push((format!("{}.{}", $idx, tag), id));
                })+
                out
            }
        }
    };
}
tuple_pvalue!(A 0, B 1);
tuple_pvalue!(A 0, B 1, C 2);

impl Pipeline {
    /// A new, empty pipeline.
    pub fn new(options: PipelineOptions) -> Self {
        let graph = Graph {
            environment: Environment { sdk: format!("runnel {}", env!("CARGO_PKG_VERSION")), binary_fingerprint: None },
            ..Graph::default()
        };
        Pipeline { inner: Arc::new(Mutex::new(Builder::new(graph, options))) }
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, Builder> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The pipeline's options.
    pub fn options(&self) -> PipelineOptions {
        self.lock().options.clone()
    }

    /// The root to apply sources to.
    pub fn begin(&self) -> PBegin {
        PBegin { pipeline: self.clone() }
    }

    /// Applies a root transform (a source such as `Create`).
    pub fn apply<T: PTransform<PBegin>>(&self, name: &str, transform: T) -> T::Output
    where
        T::Output: PValue,
    {
        apply_named(self, name, self.begin(), transform)
    }

    /// The portable graph built so far.
    pub fn graph(&self) -> Graph {
        self.lock().finished_graph()
    }

    /// Construction warnings, e.g. triggers that may finish and drop data.
    pub fn warnings(&self) -> Vec<String> {
        self.lock().warnings.clone()
    }

    /// Construction errors recorded so far (duplicate names, mismatched windowing, …).
    pub fn construction_errors(&self) -> Vec<String> {
        self.lock().errors.clone()
    }

    /// The graph and the code it refers to, checked: construction errors and graph validation.
    pub fn job(&self) -> Result<Job, PipelineError> {
        let b = self.lock();
        if !b.errors.is_empty() {
            return Err(PipelineError::Construction(b.errors.clone()));
        }
        let graph = b.finished_graph();
        graph.validate()?;
        Ok(Job { graph, bindings: b.bindings.clone() })
    }
}

/// Applies `transform` to `input` under `name`, recording the composite (or primitive) node.
pub(crate) fn apply_named<In: PValue, T: PTransform<In>>(
    pipeline: &Pipeline,
    name: &str,
    input: In,
    transform: T,
) -> T::Output
where
    T::Output: PValue,
{
    let full_name = {
        let mut b = pipeline.lock();
        let parent = b.scopes.last().map(|s| s.full_name.clone());
        let mut full = match parent {
            Some(p) => format!("{p}/{name}"),
            None => name.to_string(),
        };
        if name.is_empty() || name.contains('/') {
            b.errors.push(format!("transform name '{name}' must be non-empty and contain no '/'"));
        }
        if !b.names.insert(full.clone()) {
            b.errors.push(format!("duplicate transform name '{full}': names must be unique"));
            let mut n = 2;
            while !b.names.insert(format!("{full}#{n}")) {
                n += 1;
            }
            full = format!("{full}#{n}");
        }
        b.scopes.push(Scope { full_name: full.clone(), children: Vec::new(), primitive: false });
        full
    };
    let inputs = input.pcollections();
    EXPANDING.with(|e| e.borrow_mut().push(pipeline.clone()));
    let output = transform.expand(input);
    EXPANDING.with(|e| e.borrow_mut().pop());
    let mut b = pipeline.lock();
    let scope = b.scopes.pop().expect("scope pushed above");
    if !scope.primitive {
        if scope.children.is_empty() {
            b.errors.push(format!("transform '{full_name}' applied no transform"));
        }
        let composite = Transform {
            unique_name: full_name.clone(),
            urn: urns::COMPOSITE.to_string(),
            inputs: inputs.into_iter().collect(),
            outputs: output.pcollections().into_iter().collect(),
            payload: serde_json::Value::Null,
            subtransforms: scope.children,
        };
        b.graph.transforms.insert(full_name.clone(), composite);
    }
    match b.scopes.last_mut() {
        Some(parent) => parent.children.push(full_name),
        None => b.graph.root_transforms.push(full_name),
    }
    output
}

impl<T: Data> PCollection<T> {
    pub(crate) fn from_id(pipeline: &Pipeline, id: String) -> Self {
        PCollection { pipeline: pipeline.clone(), id, _t: PhantomData }
    }

    /// The PCollection's id in the graph.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The pipeline it belongs to.
    pub fn pipeline(&self) -> &Pipeline {
        &self.pipeline
    }

    /// Applies a transform under `name` (unique among its siblings).
    pub fn apply<X: PTransform<PCollection<T>>>(&self, name: &str, transform: X) -> X::Output
    where
        X::Output: PValue,
    {
        apply_named(&self.pipeline, name, self.clone(), transform)
    }

    /// The windowing strategy of this PCollection.
    pub fn windowing_strategy(&self) -> WindowingStrategy {
        self.pipeline.lock().strategy_of(&self.id)
    }

    /// Whether this PCollection is bounded.
    pub fn boundedness(&self) -> Boundedness {
        self.pipeline.lock().pcollection(&self.id).is_bounded
    }

    /// Whether elements of this PCollection may be retractions: it comes from a grouping in
    /// retracting mode (directly or through element-wise transforms), and no
    /// [`RenderRetractions`](crate::transforms::RenderRetractions) turned them into plain values.
    pub fn carries_retractions(&self) -> bool {
        self.pipeline.lock().is_retracting(&self.id)
    }

    /// For a transform that cannot apply retractions (a sink that only appends, say): when this
    /// PCollection carries them, records a construction error naming the transform being
    /// applied, the PCollection and `why`, so the pipeline is refused before it runs. Returns
    /// whether it refused.
    pub fn refuse_retractions(&self, why: &str) -> bool {
        let mut b = self.pipeline.lock();
        if !b.is_retracting(&self.id) {
            return false;
        }
        let name = b.current_name();
        b.refuse_retractions(&name, &self.id, why);
        true
    }
}

impl PBegin {
    /// The pipeline.
    pub fn pipeline(&self) -> &Pipeline {
        &self.pipeline
    }
}

/// Adds a primitive with one main output of type `O` in the given windowing and boundedness.
pub(crate) fn single_output<O: Data>(
    pipeline: &Pipeline,
    spec: PrimitiveSpec,
    strategy: WindowingStrategy,
    bounded: Boundedness,
    coder: Option<String>,
) -> PCollection<O> {
    let mut b = pipeline.lock();
    let coder = coder.unwrap_or_else(|| b.serde_coder::<O>());
    let strategy = b.intern_strategy(strategy);
    let ids = b.add_primitive(
        spec,
        vec![OutputSpec { tag: "out".into(), coder, strategy, bounded, ops: Arc::new(TypedOps::<O>::new()) }],
    );
    drop(b);
    PCollection::from_id(pipeline, ids.into_iter().next().unwrap_or_default())
}

thread_local! {
    /// The pipelines whose transforms are expanding on this thread, innermost last.
    static EXPANDING: RefCell<Vec<Pipeline>> = const { RefCell::new(Vec::new()) };
}

/// The pipeline whose transform is expanding on this thread, if any (for a transform whose input
/// names no PCollection, such as a Flatten of nothing).
pub(crate) fn expanding() -> Option<Pipeline> {
    EXPANDING.with(|e| e.borrow().last().cloned())
}
