//! Combiner lifting: fold a bundle's inputs into accumulators per key and window *before* the
//! shuffle, then merge accumulators after it. Parallel runners use it to shuffle one accumulator
//! per key, window and bundle instead of every element.
//!
//! Lifting is allowed only where it cannot change the panes: no trigger that counts elements
//! (an accumulator would count as one), the END_OF_WINDOW timestamp combiner only (a partial
//! accumulator is stamped with its earliest input time, so LATEST would lose the latest; and under
//! EARLIEST whether each input may hold the output watermark at its own time is decided per input
//! after the shuffle, against the output watermark, as in Beam's `WatermarkHold`), and no merging
//! user window function (its merge needs every window).
//! A combine whose input carries retractions is never lifted (see
//! `runnel_model::CombinePayload::retracting_input`): a partial accumulator would have to hold
//! negative inputs, which accumulators such as a count cannot.
//! One difference remains observable: data dropped as late after the shuffle is counted per
//! accumulator, not per element.

use crate::group::Reducer;
use crate::typed::downcast;
use crate::{Data, Key};
use ahash::AHashMap;
use runnel_model::exec::{Batch, DoFnInstance, ExecContext, UserError};
use runnel_model::{
    PaneInfo, Timestamp, TimestampCombiner, Trigger, Window, WindowFnSpec, WindowedValue, WindowingStrategy,
};
use smallvec::SmallVec;

/// Whether a combine under `strategy` may be lifted.
pub fn allows_lifting(strategy: &WindowingStrategy) -> bool {
    fn counts(t: &Trigger) -> bool {
        match t {
            Trigger::AfterCount { .. } | Trigger::Always => true,
            Trigger::AfterWatermark { early, late } => early.iter().chain(late.iter()).any(|t| counts(t)),
            Trigger::Repeatedly { trigger } => counts(trigger),
            Trigger::AfterEach { triggers } | Trigger::AfterAny { triggers } | Trigger::AfterAll { triggers } => {
                triggers.iter().any(counts)
            }
            Trigger::OrFinally { main, finally } => counts(main) || counts(finally),
            Trigger::Default | Trigger::Never | Trigger::AfterProcessingTime { .. } => false,
        }
    }
    !counts(&strategy.trigger)
        && strategy.timestamp_combiner == TimestampCombiner::EndOfWindow
        && !matches!(strategy.window_fn, WindowFnSpec::Custom { merging: true, .. })
}

/// How many key-window accumulators a precombine holds before it emits them all (so a bundle
/// with many distinct keys does not hold them all).
pub const PRECOMBINE_MAX_ENTRIES: usize = 64 * 1024;

/// A key's accumulators in a precombine: per window, the accumulator and the earliest input time.
type KeyAccumulators<S> = SmallVec<[(Window, S, Timestamp); 1]>;

/// The pre-shuffle half: `(K, V)` → `(K, accumulator)`, one accumulator per key and window for
/// each bundle, stamped with the earliest input timestamp. It emits at the end of the bundle, or
/// as soon as its table holds [`PRECOMBINE_MAX_ENTRIES`].
pub struct Precombine<K, V, R: Reducer<K, V>> {
    reducer: R,
    /// Per key (looked up without cloning it), its windows' accumulators and earliest input time.
    partial: AHashMap<K, KeyAccumulators<R::State>>,
    /// Key-windows in `partial`.
    entries: usize,
    _t: std::marker::PhantomData<fn(K, V)>,
}

impl<K, V, R: Reducer<K, V>> Precombine<K, V, R> {
    /// Folds with `reducer`'s `create` and `add`.
    pub fn new(reducer: R) -> Self {
        Precombine { reducer, partial: AHashMap::new(), entries: 0, _t: std::marker::PhantomData }
    }
}

