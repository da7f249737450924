//! Grouping per key and window: buffering or folding, triggers, panes, lateness, expiry and
//! merging windows.
//!
//! [`GroupAlsoByWindow`] is generic over the key, the value and a [`Reducer`] that says what a
//! pane holds: all values (GroupByKey) or an accumulator (Combine). Runners drive it through
//! [`KeyedOperator`]: elements in, watermark and processing time forward, panes out.

use crate::metric_names::{DROPPED_DUE_TO_CLOSED_WINDOW, DROPPED_DUE_TO_LATENESS};
use crate::trigger::{self, TriggerState, TriggerTime};
use crate::typed::downcast;
use crate::{Data, Key};
use ahash::AHashMap;
use runnel_model::exec::{Batch, KeyedContext, KeyedOperator, UserError, WindowAssigner};
use runnel_model::{
    AccumulationMode, ClosingBehavior, OnTimeBehavior, PaneInfo, PaneTiming, Timestamp, TimestampCombiner, Window,
    WindowFnSpec, WindowedValue, WindowingStrategy,
};
use std::collections::BTreeMap;
use std::sync::Arc;

/// What a pane of one key and window holds, and how it becomes output.
pub trait Reducer<K, V>: Send + 'static {
    /// Per key-and-window state.
    type State: Send + 'static;
    /// The value emitted per pane.
    type Output: Data;
    /// Fresh state.
    fn create(&self, key: &K) -> Result<Self::State, UserError>;
    /// Folds one value in.
    fn add(&self, key: &K, state: &mut Self::State, value: V) -> Result<(), UserError>;
    /// Removes one earlier input from the state: the input arrived marked as a retraction (its
    /// upstream grouping refined a pane in retracting mode). By default the reducer cannot, and the
    /// job fails naming the key: the SDK only builds such reducers where no retraction can arrive.
    fn retract(&self, key: &K, state: &mut Self::State, value: V) -> Result<(), UserError> {
        let _ = (key, state, value);
        Err("this grouping cannot apply a retraction".into())
    }
    /// Folds another state in (merging windows).
    fn merge(&self, key: &K, state: &mut Self::State, other: Self::State) -> Result<(), UserError>;
    /// The output of a pane, keeping the state (accumulating modes).
    fn extract(&self, key: &K, state: &Self::State) -> Result<Self::Output, UserError>;
    /// The output of a pane, consuming the state (discarding mode).
    fn extract_owned(&self, key: &K, state: Self::State) -> Result<Self::Output, UserError>;
}

/// GroupByKey's reducer: a pane holds every value. A retraction removes one equal value (equal
/// by encoding, as keys are compared); one that finds none is kept until the value arrives, so
/// the group is right whatever the order within a bundle.
pub struct BufferValues;

/// The state of [`BufferValues`]: the values, and retractions still waiting for theirs.
pub struct Group<V> {
    values: Vec<V>,
    unmatched: Vec<Vec<u8>>,
}

impl<V: Data> Group<V> {
    /// Removes one value encoded as `bytes`, or remembers the retraction until it arrives.
    fn remove_one(&mut self, bytes: Vec<u8>) {
        // The latest equal value: the one a refinement most likely replaces.
        match self.values.iter().rposition(|v| encoding(v) == bytes) {
            Some(i) => {
                self.values.remove(i);
            }
            None => self.unmatched.push(bytes),
        }
    }
}

/// The bytes values are compared by when a retraction looks for its value.
fn encoding<V: Data>(value: &V) -> Vec<u8> {
    bincode::serialize(value).unwrap_or_default()
}

