//! Executing one Beam bundle descriptor with a Runnel job's code.
//!
//! A descriptor is a fused stage as the *runner* cut it: data sources (`beam:runner:source:v1`),
//! SDK transforms, data sinks (`beam:runner:sink:v1`). Each SDK transform is matched to the code
//! of the Runnel job (by the [`FnPayload`] of its function, or its id), and the whole descriptor
//! becomes a [`FusedStage`] run by `runners/core`'s [`StageExecutor`], as every Runnel runner
//! runs its stages: batches go depth-first through the transforms as data arrives, and what
//! reaches a data sink is encoded and handed out in blocks, so a bundle never holds its whole
//! input or output. Elements cross the boundary re-framed between Beam's wire format
//! (`windowed_value` of KV / iterable / `length_prefix`) and Runnel's value bytes
//! ([`ElementOps::encode_values`]). Side inputs are read on demand through the state API
//! ([`SideInputSource`]): whole windows (Beam's iterable side inputs), or key by key for views
//! that read by key (Beam's multimap side inputs).

use crate::coders::{self, Context};
use crate::proto::fn_execution as fnapi;
use crate::proto::pipeline as pb;
use crate::translate::{beam_urn, runnel_urn, FnPayload};
use prost::Message;
use runnel_model::exec::{
    Batch, DoFnInstance, ElementMeta, ElementOps, ExecContext, Executable, Job, KeyedSideInput, UserError,
};
use runnel_model::graph::{CombinePayload, ParDoPayload};
use runnel_model::metrics::MetricsSnapshot;
use runnel_model::{PaneInfo, Timestamp, Window};
use runnel_runner_core::stage::{
    FusedNode, FusedPort, FusedStage, FusedWork, SideInputSource, StageExecutor, StageSink,
};
use runnel_runner_core::typed::{downcast, TypedOps};
use runnel_runner_core::RunError;
use std::collections::BTreeMap;
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
    /// `length_prefix` of a coder Beam knows (a runner may add one, as Prism does around the
    /// values of a TestStream's pairs): a varint length, then that coder's framing.
    PrefixedWire(Box<Wire>),
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
        let component_urn = |i: usize| {
            let cid = c.component_coder_ids.get(i)?;
            coders.get(cid)?.spec.as_ref().map(|s| s.urn.as_str())
        };
        Ok(match urn {
            coders::urn::LENGTH_PREFIX => match component_urn(0) {
                Some(coders::urn::LENGTH_PREFIX | coders::urn::KV | coders::urn::ITERABLE) => {
                    Wire::PrefixedWire(comp(0)?)
                }
                _ => Wire::Prefixed,
            },
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
            Wire::PrefixedWire(inner) => {
                let mut framed = coders::read_bytes(input, Context::Nested)?;
                inner.to_runnel(&mut framed, Context::Outer, out)?;
                if !framed.is_empty() {
                    return Err(format!("{} bytes left inside a length prefix", framed.len()).into());
                }
            }
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
    pub(crate) fn frame_runnel(
        &self,
        value: &[u8],
        key_len: Option<usize>,
        out: &mut Vec<u8>,
    ) -> Result<(), UserError> {
        match (self, key_len) {
            (Wire::Prefixed, _) => coders::write_bytes(value, Context::Nested, out),
            (Wire::PrefixedWire(inner), _) => {
                let mut framed = Vec::with_capacity(value.len() + 4);
                inner.frame_runnel(value, key_len, &mut framed)?;
                coders::write_bytes(&framed, Context::Nested, out);
            }
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

    /// Decodes one windowed value from `input` into `batch` (once per window).
    fn decode_one(
        &self,
        input: &mut &[u8],
        ops: &dyn ElementOps,
        batch: &mut Batch,
        value: &mut Vec<u8>,
    ) -> Result<(), UserError> {
        let timestamp = coders::read_timestamp(input)?;
        let mut windows = Vec::new();
        coders::read_elements(input, &mut |input| {
            match self.window.decode(input, Context::Nested)? {
                coders::Value::Window(w) => windows.push(w),
                other => return Err(coders::CoderError(format!("not a window: {other:?}"))),
            }
            Ok(())
        })?;
        let pane = coders::read_pane(input)?;
        value.clear();
        self.value.to_runnel(input, Context::Nested, value)?;
        for window in windows {
            ops.push_decoded(batch, &ElementMeta { timestamp, window, pane }, value)?;
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

/// Elements decoded from a data source are pushed into the stage in batches of at most this many.
const BATCH_ELEMENTS: usize = 4096;

/// Encoded output is handed out in blocks of about this many bytes.
pub const OUTPUT_BLOCK_BYTES: usize = 1 << 20;

/// A data source of a bundle: the executor's entry port it feeds, and how to decode it.
struct Source {
    port: usize,
    wire: ElementWire,
    ops: Arc<dyn ElementOps>,
    /// The bytes of an element cut by the end of the last block received.
    carry: Vec<u8>,
}

/// A data sink of a bundle: how to encode what leaves through it, and what is not handed out yet.
struct Sink {
    transform: String,
    wire: ElementWire,
    ops: Arc<dyn ElementOps>,
    buffer: Vec<u8>,
}

/// Where encoded output blocks go: `(data sink transform id, bytes)`.
pub type Emit<'a> = dyn FnMut(&str, Vec<u8>) -> Result<(), UserError> + 'a;

struct Encoder<'a, 'e> {
    sinks: &'a mut [Sink],
    emit: &'a mut Emit<'e>,
}

impl StageSink for Encoder<'_, '_> {
    fn write(&mut self, output: usize, batch: Batch) -> Result<(), RunError> {
        let sink = &mut self.sinks[output];
        let encoded = sink.wire.encode(sink.ops.as_ref(), &batch, &mut sink.buffer);
        encoded.map_err(|e| RunError::user_code(&sink.transform, e))?;
        if sink.buffer.len() >= OUTPUT_BLOCK_BYTES {
            let block = std::mem::take(&mut sink.buffer);
            (self.emit)(&sink.transform, block).map_err(|e| RunError::user_code(&sink.transform, e))?;
        }
        Ok(())
    }
}

/// One live processor of a bundle descriptor: built once, then run for bundle after bundle
/// (DoFns are set up once and see one start/finish pair per bundle).
pub struct BundleProcessor {
    executor: StageExecutor,
    sources: BTreeMap<String, Source>,
    sinks: Vec<Sink>,
}

impl BundleProcessor {
    /// Builds a processor for `descriptor` with `job`'s code; `fingerprint` is the graph
    /// fingerprint every Runnel function of the descriptor must carry.
    pub fn new(
        job: &Job,
        fingerprint: &str,
        descriptor: &fnapi::ProcessBundleDescriptor,
        side_inputs: Arc<dyn SideInputSource>,
    ) -> Result<BundleProcessor, UserError> {
        let plan = fuse(job, fingerprint, descriptor)?;
        let executor = StageExecutor::fused(plan.stage, &job.graph, &job.bindings, Some(side_inputs))?;
        Ok(BundleProcessor { executor, sources: plan.sources, sinks: plan.sinks })
    }

    /// The ids of the descriptor's data source transforms.
    pub fn source_ids(&self) -> Vec<String> {
        self.sources.keys().cloned().collect()
    }

    /// The ids of the descriptor's data sink transforms.
    pub fn sink_ids(&self) -> Vec<String> {
        self.sinks.iter().map(|s| s.transform.clone()).collect()
    }

    /// Processes a block of bytes received for data source `transform` (`last`: the source's
    /// final block); full output blocks go to `emit`. A block may end inside an element: the
    /// rest of it comes with the next block.
    pub fn feed(&mut self, transform: &str, data: &[u8], last: bool, emit: &mut Emit<'_>) -> Result<(), RunError> {
        let wire_error = |message: String| RunError::Binding { transform: transform.to_string(), message };
        let source = self
            .sources
            .get_mut(transform)
            .ok_or_else(|| wire_error("data for a transform that is not a data source of this bundle".into()))?;
        let joined;
        let mut input: &[u8] = if source.carry.is_empty() {
            data
        } else {
            source.carry.extend_from_slice(data);
            joined = std::mem::take(&mut source.carry);
            &joined
        };
        let mut sink = Encoder { sinks: &mut self.sinks, emit };
        let mut batch = source.ops.empty();
        let mut value = Vec::new();
        while !input.is_empty() {
            let mut rest = input;
            if let Err(e) = source.wire.decode_one(&mut rest, source.ops.as_ref(), &mut batch, &mut value) {
                if last {
                    return Err(wire_error(format!("undecodable element from the runner: {e}")));
                }
                // Most likely cut by the block's end: try again with the next block.
                source.carry = input.to_vec();
                break;
            }
            input = rest;
            if source.ops.len(&batch) >= BATCH_ELEMENTS {
                let full = std::mem::replace(&mut batch, source.ops.empty());
                self.executor.push(source.port, full, &mut sink)?;
            }
        }
        if source.ops.len(&batch) > 0 {
            self.executor.push(source.port, batch, &mut sink)?;
        }
        Ok(())
    }

    /// Ends the bundle: DoFns finish, and every sink's remaining output goes to `emit`.
    pub fn finish(&mut self, emit: &mut Emit<'_>) -> Result<(), RunError> {
        for (id, source) in &mut self.sources {
            if !source.carry.is_empty() {
                source.carry.clear();
                let message = "the runner's data ended inside an element".to_string();
                return Err(RunError::Binding { transform: id.clone(), message });
            }
        }
        self.executor.finish_bundle(&mut Encoder { sinks: &mut self.sinks, emit })?;
        for sink in &mut self.sinks {
            if !sink.buffer.is_empty() {
                emit(&sink.transform, std::mem::take(&mut sink.buffer))
                    .map_err(|e| RunError::user_code(&sink.transform, e))?;
            }
        }
        Ok(())
    }

    /// Moves the metrics of the bundles run so far into `into`.
    pub fn drain_metrics(&mut self, into: &mut MetricsSnapshot) {
        self.executor.drain_metrics(into);
    }

    /// Tears the DoFns down (the processor is not used again).
    pub fn teardown(&mut self) -> Result<(), UserError> {
        Ok(self.executor.teardown()?)
    }
}

/// A descriptor made ready for the executor.
struct Fused {
    stage: FusedStage,
    sources: BTreeMap<String, Source>,
    sinks: Vec<Sink>,
}

/// Runs a Create's code for the impulse that triggers it.
struct CreateFromImpulse {
    elements: Arc<dyn Fn() -> Result<Batch, UserError> + Send + Sync>,
}

impl DoFnInstance for CreateFromImpulse {
    fn setup(&mut self) -> Result<(), UserError> {
        Ok(())
    }
    fn start_bundle(&mut self, _: &mut ExecContext<'_>) -> Result<(), UserError> {
        Ok(())
    }
    fn process_batch(&mut self, input: Batch, ctx: &mut ExecContext<'_>) -> Result<(), UserError> {
        for _impulse in downcast::<()>(input) {
            (ctx.output)(0, (self.elements)()?);
        }
        Ok(())
    }
    fn finish_bundle(&mut self, _: &mut ExecContext<'_>) -> Result<(), UserError> {
        Ok(())
    }
    fn teardown(&mut self) -> Result<(), UserError> {
        Ok(())
    }
}

fn fn_payload(spec: &pb::FunctionSpec) -> Result<FnPayload, UserError> {
    Ok(serde_json::from_slice(&spec.payload).map_err(|e| format!("bad Runnel function payload: {e}"))?)
}

fn elements_of(job: &Job, pc: &str) -> Result<Arc<dyn ElementOps>, UserError> {
    job.bindings.elements.get(pc).cloned().ok_or_else(|| format!("no element operations for '{pc}'").into())
}

/// What a descriptor transform is, as far as the harness goes.
enum Role {
    Source(fnapi::RemoteGrpcPort),
    Sink(fnapi::RemoteGrpcPort),
    /// With the element operations of what it reads.
    Node(FusedNode, Arc<dyn ElementOps>),
}

/// Matches every transform of the descriptor to the job's code.
fn fuse(job: &Job, fingerprint: &str, d: &fnapi::ProcessBundleDescriptor) -> Result<Fused, UserError> {
    let graph = &job.graph;
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
    let runnel = |id: &str| -> Result<&runnel_model::graph::Transform, UserError> {
        graph.transforms.get(id).ok_or_else(|| format!("transform '{id}' is not in this program's graph").into())
    };
    let combine =
        |spec: &pb::FunctionSpec| -> Result<(String, runnel_model::exec::CombineHalves, CombinePayload), UserError> {
            let p = pb::CombinePayload::decode(spec.payload.as_slice())?;
            let fp = fn_payload(p.combine_fn.as_ref().ok_or("a combine without CombineFn")?)?;
            check(&fp)?;
            let Some(Executable::Combine { halves, .. }) = job.bindings.transforms.get(&fp.transform) else {
                return Err(format!("no combine code bound for '{}'", fp.transform).into());
            };
            let payload: CombinePayload = runnel(&fp.transform)?.payload_as()?;
            Ok((fp.transform, halves.clone(), payload))
        };
    let inputs_of = |t: &pb::PTransform| -> Vec<String> { t.inputs.values().cloned().collect() };
    let single_output = |id: &str, t: &pb::PTransform| -> Result<String, UserError> {
        t.outputs.values().next().cloned().ok_or_else(|| format!("transform '{id}' has no output").into())
    };
    let port = |pc: String, ops: Arc<dyn ElementOps>| FusedPort { pcollection: pc, ops };
    let mut roles: Vec<(String, Role)> = Vec::new();
    for (id, t) in &d.transforms {
        let Some(spec) = &t.spec else { continue };
        // `reads`: the element operations of what the node reads (a data source feeding it
        // decodes with them).
        let node = |transform: String, work: FusedWork, inputs: Vec<String>, reads, outputs: Vec<FusedPort>| {
            Role::Node(FusedNode { id: id.clone(), transform, work, inputs, outputs }, reads)
        };
        let role = match spec.urn.as_str() {
            DATA_SOURCE => Role::Source(fnapi::RemoteGrpcPort::decode(spec.payload.as_slice())?),
            DATA_SINK => Role::Sink(fnapi::RemoteGrpcPort::decode(spec.payload.as_slice())?),
            beam_urn::FLATTEN | beam_urn::RESHUFFLE | beam_urn::WINDOW_INTO => {
                let rt = runnel(id)?;
                let rpc = rt.outputs.values().next().ok_or_else(|| format!("'{id}' has no output"))?;
                let outputs = vec![port(single_output(id, t)?, elements_of(job, rpc)?)];
                let reads = elements_of(job, rt.inputs.values().next().ok_or_else(|| format!("'{id}' has no input"))?)?;
                node(id.clone(), FusedWork::Graph, inputs_of(t), reads, outputs)
            }
            beam_urn::PAR_DO => {
                let p = pb::ParDoPayload::decode(spec.payload.as_slice())?;
                let f = p.do_fn.ok_or("a ParDo without DoFn")?;
                let fp = fn_payload(&f)?;
                check(&fp)?;
                let rt = runnel(&fp.transform)?;
                match (f.urn.as_str(), job.bindings.transforms.get(&fp.transform)) {
                    (runnel_urn::CREATE_FN, Some(Executable::Create { elements })) => {
                        let rpc = rt.outputs.values().next().ok_or("a Create without output")?;
                        let outputs = vec![port(single_output(id, t)?, elements_of(job, rpc)?)];
                        let work = FusedWork::Instance(Box::new(CreateFromImpulse { elements: elements.clone() }));
                        // An impulse's element is not decoded: `()`.
                        let reads: Arc<dyn ElementOps> = Arc::new(TypedOps::<()>::default());
                        node(fp.transform.clone(), work, inputs_of(t), reads, outputs)
                    }
                    (runnel_urn::DO_FN, Some(Executable::ParDo { .. })) => {
                        let payload: ParDoPayload = rt.payload_as()?;
                        let main_tags: Vec<&String> =
                            t.inputs.keys().filter(|tag| !payload.side_inputs.iter().any(|s| &s.tag == *tag)).collect();
                        let main: Vec<String> = main_tags.iter().map(|tag| t.inputs[*tag].clone()).collect();
                        let main_tag =
                            main_tags.first().ok_or_else(|| format!("'{}' has no main input", fp.transform))?;
                        let rpc = rt
                            .inputs
                            .get(*main_tag)
                            .ok_or_else(|| format!("'{}' has no input '{main_tag}'", fp.transform))?;
                        let reads = elements_of(job, rpc)?;
                        let mut outputs = Vec::new();
                        for tag in &payload.outputs {
                            let rpc = rt
                                .outputs
                                .get(tag)
                                .ok_or_else(|| format!("'{}' has no output '{tag}'", fp.transform))?;
                            // An output the runner dropped (nothing reads it) goes nowhere.
                            let pc = t.outputs.get(tag).cloned().unwrap_or_else(|| format!("{id}:unread:{tag}"));
                            outputs.push(port(pc, elements_of(job, rpc)?));
                        }
                        node(fp.transform.clone(), FusedWork::Graph, main, reads, outputs)
                    }
                    _ => return Err(format!("no code bound for '{}' ({})", fp.transform, f.urn).into()),
                }
            }
            beam_urn::COMBINE_PRECOMBINE
            | beam_urn::COMBINE_MERGE_ACCUMULATORS
            | beam_urn::COMBINE_EXTRACT_OUTPUTS
            | beam_urn::COMBINE_GROUPED_VALUES => {
                let (transform, halves, payload) = combine(spec)?;
                let combined = || -> Result<Arc<dyn ElementOps>, UserError> {
                    elements_of(job, runnel(&transform)?.outputs.values().next().ok_or("a combine without output")?)
                };
                let (part, reads, out_ops) = match spec.urn.as_str() {
                    beam_urn::COMBINE_PRECOMBINE => {
                        let input = runnel(&transform)?.inputs.values().next().ok_or("a combine without input")?;
                        (&halves.precombine, elements_of(job, input)?, halves.accumulator_ops.clone())
                    }
                    beam_urn::COMBINE_MERGE_ACCUMULATORS => (
                        &halves.merge_accumulators,
                        halves.grouped_accumulator_ops.clone(),
                        halves.accumulator_ops.clone(),
                    ),
                    beam_urn::COMBINE_EXTRACT_OUTPUTS => {
                        (&halves.extract_outputs, halves.accumulator_ops.clone(), combined()?)
                    }
                    _ => (&halves.combine_grouped_values, halves.grouped_input_ops.clone(), combined()?),
                };
                let instance = part(&payload).map_err(|e| format!("combine '{transform}': {e}"))?;
                let outputs = vec![port(single_output(id, t)?, out_ops)];
                node(transform, FusedWork::Instance(instance), inputs_of(t), reads, outputs)
            }
            other => {
                return Err(format!("transform '{id}' has URN '{other}', which the Runnel harness does not run").into())
            }
        };
        roles.push((id.clone(), role));
    }
    // Element operations of every PCollection something in the bundle produces, and of those
    // it reads (as its first reader reads them).
    let mut produced: BTreeMap<String, Arc<dyn ElementOps>> = BTreeMap::new();
    let mut read: BTreeMap<String, Arc<dyn ElementOps>> = BTreeMap::new();
    for (_, role) in &roles {
        if let Role::Node(n, reads) = role {
            for o in &n.outputs {
                produced.insert(o.pcollection.clone(), o.ops.clone());
            }
            for pc in &n.inputs {
                read.entry(pc.clone()).or_insert_with(|| reads.clone());
            }
        }
    }
    let mut entries = Vec::new();
    let mut sources = BTreeMap::new();
    let mut sinks = Vec::new();
    let mut exits = Vec::new();
    let mut nodes = Vec::new();
    // Sources first: a sink may read what a source delivers.
    roles.sort_by_key(|(_, role)| !matches!(role, Role::Source(_)));
    for (id, role) in roles {
        let t = &d.transforms[&id];
        match role {
            Role::Source(grpc_port) => {
                let pc = single_output(&id, t)?;
                let wire = ElementWire::of(&grpc_port.coder_id, &d.coders)?;
                let ops = match read.get(&pc) {
                    Some(ops) => ops.clone(),
                    // Read by a data sink only (a runner materialising a PCollection): its own.
                    None => elements_of(job, &pc)
                        .map_err(|_| format!("no element operations for '{pc}', which the bundle only passes on"))?,
                };
                sources.insert(id.clone(), Source { port: entries.len(), wire, ops: ops.clone(), carry: Vec::new() });
                entries.push(FusedPort { pcollection: pc, ops });
            }
            Role::Sink(grpc_port) => {
                let pc = inputs_of(t).pop().ok_or_else(|| format!("data sink '{id}' has no input"))?;
                let ops = produced
                    .get(&pc)
                    .cloned()
                    .or_else(|| entries.iter().find(|e| e.pcollection == pc).map(|e| e.ops.clone()))
                    .ok_or_else(|| format!("data sink '{id}' reads '{pc}', which nothing in the bundle produces"))?;
                let wire = ElementWire::of(&grpc_port.coder_id, &d.coders)?;
                sinks.push(Sink { transform: id.clone(), wire, ops, buffer: Vec::new() });
                exits.push(pc);
            }
            Role::Node(n, _) => nodes.push(n),
        }
    }
    let nodes = topological(nodes, &entries)?;
    let stage = FusedStage { name: format!("bundle descriptor {}", d.id), entries, nodes, exits };
    Ok(Fused { stage, sources, sinks })
}

/// Orders nodes so that each comes after the producers of its inputs.
fn topological(mut pending: Vec<FusedNode>, entries: &[FusedPort]) -> Result<Vec<FusedNode>, UserError> {
    let mut available: std::collections::BTreeSet<String> = entries.iter().map(|e| e.pcollection.clone()).collect();
    let mut ordered = Vec::new();
    while !pending.is_empty() {
        let Some(i) = pending.iter().position(|n| n.inputs.iter().all(|pc| available.contains(pc))) else {
            let names: Vec<&str> = pending.iter().map(|n| n.id.as_str()).collect();
            return Err(format!("bundle transforms wait on inputs nothing produces: {names:?}").into());
        };
        let n = pending.remove(i);
        available.extend(n.outputs.iter().map(|o| o.pcollection.clone()));
        ordered.push(n);
    }
    Ok(ordered)
}

/// Side inputs of one bundle, read through the state API: `(transform id, side input id,
/// encoded window, encoded key)` → the concatenated encoded values of all pages: every value of
/// the window (no key: Beam's iterable side input) or of one key (Beam's multimap side input).
pub type StateRead = dyn Fn(&str, &str, Vec<u8>, Option<Vec<u8>>) -> Result<Vec<u8>, UserError> + Send + Sync;

/// How one side input's state comes: value framing, window coder, element operations.
type SideWire = (Wire, coders::BeamCoder, Arc<dyn ElementOps>);

/// A [`SideInputSource`] over the state API, decoding with the descriptor's coders.
pub struct StateSideInputs {
    /// Per reading transform and side input id: value framing, window coder, element operations.
    sides: BTreeMap<(String, String), SideWire>,
    read: Arc<StateRead>,
}

/// One window of a multimap side input, read key by key through the state API.
struct StateKeyed {
    read: Arc<StateRead>,
    reader: String,
    tag: String,
    window: Vec<u8>,
    key: Wire,
    value: Wire,
}

impl KeyedSideInput for StateKeyed {
    fn values(&self, key: &[u8]) -> Result<Vec<Vec<u8>>, UserError> {
        let mut beam_key = Vec::with_capacity(key.len() + 2);
        self.key.frame_runnel(key, None, &mut beam_key)?;
        let bytes = (self.read)(&self.reader, &self.tag, self.window.clone(), Some(beam_key))?;
        let mut rest = bytes.as_slice();
        let mut values = Vec::new();
        while !rest.is_empty() {
            let mut value = Vec::new();
            self.value.to_runnel(&mut rest, Context::Nested, &mut value)?;
            values.push(value);
        }
        Ok(values)
    }
}

impl StateSideInputs {
    /// The side inputs of `d`'s ParDos, read with `read`.
    pub fn new(job: &Job, d: &fnapi::ProcessBundleDescriptor, read: Arc<StateRead>) -> Result<Self, UserError> {
        let mut sides = BTreeMap::new();
        for (id, t) in &d.transforms {
            let Some(spec) = t.spec.as_ref().filter(|s| s.urn == beam_urn::PAR_DO) else { continue };
            let p = pb::ParDoPayload::decode(spec.payload.as_slice())?;
            if p.side_inputs.is_empty() {
                continue;
            }
            let fp = fn_payload(p.do_fn.as_ref().ok_or("a ParDo without DoFn")?)?;
            let rt = job.graph.transforms.get(&fp.transform).ok_or("unknown transform")?;
            for tag in p.side_inputs.keys() {
                let rpc = rt.inputs.get(tag).ok_or_else(|| format!("'{}' has no side input '{tag}'", fp.transform))?;
                let dpc = t.inputs.get(tag).ok_or("a side input missing from the descriptor")?;
                let dnode = d.pcollections.get(dpc).ok_or("unknown side input PCollection")?;
                let ws = d.windowing_strategies.get(&dnode.windowing_strategy_id).ok_or("unknown windowing")?;
                let entry = (
                    Wire::of(&dnode.coder_id, &d.coders)?,
                    window_coder(&ws.window_coder_id, &d.coders)?,
                    elements_of(job, rpc)?,
                );
                sides.insert((id.clone(), tag.clone()), entry);
            }
        }
        Ok(StateSideInputs { sides, read })
    }
}

impl SideInputSource for StateSideInputs {
    fn read(&self, reader: &str, tag: &str, window: &Window) -> Result<Batch, UserError> {
        let (wire, window_coder, ops) = self
            .sides
            .get(&(reader.to_string(), tag.to_string()))
            .ok_or_else(|| format!("no side input '{tag}' of '{reader}' in the bundle descriptor"))?;
        let mut key = Vec::new();
        window_coder.encode(&coders::Value::Window(*window), Context::Outer, &mut key)?;
        let bytes = (self.read)(reader, tag, key, None)?;
        let mut batch = ops.empty();
        let mut rest = bytes.as_slice();
        let mut value = Vec::new();
        while !rest.is_empty() {
            value.clear();
            wire.to_runnel(&mut rest, Context::Nested, &mut value)?;
            let meta = ElementMeta { timestamp: Timestamp::MIN, window: *window, pane: PaneInfo::NO_FIRING };
            ops.push_decoded(&mut batch, &meta, &value)?;
        }
        Ok(batch)
    }

    fn keyed(&self, reader: &str, tag: &str, window: &Window) -> Option<Arc<dyn KeyedSideInput>> {
        let (Wire::Kv(key, value), window_coder, _) = self.sides.get(&(reader.to_string(), tag.to_string()))? else {
            return None;
        };
        let mut encoded_window = Vec::new();
        window_coder.encode(&coders::Value::Window(*window), Context::Outer, &mut encoded_window).ok()?;
        Some(Arc::new(StateKeyed {
            read: self.read.clone(),
            reader: reader.to_string(),
            tag: tag.to_string(),
            window: encoded_window,
            key: (**key).clone(),
            value: (**value).clone(),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn coder(urn: &str, components: &[&str]) -> pb::Coder {
        pb::Coder {
            spec: Some(pb::FunctionSpec { urn: urn.to_string(), payload: vec![] }),
            component_coder_ids: components.iter().map(|c| c.to_string()).collect(),
        }
    }

    /// Prism length-prefixes the values of a TestStream's pairs once more: KV(k, LP(LP(serde))).
    /// The harness must see through the added prefix both ways.
    #[test]
    fn a_length_prefix_around_a_known_coder_is_seen_through() {
        let coders = BTreeMap::from([
            ("serde".to_string(), coder(runnel_model::urns::SERDE_CODER, &[])),
            ("lp".to_string(), coder(coders::urn::LENGTH_PREFIX, &["serde"])),
            ("lp_lp".to_string(), coder(coders::urn::LENGTH_PREFIX, &["lp"])),
            ("kv".to_string(), coder(coders::urn::KV, &["lp", "lp_lp"])),
        ]);
        let wire = Wire::of("kv", &coders).unwrap();
        assert_eq!(wire, Wire::Kv(Box::new(Wire::Prefixed), Box::new(Wire::PrefixedWire(Box::new(Wire::Prefixed)))));
        // Runnel's bytes of a pair: key "k" (2 bytes here), value (3 bytes).
        let runnel = [1u8, 2, 7, 8, 9];
        let mut beam = Vec::new();
        wire.frame_runnel(&runnel, Some(2), &mut beam).unwrap();
        assert_eq!(beam, vec![2, 1, 2, 4, 3, 7, 8, 9]);
        let mut back = Vec::new();
        wire.to_runnel(&mut beam.as_slice(), Context::Outer, &mut back).unwrap();
        assert_eq!(back, runnel);
        // Bytes left inside the outer prefix are an error, not ignored.
        let mut input: &[u8] = &[2, 1, 2, 5, 3, 7, 8, 9, 0];
        assert!(wire.to_runnel(&mut input, Context::Outer, &mut Vec::new()).is_err());
    }
}
