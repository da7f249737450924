//! A Runnel [`Graph`] as a Beam Runner API `Pipeline`.
//!
//! Ids are kept: a Runnel transform, PCollection, coder or windowing strategy has the same id in
//! the Beam pipeline, and the parts the translation adds are named after the transform they
//! belong to (`Create/Impulse`, `Count/GroupByKey`). Beam-specific rules it follows:
//!
//! - **Create** becomes a composite of `beam:transform:impulse:v1` and a ParDo that emits the
//!   pipeline's elements, so that no root transform has a URN a runner does not know (Beam
//!   Python's job service silently replaces such a root with an empty source).
//! - **Combine per key** becomes a `beam:transform:combine_per_key:v1` composite of a
//!   GroupByKey and `beam:transform:combine_grouped_values:v1`, both carrying the
//!   `CombinePayload`, so a runner can lift it or run its parts.
//! - **Coders**: KV and iterable stay Beam's; Runnel's serde coder becomes
//!   `length_prefix(runnel:coder:serde_bincode:v1)`, which runners pass through as opaque bytes.
//! - **User code** (ParDo, Create, CombineFn) is named, not shipped: each `FunctionSpec` payload
//!   is a [`FnPayload`] naming the Runnel transform and the graph's fingerprint; the SDK harness
//!   (the same binary) rebuilds the pipeline and finds the code there.
//! - **TestStream** becomes `beam:transform:teststream:v1`, run by the runner: its elements,
//!   made by the program, are encoded into the payload with the output's Beam coder, so the
//!   translation needs the job's code as well as its graph ([`translate_job`]).
//! - **Refused** before anything is submitted: retracting accumulation (no Beam wire form),
//!   TestStream and unbounded sources on a batch-only target, unbounded sources anywhere (no
//!   splittable DoFn yet), user window functions and triggers a Beam runner cannot evaluate.

use crate::bundle::Wire;
use crate::coders::urn as coder_urn;
use crate::proto::pipeline as pb;
use runnel_model::exec::{Bindings, Executable, Job};
use runnel_model::graph::{CombinePayload, CreatePayload, ParDoPayload, WindowIntoPayload};
use runnel_model::windowing::{
    AccumulationMode, ClosingBehavior, OnTimeBehavior, TimeTransform, TimestampCombiner, Trigger, WindowFnSpec,
    WindowingStrategy,
};
use runnel_model::{urns, Boundedness, Graph, GraphError, TestStreamEvent, TestStreamPayload, Transform};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use thiserror::Error;

/// Beam URNs the translation emits, beyond the coders of [`crate::coders::urn`].
pub mod beam_urn {
    /// Emits one empty byte string: the root of every source.
    pub const IMPULSE: &str = "beam:transform:impulse:v1";
    /// Element-wise processing.
    pub const PAR_DO: &str = "beam:transform:pardo:v1";
    /// Grouping per key and window, done by the runner.
    pub const GROUP_BY_KEY: &str = "beam:transform:group_by_key:v1";
    /// Merging PCollections, done by the runner.
    pub const FLATTEN: &str = "beam:transform:flatten:v1";
    /// Window assignment (run by the SDK harness).
    pub const WINDOW_INTO: &str = "beam:transform:window_into:v1";
    /// Redistribution.
    pub const RESHUFFLE: &str = "beam:transform:reshuffle:v1";
    /// A scripted stream, replayed by the runner.
    pub const TEST_STREAM: &str = "beam:transform:teststream:v1";
    /// The composite Combine per key.
    pub const COMBINE_PER_KEY: &str = "beam:transform:combine_per_key:v1";
    /// Combining the grouped values of each key (the unlifted second half of a Combine).
    pub const COMBINE_GROUPED_VALUES: &str = "beam:transform:combine_grouped_values:v1";
    /// Lifted Combine, before the shuffle (sent back to the harness by lifting runners).
    pub const COMBINE_PRECOMBINE: &str = "beam:transform:combine_per_key_precombine:v1";
    /// Lifted Combine, merging grouped accumulators.
    pub const COMBINE_MERGE_ACCUMULATORS: &str = "beam:transform:combine_per_key_merge_accumulators:v1";
    /// Lifted Combine, extracting outputs.
    pub const COMBINE_EXTRACT_OUTPUTS: &str = "beam:transform:combine_per_key_extract_outputs:v1";
    /// A worker pool the runner asks for workers.
    pub const ENV_EXTERNAL: &str = "beam:env:external:v1";
    /// A command the runner starts on each host.
    pub const ENV_PROCESS: &str = "beam:env:process:v1";
    /// A side input read whole.
    pub const SIDE_INPUT_ITERABLE: &str = "beam:side_input:iterable:v1";
    /// A side input of pairs read key by key.
    pub const SIDE_INPUT_MULTIMAP: &str = "beam:side_input:multimap:v1";
}

