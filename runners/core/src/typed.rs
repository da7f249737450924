//! [`TypedOps`]: the typed side of [`ElementOps`] for batches of `WindowedValue<T>`.

use crate::Data;
use bincode::Options;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use runnel_model::exec::{Batch, ElementMeta, ElementOps, KeyedEncoding, UserError, ValueSink};
use runnel_model::{Timestamp, Window, WindowedValue};
use std::hash::Hasher;
use std::sync::Arc;

/// Appends the deterministic encoding of an element's key to a buffer.
type KeyEncoder<T> = Box<dyn Fn(&T, &mut Vec<u8>) -> Result<(), UserError> + Send + Sync>;

/// What element operations know of a key-value element type: how to hash and encode its key.
struct KeyFns<T> {
    hash: Box<dyn Fn(&T) -> u64 + Send + Sync>,
    encode: KeyEncoder<T>,
    /// The encoded length of the key.
    len: KeyLength<T>,
}

/// The encoded length of the key of a pair.
type KeyLength<T> = Box<dyn Fn(&T) -> Result<usize, UserError> + Send + Sync>;

/// Element operations for `T`, with key partitioning when `T` is a key-value pair.
pub struct TypedOps<T> {
    key: Option<Arc<KeyFns<T>>>,
}

impl<T: Data> TypedOps<T> {
    /// Operations for a non-pair element type.
    pub fn new() -> Self {
        TypedOps { key: None }
    }
}

impl<T: Data> Default for TypedOps<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<K: crate::Key, V: Data> TypedOps<(K, V)> {
    /// Operations for key-value pairs: partitioning hashes the deterministic encoding of the key.
    pub fn keyed() -> Self {
        TypedOps {
            key: Some(Arc::new(KeyFns {
                hash: Box::new(|kv: &(K, V)| key_hash(&kv.0)),
                encode: Box::new(|kv: &(K, V), out: &mut Vec<u8>| {
                    bincode::serialize_into(out, &kv.0).map_err(|e| -> UserError {
                        format!("cannot encode the key {:?} of type {}: {e}", kv.0, std::any::type_name::<K>()).into()
                    })
                }),
                // bincode encodes a pair as its key's bytes then its value's.
                len: Box::new(|kv: &(K, V)| -> Result<usize, UserError> {
                    Ok(usize::try_from(bincode::serialized_size(&kv.0)?)?)
                }),
            })),
        }
    }
}

/// A hash of the key's deterministic encoding, equal across processes for equal keys. The key is
/// encoded straight into the hash: nothing is allocated per element.
pub fn key_hash<K: serde::Serialize>(key: &K) -> u64 {
    // FNV-1a: fixed and seedless, so every worker agrees on partitions.
    let mut h = FnvHasher(0xcbf2_9ce4_8422_2325);
    // Writing into a hasher cannot fail; a key serde cannot encode hashes as what was written.
    let _ = bincode::serialize_into(&mut h, key);
    h.finish()
}

struct FnvHasher(u64);

impl Hasher for FnvHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 ^= u64::from(*b);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }
}

impl std::io::Write for FnvHasher {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        Hasher::write(self, bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The byte options of [`bincode::serialize`], refusing trailing bytes: an element's bytes must
/// decode to exactly one element.
fn exact() -> impl bincode::Options {
    bincode::DefaultOptions::new().with_fixint_encoding().reject_trailing_bytes()
}

/// Runnel's bytes of a value (what [`ElementOps::encode_values`] gives for it).
pub fn encode_value<T: Data>(value: &T) -> Result<Vec<u8>, UserError> {
    bincode::serialize(value)
        .map_err(|e| format!("cannot encode {value:?} of type {}: {e}", std::any::type_name::<T>()).into())
}

/// The value whose Runnel bytes are exactly `bytes`.
pub fn decode_value<T: Data>(bytes: &[u8]) -> Result<T, UserError> {
    exact()
        .deserialize(bytes)
        .map_err(|e| format!("{} bytes do not decode to a {}: {e}", bytes.len(), std::any::type_name::<T>()).into())
}

/// Appends one windowed element to `out`: its length as a varint (as Beam's length-prefix
/// coder), then its bincode bytes.
pub fn encode_element<T: Data>(wv: &WindowedValue<T>, out: &mut Vec<u8>) -> Result<(), UserError> {
    let fail = |e: bincode::Error| -> UserError {
        format!("cannot encode {:?} of type {}: {e}", wv.value, std::any::type_name::<T>()).into()
    };
    let len = bincode::serialized_size(wv).map_err(fail)?;
    prost::encoding::encode_varint(len, out);
    bincode::serialize_into(&mut *out, wv).map_err(fail)
}

/// Decodes every element of a stream of [`encode_element`] encodings; a truncated element or
/// trailing bytes are an error naming the offset.
pub fn decode_elements<T: Data>(bytes: &[u8]) -> Result<Vec<WindowedValue<T>>, UserError> {
    let mut out = Vec::new();
    let mut rest = bytes;
    while !rest.is_empty() {
        let offset = bytes.len() - rest.len();
        let fail = |what: String| -> UserError {
            format!(
                "cannot decode element #{} of type {} at byte {offset}: {what}",
                out.len(),
                std::any::type_name::<T>()
            )
            .into()
        };
        let len = prost::encoding::decode_varint(&mut rest).map_err(|_| fail("truncated length".into()))?;
        let len = usize::try_from(len).map_err(|_| fail(format!("length {len} is too large")))?;
        if len > rest.len() {
            return Err(fail(format!("truncated: {len} bytes announced, {} left", rest.len())));
        }
        let (element, tail) = rest.split_at(len);
        out.push(exact().deserialize(element).map_err(|e| fail(e.to_string()))?);
        rest = tail;
    }
    Ok(out)
}

/// The typed vector inside a batch (panics on a type mismatch: a runner bug, not a user error).
pub fn downcast<T: 'static>(batch: Batch) -> Vec<WindowedValue<T>> {
    *batch
        .downcast::<Vec<WindowedValue<T>>>()
        .unwrap_or_else(|_| panic!("batch is not a Vec<WindowedValue<{}>>", std::any::type_name::<T>()))
}

/// The typed vector inside a borrowed batch.
pub fn downcast_ref<T: 'static>(batch: &Batch) -> &Vec<WindowedValue<T>> {
    batch
        .downcast_ref::<Vec<WindowedValue<T>>>()
        .unwrap_or_else(|| panic!("batch is not a Vec<WindowedValue<{}>>", std::any::type_name::<T>()))
}