impl<K: Key, V: Data> Reducer<K, V> for BufferValues {
    type State = Group<V>;
    type Output = Vec<V>;
    fn create(&self, _: &K) -> Result<Group<V>, UserError> {
        Ok(Group { values: Vec::new(), unmatched: Vec::new() })
    }
    fn add(&self, _: &K, state: &mut Group<V>, value: V) -> Result<(), UserError> {
        if !state.unmatched.is_empty() {
            let bytes = encoding(&value);
            if let Some(i) = state.unmatched.iter().position(|u| *u == bytes) {
                state.unmatched.swap_remove(i);
                return Ok(());
            }
        }
        state.values.push(value);
        Ok(())
    }
    fn retract(&self, _: &K, state: &mut Group<V>, value: V) -> Result<(), UserError> {
        state.remove_one(encoding(&value));
        Ok(())
    }
    fn merge(&self, key: &K, state: &mut Group<V>, other: Group<V>) -> Result<(), UserError> {
        if state.unmatched.is_empty() && other.unmatched.is_empty() {
            state.values.extend(other.values);
            return Ok(());
        }
        for value in other.values {
            self.add(key, state, value)?;
        }
        for bytes in other.unmatched {
            state.remove_one(bytes);
        }
        Ok(())
    }
    fn extract(&self, _: &K, state: &Group<V>) -> Result<Vec<V>, UserError> {
        Ok(state.values.clone())
    }
    fn extract_owned(&self, _: &K, state: Group<V>) -> Result<Vec<V>, UserError> {
        Ok(state.values)
    }
}

/// What earlier firings of a key and window left behind.
#[derive(Clone)]
struct PaneHistory<O> {
    /// Panes fired so far, and how many of them were on time or late.
    fired: i64,
    nonspeculative: i64,
    /// Last emitted output with its timestamp and pane, to retract it in retracting mode.
    last_output: Option<(O, Timestamp, PaneInfo)>,
}

/// One key in one window: reducer state, trigger state, watermark holds and pane bookkeeping.
struct KeyWindow<S, O> {
    window: Window,
    /// Reducer state; `None` after a discarding firing until new data arrives.
    state: Option<S>,
    /// The output-time hold of the pane's elements that were on time when they arrived (as Beam's
    /// element hold): their timestamps (or the window's end) combined by the timestamp combiner.
    element_hold: Option<Timestamp>,
    /// The garbage-collection hold (end of window plus allowed lateness), placed for data too late
    /// to hold the output at its own time, after merging, and after a firing with `FIRE_ALWAYS`
    /// closing behaviour (as Beam's extra hold).
    extra_hold: Option<Timestamp>,
    /// Whether data arrived since the last firing.
    has_new: bool,
    /// Marked for a trigger evaluation at the end of the current bundle.
    to_evaluate: bool,
    trigger: TriggerState,
    /// `None` until the first pane is emitted (and again after the window is merged into a new one).
    history: Option<PaneHistory<O>>,
}

impl<S, O> KeyWindow<S, O> {
    fn new(window: Window, trigger: TriggerState) -> Self {
        KeyWindow {
            window,
            state: None,
            element_hold: None,
            extra_hold: None,
            has_new: false,
            to_evaluate: false,
            trigger,
            history: None,
        }
    }

