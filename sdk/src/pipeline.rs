//! `Pipeline`, `PCollection<T>` and the construction machinery behind `apply`.

use crate::error::PipelineError;
use crate::options::{PipelineOptions, RunnerKind};
use runnel_model::exec::{Bindings, ElementOps, Executable, Job};
use runnel_model::metrics::MetricsSnapshot;
use runnel_model::{urns, Boundedness, Coder, Environment, Graph, PCollectionNode, Transform, WindowingStrategy};
use runnel_runner_core::runner::{CancelSignal, Clock};
use runnel_runner_core::typed::TypedOps;
use runnel_runner_core::{Data, JobState, Key, Runner, RunnerOptions};
use std::collections::{BTreeMap, BTreeSet};
use std::marker::PhantomData;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

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

/// One level of composite nesting while a transform expands.
struct Scope {
    full_name: String,
    children: Vec<String>,
    primitive: bool,
}

pub(crate) struct Builder {
    graph: Graph,
    bindings: Bindings,
    scopes: Vec<Scope>,
    errors: Vec<String>,
    warnings: Vec<String>,
    coder_ids: BTreeMap<Coder, String>,
    strategy_ids: Vec<(WindowingStrategy, String)>,
    /// The code of user window functions, by windowing strategy id (groupings need it to merge).
    window_fns: BTreeMap<String, Arc<dyn runnel_model::exec::WindowAssigner>>,
    names: BTreeSet<String>,
    options: PipelineOptions,
}

/// What a primitive transform declares when it is added to the graph.
pub(crate) struct PrimitiveSpec {
    pub urn: &'static str,
    pub inputs: Vec<(String, String)>,
    pub payload: serde_json::Value,
    pub executable: Option<Executable>,
}

/// One output of a primitive: its local tag, coder, windowing and element operations.
pub(crate) struct OutputSpec {
    pub tag: String,
    pub coder: String,
    pub strategy: String,
    pub bounded: Boundedness,
    pub ops: Arc<dyn ElementOps>,
}

impl Pipeline {
    /// A new, empty pipeline.
    pub fn new(options: PipelineOptions) -> Self {
        let graph = Graph {
            environment: Environment { sdk: format!("runnel {}", env!("CARGO_PKG_VERSION")), binary_fingerprint: None },
            ..Graph::default()
        };
        Pipeline {
            inner: Arc::new(Mutex::new(Builder {
                graph,
                bindings: Bindings::default(),
                scopes: Vec::new(),
                errors: Vec::new(),
                warnings: Vec::new(),
                coder_ids: BTreeMap::new(),
                strategy_ids: Vec::new(),
                window_fns: BTreeMap::new(),
                names: BTreeSet::new(),
                options,
            })),
        }
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

    /// Runs the pipeline on the runner its options name, until every watermark reaches +∞.
    ///
    /// With `--dump-graph=FILE` it writes the graph as JSON to FILE and exits the process with
    /// status 0 without running anything, so every pipeline program honours that flag.
    ///
    /// A pipeline reading an unbounded source runs until the source ends (its watermark reaches
    /// +∞); use [`Pipeline::run_async`] to be able to cancel it.
    pub fn run(&self) -> Result<PipelineResult, PipelineError> {
        let (job, runner, options) = self.prepare()?;
        let result = runner.run(job, &options)?;
        Ok(PipelineResult { state: result.state, metrics: result.metrics })
    }

    /// Starts the pipeline on a thread of its own and returns at once; the handle can cancel the
    /// job or wait for it. Honours `--dump-graph` as [`Pipeline::run`] does.
    pub fn run_async(&self) -> Result<PipelineHandle, PipelineError> {
        let (job, runner, options) = self.prepare()?;
        Ok(PipelineHandle::spawn(job, runner, options))
    }

    /// As [`Pipeline::run_async`], with processing time read from `clock` (e.g. a
    /// [`runnel_runner_core::runner::ManualClock`] the test advances) instead of the wall clock.
    /// A pipeline with a TestStream has its own clock and refuses another one.
    pub fn run_async_with_clock(&self, clock: Arc<dyn Clock>) -> Result<PipelineHandle, PipelineError> {
        let (job, runner, mut options) = self.prepare()?;
        options.clock = Some(clock);
        Ok(PipelineHandle::spawn(job, runner, options))
    }

    /// Runs on the direct runner with adjusted runner options, ignoring `--runner` and
    /// `--dump-graph` (for test tools that need the direct runner's hooks).
    pub(crate) fn run_direct_with(
        &self,
        configure: impl FnOnce(&mut RunnerOptions),
    ) -> Result<PipelineResult, PipelineError> {
        let job = self.job()?;
        let mut options = self.options().runner_options();
        configure(&mut options);
        let result = runnel_runner_direct::DirectRunner.run(job, &options)?;
        Ok(PipelineResult { state: result.state, metrics: result.metrics })
    }

    /// The checked job, the runner its options name and the runner options; handles `--dump-graph`.
    fn prepare(&self) -> Result<(Job, Box<dyn Runner + Send>, RunnerOptions), PipelineError> {
        let job = self.job()?;
        let options = self.options();
        if let Some(path) = &options.dump_graph {
            write_atomically(path, job.graph.to_json().as_bytes())
                .map_err(|error| PipelineError::DumpGraph { path: path.display().to_string(), error })?;
            std::process::exit(0);
        }
        let runner: Box<dyn Runner + Send> = match options.runner {
            RunnerKind::Direct => Box::new(runnel_runner_direct::DirectRunner),
            RunnerKind::Rayon => return Err(PipelineError::RunnerNotAvailable("rayon")),
            RunnerKind::Grpc => return Err(PipelineError::RunnerNotAvailable("grpc")),
        };
        Ok((job, runner, options.runner_options()))
    }
}

fn write_atomically(path: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(std::path::Path::new("."));
    let name = path.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
    let tmp = dir.join(format!(".{name}.runnel-tmp-{}", std::process::id()));
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path).inspect_err(|_| {
        let _ = std::fs::remove_file(&tmp);
    })
}

