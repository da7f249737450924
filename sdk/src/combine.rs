//! `CombineFn` and the Combine transforms (per key, globally, grouped values), with built-ins.

use crate::pipeline::{single_output, PCollection, PTransform, PrimitiveSpec};
use runnel_model::exec::{CombineFactory, CombineHalves, CombinePartFactory, Executable, UserError, WindowAssigner};
use runnel_model::{urns, CombinePayload, FnRef};
use runnel_runner_core::group::{GroupAlsoByWindow, Reducer};
use runnel_runner_core::lift::{
    CombineGroupedValues, ExtractOutputs, MergeAccumulators, MergeGroupedAccumulators, Precombine,
};
use runnel_runner_core::typed::TypedOps;
use runnel_runner_core::{Data, Key};
use serde::{Deserialize, Serialize};
use std::marker::PhantomData;
use std::sync::Arc;

/// An associative, commutative combination of values, in four steps: create an accumulator,
/// add inputs, merge accumulators (from different bundles or workers), extract the output.
pub trait CombineFn: Clone + Send + Sync + 'static {
    /// Input values.
    type In: Data;
    /// Intermediate state (crosses the shuffle when a runner lifts the combine).
    type Acc: Data;
    /// Result.
    type Out: Data;
    /// An empty accumulator.
    fn create_accumulator(&self) -> Self::Acc;
    /// Folds one input in.
    fn add_input(&self, acc: &mut Self::Acc, input: Self::In);
    /// Folds another accumulator in.
    fn merge_accumulators(&self, acc: &mut Self::Acc, other: Self::Acc);
    /// Folds one input in, or fails the job (runners call this one). By default
    /// [`add_input`](Self::add_input), which cannot fail; the built-ins over integers override it
    /// with checked arithmetic, so an overflow fails the job naming the transform and the key
    /// instead of wrapping, in every build profile.
    fn try_add_input(&self, acc: &mut Self::Acc, input: Self::In) -> Result<(), UserError> {
        self.add_input(acc, input);
        Ok(())
    }
    /// Folds another accumulator in, or fails the job (runners call this one). By default
    /// [`merge_accumulators`](Self::merge_accumulators); see [`try_add_input`](Self::try_add_input).
    fn try_merge_accumulators(&self, acc: &mut Self::Acc, other: Self::Acc) -> Result<(), UserError> {
        self.merge_accumulators(acc, other);
        Ok(())
    }
    /// Removes one input added before: the inverse of [`add_input`](Self::add_input), applied
    /// when the combine's input carries a retraction. Implement it together with
    /// [`retraction`](Self::retraction) returning [`Retraction::Inverse`]. By default there is
    /// no inverse and this fails the job (the SDK calls it only for `Inverse` combines).
    fn retract_input(&self, acc: &mut Self::Acc, input: Self::In) -> Result<(), UserError> {
        let _ = (acc, input);
        Err("this CombineFn has no retract_input".into())
    }
    /// How the combine applies retractions when its input carries them (it comes from a
    /// grouping in retracting mode): by [`retract_input`](Self::retract_input), by keeping its
    /// inputs as a multiset, or not at all (construction fails naming the transform). Sum, Count
    /// and Mean have an inverse; Min, Max, Top and ToList keep a multiset; a user CombineFn
    /// refuses unless it says otherwise.
    fn retraction(&self) -> Retraction {
        Retraction::Refuse
    }
    /// The result.
    fn extract_output(&self, acc: Self::Acc) -> Self::Out;
    /// For built-ins: the name and parameters shown in the graph.
    fn builtin(&self) -> Option<(&'static str, serde_json::Value)> {
        None
    }
}

/// How a [`CombineFn`] applies retracted inputs ([`CombineFn::retraction`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Retraction {
    /// [`CombineFn::retract_input`] undoes [`CombineFn::add_input`]: the accumulator takes
    /// retractions itself, at no extra cost.
    Inverse,
    /// No inverse: over retracting input the grouping keeps each key and window's inputs as a
    /// multiset (a retraction removes one equal occurrence) and combines them afresh for every
    /// pane. Correct for any combine, at the memory cost of every input.
    Multiset,
    /// No inverse, and keeping every input is not wanted: a combine over retracting input is
    /// refused at construction, naming the transform.
    Refuse,
}

/// Runs a [`CombineFn`] as the reducer of the shared grouping machinery.
pub struct CombineReducer<F>(pub F);