    /// The earliest of the key-window's holds: where it holds the output watermark.
    fn hold(&self) -> Option<Timestamp> {
        match (self.element_hold, self.extra_hold) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

/// Every key-window's hold, counted by timestamp, so the earliest is found without a scan.
#[derive(Default)]
struct Holds(BTreeMap<Timestamp, usize>);

impl Holds {
    /// A key-window's hold changed from `before` to `after`.
    fn replace(&mut self, before: Option<Timestamp>, after: Option<Timestamp>) {
        if before == after {
            return;
        }
        if let Some(b) = before {
            if let Some(n) = self.0.get_mut(&b) {
                *n -= 1;
                if *n == 0 {
                    self.0.remove(&b);
                }
            }
        }
        if let Some(a) = after {
            *self.0.entry(a).or_insert(0) += 1;
        }
    }

    fn earliest(&self) -> Timestamp {
        self.0.keys().next().copied().unwrap_or(Timestamp::MAX)
    }
}

/// The watermarks a firing looks at: the grouping's input watermark, and the output watermark it
/// had reported when the current call began (Beam's `currentOutputWatermarkTime`).
#[derive(Clone, Copy)]
struct Marks {
    input: Timestamp,
    output: Timestamp,
}

/// A key, with its window when the map holds one entry per key and window.
#[derive(Clone, PartialEq, Eq)]
struct MapKey<K>(K, Option<Window>);

impl<K: std::hash::Hash> std::hash::Hash for MapKey<K> {
    // Hashes the window only when there is one: a key alone costs no more to find than in a
    // map keyed by key (the common case of the global window).
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.0.hash(state);
        if let Some(w) = &self.1 {
            w.hash(state);
        }
    }
}

/// The live windows of one map entry: one for non-merging window functions (kept inline, with no
/// allocation), a key's sessions for merging ones.
type KeyWindows<S, O> = smallvec::SmallVec<[KeyWindow<S, O>; 1]>;

/// What firing needs besides the key-window: how to extract output, and the strategy.
struct Config<R> {
    reducer: R,
    strategy: WindowingStrategy,
    /// The code of a merging user window function.
    window_fn: Option<Arc<dyn WindowAssigner>>,
}

/// Output elements are handed to the runner in batches of this many.
const OUTPUT_BATCH: usize = 1024;

/// Groups `(K, V)` per key and window and fires panes as the windowing strategy says: every
/// trigger, accumulation mode, timestamp combiner, allowed lateness, closing and on-time
/// behaviour, and merging (session) windows. The rules are Beam Java's (`ReduceFnRunner`,
/// `WatermarkHold`, `PaneInfoTracker`, `MergingActiveWindowSet`):
///
/// - **Holds and output timestamps.** An element holds the output watermark at its output time
///   (its timestamp under EARLIEST / LATEST, the window's end under END_OF_WINDOW, combined per
///   pane by the combiner) only when that time is not behind the output watermark the grouping
///   has reported and the input watermark has not passed the end of its window. Otherwise it holds
///   at the window's garbage-collection time (end plus allowed lateness) instead. A pane is
///   stamped with the earliest hold it releases, or the end of the window when that is none or
///   the garbage-collection hold.
/// - **Timing.** A pane is LATE once the output watermark has passed the end of the window or an
///   ON_TIME or LATE pane was emitted before; otherwise EARLY while the input watermark has not
///   passed the end of the window; otherwise ON_TIME. An ON_TIME pane is emitted even when empty
///   with `FIRE_ALWAYS` on-time behaviour, which is thus only while it is not late for the output.
/// - **Expiry.** When the input watermark passes the end of a window plus the allowed lateness, a
///   final pane carries what is left (always, with `FIRE_ALWAYS` closing behaviour) and the state
///   is dropped; later data for it is dropped and counted in `dropped_due_to_lateness`.
/// - **Closed windows.** Data for a window whose trigger finished is dropped and counted in
///   `dropped_due_to_closed_window`, merging or not. A closed window takes no part in merging; a
///   new window equal to it is closed too.
/// - **Merging.** Windows that merge combine their reducer, trigger state and element holds; the
///   result gets a garbage-collection hold. A result that equals one of the merged windows keeps
///   that window's pane history; a new one starts fresh (its next pane is the first, index 0).
pub struct GroupAlsoByWindow<K, V, R: Reducer<K, V>> {
    config: Config<R>,
    input_watermark: Timestamp,
    /// The output watermark this grouping has reported: its input watermark held back by its
    /// holds, as of the end of the last call. Monotonic.
    output_watermark: Timestamp,
    processing_time: Timestamp,
    /// Live key-windows. With a non-merging window function the map key is `(key, Some(window))`
    /// and the list holds that one key-window, so finding it is one hash lookup however many
    /// windows a key has open; with a merging one it is `(key, None)` and the list holds the
    /// key's sessions, which merge with each other; in the global window it is `(key, None)`
    /// with the one global key-window.
    keys: AHashMap<MapKey<K>, KeyWindows<R::State, R::Output>>,
    /// The holds of every key-window in `keys`.
    holds: Holds,
    /// Map keys with a key-window marked for evaluation in this bundle.
    touched: Vec<MapKey<K>>,
    out: Vec<WindowedValue<(K, R::Output)>>,
    _v: std::marker::PhantomData<fn(V)>,
}

/// Why a key-window is being looked at.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Occasion {
    /// Data arrived or time moved: fire if the trigger says so.
    Trigger,
    /// The window expires: fire what is left, then drop it.
    Expiry,
}