/// A pipeline running on a thread of its own (see [`Pipeline::run_async`]).
///
/// Dropping the handle of a job that has not finished cancels it.
pub struct PipelineHandle {
    cancel: CancelSignal,
    outcome: Receiver<Result<PipelineResult, PipelineError>>,
    thread: Option<JoinHandle<()>>,
    result: Option<Result<PipelineResult, PipelineError>>,
}

impl PipelineHandle {
    fn spawn(job: Job, runner: Box<dyn Runner + Send>, mut options: RunnerOptions) -> Self {
        let cancel = CancelSignal::new();
        options.cancel = cancel.clone();
        let (tx, outcome) = std::sync::mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("runnel-job".into())
            .spawn(move || {
                let result = runner
                    .run(job, &options)
                    .map(|r| PipelineResult { state: r.state, metrics: r.metrics })
                    .map_err(PipelineError::from);
                let _ = tx.send(result);
            })
            .expect("the job thread starts");
        PipelineHandle { cancel, outcome, thread: Some(thread), result: None }
    }

    /// Asks the job to stop; it ends in [`JobState::Cancelled`] at its next check (a job that
    /// already finished keeps its state).
    pub fn cancel(&self) {
        self.cancel.cancel();
    }

    /// Whether the job has ended (done, cancelled or failed).
    pub fn is_finished(&mut self) -> bool {
        self.wait_until_finish_timeout(Duration::ZERO)
    }

    /// Waits up to `timeout` for the job to end; true if it has.
    pub fn wait_until_finish_timeout(&mut self, timeout: Duration) -> bool {
        if self.result.is_some() {
            return true;
        }
        match self.outcome.recv_timeout(timeout) {
            Ok(result) => {
                self.result = Some(result);
                self.join();
                true
            }
            Err(RecvTimeoutError::Timeout) => false,
            Err(RecvTimeoutError::Disconnected) => {
                self.join();
                unreachable!("the job thread ended without a result and without panicking")
            }
        }
    }

    /// Waits for the job to end and returns how it ended.
    pub fn wait_until_finish(mut self) -> Result<PipelineResult, PipelineError> {
        if self.result.is_none() {
            let result = self.outcome.recv();
            self.join();
            self.result = Some(result.unwrap_or_else(|_| unreachable!("the job thread ended without a result")));
        }
        self.result.take().expect("result set above")
    }

    /// Cancels the job and waits for it to end.
    pub fn cancel_and_wait(self) -> Result<PipelineResult, PipelineError> {
        self.cancel();
        self.wait_until_finish()
    }

    /// Joins the job thread, re-raising its panic (a runner bug: user code panics are errors).
    fn join(&mut self) {
        if let Some(thread) = self.thread.take() {
            if let Err(panic) = thread.join() {
                std::panic::resume_unwind(panic);
            }
        }
    }
}

impl Drop for PipelineHandle {
    fn drop(&mut self) {
        if self.result.is_none() {
            self.cancel.cancel();
        }
    }
}

