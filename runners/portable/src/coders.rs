//! Beam's standard coders, byte for byte: what a Beam runner reads and writes on the data plane,
//! in state requests and in grouping keys.
//!
//! [`BeamCoder`] is a coder tree built from a `Coder` proto; [`Value`] is the dynamic value it
//! encodes. Encoding is context-dependent as in Beam: in the *nested* context a value must be
//! self-delimiting (bytes and strings get a varint length), in the *outer* context it may run to
//! the end of the buffer. The low-level pieces (varints, timestamps, panes, windows) are public
//! for the harness, which encodes typed elements without building [`Value`]s.

use crate::proto::pipeline as pb;
use runnel_model::{IntervalWindow, PaneInfo, PaneTiming, Timestamp, Window};
use std::collections::BTreeMap;
use thiserror::Error;

/// URNs of Beam's standard coders.
pub mod urn {
    /// Raw bytes.
    pub const BYTES: &str = "beam:coder:bytes:v1";
    /// UTF-8 text.
    pub const STRING_UTF8: &str = "beam:coder:string_utf8:v1";
    /// One byte, 0 or 1.
    pub const BOOL: &str = "beam:coder:bool:v1";
    /// A signed 64-bit integer as an unsigned LEB128 varint of its two's complement.
    pub const VARINT: &str = "beam:coder:varint:v1";
    /// An IEEE 754 double, big-endian.
    pub const DOUBLE: &str = "beam:coder:double:v1";
    /// A key and a value.
    pub const KV: &str = "beam:coder:kv:v1";
    /// A sequence of elements.
    pub const ITERABLE: &str = "beam:coder:iterable:v1";
    /// A varint length, then the component's outer encoding.
    pub const LENGTH_PREFIX: &str = "beam:coder:length_prefix:v1";
    /// The global window (no bytes).
    pub const GLOBAL_WINDOW: &str = "beam:coder:global_window:v1";
    /// An interval window: its end, then its span.
    pub const INTERVAL_WINDOW: &str = "beam:coder:interval_window:v1";
    /// A value with its timestamp, windows and pane.
    pub const WINDOWED_VALUE: &str = "beam:coder:windowed_value:v1";
    /// A timer: key, tag, windows, and either a clear bit or its times and pane.
    pub const TIMER: &str = "beam:coder:timer:v1";
}

/// A coder could not be built, or bytes did not decode.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[error("{0}")]
pub struct CoderError(pub String);

fn err<T>(message: impl Into<String>) -> Result<T, CoderError> {
    Err(CoderError(message.into()))
}

/// Whether a value is encoded inside another (and must delimit itself) or alone.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Context {
    /// Inside a larger encoding: self-delimiting.
    Nested,
    /// The whole buffer.
    Outer,
}

/// A coder tree of Beam's standard coders.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BeamCoder {
    /// `beam:coder:bytes:v1`.
    Bytes,
    /// `beam:coder:string_utf8:v1`.
    StringUtf8,
    /// `beam:coder:bool:v1`.
    Bool,
    /// `beam:coder:varint:v1`.
    Varint,
    /// `beam:coder:double:v1`.
    Double,
    /// `beam:coder:kv:v1` with key and value coders.
    Kv(Box<BeamCoder>, Box<BeamCoder>),
    /// `beam:coder:iterable:v1` with the element coder.
    Iterable(Box<BeamCoder>),
    /// `beam:coder:length_prefix:v1` around a component.
    LengthPrefix(Box<BeamCoder>),
    /// `beam:coder:global_window:v1`.
    GlobalWindow,
    /// `beam:coder:interval_window:v1`.
    IntervalWindow,
    /// `beam:coder:windowed_value:v1` with value and window coders.
    WindowedValue(Box<BeamCoder>, Box<BeamCoder>),
    /// `beam:coder:timer:v1` with key and window coders.
    Timer(Box<BeamCoder>, Box<BeamCoder>),
}

/// A value of a [`BeamCoder`].
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// Of `Bytes`.
    Bytes(Vec<u8>),
    /// Of `StringUtf8`.
    Str(String),
    /// Of `Bool`.
    Bool(bool),
    /// Of `Varint`.
    Int(i64),
    /// Of `Double`.
    Double(f64),
    /// Of `Kv`.
    Kv(Box<Value>, Box<Value>),
    /// Of `Iterable`.
    Iterable(Vec<Value>),
    /// Of `GlobalWindow` and `IntervalWindow`.
    Window(Window),
    /// Of `WindowedValue`.
    Windowed {
        /// The value.
        value: Box<Value>,
        /// Its timestamp.
        timestamp: Timestamp,
        /// The windows it is in (Beam keeps several per element).
        windows: Vec<Window>,
        /// Its pane.
        pane: PaneInfo,
    },
    /// Of `Timer`.
    Timer(Box<TimerValue>),
}