impl<T: Data> ElementOps for TypedOps<T> {
    fn type_name(&self) -> &'static str {
        std::any::type_name::<T>()
    }

    fn len(&self, batch: &Batch) -> usize {
        downcast_ref::<T>(batch).len()
    }

    fn empty(&self) -> Batch {
        Box::new(Vec::<WindowedValue<T>>::new())
    }

    fn clone_batch(&self, batch: &Batch) -> Batch {
        Box::new(downcast_ref::<T>(batch).clone())
    }

    fn append(&self, into: &mut Batch, from: Batch) {
        let from = downcast::<T>(from);
        into.downcast_mut::<Vec<WindowedValue<T>>>().expect("batch type").extend(from);
    }

    fn split(&self, batch: Batch, max_len: usize) -> Vec<Batch> {
        let v = downcast::<T>(batch);
        let max_len = max_len.max(1);
        if v.len() <= max_len {
            return vec![Box::new(v)];
        }
        // Fresh, exactly sized chunks: `split_off` would leave every head with the capacity of
        // the whole input.
        let mut out = Vec::with_capacity(v.len().div_ceil(max_len));
        let mut rest = v.into_iter();
        loop {
            let chunk: Vec<WindowedValue<T>> = rest.by_ref().take(max_len).collect();
            if chunk.is_empty() {
                break;
            }
            out.push(Box::new(chunk) as Batch);
        }
        out
    }

    fn shuffle(&self, batch: &mut Batch, seed: u64) {
        let v = batch.downcast_mut::<Vec<WindowedValue<T>>>().expect("batch type");
        v.shuffle(&mut rand::rngs::StdRng::seed_from_u64(seed));
        // A stable sort on the flag alone: retractions first, each part still shuffled.
        v.sort_by_key(|wv| !wv.retraction);
    }

    fn has_retractions(&self, batch: &Batch) -> bool {
        downcast_ref::<T>(batch).iter().any(|wv| wv.retraction)
    }

    fn encode(&self, batch: &Batch, out: &mut Vec<u8>) -> Result<(), UserError> {
        for wv in downcast_ref::<T>(batch) {
            encode_element(wv, out)?;
        }
        Ok(())
    }

    fn decode(&self, bytes: &[u8]) -> Result<Batch, UserError> {
        Ok(Box::new(decode_elements::<T>(bytes)?))
    }

    fn estimated_memory(&self, batch: &Batch) -> u64 {
        let inline = std::mem::size_of::<WindowedValue<T>>() as u64;
        self.estimated_bytes(batch).saturating_add(inline.saturating_mul(downcast_ref::<T>(batch).len() as u64))
    }

    fn encode_values(&self, batch: &Batch, each: &mut ValueSink<'_>) -> Result<(), UserError> {
        let mut buf = Vec::new();
        for wv in downcast_ref::<T>(batch) {
            buf.clear();
            bincode::serialize_into(&mut buf, &wv.value)
                .map_err(|e| format!("cannot encode {:?} of type {}: {e}", wv.value, std::any::type_name::<T>()))?;
            let key_len = self.key.as_ref().map(|k| (k.len)(&wv.value)).transpose()?;
            let meta = ElementMeta { timestamp: wv.timestamp, window: wv.window, pane: wv.pane };
            each(&meta, &buf, key_len)?;
        }
        Ok(())
    }

    fn push_decoded(&self, batch: &mut Batch, meta: &ElementMeta, value: &[u8]) -> Result<(), UserError> {
        let value: T = exact()
            .deserialize(value)
            .map_err(|e| format!("cannot decode a value of type {}: {e}", std::any::type_name::<T>()))?;
        let wv =
            WindowedValue { value, timestamp: meta.timestamp, window: meta.window, pane: meta.pane, retraction: false };
        batch.downcast_mut::<Vec<WindowedValue<T>>>().expect("batch type").push(wv);
        Ok(())
    }

    fn estimated_bytes(&self, batch: &Batch) -> u64 {
        const SAMPLES: usize = 8;
        let v = downcast_ref::<T>(batch);
        if v.is_empty() {
            return 0;
        }
        let step = v.len().div_ceil(SAMPLES);
        let (sampled, bytes) = v
            .iter()
            .step_by(step)
            .fold((0u64, 0u64), |(n, b), wv| (n + 1, b + bincode::serialized_size(&wv.value).unwrap_or(0)));
        bytes.saturating_mul(v.len() as u64) / sampled.max(1)
    }

    fn check_encoding(&self, batch: &Batch) -> Result<(), UserError> {
        for wv in downcast_ref::<T>(batch) {
            let fail = |what: String| -> UserError {
                format!("element {:?} of type {} {what}", wv.value, std::any::type_name::<T>()).into()
            };
            let bytes = bincode::serialize(wv).map_err(|e| fail(format!("cannot be encoded: {e}")))?;
            let back: WindowedValue<T> =
                bincode::deserialize(&bytes).map_err(|e| fail(format!("cannot be decoded: {e}")))?;
            let again = bincode::serialize(&back).map_err(|e| fail(format!("cannot be re-encoded: {e}")))?;
            if again != bytes {
                return Err(fail("does not round-trip through its coder (decoded value encodes differently)".into()));
            }
        }
        Ok(())
    }

    fn assign_windows(&self, batch: Batch, assign: &mut dyn FnMut(Timestamp, &Window) -> Vec<Window>) -> Batch {
        let v = downcast::<T>(batch);
        let mut out = Vec::with_capacity(v.len());
        for wv in v {
            let mut windows = assign(wv.timestamp, &wv.window);
            if let Some(last) = windows.pop() {
                for w in windows {
                    out.push(WindowedValue { window: w, ..wv.clone() });
                }
                out.push(WindowedValue { window: last, ..wv });
            }
        }
        Box::new(out)
    }

    fn windows(&self, batch: &Batch) -> Vec<Window> {
        let mut ws: Vec<Window> = downcast_ref::<T>(batch).iter().map(|wv| wv.window).collect();
        ws.sort();
        ws.dedup();
        ws
    }

    fn min_timestamp(&self, batch: &Batch) -> Option<Timestamp> {
        downcast_ref::<T>(batch).iter().map(|wv| wv.timestamp).min()
    }

    fn partition_by_key(&self, batch: Batch, n: usize) -> Option<Vec<Batch>> {
        let key = self.key.as_ref()?;
        let n = n.max(1);
        let mut parts: Vec<Vec<WindowedValue<T>>> = (0..n).map(|_| Vec::new()).collect();
        for wv in downcast::<T>(batch) {
            parts[((key.hash)(&wv.value) % n as u64) as usize].push(wv);
        }
        Some(parts.into_iter().map(|p| Box::new(p) as Batch).collect())
    }

    fn encode_keyed(&self, batch: &Batch) -> Result<Option<Vec<KeyedEncoding>>, UserError> {
        let Some(key) = self.key.as_ref() else { return Ok(None) };
        let elements = downcast_ref::<T>(batch);
        let mut out = Vec::with_capacity(elements.len());
        for wv in elements {
            let mut key_bytes = Vec::new();
            (key.encode)(&wv.value, &mut key_bytes)?;
            let mut element = Vec::new();
            encode_element(wv, &mut element)?;
            out.push((key_bytes, element));
        }
        Ok(Some(out))
    }

    fn debug_strings(&self, batch: &Batch) -> Vec<String> {
        downcast_ref::<T>(batch).iter().map(|wv| format!("{:?}", wv.value)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use runnel_model::PaneInfo;

    #[test]
    fn values_round_trip_with_the_key_length_of_pairs() {
        let ops = TypedOps::<(String, u64)>::keyed();
        let wv = WindowedValue {
            value: ("key".to_string(), 7u64),
            timestamp: Timestamp(5),
            window: Window::interval(0, 10),
            pane: PaneInfo::ON_TIME_AND_ONLY_FIRING,
            retraction: false,
        };
        let batch: Batch = Box::new(vec![wv.clone()]);
        let mut seen = Vec::new();
        ops.encode_values(&batch, &mut |meta, bytes, key_len| {
            seen.push((*meta, bytes.to_vec(), key_len));
            Ok(())
        })
        .unwrap();
        let (meta, bytes, key_len) = seen.pop().unwrap();
        // A bincode string: 8-byte length, then the bytes.
        assert_eq!(key_len, Some(8 + 3));
        assert_eq!(bytes.len(), 8 + 3 + 8);
        let mut back = ops.empty();
        ops.push_decoded(&mut back, &meta, &bytes).unwrap();
        assert_eq!(downcast::<(String, u64)>(back), vec![wv]);
        assert!(ops.push_decoded(&mut ops.empty(), &meta, &bytes[..5]).is_err());
        assert!(TypedOps::<u64>::new().key.is_none());
    }
}
