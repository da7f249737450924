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
    /// Folds another state in (merging windows).
    fn merge(&self, key: &K, state: &mut Self::State, other: Self::State) -> Result<(), UserError>;
    /// The output of a pane, keeping the state (accumulating modes).
    fn extract(&self, key: &K, state: &Self::State) -> Result<Self::Output, UserError>;
    /// The output of a pane, consuming the state (discarding mode).
    fn extract_owned(&self, key: &K, state: Self::State) -> Result<Self::Output, UserError>;
}

/// GroupByKey's reducer: a pane holds every value.
pub struct BufferValues;

impl<K: Key, V: Data> Reducer<K, V> for BufferValues {
    type State = Vec<V>;
    type Output = Vec<V>;
    fn create(&self, _: &K) -> Result<Vec<V>, UserError> {
        Ok(Vec::new())
    }
    fn add(&self, _: &K, state: &mut Vec<V>, value: V) -> Result<(), UserError> {
        state.push(value);
        Ok(())
    }
    fn merge(&self, _: &K, state: &mut Vec<V>, other: Vec<V>) -> Result<(), UserError> {
        state.extend(other);
        Ok(())
    }
    fn extract(&self, _: &K, state: &Vec<V>) -> Result<Vec<V>, UserError> {
        Ok(state.clone())
    }
    fn extract_owned(&self, _: &K, state: Vec<V>) -> Result<Vec<V>, UserError> {
        Ok(state)
    }
}

/// What earlier firings of a key and window left behind.
#[derive(Clone)]
struct PaneHistory<O> {
    /// Panes fired so far, and how many of them were on time or late.
    fired: i64,
    nonspeculative: i64,
    /// Last emitted output, to retract it in retracting mode.
    last_output: Option<O>,
}

/// One key in one window: reducer state, trigger state and pane bookkeeping.
struct KeyWindow<S, O> {
    window: Window,
    /// Reducer state; `None` after a discarding firing until new data arrives.
    state: Option<S>,
    /// Earliest and latest input timestamps since the last firing (for the timestamp combiner).
    min_ts: Timestamp,
    max_ts: Timestamp,
    /// Whether data arrived since the last firing.
    has_new: bool,
    /// The window already held data when the watermark passed its end (its first non-early pane
    /// is then ON_TIME; data arriving after that is late).
    at_end_of_window: bool,
    /// Marked for a trigger evaluation at the end of the current bundle.
    to_evaluate: bool,
    trigger: TriggerState,
    /// `None` until the first firing.
    history: Option<PaneHistory<O>>,
}