/// Runnel's own URNs in a Beam pipeline.
pub mod runnel_urn {
    /// The DoFn of a Runnel ParDo (payload: [`super::FnPayload`]).
    pub const DO_FN: &str = "runnel:dofn:v1";
    /// The DoFn emitting a Create's elements from an impulse (payload: [`super::FnPayload`]).
    pub const CREATE_FN: &str = "runnel:dofn:create:v1";
    /// The CombineFn of a Runnel Combine (payload: [`super::FnPayload`]).
    pub const COMBINE_FN: &str = "runnel:combine_fn:v1";
    /// How a side input is presented (payload: the view kind, as JSON).
    pub const VIEW_FN: &str = "runnel:view_fn:v1";
    /// Side input windows map as the Runnel harness maps them (payload: empty).
    pub const WINDOW_MAPPING_FN: &str = "runnel:window_mapping_fn:v1";
}

/// The id of the environment every SDK-executed transform runs in.
pub const ENVIRONMENT_ID: &str = "runnel";
/// The coder of an impulse's output.
pub const BYTES_CODER_ID: &str = "runnel/bytes";
/// The coder of the global window.
pub const GLOBAL_WINDOW_CODER_ID: &str = "runnel/global_window";
/// The coder of interval windows.
pub const INTERVAL_WINDOW_CODER_ID: &str = "runnel/interval_window";
/// The windowing strategy of an impulse's output (the global default).
pub const IMPULSE_WINDOWING_ID: &str = "runnel/impulse_windowing";

/// What a Runnel function's `FunctionSpec` payload holds: enough for the harness to find the
/// code in the pipeline it rebuilt, and to refuse a pipeline other than the submitted one.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FnPayload {
    /// The Runnel transform whose code runs.
    pub transform: String,
    /// [`graph_fingerprint`] of the submitted graph.
    pub graph_fingerprint: String,
}

/// Where SDK-executed transforms run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EnvironmentSpec {
    /// `beam:env:external:v1`: the runner asks a worker pool served at `endpoint`
    /// (`HOST:PORT`) to start workers.
    External {
        /// The worker pool's address.
        endpoint: String,
    },
    /// `beam:env:process:v1`: the runner starts `command` on each host.
    Process {
        /// The command line of a worker.
        command: String,
    },
}

/// How to translate.
#[derive(Clone, Debug)]
pub struct TranslateOptions {
    /// Where the user code runs.
    pub environment: EnvironmentSpec,
    /// Whether the target runs bounded pipelines only (Beam Python's job service): unbounded
    /// sources are refused.
    pub batch_only: bool,
}

/// Why a graph cannot be sent to a Beam runner.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum TranslateError {
    /// The graph uses something a Beam runner cannot run faithfully; nothing was submitted.
    #[error("transform '{transform}': {reason}")]
    Unsupported {
        /// The transform (or PCollection) concerned.
        transform: String,
        /// Why.
        reason: String,
    },
    /// The graph is malformed.
    #[error(transparent)]
    Graph(#[from] GraphError),
}

fn unsupported<T>(transform: &str, reason: impl Into<String>) -> Result<T, TranslateError> {
    Err(TranslateError::Unsupported { transform: transform.to_string(), reason: reason.into() })
}

/// A stable fingerprint of a graph (FNV-1a of its deterministic JSON, as hex): equal graphs give
/// equal fingerprints in every process.
pub fn graph_fingerprint(graph: &Graph) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in graph.to_json().bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{h:016x}")
}

/// Translates `graph` into a Beam pipeline, or says why it cannot. A graph with a TestStream
/// needs its job's code: see [`translate_job`].
pub fn translate(graph: &Graph, options: &TranslateOptions) -> Result<pb::Pipeline, TranslateError> {
    translate_with(graph, None, options)
}

/// Translates a job into a Beam pipeline, or says why it cannot: the graph, plus what only its
/// code gives (a TestStream's elements).
pub fn translate_job(job: &Job, options: &TranslateOptions) -> Result<pb::Pipeline, TranslateError> {
    translate_with(&job.graph, Some(&job.bindings), options)
}