impl<K: Key, F: CombineFn> Reducer<K, F::In> for CombineReducer<F> {
    type State = F::Acc;
    type Output = F::Out;
    fn create(&self, _: &K) -> Result<F::Acc, UserError> {
        Ok(self.0.create_accumulator())
    }
    fn add(&self, key: &K, state: &mut F::Acc, value: F::In) -> Result<(), UserError> {
        self.0.try_add_input(state, value).map_err(|e| for_key(key, e))
    }
    fn retract(&self, key: &K, state: &mut F::Acc, value: F::In) -> Result<(), UserError> {
        self.0.retract_input(state, value).map_err(|e| for_key(key, e))
    }
    fn merge(&self, key: &K, state: &mut F::Acc, other: F::Acc) -> Result<(), UserError> {
        self.0.try_merge_accumulators(state, other).map_err(|e| for_key(key, e))
    }
    fn extract(&self, _: &K, state: &F::Acc) -> Result<F::Out, UserError> {
        Ok(self.0.extract_output(state.clone()))
    }
    fn extract_owned(&self, _: &K, state: F::Acc) -> Result<F::Out, UserError> {
        Ok(self.0.extract_output(state))
    }
}

/// Runs a [`CombineFn`] without an inverse over retracting input ([`Retraction::Multiset`]): the
/// state is the multiset of inputs (by encoding, with signed counts so that a retraction may
/// arrive before its value), combined afresh for each pane.
pub struct MultisetReducer<F>(pub F);

/// Inputs by encoding, each with the input and how many times it is held.
type Multiset<T> = std::collections::BTreeMap<Vec<u8>, (T, i64)>;

impl<F: CombineFn> MultisetReducer<F> {
    fn count(state: &mut Multiset<F::In>, value: F::In, by: i64) {
        let bytes = bincode::serialize(&value).unwrap_or_default();
        let entry = state.entry(bytes).or_insert((value, 0));
        entry.1 += by;
        if entry.1 == 0 {
            let bytes = bincode::serialize(&entry.0).unwrap_or_default();
            state.remove(&bytes);
        }
    }
}

impl<K: Key, F: CombineFn> Reducer<K, F::In> for MultisetReducer<F> {
    type State = Multiset<F::In>;
    type Output = F::Out;
    fn create(&self, _: &K) -> Result<Self::State, UserError> {
        Ok(Multiset::new())
    }
    fn add(&self, _: &K, state: &mut Self::State, value: F::In) -> Result<(), UserError> {
        Self::count(state, value, 1);
        Ok(())
    }
    fn retract(&self, _: &K, state: &mut Self::State, value: F::In) -> Result<(), UserError> {
        Self::count(state, value, -1);
        Ok(())
    }
    fn merge(&self, _: &K, state: &mut Self::State, other: Self::State) -> Result<(), UserError> {
        for (value, n) in other.into_values() {
            Self::count(state, value, n);
        }
        Ok(())
    }
    fn extract(&self, key: &K, state: &Self::State) -> Result<F::Out, UserError> {
        let mut acc = self.0.create_accumulator();
        // Inputs retracted before they arrived (a negative count) are not there yet.
        for (value, n) in state.values().filter(|(_, n)| *n > 0) {
            for _ in 0..*n {
                self.0.try_add_input(&mut acc, value.clone()).map_err(|e| for_key(key, e))?;
            }
        }
        Ok(self.0.extract_output(acc))
    }
    fn extract_owned(&self, key: &K, state: Self::State) -> Result<F::Out, UserError> {
        self.extract(key, &state)
    }
}

/// A combine's error, naming the key it was combining (the stage executor adds the transform).
#[derive(Debug, thiserror::Error)]
#[error("key {key}: {source}")]
pub struct KeyedCombineError {
    /// The key, as `{:?}` prints it.
    pub key: String,
    /// What went wrong.
    #[source]
    pub source: UserError,
}

fn for_key<K: Key>(key: &K, source: UserError) -> UserError {
    Box::new(KeyedCombineError { key: format!("{key:?}"), source })
}

/// A built-in combine's result does not fit in its type.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{combine} overflowed {type_name}: {left} {operator} {right} does not fit")]
pub struct ArithmeticOverflow {
    /// The combine (`sum`, `count`, `mean`).
    pub combine: &'static str,
    /// `+` for an input or a merge, `-` for a retraction.
    pub operator: &'static str,
    /// The type that overflowed.
    pub type_name: &'static str,
    /// The accumulated value.
    pub left: String,
    /// The value being added.
    pub right: String,
}

/// Values [`Sum`] adds: integers with checked arithmetic (an overflow fails the job, in every
/// build profile), floats with `+` (which saturates to infinity).
pub trait Summable: Data + Default {
    /// `self + other`, or `None` when the sum does not fit in the type.
    fn checked_sum(self, other: Self) -> Option<Self>;
    /// `self - other` (a retraction), or `None` when the difference does not fit in the type.
    fn checked_difference(self, other: Self) -> Option<Self>;
}