/// Where a new element's window went among a key's merging windows.
enum Merged {
    /// Into the key-window at this index.
    At(usize),
    /// Into a window whose trigger has finished: the element is dropped.
    Closed,
}

impl<K: Key, V: Data, R: Reducer<K, V>> GroupAlsoByWindow<K, V, R> {
    /// A grouping for `strategy`, or an error naming what is not supported.
    pub fn new(reducer: R, strategy: &WindowingStrategy) -> Result<Self, UserError> {
        Self::with_window_fn(reducer, strategy, None)
    }

    /// A grouping whose merging user window function's code is `window_fn` (built-in window
    /// functions need none).
    pub fn with_window_fn(
        reducer: R,
        strategy: &WindowingStrategy,
        window_fn: Option<Arc<dyn WindowAssigner>>,
    ) -> Result<Self, UserError> {
        if let WindowFnSpec::Custom { name, merging: true, .. } = &strategy.window_fn {
            if window_fn.is_none() {
                return Err(
                    format!("the merging user window function '{name}' has no code bound to this grouping").into()
                );
            }
        }
        Ok(GroupAlsoByWindow {
            config: Config { reducer, strategy: strategy.clone(), window_fn },
            input_watermark: Timestamp::MIN,
            output_watermark: Timestamp::MIN,
            processing_time: Timestamp::MIN,
            keys: AHashMap::new(),
            holds: Holds::default(),
            touched: Vec::new(),
            out: Vec::new(),
            _v: std::marker::PhantomData,
        })
    }

    /// When the window expires: the end of the window plus the allowed lateness (Beam's
    /// garbage-collection time).
    fn expiry(strategy: &WindowingStrategy, w: &Window) -> Timestamp {
        w.max_timestamp().plus(strategy.allowed_lateness_ms)
    }

    /// The garbage-collection hold of `window`, unless the input watermark is already past it.
    fn gc_hold(strategy: &WindowingStrategy, window: &Window, input: Timestamp) -> Option<Timestamp> {
        let gc = Self::expiry(strategy, window).min(Timestamp::MAX.minus(1));
        (gc >= input).then_some(gc)
    }

    /// An element at `timestamp` joined `kw`: hold the output watermark for it (Beam's
    /// `WatermarkHold.addHolds`).
    fn add_holds(
        strategy: &WindowingStrategy,
        kw: &mut KeyWindow<R::State, R::Output>,
        timestamp: Timestamp,
        marks: Marks,
    ) {
        let end = kw.window.max_timestamp();
        let output_time = match strategy.timestamp_combiner {
            TimestampCombiner::EndOfWindow => end,
            TimestampCombiner::Earliest | TimestampCombiner::Latest => timestamp,
        };
        if output_time >= marks.output && end >= marks.input {
            kw.element_hold = Some(match (kw.element_hold, strategy.timestamp_combiner) {
                (None, _) => output_time,
                (Some(h), TimestampCombiner::Latest) => h.max(output_time),
                (Some(h), _) => h.min(output_time),
            });
        } else if let Some(gc) = Self::gc_hold(strategy, &kw.window, marks.input) {
            kw.extra_hold = Some(kw.extra_hold.map_or(gc, |h| h.min(gc)));
        }
    }

    fn time(&self, window: &Window) -> TriggerTime {
        TriggerTime {
            watermark: self.input_watermark,
            processing_time: self.processing_time,
            window_max: window.max_timestamp(),
        }
    }

    fn marks(&self) -> Marks {
        Marks { input: self.input_watermark, output: self.output_watermark }
    }

