//! The built-in transforms: Create, Map/FlatMap/Filter, Flatten, Partition, Reshuffle,
//! GroupByKey, CoGroupByKey, Keys/Values/KvSwap/WithKeys/WithTimestamps, CountPerElement, Distinct.

use crate::combine::{self, CombinePerKey};
use crate::dofn::{DoFn, DoFnContext, OutputTag, ParDo};
use crate::error::BoxError;
use crate::pipeline::{single_output, PBegin, PCollection, PTransform, PrimitiveSpec};
use runnel_model::exec::{Batch, Executable, UserError};
use runnel_model::{urns, Boundedness, CreatePayload, Timestamp, WindowedValue, WindowingStrategy};
use runnel_runner_core::group::{BufferValues, GroupAlsoByWindow};
use runnel_runner_core::{Data, Key};
use serde::{Deserialize, Serialize};
use std::marker::PhantomData;
use std::sync::Arc;

/// A bounded PCollection from elements held by the pipeline.
pub struct Create<T> {
    elements: Vec<WindowedValue<T>>,
    timestamped: bool,
}

impl<T: Data> Create<T> {
    /// Elements in the global window at the minimum timestamp.
    pub fn of(elements: Vec<T>) -> Self {
        Create { elements: elements.into_iter().map(WindowedValue::in_global_window).collect(), timestamped: false }
    }

    /// Elements with event timestamps, in the global window.
    pub fn timestamped(elements: Vec<(T, Timestamp)>) -> Self {
        Create {
            elements: elements.into_iter().map(|(v, t)| WindowedValue::timestamped(v, t)).collect(),
            timestamped: true,
        }
    }
}

impl<T: Data> PTransform<PBegin> for Create<T> {
    type Output = PCollection<T>;
    fn expand(self, input: PBegin) -> PCollection<T> {
        let payload = CreatePayload { element_count: self.elements.len(), timestamped: self.timestamped };
        let elements = Arc::new(self.elements);
        let spec = PrimitiveSpec {
            urn: urns::CREATE,
            inputs: Vec::new(),
            payload: serde_json::to_value(payload).expect("payload serialises"),
            executable: Some(Executable::Create {
                elements: Arc::new(move || -> Result<Batch, UserError> { Ok(Box::new((*elements).clone())) }),
            }),
        };
        single_output(input.pipeline(), spec, WindowingStrategy::global_default(), Boundedness::Bounded, None)
    }
}

/// The DoFn of [`Map`].
#[derive(Clone)]
pub struct MapFn<I, O, F> {
    f: F,
    _t: PhantomData<fn(I) -> O>,
}

impl<I: Data, O: Data, F: Fn(I) -> O + Send + Clone + 'static> DoFn for MapFn<I, O, F> {
    type In = I;
    type Out = O;
    fn process(&mut self, element: I, ctx: &mut DoFnContext<'_, '_, O>) -> Result<(), BoxError> {
        ctx.emit((self.f)(element));
        Ok(())
    }
}

/// Applies a function to every element.
pub struct Map<I, O, F>(MapFn<I, O, F>);

impl<I: Data, O: Data, F: Fn(I) -> O + Send + Clone + 'static> Map<I, O, F> {
    /// `f` for each element.
    pub fn new(f: F) -> Self {
        Map(MapFn { f, _t: PhantomData })
    }
}

impl<I: Data, O: Data, F: Fn(I) -> O + Send + Clone + 'static> PTransform<PCollection<I>> for Map<I, O, F> {
    type Output = PCollection<O>;
    fn expand(self, input: PCollection<I>) -> PCollection<O> {
        ParDo::of(self.0).expand(input)
    }
}

/// The DoFn of [`FlatMap`].
#[derive(Clone)]
pub struct FlatMapFn<I, O, F> {
    f: F,
    _t: PhantomData<fn(I) -> O>,
}

