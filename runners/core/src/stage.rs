//! The stage executor: runs one stage of a [`Plan`] on batches, the same way on every runner.
//!
//! A [`StageExecutor`] is one live instance of a stage (a runner running a stage on several
//! threads or workers makes one per partition). It owns the stage's user code — DoFn instances
//! with their lifecycle (setup once, bundles, teardown), the grouping operator of a grouping root,
//! the side-input views of a root ParDo — and pushes every batch depth-first through the fused
//! transforms: an output batch of a DoFn is processed by the next transform before the DoFn goes
//! on, so a DoFn emitting millions of elements for one input holds at most one batch of them.
//! Whatever leaves the stage goes to the runner's [`StageSink`].
//!
//! The runner decides *when* things happen (which batch, which watermark, which timer); the
//! executor decides *how*: user code runs under one panic guard that names the transform, tagged
//! outputs are routed, metrics are kept per transform, windows are assigned, main input waits for
//! side inputs that are not ready for its windows ([`side_input_ready`]), and a lifted combine
//! folds each bundle before its shuffle write.

use crate::plan::{OutputKind, Plan, RootKind, Stage};
use crate::{panic_message, trigger, windows, RunError};
use runnel_model::exec::{
    Batch, Bindings, DoFnFactory, DoFnInstance, ElementOps, ExecContext, Executable, KeyedContext, KeyedOperator,
    KeyedSideInput, SideInputAccess, UserError, ViewMaterializer, ViewValue, WindowAssigner,
};
use runnel_model::metrics::{MetricsSnapshot, StepMetrics};
use runnel_model::{urns, Graph, ParDoPayload, Timestamp, Window, WindowFnSpec, WindowIntoPayload};
use std::collections::{BTreeMap, BTreeSet};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

/// Runs user code, turning its errors and panics into a failure of `transform`.
pub fn guarded<T>(transform: &str, f: impl FnOnce() -> Result<T, UserError>) -> Result<T, RunError> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(RunError::user_code(transform, e)),
        Err(panic) => Err(RunError::user_code(transform, panic_message(&*panic))),
    }
}

fn binding_error(transform: &str, message: impl Into<String>) -> RunError {
    RunError::Binding { transform: transform.to_string(), message: message.into() }
}

/// Where a stage's outputs go, and a look at every batch inside it.
pub trait StageSink {
    /// A batch leaves the stage through output `output` (index in [`Stage::outputs`]).
    fn write(&mut self, output: usize, batch: Batch) -> Result<(), RunError>;

    /// Every batch a transform of the stage produced, before anything reads it (the direct runner
    /// checks encodings here). `producer` is the transform, `pcollection` the PCollection.
    fn inspect(
        &mut self,
        producer: &str,
        pcollection: &str,
        ops: &dyn ElementOps,
        batch: &mut Batch,
    ) -> Result<(), RunError> {
        let _ = (producer, pcollection, ops, batch);
        Ok(())
    }
}

/// How far a side input has come, as the runner knows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SideProgress {
    /// The side input PCollection's watermark.
    pub watermark: Timestamp,
    /// Whether all of it was delivered (watermark at +∞ and nothing pending).
    pub complete: bool,
}

/// Whether a side input is ready for a main-input element in `main_window`: complete, or its
/// watermark past the end of the side window `main_window` maps to (all its on-time data is in).
pub fn side_input_ready(
    progress: SideProgress,
    side_window_fn: &WindowFnSpec,
    main_window: &Window,
) -> Result<bool, UserError> {
    if progress.complete {
        return Ok(true);
    }
    let window = windows::side_input_window(side_window_fn, main_window)?;
    Ok(progress.watermark > window.max_timestamp())
}

/// Where a batch goes next inside a stage.
#[derive(Clone, Copy, Debug)]
enum Edge {
    /// Into node `n` (index in the executor's node list).
    Node(usize),
    /// Out of the stage through output `o`.
    Out(usize),
}

/// One output PCollection of a node, and who reads it.
struct Port {
    producer: String,
    pcollection: String,
    ops: Arc<dyn ElementOps>,
    edges: Vec<Edge>,
}

enum Assign {
    Builtin(WindowFnSpec),
    Custom(Arc<dyn WindowAssigner>),
}

enum NodeKind {
    ParDo {
        factory: DoFnFactory,
        payload: ParDoPayload,
        instance: Option<Box<dyn DoFnInstance>>,
    },
    /// A DoFn instance made for the stage rather than bound to a transform: the pre-shuffle half
    /// of a lifted combine, or a combine phase a fusing runner asked for.
    Instance {
        instance: Box<dyn DoFnInstance>,
    },
    WindowInto(Assign),
    /// Flatten and Reshuffle.
    PassThrough,
}

struct Node {
    transform: String,
    kind: NodeKind,
    /// By output index (a ParDo's payload order; one for the others).
    outputs: Vec<Port>,
    /// Whether the node is inside a bundle (started lazily, when its first batch arrives).
    in_bundle: bool,
    metrics: StepMetrics,
    /// Side inputs read on demand ([`SideInputSource`]) by a ParDo of a fused stage; empty
    /// otherwise (a plan stage's root ParDo reads the executor's delivered side inputs).
    sides: Vec<SideSlot>,
    /// The element operations of the node's main input, where `sides` needs its windows.
    input_ops: Option<Arc<dyn ElementOps>>,
}

