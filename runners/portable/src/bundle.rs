//! Executing one Beam bundle descriptor with a Runnel job's code.
//!
//! A descriptor is a fused stage as the *runner* cut it: data sources (`beam:runner:source:v1`),
//! SDK transforms, data sinks (`beam:runner:sink:v1`). Each SDK transform is matched to the code
//! of the Runnel job (by the [`FnPayload`] of its function, or its id) and run as a
//! [`DoFnInstance`] over whole batches, transforms in topological order. Elements cross the
//! boundary re-framed between Beam's wire format (`windowed_value` of KV / iterable /
//! `length_prefix`) and Runnel's value bytes ([`ElementOps::encode_values`]).

use crate::coders::{self, Context};
use crate::proto::fn_execution as fnapi;
use crate::proto::pipeline as pb;
use crate::translate::{beam_urn, runnel_urn, FnPayload};
use prost::Message;
use runnel_model::exec::{
    Batch, DoFnInstance, ElementMeta, ElementOps, ExecContext, Executable, Job, SideInputAccess, UserError, ViewValue,
};
use runnel_model::graph::{CombinePayload, ParDoPayload, WindowIntoPayload};
use runnel_model::metrics::StepMetrics;
use runnel_model::{PaneInfo, Timestamp, Window, WindowFnSpec};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

/// The data source and sink URNs of bundle descriptors.
pub const DATA_SOURCE: &str = "beam:runner:source:v1";
/// See [`DATA_SOURCE`].
pub const DATA_SINK: &str = "beam:runner:sink:v1";

/// How a value is framed on Beam's wire, as far as Runnel's values go.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Wire {
    /// `length_prefix(…)`: a Runnel value's bytes behind a varint length.
    Prefixed,
    /// `kv`: key then value.
    Kv(Box<Wire>, Box<Wire>),
    /// `iterable`: a count, then the elements.
    Iterable(Box<Wire>),
    /// `bytes` (an impulse's element): no Runnel value.
    Bytes,
}

impl Wire {
    /// The framing of coder `id` of `coders`.
    pub fn of(id: &str, coders: &BTreeMap<String, pb::Coder>) -> Result<Wire, UserError> {
        let c = coders.get(id).ok_or_else(|| format!("unknown coder '{id}'"))?;
        let urn = c.spec.as_ref().map(|s| s.urn.as_str()).unwrap_or_default();
        let comp = |i: usize| -> Result<Box<Wire>, UserError> {
            let cid = c.component_coder_ids.get(i).ok_or_else(|| format!("coder '{id}' lacks component {i}"))?;
            Ok(Box::new(Wire::of(cid, coders)?))
        };
        Ok(match urn {
            coders::urn::LENGTH_PREFIX => Wire::Prefixed,
            coders::urn::KV => Wire::Kv(comp(0)?, comp(1)?),
            coders::urn::ITERABLE => Wire::Iterable(comp(0)?),
            coders::urn::BYTES => Wire::Bytes,
            other => return Err(format!("coder '{id}' ({other}) is not one the Runnel harness reads").into()),
        })
    }

    /// Reads one value from `input` and appends Runnel's bytes of it (bincode: a pair is its
    /// parts back to back, a sequence an 8-byte little-endian count then its elements).
    fn to_runnel(&self, input: &mut &[u8], context: Context, out: &mut Vec<u8>) -> Result<(), UserError> {
        match self {
            Wire::Prefixed => out.extend_from_slice(coders::read_bytes(input, Context::Nested)?),
            Wire::Bytes => {
                coders::read_bytes(input, context)?;
            }
            Wire::Kv(k, v) => {
                k.to_runnel(input, Context::Nested, out)?;
                v.to_runnel(input, context, out)?;
            }
            Wire::Iterable(e) => {
                let count_at = out.len();
                out.extend_from_slice(&[0; 8]);
                let mut n: u64 = 0;
                let mut failure = None;
                coders::read_elements(input, &mut |input| {
                    n += 1;
                    e.to_runnel(input, Context::Nested, out).map_err(|err| {
                        failure = Some(err.to_string());
                        coders::CoderError("element".into())
                    })
                })
                .map_err(|err| failure.take().unwrap_or(err.0))?;
                out[count_at..count_at + 8].copy_from_slice(&n.to_le_bytes());
            }
        }
        Ok(())
    }