impl<I: Data, O: Data, It: IntoIterator<Item = O>, F: Fn(I) -> It + Send + Clone + 'static> DoFn
    for FlatMapFn<I, O, F>
{
    type In = I;
    type Out = O;
    fn process(&mut self, element: I, ctx: &mut DoFnContext<'_, '_, O>) -> Result<(), BoxError> {
        for o in (self.f)(element) {
            ctx.emit(o);
        }
        Ok(())
    }
}

/// Maps every element to zero or more elements.
pub struct FlatMap<I, O, F>(FlatMapFn<I, O, F>);

impl<I: Data, O: Data, It: IntoIterator<Item = O>, F: Fn(I) -> It + Send + Clone + 'static> FlatMap<I, O, F> {
    /// `f` for each element.
    pub fn new(f: F) -> Self {
        FlatMap(FlatMapFn { f, _t: PhantomData })
    }
}

impl<I: Data, O: Data, It: IntoIterator<Item = O>, F: Fn(I) -> It + Send + Clone + 'static> PTransform<PCollection<I>>
    for FlatMap<I, O, F>
{
    type Output = PCollection<O>;
    fn expand(self, input: PCollection<I>) -> PCollection<O> {
        ParDo::of(self.0).expand(input)
    }
}

/// The DoFn of [`Filter`].
#[derive(Clone)]
pub struct FilterFn<T, F> {
    f: F,
    _t: PhantomData<fn(T)>,
}

impl<T: Data, F: Fn(&T) -> bool + Send + Clone + 'static> DoFn for FilterFn<T, F> {
    type In = T;
    type Out = T;
    fn process(&mut self, element: T, ctx: &mut DoFnContext<'_, '_, T>) -> Result<(), BoxError> {
        if (self.f)(&element) {
            ctx.emit(element);
        }
        Ok(())
    }
}

/// Keeps the elements for which a predicate holds.
pub struct Filter<T, F>(FilterFn<T, F>);

impl<T: Data, F: Fn(&T) -> bool + Send + Clone + 'static> Filter<T, F> {
    /// Keeps `x` when `f(&x)`.
    pub fn new(f: F) -> Self {
        Filter(FilterFn { f, _t: PhantomData })
    }
}

impl<T: Data, F: Fn(&T) -> bool + Send + Clone + 'static> PTransform<PCollection<T>> for Filter<T, F> {
    type Output = PCollection<T>;
    fn expand(self, input: PCollection<T>) -> PCollection<T> {
        ParDo::of(self.0).expand(input)
    }
}

impl<T: Data> PCollection<T> {
    /// Applies `f` to every element (a ParDo named `name`).
    pub fn map<O: Data, F: Fn(T) -> O + Send + Clone + 'static>(&self, name: &str, f: F) -> PCollection<O> {
        self.apply(name, Map::new(f))
    }

    /// Maps every element to zero or more elements.
    pub fn flat_map<O: Data, It: IntoIterator<Item = O>, F: Fn(T) -> It + Send + Clone + 'static>(
        &self,
        name: &str,
        f: F,
    ) -> PCollection<O> {
        self.apply(name, FlatMap::new(f))
    }

    /// Keeps the elements for which `f` holds.
    pub fn filter<F: Fn(&T) -> bool + Send + Clone + 'static>(&self, name: &str, f: F) -> PCollection<T> {
        self.apply(name, Filter::new(f))
    }
}

/// Merges PCollections of one type and windowing into one.
pub struct Flatten;

