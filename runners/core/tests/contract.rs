//! The element contract every runner relies on: encodings are per element and self-delimiting, so
//! a stream of them can be cut between any two elements and concatenated; decoding gives every
//! element back, and a truncated element or trailing bytes are an error, never a silent loss.

use runnel_model::exec::{Batch, ElementOps};
use runnel_model::{Timestamp, Window, WindowedValue};
use runnel_runner_core::typed::{downcast, TypedOps};

fn batch(values: &[&str]) -> Batch {
    let v: Vec<WindowedValue<(String, i64)>> = values
        .iter()
        .enumerate()
        .map(|(i, s)| WindowedValue::timestamped((s.to_string(), i as i64), Timestamp(i as i64 * 10)))
        .collect();
    Box::new(v)
}

fn values(b: Batch) -> Vec<(String, i64)> {
    downcast::<(String, i64)>(b).into_iter().map(|wv| wv.value).collect()
}

fn ops() -> TypedOps<(String, i64)> {
    TypedOps::keyed()
}

#[test]
fn two_batches_encoded_back_to_back_decode_to_every_element() {
    let ops = ops();
    let mut bytes = Vec::new();
    ops.encode(&batch(&["a", "b"]), &mut bytes).unwrap();
    ops.encode(&batch(&["c"]), &mut bytes).unwrap();
    let all = values(ops.decode(&bytes).unwrap());
    assert_eq!(all, vec![("a".into(), 0), ("b".into(), 1), ("c".into(), 0)]);
}

#[test]
fn an_encoding_can_be_cut_between_any_two_elements() {
    let ops = ops();
    let mut bytes = Vec::new();
    ops.encode(&batch(&["x", "yy", "zzz"]), &mut bytes).unwrap();
    let mut one = Vec::new();
    ops.encode(&batch(&["x"]), &mut one).unwrap();
    let (head, tail) = bytes.split_at(one.len());
    assert_eq!(values(ops.decode(head).unwrap()), vec![("x".into(), 0)]);
    assert_eq!(values(ops.decode(tail).unwrap()).len(), 2);
}

#[test]
fn metadata_survives_the_round_trip() {
    let ops = ops();
    let mut wv = WindowedValue::timestamped(("k".to_string(), 7i64), Timestamp(42));
    wv.window = Window::interval(40, 50);
    wv.retraction = true;
    let mut bytes = Vec::new();
    ops.encode(&(Box::new(vec![wv.clone()]) as Batch), &mut bytes).unwrap();
    let back = downcast::<(String, i64)>(ops.decode(&bytes).unwrap());
    assert_eq!(back, vec![wv]);
}

#[test]
fn an_empty_stream_decodes_to_an_empty_batch() {
    assert_eq!(ops().len(&ops().decode(&[]).unwrap()), 0);
}

#[test]
fn a_truncated_element_is_an_error_naming_where() {
    let ops = ops();
    let mut bytes = Vec::new();
    ops.encode(&batch(&["a", "b"]), &mut bytes).unwrap();
    for cut in 1..bytes.len() {
        let mut one = Vec::new();
        ops.encode(&batch(&["a"]), &mut one).unwrap();
        if cut == one.len() {
            continue; // a whole first element: valid
        }
        let err = ops.decode(&bytes[..cut]).err().unwrap_or_else(|| panic!("cut at {cut} decoded")).to_string();
        assert!(err.contains("at byte"), "{err}");
    }
}

#[test]
fn trailing_bytes_are_an_error() {
    let ops = ops();
    let mut bytes = Vec::new();
    ops.encode(&batch(&["a"]), &mut bytes).unwrap();
    bytes.push(0);
    let err = ops.decode(&bytes).err().expect("a stray byte must not decode").to_string();
    assert!(err.contains("element #1"), "{err}");
}

#[test]
fn an_element_whose_announced_length_holds_extra_bytes_is_an_error() {
    let ops = ops();
    let mut bytes = Vec::new();
    ops.encode(&batch(&["a"]), &mut bytes).unwrap();
    // Announce one more byte than the element has, and supply it.
    bytes[0] += 1;
    bytes.push(0);
    assert!(ops.decode(&bytes).is_err());
}