    /// Ends a call: hands out the panes and moves the output watermark as the runner will see it.
    fn finish_call(&mut self, ctx: &mut KeyedContext<'_>) {
        if !self.out.is_empty() {
            (ctx.output)(Box::new(std::mem::take(&mut self.out)));
        }
        self.output_watermark = self.output_watermark.max(self.input_watermark.min(self.holds.earliest()));
    }

    fn flush(&mut self, ctx: &mut KeyedContext<'_>) {
        if !self.out.is_empty() {
            (ctx.output)(Box::new(std::mem::take(&mut self.out)));
        }
    }

    /// The live windows of the key that merge with the new `window`, and the window they become:
    /// overlapping intervals for sessions, the user function's choice otherwise. Windows whose
    /// trigger finished take no part (Beam removes them from the active window set).
    fn merge_plan(
        config: &Config<R>,
        windows: &KeyWindows<R::State, R::Output>,
        window: Window,
    ) -> (Vec<Window>, Window) {
        let active: Vec<Window> = windows.iter().filter(|kw| !kw.trigger.finished).map(|kw| kw.window).collect();
        if let Some(f) = &config.window_fn {
            let mut all = active.clone();
            if !all.contains(&window) {
                all.push(window);
            }
            // The group's live windows (the new window has no state unless it is one of them).
            let (group, result) = f
                .merge(&all)
                .into_iter()
                .find(|(group, _)| group.contains(&window))
                .unwrap_or_else(|| (vec![window], window));
            return (group.into_iter().filter(|w| active.contains(w)).collect(), result);
        }
        let mut span = window;
        loop {
            let grown = active.iter().fold(span, |acc, w| match (acc.as_interval(), w.as_interval()) {
                (Some(a), Some(b)) if a.intersects(b) => Window::Interval(a.span(b)),
                _ => acc,
            });
            if grown == span {
                break;
            }
            span = grown;
        }
        let group = active
            .into_iter()
            .filter(|w| matches!((span.as_interval(), w.as_interval()), (Some(a), Some(b)) if a.intersects(b)))
            .collect();
        (group, span)
    }

    /// Merges the key's live windows that merge with `window` into one, as Beam's
    /// `ReduceFnRunner` with `MergingActiveWindowSet` does.
    fn merge_into(
        config: &Config<R>,
        key: &K,
        windows: &mut KeyWindows<R::State, R::Output>,
        holds: &mut Holds,
        window: Window,
        marks: Marks,
        out: &mut Vec<WindowedValue<(K, R::Output)>>,
    ) -> Result<Merged, UserError> {
        let (group, result) = Self::merge_plan(config, windows, window);
        // A window whose trigger finished stays closed: a result with its bounds is that window.
        if windows.iter().any(|kw| kw.trigger.finished && kw.window == result) {
            return Ok(Merged::Closed);
        }
        if group.is_empty() {
            windows.push(KeyWindow::new(result, trigger::new_state(&config.strategy.trigger)));
            return Ok(Merged::At(windows.len() - 1));
        }
        if group == [result] {
            // The new window falls into one live window as it is: that window keeps its state,
            // holds and panes (merging a new window into it only renews its garbage-collection
            // hold, as in Beam).
            let i = windows.iter().position(|kw| !kw.trigger.finished && kw.window == result);
            let i = i.expect("the group's window is live");
            if window != result {
                let kw = &mut windows[i];
                let before = kw.hold();
                kw.extra_hold = Self::gc_hold(&config.strategy, &result, marks.input);
                holds.replace(before, kw.hold());
            }
            return Ok(Merged::At(i));
        }
        let (merged, kept): (Vec<_>, Vec<_>) =
            std::mem::take(windows).into_iter().partition(|kw| !kw.trigger.finished && group.contains(&kw.window));
        *windows = kept.into_iter().collect();
        let strategy = &config.strategy;
        let states: Vec<&TriggerState> = merged.iter().map(|kw| &kw.trigger).collect();
        let mut target = KeyWindow::new(result, trigger::merge(&strategy.trigger, &states));
        for kw in merged {
            holds.replace(kw.hold(), None);
            target.has_new |= kw.has_new;
            if let Some(s) = kw.state {
                match &mut target.state {
                    Some(t) => config.reducer.merge(key, t, s)?,
                    None => target.state = Some(s),
                }
            }
            // Element holds merge by the timestamp combiner (END_OF_WINDOW: placed afresh below).
            if let Some(h) = kw.element_hold {
                target.element_hold = Some(match (target.element_hold, strategy.timestamp_combiner) {
                    (None, _) => h,
                    (Some(t), TimestampCombiner::Latest) => t.max(h),
                    (Some(t), _) => t.min(h),
                });
            }
            // Only a result equal to a merged window keeps that window's panes; a new window's
            // first pane is index 0 again. A window merged away retracts its last output at once,
            // in its own window, before anything is emitted for the result (in retracting mode
            // only retracting panes keep a last output).
            if kw.window == result {
                target.history = kw.history;
            } else if let Some((previous, timestamp, pane)) = kw.history.and_then(|h| h.last_output) {
                out.push(WindowedValue {
                    value: (key.clone(), previous),
                    timestamp,
                    window: kw.window,
                    pane: PaneInfo { is_last: true, ..pane },
                    retraction: true,
                });
            }
        }
        if strategy.timestamp_combiner == TimestampCombiner::EndOfWindow {
            let end = result.max_timestamp();
            target.element_hold = (end >= marks.output && end >= marks.input).then_some(end);
        }
        target.extra_hold = Self::gc_hold(strategy, &result, marks.input);
        holds.replace(None, target.hold());
        windows.push(target);
        Ok(Merged::At(windows.len() - 1))
    }

