//! The validator: a valid graph passes, and each kind of error is found and names its culprit.

mod common;

use common::*;
use runnel_model::urns;
use runnel_model::{Graph, GraphError};

fn invalid(g: &Graph) -> (GraphError, String) {
    let err = g.validate().expect_err("the graph should be invalid");
    let message = err.to_string();
    (err, message)
}

#[test]
fn sample_graph_passes() {
    sample_graph().validate().unwrap();
}

#[test]
fn sample_graph_leaf_order_puts_producers_first() {
    let g = sample_graph();
    let order = g.leaf_order().unwrap();
    assert!(!order.contains(&"Count".to_string()), "composites are not leaves: {order:?}");
    let pos = |name: &str| order.iter().position(|n| n == name).unwrap();
    for t in g.transforms.values().filter(|t| t.is_leaf()) {
        for input in t.inputs.values() {
            let producer = g.producer(input).unwrap();
            assert!(pos(&producer.unique_name) < pos(&t.unique_name), "{order:?}");
        }
    }
}

#[test]
fn dangling_pcollection_in_input() {
    let mut g = sample_graph();
    g.transforms.get_mut("Parse").unwrap().inputs.insert("main".into(), "Nowhere".into());
    let (err, message) = invalid(&g);
    assert_eq!(
        err,
        GraphError::DanglingPCollection {
            transform: "Parse".into(),
            role: "input",
            tag: "main".into(),
            pcollection: "Nowhere".into(),
        }
    );
    assert!(message.contains("'Parse'") && message.contains("'Nowhere'"), "{message}");
}

#[test]
fn dangling_pcollection_in_output() {
    let mut g = sample_graph();
    g.transforms.get_mut("Flatten").unwrap().outputs.insert("out".into(), "Gone".into());
    let (err, message) = invalid(&g);
    assert!(
        matches!(&err, GraphError::DanglingPCollection { transform, role: "output", pcollection, .. }
            if transform == "Flatten" && pcollection == "Gone"),
        "{err:?}"
    );
    assert!(message.contains("'Flatten'"), "{message}");
}

#[test]
fn dangling_subtransform() {
    let mut g = sample_graph();
    g.transforms.get_mut("Count").unwrap().subtransforms.push("Count/Missing".into());
    let (err, message) = invalid(&g);
    assert_eq!(err, GraphError::DanglingTransform { transform: "Count".into(), missing: "Count/Missing".into() });
    assert!(message.contains("'Count'") && message.contains("'Count/Missing'"), "{message}");
}

#[test]
fn dangling_root_transform() {
    let mut g = sample_graph();
    g.root_transforms.push("Ghost".into());
    let (err, message) = invalid(&g);
    assert_eq!(err, GraphError::DanglingTransform { transform: "<root>".into(), missing: "Ghost".into() });
    assert!(message.contains("'Ghost'"), "{message}");
}

#[test]
fn transform_id_differs_from_unique_name() {
    let mut g = sample_graph();
    let t = g.transforms.remove("Flatten").unwrap();
    g.transforms.insert("Flattened".into(), t);
    let (err, message) = invalid(&g);
    assert_eq!(err, GraphError::IdMismatch { id: "Flattened".into(), unique_name: "Flatten".into() });
    assert!(message.contains("'Flatten'"), "{message}");
}