    /// Appends Beam's framing of a Runnel value's bytes (`key_len`: where a pair's key ends).
    fn frame_runnel(&self, value: &[u8], key_len: Option<usize>, out: &mut Vec<u8>) -> Result<(), UserError> {
        match (self, key_len) {
            (Wire::Prefixed, _) => coders::write_bytes(value, Context::Nested, out),
            (Wire::Kv(k, v), Some(at)) if at <= value.len() => {
                k.frame_runnel(&value[..at], None, out)?;
                v.frame_runnel(&value[at..], None, out)?;
            }
            (other, _) => return Err(format!("cannot frame a Runnel value as {other:?}").into()),
        }
        Ok(())
    }
}

/// The window coder of a `windowed_value` coder.
fn window_coder(id: &str, coders: &BTreeMap<String, pb::Coder>) -> Result<coders::BeamCoder, UserError> {
    Ok(coders::BeamCoder::from_proto(id, coders)?)
}

/// Framing of elements of a data port: `windowed_value(value, window)`.
pub struct ElementWire {
    value: Wire,
    window: coders::BeamCoder,
}

impl ElementWire {
    /// From the coder id of a data port.
    pub fn of(id: &str, coders: &BTreeMap<String, pb::Coder>) -> Result<ElementWire, UserError> {
        let c = coders.get(id).ok_or_else(|| format!("unknown coder '{id}'"))?;
        let urn = c.spec.as_ref().map(|s| s.urn.as_str()).unwrap_or_default();
        if urn != coders::urn::WINDOWED_VALUE || c.component_coder_ids.len() != 2 {
            return Err(format!("data port coder '{id}' is {urn}, not a windowed value").into());
        }
        Ok(ElementWire {
            value: Wire::of(&c.component_coder_ids[0], coders)?,
            window: window_coder(&c.component_coder_ids[1], coders)?,
        })
    }

    /// Decodes a stream of windowed values into `batch` (one element per window).
    fn decode_into(&self, mut input: &[u8], ops: &dyn ElementOps, batch: &mut Batch) -> Result<(), UserError> {
        if self.value == Wire::Bytes {
            // An impulse: the Create it feeds ignores its element.
            return Ok(());
        }
        let mut value = Vec::new();
        while !input.is_empty() {
            let timestamp = coders::read_timestamp(&mut input)?;
            let mut windows = Vec::new();
            coders::read_elements(&mut input, &mut |input| {
                match self.window.decode(input, Context::Nested)? {
                    coders::Value::Window(w) => windows.push(w),
                    other => return Err(coders::CoderError(format!("not a window: {other:?}"))),
                }
                Ok(())
            })?;
            let pane = coders::read_pane(&mut input)?;
            value.clear();
            self.value.to_runnel(&mut input, Context::Nested, &mut value)?;
            for window in windows {
                ops.push_decoded(batch, &ElementMeta { timestamp, window, pane }, &value)?;
            }
        }
        Ok(())
    }

    /// Encodes a batch as a stream of windowed values.
    fn encode(&self, ops: &dyn ElementOps, batch: &Batch, out: &mut Vec<u8>) -> Result<(), UserError> {
        ops.encode_values(batch, &mut |meta, value, key_len| {
            coders::write_timestamp(meta.timestamp, out);
            out.extend_from_slice(&1i32.to_be_bytes());
            self.window.encode(&coders::Value::Window(meta.window), Context::Nested, out)?;
            coders::write_pane(&meta.pane, out);
            self.value.frame_runnel(value, key_len, out)
        })
    }
}

/// Reads side inputs for a bundle: `(transform id, side input id, encoded window)` → the
/// concatenated encoded values (all pages).
pub type StateReader<'a> = dyn FnMut(&str, &str, Vec<u8>) -> Result<Vec<u8>, UserError> + 'a;