impl<T: Data> PTransform<Vec<PCollection<T>>> for Flatten {
    type Output = PCollection<T>;
    fn expand(self, inputs: Vec<PCollection<T>>) -> PCollection<T> {
        let first = inputs.first().expect("Flatten needs at least one input (use Create::of(vec![]) for none)");
        let pipeline = first.pipeline().clone();
        let mut b = pipeline.lock();
        let name = b.current_name();
        let strategy = b.strategy_of(first.id());
        let coder = b.pcollection(first.id()).coder_id.clone();
        let mut bounded = Boundedness::Bounded;
        for pc in &inputs {
            if b.strategy_of(pc.id()) != strategy {
                b.error(format!("transform '{name}': Flatten inputs must have the same windowing strategy"));
            }
            if b.pcollection(pc.id()).is_bounded == Boundedness::Unbounded {
                bounded = Boundedness::Unbounded;
            }
            // Same Rust type, so the same bytes: give every input the first input's coder id.
            b.set_coder(pc.id(), coder.clone());
        }
        drop(b);
        let spec = PrimitiveSpec {
            urn: urns::FLATTEN,
            inputs: inputs.iter().enumerate().map(|(i, pc)| (i.to_string(), pc.id().to_string())).collect(),
            payload: serde_json::Value::Null,
            executable: None,
        };
        single_output(&pipeline, spec, strategy, bounded, Some(coder))
    }
}

/// Redistributes elements across workers, breaking fusion (order and bundles change).
pub struct Reshuffle;

impl<T: Data> PTransform<PCollection<T>> for Reshuffle {
    type Output = PCollection<T>;
    fn expand(self, input: PCollection<T>) -> PCollection<T> {
        let b = input.pipeline().lock();
        let strategy = b.strategy_of(input.id());
        let node = b.pcollection(input.id()).clone();
        drop(b);
        let spec = PrimitiveSpec {
            urn: urns::RESHUFFLE,
            inputs: vec![("in".into(), input.id().to_string())],
            payload: serde_json::Value::Null,
            executable: None,
        };
        single_output(input.pipeline(), spec, strategy, node.is_bounded, Some(node.coder_id))
    }
}

/// Splits a PCollection into `n` by a function of each element.
pub struct Partition<T, F> {
    n: usize,
    f: F,
    _t: PhantomData<fn(T)>,
}

impl<T: Data, F: Fn(&T, usize) -> usize + Send + Sync + Clone + 'static> Partition<T, F> {
    /// `f(element, n)` gives the partition index, which must be below `n`.
    pub fn new(n: usize, f: F) -> Self {
        Partition { n: n.max(1), f, _t: PhantomData }
    }
}

#[derive(Clone)]
struct PartitionFn<T, F> {
    n: usize,
    f: F,
    tags: Vec<OutputTag<T>>,
}

impl<T: Data, F: Fn(&T, usize) -> usize + Send + Sync + Clone + 'static> DoFn for PartitionFn<T, F> {
    type In = T;
    type Out = T;
    fn process(&mut self, element: T, ctx: &mut DoFnContext<'_, '_, T>) -> Result<(), BoxError> {
        match (self.f)(&element, self.n) {
            0 => ctx.emit(element),
            i if i < self.n => ctx.emit_to(&self.tags[i - 1], element),
            i => return Err(format!("partition function returned {i} for {} partitions", self.n).into()),
        }
        Ok(())
    }
}

impl<T: Data, F: Fn(&T, usize) -> usize + Send + Sync + Clone + 'static> PTransform<PCollection<T>>
    for Partition<T, F>
{
    type Output = Vec<PCollection<T>>;
    fn expand(self, input: PCollection<T>) -> Vec<PCollection<T>> {
        let tags: Vec<OutputTag<T>> = (1..self.n).map(|i| OutputTag::new(i.to_string())).collect();
        let f = PartitionFn { n: self.n, f: self.f, tags: tags.clone() };
        if tags.is_empty() {
            return vec![ParDo::of(f).expand(input)];
        }
        let mut pardo = ParDo::of(f).with_output(&tags[0]);
        for t in &tags[1..] {
            pardo = pardo.with_output(t);
        }
        let outs = pardo.expand(input);
        let mut v = vec![outs.main()];
        v.extend(tags.iter().map(|t| outs.get(t)));
        v
    }
}

