//! The JSON form of a graph: lossless and deterministic.

mod common;

use common::*;
use runnel_model::{Graph, GraphError, WindowingStrategy};

#[test]
fn sample_graph_is_valid() {
    sample_graph().validate().unwrap();
}

#[test]
fn json_round_trip_is_lossless() {
    let g = sample_graph();
    let back = Graph::from_json(&g.to_json()).unwrap();
    assert_eq!(back, g);
}

#[test]
fn json_is_byte_identical_across_serialisations_and_round_trips() {
    let g = sample_graph();
    let first = g.to_json();
    assert_eq!(first, g.to_json());
    assert_eq!(first, g.clone().to_json());
    // Building the same graph again (maps filled in another order) gives the same bytes.
    assert_eq!(first, sample_graph().to_json());
    let again = Graph::from_json(&first).unwrap().to_json();
    assert_eq!(first, again);
    let thrice = Graph::from_json(&again).unwrap().to_json();
    assert_eq!(first, thrice);
}

#[test]
fn json_object_keys_are_sorted() {
    let json = sample_graph().to_json();
    // The transforms map is ordered by id whatever the insertion order.
    let positions: Vec<usize> = ["\"Count\":", "\"Create\":", "\"Enrich\":", "\"Flatten\":", "\"Parse\":"]
        .iter()
        .map(|k| json.find(k).unwrap_or_else(|| panic!("{k} missing from JSON")))
        .collect();
    assert!(positions.windows(2).all(|w| w[0] < w[1]), "{positions:?}");
}

#[test]
fn empty_graph_round_trips() {
    let g = Graph::default();
    let json = g.to_json();
    assert_eq!(Graph::from_json(&json).unwrap(), g);
    assert_eq!(Graph::from_json(&json).unwrap().to_json(), json);
}

#[test]
fn every_windowing_variant_round_trips_through_json() {
    let mut g = Graph::default();
    for (i, t) in all_triggers().into_iter().enumerate() {
        g.windowing_strategies
            .insert(format!("trigger{i:02}"), WindowingStrategy { trigger: t, ..WindowingStrategy::default() });
    }
    for (i, w) in all_window_fns().into_iter().enumerate() {
        g.windowing_strategies.insert(format!("window_fn{i:02}"), WindowingStrategy::with_window_fn(w));
    }
    for (i, s) in all_enum_strategies().into_iter().enumerate() {
        g.windowing_strategies.insert(format!("enums{i:02}"), s);
    }
    let json = g.to_json();
    let back = Graph::from_json(&json).unwrap();
    assert_eq!(back, g);
    assert_eq!(back.to_json(), json);
}

#[test]
fn null_payloads_are_left_out_of_json() {
    let g = sample_graph();
    let json = g.to_json();
    let value: serde_json::Value = serde_json::from_str(&json).unwrap();
    let flatten = &value["transforms"]["Flatten"];
    assert!(flatten.get("payload").is_none(), "{flatten}");
    assert!(flatten.get("subtransforms").is_none(), "{flatten}");
    assert!(value["transforms"]["Parse"].get("payload").is_some());
}

fn json_error(json: &str) -> (usize, usize, String, String) {
    let err = Graph::from_json(json).unwrap_err();
    let display = err.to_string();
    match err {
        GraphError::Json { line, column, message } => (line, column, message, display),
        other => panic!("expected a JSON error, got {other:?}"),
    }
}

#[test]
fn malformed_json_reports_line_and_column() {
    // A list where the transforms map should be: reported where the list starts.
    let (line, column, message, display) = json_error("{\"transforms\": [");
    assert_eq!((line, column), (1, 15), "{message}");
    assert!(message.contains("expected a map"), "{message}");
    assert!(display.contains("line 1, column 15"), "{display}");

    // Truncated input: reported at the end.
    let (line, column, message, display) = json_error("{\"transforms\": {");
    assert_eq!((line, column), (1, 16), "{message}");
    assert!(message.contains("EOF"), "{message}");
    assert!(display.contains("line 1, column 16"), "{display}");

    // A syntax error on a later line.
    let (line, column, message, display) = json_error("{\n  \"transforms\": {},\n  \"pcollections\": {,\n}");
    assert_eq!((line, column), (3, 20), "{message}");
    assert!(display.contains("line 3, column 20"), "{display}");
}

#[test]
fn json_with_missing_fields_is_an_error_with_position() {
    let err = Graph::from_json("{\"transforms\": {}}").unwrap_err();
    match &err {
        GraphError::Json { message, .. } => assert!(message.contains("missing field"), "{message}"),
        other => panic!("expected a JSON error, got {other:?}"),
    }
}