macro_rules! summable_integers {
    ($($t:ty),*) => {$(
        impl Summable for $t {
            fn checked_sum(self, other: Self) -> Option<Self> {
                self.checked_add(other)
            }
            fn checked_difference(self, other: Self) -> Option<Self> {
                self.checked_sub(other)
            }
        }
    )*};
}
summable_integers!(i8, i16, i32, i64, i128, isize, u8, u16, u32, u64, u128, usize);

impl Summable for f32 {
    fn checked_sum(self, other: Self) -> Option<Self> {
        Some(self + other)
    }
    fn checked_difference(self, other: Self) -> Option<Self> {
        Some(self - other)
    }
}
impl Summable for f64 {
    fn checked_sum(self, other: Self) -> Option<Self> {
        Some(self + other)
    }
    fn checked_difference(self, other: Self) -> Option<Self> {
        Some(self - other)
    }
}

/// `left + right` for `combine`, or the overflow error naming both.
fn add_checked<T: Summable>(combine: &'static str, left: &mut T, right: T) -> Result<(), ArithmeticOverflow> {
    let sum = left.clone().checked_sum(right.clone());
    store_checked(combine, "+", left, right, sum)
}

/// `left - right` for `combine` (a retraction), or the overflow error naming both.
fn subtract_checked<T: Summable>(combine: &'static str, left: &mut T, right: T) -> Result<(), ArithmeticOverflow> {
    let difference = left.clone().checked_difference(right.clone());
    store_checked(combine, "-", left, right, difference)
}

/// Stores `result` of `left operator right` in `left`, or names both when it did not fit.
fn store_checked<T: Summable>(
    combine: &'static str,
    operator: &'static str,
    left: &mut T,
    right: T,
    result: Option<T>,
) -> Result<(), ArithmeticOverflow> {
    match result {
        Some(value) => {
            *left = value;
            Ok(())
        }
        None => Err(ArithmeticOverflow {
            combine,
            operator,
            type_name: std::any::type_name::<T>(),
            left: format!("{left:?}"),
            right: format!("{right:?}"),
        }),
    }
}

/// Panics with the error of an infallible entry point called directly (runners call the
/// fallible ones, which fail the job instead).
fn or_panic(result: Result<(), ArithmeticOverflow>) {
    if let Err(e) = result {
        panic!("{e}");
    }
}

/// Makes the CombineFn of a combine from its payload (rebuilt from the graph, or cloned).
type MakeCombineFn<F> = Arc<dyn Fn(&CombinePayload) -> Result<F, UserError> + Send + Sync>;

/// The code of a combine per key: the whole grouping (over a multiset of inputs with
/// `multiset`, see [`Retraction::Multiset`]), and its halves for runners that lift it.
fn combine_code<K: Key, F: CombineFn>(
    make_fn: MakeCombineFn<F>,
    window_fn: Option<Arc<dyn WindowAssigner>>,
    multiset: bool,
) -> (CombineFactory, CombineHalves) {
    let whole: CombineFactory = {
        let (make_fn, window_fn) = (make_fn.clone(), window_fn.clone());
        Arc::new(move |payload, ws| {
            let f = make_fn(payload)?;
            let window_fn = window_fn.clone();
            Ok(if multiset {
                Box::new(GroupAlsoByWindow::<K, F::In, _>::with_window_fn(MultisetReducer(f), ws, window_fn)?)
            } else {
                Box::new(GroupAlsoByWindow::<K, F::In, _>::with_window_fn(CombineReducer(f), ws, window_fn)?)
            })
        })
    };
    let merge_grouping: CombineFactory = {
        let make_fn = make_fn.clone();
        Arc::new(move |payload, ws| {
            let reducer = MergeAccumulators::<_, F::In>::new(CombineReducer(make_fn(payload)?));
            Ok(Box::new(GroupAlsoByWindow::<K, F::Acc, _>::with_window_fn(reducer, ws, window_fn.clone())?))
        })
    };
    let precombine: CombinePartFactory = {
        let make_fn = make_fn.clone();
        Arc::new(move |payload| Ok(Box::new(Precombine::<K, F::In, _>::new(CombineReducer(make_fn(payload)?)))))
    };
    let merge_accumulators: CombinePartFactory = {
        let make_fn = make_fn.clone();
        Arc::new(move |payload| {
            Ok(Box::new(MergeGroupedAccumulators::<K, F::In, _>::new(CombineReducer(make_fn(payload)?))))
        })
    };
    let combine_grouped_values: CombinePartFactory = {
        let make_fn = make_fn.clone();
        Arc::new(move |payload| {
            Ok(Box::new(CombineGroupedValues::<K, F::In, _>::new(CombineReducer(make_fn(payload)?))))
        })
    };
    let extract_outputs: CombinePartFactory =
        Arc::new(move |payload| Ok(Box::new(ExtractOutputs::<K, F::In, _>::new(CombineReducer(make_fn(payload)?)))));
    let halves = CombineHalves {
        precombine,
        merge_grouping,
        merge_accumulators,
        combine_grouped_values,
        extract_outputs,
        accumulator_ops: Arc::new(TypedOps::<(K, F::Acc)>::keyed()),
        grouped_accumulator_ops: Arc::new(TypedOps::<(K, Vec<F::Acc>)>::keyed()),
        grouped_input_ops: Arc::new(TypedOps::<(K, Vec<F::In>)>::keyed()),
    };
    (whole, halves)
}