/// Create -> Loop/First <-> Loop/Second, with `sink` reading the cycle from outside.
fn cyclic_graph(sink: &str) -> Graph {
    let mut g = Graph::default();
    g.coders.insert("str".into(), serde_coder("String"));
    g.windowing_strategies.insert("global".into(), Default::default());
    for pc in ["Create.out", "Loop/First.out", "Loop/Second.out", "Sink.out"] {
        g.pcollections.insert(pc.into(), pcollection(pc, "str", "global"));
    }
    let mut first = par_do("Loop/First", "Loop/Second.out", &[("out", "Loop/First.out")]);
    // The first ParDo also reads Create.out, as a side input.
    first.inputs.insert("seed".into(), "Create.out".into());
    let mut payload: runnel_model::ParDoPayload = first.payload_as().unwrap();
    payload
        .side_inputs
        .push(runnel_model::SideInputSpec { tag: "seed".into(), view: runnel_model::ViewKind::Iterable });
    first.payload = serde_json::to_value(payload).unwrap();
    for t in [
        create("Create", "Create.out"),
        first,
        par_do("Loop/Second", "Loop/First.out", &[("out", "Loop/Second.out")]),
        par_do(sink, "Loop/Second.out", &[("out", "Sink.out")]),
    ] {
        g.root_transforms.push(t.unique_name.clone());
        g.transforms.insert(t.unique_name.clone(), t);
    }
    g
}

fn assert_cycle_names_a_loop_transform(g: &Graph) {
    let (err, message) = invalid(g);
    match &err {
        GraphError::Cycle { transform } => {
            assert!(transform == "Loop/First" || transform == "Loop/Second", "named {transform}, not on the cycle");
        }
        other => panic!("expected a cycle, got {other:?}"),
    }
    assert!(message.contains("'Loop/First'") || message.contains("'Loop/Second'"), "{message}");
    assert!(matches!(g.leaf_order(), Err(GraphError::Cycle { .. })));
}

#[test]
fn cycle_between_two_par_dos() {
    assert_cycle_names_a_loop_transform(&cyclic_graph("Zz/Sink"));
}

#[test]
fn cycle_is_reported_on_the_cycle_not_downstream_of_it() {
    // `Log` sorts before `Loop/...`: the transform named must still be one on the cycle.
    assert_cycle_names_a_loop_transform(&cyclic_graph("Log"));
    assert_cycle_names_a_loop_transform(&cyclic_graph("A/Sink"));
}

#[test]
fn par_do_reading_its_own_output_is_a_cycle() {
    let mut g = Graph::default();
    g.coders.insert("str".into(), serde_coder("String"));
    g.windowing_strategies.insert("global".into(), Default::default());
    g.pcollections.insert("Self.out".into(), pcollection("Self.out", "str", "global"));
    let t = par_do("Self", "Self.out", &[("out", "Self.out")]);
    g.transforms.insert("Self".into(), t);
    let (err, message) = invalid(&g);
    assert_eq!(err, GraphError::Cycle { transform: "Self".into() });
    assert!(message.contains("'Self'"), "{message}");
}

#[test]
fn unknown_urn_on_a_leaf() {
    let mut g = sample_graph();
    g.transforms.get_mut("Parse").unwrap().urn = "beam:transform:teleport:v1".into();
    let (err, message) = invalid(&g);
    assert_eq!(err, GraphError::UnknownUrn { transform: "Parse".into(), urn: "beam:transform:teleport:v1".into() });
    assert!(message.contains("'Parse'") && message.contains("teleport"), "{message}");
}

#[test]
fn unknown_urn_on_a_composite_is_fine() {
    let mut g = sample_graph();
    g.transforms.get_mut("Count").unwrap().urn = "my:own:composite".into();
    g.validate().unwrap();
}

#[test]
fn coder_mismatch_in_flatten() {
    let mut g = sample_graph();
    g.transforms.get_mut("Flatten").unwrap().inputs.insert("1".into(), "Parse.errors".into());
    let (err, message) = invalid(&g);
    match &err {
        GraphError::CoderMismatch { transform, message } => {
            assert_eq!(transform, "Flatten");
            assert!(message.contains("'1'") && message.contains("'str'") && message.contains("'kv_str_i64'"));
        }
        other => panic!("expected a coder mismatch, got {other:?}"),
    }
    assert!(message.contains("'Flatten'"), "{message}");
}