struct SideSlot {
    tag: String,
    /// Where an on-demand side input is read, and the id of the reader to name there.
    source: Option<(Arc<dyn SideInputSource>, String)>,
    window_fn: WindowFnSpec,
    materializer: Arc<dyn ViewMaterializer>,
    /// Everything the side input delivered so far.
    batches: Vec<Batch>,
    /// A view per window, built from `batches`.
    views: BTreeMap<Window, ViewValue>,
    /// The view of a window with no elements (or why there is none); set at the first build.
    empty: Option<Result<ViewValue, String>>,
    /// Whether `batches` changed since `views` was built.
    stale: bool,
}

/// The side inputs of the root ParDo as its DoFn reads them.
struct SideViews<'a> {
    slots: &'a [SideSlot],
}

impl SideInputAccess for SideViews<'_> {
    fn get(&self, index: usize, main_window: &Window) -> Result<&ViewValue, UserError> {
        let slot = self.slots.get(index).ok_or_else(|| -> UserError { format!("no side input #{index}").into() })?;
        let window = windows::side_input_window(&slot.window_fn, main_window)?;
        match (slot.views.get(&window), &slot.empty) {
            (Some(v), _) => Ok(v),
            (None, Some(Ok(v))) => Ok(v),
            (None, Some(Err(e))) => Err(e.clone().into()),
            (None, None) => Err(format!("side input '{}' is not materialised yet", slot.tag).into()),
        }
    }
}

/// The grouping operator of a grouping root, with what is cached about it: its hold and next
/// timer may cost a scan of its state, so they are read again only after it was called.
struct Grouping {
    transform: String,
    op: Box<dyn KeyedOperator>,
    uses_processing_time: bool,
    hold: Option<Timestamp>,
    next_timer: Option<Option<Timestamp>>,
    metrics: StepMetrics,
}

/// One live instance of a stage.
pub struct StageExecutor {
    stage: Stage,
    /// Edges of each input port: the source's output (sources), the grouping's output
    /// (groupings), or each main input (reads).
    entry: Vec<Port>,
    grouping: Option<Grouping>,
    nodes: Vec<Node>,
    sides: Vec<SideSlot>,
    /// Main input waiting for side inputs to be ready for its windows.
    pushed_back: Vec<Batch>,
    /// Smallest timestamp in `pushed_back` (holds the stage's output watermark).
    pushed_back_min: Timestamp,
}

/// The element operations of a PCollection.
fn ops_of(bindings: &Bindings, transform: &str, pc: &str) -> Result<Arc<dyn ElementOps>, RunError> {
    bindings
        .elements
        .get(pc)
        .cloned()
        .ok_or_else(|| binding_error(transform, format!("no element operations for pcollection '{pc}'")))
}

/// The element operations of what crosses stage output `output` of `stage`: the PCollection's,
/// or the accumulators' when a precombine folds it before a lifted shuffle.
pub fn output_ops(
    plan: &Plan,
    stage: usize,
    output: usize,
    bindings: &Bindings,
) -> Result<Arc<dyn ElementOps>, RunError> {
    let out = &plan.stages[stage].outputs[output];
    match out.kind {
        OutputKind::Shuffle { lifted: true, .. } => {
            let combine = &plan.stages[out.to_stage].root;
            match bindings.transforms.get(combine) {
                Some(Executable::Combine { halves, .. }) => Ok(halves.accumulator_ops.clone()),
                _ => Err(binding_error(combine, "no combine code bound")),
            }
        }
        _ => ops_of(bindings, &plan.stages[stage].root, &out.pcollection),
    }
}

/// The node kind of graph transform `name` (not a root), with its output tags by output index.
fn graph_node_kind(name: &str, graph: &Graph, bindings: &Bindings) -> Result<(NodeKind, Vec<String>), RunError> {
    let t = graph.transforms.get(name).ok_or_else(|| binding_error(name, "no such transform in the graph"))?;
    let executable = bindings.transforms.get(name).cloned();
    Ok(match (t.urn.as_str(), executable) {
        (urns::PAR_DO, Some(Executable::ParDo { instantiate, .. })) => {
            let payload: ParDoPayload = t.payload_as()?;
            let tags = payload.outputs.clone();
            (NodeKind::ParDo { factory: instantiate, payload, instance: None }, tags)
        }
        (urns::FLATTEN | urns::RESHUFFLE, None) => (NodeKind::PassThrough, t.outputs.keys().cloned().collect()),
        (urns::WINDOW_INTO, executable) => {
            let payload: WindowIntoPayload = t.payload_as()?;
            let spec = graph
                .windowing_strategies
                .get(&payload.windowing_strategy)
                .ok_or_else(|| binding_error(name, "unknown windowing strategy"))?
                .window_fn
                .clone();
            let assign = match (spec, executable) {
                (WindowFnSpec::Custom { .. }, Some(Executable::WindowInto { window_fn })) => Assign::Custom(window_fn),
                (WindowFnSpec::Custom { name: fn_name, .. }, _) => {
                    return Err(binding_error(name, format!("no code bound for window function '{fn_name}'")))
                }
                (spec, _) => Assign::Builtin(spec),
            };
            (NodeKind::WindowInto(assign), t.outputs.keys().cloned().collect())
        }
        (urn, _) => return Err(binding_error(name, format!("no code bound for '{urn}'"))),
    })
}

/// A stage fused by a runner other than Runnel's planner (a Beam runner's bundle descriptor):
/// entry PCollections, transforms in topological order, and the PCollections that leave it.
/// PCollection ids are the fusing runner's; a node names the Runnel transform it runs.
pub struct FusedStage {
    /// For messages.
    pub name: String,
    /// What enters the stage, by input port.
    pub entries: Vec<FusedPort>,
    /// The work, in topological order.
    pub nodes: Vec<FusedNode>,
    /// The PCollections that leave the stage, by output index of [`StageSink::write`].
    pub exits: Vec<String>,
}

