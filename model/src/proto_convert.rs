//! Conversions between the graph and its protobuf form ([`crate::proto`]).

use crate::error::GraphError;
use crate::graph::{Boundedness, Coder, Environment, Graph, PCollectionNode, Transform};
use crate::proto as pb;
use crate::windowing::{
    AccumulationMode, ClosingBehavior, OnTimeBehavior, TimeTransform, TimestampCombiner, Trigger, WindowFnSpec,
    WindowingStrategy,
};
use prost::Message;
use serde_json::Value;
use std::fmt::Display;

impl Graph {
    /// The protobuf form of the graph.
    pub fn to_proto(&self) -> pb::Graph {
        pb::Graph {
            components: Some(pb::Components {
                transforms: self.transforms.iter().map(|(id, t)| (id.clone(), transform_to_proto(t))).collect(),
                pcollections: self.pcollections.iter().map(|(id, pc)| (id.clone(), pcollection_to_proto(pc))).collect(),
                windowing_strategies: self
                    .windowing_strategies
                    .iter()
                    .map(|(id, ws)| (id.clone(), ws.to_proto()))
                    .collect(),
                coders: self.coders.iter().map(|(id, c)| (id.clone(), coder_to_proto(c))).collect(),
            }),
            root_transform_ids: self.root_transforms.clone(),
            environment: Some(pb::Environment {
                sdk: self.environment.sdk.clone(),
                binary_fingerprint: self.environment.binary_fingerprint.clone(),
            }),
        }
    }

    /// Reads the protobuf form of a graph, naming the offending field when it is incomplete
    /// (a missing message, an unset oneof, an unspecified enum, a payload that is not JSON).
    ///
    /// The graph is not [validated](Graph::validate).
    pub fn from_proto(graph: pb::Graph) -> Result<Graph, GraphError> {
        let components = graph.components.ok_or_else(|| err("components", "missing"))?;
        let environment = graph.environment.ok_or_else(|| err("environment", "missing"))?;
        let transforms = components
            .transforms
            .into_iter()
            .map(|(id, t)| {
                let path = format!("components.transforms[{id:?}]");
                transform_from_proto(t, &path).map(|t| (id, t))
            })
            .collect::<Result<_, _>>()?;
        let pcollections = components
            .pcollections
            .into_iter()
            .map(|(id, pc)| {
                let path = format!("components.pcollections[{id:?}]");
                pcollection_from_proto(pc, &path).map(|pc| (id, pc))
            })
            .collect::<Result<_, _>>()?;
        let windowing_strategies = components
            .windowing_strategies
            .into_iter()
            .map(|(id, ws)| {
                let path = format!("components.windowing_strategies[{id:?}]");
                windowing_from_proto(ws, &path).map(|ws| (id, ws))
            })
            .collect::<Result<_, _>>()?;
        let coders = components
            .coders
            .into_iter()
            .map(|(id, c)| {
                let coder = Coder { urn: c.urn, components: c.component_coder_ids, rust_type: c.rust_type };
                (id, coder)
            })
            .collect();
        Ok(Graph {
            transforms,
            pcollections,
            coders,
            windowing_strategies,
            root_transforms: graph.root_transform_ids,
            environment: Environment { sdk: environment.sdk, binary_fingerprint: environment.binary_fingerprint },
        })
    }

    /// The protobuf encoding of the graph. Deterministic: maps are encoded in key order and
    /// payloads as canonical JSON.
    pub fn to_proto_bytes(&self) -> Vec<u8> {
        self.to_proto().encode_to_vec()
    }

    /// Decodes the protobuf encoding of a graph (see [`Graph::from_proto`]).
    pub fn from_proto_bytes(bytes: &[u8]) -> Result<Graph, GraphError> {
        let graph = pb::Graph::decode(bytes).map_err(|e| GraphError::Proto(format!("cannot decode: {e}")))?;
        Graph::from_proto(graph)
    }
}

