//! Side inputs: whole PCollections presented to a DoFn as a singleton, list, or map, or looked
//! up key by key.

use crate::error::BoxError;
use crate::pipeline::PCollection;
use runnel_model::exec::{Batch, KeyedSideInput, UserError, ViewMaterializer, ViewValue};
use runnel_model::{ViewKind, Window};
use runnel_runner_core::typed::{decode_value, downcast_ref, encode_value};
use runnel_runner_core::{Data, Key};
use std::collections::{BTreeMap, HashMap};
use std::marker::PhantomData;
use std::sync::{Arc, Mutex};

/// A PCollection as a side input whose per-window value has type `V`.
///
/// A view serialises as its tag alone, so registered DoFns can hold the views they read; such a
/// deserialised view can be read with [`crate::DoFnContext::side_input`] but not declared on a
/// ParDo (declare the view it was made from).
pub struct PCollectionView<V> {
    tag: String,
    binding: Option<SideInputBinding>,
    _v: PhantomData<fn() -> V>,
}

impl<V> Clone for PCollectionView<V> {
    fn clone(&self) -> Self {
        PCollectionView { tag: self.tag.clone(), binding: self.binding.clone(), _v: PhantomData }
    }
}

impl<V> serde::Serialize for PCollectionView<V> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.tag.serialize(s)
    }
}

impl<'de, V> serde::Deserialize<'de> for PCollectionView<V> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(PCollectionView { tag: String::deserialize(d)?, binding: None, _v: PhantomData })
    }
}

#[derive(Clone)]
pub(crate) struct SideInputBinding {
    pub tag: String,
    pub pcollection: String,
    pub kind: ViewKind,
    pub materializer: Arc<dyn ViewMaterializer>,
}

impl<V> PCollectionView<V> {
    pub(crate) fn binding(&self) -> SideInputBinding {
        self.binding.clone().unwrap_or_else(|| {
            panic!("side input view '{}' was deserialised: declare the view it was made from", self.tag)
        })
    }

    /// The local tag the view has in a ParDo's inputs.
    pub fn tag(&self) -> &str {
        &self.tag
    }
}

type Build<T, V> = dyn Fn(Vec<T>) -> Result<V, String> + Send + Sync;

struct TypedView<T, V> {
    build: Arc<Build<T, V>>,
    empty: Option<Arc<dyn Fn() -> Result<V, String> + Send + Sync>>,
}

impl<T: Data, V: Send + Sync + 'static> ViewMaterializer for TypedView<T, V> {
    fn materialize(&self, batches: &[Batch]) -> Result<BTreeMap<Window, ViewValue>, UserError> {
        let mut by_window: BTreeMap<Window, Vec<T>> = BTreeMap::new();
        let mut retracted: Vec<(Window, Vec<u8>)> = Vec::new();
        for b in batches {
            for wv in downcast_ref::<T>(b) {
                if wv.retraction {
                    retracted.push((wv.window, bincode::serialize(&wv.value).unwrap_or_default()));
                } else {
                    by_window.entry(wv.window).or_default().push(wv.value.clone());
                }
            }
        }
        // A view holds the latest values: each retraction removes one equal value of its window
        // (all of the side input is at hand, so order does not matter).
        for (window, bytes) in retracted {
            let Some(values) = by_window.get_mut(&window) else { continue };
            if let Some(i) = values.iter().position(|v| bincode::serialize(v).unwrap_or_default() == bytes) {
                values.remove(i);
            }
            if values.is_empty() {
                by_window.remove(&window);
            }
        }
        by_window
            .into_iter()
            .map(|(w, values)| Ok((w, Arc::new((self.build)(values)?) as ViewValue)))
            .collect::<Result<_, String>>()
            .map_err(Into::into)
    }

    fn empty(&self) -> Result<ViewValue, UserError> {
        match &self.empty {
            Some(f) => Ok(Arc::new(f()?)),
            None => Err("the singleton side input is empty and has no default".into()),
        }
    }
}

