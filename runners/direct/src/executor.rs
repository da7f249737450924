//! The push-based executor: pending bundles, consumers, and completion in topological order.

use rand::{Rng, SeedableRng};
use runnel_model::exec::{
    Batch, Bindings, DoFnInstance, ElementOps, ExecContext, Executable, KeyedContext, KeyedOperator, SideInputAccess,
    UserError, ViewMaterializer, ViewValue, WindowAssigner,
};
use runnel_model::metrics::{MetricsSnapshot, StepMetrics};
use runnel_model::{urns, Graph, ParDoPayload, Timestamp, Window, WindowFnSpec, WindowIntoPayload};
use runnel_runner_core::{panic_message, windows, JobResult, JobState, RunError, RunnerOptions};
use std::collections::{BTreeMap, VecDeque};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

struct PColl {
    id: String,
    ops: Arc<dyn ElementOps>,
    producer: usize,
    consumers: Vec<(usize, String)>,
    pending: usize,
}

struct SideSlot {
    tag: String,
    pc: usize,
    window_fn: WindowFnSpec,
    materializer: Arc<dyn ViewMaterializer>,
    batches: Vec<Batch>,
}

/// One materialised side input: its window function, a view per window, and the view of an
/// empty window (or why there is none).
type MaterializedSide = (WindowFnSpec, BTreeMap<Window, ViewValue>, Result<ViewValue, String>);

struct SideViews {
    views: Vec<MaterializedSide>,
}

impl SideInputAccess for SideViews {
    fn get(&self, index: usize, main_window: &Window) -> Result<&ViewValue, UserError> {
        let (spec, views, empty) =
            self.views.get(index).ok_or_else(|| -> UserError { format!("no side input #{index}").into() })?;
        let window = windows::side_input_window(spec, main_window)?;
        match views.get(&window) {
            Some(v) => Ok(v),
            None => empty.as_ref().map_err(|e| -> UserError { e.clone().into() }),
        }
    }
}

enum Assign {
    Builtin(WindowFnSpec),
    Custom(Arc<dyn WindowAssigner>),
}

enum Kind {
    Create(VecDeque<Batch>),
    ParDo {
        factory: runnel_model::exec::DoFnFactory,
        payload: ParDoPayload,
        instance: Option<Box<dyn DoFnInstance>>,
        sides: Vec<SideSlot>,
        views: Option<SideViews>,
        pushed_back: Vec<Batch>,
    },
    Keyed(Box<dyn KeyedOperator>),
    PassThrough,
    WindowInto(Assign),
}

struct Node {
    name: String,
    kind: Kind,
    inputs: Vec<usize>,
    /// Output PCollections by output index (ParDo payload order; one for the others).
    outputs: Vec<usize>,
    done: bool,
    metrics: StepMetrics,
}

pub(crate) struct Executor {
    nodes: Vec<Node>,
    pcs: Vec<PColl>,
    pending: Vec<(usize, Batch)>,
    checks: bool,
    rng: rand::rngs::StdRng,
}

fn binding_error(transform: &str, message: impl Into<String>) -> RunError {
    RunError::Binding { transform: transform.to_string(), message: message.into() }
}

/// Runs user code, turning its errors and panics into a failure of `step`.
fn guarded<T>(step: &str, f: impl FnOnce() -> Result<T, UserError>) -> Result<T, RunError> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(RunError::UserCode { transform: step.to_string(), message: e.to_string() }),
        Err(panic) => Err(RunError::UserCode { transform: step.to_string(), message: panic_message(&*panic) }),
    }
}

fn now() -> Timestamp {
    let ms =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0);
    Timestamp(ms)
}