fn translate_with(
    graph: &Graph,
    bindings: Option<&Bindings>,
    options: &TranslateOptions,
) -> Result<pb::Pipeline, TranslateError> {
    let mut t = Translator {
        graph,
        bindings,
        fingerprint: graph_fingerprint(graph),
        components: pb::Components::default(),
        options,
    };
    t.check_refusals()?;
    t.environment();
    t.standard_coders();
    for (id, coder) in &graph.coders {
        t.coder(id, coder)?;
    }
    for (id, ws) in &graph.windowing_strategies {
        let beam = t.windowing_strategy(id, ws)?;
        t.components.windowing_strategies.insert(id.clone(), beam);
    }
    for (id, pc) in &graph.pcollections {
        t.components.pcollections.insert(
            id.clone(),
            pb::PCollection {
                unique_name: pc.unique_name.clone(),
                coder_id: pc.coder_id.clone(),
                is_bounded: bounded(pc.is_bounded) as i32,
                windowing_strategy_id: pc.windowing_strategy_id.clone(),
                display_data: vec![],
            },
        );
    }
    for transform in graph.transforms.values() {
        t.transform(transform)?;
    }
    Ok(pb::Pipeline {
        components: Some(t.components),
        root_transform_ids: graph.root_transforms.clone(),
        display_data: vec![],
        requirements: vec![],
    })
}

/// The environment of every SDK transform: how to reach the code, and the coders it knows.
fn environment(spec: &EnvironmentSpec) -> pb::Environment {
    let mut capabilities: Vec<String> = [
        coder_urn::BYTES,
        coder_urn::STRING_UTF8,
        coder_urn::BOOL,
        coder_urn::VARINT,
        coder_urn::DOUBLE,
        coder_urn::KV,
        coder_urn::ITERABLE,
        coder_urn::LENGTH_PREFIX,
        coder_urn::GLOBAL_WINDOW,
        coder_urn::INTERVAL_WINDOW,
        coder_urn::WINDOWED_VALUE,
        urns::SERDE_CODER,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    capabilities.sort();
    let (urn, payload) = match spec {
        EnvironmentSpec::External { endpoint } => (
            beam_urn::ENV_EXTERNAL,
            prost::Message::encode_to_vec(&pb::ExternalPayload {
                endpoint: Some(pb::ApiServiceDescriptor { url: endpoint.clone(), authentication: None }),
                params: BTreeMap::new(),
            }),
        ),
        EnvironmentSpec::Process { command } => (
            beam_urn::ENV_PROCESS,
            prost::Message::encode_to_vec(&pb::ProcessPayload { command: command.clone(), ..Default::default() }),
        ),
    };
    pb::Environment { urn: urn.to_string(), payload, capabilities, ..Default::default() }
}

fn bounded(b: Boundedness) -> pb::is_bounded::Enum {
    match b {
        Boundedness::Bounded => pb::is_bounded::Enum::Bounded,
        Boundedness::Unbounded => pb::is_bounded::Enum::Unbounded,
    }
}

fn spec(urn: &str, payload: Vec<u8>) -> Option<pb::FunctionSpec> {
    Some(pb::FunctionSpec { urn: urn.to_string(), payload })
}

fn ptransform(unique_name: &str, spec: Option<pb::FunctionSpec>, env: &str) -> pb::PTransform {
    pb::PTransform { unique_name: unique_name.to_string(), spec, environment_id: env.to_string(), ..Default::default() }
}

fn one(tag: &str, pcollection: &str) -> BTreeMap<String, String> {
    BTreeMap::from([(tag.to_string(), pcollection.to_string())])
}

/// The single pcollection of a transform's inputs or outputs, naming the transform if not one.
fn only<'a>(t: &'a Transform, map: &'a BTreeMap<String, String>, what: &str) -> Result<&'a str, TranslateError> {
    match map.values().collect::<Vec<_>>().as_slice() {
        [pc] => Ok(pc.as_str()),
        other => unsupported(&t.unique_name, format!("expected one {what}, found {}", other.len())),
    }
}

struct Translator<'a> {
    graph: &'a Graph,
    bindings: Option<&'a Bindings>,
    fingerprint: String,
    components: pb::Components,
    options: &'a TranslateOptions,
}

