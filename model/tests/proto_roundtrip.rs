//! The protobuf form of a graph: lossless, deterministic, and strict about what it reads.

mod common;

use common::*;
use prost::Message;
use runnel_model::proto;
use runnel_model::{Boundedness, Graph, GraphError, PCollectionNode, Trigger, WindowFnSpec, WindowingStrategy};
use serde_json::json;

fn proto_round_trip(g: &Graph) -> Graph {
    let via_message = Graph::from_proto(g.to_proto()).unwrap();
    let via_bytes = Graph::from_proto_bytes(&g.to_proto_bytes()).unwrap();
    assert_eq!(via_message, via_bytes);
    via_message
}

fn proto_error(result: Result<impl std::fmt::Debug, GraphError>) -> String {
    match result {
        Err(GraphError::Proto(message)) => message,
        other => panic!("expected a protobuf error, got {other:?}"),
    }
}

fn graph_with_strategies(strategies: impl IntoIterator<Item = WindowingStrategy>) -> Graph {
    let mut g = Graph::default();
    for (i, s) in strategies.into_iter().enumerate() {
        g.windowing_strategies.insert(format!("ws{i:03}"), s);
    }
    g
}

#[test]
fn sample_graph_round_trips() {
    let g = sample_graph();
    assert_eq!(proto_round_trip(&g), g);
}

#[test]
fn empty_graph_round_trips() {
    let g = Graph::default();
    assert_eq!(proto_round_trip(&g), g);
}

#[test]
fn proto_bytes_are_deterministic() {
    let g = sample_graph();
    let bytes = g.to_proto_bytes();
    assert_eq!(bytes, g.to_proto_bytes());
    assert_eq!(bytes, sample_graph().to_proto_bytes());
    let back = Graph::from_proto_bytes(&bytes).unwrap();
    assert_eq!(back.to_proto_bytes(), bytes);
    // JSON -> protobuf -> JSON is lossless too.
    assert_eq!(back.to_json(), g.to_json());
}

#[test]
fn proto_message_mirrors_the_graph() {
    let g = sample_graph();
    let p = g.to_proto();
    let components = p.components.as_ref().unwrap();
    assert_eq!(p.root_transform_ids, g.root_transforms);
    assert_eq!(p.environment.as_ref().unwrap().sdk, "runnel 0.1.0");
    assert_eq!(p.environment.as_ref().unwrap().binary_fingerprint.as_deref(), Some("sha256:0123abcd"));

    let count = &components.transforms["Count"];
    assert_eq!(count.unique_name, "Count");
    assert_eq!(count.subtransforms, ["Count/GroupByKey", "Count/Sum"]);
    assert_eq!(count.outputs["sums"], "Count/Sum.out");

    let enrich = &components.pcollections["Enrich.out"];
    assert_eq!(enrich.is_bounded, proto::Boundedness::Unbounded as i32);
    assert_eq!(enrich.coder_id, "kv_str_i64");
    assert_eq!(enrich.windowing_strategy_id, "custom");
    assert_eq!(components.pcollections["Create.out"].is_bounded(), proto::Boundedness::Bounded);

    let kv = &components.coders["kv_str_i64"];
    assert_eq!(kv.urn, runnel_model::urns::KV_CODER);
    assert_eq!(kv.component_coder_ids, ["str", "i64"]);
    assert_eq!(kv.rust_type, None);
    assert_eq!(components.coders["str"].rust_type.as_deref(), Some("alloc::string::String"));

    let fixed = &components.windowing_strategies["fixed"];
    assert_eq!(fixed.accumulation_mode(), proto::AccumulationMode::Accumulating);
    assert_eq!(fixed.timestamp_combiner(), proto::TimestampCombiner::Earliest);
    assert_eq!(fixed.closing_behavior(), proto::ClosingBehavior::FireAlways);
    assert_eq!(fixed.on_time_behavior(), proto::OnTimeBehavior::FireIfNonEmpty);
    assert_eq!(fixed.allowed_lateness_ms, 3_600_000);
    assert!(matches!(
        fixed.window_fn.as_ref().unwrap().kind,
        Some(proto::window_fn_spec::Kind::Fixed(proto::window_fn_spec::Fixed { size_ms: 60_000, offset_ms: 5_000 }))
    ));
    match &fixed.trigger.as_ref().unwrap().kind {
        Some(proto::trigger::Kind::AfterWatermark(w)) => {
            assert!(matches!(w.early.as_ref().unwrap().kind, Some(proto::trigger::Kind::Repeatedly(_))));
            assert!(matches!(
                w.late.as_ref().unwrap().kind,
                Some(proto::trigger::Kind::AfterCount(proto::trigger::AfterCount { count: 1 }))
            ));
        }
        other => panic!("expected AfterWatermark, got {other:?}"),
    }
}