    /// Emits the pane of `key` in `kw` if the behaviours say it should be emitted, and advances
    /// its trigger. Returns whether the key-window is done for good.
    #[allow(clippy::too_many_arguments)]
    fn fire(
        config: &Config<R>,
        key: &K,
        kw: &mut KeyWindow<R::State, R::Output>,
        time: &TriggerTime,
        marks: Marks,
        occasion: Occasion,
        holds: &mut Holds,
        out: &mut Vec<WindowedValue<(K, R::Output)>>,
    ) -> Result<bool, UserError> {
        let (reducer, strategy) = (&config.reducer, &config.strategy);
        if occasion == Occasion::Trigger {
            trigger::on_fire(&strategy.trigger, &mut kw.trigger, time);
        }
        let is_last = occasion == Occasion::Expiry || kw.trigger.finished;
        let window = kw.window;
        let end = window.max_timestamp();
        // The pane's timestamp is the earliest hold it releases, or the end of the window when
        // there is none or only the garbage-collection hold.
        let before = kw.hold();
        let timestamp = before.filter(|t| *t <= end).unwrap_or(end);
        kw.element_hold = None;
        kw.extra_hold = None;
        if !is_last && strategy.closing_behavior == ClosingBehavior::FireAlways {
            // An empty final pane will follow: hold the output for it.
            kw.extra_hold = Self::gc_hold(strategy, &window, marks.input);
        }
        holds.replace(before, kw.hold());
        let history = kw.history.get_or_insert_with(|| PaneHistory { fired: 0, nonspeculative: 0, last_output: None });
        let timing = if end < marks.output || history.nonspeculative > 0 {
            PaneTiming::Late
        } else if marks.input <= end {
            PaneTiming::Early
        } else {
            PaneTiming::OnTime
        };
        let emit = kw.has_new
            || (timing == PaneTiming::OnTime && strategy.on_time_behavior == OnTimeBehavior::FireAlways)
            || (is_last && strategy.closing_behavior == ClosingBehavior::FireAlways);
        if emit {
            let state = match kw.state.take() {
                Some(s) => s,
                None => reducer.create(key)?,
            };
            let output = if strategy.accumulation_mode == AccumulationMode::Discarding {
                reducer.extract_owned(key, state)?
            } else {
                let o = reducer.extract(key, &state)?;
                kw.state = Some(state);
                o
            };
            let pane = PaneInfo {
                is_first: history.fired == 0,
                is_last,
                timing,
                index: history.fired,
                nonspeculative_index: if timing == PaneTiming::Early { -1 } else { history.nonspeculative },
            };
            if strategy.accumulation_mode == AccumulationMode::Retracting {
                // The retraction keeps the retracted value's timestamp, so a downstream WindowInto
                // puts it where it put that value.
                if let Some((previous, at, _)) = history.last_output.take() {
                    out.push(WindowedValue {
                        value: (key.clone(), previous),
                        timestamp: at,
                        window,
                        pane,
                        retraction: true,
                    });
                }
                if !is_last {
                    history.last_output = Some((output.clone(), timestamp, pane));
                }
            }
            out.push(WindowedValue { value: (key.clone(), output), timestamp, window, pane, retraction: false });
            history.fired += 1;
            if timing != PaneTiming::Early {
                history.nonspeculative += 1;
            }
            kw.has_new = false;
        }
        if is_last {
            // A finished trigger closes the window: keep only the marker until expiry.
            kw.state = None;
            kw.has_new = false;
        }
        Ok(occasion == Occasion::Expiry)
    }