impl Translator<'_> {
    /// Everything refused is refused here, before any output is built.
    fn check_refusals(&self) -> Result<(), TranslateError> {
        for t in self.graph.transforms.values() {
            match t.urn.as_str() {
                urns::TEST_STREAM if self.options.batch_only => {
                    return unsupported(
                        &t.unique_name,
                        "a TestStream needs a streaming job server, and this one is taken as batch-only (Beam \
                         Python's job service runs bounded pipelines only; pass --streaming for Prism or Flink)",
                    )
                }
                urns::READ_UNBOUNDED if self.options.batch_only => {
                    return unsupported(
                        &t.unique_name,
                        "an unbounded source cannot run on a batch-only job server (Beam Python's job service \
                         runs bounded pipelines only)",
                    )
                }
                urns::READ_UNBOUNDED => {
                    return unsupported(
                        &t.unique_name,
                        "unbounded sources are not translated to Beam yet (no splittable DoFn support)",
                    )
                }
                _ => {}
            }
        }
        for (id, ws) in &self.graph.windowing_strategies {
            if ws.accumulation_mode == AccumulationMode::Retracting {
                let user = self.graph.pcollections.values().find(|p| &p.windowing_strategy_id == id);
                let name = user.map(|p| p.unique_name.as_str()).unwrap_or(id);
                return unsupported(
                    name,
                    "retracting accumulation has no Beam wire form (Beam runners only discard or accumulate)",
                );
            }
        }
        Ok(())
    }

    fn environment(&mut self) {
        self.components.environments.insert(ENVIRONMENT_ID.to_string(), environment(&self.options.environment));
    }

    fn standard_coders(&mut self) {
        for (id, urn) in [
            (BYTES_CODER_ID, coder_urn::BYTES),
            (GLOBAL_WINDOW_CODER_ID, coder_urn::GLOBAL_WINDOW),
            (INTERVAL_WINDOW_CODER_ID, coder_urn::INTERVAL_WINDOW),
        ] {
            self.components
                .coders
                .insert(id.to_string(), pb::Coder { spec: spec(urn, vec![]), component_coder_ids: vec![] });
        }
    }

    fn coder(&mut self, id: &str, coder: &runnel_model::Coder) -> Result<(), TranslateError> {
        let beam = match coder.urn.as_str() {
            urns::KV_CODER | urns::ITERABLE_CODER => {
                pb::Coder { spec: spec(&coder.urn, vec![]), component_coder_ids: coder.components.clone() }
            }
            urns::SERDE_CODER => {
                // The serde coder itself, under a length prefix runners see through as bytes.
                let inner = format!("{id}/serde");
                let rust_type = coder.rust_type.clone().unwrap_or_default().into_bytes();
                self.components.coders.insert(
                    inner.clone(),
                    pb::Coder { spec: spec(urns::SERDE_CODER, rust_type), component_coder_ids: vec![] },
                );
                pb::Coder { spec: spec(coder_urn::LENGTH_PREFIX, vec![]), component_coder_ids: vec![inner] }
            }
            other => return unsupported(id, format!("coder URN '{other}' has no Beam form")),
        };
        self.components.coders.insert(id.to_string(), beam);
        Ok(())
    }

    fn windowing_strategy(
        &mut self,
        id: &str,
        ws: &WindowingStrategy,
    ) -> Result<pb::WindowingStrategy, TranslateError> {
        let (window_fn, merge_status) = match &ws.window_fn {
            // A consumed merging function keeps its windows: already merged, as Beam says.
            WindowFnSpec::Consumed { original, .. } => {
                (window_fn_spec(id, original)?, pb::merge_status::Enum::AlreadyMerged)
            }
            other if other.is_merging() => (window_fn_spec(id, other)?, pb::merge_status::Enum::NeedsMerge),
            other => (window_fn_spec(id, other)?, pb::merge_status::Enum::NonMerging),
        };
        let window_coder = match ws.window_fn {
            WindowFnSpec::Global => GLOBAL_WINDOW_CODER_ID,
            _ => INTERVAL_WINDOW_CODER_ID,
        };
        Ok(pb::WindowingStrategy {
            window_fn: Some(window_fn),
            merge_status: merge_status as i32,
            window_coder_id: window_coder.to_string(),
            trigger: Some(trigger(id, &ws.trigger)?),
            accumulation_mode: match ws.accumulation_mode {
                AccumulationMode::Discarding => pb::accumulation_mode::Enum::Discarding,
                AccumulationMode::Accumulating => pb::accumulation_mode::Enum::Accumulating,
                AccumulationMode::Retracting => {
                    return unsupported(id, "retracting accumulation has no Beam wire form")
                }
            } as i32,
            output_time: match ws.timestamp_combiner {
                TimestampCombiner::EndOfWindow => pb::output_time::Enum::EndOfWindow,
                TimestampCombiner::Earliest => pb::output_time::Enum::EarliestInPane,
                TimestampCombiner::Latest => pb::output_time::Enum::LatestInPane,
            } as i32,
            closing_behavior: match ws.closing_behavior {
                ClosingBehavior::FireAlways => pb::closing_behavior::Enum::EmitAlways,
                ClosingBehavior::FireIfNonEmpty => pb::closing_behavior::Enum::EmitIfNonempty,
            } as i32,
            allowed_lateness: ws.allowed_lateness_ms,
            on_time_behavior: match ws.on_time_behavior {
                OnTimeBehavior::FireAlways => pb::on_time_behavior::Enum::FireAlways,
                OnTimeBehavior::FireIfNonEmpty => pb::on_time_behavior::Enum::FireIfNonempty,
            } as i32,
            assigns_to_one_window: !matches!(ws.window_fn, WindowFnSpec::Sliding { .. }),
            environment_id: ENVIRONMENT_ID.to_string(),
        })
    }

    fn fn_payload(&self, transform: &str) -> Vec<u8> {
        let p = FnPayload { transform: transform.to_string(), graph_fingerprint: self.fingerprint.clone() };
        serde_json::to_vec(&p).expect("a payload is always serialisable")
    }

    fn insert(&mut self, id: &str, t: pb::PTransform) {
        self.components.transforms.insert(id.to_string(), t);
    }

    fn transform(&mut self, t: &Transform) -> Result<(), TranslateError> {
        let name = t.unique_name.as_str();
        let mut beam = match t.urn.as_str() {
            urns::COMPOSITE => {
                // A plain composite: no spec, so a runner descends into its parts.
                let mut p = ptransform(name, None, "");
                p.subtransforms = t.subtransforms.clone();
                p
            }
            urns::CREATE => return self.create(t),
            urns::TEST_STREAM => return self.test_stream(t),
            urns::COMBINE_PER_KEY => return self.combine(t),
            urns::PAR_DO => self.par_do(t)?,
            urns::GROUP_BY_KEY => ptransform(name, spec(beam_urn::GROUP_BY_KEY, vec![]), ""),
            urns::FLATTEN => ptransform(name, spec(beam_urn::FLATTEN, vec![]), ""),
            urns::RESHUFFLE => ptransform(name, spec(beam_urn::RESHUFFLE, vec![]), ENVIRONMENT_ID),
            urns::WINDOW_INTO => {
                let payload: WindowIntoPayload = t.payload_as()?;
                let ws = self.graph.windowing_strategies.get(&payload.windowing_strategy).ok_or_else(|| {
                    TranslateError::Unsupported {
                        transform: name.to_string(),
                        reason: format!("unknown windowing strategy '{}'", payload.windowing_strategy),
                    }
                })?;
                let window_fn = match &ws.window_fn {
                    WindowFnSpec::Consumed { original, .. } => window_fn_spec(name, original)?,
                    other => window_fn_spec(name, other)?,
                };
                let payload = prost::Message::encode_to_vec(&pb::WindowIntoPayload { window_fn: Some(window_fn) });
                ptransform(name, spec(beam_urn::WINDOW_INTO, payload), ENVIRONMENT_ID)
            }
            other => return unsupported(name, format!("URN '{other}' has no Beam form")),
        };
        beam.inputs = t.inputs.clone();
        beam.outputs = t.outputs.clone();
        self.insert(name, beam);
        Ok(())
    }

    fn par_do(&self, t: &Transform) -> Result<pb::PTransform, TranslateError> {
        let payload: ParDoPayload = t.payload_as()?;
        let mut side_inputs = BTreeMap::new();
        for side in &payload.side_inputs {
            // Lookup views read key by key (Beam's multimap access); every other view is read
            // whole and built by the harness.
            let access =
                if side.view.reads_by_key() { beam_urn::SIDE_INPUT_MULTIMAP } else { beam_urn::SIDE_INPUT_ITERABLE };
            let view = serde_json::to_vec(&side.view).expect("a view kind is serialisable");
            side_inputs.insert(
                side.tag.clone(),
                pb::SideInput {
                    access_pattern: spec(access, vec![]),
                    view_fn: spec(runnel_urn::VIEW_FN, view),
                    window_mapping_fn: spec(runnel_urn::WINDOW_MAPPING_FN, vec![]),
                },
            );
        }
        let par_do = pb::ParDoPayload {
            do_fn: spec(runnel_urn::DO_FN, self.fn_payload(&t.unique_name)),
            side_inputs,
            ..Default::default()
        };
        let payload = prost::Message::encode_to_vec(&par_do);
        Ok(ptransform(&t.unique_name, spec(beam_urn::PAR_DO, payload), ENVIRONMENT_ID))
    }

    /// Create → composite of an impulse and a ParDo emitting the elements.
    fn create(&mut self, t: &Transform) -> Result<(), TranslateError> {
        let name = t.unique_name.as_str();
        let _: CreatePayload = t.payload_as()?;
        let out = only(t, &t.outputs, "output")?.to_string();
        let impulse_id = format!("{name}/Impulse");
        let emit_id = format!("{name}/Emit");
        let impulse_out = format!("{impulse_id}.out");
        if !self.components.windowing_strategies.contains_key(IMPULSE_WINDOWING_ID) {
            let ws = self.windowing_strategy(IMPULSE_WINDOWING_ID, &WindowingStrategy::global_default())?;
            self.components.windowing_strategies.insert(IMPULSE_WINDOWING_ID.to_string(), ws);
        }
        self.components.pcollections.insert(
            impulse_out.clone(),
            pb::PCollection {
                unique_name: impulse_out.clone(),
                coder_id: BYTES_CODER_ID.to_string(),
                is_bounded: pb::is_bounded::Enum::Bounded as i32,
                windowing_strategy_id: IMPULSE_WINDOWING_ID.to_string(),
                display_data: vec![],
            },
        );
        let mut impulse = ptransform(&impulse_id, spec(beam_urn::IMPULSE, vec![]), "");
        impulse.outputs = one("out", &impulse_out);
        self.insert(&impulse_id, impulse);

        let par_do =
            pb::ParDoPayload { do_fn: spec(runnel_urn::CREATE_FN, self.fn_payload(name)), ..Default::default() };
        let mut emit =
            ptransform(&emit_id, spec(beam_urn::PAR_DO, prost::Message::encode_to_vec(&par_do)), ENVIRONMENT_ID);
        emit.inputs = one("impulse", &impulse_out);
        emit.outputs = t.outputs.clone();
        self.insert(&emit_id, emit);

        let mut composite = ptransform(name, None, "");
        composite.outputs = one("out", &out);
        composite.subtransforms = vec![impulse_id, emit_id];
        self.insert(name, composite);
        Ok(())
    }

    /// TestStream → `beam:transform:teststream:v1`, a root the runner replays: each element
    /// encoded with the output's Beam coder (its framing of Runnel's value bytes), each watermark
    /// and processing-time advance as Beam's event.
    fn test_stream(&mut self, t: &Transform) -> Result<(), TranslateError> {
        let name = t.unique_name.as_str();
        let payload: TestStreamPayload = t.payload_as()?;
        let out = only(t, &t.outputs, "output")?.to_string();
        let Some(bindings) = self.bindings else {
            return unsupported(
                name,
                "a TestStream's elements are made by the program: translate the job, not its graph",
            );
        };
        let Some(Executable::TestStream { elements, .. }) = bindings.transforms.get(name) else {
            return unsupported(name, "the job has no code for this TestStream");
        };
        let Some(ops) = bindings.elements.get(&out) else {
            return unsupported(name, format!("the job has no element operations for '{out}'"));
        };
        let coder_id = self.graph.pcollections[&out].coder_id.clone();
        let wire = Wire::of(&coder_id, &self.components.coders)
            .map_err(|e| TranslateError::Unsupported { transform: name.to_string(), reason: e.to_string() })?;
        let batches = elements().map_err(|e| TranslateError::Unsupported {
            transform: name.to_string(),
            reason: format!("its elements could not be made: {e}"),
        })?;
        let mut batches = batches.into_iter();
        let mut events = Vec::with_capacity(payload.events.len());
        use pb::test_stream_payload::event::{AddElements, AdvanceProcessingTime, AdvanceWatermark, Event};
        for event in &payload.events {
            let event = match event {
                TestStreamEvent::AddElements { count } => {
                    let Some(batch) = batches.next() else {
                        return unsupported(name, "the program made fewer element batches than the graph lists");
                    };
                    let mut encoded = Vec::with_capacity(*count);
                    let framed = ops.encode_values(&batch, &mut |meta, value, key_len| {
                        let mut bytes = Vec::with_capacity(value.len() + 2);
                        wire.frame_runnel(value, key_len, &mut bytes)?;
                        let timestamp = meta.timestamp.millis();
                        encoded.push(pb::test_stream_payload::TimestampedElement { encoded_element: bytes, timestamp });
                        Ok(())
                    });
                    if let Err(e) = framed {
                        return unsupported(name, format!("an element cannot be encoded for Beam: {e}"));
                    }
                    if encoded.len() != *count {
                        return unsupported(
                            name,
                            format!("the program made {} elements where the graph lists {count}", encoded.len()),
                        );
                    }
                    Event::ElementEvent(AddElements { elements: encoded, tag: String::new() })
                }
                TestStreamEvent::AdvanceWatermark { watermark } => {
                    Event::WatermarkEvent(AdvanceWatermark { new_watermark: watermark.millis(), tag: String::new() })
                }
                TestStreamEvent::AdvanceProcessingTime { advance_ms } => {
                    Event::ProcessingTimeEvent(AdvanceProcessingTime { advance_duration: *advance_ms })
                }
            };
            events.push(pb::test_stream_payload::Event { event: Some(event) });
        }
        let beam_payload = pb::TestStreamPayload { coder_id, events, endpoint: None };
        // A runner transform: no environment.
        let mut beam = ptransform(name, spec(beam_urn::TEST_STREAM, prost::Message::encode_to_vec(&beam_payload)), "");
        beam.outputs = t.outputs.clone();
        self.insert(name, beam);
        Ok(())
    }

    /// Combine per key → composite of GroupByKey and combine_grouped_values, both knowing the
    /// CombinePayload, so a runner may lift it.
    fn combine(&mut self, t: &Transform) -> Result<(), TranslateError> {
        let name = t.unique_name.as_str();
        let payload: CombinePayload = t.payload_as()?;
        let input = only(t, &t.inputs, "input")?.to_string();
        let output = only(t, &t.outputs, "output")?.to_string();
        let in_pc = self.graph.pcollections.get(&input).ok_or_else(|| TranslateError::Unsupported {
            transform: name.to_string(),
            reason: format!("unknown input '{input}'"),
        })?;
        let out_pc = &self.graph.pcollections[&output];
        // The grouped values' coder: KV<key, iterable<value>> from the input's KV coder.
        let kv = self.graph.coders.get(&in_pc.coder_id).filter(|c| c.urn == urns::KV_CODER && c.components.len() == 2);
        let Some(kv) = kv else {
            return unsupported(name, format!("input coder '{}' is not a KV coder", in_pc.coder_id));
        };
        let iterable_id = format!("{name}/GroupByKey/values");
        let grouped_id = format!("{name}/GroupByKey/grouped");
        self.components.coders.insert(
            iterable_id.clone(),
            pb::Coder { spec: spec(coder_urn::ITERABLE, vec![]), component_coder_ids: vec![kv.components[1].clone()] },
        );
        self.components.coders.insert(
            grouped_id.clone(),
            pb::Coder {
                spec: spec(coder_urn::KV, vec![]),
                component_coder_ids: vec![kv.components[0].clone(), iterable_id],
            },
        );
        let gbk_id = format!("{name}/GroupByKey");
        let combine_id = format!("{name}/CombineGroupedValues");
        let grouped_pc = format!("{gbk_id}.out");
        self.components.pcollections.insert(
            grouped_pc.clone(),
            pb::PCollection {
                unique_name: grouped_pc.clone(),
                coder_id: grouped_id,
                is_bounded: bounded(out_pc.is_bounded) as i32,
                windowing_strategy_id: out_pc.windowing_strategy_id.clone(),
                display_data: vec![],
            },
        );
        let combine_payload = prost::Message::encode_to_vec(&pb::CombinePayload {
            combine_fn: spec(runnel_urn::COMBINE_FN, self.fn_payload(name)),
            accumulator_coder_id: payload.accumulator_coder,
        });

        let mut gbk = ptransform(&gbk_id, spec(beam_urn::GROUP_BY_KEY, vec![]), "");
        gbk.inputs = one("in", &input);
        gbk.outputs = one("out", &grouped_pc);
        self.insert(&gbk_id, gbk);

        let mut cgv =
            ptransform(&combine_id, spec(beam_urn::COMBINE_GROUPED_VALUES, combine_payload.clone()), ENVIRONMENT_ID);
        cgv.inputs = one("in", &grouped_pc);
        cgv.outputs = t.outputs.clone();
        self.insert(&combine_id, cgv);

        // A runner lifting the combine stamps each precombined accumulator with the earliest
        // input timestamp (Runnel's precombine does so), which under LATEST would lose the pane's
        // latest timestamp: such a combine is a plain composite, which no runner lifts.
        let latest = self.graph.windowing_of(&input).map(|ws| ws.timestamp_combiner) == Some(TimestampCombiner::Latest);
        let composite_spec = if latest { None } else { spec(beam_urn::COMBINE_PER_KEY, combine_payload) };
        let mut composite = ptransform(name, composite_spec, ENVIRONMENT_ID);
        composite.inputs = t.inputs.clone();
        composite.outputs = t.outputs.clone();
        composite.subtransforms = vec![gbk_id, combine_id];
        self.insert(name, composite);
        Ok(())
    }
}