/// Rebuilds a registered CombineFn from its serialised fields.
type Rebuild<F> = Arc<dyn Fn(&serde_json::Value) -> Result<F, String> + Send + Sync>;

/// Combines the values of each key and window: `(K, In)` → `(K, Out)`.
pub struct CombinePerKey<K, F> {
    f: F,
    /// Registered name, serialised fields, and how to rebuild the CombineFn from them.
    registered: Option<(String, serde_json::Value, Rebuild<F>)>,
    _k: PhantomData<fn(K)>,
}

impl<K: Key, F: CombineFn> CombinePerKey<K, F> {
    /// Combines with `f`, kept in the binary (cloned for each instance).
    pub fn new(f: F) -> Self {
        CombinePerKey { f, registered: None, _k: PhantomData }
    }
}

impl<K: Key, F: CombineFn + Serialize + serde::de::DeserializeOwned> CombinePerKey<K, F> {
    /// Combines with `f` registered under a stable `name`: its fields are serialised into the
    /// graph, and runners rebuild it from the payload.
    pub fn registered(name: &str, f: F) -> Self {
        let value = serde_json::to_value(&f).unwrap_or_else(|e| serde_json::json!({ "error": e.to_string() }));
        let rebuild: Rebuild<F> = Arc::new(|v| serde_json::from_value(v.clone()).map_err(|e| e.to_string()));
        CombinePerKey { f, registered: Some((name.to_string(), value, rebuild)), _k: PhantomData }
    }
}

impl<K: Key, F: CombineFn> PTransform<PCollection<(K, F::In)>> for CombinePerKey<K, F> {
    type Output = PCollection<(K, F::Out)>;
    fn expand(self, input: PCollection<(K, F::In)>) -> PCollection<(K, F::Out)> {
        let pipeline = input.pipeline().clone();
        let mut b = pipeline.lock();
        b.make_keyed::<K, F::In>(input.id());
        // The output carries the continuation of the trigger and a consumed merging window
        // function, as in Beam (see `grouping_output_strategy`).
        let strategy = crate::window::grouping_output_strategy(&mut b, input.id());
        let bounded = b.pcollection(input.id()).is_bounded;
        let out_coder = b.kv_coder::<K, F::Out>();
        let accumulator_coder = b.serde_coder::<F::Acc>();
        let name = b.current_name();
        let window_fn = b.window_fn_of(input.id());
        let f = self.f;
        // Over retracting input the combine applies retractions by its rule (and is never lifted).
        let retracting_input = b.is_retracting(input.id());
        if retracting_input && f.retraction() == Retraction::Refuse {
            b.refuse_retractions(
                &name,
                input.id(),
                "its CombineFn has no inverse: implement CombineFn::retract_input (with retraction() \
                 returning Retraction::Inverse), or return Retraction::Multiset to keep every input",
            );
        }
        let multiset = retracting_input && f.retraction() == Retraction::Multiset;
        drop(b);
        let (combine_fn, make_fn): (FnRef, MakeCombineFn<F>) = match (self.registered, f.builtin()) {
            (Some((fn_name, value, from_json)), _) => {
                // Serde, not typetag, suffices: the binding is monomorphic in F and only needs F's
                // fields back from the payload.
                let rebuild = move |payload: &CombinePayload| -> Result<F, UserError> {
                    let FnRef::Registered { value } = &payload.combine_fn else {
                        return Err("payload does not hold a registered CombineFn".into());
                    };
                    from_json(&value["value"])
                        .map_err(|e| format!("cannot rebuild the registered CombineFn from the graph: {e}").into())
                };
                (FnRef::Registered { value: serde_json::json!({ "type": fn_name, "value": value }) }, Arc::new(rebuild))
            }
            (None, builtin) => (
                match builtin {
                    Some((name, params)) => FnRef::Builtin { name: name.to_string(), params },
                    None => FnRef::Closure { transform: name },
                },
                Arc::new(move |_: &CombinePayload| Ok(f.clone())),
            ),
        };
        let (instantiate, halves) = combine_code::<K, F>(make_fn, window_fn, multiset);
        let payload = CombinePayload { combine_fn, accumulator_coder, retracting_input };
        let spec = PrimitiveSpec {
            urn: urns::COMBINE_PER_KEY,
            inputs: vec![("in".into(), input.id().to_string())],
            payload: serde_json::to_value(payload).expect("payload serialises"),
            executable: Some(Executable::Combine { instantiate, halves }),
        };
        let out: PCollection<(K, F::Out)> = single_output(&pipeline, spec, strategy, bounded, Some(out_coder));
        pipeline.lock().make_keyed_output::<K, F::Out>(out.id());
        out
    }
}