#[test]
fn payloads_travel_as_canonical_json_bytes() {
    let g = sample_graph();
    let p = g.to_proto();
    let transforms = &p.components.as_ref().unwrap().transforms;
    for (id, t) in &g.transforms {
        let bytes = &transforms[id].payload;
        if t.payload.is_null() {
            assert!(bytes.is_empty(), "{id}: null payload travels as no bytes");
        } else {
            assert_eq!(bytes, &serde_json::to_vec(&t.payload).unwrap(), "{id}");
        }
    }
    // Object keys are sorted in the canonical form.
    let create = String::from_utf8(transforms["Create"].payload.clone()).unwrap();
    assert_eq!(create, r#"{"element_count":3,"timestamped":true}"#);

    let custom = &p.components.as_ref().unwrap().windowing_strategies["custom"];
    match &custom.window_fn.as_ref().unwrap().kind {
        Some(proto::window_fn_spec::Kind::Custom(c)) => {
            assert_eq!(c.name, "my_crate::CalendarSessions");
            assert!(c.merging);
            let payload: serde_json::Value = serde_json::from_slice(&c.payload).unwrap();
            assert_eq!(payload["zone"], "Europe/Paris");
            assert!(String::from_utf8(c.payload.clone()).unwrap().starts_with(r#"{"extra":null,"gap_ms":"#));
        }
        other => panic!("expected a custom window fn, got {other:?}"),
    }
}

#[test]
fn every_trigger_variant_round_trips() {
    for t in all_triggers() {
        assert_eq!(Trigger::from_proto(t.to_proto()).unwrap(), t);
        let bytes = t.to_proto().encode_to_vec();
        assert_eq!(Trigger::from_proto(proto::Trigger::decode(bytes.as_slice()).unwrap()).unwrap(), t);
    }
    let g = graph_with_strategies(
        all_triggers().into_iter().map(|trigger| WindowingStrategy { trigger, ..WindowingStrategy::default() }),
    );
    assert_eq!(proto_round_trip(&g), g);
}

#[test]
fn deeply_nested_trigger_round_trips() {
    let mut t = Trigger::AfterCount { count: 1 };
    for i in 0..30 {
        t = match i % 4 {
            0 => Trigger::Repeatedly { trigger: Box::new(t) },
            1 => Trigger::AfterWatermark { early: Some(Box::new(t)), late: Some(Box::new(Trigger::Never)) },
            2 => Trigger::OrFinally { main: Box::new(Trigger::Always), finally: Box::new(t) },
            _ => Trigger::AfterAll { triggers: vec![Trigger::Default, t] },
        };
    }
    let g = graph_with_strategies([WindowingStrategy { trigger: t, ..WindowingStrategy::default() }]);
    assert_eq!(proto_round_trip(&g), g);
}

#[test]
fn every_window_fn_variant_round_trips() {
    for w in all_window_fns() {
        assert_eq!(WindowFnSpec::from_proto(w.to_proto()).unwrap(), w);
    }
    let g = graph_with_strategies(all_window_fns().into_iter().map(WindowingStrategy::with_window_fn));
    assert_eq!(proto_round_trip(&g), g);
}

#[test]
fn every_enum_value_round_trips() {
    let strategies = all_enum_strategies();
    assert_eq!(strategies.len(), 3 * 3 * 2 * 2);
    for s in &strategies {
        assert_eq!(&WindowingStrategy::from_proto(s.to_proto()).unwrap(), s);
    }
    let mut g = graph_with_strategies(strategies);
    g.coders.insert("str".into(), serde_coder("String"));
    for bounded in [Boundedness::Bounded, Boundedness::Unbounded] {
        let id = format!("{bounded:?}");
        g.pcollections.insert(id.clone(), PCollectionNode { is_bounded: bounded, ..pcollection(&id, "str", "ws000") });
    }
    assert_eq!(proto_round_trip(&g), g);
}

#[test]
fn garbage_bytes_are_a_proto_error() {
    let message = proto_error(Graph::from_proto_bytes(&[0xff, 0xff, 0xff]));
    assert!(message.contains("cannot decode"), "{message}");
}

#[test]
fn missing_components_or_environment_are_named() {
    let message = proto_error(Graph::from_proto_bytes(&[]));
    assert!(message.starts_with("components"), "{message}");
    let mut p = Graph::default().to_proto();
    p.environment = None;
    let message = proto_error(Graph::from_proto(p));
    assert!(message.starts_with("environment"), "{message}");
}

#[test]
fn unset_oneofs_are_named() {
    let mut p = sample_graph().to_proto();
    let ws = p.components.as_mut().unwrap().windowing_strategies.get_mut("fixed").unwrap();
    match &mut ws.trigger.as_mut().unwrap().kind {
        Some(proto::trigger::Kind::AfterWatermark(w)) => w.late.as_mut().unwrap().kind = None,
        other => panic!("{other:?}"),
    }
    let err = Graph::from_proto(p).unwrap_err();
    assert_eq!(
        err.to_string(),
        "graph protobuf is malformed: components.windowing_strategies[\"fixed\"].trigger.after_watermark.late: \
         no trigger kind set"
    );

    let mut p = sample_graph().to_proto();
    let ws = p.components.as_mut().unwrap().windowing_strategies.get_mut("custom").unwrap();
    ws.window_fn.as_mut().unwrap().kind = None;
    let message = proto_error(Graph::from_proto(p));
    assert!(message.contains("windowing_strategies[\"custom\"].window_fn"), "{message}");

    let t = proto::Trigger {
        kind: Some(proto::trigger::Kind::AfterAny(proto::trigger::AfterAny {
            triggers: vec![Trigger::Never.to_proto(), proto::Trigger { kind: None }],
        })),
    };
    assert_eq!(proto_error(Trigger::from_proto(t)), "trigger.after_any.triggers[1]: no trigger kind set");

    let t = proto::Trigger {
        kind: Some(proto::trigger::Kind::AfterProcessingTime(proto::trigger::AfterProcessingTime {
            transforms: vec![proto::TimeTransform { kind: None }],
        })),
    };
    assert_eq!(
        proto_error(Trigger::from_proto(t)),
        "trigger.after_processing_time.transforms[0]: no time transform kind set"
    );
}

#[test]
fn missing_required_subtriggers_are_named() {
    let t = proto::Trigger {
        kind: Some(proto::trigger::Kind::Repeatedly(Box::new(proto::trigger::Repeatedly { trigger: None }))),
    };
    assert_eq!(proto_error(Trigger::from_proto(t)), "trigger.repeatedly.trigger: missing");

    let t = proto::Trigger {
        kind: Some(proto::trigger::Kind::OrFinally(Box::new(proto::trigger::OrFinally {
            main: Some(Box::new(Trigger::Always.to_proto())),
            finally: None,
        }))),
    };
    assert_eq!(proto_error(Trigger::from_proto(t)), "trigger.or_finally.finally: missing");

    let mut ws = WindowingStrategy::default().to_proto();
    ws.trigger = None;
    assert_eq!(proto_error(WindowingStrategy::from_proto(ws)), "windowing_strategy.trigger: missing");
}

#[test]
fn unspecified_and_unknown_enums_are_named() {
    let mut p = sample_graph().to_proto();
    p.components.as_mut().unwrap().pcollections.get_mut("Parse.out").unwrap().is_bounded = 0;
    let message = proto_error(Graph::from_proto(p));
    assert_eq!(message, "components.pcollections[\"Parse.out\"].is_bounded: unspecified");

    let base = WindowingStrategy::default().to_proto();
    type Setter = fn(&mut proto::WindowingStrategy, i32);
    let fields: [(&str, Setter); 4] = [
        ("accumulation_mode", |w, v| w.accumulation_mode = v),
        ("timestamp_combiner", |w, v| w.timestamp_combiner = v),
        ("closing_behavior", |w, v| w.closing_behavior = v),
        ("on_time_behavior", |w, v| w.on_time_behavior = v),
    ];
    for (field, set) in fields {
        let mut ws = base.clone();
        set(&mut ws, 0);
        assert_eq!(proto_error(WindowingStrategy::from_proto(ws)), format!("windowing_strategy.{field}: unspecified"));
        let mut ws = base.clone();
        set(&mut ws, 42);
        assert_eq!(
            proto_error(WindowingStrategy::from_proto(ws)),
            format!("windowing_strategy.{field}: unknown enum value 42")
        );
    }
}

#[test]
fn payloads_that_are_not_json_are_named() {
    let mut p = sample_graph().to_proto();
    p.components.as_mut().unwrap().transforms.get_mut("Parse").unwrap().payload = b"{not json".to_vec();
    let message = proto_error(Graph::from_proto(p));
    assert!(message.starts_with("components.transforms[\"Parse\"].payload: not valid JSON"), "{message}");

    let w = proto::WindowFnSpec {
        kind: Some(proto::window_fn_spec::Kind::Custom(proto::window_fn_spec::Custom {
            name: "x".into(),
            merging: false,
            payload: vec![0xc3, 0x28],
        })),
    };
    let message = proto_error(WindowFnSpec::from_proto(w));
    assert!(message.starts_with("window_fn.custom.payload: not valid JSON"), "{message}");
}

#[test]
fn custom_payload_null_and_empty_bytes_agree() {
    let w = WindowFnSpec::Custom { name: "x".into(), merging: false, payload: serde_json::Value::Null };
    match w.to_proto().kind {
        Some(proto::window_fn_spec::Kind::Custom(c)) => assert!(c.payload.is_empty()),
        other => panic!("{other:?}"),
    }
    // `null` spelt out is read as null too.
    let spelt = proto::WindowFnSpec {
        kind: Some(proto::window_fn_spec::Kind::Custom(proto::window_fn_spec::Custom {
            name: "x".into(),
            merging: false,
            payload: b"null".to_vec(),
        })),
    };
    assert_eq!(WindowFnSpec::from_proto(spelt).unwrap(), w);
    let other = WindowFnSpec::Custom { name: "x".into(), merging: false, payload: json!(false) };
    assert_eq!(WindowFnSpec::from_proto(other.to_proto()).unwrap(), other);
}