impl WindowingStrategy {
    /// The protobuf form of the windowing strategy.
    pub fn to_proto(&self) -> pb::WindowingStrategy {
        pb::WindowingStrategy {
            window_fn: Some(self.window_fn.to_proto()),
            trigger: Some(self.trigger.to_proto()),
            accumulation_mode: match self.accumulation_mode {
                AccumulationMode::Discarding => pb::AccumulationMode::Discarding,
                AccumulationMode::Accumulating => pb::AccumulationMode::Accumulating,
                AccumulationMode::Retracting => pb::AccumulationMode::Retracting,
            } as i32,
            timestamp_combiner: match self.timestamp_combiner {
                TimestampCombiner::EndOfWindow => pb::TimestampCombiner::EndOfWindow,
                TimestampCombiner::Earliest => pb::TimestampCombiner::Earliest,
                TimestampCombiner::Latest => pb::TimestampCombiner::Latest,
            } as i32,
            closing_behavior: match self.closing_behavior {
                ClosingBehavior::FireAlways => pb::ClosingBehavior::FireAlways,
                ClosingBehavior::FireIfNonEmpty => pb::ClosingBehavior::FireIfNonEmpty,
            } as i32,
            allowed_lateness_ms: self.allowed_lateness_ms,
            on_time_behavior: match self.on_time_behavior {
                OnTimeBehavior::FireAlways => pb::OnTimeBehavior::FireAlways,
                OnTimeBehavior::FireIfNonEmpty => pb::OnTimeBehavior::FireIfNonEmpty,
            } as i32,
        }
    }

    /// Reads the protobuf form of a windowing strategy; errors name the field, rooted at
    /// `windowing_strategy`.
    pub fn from_proto(proto: pb::WindowingStrategy) -> Result<WindowingStrategy, GraphError> {
        windowing_from_proto(proto, "windowing_strategy")
    }
}

impl WindowFnSpec {
    /// The protobuf form of the window function.
    pub fn to_proto(&self) -> pb::WindowFnSpec {
        use pb::window_fn_spec as w;
        let kind = match self {
            WindowFnSpec::Global => w::Kind::Global(w::Global {}),
            WindowFnSpec::Fixed { size_ms, offset_ms } => {
                w::Kind::Fixed(w::Fixed { size_ms: *size_ms, offset_ms: *offset_ms })
            }
            WindowFnSpec::Sliding { size_ms, period_ms, offset_ms } => {
                w::Kind::Sliding(w::Sliding { size_ms: *size_ms, period_ms: *period_ms, offset_ms: *offset_ms })
            }
            WindowFnSpec::Sessions { gap_ms } => w::Kind::Sessions(w::Sessions { gap_ms: *gap_ms }),
            WindowFnSpec::Custom { name, merging, payload } => {
                w::Kind::Custom(w::Custom { name: name.clone(), merging: *merging, payload: json_to_bytes(payload) })
            }
            WindowFnSpec::Consumed { cause, original } => w::Kind::Consumed(Box::new(w::Consumed {
                cause: cause.clone(),
                original: Some(Box::new(original.to_proto())),
            })),
        };
        pb::WindowFnSpec { kind: Some(kind) }
    }

    /// Reads the protobuf form of a window function; errors name the field, rooted at
    /// `window_fn`.
    pub fn from_proto(proto: pb::WindowFnSpec) -> Result<WindowFnSpec, GraphError> {
        window_fn_from_proto(proto, "window_fn")
    }
}

