//! Runnel's standard coders against Beam's own test vectors (`standard_coders.yaml` of Beam
//! 2.77, its encodings copied as hex into `data/standard_coders.json`): every example decodes
//! to the expected value and, unless the coder is marked non-deterministic, encodes back to the
//! same bytes, in every context the vector names.

use runnel_model::{IntervalWindow, PaneInfo, PaneTiming, Timestamp, Window};
use runnel_runner_portable::coders::{BeamCoder, Context, TimerValue, Value};
use serde_json::Value as Json;

fn coder_of(spec: &Json) -> BeamCoder {
    let urn = spec["urn"].as_str().unwrap();
    let comps: Vec<BeamCoder> =
        spec.get("components").and_then(Json::as_array).map(|c| c.iter().map(coder_of).collect()).unwrap_or_default();
    let mut it = comps.into_iter().map(Box::new);
    let mut next = || it.next().unwrap_or_else(|| panic!("{urn} lacks a component"));
    match urn {
        "beam:coder:bytes:v1" => BeamCoder::Bytes,
        "beam:coder:string_utf8:v1" => BeamCoder::StringUtf8,
        "beam:coder:bool:v1" => BeamCoder::Bool,
        "beam:coder:varint:v1" => BeamCoder::Varint,
        "beam:coder:double:v1" => BeamCoder::Double,
        "beam:coder:kv:v1" => BeamCoder::Kv(next(), next()),
        "beam:coder:iterable:v1" => BeamCoder::Iterable(next()),
        "beam:coder:length_prefix:v1" => BeamCoder::LengthPrefix(next()),
        "beam:coder:global_window:v1" => BeamCoder::GlobalWindow,
        "beam:coder:interval_window:v1" => BeamCoder::IntervalWindow,
        "beam:coder:windowed_value:v1" => BeamCoder::WindowedValue(next(), next()),
        "beam:coder:timer:v1" => BeamCoder::Timer(next(), next()),
        other => panic!("no coder for {other}"),
    }
}

/// Bytes in the vectors are strings of code points below 256, one per byte.
fn latin1(s: &str) -> Vec<u8> {
    s.chars().map(|c| u8::try_from(u32::from(c)).expect("a byte")).collect()
}

fn window_of(coder: &BeamCoder, j: &Json) -> Window {
    match coder {
        BeamCoder::GlobalWindow => Window::Global,
        BeamCoder::IntervalWindow => {
            let end = j["end"].as_i64().unwrap();
            let span = j["span"].as_i64().unwrap();
            Window::Interval(IntervalWindow::new(end - span, end))
        }
        other => panic!("not a window coder: {other:?}"),
    }
}

fn pane_of(j: &Json) -> PaneInfo {
    let timing = match j["timing"].as_str().unwrap() {
        "EARLY" => PaneTiming::Early,
        "ON_TIME" => PaneTiming::OnTime,
        "LATE" => PaneTiming::Late,
        _ => PaneTiming::Unknown,
    };
    PaneInfo {
        is_first: j["is_first"].as_bool().unwrap(),
        is_last: j["is_last"].as_bool().unwrap(),
        timing,
        index: j["index"].as_i64().unwrap(),
        nonspeculative_index: j["on_time_index"].as_i64().unwrap(),
    }
}

fn value_of(coder: &BeamCoder, j: &Json) -> Value {
    match coder {
        BeamCoder::Bytes => Value::Bytes(latin1(j.as_str().unwrap())),
        BeamCoder::StringUtf8 => Value::Str(j.as_str().unwrap().to_string()),
        BeamCoder::Bool => Value::Bool(j.as_bool().unwrap()),
        BeamCoder::Varint => Value::Int(j.as_i64().unwrap()),
        BeamCoder::Double => Value::Double(j.as_str().unwrap().parse().unwrap()),
        BeamCoder::Kv(k, v) => Value::Kv(Box::new(value_of(k, &j["key"])), Box::new(value_of(v, &j["value"]))),
        BeamCoder::Iterable(e) => Value::Iterable(j.as_array().unwrap().iter().map(|x| value_of(e, x)).collect()),
        BeamCoder::LengthPrefix(inner) => value_of(inner, j),
        BeamCoder::GlobalWindow | BeamCoder::IntervalWindow => Value::Window(window_of(coder, j)),
        BeamCoder::WindowedValue(v, w) => Value::Windowed {
            value: Box::new(value_of(v, &j["value"])),
            timestamp: Timestamp(j["timestamp"].as_i64().unwrap()),
            windows: j["windows"].as_array().unwrap().iter().map(|x| window_of(w, x)).collect(),
            pane: pane_of(&j["pane"]),
        },
        BeamCoder::Timer(k, w) => Value::Timer(Box::new(TimerValue {
            user_key: value_of(k, &j["userKey"]),
            dynamic_timer_tag: j["dynamicTimerTag"].as_str().unwrap().to_string(),
            windows: j["windows"].as_array().unwrap().iter().map(|x| window_of(w, x)).collect(),
            fire: if j["clearBit"].as_bool().unwrap() {
                None
            } else {
                Some((
                    Timestamp(j["fireTimestamp"].as_i64().unwrap()),
                    Timestamp(j["holdTimestamp"].as_i64().unwrap()),
                    pane_of(&j["pane"]),
                ))
            },
        })),
    }
}

/// Equality that holds for NaN (the vectors include one): doubles compare by bits.
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Double(x), Value::Double(y)) => x.to_bits() == y.to_bits(),
        (Value::Kv(k1, v1), Value::Kv(k2, v2)) => same(k1, k2) && same(v1, v2),
        (Value::Iterable(x), Value::Iterable(y)) => x.len() == y.len() && x.iter().zip(y).all(|(a, b)| same(a, b)),
        _ => a == b,
    }
}

fn hex(s: &str) -> Vec<u8> {
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
}

#[test]
fn every_beam_vector_decodes_and_encodes_byte_for_byte() {
    let text =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/standard_coders.json")).unwrap();
    let data: Json = serde_json::from_str(&text).unwrap();
    let mut checked = 0;
    for section in data["sections"].as_array().unwrap() {
        let coder = coder_of(&section["coder"]);
        let deterministic = !section["coder"].get("non_deterministic").and_then(Json::as_bool).unwrap_or(false);
        let contexts = match section.get("nested").and_then(Json::as_bool) {
            Some(true) => vec![Context::Nested],
            Some(false) => vec![Context::Outer],
            None => vec![Context::Nested, Context::Outer],
        };
        for example in section["examples"].as_array().unwrap() {
            let bytes = hex(example[0].as_str().unwrap());
            let expected = value_of(&coder, &example[1]);
            for &ctx in &contexts {
                let mut input = bytes.as_slice();
                let decoded = coder.decode(&mut input, ctx).unwrap_or_else(|e| panic!("{coder:?} {ctx:?}: {e}"));
                assert!(same(&decoded, &expected), "{coder:?} {ctx:?}: decoded {decoded:?}, expected {expected:?}");
                assert!(input.is_empty(), "{coder:?} {ctx:?}: {} bytes left", input.len());
                if deterministic {
                    let mut out = Vec::new();
                    coder.encode(&expected, ctx, &mut out).unwrap();
                    assert_eq!(out, bytes, "{coder:?} {ctx:?}: encoding of {expected:?}");
                }
                checked += 1;
            }
        }
    }
    // The file holds 65 examples of the coders Runnel implements; most are checked in both contexts.
    assert!(checked >= 65, "only {checked} checks ran");
}