/// A timer as `beam:coder:timer:v1` encodes it.
#[derive(Clone, Debug, PartialEq)]
pub struct TimerValue {
    /// The key it is set for.
    pub user_key: Value,
    /// The tag within its timer family.
    pub dynamic_timer_tag: String,
    /// Its windows.
    pub windows: Vec<Window>,
    /// `None`: the timer is cleared; else its fire and hold timestamps and pane.
    pub fire: Option<(Timestamp, Timestamp, PaneInfo)>,
}

impl BeamCoder {
    /// Builds the coder `id` from the coders of a pipeline or bundle descriptor. Coders this
    /// module does not know are an error naming them (the caller decides whether to treat them
    /// as opaque bytes under a length prefix).
    pub fn from_proto(id: &str, coders: &BTreeMap<String, pb::Coder>) -> Result<BeamCoder, CoderError> {
        let coder = coders.get(id).ok_or_else(|| CoderError(format!("unknown coder id '{id}'")))?;
        let urn = coder.spec.as_ref().map(|s| s.urn.as_str()).unwrap_or_default();
        let comps = &coder.component_coder_ids;
        let component = |i: usize| -> Result<Box<BeamCoder>, CoderError> {
            let cid = comps.get(i).ok_or_else(|| CoderError(format!("coder '{id}' ({urn}) lacks component {i}")))?;
            Ok(Box::new(BeamCoder::from_proto(cid, coders)?))
        };
        Ok(match urn {
            urn::BYTES => BeamCoder::Bytes,
            urn::STRING_UTF8 => BeamCoder::StringUtf8,
            urn::BOOL => BeamCoder::Bool,
            urn::VARINT => BeamCoder::Varint,
            urn::DOUBLE => BeamCoder::Double,
            urn::KV => BeamCoder::Kv(component(0)?, component(1)?),
            urn::ITERABLE => BeamCoder::Iterable(component(0)?),
            urn::LENGTH_PREFIX => BeamCoder::LengthPrefix(component(0)?),
            urn::GLOBAL_WINDOW => BeamCoder::GlobalWindow,
            urn::INTERVAL_WINDOW => BeamCoder::IntervalWindow,
            urn::WINDOWED_VALUE => BeamCoder::WindowedValue(component(0)?, component(1)?),
            urn::TIMER => BeamCoder::Timer(component(0)?, component(1)?),
            other => return err(format!("coder '{id}' has URN '{other}', which is not a standard coder Runnel knows")),
        })
    }

    /// Appends the encoding of `value` in `context` to `out`.
    pub fn encode(&self, value: &Value, context: Context, out: &mut Vec<u8>) -> Result<(), CoderError> {
        match (self, value) {
            (BeamCoder::Bytes, Value::Bytes(b)) => write_bytes(b, context, out),
            (BeamCoder::StringUtf8, Value::Str(s)) => write_bytes(s.as_bytes(), context, out),
            (BeamCoder::Bool, Value::Bool(b)) => out.push(u8::from(*b)),
            (BeamCoder::Varint, Value::Int(i)) => write_varint(*i as u64, out),
            (BeamCoder::Double, Value::Double(d)) => out.extend_from_slice(&d.to_bits().to_be_bytes()),
            (BeamCoder::Kv(kc, vc), Value::Kv(k, v)) => {
                kc.encode(k, Context::Nested, out)?;
                vc.encode(v, context, out)?;
            }
            (BeamCoder::Iterable(ec), Value::Iterable(items)) => {
                write_count(items.len(), out)?;
                for item in items {
                    ec.encode(item, Context::Nested, out)?;
                }
            }
            (BeamCoder::LengthPrefix(inner), v) => {
                let mut buf = Vec::new();
                inner.encode(v, Context::Outer, &mut buf)?;
                write_bytes(&buf, Context::Nested, out);
            }
            (BeamCoder::GlobalWindow, Value::Window(Window::Global)) => {}
            (BeamCoder::IntervalWindow, Value::Window(Window::Interval(w))) => write_interval_window(w, out),
            (BeamCoder::WindowedValue(vc, wc), Value::Windowed { value, timestamp, windows, pane }) => {
                write_timestamp(*timestamp, out);
                write_windows(wc, windows, out)?;
                write_pane(pane, out);
                vc.encode(value, context, out)?;
            }
            (BeamCoder::Timer(kc, wc), Value::Timer(t)) => {
                kc.encode(&t.user_key, Context::Nested, out)?;
                write_bytes(t.dynamic_timer_tag.as_bytes(), Context::Nested, out);
                write_windows(wc, &t.windows, out)?;
                match &t.fire {
                    None => out.push(1),
                    Some((fire, hold, pane)) => {
                        out.push(0);
                        write_timestamp(*fire, out);
                        write_timestamp(*hold, out);
                        write_pane(pane, out);
                    }
                }
            }
            (coder, value) => return err(format!("cannot encode {value:?} with {coder:?}")),
        }
        Ok(())
    }

