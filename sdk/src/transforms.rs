//! The built-in composite transforms: Map/FlatMap/Filter, Partition, CoGroupByKey,
//! Keys/Values/KvSwap/WithKeys/WithTimestamps, CountPerElement, Distinct, Combine.globally and
//! Combine.grouped_values, RenderRetractions (and, re-exported, the primitives Create, Flatten, Reshuffle, GroupByKey).

use crate::combine::{self, CombineFn, CombinePerKey};
use crate::dofn::{DoFn, DoFnContext, OutputTag, ParDo};
use crate::error::BoxError;
use crate::pipeline::{PCollection, PTransform};
pub use crate::primitives::{Create, Flatten, GroupByKey, Reshuffle};
use crate::side_input::View;
use crate::window::WindowInto;
use runnel_model::{Timestamp, WindowFnSpec, WindowedValue};
use runnel_runner_core::{Data, Key};
use serde::{Deserialize, Serialize};
use std::marker::PhantomData;

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

/// Constructors of the Combine transforms.
pub struct Combine;

impl Combine {
    /// Combines the values of each key: `(K, In)` → `(K, Out)`.
    pub fn per_key<K: Key, F: CombineFn>(f: F) -> CombinePerKey<K, F> {
        CombinePerKey::new(f)
    }

    /// Combines all elements of each window into one. In the global window an empty input still
    /// gives one output (the result of an empty accumulator), as in Beam.
    pub fn globally<F: CombineFn>(f: F) -> CombineGlobally<F> {
        CombineGlobally { f }
    }

    /// Combines the grouped values of each key: `(K, Vec<In>)` → `(K, Out)`.
    pub fn grouped_values<K: Key, F: CombineFn>(f: F) -> CombineGroupedValues<K, F> {
        CombineGroupedValues { f, _k: PhantomData }
    }
}

/// See [`Combine::globally`].
pub struct CombineGlobally<F> {
    f: F,
}

impl<F: CombineFn> PTransform<PCollection<F::In>> for CombineGlobally<F> {
    type Output = PCollection<F::Out>;
    fn expand(self, input: PCollection<F::In>) -> PCollection<F::Out> {
        let strategy = input.windowing_strategy();
        let f = self.f.clone();
        let combined = input
            .map("KeyByUnit", |v| ((), v))
            .apply("CombinePerKey", CombinePerKey::new(self.f))
            .apply("Values", Values);
        if strategy.window_fn != WindowFnSpec::Global {
            return combined;
        }
        // As Beam: when the global window holds nothing, emit the empty accumulator's output.
        // A side input tells whether the combine produced anything.
        let seen = View::as_iterable(&combined);
        let probe = seen.clone();
        let default = input.pipeline().apply("DefaultSeed", Create::of(vec![()])).apply(
            "InsertDefault",
            ParDo::from_fn(move |_: (), ctx: &mut DoFnContext<'_, '_, F::Out>| {
                if ctx.side_input(&probe)?.is_empty() {
                    ctx.emit_at(f.extract_output(f.create_accumulator()), Timestamp::end_of_global_window());
                }
                Ok(())
            })
            .with_side_input(&seen),
        );
        // Flatten needs one windowing: the combine's output carries the trigger's continuation.
        let strategy = combined.windowing_strategy();
        let default = if default.windowing_strategy() == strategy {
            default
        } else {
            default.apply("DefaultWindowing", WindowInto::from_strategy(strategy))
        };
        input.pipeline().clone().apply_to("WithDefault", vec![combined, default], Flatten)
    }
}

/// See [`Combine::grouped_values`].
pub struct CombineGroupedValues<K, F> {
    f: F,
    _k: PhantomData<fn(K)>,
}

/// The DoFn of [`CombineGroupedValues`]: combines each key's values, failing on the combine's
/// errors (an overflow, naming the key).
#[derive(Clone)]
struct CombineValuesFn<K, F> {
    f: F,
    _k: PhantomData<fn(K)>,
}

impl<K: Key, F: CombineFn> DoFn for CombineValuesFn<K, F> {
    type In = (K, Vec<F::In>);
    type Out = (K, F::Out);
    fn process(
        &mut self,
        (k, vs): (K, Vec<F::In>),
        ctx: &mut DoFnContext<'_, '_, (K, F::Out)>,
    ) -> Result<(), BoxError> {
        let mut acc = self.f.create_accumulator();
        for v in vs {
            self.f
                .try_add_input(&mut acc, v)
                .map_err(|source| combine::KeyedCombineError { key: format!("{k:?}"), source })?;
        }
        ctx.emit((k, self.f.extract_output(acc)));
        Ok(())
    }
}

impl<K: Key, F: CombineFn> PTransform<PCollection<(K, Vec<F::In>)>> for CombineGroupedValues<K, F> {
    type Output = PCollection<(K, F::Out)>;
    fn expand(self, input: PCollection<(K, Vec<F::In>)>) -> PCollection<(K, F::Out)> {
        ParDo::of(CombineValuesFn { f: self.f, _k: PhantomData }).expand(input)
    }
}

/// Renders retractions as plain values, for consumers that cannot apply them (a sink that only
/// appends, a WindowInto into a non-retracting strategy): each element becomes
/// `f(value, is_retraction)`, with its timestamp, window and pane, and is never a retraction
/// itself. Downstream, nothing is applied for you any more: the rendering says what a
/// retraction means (a `-` line, a negated value, a delete command).
pub struct RenderRetractions<F>(pub F);

impl<T: Data, U: Data, F: Fn(T, bool) -> U + Send + Sync + Clone + 'static> PTransform<PCollection<T>>
    for RenderRetractions<F>
{
    type Output = PCollection<U>;
    fn expand(self, input: PCollection<T>) -> PCollection<U> {
        let f = self.0;
        let rendered = ParDo::from_fn(move |value: T, ctx: &mut DoFnContext<'_, '_, U>| {
            let (timestamp, window, pane) = (ctx.timestamp(), ctx.window(), ctx.pane());
            let value = f(value, ctx.is_retraction());
            ctx.emit_windowed(WindowedValue { value, timestamp, window, pane, retraction: false });
            Ok(())
        })
        .expand(input);
        rendered.pipeline().lock().mark_plain(rendered.id());
        rendered
    }
}