impl Executor {
    pub(crate) fn new(graph: &Graph, mut bindings: Bindings, options: &RunnerOptions) -> Result<Self, RunError> {
        let order = graph.leaf_order()?;
        let mut pc_index: BTreeMap<String, usize> = BTreeMap::new();
        let mut pcs = Vec::new();
        for (i, name) in order.iter().enumerate() {
            let t = &graph.transforms[name];
            for pc in t.outputs.values() {
                let ops = bindings
                    .elements
                    .get(pc)
                    .cloned()
                    .ok_or_else(|| binding_error(name, format!("no element operations for pcollection '{pc}'")))?;
                pc_index.insert(pc.clone(), pcs.len());
                pcs.push(PColl { id: pc.clone(), ops, producer: i, consumers: Vec::new(), pending: 0 });
            }
        }
        let mut nodes = Vec::new();
        for (i, name) in order.iter().enumerate() {
            let t = &graph.transforms[name];
            let pc = |id: &String| pc_index[id];
            let mut inputs: Vec<usize> = Vec::new();
            for (tag, id) in &t.inputs {
                inputs.push(pc(id));
                pcs[pc(id)].consumers.push((i, tag.clone()));
            }
            let mut outputs: Vec<usize> = t.outputs.values().map(pc).collect();
            let executable = bindings.transforms.remove(name);
            let kind = match (t.urn.as_str(), executable) {
                (urns::CREATE, Some(Executable::Create { elements })) => {
                    let ops = &pcs[outputs[0]].ops;
                    let all = guarded(name, || elements())?;
                    Kind::Create(ops.split(all, options.bundle_size).into())
                }
                (urns::PAR_DO, Some(Executable::ParDo { instantiate, side_inputs })) => {
                    let payload: ParDoPayload = t.payload_as()?;
                    outputs = payload.outputs.iter().map(|tag| pc(&t.outputs[tag])).collect();
                    if side_inputs.len() != payload.side_inputs.len() {
                        return Err(binding_error(name, "side input count differs from the payload"));
                    }
                    let sides = payload
                        .side_inputs
                        .iter()
                        .zip(side_inputs)
                        .map(|(spec, materializer)| {
                            let id = &t.inputs[&spec.tag];
                            let window_fn =
                                graph.windowing_of(id).map(|w| w.window_fn.clone()).unwrap_or(WindowFnSpec::Global);
                            SideSlot { tag: spec.tag.clone(), pc: pc(id), window_fn, materializer, batches: Vec::new() }
                        })
                        .collect();
                    Kind::ParDo {
                        factory: instantiate,
                        payload,
                        instance: None,
                        sides,
                        views: None,
                        pushed_back: vec![],
                    }
                }
                (urns::GROUP_BY_KEY, Some(Executable::GroupByKey { instantiate })) => {
                    let input = t.inputs.values().next().expect("validated");
                    let ws = graph.windowing_of(input).expect("validated").clone();
                    Kind::Keyed(guarded(name, || instantiate(&ws))?)
                }
                (urns::COMBINE_PER_KEY, Some(Executable::Combine { instantiate })) => {
                    let input = t.inputs.values().next().expect("validated");
                    let ws = graph.windowing_of(input).expect("validated").clone();
                    let payload = t.payload_as()?;
                    Kind::Keyed(guarded(name, || instantiate(&payload, &ws))?)
                }
                (urns::FLATTEN | urns::RESHUFFLE, None) => Kind::PassThrough,
                (urns::WINDOW_INTO, executable) => {
                    let payload: WindowIntoPayload = t.payload_as()?;
                    let spec = graph.windowing_strategies[&payload.windowing_strategy].window_fn.clone();
                    match (spec, executable) {
                        (WindowFnSpec::Custom { .. }, Some(Executable::WindowInto { window_fn })) => {
                            Kind::WindowInto(Assign::Custom(window_fn))
                        }
                        (WindowFnSpec::Custom { name: fn_name, .. }, _) => {
                            return Err(binding_error(name, format!("no code bound for window function '{fn_name}'")))
                        }
                        (spec, _) => Kind::WindowInto(Assign::Builtin(spec)),
                    }
                }
                (urn, _) => return Err(binding_error(name, format!("no code bound for '{urn}'"))),
            };
            nodes.push(Node {
                name: name.clone(),
                kind,
                inputs,
                outputs,
                done: false,
                metrics: StepMetrics::default(),
            });
        }
        Ok(Executor {
            nodes,
            pcs,
            pending: Vec::new(),
            checks: options.direct_checks,
            rng: rand::rngs::StdRng::seed_from_u64(options.seed),
        })
    }

    pub(crate) fn run(mut self) -> Result<JobResult, RunError> {
        let outcome = self.run_to_completion();
        let teardown = self.teardown_all();
        outcome?;
        teardown?;
        let mut metrics = MetricsSnapshot::default();
        for node in &mut self.nodes {
            node.metrics.drain_into(&node.name, &mut metrics);
        }
        Ok(JobResult { state: JobState::Done, metrics })
    }

    fn run_to_completion(&mut self) -> Result<(), RunError> {
        loop {
            if let Some((pc, batch)) = self.next_pending() {
                self.deliver(pc, batch)?;
            } else if !self.pull_source()? && !self.complete_next()? {
                break;
            }
        }
        match self.nodes.iter().find(|n| !n.done) {
            Some(n) => Err(binding_error(&n.name, "never completed (the executor found no way to make progress)")),
            None => Ok(()),
        }
    }