/// A PCollection of a fused stage and its element operations.
pub struct FusedPort {
    /// The fusing runner's id of it.
    pub pcollection: String,
    /// How its elements are stored.
    pub ops: Arc<dyn ElementOps>,
}

/// One transform of a fused stage.
pub struct FusedNode {
    /// The fusing runner's id of it (given to a [`SideInputSource`]).
    pub id: String,
    /// The Runnel transform it runs or belongs to: errors and metrics carry this name.
    pub transform: String,
    /// What it does.
    pub work: FusedWork,
    /// The PCollections it reads as main input (a Flatten reads several).
    pub inputs: Vec<String>,
    /// What it produces, by output index (a ParDo's in its payload's order).
    pub outputs: Vec<FusedPort>,
}

/// What a node of a fused stage runs.
pub enum FusedWork {
    /// The graph transform's own code (ParDo, WindowInto, Flatten, Reshuffle); a ParDo's side
    /// inputs are read on demand from the stage's [`SideInputSource`].
    Graph,
    /// A DoFn instance the caller made (a combine phase: precombine, merge, extract...).
    Instance(Box<dyn DoFnInstance>),
}

/// Where a fused stage's side inputs come from: read when main input in a window first reaches
/// the ParDo reading them, once per bundle and side window.
pub trait SideInputSource: Send + Sync {
    /// The elements of side input `tag` of node `reader` in side window `window` (a batch of the
    /// side PCollection's elements, in that window).
    fn read(&self, reader: &str, tag: &str, window: &Window) -> Result<Batch, UserError>;
    /// Side input `tag` of node `reader` in side window `window`, read key by key, where the
    /// source can (`None`: only whole windows, through [`SideInputSource::read`]). Asked only for
    /// views that read by key.
    fn keyed(&self, reader: &str, tag: &str, window: &Window) -> Option<Arc<dyn KeyedSideInput>> {
        let _ = (reader, tag, window);
        None
    }
}

impl StageExecutor {
    /// An executor for a stage someone else fused (see [`FusedStage`]): driven with
    /// [`StageExecutor::push`] and [`StageExecutor::finish_bundle`].
    pub fn fused(
        fused: FusedStage,
        graph: &Graph,
        bindings: &Bindings,
        side_source: Option<Arc<dyn SideInputSource>>,
    ) -> Result<Self, RunError> {
        let FusedStage { name, entries, nodes: specs, exits } = fused;
        let mut ops_by_pc: BTreeMap<String, Arc<dyn ElementOps>> = BTreeMap::new();
        for e in &entries {
            ops_by_pc.insert(e.pcollection.clone(), e.ops.clone());
        }
        for spec in &specs {
            for o in &spec.outputs {
                ops_by_pc.insert(o.pcollection.clone(), o.ops.clone());
            }
        }
        let mut nodes: Vec<Node> = Vec::new();
        let mut inputs: Vec<Vec<String>> = Vec::new();
        for spec in specs {
            let (kind, sides, input_ops) = match spec.work {
                FusedWork::Instance(instance) => (NodeKind::Instance { instance }, Vec::new(), None),
                FusedWork::Graph => {
                    let (kind, _) = graph_node_kind(&spec.transform, graph, bindings)?;
                    let mut sides = Vec::new();
                    if let NodeKind::ParDo { payload, .. } = &kind {
                        if !payload.side_inputs.is_empty() {
                            sides = Self::fetched_sides(&spec, payload, graph, bindings, side_source.as_ref())?;
                        }
                    }
                    let input_ops = spec.inputs.first().and_then(|pc| ops_by_pc.get(pc)).cloned();
                    (kind, sides, input_ops)
                }
            };
            let outputs = spec
                .outputs
                .iter()
                .map(|o| Port {
                    producer: spec.transform.clone(),
                    pcollection: o.pcollection.clone(),
                    ops: o.ops.clone(),
                    edges: Vec::new(),
                })
                .collect();
            nodes.push(Node {
                transform: spec.transform.clone(),
                kind,
                outputs,
                in_bundle: false,
                metrics: StepMetrics::default(),
                sides,
                input_ops,
            });
            inputs.push(spec.inputs);
        }
        // One edge per input reading a PCollection (a Flatten may read one twice), then the exits.
        let readers = |pc: &str| -> Vec<Edge> {
            let mut edges: Vec<Edge> = Vec::new();
            for (n, ins) in inputs.iter().enumerate() {
                edges.extend(ins.iter().filter(|i| *i == pc).map(|_| Edge::Node(n)));
            }
            edges.extend(exits.iter().enumerate().filter(|(_, e)| *e == pc).map(|(o, _)| Edge::Out(o)));
            edges
        };
        let mut entry = Vec::new();
        for e in entries {
            let edges = readers(&e.pcollection);
            entry.push(Port { producer: String::new(), pcollection: e.pcollection, ops: e.ops, edges });
        }
        for (n, node) in nodes.iter_mut().enumerate() {
            for port in &mut node.outputs {
                let edges = readers(&port.pcollection);
                if edges.iter().any(|e| matches!(e, Edge::Node(r) if *r <= n)) {
                    let message = "the fused stage's transforms are not in topological order";
                    return Err(binding_error(&node.transform, message));
                }
                port.edges = edges;
            }
        }
        let stage = Stage {
            id: 0,
            root: name,
            root_kind: RootKind::Read,
            transforms: nodes.iter().map(|n| n.transform.clone()).collect(),
            inputs: Vec::new(),
            side_inputs: Vec::new(),
            outputs: Vec::new(),
        };
        Ok(StageExecutor {
            stage,
            entry,
            grouping: None,
            nodes,
            sides: Vec::new(),
            pushed_back: Vec::new(),
            pushed_back_min: Timestamp::MAX,
        })
    }