fn duration(ms: i64) -> prost_types::Duration {
    prost_types::Duration { seconds: ms / 1000, nanos: ((ms % 1000) * 1_000_000) as i32 }
}

fn timestamp(ms: i64) -> prost_types::Timestamp {
    prost_types::Timestamp { seconds: ms.div_euclid(1000), nanos: (ms.rem_euclid(1000) * 1_000_000) as i32 }
}

/// The Beam form of a window function.
fn window_fn_spec(owner: &str, w: &WindowFnSpec) -> Result<pb::FunctionSpec, TranslateError> {
    let payload = match w {
        WindowFnSpec::Global => vec![],
        WindowFnSpec::Fixed { size_ms, offset_ms } => prost::Message::encode_to_vec(&pb::FixedWindowsPayload {
            size: Some(duration(*size_ms)),
            offset: Some(timestamp(*offset_ms)),
        }),
        WindowFnSpec::Sliding { size_ms, period_ms, offset_ms } => {
            prost::Message::encode_to_vec(&pb::SlidingWindowsPayload {
                size: Some(duration(*size_ms)),
                offset: Some(timestamp(*offset_ms)),
                period: Some(duration(*period_ms)),
            })
        }
        WindowFnSpec::Sessions { gap_ms } => {
            prost::Message::encode_to_vec(&pb::SessionWindowsPayload { gap_size: Some(duration(*gap_ms)) })
        }
        WindowFnSpec::Custom { name, .. } => {
            return unsupported(
                owner,
                format!("the user window function '{name}' cannot be evaluated by a Beam runner (only global, fixed, sliding and session windows can)"),
            )
        }
        WindowFnSpec::Consumed { original, .. } => return window_fn_spec(owner, original),
    };
    Ok(pb::FunctionSpec { urn: w.urn().to_string(), payload })
}