impl<S, O> KeyWindow<S, O> {
    fn new(window: Window, trigger: TriggerState) -> Self {
        KeyWindow {
            window,
            state: None,
            min_ts: Timestamp::MAX,
            max_ts: Timestamp::MIN,
            has_new: false,
            at_end_of_window: false,
            to_evaluate: false,
            trigger,
            history: None,
        }
    }
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
/// behaviour, and merging (session) windows.
///
/// A pane's timing is EARLY while the watermark has not passed the end of the window, ON_TIME
/// for the first non-early pane of a key-window that held data when the watermark passed the end,
/// and LATE otherwise. When a window expires (watermark past its end plus the allowed lateness),
/// a final pane carries what is left (always, with `FIRE_ALWAYS` closing behaviour), and the
/// state is dropped; later data for it is dropped and counted in `dropped_due_to_lateness`.
/// Data for a window whose trigger finished is dropped and counted in
/// `dropped_due_to_closed_window`.
pub struct GroupAlsoByWindow<K, V, R: Reducer<K, V>> {
    config: Config<R>,
    input_watermark: Timestamp,
    processing_time: Timestamp,
    /// Live key-windows. With a non-merging window function the map key is `(key, Some(window))`
    /// and the list holds that one key-window, so finding it is one hash lookup however many
    /// windows a key has open; with a merging one it is `(key, None)` and the list holds the
    /// key's sessions, which merge with each other; in the global window it is `(key, None)`
    /// with the one global key-window.
    keys: AHashMap<MapKey<K>, KeyWindows<R::State, R::Output>>,
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
            processing_time: Timestamp::MIN,
            keys: AHashMap::new(),
            touched: Vec::new(),
            out: Vec::new(),
            _v: std::marker::PhantomData,
        })
    }

    fn expiry(strategy: &WindowingStrategy, w: &Window) -> Timestamp {
        w.max_timestamp().plus(strategy.allowed_lateness_ms)
    }

    fn time(&self, window: &Window) -> TriggerTime {
        TriggerTime {
            watermark: self.input_watermark,
            processing_time: self.processing_time,
            window_max: window.max_timestamp(),
        }
    }

    fn flush(&mut self, ctx: &mut KeyedContext<'_>) {
        if !self.out.is_empty() {
            (ctx.output)(Box::new(std::mem::take(&mut self.out)));
        }
    }

    /// The windows of the key that merge with the new `window`, and the window they become:
    /// overlapping intervals for sessions, the user function's choice otherwise.
    fn merge_plan(
        config: &Config<R>,
        windows: &KeyWindows<R::State, R::Output>,
        window: Window,
    ) -> (Vec<Window>, Window) {
        let active = windows.iter().filter(|kw| !kw.trigger.finished).map(|kw| kw.window);
        if let Some(f) = &config.window_fn {
            let mut all: Vec<Window> = active.collect();
            if !all.contains(&window) {
                all.push(window);
            }
            return f
                .merge(&all)
                .into_iter()
                .find(|(group, _)| group.contains(&window))
                .unwrap_or_else(|| (vec![window], window));
        }
        let active: Vec<Window> = active.collect();
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

    /// Merges the key's windows that merge with `window` into one; returns its index.
    fn merge_into(
        config: &Config<R>,
        key: &K,
        windows: &mut KeyWindows<R::State, R::Output>,
        window: Window,
    ) -> Result<usize, UserError> {
        let (group, span) = Self::merge_plan(config, windows, window);
        let (merged, kept): (Vec<_>, Vec<_>) =
            std::mem::take(windows).into_iter().partition(|kw| !kw.trigger.finished && group.contains(&kw.window));
        *windows = kept.into_iter().collect();
        let trigger = &config.strategy.trigger;
        let states: Vec<&TriggerState> = merged.iter().map(|kw| &kw.trigger).collect();
        let mut target = KeyWindow::new(
            span,
            if states.is_empty() { trigger::new_state(trigger) } else { trigger::merge(trigger, &states) },
        );
        for kw in merged {
            target.min_ts = target.min_ts.min(kw.min_ts);
            target.max_ts = target.max_ts.max(kw.max_ts);
            target.has_new |= kw.has_new;
            target.at_end_of_window |= kw.at_end_of_window;
            if let Some(s) = kw.state {
                match &mut target.state {
                    Some(t) => config.reducer.merge(key, t, s)?,
                    None => target.state = Some(s),
                }
            }
            if let Some(h) = kw.history {
                let t = target.history.get_or_insert_with(|| PaneHistory {
                    fired: 0,
                    nonspeculative: 0,
                    last_output: None,
                });
                t.fired = t.fired.max(h.fired);
                t.nonspeculative = t.nonspeculative.max(h.nonspeculative);
                if t.last_output.is_none() {
                    t.last_output = h.last_output;
                }
            }
        }
        windows.push(target);
        Ok(windows.len() - 1)
    }

    /// Emits the pane of `key` in `kw` if the behaviours say it should be emitted, and advances
    /// its trigger. Returns whether the key-window is done for good.
    fn fire(
        config: &Config<R>,
        key: &K,
        kw: &mut KeyWindow<R::State, R::Output>,
        time: &TriggerTime,
        occasion: Occasion,
        out: &mut Vec<WindowedValue<(K, R::Output)>>,
    ) -> Result<bool, UserError> {
        let (reducer, strategy) = (&config.reducer, &config.strategy);
        if occasion == Occasion::Trigger {
            trigger::on_fire(&strategy.trigger, &mut kw.trigger, time);
        }
        let is_last = occasion == Occasion::Expiry || kw.trigger.finished;
        let window = kw.window;
        let history = kw.history.get_or_insert_with(|| PaneHistory { fired: 0, nonspeculative: 0, last_output: None });
        let timing = if !time.past_end_of_window_for(&window) {
            PaneTiming::Early
        } else if history.nonspeculative == 0 && kw.at_end_of_window {
            PaneTiming::OnTime
        } else {
            PaneTiming::Late
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
            let timestamp = match strategy.timestamp_combiner {
                _ if !kw.has_new => window.max_timestamp(),
                TimestampCombiner::EndOfWindow => window.max_timestamp(),
                TimestampCombiner::Earliest => kw.min_ts,
                TimestampCombiner::Latest => kw.max_ts,
            };
            let pane = PaneInfo {
                is_first: history.fired == 0,
                is_last,
                timing,
                index: history.fired,
                nonspeculative_index: if timing == PaneTiming::Early { -1 } else { history.nonspeculative },
            };
            if strategy.accumulation_mode == AccumulationMode::Retracting {
                if let Some(previous) = history.last_output.take() {
                    out.push(WindowedValue {
                        value: (key.clone(), previous),
                        timestamp,
                        window,
                        pane,
                        retraction: true,
                    });
                }
                if !is_last {
                    history.last_output = Some(output.clone());
                }
            }
            out.push(WindowedValue { value: (key.clone(), output), timestamp, window, pane, retraction: false });
            history.fired += 1;
            if timing != PaneTiming::Early {
                history.nonspeculative += 1;
            }
            kw.has_new = false;
            kw.min_ts = Timestamp::MAX;
            kw.max_ts = Timestamp::MIN;
        }
        if is_last {
            // A finished trigger closes the window: keep only the marker until expiry.
            kw.state = None;
            kw.has_new = false;
        }
        Ok(occasion == Occasion::Expiry)
    }

    /// Visits every key-window: marks end-of-window crossings, fires triggers that are due and
    /// expires windows. Used when the watermark or processing time advanced.
    fn sweep(&mut self, previous_watermark: Timestamp) -> Result<(), UserError> {
        let strategy = &self.config.strategy;
        let watermark = self.input_watermark;
        let processing_time = self.processing_time;
        let mut empty_keys = Vec::new();
        for (map_key, windows) in self.keys.iter_mut() {
            let key = &map_key.0;
            let mut i = 0;
            while i < windows.len() {
                let kw = &mut windows[i];
                let time = TriggerTime { watermark, processing_time, window_max: kw.window.max_timestamp() };
                let max = kw.window.max_timestamp();
                if max < watermark && max >= previous_watermark && (kw.state.is_some() || kw.history.is_some()) {
                    kw.at_end_of_window = true;
                }
                let expired = Self::expiry(strategy, &kw.window) < watermark;
                let mut done = false;
                if !kw.trigger.finished && trigger::should_fire(&strategy.trigger, &kw.trigger, &time) {
                    if expired {
                        // The trigger's firing and the final pane are one pane.
                        done = Self::fire(&self.config, key, kw, &time, Occasion::Expiry, &mut self.out)?;
                    } else {
                        Self::fire(&self.config, key, kw, &time, Occasion::Trigger, &mut self.out)?;
                    }
                }
                if expired && !done {
                    if !kw.trigger.finished {
                        Self::fire(&self.config, key, kw, &time, Occasion::Expiry, &mut self.out)?;
                    }
                    done = true;
                }
                if done {
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

impl TriggerTime {
    fn past_end_of_window_for(&self, window: &Window) -> bool {
        self.watermark > window.max_timestamp()
    }
}

impl<K: Key, V: Data, R: Reducer<K, V>> KeyedOperator for GroupAlsoByWindow<K, V, R> {
    fn process(&mut self, input: Batch, ctx: &mut KeyedContext<'_>) -> Result<(), UserError> {
        self.processing_time = self.processing_time.max(ctx.processing_time);
        let input = downcast::<(K, V)>(input);
        let merging = self.config.strategy.window_fn.is_merging();
        // In the global window every element of a key shares one window: key by key alone.
        let one_window_per_entry = !merging && self.config.strategy.window_fn != WindowFnSpec::Global;
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
                Self::merge_into(&self.config, key, windows, wv.window)?
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
            self.config.reducer.add(key, state, value)?;
            kw.has_new = true;
            kw.min_ts = kw.min_ts.min(wv.timestamp);
            kw.max_ts = kw.max_ts.max(wv.timestamp);
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
                    Self::fire(&self.config, key, kw, &time, Occasion::Trigger, &mut self.out)?;
                }
            }
            if self.out.len() >= OUTPUT_BATCH {
                self.flush(ctx);
            }
        }
        self.flush(ctx);
        Ok(())
    }

    fn advance_watermark(&mut self, watermark: Timestamp, ctx: &mut KeyedContext<'_>) -> Result<(), UserError> {
        if watermark <= self.input_watermark {
            return Ok(());
        }
        self.processing_time = self.processing_time.max(ctx.processing_time);
        let previous = std::mem::replace(&mut self.input_watermark, watermark);
        self.sweep(previous)?;
        self.flush(ctx);
        Ok(())
    }

    fn advance_processing_time(&mut self, now: Timestamp, ctx: &mut KeyedContext<'_>) -> Result<(), UserError> {
        if now <= self.processing_time {
            return Ok(());
        }
        self.processing_time = now;
        let watermark = self.input_watermark;
        // Nothing crosses the end of a window here: pass the current watermark as the previous one.
        self.sweep(watermark)?;
        self.flush(ctx);
        Ok(())
    }

    fn watermark_hold(&self) -> Timestamp {
        let mut hold = Timestamp::MAX;
        for windows in self.keys.values() {
            for kw in windows.iter().filter(|kw| kw.has_new) {
                let t = match self.config.strategy.timestamp_combiner {
                    TimestampCombiner::EndOfWindow => kw.window.max_timestamp(),
                    _ => kw.min_ts,
                };
                hold = hold.min(t);
            }
        }
        hold
    }

    fn next_processing_time_timer(&self) -> Option<Timestamp> {
        let trigger = &self.config.strategy.trigger;
        self.keys.values().flatten().filter_map(|kw| trigger::next_processing_time(trigger, &kw.trigger)).min()
    }
}