    /// The on-demand side input slots of a fused ParDo.
    fn fetched_sides(
        spec: &FusedNode,
        payload: &ParDoPayload,
        graph: &Graph,
        bindings: &Bindings,
        source: Option<&Arc<dyn SideInputSource>>,
    ) -> Result<Vec<SideSlot>, RunError> {
        let name = &spec.transform;
        let source = source.ok_or_else(|| binding_error(name, "side inputs, but nowhere to read them from"))?;
        let Some(Executable::ParDo { side_inputs: materializers, .. }) = bindings.transforms.get(name) else {
            return Err(binding_error(name, "no ParDo code bound"));
        };
        if materializers.len() != payload.side_inputs.len() {
            return Err(binding_error(name, "side input count differs from the payload"));
        }
        let t = &graph.transforms[name];
        let mut slots = Vec::new();
        for (side, materializer) in payload.side_inputs.iter().zip(materializers) {
            let pc = t.inputs.get(&side.tag).ok_or_else(|| binding_error(name, format!("no input '{}'", side.tag)))?;
            slots.push(SideSlot {
                tag: side.tag.clone(),
                source: Some((source.clone(), spec.id.clone())),
                window_fn: graph.windowing_of(pc).map(|w| w.window_fn.clone()).unwrap_or(WindowFnSpec::Global),
                materializer: materializer.clone(),
                batches: Vec::new(),
                views: BTreeMap::new(),
                empty: None,
                stale: false,
            });
        }
        Ok(slots)
    }

    /// Pushes a batch into entry `port` of a fused stage, inside the current bundle (which
    /// starts with the first batch and ends with [`StageExecutor::finish_bundle`]).
    pub fn push(&mut self, port: usize, batch: Batch, sink: &mut dyn StageSink) -> Result<(), RunError> {
        let entry =
            self.entry.get(port).ok_or_else(|| binding_error(&self.stage.root, format!("no input port #{port}")))?;
        route(&mut self.nodes, 0, entry, batch, sink)
    }

    /// Ends the current bundle: every DoFn that started one finishes it (in topological order),
    /// and side input views read on demand are forgotten (the next bundle reads them again).
    pub fn finish_bundle(&mut self, sink: &mut dyn StageSink) -> Result<(), RunError> {
        let result = finish_bundles(&mut self.nodes, &self.sides, sink);
        for node in &mut self.nodes {
            for side in &mut node.sides {
                side.views.clear();
            }
        }
        result
    }

