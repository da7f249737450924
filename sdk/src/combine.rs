//! `CombineFn` and the Combine transforms (per key, globally, grouped values), with built-ins.

use crate::dofn::{DoFnContext, ParDo};
use crate::pipeline::{single_output, PCollection, PTransform, PrimitiveSpec};
use crate::side_input::View;
use crate::transforms::{Create, Flatten, Values};
use crate::window::WindowInto;
use runnel_model::exec::{Executable, UserError};
use runnel_model::Timestamp;
use runnel_model::{urns, CombinePayload, FnRef, WindowFnSpec};
use runnel_runner_core::group::{GroupAlsoByWindow, Reducer};
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
    /// The result.
    fn extract_output(&self, acc: Self::Acc) -> Self::Out;
    /// For built-ins: the name and parameters shown in the graph.
    fn builtin(&self) -> Option<(&'static str, serde_json::Value)> {
        None
    }
}

/// Runs a [`CombineFn`] as the reducer of the shared grouping machinery.
pub struct CombineReducer<F>(pub F);

impl<K: Key, F: CombineFn> Reducer<K, F::In> for CombineReducer<F> {
    type State = F::Acc;
    type Output = F::Out;
    fn create(&self, _: &K) -> Result<F::Acc, UserError> {
        Ok(self.0.create_accumulator())
    }
    fn add(&self, _: &K, state: &mut F::Acc, value: F::In) -> Result<(), UserError> {
        self.0.add_input(state, value);
        Ok(())
    }
    fn merge(&self, _: &K, state: &mut F::Acc, other: F::Acc) -> Result<(), UserError> {
        self.0.merge_accumulators(state, other);
        Ok(())
    }
    fn extract(&self, _: &K, state: &F::Acc) -> Result<F::Out, UserError> {
        Ok(self.0.extract_output(state.clone()))
    }
    fn extract_owned(&self, _: &K, state: F::Acc) -> Result<F::Out, UserError> {
        Ok(self.0.extract_output(state))
    }
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
        drop(b);
        let f = self.f;
        let (combine_fn, instantiate): (FnRef, runnel_model::exec::CombineFactory) =
            match (self.registered, f.builtin()) {
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
                    (FnRef::Registered { value: serde_json::json!({ "type": fn_name, "value": value }) }, {
                        let window_fn = window_fn.clone();
                        Arc::new(move |payload, ws| {
                            let reducer = CombineReducer(rebuild(payload)?);
                            Ok(Box::new(GroupAlsoByWindow::<K, F::In, _>::with_window_fn(
                                reducer,
                                ws,
                                window_fn.clone(),
                            )?))
                        })
                    })
                }
                (None, builtin) => (
                    match builtin {
                        Some((name, params)) => FnRef::Builtin { name: name.to_string(), params },
                        None => FnRef::Closure { transform: name },
                    },
                    Arc::new(move |_, ws| {
                        let reducer = CombineReducer(f.clone());
                        Ok(Box::new(GroupAlsoByWindow::<K, F::In, _>::with_window_fn(reducer, ws, window_fn.clone())?))
                    }),
                ),
            };
        let payload = CombinePayload { combine_fn, accumulator_coder };
        let spec = PrimitiveSpec {
            urn: urns::COMBINE_PER_KEY,
            inputs: vec![("in".into(), input.id().to_string())],
            payload: serde_json::to_value(payload).expect("payload serialises"),
            executable: Some(Executable::Combine { instantiate }),
        };
        let out: PCollection<(K, F::Out)> = single_output(&pipeline, spec, strategy, bounded, Some(out_coder));
        pipeline.lock().make_keyed_output::<K, F::Out>(out.id());
        out
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

impl<K: Key, F: CombineFn> PTransform<PCollection<(K, Vec<F::In>)>> for CombineGroupedValues<K, F> {
    type Output = PCollection<(K, F::Out)>;
    fn expand(self, input: PCollection<(K, Vec<F::In>)>) -> PCollection<(K, F::Out)> {
        let f = self.f;
        crate::transforms::Map::new(move |(k, vs): (K, Vec<F::In>)| {
            let mut acc = f.create_accumulator();
            for v in vs {
                f.add_input(&mut acc, v);
            }
            (k, f.extract_output(acc))
        })
        .expand(input)
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
impl<T: Data + Default + std::ops::AddAssign> CombineFn for Sum<T> {
    type In = T;
    type Acc = T;
    type Out = T;
    fn create_accumulator(&self) -> T {
        T::default()
    }
    fn add_input(&self, acc: &mut T, input: T) {
        *acc += input;
    }
    fn merge_accumulators(&self, acc: &mut T, other: T) {
        *acc += other;
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
    fn add_input(&self, acc: &mut u64, _: T) {
        *acc += 1;
    }
    fn merge_accumulators(&self, acc: &mut u64, other: u64) {
        *acc += other;
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
    fn add_input(&self, acc: &mut (f64, u64), input: T) {
        acc.0 += input.into();
        acc.1 += 1;
    }
    fn merge_accumulators(&self, acc: &mut (f64, u64), other: (f64, u64)) {
        acc.0 += other.0;
        acc.1 += other.1;
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
    fn builtin(&self) -> Option<(&'static str, serde_json::Value)> {
        Some(("to_list", serde_json::Value::Null))
    }
}