/// The sum of the inputs.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Sum<T>(PhantomData<fn(T)>);
impl<T> Sum<T> {
    /// The CombineFn.
    pub fn new() -> Self {
        Sum(PhantomData)
    }
}
impl<T: Summable> CombineFn for Sum<T> {
    type In = T;
    type Acc = T;
    type Out = T;
    fn create_accumulator(&self) -> T {
        T::default()
    }
    /// Adds; panics on overflow (runners call [`CombineFn::try_add_input`] instead).
    fn add_input(&self, acc: &mut T, input: T) {
        or_panic(add_checked("sum", acc, input));
    }
    /// Adds; panics on overflow (runners call [`CombineFn::try_merge_accumulators`] instead).
    fn merge_accumulators(&self, acc: &mut T, other: T) {
        or_panic(add_checked("sum", acc, other));
    }
    fn try_add_input(&self, acc: &mut T, input: T) -> Result<(), UserError> {
        Ok(add_checked("sum", acc, input)?)
    }
    fn try_merge_accumulators(&self, acc: &mut T, other: T) -> Result<(), UserError> {
        Ok(add_checked("sum", acc, other)?)
    }
    fn retract_input(&self, acc: &mut T, input: T) -> Result<(), UserError> {
        Ok(subtract_checked("sum", acc, input)?)
    }
    fn retraction(&self) -> Retraction {
        Retraction::Inverse
    }
    fn extract_output(&self, acc: T) -> T {
        acc
    }
    fn builtin(&self) -> Option<(&'static str, serde_json::Value)> {
        Some(("sum", serde_json::Value::Null))
    }
}

/// The number of inputs.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Count<T>(PhantomData<fn(T)>);
impl<T> Count<T> {
    /// The CombineFn.
    pub fn new() -> Self {
        Count(PhantomData)
    }
}
impl<T: Data> CombineFn for Count<T> {
    type In = T;
    type Acc = u64;
    type Out = u64;
    fn create_accumulator(&self) -> u64 {
        0
    }
    /// Counts; panics on overflow (runners call [`CombineFn::try_add_input`] instead).
    fn add_input(&self, acc: &mut u64, _: T) {
        or_panic(add_checked("count", acc, 1));
    }
    /// Adds counts; panics on overflow (runners call [`CombineFn::try_merge_accumulators`]).
    fn merge_accumulators(&self, acc: &mut u64, other: u64) {
        or_panic(add_checked("count", acc, other));
    }
    fn try_add_input(&self, acc: &mut u64, _: T) -> Result<(), UserError> {
        Ok(add_checked("count", acc, 1)?)
    }
    fn try_merge_accumulators(&self, acc: &mut u64, other: u64) -> Result<(), UserError> {
        Ok(add_checked("count", acc, other)?)
    }
    fn retract_input(&self, acc: &mut u64, _: T) -> Result<(), UserError> {
        Ok(subtract_checked("count", acc, 1)?)
    }
    fn retraction(&self) -> Retraction {
        Retraction::Inverse
    }
    fn extract_output(&self, acc: u64) -> u64 {
        acc
    }
    fn builtin(&self) -> Option<(&'static str, serde_json::Value)> {
        Some(("count", serde_json::Value::Null))
    }
}