    /// Decodes one value in `context` from the front of `input`, advancing it.
    pub fn decode(&self, input: &mut &[u8], context: Context) -> Result<Value, CoderError> {
        Ok(match self {
            BeamCoder::Bytes => Value::Bytes(read_bytes(input, context)?.to_vec()),
            BeamCoder::StringUtf8 => {
                let bytes = read_bytes(input, context)?;
                Value::Str(String::from_utf8(bytes.to_vec()).map_err(|e| CoderError(format!("invalid UTF-8: {e}")))?)
            }
            BeamCoder::Bool => match take(input, 1)?[0] {
                0 => Value::Bool(false),
                1 => Value::Bool(true),
                b => return err(format!("invalid bool byte {b}")),
            },
            BeamCoder::Varint => Value::Int(read_varint(input)? as i64),
            BeamCoder::Double => Value::Double(f64::from_bits(read_u64(input)?)),
            BeamCoder::Kv(kc, vc) => {
                let k = kc.decode(input, Context::Nested)?;
                let v = vc.decode(input, context)?;
                Value::Kv(Box::new(k), Box::new(v))
            }
            BeamCoder::Iterable(ec) => {
                let mut items = Vec::new();
                read_elements(input, &mut |input| {
                    items.push(ec.decode(input, Context::Nested)?);
                    Ok(())
                })?;
                Value::Iterable(items)
            }
            BeamCoder::LengthPrefix(inner) => {
                let mut bytes = read_bytes(input, Context::Nested)?;
                let v = inner.decode(&mut bytes, Context::Outer)?;
                if !bytes.is_empty() {
                    return err(format!("{} bytes left inside a length prefix", bytes.len()));
                }
                v
            }
            BeamCoder::GlobalWindow => Value::Window(Window::Global),
            BeamCoder::IntervalWindow => Value::Window(Window::Interval(read_interval_window(input)?)),
            BeamCoder::WindowedValue(vc, wc) => {
                let timestamp = read_timestamp(input)?;
                let windows = read_windows(wc, input)?;
                let pane = read_pane(input)?;
                let value = Box::new(vc.decode(input, context)?);
                Value::Windowed { value, timestamp, windows, pane }
            }
            BeamCoder::Timer(kc, wc) => {
                let user_key = kc.decode(input, Context::Nested)?;
                let tag = read_bytes(input, Context::Nested)?;
                let dynamic_timer_tag =
                    String::from_utf8(tag.to_vec()).map_err(|e| CoderError(format!("invalid timer tag: {e}")))?;
                let windows = read_windows(wc, input)?;
                let fire = match take(input, 1)?[0] {
                    1 => None,
                    0 => Some((read_timestamp(input)?, read_timestamp(input)?, read_pane(input)?)),
                    b => return err(format!("invalid timer clear bit {b}")),
                };
                Value::Timer(Box::new(TimerValue { user_key, dynamic_timer_tag, windows, fire }))
            }
        })
    }

    /// The window coder's window, checking the window matches the coder.
    fn encode_window(&self, w: &Window, out: &mut Vec<u8>) -> Result<(), CoderError> {
        self.encode(&Value::Window(*w), Context::Nested, out)
    }
}

/// Splits `n` bytes off the front of `input`.
fn take<'a>(input: &mut &'a [u8], n: usize) -> Result<&'a [u8], CoderError> {
    if input.len() < n {
        return err(format!("truncated: {n} bytes needed, {} left", input.len()));
    }
    let (head, tail) = input.split_at(n);
    *input = tail;
    Ok(head)
}

/// Appends `v` as an unsigned LEB128 varint (Beam's `VarInt`).
pub fn write_varint(mut v: u64, out: &mut Vec<u8>) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Reads an unsigned LEB128 varint of at most 10 bytes.
pub fn read_varint(input: &mut &[u8]) -> Result<u64, CoderError> {
    let mut v: u64 = 0;
    for i in 0..10 {
        let b = take(input, 1)?[0];
        v |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Ok(v);
        }
    }
    err("varint longer than 10 bytes")
}