/// A side input of one ParDo of a bundle, with the views read so far.
struct Side {
    tag: String,
    /// The Runnel side PCollection's window function.
    window_fn: WindowFnSpec,
    wire: Wire,
    window_coder: coders::BeamCoder,
    ops: Arc<dyn ElementOps>,
    materializer: Arc<dyn runnel_model::exec::ViewMaterializer>,
    views: BTreeMap<Window, ViewValue>,
}

struct Views<'a>(&'a [Side]);

impl SideInputAccess for Views<'_> {
    fn get(&self, index: usize, main_window: &Window) -> Result<&ViewValue, UserError> {
        let side = self.0.get(index).ok_or_else(|| format!("no side input #{index}"))?;
        let window = runnel_runner_core::windows::side_input_window(&side.window_fn, main_window)?;
        side.views.get(&window).ok_or_else(|| format!("side input '{}' was not read for {window:?}", side.tag).into())
    }
}

enum Kind {
    Source { wire: ElementWire },
    Sink { wire: ElementWire },
    DoFn { instance: Box<dyn DoFnInstance>, outputs: Vec<String>, sides: Vec<Side> },
    Create { elements: Arc<dyn Fn() -> Result<Batch, UserError> + Send + Sync> },
    WindowInto(WindowFnSpec),
    PassThrough,
}

struct Node {
    id: String,
    /// The Runnel transform it runs, for messages.
    step: String,
    kind: Kind,
    inputs: Vec<String>,
    /// The element operations of its single output (pass-throughs take their input's).
    out_ops: Option<Arc<dyn ElementOps>>,
}

fn fn_payload(spec: &pb::FunctionSpec) -> Result<FnPayload, UserError> {
    Ok(serde_json::from_slice(&spec.payload).map_err(|e| format!("bad Runnel function payload: {e}"))?)
}

/// Runs one bundle of `descriptor` with `job`'s code: `inputs` holds the bytes received for
/// each data source transform; returns the bytes for each data sink transform.
pub fn run_bundle(
    job: &Job,
    fingerprint: &str,
    descriptor: &fnapi::ProcessBundleDescriptor,
    inputs: &BTreeMap<String, Vec<u8>>,
    state: &mut StateReader<'_>,
) -> Result<BTreeMap<String, Vec<u8>>, UserError> {
    let mut nodes = build(job, fingerprint, descriptor)?;
    // Topological order: a node runs once every input PCollection is complete.
    let mut done: BTreeMap<String, (Batch, Arc<dyn ElementOps>)> = BTreeMap::new();
    let mut outputs = BTreeMap::new();
    let mut pending: BTreeSet<usize> = (0..nodes.len()).collect();
    while !pending.is_empty() {
        let ready: Vec<usize> =
            pending.iter().copied().filter(|&i| nodes[i].inputs.iter().all(|pc| done.contains_key(pc))).collect();
        if ready.is_empty() {
            let names: Vec<&str> = pending.iter().map(|&i| nodes[i].id.as_str()).collect();
            return Err(format!("bundle transforms wait on inputs nothing produces: {names:?}").into());
        }
        for i in ready {
            pending.remove(&i);
            let node = &mut nodes[i];
            for (pc, produced) in run_node(node, &done, inputs, state, descriptor, &mut outputs)? {
                done.insert(pc, produced);
            }
        }
    }
    Ok(outputs)
}

/// What a node produced, one batch per output PCollection.
type Produced = Vec<(String, (Batch, Arc<dyn ElementOps>))>;