impl std::fmt::Debug for PipelineHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PipelineHandle").field("finished", &self.result.is_some()).finish()
    }
}

/// What a finished pipeline reports.
#[derive(Clone, Debug)]
pub struct PipelineResult {
    state: JobState,
    metrics: MetricsSnapshot,
}

impl PipelineResult {
    /// How the job ended.
    pub fn state(&self) -> JobState {
        self.state
    }

    /// All metrics, keyed by transform and name.
    pub fn metrics(&self) -> &MetricsSnapshot {
        &self.metrics
    }

    /// A counter summed over every transform that reported it (0 if none did).
    pub fn counter(&self, name: &str) -> i64 {
        self.metrics.counter(name)
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
    let output = transform.expand(input);
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

impl Builder {
    /// The graph without coders that nothing refers to any more (a PCollection's coder is
    /// replaced when a grouping needs its key-value form).
    fn finished_graph(&self) -> Graph {
        let mut graph = self.graph.clone();
        let mut used: BTreeSet<String> = graph.pcollections.values().map(|p| p.coder_id.clone()).collect();
        for t in graph.transforms.values().filter(|t| t.urn == urns::COMBINE_PER_KEY) {
            if let Ok(payload) = t.payload_as::<runnel_model::CombinePayload>() {
                used.insert(payload.accumulator_coder);
            }
        }
        let mut todo: Vec<String> = used.iter().cloned().collect();
        while let Some(id) = todo.pop() {
            for c in graph.coders.get(&id).map(|c| c.components.clone()).unwrap_or_default() {
                if used.insert(c.clone()) {
                    todo.push(c);
                }
            }
        }
        graph.coders.retain(|id, _| used.contains(id));
        graph
    }

    /// Registers the primitive that the innermost transform being applied expands to, and
    /// returns the ids of its outputs.
    pub(crate) fn add_primitive(&mut self, spec: PrimitiveSpec, outputs: Vec<OutputSpec>) -> Vec<String> {
        let Some(scope) = self.scopes.last_mut() else {
            self.errors.push(format!("a {} was added outside of apply()", spec.urn));
            return Vec::new();
        };
        if scope.primitive || !scope.children.is_empty() {
            self.errors.push(format!(
                "transform '{}' expands to more than one primitive: apply each under its own name",
                scope.full_name
            ));
        }
        scope.primitive = true;
        let name = scope.full_name.clone();
        let mut out_map = BTreeMap::new();
        let mut ids = Vec::new();
        for o in outputs {
            let id = format!("{name}.{}", o.tag);
            self.graph.pcollections.insert(
                id.clone(),
                PCollectionNode {
                    unique_name: id.clone(),
                    coder_id: o.coder,
                    windowing_strategy_id: o.strategy,
                    is_bounded: o.bounded,
                },
            );
            self.bindings.elements.insert(id.clone(), o.ops);
            out_map.insert(o.tag, id.clone());
            ids.push(id);
        }
        if let Some(exe) = spec.executable {
            self.bindings.transforms.insert(name.clone(), exe);
        }
        self.graph.transforms.insert(
            name.clone(),
            Transform {
                unique_name: name,
                urn: spec.urn.to_string(),
                inputs: spec.inputs.into_iter().collect(),
                outputs: out_map,
                payload: spec.payload,
                subtransforms: Vec::new(),
            },
        );
        ids
    }

    /// The unique name of the transform being expanded.
    pub(crate) fn current_name(&self) -> String {
        self.scopes.last().map(|s| s.full_name.clone()).unwrap_or_default()
    }

    /// Beam's safety check: a trigger that can finish closes its window, and later data for it
    /// is dropped. Recorded as a warning (see [`Pipeline::warnings`]), or as a construction
    /// error when the options refuse such triggers.
    pub(crate) fn trigger_may_finish(&mut self, transform: &str, trigger: &runnel_model::Trigger) {
        let message = format!(
            "transform '{transform}': trigger {trigger:?} may finish, after which data arriving for its window \
             is dropped (counted in dropped_due_to_closed_window); wrap it in Repeatedly to keep firing"
        );
        tracing::warn!("{message}");
        if self.options.refuse_unsafe_triggers {
            self.errors.push(message);
        } else {
            self.warnings.push(message);
        }
    }

    pub(crate) fn error(&mut self, message: String) {
        self.errors.push(message);
    }

    fn intern_coder(&mut self, coder: Coder) -> String {
        if let Some(id) = self.coder_ids.get(&coder) {
            return id.clone();
        }
        let id = format!("c{}", self.coder_ids.len());
        self.graph.coders.insert(id.clone(), coder.clone());
        self.coder_ids.insert(coder, id.clone());
        id
    }

    /// The default serde coder of `T`.
    pub(crate) fn serde_coder<T: 'static>(&mut self) -> String {
        self.intern_coder(Coder {
            urn: urns::SERDE_CODER.to_string(),
            components: Vec::new(),
            rust_type: Some(std::any::type_name::<T>().to_string()),
        })
    }

    /// The coder of a key-value pair.
    pub(crate) fn kv_coder<K: 'static, V: 'static>(&mut self) -> String {
        let k = self.serde_coder::<K>();
        let v = self.serde_coder::<V>();
        self.intern_coder(Coder { urn: urns::KV_CODER.to_string(), components: vec![k, v], rust_type: None })
    }

    /// The coder of a key with all its values.
    pub(crate) fn kv_iterable_coder<K: 'static, V: 'static>(&mut self) -> String {
        let k = self.serde_coder::<K>();
        let v = self.serde_coder::<V>();
        let it =
            self.intern_coder(Coder { urn: urns::ITERABLE_CODER.to_string(), components: vec![v], rust_type: None });
        self.intern_coder(Coder { urn: urns::KV_CODER.to_string(), components: vec![k, it], rust_type: None })
    }

    /// Marks a PCollection of pairs as keyed: KV coder and key partitioning.
    pub(crate) fn make_keyed<K: Key, V: Data>(&mut self, pc: &str) {
        let coder = self.kv_coder::<K, V>();
        self.set_coder(pc, coder);
        self.bindings.elements.insert(pc.to_string(), Arc::new(TypedOps::<(K, V)>::keyed()));
    }

    /// Gives a PCollection of pairs key partitioning, keeping its coder.
    pub(crate) fn make_keyed_output<K: Key, V: Data>(&mut self, pc: &str) {
        self.bindings.elements.insert(pc.to_string(), Arc::new(TypedOps::<(K, V)>::keyed()));
    }

    /// Records the code of the user window function of a windowing strategy.
    pub(crate) fn bind_window_fn(&mut self, strategy_id: &str, f: Arc<dyn runnel_model::exec::WindowAssigner>) {
        self.window_fns.insert(strategy_id.to_string(), f);
    }

    /// The code of the user window function windowing `pc`, if it has one.
    pub(crate) fn window_fn_of(&self, pc: &str) -> Option<Arc<dyn runnel_model::exec::WindowAssigner>> {
        self.window_fns.get(&self.graph.pcollections.get(pc)?.windowing_strategy_id).cloned()
    }

    pub(crate) fn intern_strategy(&mut self, ws: WindowingStrategy) -> String {
        if let Some((_, id)) = self.strategy_ids.iter().find(|(s, _)| *s == ws) {
            return id.clone();
        }
        let id = format!("ws{}", self.strategy_ids.len());
        self.graph.windowing_strategies.insert(id.clone(), ws.clone());
        self.strategy_ids.push((ws, id.clone()));
        id
    }

    pub(crate) fn pcollection(&self, id: &str) -> &PCollectionNode {
        &self.graph.pcollections[id]
    }

    pub(crate) fn strategy_of(&self, pc: &str) -> WindowingStrategy {
        let id = &self.graph.pcollections[pc].windowing_strategy_id;
        self.graph.windowing_strategies[id].clone()
    }

    /// Sets the coder of `pc` and of every PCollection tied to it by a transform that keeps
    /// elements as they are (Flatten, Reshuffle, WindowInto), so their coders stay equal.
    /// The element type is the same, so the bytes are too: only the coder's description changes.
    pub(crate) fn set_coder(&mut self, pc: &str, coder: String) {
        let mut todo = vec![pc.to_string()];
        while let Some(id) = todo.pop() {
            match self.graph.pcollections.get_mut(&id) {
                Some(node) if node.coder_id != coder => node.coder_id = coder.clone(),
                _ => continue,
            }
            for t in self.graph.transforms.values() {
                let keeps = [urns::FLATTEN, urns::RESHUFFLE, urns::WINDOW_INTO].contains(&t.urn.as_str());
                if keeps && (t.inputs.values().any(|p| *p == id) || t.outputs.values().any(|p| *p == id)) {
                    todo.extend(t.inputs.values().chain(t.outputs.values()).cloned());
                }
            }
        }
    }
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