fn read_u64(input: &mut &[u8]) -> Result<u64, CoderError> {
    let bytes: [u8; 8] = take(input, 8)?.try_into().expect("8 bytes taken");
    Ok(u64::from_be_bytes(bytes))
}

/// Appends bytes, with a varint length in the nested context.
pub fn write_bytes(bytes: &[u8], context: Context, out: &mut Vec<u8>) {
    if context == Context::Nested {
        write_varint(bytes.len() as u64, out);
    }
    out.extend_from_slice(bytes);
}

/// Reads bytes: a varint length and that many bytes nested, the rest of `input` outer.
pub fn read_bytes<'a>(input: &mut &'a [u8], context: Context) -> Result<&'a [u8], CoderError> {
    match context {
        Context::Outer => Ok(std::mem::take(input)),
        Context::Nested => {
            let len = read_varint(input)?;
            let len = usize::try_from(len).map_err(|_| CoderError(format!("length {len} too large")))?;
            take(input, len)
        }
    }
}

/// Appends a timestamp as Beam does: milliseconds, sign bit flipped, 8 bytes big-endian (so
/// byte order is time order).
pub fn write_timestamp(t: Timestamp, out: &mut Vec<u8>) {
    out.extend_from_slice(&((t.0 as u64) ^ (1 << 63)).to_be_bytes());
}

/// Reads a timestamp written by [`write_timestamp`].
pub fn read_timestamp(input: &mut &[u8]) -> Result<Timestamp, CoderError> {
    Ok(Timestamp((read_u64(input)? ^ (1 << 63)) as i64))
}

/// Appends an interval window: its end as a timestamp, then its length as a varint.
pub fn write_interval_window(w: &IntervalWindow, out: &mut Vec<u8>) {
    write_timestamp(w.end, out);
    write_varint(w.end.0.wrapping_sub(w.start.0) as u64, out);
}

/// Reads an interval window written by [`write_interval_window`].
pub fn read_interval_window(input: &mut &[u8]) -> Result<IntervalWindow, CoderError> {
    let end = read_timestamp(input)?;
    let span = read_varint(input)? as i64;
    Ok(IntervalWindow { start: Timestamp(end.0.wrapping_sub(span)), end })
}

/// Appends an element count as a 4-byte big-endian signed integer (Beam's iterable prefix).
fn write_count(n: usize, out: &mut Vec<u8>) -> Result<(), CoderError> {
    let n = i32::try_from(n).map_err(|_| CoderError(format!("{n} elements are too many for one iterable")))?;
    out.extend_from_slice(&n.to_be_bytes());
    Ok(())
}

/// Reads the elements of an iterable with `each`: a count then the elements, or, when the count
/// is -1, blocks each led by a varint count and ended by an empty block.
pub fn read_elements(
    input: &mut &[u8],
    each: &mut dyn FnMut(&mut &[u8]) -> Result<(), CoderError>,
) -> Result<(), CoderError> {
    let count = i32::from_be_bytes(take(input, 4)?.try_into().expect("4 bytes taken"));
    if count >= 0 {
        for _ in 0..count {
            each(input)?;
        }
        return Ok(());
    }
    if count != -1 {
        return err(format!("invalid iterable count {count}"));
    }
    loop {
        let block = read_varint(input)?;
        if block == 0 {
            return Ok(());
        }
        for _ in 0..block {
            each(input)?;
        }
    }
}

fn write_windows(wc: &BeamCoder, windows: &[Window], out: &mut Vec<u8>) -> Result<(), CoderError> {
    write_count(windows.len(), out)?;
    for w in windows {
        wc.encode_window(w, out)?;
    }
    Ok(())
}

fn read_windows(wc: &BeamCoder, input: &mut &[u8]) -> Result<Vec<Window>, CoderError> {
    let mut windows = Vec::new();
    read_elements(input, &mut |input| {
        match wc.decode(input, Context::Nested)? {
            Value::Window(w) => windows.push(w),
            other => return err(format!("window coder {wc:?} gave {other:?}")),
        }
        Ok(())
    })?;
    Ok(windows)
}

/// The 2-bit code of a pane timing on the wire.
fn timing_code(t: PaneTiming) -> u8 {
    match t {
        PaneTiming::Early => 0,
        PaneTiming::OnTime => 1,
        PaneTiming::Late => 2,
        PaneTiming::Unknown => 3,
    }
}