    fn next_pending(&mut self) -> Option<(usize, Batch)> {
        if self.pending.is_empty() {
            return None;
        }
        let i = if self.checks { self.rng.gen_range(0..self.pending.len()) } else { self.pending.len() - 1 };
        let (pc, batch) = self.pending.swap_remove(i);
        self.pcs[pc].pending -= 1;
        Some((pc, batch))
    }

    fn emit(&mut self, pc: usize, batch: Batch) {
        if self.pcs[pc].ops.len(&batch) > 0 {
            self.pcs[pc].pending += 1;
            self.pending.push((pc, batch));
        }
    }

    fn pull_source(&mut self) -> Result<bool, RunError> {
        for i in 0..self.nodes.len() {
            if let Kind::Create(batches) = &mut self.nodes[i].kind {
                if let Some(batch) = batches.pop_front() {
                    let out = self.nodes[i].outputs[0];
                    self.emit(out, batch);
                    return Ok(true);
                }
            }
        }
        Ok(false)
    }

    fn pc_complete(&self, pc: usize) -> bool {
        self.nodes[self.pcs[pc].producer].done && self.pcs[pc].pending == 0
    }

    /// With nothing pending: release pushed-back input whose side inputs are now complete, or
    /// complete the first transform whose inputs are all complete.
    fn complete_next(&mut self) -> Result<bool, RunError> {
        for i in 0..self.nodes.len() {
            let waiting = matches!(&self.nodes[i].kind, Kind::ParDo { pushed_back, .. } if !pushed_back.is_empty());
            if waiting && self.sides_ready(i)? {
                let Kind::ParDo { pushed_back, .. } = &mut self.nodes[i].kind else { unreachable!() };
                for batch in std::mem::take(pushed_back) {
                    self.run_pardo(i, batch)?;
                }
                return Ok(true);
            }
        }
        for i in 0..self.nodes.len() {
            if self.nodes[i].done || !self.nodes[i].inputs.iter().all(|&pc| self.pc_complete(pc)) {
                continue;
            }
            if let Kind::Create(batches) = &self.nodes[i].kind {
                if !batches.is_empty() {
                    continue;
                }
            }
            if let Kind::Keyed(_) = self.nodes[i].kind {
                let outputs = self.keyed(i, |op, ctx| op.advance_watermark(Timestamp::MAX, ctx))?;
                for b in outputs {
                    self.emit(self.nodes[i].outputs[0], b);
                }
            }
            self.nodes[i].done = true;
            return Ok(true);
        }
        Ok(false)
    }

    fn sides_ready(&mut self, i: usize) -> Result<bool, RunError> {
        let Kind::ParDo { sides, views, .. } = &self.nodes[i].kind else { return Ok(true) };
        if views.is_some() {
            return Ok(true);
        }
        if !sides.iter().all(|s| self.pc_complete(s.pc)) {
            return Ok(false);
        }
        let node = &mut self.nodes[i];
        let Kind::ParDo { sides, views, .. } = &mut node.kind else { unreachable!() };
        let mut built = Vec::new();
        for side in sides.iter_mut() {
            let batches = std::mem::take(&mut side.batches);
            let step = format!("{} (side input '{}')", node.name, side.tag);
            let map = guarded(&step, || side.materializer.materialize(&batches))?;
            let empty = side.materializer.empty().map_err(|e| e.to_string());
            built.push((side.window_fn.clone(), map, empty));
        }
        *views = Some(SideViews { views: built });
        Ok(true)
    }

    fn deliver(&mut self, pc: usize, mut batch: Batch) -> Result<(), RunError> {
        let ops = self.pcs[pc].ops.clone();
        if self.checks {
            let producer = &self.nodes[self.pcs[pc].producer].name;
            guarded(producer, || {
                ops.check_encoding(&batch)
                    .map_err(|e| -> UserError { format!("output '{}': {e}", self.pcs[pc].id).into() })
            })?;
            ops.shuffle(&mut batch, self.rng.gen());
        }
        let consumers = self.pcs[pc].consumers.clone();
        let mut batch = Some(batch);
        for (k, (node, tag)) in consumers.iter().enumerate() {
            let b = if k + 1 == consumers.len() {
                batch.take().expect("last consumer takes the batch")
            } else {
                ops.clone_batch(batch.as_ref().expect("batch present"))
            };
            self.process(*node, tag, b)?;
        }
        Ok(())
    }

