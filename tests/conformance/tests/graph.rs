//! The portable graph of a small pipeline: JSON round trip, validation, and errors for malformed
//! JSON. Runner-independent, so plain tests rather than conformance cases.

use runnel::model::{Graph, GraphError};
use runnel::prelude::*;

fn small_pipeline() -> Pipeline {
    let p = Pipeline::new(PipelineOptions::default());
    let lines = p.apply("Lines", Create::of(vec!["a b".to_string(), "b".into()]));
    let words = lines.flat_map("Split", |l: String| l.split_whitespace().map(String::from).collect::<Vec<_>>());
    let counts =
        words.apply("Window", WindowInto::new(FixedWindows::of(60_000))).apply("Count", CountPerElement::new());
    let total = words.apply("Total", Combine::globally(combine::Count::new()));
    let view = View::as_singleton(&total);
    let v = view.clone();
    counts.apply(
        "Share",
        ParDo::from_fn(move |(w, n): (String, u64), ctx: &mut DoFnContext<'_, '_, (String, u64, u64)>| {
            let t = *ctx.side_input(&v)?;
            ctx.emit((w, n, t));
            Ok(())
        })
        .with_side_input(&view),
    );
    p
}

#[test]
fn graph_json_round_trips_exactly() {
    let g = small_pipeline().graph();
    let json = g.to_json();
    let back = Graph::from_json(&json).expect("the graph's own JSON parses");
    assert_eq!(back, g);
    assert_eq!(back.to_json(), json, "JSON is deterministic: writing the read-back graph gives the same text");
}

#[test]
fn graph_json_is_deterministic_across_constructions() {
    assert_eq!(small_pipeline().graph().to_json(), small_pipeline().graph().to_json());
}

#[test]
fn graph_of_a_valid_pipeline_validates() {
    let p = small_pipeline();
    assert_eq!(p.construction_errors(), Vec::<String>::new());
    p.graph().validate().expect("a graph built by the SDK validates");
    let back = Graph::from_json(&p.graph().to_json()).expect("reads back");
    back.validate().expect("the read-back graph validates");
}

#[test]
fn malformed_graph_json_reports_line_and_column() {
    let json = "{\n  \"transforms\": {\n    \"A\": [,]\n  }\n}";
    let err = Graph::from_json(json).expect_err("malformed JSON must not parse");
    match &err {
        GraphError::Json { line, column, .. } => {
            assert_eq!(*line, 3, "{err}");
            assert_eq!(*column, 11, "{err}");
        }
        other => panic!("expected a JSON error, got {other:?}"),
    }
    let text = err.to_string();
    assert!(text.contains("line 3") && text.contains("column 11"), "{text}");
}

#[test]
fn truncated_graph_json_is_an_error_not_a_panic() {
    let json = small_pipeline().graph().to_json();
    let cut = &json[..json.len() / 2];
    match Graph::from_json(cut) {
        Err(GraphError::Json { line, column, .. }) => assert!(line >= 1 && column >= 1),
        other => panic!("expected a JSON error, got {other:?}"),
    }
}

#[test]
fn graph_json_with_a_wrong_field_type_is_an_error() {
    let err = Graph::from_json("{\"transforms\": 5}").expect_err("a number is not a map of transforms");
    assert!(matches!(err, GraphError::Json { line: 1, .. }), "{err:?}");
}