/// Appends a pane: one byte (low nibble: is_first, is_last, timing; high nibble: which indices
/// follow), then zero, one or two varint indices.
pub fn write_pane(pane: &PaneInfo, out: &mut Vec<u8>) {
    let low = u8::from(pane.is_first) | (u8::from(pane.is_last) << 1) | (timing_code(pane.timing) << 2);
    if (pane.index == 0 && pane.nonspeculative_index == 0) || pane.timing == PaneTiming::Unknown {
        out.push(low);
    } else if pane.index == pane.nonspeculative_index || pane.timing == PaneTiming::Early {
        out.push(low | (1 << 4));
        write_varint(pane.index as u64, out);
    } else {
        out.push(low | (2 << 4));
        write_varint(pane.index as u64, out);
        write_varint(pane.nonspeculative_index as u64, out);
    }
}

/// Reads a pane written by [`write_pane`].
pub fn read_pane(input: &mut &[u8]) -> Result<PaneInfo, CoderError> {
    let b = take(input, 1)?[0];
    let timing = match (b >> 2) & 3 {
        0 => PaneTiming::Early,
        1 => PaneTiming::OnTime,
        2 => PaneTiming::Late,
        _ => PaneTiming::Unknown,
    };
    let mut pane = PaneInfo { is_first: b & 1 != 0, is_last: b & 2 != 0, timing, index: 0, nonspeculative_index: 0 };
    match b >> 4 {
        0 => {}
        1 => {
            pane.index = read_varint(input)? as i64;
            // One index: an early pane has no on-time index (-1), others share it.
            pane.nonspeculative_index = if timing == PaneTiming::Early { -1 } else { pane.index };
        }
        2 => {
            pane.index = read_varint(input)? as i64;
            pane.nonspeculative_index = read_varint(input)? as i64;
        }
        e => return err(format!("invalid pane encoding {e}")),
    }
    Ok(pane)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roundtrip(coder: &BeamCoder, v: &Value, ctx: Context) -> Vec<u8> {
        let mut out = Vec::new();
        coder.encode(v, ctx, &mut out).unwrap();
        let mut input = out.as_slice();
        assert_eq!(&coder.decode(&mut input, ctx).unwrap(), v);
        assert!(input.is_empty());
        out
    }

    #[test]
    fn length_prefix_wraps_the_outer_encoding() {
        let c = BeamCoder::LengthPrefix(Box::new(BeamCoder::Bytes));
        assert_eq!(roundtrip(&c, &Value::Bytes(b"abc".to_vec()), Context::Outer), b"\x03abc");
        assert_eq!(roundtrip(&c, &Value::Bytes(b"abc".to_vec()), Context::Nested), b"\x03abc");
    }

    #[test]
    fn panes_choose_the_shortest_index_encoding() {
        let mut out = Vec::new();
        let early =
            PaneInfo { is_first: false, is_last: false, timing: PaneTiming::Early, index: 3, nonspeculative_index: -1 };
        write_pane(&early, &mut out);
        assert_eq!(out, [0x10, 3]);
        assert_eq!(read_pane(&mut out.as_slice()).unwrap(), early);
        let late =
            PaneInfo { is_first: false, is_last: true, timing: PaneTiming::Late, index: 5, nonspeculative_index: 2 };
        out.clear();
        write_pane(&late, &mut out);
        assert_eq!(out, [0x2a, 5, 2]);
        assert_eq!(read_pane(&mut out.as_slice()).unwrap(), late);
        out.clear();
        write_pane(&PaneInfo::ON_TIME_AND_ONLY_FIRING, &mut out);
        assert_eq!(out, [0x07]);
    }

    #[test]
    fn truncated_input_is_an_error() {
        let c = BeamCoder::Kv(Box::new(BeamCoder::Bytes), Box::new(BeamCoder::Varint));
        let e = c.decode(&mut &b"\x05ab"[..], Context::Outer).unwrap_err();
        assert!(e.0.contains("truncated"), "{e}");
        assert!(BeamCoder::Bool.decode(&mut &b"\x02"[..], Context::Outer).is_err());
    }

    #[test]
    fn unknown_coder_urns_are_named() {
        let mut coders = BTreeMap::new();
        coders.insert(
            "c".to_string(),
            pb::Coder {
                spec: Some(pb::FunctionSpec { urn: "beam:coder:row:v1".into(), payload: vec![] }),
                component_coder_ids: vec![],
            },
        );
        let e = BeamCoder::from_proto("c", &coders).unwrap_err();
        assert!(e.0.contains("beam:coder:row:v1"), "{e}");
    }
}