#[test]
fn group_by_key_input_not_kv() {
    let mut g = sample_graph();
    g.transforms.get_mut("Count/GroupByKey").unwrap().inputs.insert("in".into(), "Parse.errors".into());
    let (err, message) = invalid(&g);
    match &err {
        GraphError::CoderMismatch { transform, message } => {
            assert_eq!(transform, "Count/GroupByKey");
            assert!(message.contains("input coder 'str' is not a KV coder"), "{message}");
        }
        other => panic!("expected a coder mismatch, got {other:?}"),
    }
    assert!(message.contains("'Count/GroupByKey'"), "{message}");
}

#[test]
fn group_by_key_output_not_iterable() {
    let mut g = sample_graph();
    g.pcollections.get_mut("Count/GroupByKey.out").unwrap().coder_id = "kv_str_i64".into();
    let (err, message) = invalid(&g);
    match &err {
        GraphError::CoderMismatch { transform, message } => {
            assert_eq!(transform, "Count/GroupByKey");
            assert!(message.contains("'i64' is not an iterable"), "{message}");
        }
        other => panic!("expected a coder mismatch, got {other:?}"),
    }
    assert!(message.contains("'Count/GroupByKey'"), "{message}");
}

#[test]
fn group_by_key_output_iterable_of_the_wrong_coder() {
    let mut g = sample_graph();
    g.coders.insert("iter_str".into(), iterable_coder("str"));
    g.coders.insert("kv_str_iter_str".into(), kv_coder("str", "iter_str"));
    g.pcollections.get_mut("Count/GroupByKey.out").unwrap().coder_id = "kv_str_iter_str".into();
    let (err, message) = invalid(&g);
    match &err {
        GraphError::CoderMismatch { transform, message } => {
            assert_eq!(transform, "Count/GroupByKey");
            assert!(message.contains("'iter_str' is not an iterable of the input value coder 'i64'"), "{message}");
        }
        other => panic!("expected a coder mismatch, got {other:?}"),
    }
    assert!(message.contains("'Count/GroupByKey'"), "{message}");
}

#[test]
fn group_by_key_changing_the_key_coder() {
    let mut g = sample_graph();
    g.coders.insert("kv_i64_iter_i64".into(), kv_coder("i64", "iter_i64"));
    g.pcollections.get_mut("Count/GroupByKey.out").unwrap().coder_id = "kv_i64_iter_i64".into();
    let (err, _) = invalid(&g);
    assert!(
        matches!(&err, GraphError::CoderMismatch { transform, message }
            if transform == "Count/GroupByKey" && message.contains("key coder")),
        "{err:?}"
    );
}

#[test]
fn pcollection_produced_by_two_transforms() {
    let mut g = sample_graph();
    g.transforms.insert("Duplicate".into(), create("Duplicate", "Create.out"));
    let (err, message) = invalid(&g);
    match &err {
        GraphError::BadProducer { pcollection, message } => {
            assert_eq!(pcollection, "Create.out");
            assert!(message.contains("Create") && message.contains("Duplicate"), "{message}");
        }
        other => panic!("expected a producer error, got {other:?}"),
    }
    assert!(message.contains("'Create.out'") && message.contains("Duplicate"), "{message}");
}

#[test]
fn pcollection_produced_by_no_transform() {
    let mut g = sample_graph();
    g.pcollections.insert("Orphan".into(), pcollection("Orphan", "str", "global"));
    let (err, message) = invalid(&g);
    assert!(matches!(&err, GraphError::BadProducer { pcollection, .. } if pcollection == "Orphan"), "{err:?}");
    assert!(message.contains("'Orphan'"), "{message}");
}

#[test]
fn pcollection_with_unknown_coder() {
    let mut g = sample_graph();
    g.pcollections.get_mut("Parse.errors").unwrap().coder_id = "no_such_coder".into();
    let (err, message) = invalid(&g);
    assert_eq!(
        err,
        GraphError::DanglingComponent { pcollection: "Parse.errors".into(), kind: "coder", id: "no_such_coder".into() }
    );
    assert!(message.contains("'Parse.errors'") && message.contains("'no_such_coder'"), "{message}");
}