fn run_node(
    node: &mut Node,
    done: &BTreeMap<String, (Batch, Arc<dyn ElementOps>)>,
    inputs: &BTreeMap<String, Vec<u8>>,
    state: &mut StateReader<'_>,
    descriptor: &fnapi::ProcessBundleDescriptor,
    sinks: &mut BTreeMap<String, Vec<u8>>,
) -> Result<Produced, UserError> {
    let t = &descriptor.transforms[&node.id];
    let single_out = || t.outputs.values().next().cloned().unwrap_or_default();
    let node_inputs = node.inputs.clone();
    let node_id = node.id.clone();
    let gather = || -> Result<(Batch, Arc<dyn ElementOps>), UserError> {
        let mut all: Option<(Batch, Arc<dyn ElementOps>)> = None;
        for pc in &node_inputs {
            let (b, ops) = &done[pc];
            match &mut all {
                None => all = Some((ops.clone_batch(b), ops.clone())),
                Some((acc, ops)) => ops.append(acc, ops.clone_batch(b)),
            }
        }
        all.ok_or_else(|| format!("transform '{node_id}' has no input").into())
    };
    let fail = |node: &Node, e: UserError| -> UserError { format!("transform '{}' failed: {e}", node.step).into() };
    match &mut node.kind {
        Kind::Source { wire } => {
            let ops = node.out_ops.clone().ok_or("a data source without element operations")?;
            let mut batch = ops.empty();
            if let Some(bytes) = inputs.get(&node.id) {
                wire.decode_into(bytes, ops.as_ref(), &mut batch)?;
            }
            Ok(vec![(single_out(), (batch, ops))])
        }
        Kind::Sink { wire } => {
            let (batch, ops) = gather()?;
            let mut out = Vec::new();
            wire.encode(ops.as_ref(), &batch, &mut out)?;
            sinks.insert(node.id.clone(), out);
            Ok(vec![])
        }
        Kind::PassThrough => {
            let (batch, ops) = gather()?;
            Ok(t.outputs.values().map(|pc| (pc.clone(), (ops.clone_batch(&batch), ops.clone()))).collect())
        }
        Kind::WindowInto(spec) => {
            let (batch, ops) = gather()?;
            let batch = match spec {
                // Re-merging restores the window function, not the windows.
                WindowFnSpec::Consumed { .. } => batch,
                spec => {
                    let spec = spec.clone();
                    ops.assign_windows(batch, &mut |ts, _| {
                        runnel_runner_core::windows::assign(&spec, ts).unwrap_or_default()
                    })
                }
            };
            Ok(vec![(single_out(), (batch, ops))])
        }
        Kind::Create { elements } => {
            let ops = node.out_ops.clone().ok_or("a Create without element operations")?;
            let batch = elements().map_err(|e| fail(node, e))?;
            Ok(vec![(single_out(), (batch, ops))])
        }
        Kind::DoFn { .. } => {
            let (input, _) = gather()?;
            let ops = node.out_ops.clone().ok_or("a DoFn without element operations")?;
            let step = node.step.clone();
            let Kind::DoFn { instance, outputs, sides } = &mut node.kind else { unreachable!() };
            // Read each side input for every window the main input needs.
            for side in sides.iter_mut() {
                let windows = input_windows(&input, &ops_for_windows(done, &node.inputs))?;
                for main in windows {
                    let w = runnel_runner_core::windows::side_input_window(&side.window_fn, &main)?;
                    if side.views.contains_key(&w) {
                        continue;
                    }
                    let mut key = Vec::new();
                    side.window_coder.encode(&coders::Value::Window(w), Context::Outer, &mut key)?;
                    let bytes = state(&node.id, &side.tag, key)?;
                    let mut batch = side.ops.empty();
                    let mut rest = bytes.as_slice();
                    let mut value = Vec::new();
                    while !rest.is_empty() {
                        value.clear();
                        side.wire.to_runnel(&mut rest, Context::Nested, &mut value)?;
                        let meta = ElementMeta { timestamp: Timestamp::MIN, window: w, pane: PaneInfo::NO_FIRING };
                        side.ops.push_decoded(&mut batch, &meta, &value)?;
                    }
                    let view = if side.ops.len(&batch) == 0 {
                        side.materializer.empty()?
                    } else {
                        side.materializer.materialize(&[batch])?.remove(&w).ok_or("a side input view is missing")?
                    };
                    side.views.insert(w, view);
                }
            }
            let mut produced: Vec<Batch> = Vec::new();
            let mut metrics = StepMetrics::default();
            {
                let views = Views(sides);
                let mut emit = |index: usize, batch: Batch| {
                    while produced.len() <= index {
                        produced.push(ops.empty());
                    }
                    ops.append(&mut produced[index], batch);
                };
                let mut ctx =
                    ExecContext { step: &step, output: &mut emit, side_inputs: &views, metrics: &mut metrics };
                instance.setup().map_err(|e| fail_step(&step, e))?;
                instance.start_bundle(&mut ctx).map_err(|e| fail_step(&step, e))?;
                instance.process_batch(input, &mut ctx).map_err(|e| fail_step(&step, e))?;
                instance.finish_bundle(&mut ctx).map_err(|e| fail_step(&step, e))?;
                instance.teardown().map_err(|e| fail_step(&step, e))?;
            }
            // Output index i is the i-th tag of the Runnel payload; only the main output
            // (index 0) has known element operations here, so side outputs are refused.
            if produced.len() > 1 || outputs.len() > 1 {
                return Err(format!("transform '{step}': ParDos with several outputs are not supported yet").into());
            }
            let batch = produced.pop().unwrap_or_else(|| ops.empty());
            let pc = t.outputs.get(&outputs[0]).cloned().unwrap_or_else(single_out);
            Ok(vec![(pc, (batch, ops))])
        }
    }
}