    /// Visits every key-window: fires triggers that are due and expires windows. Used when the
    /// watermark or processing time advanced.
    fn sweep(&mut self) -> Result<(), UserError> {
        let strategy = &self.config.strategy;
        let marks = self.marks();
        let processing_time = self.processing_time;
        let mut empty_keys = Vec::new();
        for (map_key, windows) in self.keys.iter_mut() {
            let key = &map_key.0;
            let mut i = 0;
            while i < windows.len() {
                let kw = &mut windows[i];
                let time =
                    TriggerTime { watermark: marks.input, processing_time, window_max: kw.window.max_timestamp() };
                let expired = Self::expiry(strategy, &kw.window) < marks.input;
                let mut done = false;
                if !kw.trigger.finished && trigger::should_fire(&strategy.trigger, &kw.trigger, &time) {
                    // When the window also expires, the trigger's firing and the final pane are one.
                    let occasion = if expired { Occasion::Expiry } else { Occasion::Trigger };
                    done = Self::fire(&self.config, key, kw, &time, marks, occasion, &mut self.holds, &mut self.out)?;
                }
                if expired && !done {
                    if !kw.trigger.finished {
                        Self::fire(
                            &self.config,
                            key,
                            kw,
                            &time,
                            marks,
                            Occasion::Expiry,
                            &mut self.holds,
                            &mut self.out,
                        )?;
                    }
                    done = true;
                }
                if done {
                    self.holds.replace(windows[i].hold(), None);
                    windows.swap_remove(i);
                } else {
                    i += 1;
                }
            }
            if windows.is_empty() {
                empty_keys.push(map_key.clone());
            }
        }
        for k in empty_keys {
            self.keys.remove(&k);
        }
        Ok(())
    }
}