/// The arithmetic mean of the inputs (NaN for none).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Mean<T>(PhantomData<fn(T)>);
impl<T> Mean<T> {
    /// The CombineFn.
    pub fn new() -> Self {
        Mean(PhantomData)
    }
}
impl<T: Data + Into<f64>> CombineFn for Mean<T> {
    type In = T;
    type Acc = (f64, u64);
    type Out = f64;
    fn create_accumulator(&self) -> (f64, u64) {
        (0.0, 0)
    }
    /// Adds; panics if the count overflows (runners call [`CombineFn::try_add_input`]).
    fn add_input(&self, acc: &mut (f64, u64), input: T) {
        or_panic(add_checked("mean", &mut acc.1, 1));
        acc.0 += input.into();
    }
    /// Merges; panics if the count overflows (runners call [`CombineFn::try_merge_accumulators`]).
    fn merge_accumulators(&self, acc: &mut (f64, u64), other: (f64, u64)) {
        or_panic(add_checked("mean", &mut acc.1, other.1));
        acc.0 += other.0;
    }
    fn try_add_input(&self, acc: &mut (f64, u64), input: T) -> Result<(), UserError> {
        add_checked("mean", &mut acc.1, 1)?;
        acc.0 += input.into();
        Ok(())
    }
    fn try_merge_accumulators(&self, acc: &mut (f64, u64), other: (f64, u64)) -> Result<(), UserError> {
        add_checked("mean", &mut acc.1, other.1)?;
        acc.0 += other.0;
        Ok(())
    }
    fn retract_input(&self, acc: &mut (f64, u64), input: T) -> Result<(), UserError> {
        subtract_checked("mean", &mut acc.1, 1)?;
        acc.0 -= input.into();
        Ok(())
    }
    fn retraction(&self) -> Retraction {
        Retraction::Inverse
    }
    fn extract_output(&self, acc: (f64, u64)) -> f64 {
        if acc.1 == 0 {
            f64::NAN
        } else {
            acc.0 / acc.1 as f64
        }
    }
    fn builtin(&self) -> Option<(&'static str, serde_json::Value)> {
        Some(("mean", serde_json::Value::Null))
    }
}

/// The smallest input (`None` for none).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Min<T>(PhantomData<fn(T)>);
impl<T> Min<T> {
    /// The CombineFn.
    pub fn new() -> Self {
        Min(PhantomData)
    }
}
impl<T: Data + Ord> CombineFn for Min<T> {
    type In = T;
    type Acc = Option<T>;
    type Out = Option<T>;
    fn create_accumulator(&self) -> Option<T> {
        None
    }
    fn add_input(&self, acc: &mut Option<T>, input: T) {
        if acc.as_ref().is_none_or(|a| input < *a) {
            *acc = Some(input);
        }
    }
    fn merge_accumulators(&self, acc: &mut Option<T>, other: Option<T>) {
        if let Some(o) = other {
            self.add_input(acc, o);
        }
    }
    fn extract_output(&self, acc: Option<T>) -> Option<T> {
        acc
    }
    /// No inverse: a multiset of inputs over retracting input.
    fn retraction(&self) -> Retraction {
        Retraction::Multiset
    }
    fn builtin(&self) -> Option<(&'static str, serde_json::Value)> {
        Some(("min", serde_json::Value::Null))
    }
}

/// The largest input (`None` for none).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Max<T>(PhantomData<fn(T)>);
impl<T> Max<T> {
    /// The CombineFn.
    pub fn new() -> Self {
        Max(PhantomData)
    }
}
impl<T: Data + Ord> CombineFn for Max<T> {
    type In = T;
    type Acc = Option<T>;
    type Out = Option<T>;
    fn create_accumulator(&self) -> Option<T> {
        None
    }
    fn add_input(&self, acc: &mut Option<T>, input: T) {
        if acc.as_ref().is_none_or(|a| input > *a) {
            *acc = Some(input);
        }
    }
    fn merge_accumulators(&self, acc: &mut Option<T>, other: Option<T>) {
        if let Some(o) = other {
            self.add_input(acc, o);
        }
    }
    fn extract_output(&self, acc: Option<T>) -> Option<T> {
        acc
    }
    /// No inverse: a multiset of inputs over retracting input.
    fn retraction(&self) -> Retraction {
        Retraction::Multiset
    }
    fn builtin(&self) -> Option<(&'static str, serde_json::Value)> {
        Some(("max", serde_json::Value::Null))
    }
}

/// The `n` largest inputs, largest first (or smallest, with [`Top::smallest`]).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Top<T> {
    n: usize,
    largest: bool,
    _t: PhantomData<fn(T)>,
}
impl<T> Top<T> {
    /// The `n` largest, largest first.
    pub fn largest(n: usize) -> Self {
        Top { n, largest: true, _t: PhantomData }
    }
    /// The `n` smallest, smallest first.
    pub fn smallest(n: usize) -> Self {
        Top { n, largest: false, _t: PhantomData }
    }
}
impl<T: Data + Ord> Top<T> {
    fn trim(&self, acc: &mut Vec<T>) {
        if self.largest {
            acc.sort_by(|a, b| b.cmp(a));
        } else {
            acc.sort();
        }
        acc.truncate(self.n);
    }
}
impl<T: Data + Ord> CombineFn for Top<T> {
    type In = T;
    type Acc = Vec<T>;
    type Out = Vec<T>;
    fn create_accumulator(&self) -> Vec<T> {
        Vec::new()
    }
    fn add_input(&self, acc: &mut Vec<T>, input: T) {
        acc.push(input);
        if acc.len() >= 2 * self.n.max(8) {
            self.trim(acc);
        }
    }
    fn merge_accumulators(&self, acc: &mut Vec<T>, other: Vec<T>) {
        acc.extend(other);
        self.trim(acc);
    }
    fn extract_output(&self, mut acc: Vec<T>) -> Vec<T> {
        self.trim(&mut acc);
        acc
    }
    /// No inverse: a multiset of inputs over retracting input.
    fn retraction(&self) -> Retraction {
        Retraction::Multiset
    }
    fn builtin(&self) -> Option<(&'static str, serde_json::Value)> {
        Some(("top", serde_json::json!({ "n": self.n, "largest": self.largest })))
    }
}