impl Trigger {
    /// The protobuf form of the trigger.
    pub fn to_proto(&self) -> pb::Trigger {
        use pb::trigger as t;
        let boxed = |t: &Trigger| Box::new(t.to_proto());
        let all = |ts: &[Trigger]| ts.iter().map(Trigger::to_proto).collect::<Vec<_>>();
        let kind = match self {
            Trigger::Default => t::Kind::Default(t::Default {}),
            Trigger::AfterWatermark { early, late } => t::Kind::AfterWatermark(Box::new(t::AfterWatermark {
                early: early.as_deref().map(boxed),
                late: late.as_deref().map(boxed),
            })),
            Trigger::AfterProcessingTime { transforms } => t::Kind::AfterProcessingTime(t::AfterProcessingTime {
                transforms: transforms.iter().map(time_transform_to_proto).collect(),
            }),
            Trigger::AfterCount { count } => t::Kind::AfterCount(t::AfterCount { count: *count }),
            Trigger::Repeatedly { trigger } => {
                t::Kind::Repeatedly(Box::new(t::Repeatedly { trigger: Some(boxed(trigger)) }))
            }
            Trigger::AfterEach { triggers } => t::Kind::AfterEach(t::AfterEach { triggers: all(triggers) }),
            Trigger::AfterAny { triggers } => t::Kind::AfterAny(t::AfterAny { triggers: all(triggers) }),
            Trigger::AfterAll { triggers } => t::Kind::AfterAll(t::AfterAll { triggers: all(triggers) }),
            Trigger::OrFinally { main, finally } => {
                t::Kind::OrFinally(Box::new(t::OrFinally { main: Some(boxed(main)), finally: Some(boxed(finally)) }))
            }
            Trigger::Never => t::Kind::Never(t::Never {}),
            Trigger::Always => t::Kind::Always(t::Always {}),
        };
        pb::Trigger { kind: Some(kind) }
    }

    /// Reads the protobuf form of a trigger; errors name the field, rooted at `trigger`.
    pub fn from_proto(proto: pb::Trigger) -> Result<Trigger, GraphError> {
        trigger_from_proto(proto, "trigger")
    }
}

fn err(field: &str, message: impl Display) -> GraphError {
    GraphError::Proto(format!("{field}: {message}"))
}

/// Canonical JSON bytes of a payload; `null` is the empty byte string.
fn json_to_bytes(value: &Value) -> Vec<u8> {
    if value.is_null() {
        Vec::new()
    } else {
        serde_json::to_vec(value).expect("a JSON value always serialises")
    }
}

fn json_from_bytes(bytes: &[u8], field: &str) -> Result<Value, GraphError> {
    if bytes.is_empty() {
        return Ok(Value::Null);
    }
    serde_json::from_slice(bytes).map_err(|e| err(field, format_args!("not valid JSON: {e}")))
}

fn transform_to_proto(t: &Transform) -> pb::Transform {
    pb::Transform {
        urn: t.urn.clone(),
        subtransforms: t.subtransforms.clone(),
        inputs: t.inputs.clone(),
        outputs: t.outputs.clone(),
        unique_name: t.unique_name.clone(),
        payload: json_to_bytes(&t.payload),
    }
}

fn transform_from_proto(t: pb::Transform, path: &str) -> Result<Transform, GraphError> {
    Ok(Transform {
        payload: json_from_bytes(&t.payload, &format!("{path}.payload"))?,
        unique_name: t.unique_name,
        urn: t.urn,
        inputs: t.inputs,
        outputs: t.outputs,
        subtransforms: t.subtransforms,
    })
}

fn pcollection_to_proto(pc: &PCollectionNode) -> pb::PCollection {
    pb::PCollection {
        unique_name: pc.unique_name.clone(),
        coder_id: pc.coder_id.clone(),
        is_bounded: match pc.is_bounded {
            Boundedness::Bounded => pb::Boundedness::Bounded,
            Boundedness::Unbounded => pb::Boundedness::Unbounded,
        } as i32,
        windowing_strategy_id: pc.windowing_strategy_id.clone(),
    }
}

fn pcollection_from_proto(pc: pb::PCollection, path: &str) -> Result<PCollectionNode, GraphError> {
    let field = format!("{path}.is_bounded");
    let is_bounded = match pb::Boundedness::try_from(pc.is_bounded) {
        Ok(pb::Boundedness::Bounded) => Boundedness::Bounded,
        Ok(pb::Boundedness::Unbounded) => Boundedness::Unbounded,
        Ok(pb::Boundedness::Unspecified) => return Err(err(&field, "unspecified")),
        Err(_) => return Err(unknown_enum(&field, pc.is_bounded)),
    };
    Ok(PCollectionNode {
        unique_name: pc.unique_name,
        coder_id: pc.coder_id,
        windowing_strategy_id: pc.windowing_strategy_id,
        is_bounded,
    })
}

fn coder_to_proto(c: &Coder) -> pb::Coder {
    pb::Coder { urn: c.urn.clone(), component_coder_ids: c.components.clone(), rust_type: c.rust_type.clone() }
}