#[test]
fn pcollection_with_unknown_windowing_strategy() {
    let mut g = sample_graph();
    g.pcollections.get_mut("Window.out").unwrap().windowing_strategy_id = "hourly".into();
    let (err, message) = invalid(&g);
    assert_eq!(
        err,
        GraphError::DanglingComponent {
            pcollection: "Window.out".into(),
            kind: "windowing strategy",
            id: "hourly".into()
        }
    );
    assert!(message.contains("'Window.out'") && message.contains("'hourly'"), "{message}");
}

#[test]
fn coder_with_unknown_component_or_urn() {
    let mut g = sample_graph();
    g.coders.insert("kv_bad".into(), kv_coder("str", "missing"));
    let (err, message) = invalid(&g);
    assert!(matches!(&err, GraphError::BadCoder { coder, .. } if coder == "kv_bad"), "{err:?}");
    assert!(message.contains("'kv_bad'") && message.contains("'missing'"), "{message}");

    let mut g = sample_graph();
    g.coders.get_mut("i64").unwrap().urn = "beam:coder:varint:v1".into();
    let (err, message) = invalid(&g);
    assert!(matches!(&err, GraphError::BadCoder { coder, .. } if coder == "i64"), "{err:?}");
    assert!(message.contains("varint"), "{message}");

    let mut g = sample_graph();
    g.coders.get_mut("iter_i64").unwrap().components.push("str".into());
    let (err, _) = invalid(&g);
    assert!(matches!(&err, GraphError::BadCoder { coder, .. } if coder == "iter_i64"), "{err:?}");
}

#[test]
fn bad_payload_names_the_transform() {
    let mut g = sample_graph();
    g.transforms.get_mut("Window").unwrap().payload = serde_json::json!({"strategy": "fixed"});
    let (err, message) = invalid(&g);
    assert!(matches!(&err, GraphError::BadPayload { transform, .. } if transform == "Window"), "{err:?}");
    assert!(message.contains("'Window'"), "{message}");
}

#[test]
fn window_into_payload_must_match_its_output() {
    let mut g = sample_graph();
    g.pcollections.get_mut("Window.out").unwrap().windowing_strategy_id = "global".into();
    let (err, message) = invalid(&g);
    assert!(matches!(&err, GraphError::BadShape { transform, .. } if transform == "Window"), "{err:?}");
    assert!(message.contains("'Window'"), "{message}");
}

#[test]
fn par_do_side_inputs_must_be_declared() {
    let mut g = sample_graph();
    g.transforms.get_mut("Parse").unwrap().inputs.insert("extra".into(), "Create.out".into());
    let (err, message) = invalid(&g);
    assert!(matches!(&err, GraphError::BadShape { transform, .. } if transform == "Parse"), "{err:?}");
    assert!(message.contains("'Parse'"), "{message}");
}

#[test]
fn create_with_inputs_is_malformed() {
    let mut g = sample_graph();
    g.pcollections.insert("Other.out".into(), pcollection("Other.out", "str", "global"));
    g.transforms.insert("Other".into(), create("Other", "Other.out"));
    g.transforms.get_mut("Create").unwrap().inputs.insert("in".into(), "Other.out".into());
    let (err, message) = invalid(&g);
    assert_eq!(err, GraphError::BadShape { transform: "Create".into(), message: "a Create has no inputs".into() });
    assert!(message.contains("'Create'"), "{message}");
}

#[test]
fn leaf_urns_are_all_handled() {
    // Every URN the validator accepts on a leaf is listed in `urns::LEAF_TRANSFORMS`.
    for urn in urns::LEAF_TRANSFORMS {
        let mut g = sample_graph();
        g.transforms.get_mut("Parse").unwrap().urn = urn.to_string();
        if let Err(err) = g.validate() {
            assert!(!matches!(err, GraphError::UnknownUrn { .. }), "{urn}: {err}");
        }
    }
}