    /// An instance of stage `id` of `plan`, with the code `bindings` hold for it (a source's code
    /// stays with the runner, which drives it).
    pub fn new(plan: &Plan, id: usize, graph: &Graph, bindings: &Bindings) -> Result<Self, RunError> {
        let stage = plan.stages[id].clone();
        let root = &graph.transforms[&stage.root];
        // Nodes: every transform of the stage but a source or grouping root, then a precombine
        // before each lifted shuffle write.
        let mut nodes: Vec<Node> = Vec::new();
        let mut node_of: BTreeMap<&str, usize> = BTreeMap::new();
        for name in &stage.transforms {
            let t = &graph.transforms[name];
            let in_root = name == &stage.root;
            if in_root && stage.root_kind != RootKind::Read {
                continue;
            }
            let (kind, output_tags) = graph_node_kind(name, graph, bindings)?;
            let mut outputs = Vec::new();
            for tag in &output_tags {
                let pc = t.outputs.get(tag).ok_or_else(|| binding_error(name, format!("no output '{tag}'")))?;
                outputs.push(Port {
                    producer: name.clone(),
                    pcollection: pc.clone(),
                    ops: ops_of(bindings, name, pc)?,
                    edges: Vec::new(),
                });
            }
            node_of.insert(name, nodes.len());
            nodes.push(Node {
                transform: name.clone(),
                kind,
                outputs,
                in_bundle: false,
                metrics: StepMetrics::default(),
                sides: Vec::new(),
                input_ops: None,
            });
        }
        // Entry ports.
        let mut entry: Vec<Port> = Vec::new();
        let mut grouping = None;
        match stage.root_kind {
            RootKind::Source | RootKind::Grouping => {
                let pc = root.outputs.values().next().ok_or_else(|| binding_error(&stage.root, "no output"))?;
                entry.push(Port {
                    producer: stage.root.clone(),
                    pcollection: pc.clone(),
                    ops: ops_of(bindings, &stage.root, pc)?,
                    edges: Vec::new(),
                });
                if stage.root_kind == RootKind::Grouping {
                    grouping = Some(Self::grouping(&stage, graph, bindings, plan)?);
                }
            }
            RootKind::Read => {
                for input in &stage.inputs {
                    entry.push(Port {
                        producer: String::new(),
                        pcollection: input.pcollection.clone(),
                        ops: ops_of(bindings, &stage.root, &input.pcollection)?,
                        edges: vec![Edge::Node(0)],
                    });
                }
            }
        }
        // Edges: for every PCollection produced in the stage, its readers in the stage, then the
        // stage outputs (behind a precombine when lifted).
        let produced: Vec<(Option<usize>, usize)> = entry
            .iter()
            .enumerate()
            .filter(|_| stage.root_kind != RootKind::Read)
            .map(|(k, _)| (None, k))
            .chain(nodes.iter().enumerate().flat_map(|(n, node)| (0..node.outputs.len()).map(move |k| (Some(n), k))))
            .collect();
        for (node, k) in produced {
            let pc = match node {
                None => entry[k].pcollection.clone(),
                Some(n) => nodes[n].outputs[k].pcollection.clone(),
            };
            let mut edges = Vec::new();
            // One edge per input reading it: a Flatten reading the same PCollection twice gets it
            // twice.
            for (reader, _) in graph.consumers(&pc) {
                if let Some(&r) = node_of.get(reader.unique_name.as_str()) {
                    edges.push(Edge::Node(r));
                }
            }
            for (o, out) in stage.outputs.iter().enumerate().filter(|(_, out)| out.pcollection == pc) {
                match &out.kind {
                    OutputKind::Shuffle { lifted: true, .. } => {
                        let combine = &plan.stages[out.to_stage].root;
                        let Some(Executable::Combine { halves, .. }) = bindings.transforms.get(combine) else {
                            return Err(binding_error(combine, "no combine code bound"));
                        };
                        let payload = graph.transforms[combine].payload_as()?;
                        let instance = guarded(combine, || (halves.precombine)(&payload))?;
                        let accumulators = format!("{pc} (precombined for {combine})");
                        edges.push(Edge::Node(nodes.len()));
                        // Named as the combine: its errors and metrics are the combine's.
                        nodes.push(Node {
                            transform: combine.clone(),
                            kind: NodeKind::Instance { instance },
                            outputs: vec![Port {
                                producer: combine.clone(),
                                pcollection: accumulators,
                                ops: halves.accumulator_ops.clone(),
                                edges: vec![Edge::Out(o)],
                            }],
                            in_bundle: false,
                            metrics: StepMetrics::default(),
                            sides: Vec::new(),
                            input_ops: None,
                        });
                    }
                    _ => edges.push(Edge::Out(o)),
                }
            }
            match node {
                None => entry[k].edges = edges,
                Some(n) => nodes[n].outputs[k].edges = edges,
            }
        }
        // Side inputs of the root ParDo.
        let mut sides = Vec::new();
        if !stage.side_inputs.is_empty() {
            let Some(Executable::ParDo { side_inputs: materializers, .. }) = bindings.transforms.get(&stage.root)
            else {
                return Err(binding_error(&stage.root, "no ParDo code bound"));
            };
            if materializers.len() != stage.side_inputs.len() {
                return Err(binding_error(&stage.root, "side input count differs from the payload"));
            }
            for (side, materializer) in stage.side_inputs.iter().zip(materializers) {
                sides.push(SideSlot {
                    tag: side.tag.clone(),
                    source: None,
                    window_fn: graph
                        .windowing_of(&side.pcollection)
                        .map(|w| w.window_fn.clone())
                        .unwrap_or(WindowFnSpec::Global),
                    materializer: materializer.clone(),
                    batches: Vec::new(),
                    views: BTreeMap::new(),
                    empty: None,
                    stale: true,
                });
            }
        }
        Ok(StageExecutor {
            stage,
            entry,
            grouping,
            nodes,
            sides,
            pushed_back: Vec::new(),
            pushed_back_min: Timestamp::MAX,
        })
    }

    fn grouping(stage: &Stage, graph: &Graph, bindings: &Bindings, plan: &Plan) -> Result<Grouping, RunError> {
        let name = &stage.root;
        let t = &graph.transforms[name];
        let input = t.inputs.values().next().ok_or_else(|| binding_error(name, "a grouping needs an input"))?;
        let ws = graph.windowing_of(input).ok_or_else(|| binding_error(name, "input has no windowing"))?.clone();
        let lifted = plan
            .stages
            .iter()
            .flat_map(|s| &s.outputs)
            .any(|o| o.to_stage == stage.id && matches!(o.kind, OutputKind::Shuffle { lifted: true, .. }));
        let op = match (t.urn.as_str(), bindings.transforms.get(name)) {
            (urns::GROUP_BY_KEY, Some(Executable::GroupByKey { instantiate })) => guarded(name, || instantiate(&ws))?,
            (urns::COMBINE_PER_KEY, Some(Executable::Combine { instantiate, halves })) => {
                let payload = t.payload_as()?;
                if lifted {
                    guarded(name, || (halves.merge_grouping)(&payload, &ws))?
                } else {
                    guarded(name, || instantiate(&payload, &ws))?
                }
            }
            (urn, _) => return Err(binding_error(name, format!("no code bound for '{urn}'"))),
        };
        Ok(Grouping {
            transform: name.clone(),
            op,
            uses_processing_time: trigger::uses_processing_time(&ws.trigger),
            hold: None,
            next_timer: None,
            metrics: StepMetrics::default(),
        })
    }

    /// The stage this executes.
    pub fn stage(&self) -> &Stage {
        &self.stage
    }

    /// Pushes a batch a source root produced (as one bundle).
    pub fn process_source(&mut self, batch: Batch, sink: &mut dyn StageSink) -> Result<(), RunError> {
        self.bundle(sink, |nodes, entry, _, sink| route(nodes, 0, &entry[0], batch, sink))
    }

    /// Pushes a batch into main input `port`: for a grouping, key-value pairs to group; for a
    /// read, a batch of the input. Main input of a root ParDo whose side inputs are not ready for
    /// its windows is pushed back (see [`StageExecutor::retry_pushed_back`]). One bundle.
    pub fn process_input(
        &mut self,
        port: usize,
        batch: Batch,
        progress: &[SideProgress],
        now: Timestamp,
        sink: &mut dyn StageSink,
    ) -> Result<(), RunError> {
        if self.grouping.is_some() {
            return self.call_grouping(now, sink, |op, ctx| op.process(batch, ctx));
        }
        if self.sides.is_empty() {
            return self.bundle(sink, |nodes, entry, _, sink| route(nodes, 0, &entry[port], batch, sink));
        }
        let Some(batch) = self.hold_back_unready(port, batch, progress)? else { return Ok(()) };
        self.refresh_views()?;
        self.bundle(sink, |nodes, entry, sides, sink| route_with_sides(nodes, &entry[port], batch, sides, sink))
    }