fn unknown_enum(field: &str, value: i32) -> GraphError {
    err(field, format_args!("unknown enum value {value}"))
}

fn windowing_from_proto(ws: pb::WindowingStrategy, path: &str) -> Result<WindowingStrategy, GraphError> {
    let field = |name: &str| format!("{path}.{name}");
    let window_fn = ws.window_fn.ok_or_else(|| err(&field("window_fn"), "missing"))?;
    let trigger = ws.trigger.ok_or_else(|| err(&field("trigger"), "missing"))?;

    let f = field("accumulation_mode");
    let accumulation_mode = match pb::AccumulationMode::try_from(ws.accumulation_mode) {
        Ok(pb::AccumulationMode::Discarding) => AccumulationMode::Discarding,
        Ok(pb::AccumulationMode::Accumulating) => AccumulationMode::Accumulating,
        Ok(pb::AccumulationMode::Retracting) => AccumulationMode::Retracting,
        Ok(pb::AccumulationMode::Unspecified) => return Err(err(&f, "unspecified")),
        Err(_) => return Err(unknown_enum(&f, ws.accumulation_mode)),
    };
    let f = field("timestamp_combiner");
    let timestamp_combiner = match pb::TimestampCombiner::try_from(ws.timestamp_combiner) {
        Ok(pb::TimestampCombiner::EndOfWindow) => TimestampCombiner::EndOfWindow,
        Ok(pb::TimestampCombiner::Earliest) => TimestampCombiner::Earliest,
        Ok(pb::TimestampCombiner::Latest) => TimestampCombiner::Latest,
        Ok(pb::TimestampCombiner::Unspecified) => return Err(err(&f, "unspecified")),
        Err(_) => return Err(unknown_enum(&f, ws.timestamp_combiner)),
    };
    let f = field("closing_behavior");
    let closing_behavior = match pb::ClosingBehavior::try_from(ws.closing_behavior) {
        Ok(pb::ClosingBehavior::FireAlways) => ClosingBehavior::FireAlways,
        Ok(pb::ClosingBehavior::FireIfNonEmpty) => ClosingBehavior::FireIfNonEmpty,
        Ok(pb::ClosingBehavior::Unspecified) => return Err(err(&f, "unspecified")),
        Err(_) => return Err(unknown_enum(&f, ws.closing_behavior)),
    };
    let f = field("on_time_behavior");
    let on_time_behavior = match pb::OnTimeBehavior::try_from(ws.on_time_behavior) {
        Ok(pb::OnTimeBehavior::FireAlways) => OnTimeBehavior::FireAlways,
        Ok(pb::OnTimeBehavior::FireIfNonEmpty) => OnTimeBehavior::FireIfNonEmpty,
        Ok(pb::OnTimeBehavior::Unspecified) => return Err(err(&f, "unspecified")),
        Err(_) => return Err(unknown_enum(&f, ws.on_time_behavior)),
    };
    Ok(WindowingStrategy {
        window_fn: window_fn_from_proto(window_fn, &field("window_fn"))?,
        trigger: trigger_from_proto(trigger, &field("trigger"))?,
        accumulation_mode,
        allowed_lateness_ms: ws.allowed_lateness_ms,
        timestamp_combiner,
        closing_behavior,
        on_time_behavior,
    })
}

fn window_fn_from_proto(w: pb::WindowFnSpec, path: &str) -> Result<WindowFnSpec, GraphError> {
    use pb::window_fn_spec::Kind;
    Ok(match w.kind.ok_or_else(|| err(path, "no window function kind set"))? {
        Kind::Global(_) => WindowFnSpec::Global,
        Kind::Fixed(f) => WindowFnSpec::Fixed { size_ms: f.size_ms, offset_ms: f.offset_ms },
        Kind::Sliding(s) => {
            WindowFnSpec::Sliding { size_ms: s.size_ms, period_ms: s.period_ms, offset_ms: s.offset_ms }
        }
        Kind::Sessions(s) => WindowFnSpec::Sessions { gap_ms: s.gap_ms },
        Kind::Custom(c) => WindowFnSpec::Custom {
            payload: json_from_bytes(&c.payload, &format!("{path}.custom.payload"))?,
            name: c.name,
            merging: c.merging,
        },
        Kind::Consumed(c) => WindowFnSpec::Consumed {
            original: Box::new(window_fn_from_proto(
                *c.original.ok_or_else(|| err(&format!("{path}.consumed.original"), "missing"))?,
                &format!("{path}.consumed.original"),
            )?),
            cause: c.cause,
        },
    })
}