impl<K: Key, V: Data, R: Reducer<K, V>> KeyedOperator for GroupAlsoByWindow<K, V, R> {
    fn process(&mut self, input: Batch, ctx: &mut KeyedContext<'_>) -> Result<(), UserError> {
        self.processing_time = self.processing_time.max(ctx.processing_time);
        let input = downcast::<(K, V)>(input);
        let merging = self.config.strategy.window_fn.is_merging();
        // In the global window every element of a key shares one window: key by key alone.
        let one_window_per_entry = !merging && self.config.strategy.window_fn != WindowFnSpec::Global;
        let marks = self.marks();
        let (mut late, mut closed) = (0i64, 0i64);
        for wv in input {
            if Self::expiry(&self.config.strategy, &wv.window) < self.input_watermark {
                late += 1;
                continue;
            }
            let time = self.time(&wv.window);
            let (key, value) = wv.value;
            let map_key = MapKey(key, if one_window_per_entry { Some(wv.window) } else { None });
            let windows = match self.keys.get_mut(&map_key) {
                Some(w) => w,
                None => self.keys.entry(map_key.clone()).or_default(),
            };
            let key = &map_key.0;
            let index = if merging {
                match Self::merge_into(&self.config, key, windows, &mut self.holds, wv.window, marks, &mut self.out)? {
                    Merged::At(i) => i,
                    Merged::Closed => {
                        closed += 1;
                        continue;
                    }
                }
            } else {
                match windows.iter().position(|kw| kw.window == wv.window) {
                    Some(i) => i,
                    None => {
                        windows.push(KeyWindow::new(wv.window, trigger::new_state(&self.config.strategy.trigger)));
                        windows.len() - 1
                    }
                }
            };
            let kw = &mut windows[index];
            if kw.trigger.finished {
                closed += 1;
                continue;
            }
            let state = match &mut kw.state {
                Some(s) => s,
                slot => slot.insert(self.config.reducer.create(key)?),
            };
            if wv.retraction {
                self.config.reducer.retract(key, state, value)?;
            } else {
                self.config.reducer.add(key, state, value)?;
            }
            kw.has_new = true;
            let before = kw.hold();
            Self::add_holds(&self.config.strategy, kw, wv.timestamp, marks);
            self.holds.replace(before, kw.hold());
            let time = TriggerTime { window_max: kw.window.max_timestamp(), ..time };
            trigger::on_element(&self.config.strategy.trigger, &mut kw.trigger, &time);
            if !kw.to_evaluate && trigger::should_fire(&self.config.strategy.trigger, &kw.trigger, &time) {
                kw.to_evaluate = true;
                self.touched.push(map_key);
            }
        }
        if late > 0 {
            ctx.metrics.inc_counter(DROPPED_DUE_TO_LATENESS, late);
        }
        if closed > 0 {
            ctx.metrics.inc_counter(DROPPED_DUE_TO_CLOSED_WINDOW, closed);
        }
        // As Beam: triggers are evaluated once per bundle, so a pane holds the whole bundle.
        for map_key in std::mem::take(&mut self.touched) {
            let Some(windows) = self.keys.get_mut(&map_key) else { continue };
            let key = &map_key.0;
            for kw in windows.iter_mut().filter(|kw| kw.to_evaluate) {
                kw.to_evaluate = false;
                let time = TriggerTime {
                    watermark: self.input_watermark,
                    processing_time: self.processing_time,
                    window_max: kw.window.max_timestamp(),
                };
                if trigger::should_fire(&self.config.strategy.trigger, &kw.trigger, &time) {
                    Self::fire(&self.config, key, kw, &time, marks, Occasion::Trigger, &mut self.holds, &mut self.out)?;
                }
            }
            if self.out.len() >= OUTPUT_BATCH {
                self.flush(ctx);
            }
        }
        self.finish_call(ctx);
        Ok(())
    }

    fn advance_watermark(&mut self, watermark: Timestamp, ctx: &mut KeyedContext<'_>) -> Result<(), UserError> {
        if watermark <= self.input_watermark {
            return Ok(());
        }
        self.processing_time = self.processing_time.max(ctx.processing_time);
        self.input_watermark = watermark;
        self.sweep()?;
        self.finish_call(ctx);
        Ok(())
    }

    fn advance_processing_time(&mut self, now: Timestamp, ctx: &mut KeyedContext<'_>) -> Result<(), UserError> {
        if now <= self.processing_time {
            return Ok(());
        }
        self.processing_time = now;
        self.sweep()?;
        self.finish_call(ctx);
        Ok(())
    }

    fn watermark_hold(&self) -> Timestamp {
        self.holds.earliest()
    }

    fn next_processing_time_timer(&self) -> Option<Timestamp> {
        let trigger = &self.config.strategy.trigger;
        self.keys.values().flatten().filter_map(|kw| trigger::next_processing_time(trigger, &kw.trigger)).min()
    }
}