/// Groups values per key and window: `(K, V)` → `(K, Vec<V>)`.
pub struct GroupByKey<K, V>(PhantomData<fn(K, V)>);

impl<K: Key, V: Data> GroupByKey<K, V> {
    /// The transform.
    pub fn new() -> Self {
        GroupByKey(PhantomData)
    }
}

impl<K: Key, V: Data> Default for GroupByKey<K, V> {
    fn default() -> Self {
        Self::new()
    }
}

impl<K: Key, V: Data> PTransform<PCollection<(K, V)>> for GroupByKey<K, V> {
    type Output = PCollection<(K, Vec<V>)>;
    fn expand(self, input: PCollection<(K, V)>) -> PCollection<(K, Vec<V>)> {
        let pipeline = input.pipeline().clone();
        let mut b = pipeline.lock();
        b.make_keyed::<K, V>(input.id());
        // The output carries the continuation of the trigger and a consumed merging window
        // function, as in Beam (see `grouping_output_strategy`).
        let strategy = crate::window::grouping_output_strategy(&mut b, input.id());
        let bounded = b.pcollection(input.id()).is_bounded;
        let coder = b.kv_iterable_coder::<K, V>();
        let window_fn = b.window_fn_of(input.id());
        drop(b);
        let spec = PrimitiveSpec {
            urn: urns::GROUP_BY_KEY,
            inputs: vec![("in".into(), input.id().to_string())],
            payload: serde_json::Value::Null,
            executable: Some(Executable::GroupByKey {
                instantiate: Arc::new(move |ws| {
                    Ok(Box::new(GroupAlsoByWindow::<K, V, _>::with_window_fn(BufferValues, ws, window_fn.clone())?))
                }),
            }),
        };
        let out: PCollection<(K, Vec<V>)> = single_output(&pipeline, spec, strategy, bounded, Some(coder));
        pipeline.lock().make_keyed_output::<K, Vec<V>>(out.id());
        out
    }
}

impl<K: Key, V: Data> PCollection<(K, V)> {
    /// Groups values per key and window.
    pub fn group_by_key(&self, name: &str) -> PCollection<(K, Vec<V>)> {
        self.apply(name, GroupByKey::new())
    }

    /// Combines values per key and window with `f`.
    pub fn combine_per_key<F: combine::CombineFn<In = V>>(&self, name: &str, f: F) -> PCollection<(K, F::Out)> {
        self.apply(name, CombinePerKey::new(f))
    }
}

/// One value of either side of a two-way CoGroupByKey.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum Union2<A, B> {
    /// From the first input.
    A(A),
    /// From the second input.
    B(B),
}

/// Groups two keyed PCollections by key: `(K, (Vec<V1>, Vec<V2>))`.
pub struct CoGroupByKey;

impl<K: Key, V1: Data, V2: Data> PTransform<(PCollection<(K, V1)>, PCollection<(K, V2)>)> for CoGroupByKey {
    type Output = PCollection<(K, (Vec<V1>, Vec<V2>))>;
    fn expand(self, (a, b): (PCollection<(K, V1)>, PCollection<(K, V2)>)) -> Self::Output {
        let a = a.map("TagFirst", |(k, v)| (k, Union2::<V1, V2>::A(v)));
        let b = b.map("TagSecond", |(k, v)| (k, Union2::<V1, V2>::B(v)));
        let both = a.pipeline().clone().apply_to("Flatten", vec![a, b], Flatten);
        both.group_by_key("GroupByKey").map("Split", |(k, vs)| {
            let (mut xs, mut ys) = (Vec::new(), Vec::new());
            for v in vs {
                match v {
                    Union2::A(x) => xs.push(x),
                    Union2::B(y) => ys.push(y),
                }
            }
            (k, (xs, ys))
        })
    }
}