    fn process(&mut self, i: usize, tag: &str, batch: Batch) -> Result<(), RunError> {
        let out_ops = self.pcs[self.nodes[i].outputs[0]].ops.clone();
        match &mut self.nodes[i].kind {
            Kind::ParDo { sides, pushed_back, .. } => {
                if tag != "main" {
                    let slot = sides.iter_mut().find(|s| s.tag == tag).expect("side tag validated");
                    slot.batches.push(batch);
                    return Ok(());
                }
                if !pushed_back.is_empty() || !self.sides_ready(i)? {
                    let Kind::ParDo { pushed_back, .. } = &mut self.nodes[i].kind else { unreachable!() };
                    pushed_back.push(batch);
                    return Ok(());
                }
                self.run_pardo(i, batch)
            }
            Kind::Keyed(_) => {
                let outputs = self.keyed(i, |op, ctx| op.process(batch, ctx))?;
                for b in outputs {
                    self.emit(self.nodes[i].outputs[0], b);
                }
                Ok(())
            }
            Kind::PassThrough => {
                self.emit(self.nodes[i].outputs[0], batch);
                Ok(())
            }
            Kind::WindowInto(assign) => {
                let ops = out_ops;
                let out = match assign {
                    Assign::Builtin(spec) => {
                        ops.assign_windows(batch, &mut |ts, _| windows::assign(spec, ts).expect("built-in window fn"))
                    }
                    Assign::Custom(f) => {
                        let f = f.clone();
                        guarded(&self.nodes[i].name, || Ok(ops.assign_windows(batch, &mut |ts, w| f.assign(ts, w))))?
                    }
                };
                self.emit(self.nodes[i].outputs[0], out);
                Ok(())
            }
            Kind::Create(_) => Err(binding_error(&self.nodes[i].name, "a Create has no inputs")),
        }
    }

    fn keyed(
        &mut self,
        i: usize,
        f: impl FnOnce(&mut dyn KeyedOperator, &mut KeyedContext<'_>) -> Result<(), UserError>,
    ) -> Result<Vec<Batch>, RunError> {
        let node = &mut self.nodes[i];
        let Kind::Keyed(op) = &mut node.kind else { unreachable!() };
        let mut outputs = Vec::new();
        let mut sink = |b: Batch| outputs.push(b);
        let mut ctx =
            KeyedContext { step: &node.name, output: &mut sink, metrics: &mut node.metrics, processing_time: now() };
        guarded(&node.name, || f(op.as_mut(), &mut ctx))?;
        Ok(outputs)
    }

    fn run_pardo(&mut self, i: usize, batch: Batch) -> Result<(), RunError> {
        let node = &mut self.nodes[i];
        let Kind::ParDo { factory, payload, instance, views, .. } = &mut node.kind else { unreachable!() };
        let name = &node.name;
        if instance.is_none() {
            let mut fresh = guarded(name, || factory(payload))?;
            guarded(name, || fresh.setup())?;
            *instance = Some(fresh);
        }
        let dofn = instance.as_mut().expect("instance set up");
        let no_sides = SideViews { views: Vec::new() };
        let side_inputs: &dyn SideInputAccess = views.as_ref().unwrap_or(&no_sides);
        let mut produced: Vec<(usize, Batch)> = Vec::new();
        let mut sink = |idx: usize, b: Batch| produced.push((idx, b));
        let mut ctx = ExecContext { step: name, output: &mut sink, side_inputs, metrics: &mut node.metrics };
        guarded(name, || {
            dofn.start_bundle(&mut ctx)?;
            dofn.process_batch(batch, &mut ctx)?;
            dofn.finish_bundle(&mut ctx)
        })?;
        let outputs = node.outputs.clone();
        for (idx, b) in produced {
            let pc =
                *outputs.get(idx).ok_or_else(|| binding_error(&self.nodes[i].name, format!("no output #{idx}")))?;
            self.emit(pc, b);
        }
        Ok(())
    }

    fn teardown_all(&mut self) -> Result<(), RunError> {
        let mut first_error = None;
        for node in &mut self.nodes {
            if let Kind::ParDo { instance: Some(dofn), .. } = &mut node.kind {
                if let Err(e) = guarded(&node.name, || dofn.teardown()) {
                    first_error.get_or_insert(e);
                }
            }
        }
        first_error.map_or(Ok(()), Err)
    }
}