/// The Beam form of a trigger.
fn trigger(owner: &str, t: &Trigger) -> Result<pb::Trigger, TranslateError> {
    use pb::trigger::Trigger as T;
    let all = |ts: &[Trigger]| ts.iter().map(|t| trigger(owner, t)).collect::<Result<Vec<_>, _>>();
    let boxed = |t: &Trigger| trigger(owner, t).map(Box::new);
    let kind = match t {
        Trigger::Default => T::Default(pb::trigger::Default {}),
        Trigger::AfterWatermark { early, late } => T::AfterEndOfWindow(Box::new(pb::trigger::AfterEndOfWindow {
            early_firings: early.as_deref().map(boxed).transpose()?,
            late_firings: late.as_deref().map(boxed).transpose()?,
        })),
        Trigger::AfterProcessingTime { transforms } => T::AfterProcessingTime(pb::trigger::AfterProcessingTime {
            timestamp_transforms: transforms
                .iter()
                .map(|tt| pb::TimestampTransform {
                    timestamp_transform: Some(match tt {
                        TimeTransform::Delay { delay_ms } => {
                            pb::timestamp_transform::TimestampTransform::Delay(pb::timestamp_transform::Delay {
                                delay_millis: *delay_ms,
                            })
                        }
                        TimeTransform::AlignTo { period_ms, offset_ms } => {
                            pb::timestamp_transform::TimestampTransform::AlignTo(pb::timestamp_transform::AlignTo {
                                period: *period_ms,
                                offset: *offset_ms,
                            })
                        }
                    }),
                })
                .collect(),
        }),
        Trigger::AfterCount { count } => match i32::try_from(*count) {
            Ok(element_count) => T::ElementCount(pb::trigger::ElementCount { element_count }),
            Err(_) => return unsupported(owner, format!("an element count of {count} does not fit Beam's int32")),
        },
        Trigger::Repeatedly { trigger: inner } => {
            T::Repeat(Box::new(pb::trigger::Repeat { subtrigger: Some(boxed(inner)?) }))
        }
        Trigger::AfterEach { triggers } => T::AfterEach(pb::trigger::AfterEach { subtriggers: all(triggers)? }),
        Trigger::AfterAny { triggers } => T::AfterAny(pb::trigger::AfterAny { subtriggers: all(triggers)? }),
        Trigger::AfterAll { triggers } => T::AfterAll(pb::trigger::AfterAll { subtriggers: all(triggers)? }),
        Trigger::OrFinally { main, finally } => {
            T::OrFinally(Box::new(pb::trigger::OrFinally { main: Some(boxed(main)?), finally: Some(boxed(finally)?) }))
        }
        Trigger::Never => T::Never(pb::trigger::Never {}),
        Trigger::Always => T::Always(pb::trigger::Always {}),
    };
    Ok(pb::Trigger { trigger: Some(kind) })
}