fn view<T: Data, V: Send + Sync + 'static>(
    pc: &PCollection<T>,
    kind: ViewKind,
    build: impl Fn(Vec<T>) -> Result<V, String> + Send + Sync + 'static,
    empty: Option<Arc<dyn Fn() -> Result<V, String> + Send + Sync>>,
) -> PCollectionView<V> {
    view_of(pc, kind, Arc::new(TypedView { build: Arc::new(build), empty }))
}

/// The view of `pc` presented as `kind`, built by `materializer`.
fn view_of<T: Data, V>(
    pc: &PCollection<T>,
    kind: ViewKind,
    materializer: Arc<dyn ViewMaterializer>,
) -> PCollectionView<V> {
    let tag = format!(
        "side:{}:{}",
        pc.id(),
        serde_json::to_value(kind).ok().and_then(|v| v.as_str().map(String::from)).unwrap_or_default()
    );
    PCollectionView {
        tag: tag.clone(),
        binding: Some(SideInputBinding { tag, pcollection: pc.id().to_string(), kind, materializer }),
        _v: PhantomData,
    }
}

/// Constructors of side input views.
pub struct View;

impl View {
    /// The single element of each window (an error at run time if there are several, or none).
    pub fn as_singleton<T: Data>(pc: &PCollection<T>) -> PCollectionView<T> {
        view(pc, ViewKind::Singleton, single, None)
    }

    /// The single element of each window, or `default` when the window is empty.
    pub fn as_singleton_with_default<T: Data>(pc: &PCollection<T>, default: T) -> PCollectionView<T> {
        view(pc, ViewKind::Singleton, single, Some(Arc::new(move || Ok(default.clone()))))
    }

    /// All elements of each window, in no particular order.
    pub fn as_iterable<T: Data>(pc: &PCollection<T>) -> PCollectionView<Vec<T>> {
        view(pc, ViewKind::Iterable, Ok, Some(Arc::new(|| Ok(Vec::new()))))
    }

    /// All elements of each window as a list.
    pub fn as_list<T: Data>(pc: &PCollection<T>) -> PCollectionView<Vec<T>> {
        view(pc, ViewKind::List, Ok, Some(Arc::new(|| Ok(Vec::new()))))
    }

    /// A map from each key to its value (an error at run time if a key has several values).
    pub fn as_map<K: Key, V: Data>(pc: &PCollection<(K, V)>) -> PCollectionView<HashMap<K, V>> {
        let build = |kvs: Vec<(K, V)>| {
            let mut m = HashMap::with_capacity(kvs.len());
            for (k, v) in kvs {
                if m.insert(k.clone(), v).is_some() {
                    return Err(format!("the map side input has several values for key {k:?}"));
                }
            }
            Ok(m)
        };
        view(pc, ViewKind::Map, build, Some(Arc::new(|| Ok(HashMap::new()))))
    }

    /// A map from each key to all its values.
    pub fn as_multimap<K: Key, V: Data>(pc: &PCollection<(K, V)>) -> PCollectionView<HashMap<K, Vec<V>>> {
        let build = |kvs: Vec<(K, V)>| {
            let mut m: HashMap<K, Vec<V>> = HashMap::new();
            for (k, v) in kvs {
                m.entry(k).or_default().push(v);
            }
            Ok(m)
        };
        view(pc, ViewKind::MultiMap, build, Some(Arc::new(|| Ok(HashMap::new()))))
    }

    /// The value of each key, looked up when the DoFn asks ([`MapLookup::get`]), not read as a
    /// whole window: for large side inputs on Beam runners, which serve it key by key. An error
    /// at run time when a key looked up has several values.
    pub fn as_map_lookup<K: Key, V: Data>(pc: &PCollection<(K, V)>) -> PCollectionView<MapLookup<K, V>> {
        lookup_view(pc, ViewKind::MapLookup, MapLookup)
    }

    /// All values of each key, looked up when the DoFn asks ([`MultimapLookup::get`]), not read
    /// as a whole window: for large side inputs on Beam runners, which serve it key by key.
    pub fn as_multimap_lookup<K: Key, V: Data>(pc: &PCollection<(K, V)>) -> PCollectionView<MultimapLookup<K, V>> {
        lookup_view(pc, ViewKind::MultimapLookup, |lookup| lookup)
    }
}