    /// Runs the part of `batch` whose windows every side input is ready for; pushes the rest back.
    fn hold_back_unready(
        &mut self,
        port: usize,
        batch: Batch,
        progress: &[SideProgress],
    ) -> Result<Option<Batch>, RunError> {
        let ops = self.entry[port].ops.clone();
        let windows = ops.windows(&batch);
        let mut ready = BTreeSet::new();
        for w in &windows {
            let mut all = true;
            for (side, p) in self.sides.iter().zip(progress) {
                all &= guarded(&self.stage.root, || side_input_ready(*p, &side.window_fn, w))?;
            }
            if all {
                ready.insert(*w);
            }
        }
        let (now, later) = if ready.len() == windows.len() {
            (Some(batch), None)
        } else if ready.is_empty() {
            (None, Some(batch))
        } else {
            let now = ops.assign_windows(ops.clone_batch(&batch), &mut |_, w| {
                if ready.contains(w) {
                    vec![*w]
                } else {
                    vec![]
                }
            });
            let later = ops.assign_windows(batch, &mut |_, w| if ready.contains(w) { vec![] } else { vec![*w] });
            (Some(now), Some(later))
        };
        if let Some(later) = later {
            self.pushed_back_min = self.pushed_back_min.min(ops.min_timestamp(&later).unwrap_or(Timestamp::MAX));
            self.pushed_back.push(later);
        }
        Ok(now)
    }

    /// Adds data of side input `index` (views are rebuilt before the next main input runs).
    pub fn add_side_input(&mut self, index: usize, batch: Batch) -> Result<(), RunError> {
        let slot = self
            .sides
            .get_mut(index)
            .ok_or_else(|| binding_error(&self.stage.root, format!("no side input #{index}")))?;
        slot.batches.push(batch);
        slot.stale = true;
        Ok(())
    }

    /// Whether main input is waiting for side inputs.
    pub fn has_pushed_back(&self) -> bool {
        !self.pushed_back.is_empty()
    }

    /// The smallest timestamp of main input waiting for side inputs (+∞ if none): the stage's
    /// output watermark may not pass it.
    pub fn pushed_back_min(&self) -> Timestamp {
        self.pushed_back_min
    }

    /// Retries main input pushed back for side inputs. True when some of it ran.
    pub fn retry_pushed_back(&mut self, progress: &[SideProgress], sink: &mut dyn StageSink) -> Result<bool, RunError> {
        let waiting = std::mem::take(&mut self.pushed_back);
        self.pushed_back_min = Timestamp::MAX;
        let mut ran = false;
        for batch in waiting {
            let Some(batch) = self.hold_back_unready(0, batch, progress)? else { continue };
            ran = true;
            self.refresh_views()?;
            self.bundle(sink, |nodes, entry, sides, sink| route_with_sides(nodes, &entry[0], batch, sides, sink))?;
        }
        Ok(ran)
    }

    /// The grouping root's input watermark moved to `watermark`: fire and expire what that
    /// allows (one bundle for the transforms behind it).
    pub fn advance_watermark(
        &mut self,
        watermark: Timestamp,
        now: Timestamp,
        sink: &mut dyn StageSink,
    ) -> Result<(), RunError> {
        self.call_grouping(now, sink, |op, ctx| op.advance_watermark(watermark, ctx))
    }

    /// Processing time reached `now`: fire the grouping root's due processing-time triggers.
    pub fn advance_processing_time(&mut self, now: Timestamp, sink: &mut dyn StageSink) -> Result<(), RunError> {
        self.call_grouping(now, sink, |op, ctx| op.advance_processing_time(now, ctx))
    }

    /// The grouping root's watermark hold (+∞ for other roots).
    pub fn watermark_hold(&mut self) -> Timestamp {
        match &mut self.grouping {
            Some(g) => *g.hold.get_or_insert_with(|| g.op.watermark_hold()),
            None => Timestamp::MAX,
        }
    }

    /// The stage's output watermark for input watermark `input` (the minimum of its main inputs'),
    /// given the output watermark `current` already reported (monotonic): a grouping holds it at
    /// its watermark hold (read only when the output could move), a read stage at its main input
    /// waiting for side inputs. A source's watermark is its runner's to say.
    pub fn output_watermark(&mut self, input: Timestamp, current: Timestamp) -> Timestamp {
        let held = if self.grouping.is_some() {
            if input == Timestamp::MAX {
                // At +∞ everything has fired and expired: nothing can be held any more.
                Timestamp::MAX
            } else if input <= current {
                // The output cannot move: no need to read the hold.
                current
            } else {
                input.min(self.watermark_hold())
            }
        } else {
            input.min(self.pushed_back_min)
        };
        held.max(current)
    }

    /// The grouping root's earliest processing-time timer.
    pub fn next_timer(&mut self) -> Option<Timestamp> {
        match &mut self.grouping {
            Some(g) if g.uses_processing_time => *g.next_timer.get_or_insert_with(|| g.op.next_processing_time_timer()),
            _ => None,
        }
    }