/// All inputs as a list (in no particular order).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct ToList<T>(PhantomData<fn(T)>);
impl<T> ToList<T> {
    /// The CombineFn.
    pub fn new() -> Self {
        ToList(PhantomData)
    }
}
impl<T: Data> CombineFn for ToList<T> {
    type In = T;
    type Acc = Vec<T>;
    type Out = Vec<T>;
    fn create_accumulator(&self) -> Vec<T> {
        Vec::new()
    }
    fn add_input(&self, acc: &mut Vec<T>, input: T) {
        acc.push(input);
    }
    fn merge_accumulators(&self, acc: &mut Vec<T>, other: Vec<T>) {
        acc.extend(other);
    }
    fn extract_output(&self, acc: Vec<T>) -> Vec<T> {
        acc
    }
    /// No inverse: a multiset of inputs over retracting input.
    fn retraction(&self) -> Retraction {
        Retraction::Multiset
    }
    fn builtin(&self) -> Option<(&'static str, serde_json::Value)> {
        Some(("to_list", serde_json::Value::Null))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reducer_error<F: CombineFn>(
        f: F,
        key: &str,
        step: impl FnOnce(&CombineReducer<F>, &String) -> Result<(), UserError>,
    ) -> String {
        let reducer = CombineReducer(f);
        match step(&reducer, &key.to_string()) {
            Ok(()) => panic!("expected an overflow"),
            Err(e) => crate::error::one_line(&*e),
        }
    }

    // Overflow is found by `checked_add`, not by the debug build's overflow checks: these hold in
    // release too (`cargo test --release -p runnel combine`).

    #[test]
    fn sum_over_integers_fails_on_overflow_when_adding_and_when_merging_naming_the_key() {
        let added = reducer_error(Sum::<i64>::new(), "alice", |r, k| {
            let mut acc = i64::MAX;
            Reducer::<String, i64>::add(r, k, &mut acc, 1)
        });
        assert_eq!(added, "key \"alice\": sum overflowed i64: 9223372036854775807 + 1 does not fit");
        let merged = reducer_error(Sum::<u8>::new(), "bob", |r, k| {
            let mut acc = 200u8;
            Reducer::<String, u8>::merge(r, k, &mut acc, 100)
        });
        assert_eq!(merged, "key \"bob\": sum overflowed u8: 200 + 100 does not fit");
        let negative = reducer_error(Sum::<i32>::new(), "carol", |r, k| {
            let mut acc = i32::MIN;
            Reducer::<String, i32>::add(r, k, &mut acc, -1)
        });
        assert!(negative.contains("sum overflowed i32: -2147483648 + -1"), "{negative}");
    }

    #[test]
    fn count_and_mean_fail_when_their_counts_overflow() {
        let count = reducer_error(Count::<()>::new(), "k", |r, k| {
            let mut acc = u64::MAX - 1;
            Reducer::<String, ()>::merge(r, k, &mut acc, 2)
        });
        assert!(count.contains("count overflowed u64"), "{count}");
        let mean = reducer_error(Mean::<f64>::new(), "k", |r, k| {
            let mut acc = (1.0, u64::MAX);
            Reducer::<String, f64>::add(r, k, &mut acc, 1.0)
        });
        assert!(mean.contains("mean overflowed u64"), "{mean}");
    }

    #[test]
    fn sums_that_fit_and_float_sums_are_plain_additions() {
        let sum = Sum::<i64>::new();
        let mut acc = sum.create_accumulator();
        sum.try_add_input(&mut acc, i64::MAX - 1).unwrap();
        sum.try_merge_accumulators(&mut acc, 1).unwrap();
        assert_eq!(acc, i64::MAX);
        let floats = Sum::<f64>::new();
        let mut acc = f64::MAX;
        floats.try_add_input(&mut acc, f64::MAX).unwrap();
        assert_eq!(acc, f64::INFINITY, "floats keep IEEE addition");
    }

    #[test]
    #[should_panic(expected = "sum overflowed i64")]
    fn the_infallible_entry_points_panic_rather_than_wrap() {
        let mut acc = i64::MAX;
        Sum::<i64>::new().add_input(&mut acc, 1);
    }

    #[test]
    fn sum_count_and_mean_retract_what_they_added() {
        let sum = Sum::<i64>::new();
        let mut acc = sum.create_accumulator();
        sum.try_add_input(&mut acc, 5).unwrap();
        sum.try_add_input(&mut acc, 7).unwrap();
        sum.retract_input(&mut acc, 5).unwrap();
        assert_eq!((acc, sum.retraction()), (7, Retraction::Inverse));
        let count = Count::<String>::new();
        let mut acc = count.create_accumulator();
        count.try_add_input(&mut acc, "a".into()).unwrap();
        count.retract_input(&mut acc, "a".into()).unwrap();
        assert_eq!(acc, 0);
        let under = count.retract_input(&mut acc, "a".into()).unwrap_err().to_string();
        assert_eq!(under, "count overflowed u64: 0 - 1 does not fit");
        let mean = Mean::<i32>::new();
        let mut acc = mean.create_accumulator();
        for x in [1, 2, 6] {
            mean.try_add_input(&mut acc, x).unwrap();
        }
        mean.retract_input(&mut acc, 1).unwrap();
        assert_eq!(mean.extract_output(acc), 4.0);
    }

    #[test]
    fn combines_without_an_inverse_keep_a_multiset_or_refuse() {
        assert_eq!(Min::<i64>::new().retraction(), Retraction::Multiset);
        assert_eq!(Max::<i64>::new().retraction(), Retraction::Multiset);
        assert_eq!(Top::<i64>::largest(2).retraction(), Retraction::Multiset);
        assert_eq!(ToList::<i64>::new().retraction(), Retraction::Multiset);
        let mut acc = Min::<i64>::new().create_accumulator();
        let no_inverse = CombineFn::retract_input(&Min::<i64>::new(), &mut acc, 1).unwrap_err().to_string();
        assert!(no_inverse.contains("no retract_input"), "{no_inverse}");
    }

    #[test]
    fn a_multiset_combine_forgets_one_occurrence_per_retraction() {
        let (r, k) = (MultisetReducer(Min::<i64>::new()), "k".to_string());
        let mut state = Reducer::<String, i64>::create(&r, &k).unwrap();
        for x in [3, 1, 1, 5] {
            r.add(&k, &mut state, x).unwrap();
        }
        r.retract(&k, &mut state, 1).unwrap();
        assert_eq!(r.extract(&k, &state).unwrap(), Some(1), "one 1 is left");
        r.retract(&k, &mut state, 1).unwrap();
        assert_eq!(r.extract(&k, &state).unwrap(), Some(3));
        // A retraction ahead of its value cancels it when it arrives, also across a merge.
        let mut other = Reducer::<String, i64>::create(&r, &k).unwrap();
        r.retract(&k, &mut other, 0).unwrap();
        r.merge(&k, &mut state, other).unwrap();
        assert_eq!(r.extract(&k, &state).unwrap(), Some(3));
        r.add(&k, &mut state, 0).unwrap();
        assert_eq!(r.extract_owned(&k, state).unwrap(), Some(3));
    }

    #[test]
    fn a_combine_of_retracting_input_is_marked_and_never_lifted() {
        use crate::prelude::*;
        use runnel_runner_core::plan::{plan, OutputKind, PlanOptions};
        let p = Pipeline::new(PipelineOptions::default());
        let events = p.apply("Events", Create::timestamped(vec![(("a".to_string(), 1i64), Timestamp(1))]));
        events
            .apply(
                "Window",
                WindowInto::new(FixedWindows::of(10))
                    .triggering(AfterWatermark::past_end_of_window().with_early_firings(AfterCount::of(1)))
                    .retracting_fired_panes(),
            )
            .combine_per_key("UserSums", Sum::<i64>::new())
            .apply("Rewindow", WindowInto::new(FixedWindows::of(10)).retracting_fired_panes())
            .combine_per_key("Totals", Sum::<i64>::new());
        events.combine_per_key("Plain", Sum::<i64>::new());
        let graph = p.graph();
        let retracting = |name: &str| graph.transforms[name].payload_as::<CombinePayload>().unwrap().retracting_input;
        assert!(retracting("Totals") && !retracting("UserSums") && !retracting("Plain"));
        let plan = plan(&graph, PlanOptions { lift_combines: true }).unwrap();
        let lifted = |name: &str| {
            let stage = plan.stages.iter().find(|s| s.root == name).unwrap();
            plan.stages
                .iter()
                .flat_map(|s| &s.outputs)
                .filter(|o| o.to_stage == stage.id)
                .any(|o| matches!(o.kind, OutputKind::Shuffle { lifted: true, .. }))
        };
        assert!(lifted("Plain"), "a combine allowed to lift is lifted");
        assert!(!lifted("Totals"), "the combine of retracting input is not");
    }
}