impl<K: Key, V: Data, R: Reducer<K, V>> Precombine<K, V, R>
where
    R::State: Data,
{
    fn flush(&mut self, ctx: &mut ExecContext<'_>) {
        if self.partial.is_empty() {
            return;
        }
        let mut out: Vec<WindowedValue<(K, R::State)>> = Vec::with_capacity(self.entries);
        let element = |key: K, (window, acc, timestamp): (Window, R::State, Timestamp)| WindowedValue {
            value: (key, acc),
            timestamp,
            window,
            pane: PaneInfo::NO_FIRING,
            retraction: false,
        };
        for (key, mut windows) in self.partial.drain() {
            // The last window of a key takes the key; the others clone it.
            let last = windows.pop();
            for entry in windows {
                out.push(element(key.clone(), entry));
            }
            if let Some(entry) = last {
                out.push(element(key, entry));
            }
        }
        self.entries = 0;
        (ctx.output)(0, Box::new(out));
    }
}

impl<K: Key, V: Data, R: Reducer<K, V>> DoFnInstance for Precombine<K, V, R>
where
    R::State: Data,
{
    fn setup(&mut self) -> Result<(), UserError> {
        Ok(())
    }
    fn start_bundle(&mut self, _: &mut ExecContext<'_>) -> Result<(), UserError> {
        Ok(())
    }
    fn process_batch(&mut self, input: Batch, ctx: &mut ExecContext<'_>) -> Result<(), UserError> {
        for wv in downcast::<(K, V)>(input) {
            if wv.retraction {
                // A partial accumulator cannot carry a retraction across the shuffle; the planner
                // never lifts a combine of retracting input, so this is a planning bug.
                return Err(
                    "a lifted combine received a retraction: combines of retracting input are not lifted".into()
                );
            }
            let (key, value) = wv.value;
            let known = self.partial.get_mut(&key).and_then(|ws| ws.iter_mut().find(|(w, _, _)| *w == wv.window));
            let slot = match known {
                Some(slot) => slot,
                None => {
                    if self.entries >= PRECOMBINE_MAX_ENTRIES {
                        self.flush(ctx);
                    }
                    let state = self.reducer.create(&key)?;
                    self.entries += 1;
                    let windows = self.partial.entry(key.clone()).or_default();
                    windows.push((wv.window, state, wv.timestamp));
                    windows.last_mut().expect("just pushed")
                }
            };
            self.reducer.add(&key, &mut slot.1, value)?;
            slot.2 = slot.2.min(wv.timestamp);
        }
        Ok(())
    }
    fn finish_bundle(&mut self, ctx: &mut ExecContext<'_>) -> Result<(), UserError> {
        self.flush(ctx);
        Ok(())
    }
    fn teardown(&mut self) -> Result<(), UserError> {
        Ok(())
    }
}

/// Beam's `merge_accumulators` step for runners that group themselves: `(K, Vec<Acc>)` →
/// `(K, Acc)`, element-wise.
pub struct MergeGroupedAccumulators<K, V, R> {
    reducer: R,
    _t: std::marker::PhantomData<fn(K, V)>,
}

impl<K, V, R> MergeGroupedAccumulators<K, V, R> {
    /// Merges with `reducer`'s `create` and `merge`.
    pub fn new(reducer: R) -> Self {
        MergeGroupedAccumulators { reducer, _t: std::marker::PhantomData }
    }
}

/// Beam's `combine_grouped_values` (an unlifted combine after a runner's GroupByKey):
/// `(K, Vec<In>)` → `(K, Out)`, element-wise.
pub struct CombineGroupedValues<K, V, R> {
    reducer: R,
    _t: std::marker::PhantomData<fn(K, V)>,
}

impl<K, V, R> CombineGroupedValues<K, V, R> {
    /// Combines with `reducer`'s `create`, `add` and `extract_owned`.
    pub fn new(reducer: R) -> Self {
        CombineGroupedValues { reducer, _t: std::marker::PhantomData }
    }
}

/// Beam's `extract_outputs` step: `(K, Acc)` → `(K, Out)`, element-wise.
pub struct ExtractOutputs<K, V, R> {
    reducer: R,
    _t: std::marker::PhantomData<fn(K, V)>,
}