fn fail_step(step: &str, e: UserError) -> UserError {
    format!("transform '{step}' failed: {e}").into()
}

fn ops_for_windows(
    done: &BTreeMap<String, (Batch, Arc<dyn ElementOps>)>,
    inputs: &[String],
) -> Option<Arc<dyn ElementOps>> {
    inputs.first().and_then(|pc| done.get(pc)).map(|(_, ops)| ops.clone())
}

fn input_windows(input: &Batch, ops: &Option<Arc<dyn ElementOps>>) -> Result<Vec<Window>, UserError> {
    Ok(ops.as_ref().map(|o| o.windows(input)).unwrap_or_default())
}

/// Builds the nodes of a descriptor, matching each transform to the job's code.
fn build(job: &Job, fingerprint: &str, d: &fnapi::ProcessBundleDescriptor) -> Result<Vec<Node>, UserError> {
    let graph = &job.graph;
    let elements = |pc: &str| -> Result<Arc<dyn ElementOps>, UserError> {
        job.bindings.elements.get(pc).cloned().ok_or_else(|| format!("no element operations for '{pc}'").into())
    };
    let check = |p: &FnPayload| -> Result<(), UserError> {
        if p.graph_fingerprint != fingerprint {
            return Err(format!(
                "the runner sent a pipeline of graph {} but this program built graph {fingerprint}: a worker runs \
                 only the pipeline it built",
                p.graph_fingerprint
            )
            .into());
        }
        Ok(())
    };
    let mut nodes = Vec::new();
    for (id, t) in &d.transforms {
        let Some(spec) = &t.spec else { continue };
        let inputs: Vec<String> = t.inputs.values().cloned().collect();
        let (kind, step, out_ops): (Kind, String, Option<Arc<dyn ElementOps>>) = match spec.urn.as_str() {
            DATA_SOURCE => {
                let port = fnapi::RemoteGrpcPort::decode(spec.payload.as_slice())?;
                let wire = ElementWire::of(&port.coder_id, &d.coders)?;
                let out = t.outputs.values().next().ok_or("a data source without output")?;
                (Kind::Source { wire }, id.clone(), Some(consumer_ops(job, d, out)?))
            }
            DATA_SINK => {
                let port = fnapi::RemoteGrpcPort::decode(spec.payload.as_slice())?;
                (Kind::Sink { wire: ElementWire::of(&port.coder_id, &d.coders)? }, id.clone(), None)
            }
            beam_urn::FLATTEN | beam_urn::RESHUFFLE => (Kind::PassThrough, id.clone(), None),
            beam_urn::WINDOW_INTO => {
                let rt = graph.transforms.get(id).ok_or_else(|| format!("unknown WindowInto '{id}'"))?;
                let payload: WindowIntoPayload = rt.payload_as()?;
                let ws = graph.windowing_strategies.get(&payload.windowing_strategy).ok_or("unknown windowing")?;
                if let WindowFnSpec::Custom { name, .. } = &ws.window_fn {
                    return Err(format!("user window function '{name}' is not supported by the harness").into());
                }
                (Kind::WindowInto(ws.window_fn.clone()), id.clone(), None)
            }
            beam_urn::PAR_DO => {
                let p = pb::ParDoPayload::decode(spec.payload.as_slice())?;
                let f = p.do_fn.ok_or("a ParDo without DoFn")?;
                let fp = fn_payload(&f)?;
                check(&fp)?;
                let rt = graph
                    .transforms
                    .get(&fp.transform)
                    .ok_or_else(|| format!("unknown transform '{}'", fp.transform))?;
                let exec = job.bindings.transforms.get(&fp.transform);
                match (f.urn.as_str(), exec) {
                    (runnel_urn::CREATE_FN, Some(Executable::Create { elements })) => {
                        let out = rt.outputs.values().next().ok_or("a Create without output")?;
                        // The impulse is not an input of the Create's code.
                        nodes.push(Node {
                            id: id.clone(),
                            step: fp.transform.clone(),
                            kind: Kind::Create { elements: elements.clone() },
                            inputs,
                            out_ops: Some(elements_of(job, out)?),
                        });
                        continue;
                    }
                    (runnel_urn::DO_FN, Some(Executable::ParDo { instantiate, side_inputs })) => {
                        let payload: ParDoPayload = rt.payload_as()?;
                        let instance = instantiate(&payload)?;
                        let mut sides = Vec::new();
                        for (spec, materializer) in payload.side_inputs.iter().zip(side_inputs) {
                            let rpc = rt.inputs.get(&spec.tag).ok_or("a side input without PCollection")?;
                            let dpc = t.inputs.get(&spec.tag).ok_or("a side input missing from the descriptor")?;
                            let dnode = d.pcollections.get(dpc).ok_or("unknown side input PCollection")?;
                            let ws =
                                d.windowing_strategies.get(&dnode.windowing_strategy_id).ok_or("unknown windowing")?;
                            sides.push(Side {
                                tag: spec.tag.clone(),
                                window_fn: graph
                                    .windowing_of(rpc)
                                    .map(|w| w.window_fn.clone())
                                    .unwrap_or(WindowFnSpec::Global),
                                wire: Wire::of(&dnode.coder_id, &d.coders)?,
                                window_coder: window_coder(&ws.window_coder_id, &d.coders)?,
                                ops: elements(rpc)?,
                                materializer: materializer.clone(),
                                views: BTreeMap::new(),
                            });
                        }
                        let main_tag = rt.inputs.keys().find(|k| !payload.side_inputs.iter().any(|s| &s.tag == *k));
                        let main = main_tag.and_then(|k| t.inputs.get(k)).cloned();
                        let out = rt.outputs.get(&payload.outputs[0]).ok_or("a ParDo without main output")?;
                        nodes.push(Node {
                            id: id.clone(),
                            step: fp.transform.clone(),
                            kind: Kind::DoFn { instance, outputs: payload.outputs.clone(), sides },
                            inputs: main.into_iter().collect(),
                            out_ops: Some(elements(out)?),
                        });
                        continue;
                    }
                    _ => return Err(format!("no code bound for '{}' ({})", fp.transform, f.urn).into()),
                }
            }
            beam_urn::COMBINE_PRECOMBINE | beam_urn::COMBINE_MERGE_ACCUMULATORS | beam_urn::COMBINE_EXTRACT_OUTPUTS => {
                let p = pb::CombinePayload::decode(spec.payload.as_slice())?;
                let fp = fn_payload(p.combine_fn.as_ref().ok_or("a combine without CombineFn")?)?;
                check(&fp)?;
                let rt = graph
                    .transforms
                    .get(&fp.transform)
                    .ok_or_else(|| format!("unknown transform '{}'", fp.transform))?;
                let Some(Executable::Combine { halves, .. }) = job.bindings.transforms.get(&fp.transform) else {
                    return Err(format!("no combine code bound for '{}'", fp.transform).into());
                };
                let payload: CombinePayload = rt.payload_as()?;
                let (part, out_ops) = match spec.urn.as_str() {
                    beam_urn::COMBINE_PRECOMBINE => (halves.precombine.clone(), halves.accumulator_ops.clone()),
                    beam_urn::COMBINE_MERGE_ACCUMULATORS => {
                        (halves.merge_accumulators.clone(), halves.accumulator_ops.clone())
                    }
                    _ => {
                        let out = rt.outputs.values().next().ok_or("a combine without output")?;
                        (halves.extract_outputs.clone(), elements(out)?)
                    }
                };
                let instance = part(&payload)?;
                let kind = Kind::DoFn { instance, outputs: vec!["out".into()], sides: vec![] };
                nodes.push(Node { id: id.clone(), step: fp.transform.clone(), kind, inputs, out_ops: Some(out_ops) });
                continue;
            }
            other => {
                return Err(format!("transform '{id}' has URN '{other}', which the Runnel harness does not run").into())
            }
        };
        nodes.push(Node { id: id.clone(), step, kind, inputs, out_ops });
    }
    Ok(nodes)
}