    /// Whether the grouping root has processing-time triggers.
    pub fn uses_processing_time(&self) -> bool {
        self.grouping.as_ref().is_some_and(|g| g.uses_processing_time)
    }

    fn call_grouping(
        &mut self,
        now: Timestamp,
        sink: &mut dyn StageSink,
        f: impl FnOnce(&mut dyn KeyedOperator, &mut KeyedContext<'_>) -> Result<(), UserError>,
    ) -> Result<(), RunError> {
        let Some(mut g) = self.grouping.take() else {
            return Err(binding_error(&self.stage.root, "not a grouping"));
        };
        g.hold = None;
        g.next_timer = None;
        let result = self.bundle(sink, |nodes, entry, _, sink| {
            let mut failure: Option<RunError> = None;
            let mut emit = |b: Batch| {
                if failure.is_none() {
                    if let Err(e) = route(nodes, 0, &entry[0], b, sink) {
                        failure = Some(e);
                    }
                }
            };
            let mut ctx =
                KeyedContext { step: &g.transform, output: &mut emit, metrics: &mut g.metrics, processing_time: now };
            let result = guarded(&g.transform, || f(g.op.as_mut(), &mut ctx));
            failure.map_or(result, Err)
        });
        self.grouping = Some(g);
        result
    }

    /// Rebuilds the views of side inputs that received data since they were last built.
    fn refresh_views(&mut self) -> Result<(), RunError> {
        for side in self.sides.iter_mut().filter(|s| s.stale) {
            let step = format!("{} (side input '{}')", self.stage.root, side.tag);
            side.views = guarded(&step, || side.materializer.materialize(&side.batches))?;
            if side.empty.is_none() {
                side.empty = Some(side.materializer.empty().map_err(|e| e.to_string()));
            }
            side.stale = false;
        }
        Ok(())
    }

    /// Runs `f` as one bundle: nodes start their bundle when their first batch arrives, and
    /// every node that started finishes, in topological order, when `f` is done (a finishing
    /// DoFn may still emit to the nodes after it).
    fn bundle(
        &mut self,
        sink: &mut dyn StageSink,
        f: impl FnOnce(&mut [Node], &[Port], &[SideSlot], &mut dyn StageSink) -> Result<(), RunError>,
    ) -> Result<(), RunError> {
        let result = f(&mut self.nodes, &self.entry, &self.sides, sink);
        let finished = finish_bundles(&mut self.nodes, &self.sides, sink);
        result.and(finished)
    }

    /// Tears down every DoFn instance; the first failure is reported after all were tried.
    pub fn teardown(&mut self) -> Result<(), RunError> {
        let mut first_error = None;
        for node in &mut self.nodes {
            let outcome = match &mut node.kind {
                NodeKind::ParDo { instance: Some(dofn), .. } => guarded(&node.transform, || dofn.teardown()),
                NodeKind::Instance { instance } => guarded(&node.transform, || instance.teardown()),
                _ => Ok(()),
            };
            if let Err(e) = outcome {
                first_error.get_or_insert(e);
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// Moves the metrics of every transform of the stage into `into`.
    pub fn drain_metrics(&mut self, into: &mut MetricsSnapshot) {
        if let Some(g) = &mut self.grouping {
            g.metrics.drain_into(&g.transform, into);
        }
        for node in &mut self.nodes {
            // A precombine counts for its combine.
            let name =
                node.transform.strip_suffix("/Precombine").filter(|_| matches!(node.kind, NodeKind::Instance { .. }));
            node.metrics.drain_into(name.unwrap_or(&node.transform), into);
        }
    }
}

/// Routes `batch` (produced on `port`) to its readers; `nodes[0]` is node `base`.
fn route(
    nodes: &mut [Node],
    base: usize,
    port: &Port,
    mut batch: Batch,
    sink: &mut dyn StageSink,
) -> Result<(), RunError> {
    if !port.producer.is_empty() {
        sink.inspect(&port.producer, &port.pcollection, &*port.ops, &mut batch)?;
    }
    let mut batch = Some(batch);
    let last = port.edges.len().saturating_sub(1);
    for (k, edge) in port.edges.iter().enumerate() {
        let b = if k == last {
            batch.take().expect("the last reader takes the batch")
        } else {
            port.ops.clone_batch(batch.as_ref().expect("batch present"))
        };
        match *edge {
            Edge::Out(o) => sink.write(o, b)?,
            Edge::Node(n) => process_node(nodes, base, n, b, &[], sink)?,
        }
    }
    Ok(())
}

/// As [`route`] from an entry port into the root ParDo, which reads side inputs.
fn route_with_sides(
    nodes: &mut [Node],
    port: &Port,
    batch: Batch,
    sides: &[SideSlot],
    sink: &mut dyn StageSink,
) -> Result<(), RunError> {
    debug_assert!(matches!(port.edges.as_slice(), [Edge::Node(0)]));
    process_node(nodes, 0, 0, batch, sides, sink)
}

/// Processes `batch` in node `n` (`nodes[0]` is node `base`), pushing its outputs on at once.
fn process_node(
    nodes: &mut [Node],
    base: usize,
    n: usize,
    batch: Batch,
    sides: &[SideSlot],
    sink: &mut dyn StageSink,
) -> Result<(), RunError> {
    let (head, tail) = nodes.split_at_mut(n - base + 1);
    let node = head.last_mut().expect("node in range");
    let Node { transform, kind, outputs, in_bundle, metrics, sides: own_sides, input_ops } = node;
    if !own_sides.is_empty() {
        if let Some(ops) = input_ops {
            read_sides(transform, own_sides, &ops.windows(&batch))?;
        }
    }
    let sides: &[SideSlot] = if own_sides.is_empty() { sides } else { own_sides };
    match kind {
        NodeKind::PassThrough => route(tail, n + 1, &outputs[0], batch, sink),
        NodeKind::WindowInto(assign) => {
            let ops = &outputs[0].ops;
            let out = match assign {
                Assign::Builtin(spec) => {
                    ops.assign_windows(batch, &mut |ts, _| windows::assign(spec, ts).expect("built-in window fn"))
                }
                Assign::Custom(f) => {
                    guarded(transform, || Ok(ops.assign_windows(batch, &mut |ts, w| f.assign(ts, w))))?
                }
            };
            route(tail, n + 1, &outputs[0], out, sink)
        }
        NodeKind::ParDo { factory, payload, instance } => {
            let dofn = match instance {
                Some(d) => d,
                None => {
                    let mut fresh = guarded(transform, || factory(payload))?;
                    guarded(transform, || fresh.setup())?;
                    instance.insert(fresh)
                }
            };
            run_instance(transform, dofn.as_mut(), in_bundle, outputs, metrics, tail, n + 1, sides, sink, |d, ctx| {
                d.process_batch(batch, ctx)
            })
        }
        NodeKind::Instance { instance } => {
            run_instance(transform, instance.as_mut(), in_bundle, outputs, metrics, tail, n + 1, &[], sink, |d, ctx| {
                d.process_batch(batch, ctx)
            })
        }
    }
}

/// Calls a DoFn instance (starting its bundle first if needed), routing what it emits.
#[allow(clippy::too_many_arguments)]
fn run_instance(
    transform: &str,
    dofn: &mut dyn DoFnInstance,
    in_bundle: &mut bool,
    outputs: &[Port],
    metrics: &mut StepMetrics,
    downstream: &mut [Node],
    base: usize,
    sides: &[SideSlot],
    sink: &mut dyn StageSink,
    call: impl FnOnce(&mut dyn DoFnInstance, &mut ExecContext<'_>) -> Result<(), UserError>,
) -> Result<(), RunError> {
    let mut failure: Option<RunError> = None;
    let mut emit = |index: usize, b: Batch| {
        if failure.is_some() {
            return;
        }
        let outcome = match outputs.get(index) {
            Some(port) => route(downstream, base, port, b, sink),
            None => Err(binding_error(transform, format!("no output #{index}"))),
        };
        if let Err(e) = outcome {
            failure = Some(e);
        }
    };
    let views = SideViews { slots: sides };
    let mut ctx = ExecContext { step: transform, output: &mut emit, side_inputs: &views, metrics };
    let started = *in_bundle;
    *in_bundle = true;
    let result = guarded(transform, || {
        if !started {
            dofn.start_bundle(&mut ctx)?;
        }
        call(dofn, &mut ctx)
    });
    // An error downstream is the cause; the upstream DoFn only saw its outputs go nowhere.
    failure.map_or(result, Err)
}

/// Reads the views of on-demand side inputs that main input in `windows` needs and were not read
/// in this bundle yet.
fn read_sides(transform: &str, sides: &mut [SideSlot], main_windows: &[Window]) -> Result<(), RunError> {
    for side in sides.iter_mut() {
        let Some((source, reader)) = &side.source else { continue };
        for main in main_windows {
            let window = guarded(transform, || Ok(windows::side_input_window(&side.window_fn, main)?))?;
            if side.views.contains_key(&window) {
                continue;
            }
            let step = format!("{transform} (side input '{}')", side.tag);
            let keyed = if side.materializer.reads_by_key() { source.keyed(reader, &side.tag, &window) } else { None };
            if let Some(keyed) = keyed {
                // Nothing is read now: the view fetches the keys it is asked for.
                let view = guarded(&step, || side.materializer.lookup(keyed))?;
                side.views.insert(window, view);
                continue;
            }
            let batch = guarded(&step, || source.read(reader, &side.tag, &window))?;
            let view = guarded(&step, || {
                let mut views = side.materializer.materialize(&[batch])?;
                match views.remove(&window) {
                    Some(v) => Ok(v),
                    None => side.materializer.empty(),
                }
            })?;
            side.views.insert(window, view);
        }
    }
    Ok(())
}

/// Finishes the bundle of every node that started one, in topological order.
fn finish_bundles(nodes: &mut [Node], sides: &[SideSlot], sink: &mut dyn StageSink) -> Result<(), RunError> {
    let mut first_error: Option<RunError> = None;
    for n in 0..nodes.len() {
        if !nodes[n].in_bundle {
            continue;
        }
        let (head, tail) = nodes.split_at_mut(n + 1);
        let Node { transform, kind, outputs, in_bundle, metrics, sides: own_sides, .. } =
            head.last_mut().expect("node in range");
        *in_bundle = false;
        if first_error.is_some() {
            continue;
        }
        let dofn: &mut dyn DoFnInstance = match kind {
            NodeKind::ParDo { instance: Some(d), .. } => d.as_mut(),
            NodeKind::Instance { instance } => instance.as_mut(),
            _ => continue,
        };
        let node_sides = if !own_sides.is_empty() {
            &own_sides[..]
        } else if n == 0 {
            sides
        } else {
            &[]
        };
        let mut started = true;
        let outcome =
            run_instance(transform, dofn, &mut started, outputs, metrics, tail, n + 1, node_sides, sink, |d, ctx| {
                d.finish_bundle(ctx)
            });
        if let Err(e) = outcome {
            first_error = Some(e);
        }
    }
    // Nodes that a finishing DoFn fed after their turn cannot exist: edges only go forward.
    first_error.map_or(Ok(()), Err)
}