impl<K, V, R> ExtractOutputs<K, V, R> {
    /// Extracts with `reducer`'s `extract_owned`.
    pub fn new(reducer: R) -> Self {
        ExtractOutputs { reducer, _t: std::marker::PhantomData }
    }
}

/// An element-wise DoFn instance with no bundle or lifecycle work.
macro_rules! element_wise_instance {
    ($ty:ident, $in:ty, $out:ty, |$self_:ident, $key:ident, $value:ident| $body:expr) => {
        impl<K: Key, V: Data, R: Reducer<K, V>> DoFnInstance for $ty<K, V, R>
        where
            R::State: Data,
        {
            fn setup(&mut self) -> Result<(), UserError> {
                Ok(())
            }
            fn start_bundle(&mut self, _: &mut ExecContext<'_>) -> Result<(), UserError> {
                Ok(())
            }
            fn process_batch(&mut self, input: Batch, ctx: &mut ExecContext<'_>) -> Result<(), UserError> {
                let mut out: Vec<WindowedValue<$out>> = Vec::new();
                for wv in downcast::<$in>(input) {
                    let $self_ = &*self;
                    let ($key, $value) = wv.value;
                    let value = $body;
                    out.push(WindowedValue {
                        value: ($key, value),
                        timestamp: wv.timestamp,
                        window: wv.window,
                        pane: wv.pane,
                        retraction: wv.retraction,
                    });
                }
                if !out.is_empty() {
                    (ctx.output)(0, Box::new(out));
                }
                Ok(())
            }
            fn finish_bundle(&mut self, _: &mut ExecContext<'_>) -> Result<(), UserError> {
                Ok(())
            }
            fn teardown(&mut self) -> Result<(), UserError> {
                Ok(())
            }
        }
    };
}

element_wise_instance!(MergeGroupedAccumulators, (K, Vec<R::State>), (K, R::State), |this, key, accumulators| {
    let mut merged = this.reducer.create(&key)?;
    for acc in accumulators {
        this.reducer.merge(&key, &mut merged, acc)?;
    }
    merged
});

element_wise_instance!(CombineGroupedValues, (K, Vec<V>), (K, R::Output), |this, key, values| {
    let mut state = this.reducer.create(&key)?;
    for value in values {
        this.reducer.add(&key, &mut state, value)?;
    }
    this.reducer.extract_owned(&key, state)?
});

element_wise_instance!(ExtractOutputs, (K, R::State), (K, R::Output), |this, key, accumulator| {
    this.reducer.extract_owned(&key, accumulator)?
});

/// The post-shuffle half: a reducer over accumulators, merging each into the state; its output
/// is the combine's. Run it in [`crate::group::GroupAlsoByWindow`] like any reducer.
pub struct MergeAccumulators<R, V> {
    reducer: R,
    _v: std::marker::PhantomData<fn(V)>,
}

impl<R, V> MergeAccumulators<R, V> {
    /// Merges accumulators of `reducer`, whose inputs are `V`.
    pub fn new(reducer: R) -> Self {
        MergeAccumulators { reducer, _v: std::marker::PhantomData }
    }
}

impl<K: Key, V, R: Reducer<K, V>> Reducer<K, R::State> for MergeAccumulators<R, V>
where
    R::State: Data,
    V: 'static,
{
    type State = R::State;
    type Output = R::Output;
    fn create(&self, key: &K) -> Result<R::State, UserError> {
        self.reducer.create(key)
    }
    fn add(&self, key: &K, state: &mut R::State, value: R::State) -> Result<(), UserError> {
        self.reducer.merge(key, state, value)
    }
    fn merge(&self, key: &K, state: &mut R::State, other: R::State) -> Result<(), UserError> {
        self.reducer.merge(key, state, other)
    }
    fn extract(&self, key: &K, state: &R::State) -> Result<R::Output, UserError> {
        self.reducer.extract(key, state)
    }
    fn extract_owned(&self, key: &K, state: R::State) -> Result<R::Output, UserError> {
        self.reducer.extract_owned(key, state)
    }
}