/// The values of each key of a side input window, looked up when a DoFn asks
/// ([`View::as_multimap_lookup`]). On a Beam runner the values of a key are fetched through the
/// Fn API's multimap side inputs when first asked for (then kept for the bundle), so a large side
/// input is never read whole; Runnel's own runners hold the window in memory.
pub struct MultimapLookup<K, V> {
    source: Lookup<K, V>,
}

enum Lookup<K, V> {
    Memory(HashMap<K, Vec<V>>),
    Keyed { keyed: Arc<dyn KeyedSideInput>, fetched: Mutex<HashMap<K, Vec<V>>> },
}

impl<K: Key, V: Data> MultimapLookup<K, V> {
    /// The values of `key`, in no particular order (none when the window has no such key).
    pub fn get(&self, key: &K) -> Result<Vec<V>, BoxError> {
        match &self.source {
            Lookup::Memory(map) => Ok(map.get(key).cloned().unwrap_or_default()),
            Lookup::Keyed { keyed, fetched } => {
                if let Some(values) = fetched.lock().unwrap_or_else(|e| e.into_inner()).get(key) {
                    return Ok(values.clone());
                }
                let values = keyed
                    .values(&encode_value(key)?)?
                    .iter()
                    .map(|bytes| decode_value::<V>(bytes))
                    .collect::<Result<Vec<V>, _>>()?;
                fetched.lock().unwrap_or_else(|e| e.into_inner()).insert(key.clone(), values.clone());
                Ok(values)
            }
        }
    }
}

/// The value of each key of a side input window, looked up when a DoFn asks
/// ([`View::as_map_lookup`]): a [`MultimapLookup`] whose keys have one value each.
pub struct MapLookup<K, V>(MultimapLookup<K, V>);

impl<K: Key, V: Data> MapLookup<K, V> {
    /// The value of `key`, if the window has it; an error if it has several.
    pub fn get(&self, key: &K) -> Result<Option<V>, BoxError> {
        let mut values = self.0.get(key)?;
        match values.len() {
            0 | 1 => Ok(values.pop()),
            n => Err(format!("the map side input has {n} values for key {key:?}").into()),
        }
    }
}

/// Builds lookup views: in memory from whole windows, or over a runner's keyed reads.
struct LookupView<K, V, L> {
    wrap: fn(MultimapLookup<K, V>) -> L,
}

impl<K: Key, V: Data, L: Send + Sync + 'static> ViewMaterializer for LookupView<K, V, L> {
    fn materialize(&self, batches: &[Batch]) -> Result<BTreeMap<Window, ViewValue>, UserError> {
        let wrap = self.wrap;
        let build = move |kvs: Vec<(K, V)>| {
            let mut map: HashMap<K, Vec<V>> = HashMap::new();
            for (k, v) in kvs {
                map.entry(k).or_default().push(v);
            }
            Ok(wrap(MultimapLookup { source: Lookup::Memory(map) }))
        };
        TypedView { build: Arc::new(build), empty: None }.materialize(batches)
    }

    fn empty(&self) -> Result<ViewValue, UserError> {
        Ok(Arc::new((self.wrap)(MultimapLookup { source: Lookup::Memory(HashMap::new()) })))
    }

    fn reads_by_key(&self) -> bool {
        true
    }

    fn lookup(&self, keyed: Arc<dyn KeyedSideInput>) -> Result<ViewValue, UserError> {
        Ok(Arc::new((self.wrap)(MultimapLookup { source: Lookup::Keyed { keyed, fetched: Mutex::default() } })))
    }
}

fn lookup_view<K: Key, V: Data, L: Send + Sync + 'static>(
    pc: &PCollection<(K, V)>,
    kind: ViewKind,
    wrap: fn(MultimapLookup<K, V>) -> L,
) -> PCollectionView<L> {
    // Read key by key, the side input must be pairs on the wire (Beam's KV coder).
    pc.pipeline().lock().make_keyed::<K, V>(pc.id());
    view_of(pc, kind, Arc::new(LookupView { wrap }))
}

fn single<T: Data>(mut values: Vec<T>) -> Result<T, String> {
    match values.len() {
        1 => Ok(values.pop().expect("one value")),
        n => Err(format!("the singleton side input has {n} elements in one window, expected exactly 1")),
    }
}