fn elements_of(job: &Job, pc: &str) -> Result<Arc<dyn ElementOps>, UserError> {
    job.bindings.elements.get(pc).cloned().ok_or_else(|| format!("no element operations for '{pc}'").into())
}

/// The element operations of what a data source delivers: those its first consumer reads.
fn consumer_ops(job: &Job, d: &fnapi::ProcessBundleDescriptor, pc: &str) -> Result<Arc<dyn ElementOps>, UserError> {
    for (id, t) in &d.transforms {
        let Some((tag, _)) = t.inputs.iter().find(|(_, p)| *p == pc) else { continue };
        let spec = t.spec.as_ref().ok_or("a consumer without spec")?;
        let combine = |spec: &pb::FunctionSpec| -> Result<(FnPayload, runnel_model::exec::CombineHalves), UserError> {
            let p = pb::CombinePayload::decode(spec.payload.as_slice())?;
            let fp = fn_payload(p.combine_fn.as_ref().ok_or("a combine without CombineFn")?)?;
            match job.bindings.transforms.get(&fp.transform) {
                Some(Executable::Combine { halves, .. }) => Ok((fp, halves.clone())),
                _ => Err(format!("no combine code bound for '{}'", fp.transform).into()),
            }
        };
        return match spec.urn.as_str() {
            beam_urn::PAR_DO => {
                let p = pb::ParDoPayload::decode(spec.payload.as_slice())?;
                let f = p.do_fn.as_ref().ok_or("a ParDo without DoFn")?;
                let fp = fn_payload(f)?;
                let rt = job.graph.transforms.get(&fp.transform).ok_or("unknown transform")?;
                if f.urn == runnel_urn::CREATE_FN {
                    // An impulse: its element is not decoded (see `ElementWire::decode_into`).
                    return elements_of(job, rt.outputs.values().next().ok_or("a Create without output")?);
                }
                let pc = rt.inputs.get(tag).ok_or_else(|| format!("'{}' has no input '{tag}'", fp.transform))?;
                elements_of(job, pc)
            }
            beam_urn::COMBINE_PRECOMBINE => {
                let (fp, _) = combine(spec)?;
                let rt = &job.graph.transforms[&fp.transform];
                elements_of(job, rt.inputs.values().next().ok_or("a combine without input")?)
            }
            beam_urn::COMBINE_MERGE_ACCUMULATORS => Ok(combine(spec)?.1.grouped_accumulator_ops),
            beam_urn::COMBINE_EXTRACT_OUTPUTS => Ok(combine(spec)?.1.accumulator_ops),
            beam_urn::WINDOW_INTO | beam_urn::FLATTEN | beam_urn::RESHUFFLE => {
                let rt = job.graph.transforms.get(id).ok_or_else(|| format!("unknown transform '{id}'"))?;
                elements_of(job, rt.inputs.values().next().ok_or("no input")?)
            }
            DATA_SINK => continue,
            other => Err(format!("a data source feeds '{id}' ({other}), which the Runnel harness does not run").into()),
        };
    }
    Err(format!("nothing in the bundle reads '{pc}'").into())
}