fn time_transform_to_proto(t: &TimeTransform) -> pb::TimeTransform {
    use pb::time_transform as tt;
    let kind = match t {
        TimeTransform::Delay { delay_ms } => tt::Kind::Delay(tt::Delay { delay_ms: *delay_ms }),
        TimeTransform::AlignTo { period_ms, offset_ms } => {
            tt::Kind::AlignTo(tt::AlignTo { period_ms: *period_ms, offset_ms: *offset_ms })
        }
    };
    pb::TimeTransform { kind: Some(kind) }
}

fn time_transform_from_proto(t: pb::TimeTransform, path: &str) -> Result<TimeTransform, GraphError> {
    use pb::time_transform::Kind;
    Ok(match t.kind.ok_or_else(|| err(path, "no time transform kind set"))? {
        Kind::Delay(d) => TimeTransform::Delay { delay_ms: d.delay_ms },
        Kind::AlignTo(a) => TimeTransform::AlignTo { period_ms: a.period_ms, offset_ms: a.offset_ms },
    })
}

fn trigger_from_proto(t: pb::Trigger, path: &str) -> Result<Trigger, GraphError> {
    use pb::trigger::Kind;
    let required = |sub: Option<Box<pb::Trigger>>, field: String| -> Result<Box<Trigger>, GraphError> {
        let sub = sub.ok_or_else(|| err(&field, "missing"))?;
        trigger_from_proto(*sub, &field).map(Box::new)
    };
    let optional = |sub: Option<Box<pb::Trigger>>, field: String| -> Result<Option<Box<Trigger>>, GraphError> {
        sub.map(|sub| trigger_from_proto(*sub, &field).map(Box::new)).transpose()
    };
    let all = |ts: Vec<pb::Trigger>, field: String| -> Result<Vec<Trigger>, GraphError> {
        ts.into_iter().enumerate().map(|(i, t)| trigger_from_proto(t, &format!("{field}[{i}]"))).collect()
    };
    Ok(match t.kind.ok_or_else(|| err(path, "no trigger kind set"))? {
        Kind::Default(_) => Trigger::Default,
        Kind::AfterWatermark(w) => Trigger::AfterWatermark {
            early: optional(w.early, format!("{path}.after_watermark.early"))?,
            late: optional(w.late, format!("{path}.after_watermark.late"))?,
        },
        Kind::AfterProcessingTime(p) => Trigger::AfterProcessingTime {
            transforms: p
                .transforms
                .into_iter()
                .enumerate()
                .map(|(i, t)| time_transform_from_proto(t, &format!("{path}.after_processing_time.transforms[{i}]")))
                .collect::<Result<_, _>>()?,
        },
        Kind::AfterCount(c) => Trigger::AfterCount { count: c.count },
        Kind::Repeatedly(r) => {
            Trigger::Repeatedly { trigger: required(r.trigger, format!("{path}.repeatedly.trigger"))? }
        }
        Kind::AfterEach(e) => Trigger::AfterEach { triggers: all(e.triggers, format!("{path}.after_each.triggers"))? },
        Kind::AfterAny(a) => Trigger::AfterAny { triggers: all(a.triggers, format!("{path}.after_any.triggers"))? },
        Kind::AfterAll(a) => Trigger::AfterAll { triggers: all(a.triggers, format!("{path}.after_all.triggers"))? },
        Kind::OrFinally(o) => Trigger::OrFinally {
            main: required(o.main, format!("{path}.or_finally.main"))?,
            finally: required(o.finally, format!("{path}.or_finally.finally"))?,
        },
        Kind::Never(_) => Trigger::Never,
        Kind::Always(_) => Trigger::Always,
    })
}