impl crate::Pipeline {
    /// Applies a transform to an input that is not a single PCollection (a list or a tuple).
    pub fn apply_to<In: crate::PValue, X: PTransform<In>>(&self, name: &str, input: In, transform: X) -> X::Output
    where
        X::Output: crate::PValue,
    {
        crate::pipeline::apply_named(self, name, input, transform)
    }
}

/// `(K, V)` → `K`.
pub struct Keys;
impl<K: Data, V: Data> PTransform<PCollection<(K, V)>> for Keys {
    type Output = PCollection<K>;
    fn expand(self, input: PCollection<(K, V)>) -> PCollection<K> {
        Map::new(|(k, _): (K, V)| k).expand(input)
    }
}

/// `(K, V)` → `V`.
pub struct Values;
impl<K: Data, V: Data> PTransform<PCollection<(K, V)>> for Values {
    type Output = PCollection<V>;
    fn expand(self, input: PCollection<(K, V)>) -> PCollection<V> {
        Map::new(|(_, v): (K, V)| v).expand(input)
    }
}

/// `(K, V)` → `(V, K)`.
pub struct KvSwap;
impl<K: Data, V: Data> PTransform<PCollection<(K, V)>> for KvSwap {
    type Output = PCollection<(V, K)>;
    fn expand(self, input: PCollection<(K, V)>) -> PCollection<(V, K)> {
        Map::new(|(k, v): (K, V)| (v, k)).expand(input)
    }
}

/// `V` → `(f(&V), V)`.
pub struct WithKeys<F>(pub F);
impl<K: Data, V: Data, F: Fn(&V) -> K + Send + Clone + 'static> PTransform<PCollection<V>> for WithKeys<F> {
    type Output = PCollection<(K, V)>;
    fn expand(self, input: PCollection<V>) -> PCollection<(K, V)> {
        let f = self.0;
        Map::new(move |v: V| (f(&v), v)).expand(input)
    }
}

/// Sets each element's timestamp to `f(&element)`.
pub struct WithTimestamps<F>(pub F);
impl<T: Data, F: Fn(&T) -> Timestamp + Send + Clone + 'static> PTransform<PCollection<T>> for WithTimestamps<F> {
    type Output = PCollection<T>;
    fn expand(self, input: PCollection<T>) -> PCollection<T> {
        let f = self.0;
        ParDo::from_fn(move |v: T, ctx: &mut DoFnContext<'_, '_, T>| {
            let ts = f(&v);
            ctx.emit_at(v, ts);
            Ok(())
        })
        .expand(input)
    }
}

/// Counts each distinct element: `T` → `(T, u64)`.
pub struct CountPerElement<T>(PhantomData<fn(T)>);
impl<T: Key> CountPerElement<T> {
    /// The transform.
    pub fn new() -> Self {
        CountPerElement(PhantomData)
    }
}
impl<T: Key> Default for CountPerElement<T> {
    fn default() -> Self {
        Self::new()
    }
}
impl<T: Key> PTransform<PCollection<T>> for CountPerElement<T> {
    type Output = PCollection<(T, u64)>;
    fn expand(self, input: PCollection<T>) -> PCollection<(T, u64)> {
        input.map("PairWithOne", |x| (x, ())).combine_per_key("Count", combine::Count::new())
    }
}

/// Removes duplicates (per window).
pub struct Distinct<T>(PhantomData<fn(T)>);
impl<T: Key> Distinct<T> {
    /// The transform.
    pub fn new() -> Self {
        Distinct(PhantomData)
    }
}
impl<T: Key> Default for Distinct<T> {
    fn default() -> Self {
        Self::new()
    }
}
impl<T: Key> PTransform<PCollection<T>> for Distinct<T> {
    type Output = PCollection<T>;
    fn expand(self, input: PCollection<T>) -> PCollection<T> {
        input.map("PairWithUnit", |x| (x, ())).combine_per_key("Dedup", combine::Count::new()).apply("Keys", Keys)
    }
}
