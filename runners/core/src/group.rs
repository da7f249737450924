//! Grouping per key and window: buffering or folding, firing panes, lateness and expiry.
//!
//! [`GroupAlsoByWindow`] is generic over the key, the value and a [`Reducer`] that says what a
//! pane holds: all values (GroupByKey) or an accumulator (Combine). Runners drive it through
//! [`KeyedOperator`]: elements in, watermark and processing time forward, panes out.

use crate::metric_names::DROPPED_DUE_TO_LATENESS;
use crate::typed::downcast;
use crate::{Data, Key};
use ahash::AHashMap;
use runnel_model::exec::{Batch, KeyedContext, KeyedOperator, UserError};
use runnel_model::{
    AccumulationMode, ClosingBehavior, OnTimeBehavior, PaneInfo, PaneTiming, Timestamp, TimestampCombiner, Trigger,
    Window, WindowedValue, WindowingStrategy,
};
use std::collections::BTreeMap;

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

/// Bookkeeping of one key in one window. Kept small: the hash table of panes is the hot spot
/// of every grouping, so what is only needed after a firing lives behind `history`.
struct Pane<S, O> {
    /// Reducer state; `None` after a discarding firing until new data arrives.
    state: Option<S>,
    /// Earliest and latest input timestamps since the last firing (for the timestamp combiner).
    min_ts: Timestamp,
    max_ts: Timestamp,
    /// Whether data arrived since the last firing.
    has_new: bool,
    /// Panes fired so far; `None` until the first firing.
    history: Option<Box<PaneHistory<O>>>,
}

/// What earlier firings of a key and window left behind.
struct PaneHistory<O> {
    /// Panes fired so far, and how many of them were on time or late.
    fired: i64,
    nonspeculative: i64,
    on_time_fired: bool,
    /// Last emitted output, to retract it in retracting mode.
    last_output: Option<O>,
}

impl<S, O> Pane<S, O> {
    fn new() -> Self {
        Pane { state: None, has_new: false, min_ts: Timestamp::MAX, max_ts: Timestamp::MIN, history: None }
    }
}

/// Why a pane fires.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Firing {
    /// The watermark passed the end of the window.
    EndOfWindow,
    /// Late data arrived after the end of the window (default trigger).
    LateData,
    /// The window expired (watermark past end plus allowed lateness).
    Expiry,
    /// End of window and expiry at once (no allowed lateness, or a jump of the watermark).
    EndOfWindowAndExpiry,
}

/// The panes of one window, by key.
type PanesByKey<K, S, O> = AHashMap<K, Pane<S, O>>;

/// What firing needs besides the pane: how to extract output, and the strategy.
struct Config<R> {
    reducer: R,
    strategy: WindowingStrategy,
}

/// Output elements are handed to the runner in batches of this many.
const OUTPUT_BATCH: usize = 1024;

/// Groups `(K, V)` per key and window and fires panes as the windowing strategy says.
///
/// Supported today: non-merging window functions with the default trigger, every accumulation
/// mode, timestamp combiner, allowed lateness, and closing and on-time behaviour. Other triggers
/// and merging window functions are refused at construction with a clear error.
pub struct GroupAlsoByWindow<K, V, R: Reducer<K, V>> {
    config: Config<R>,
    input_watermark: Timestamp,
    /// Live panes, window first so that firing by watermark visits whole windows.
    windows: BTreeMap<Window, PanesByKey<K, R::State, R::Output>>,
    /// Key-windows that got late data in the current `process` call.
    late_touched: Vec<(Window, K)>,
    out: Vec<WindowedValue<(K, R::Output)>>,
    _v: std::marker::PhantomData<fn(V)>,
}

impl<K: Key, V: Data, R: Reducer<K, V>> GroupAlsoByWindow<K, V, R> {
    /// A grouping for `strategy`, or an error naming what is not supported.
    pub fn new(reducer: R, strategy: &WindowingStrategy) -> Result<Self, UserError> {
        if strategy.trigger != Trigger::Default {
            return Err(format!("trigger {:?} is not supported by this runner core yet", strategy.trigger).into());
        }
        if strategy.window_fn.is_merging() {
            return Err(format!("merging window function '{}' is not supported yet", strategy.window_fn.urn()).into());
        }
        Ok(GroupAlsoByWindow {
            config: Config { reducer, strategy: strategy.clone() },
            input_watermark: Timestamp::MIN,
            windows: BTreeMap::new(),
            late_touched: Vec::new(),
            out: Vec::new(),
            _v: std::marker::PhantomData,
        })
    }

    fn expiry(&self, w: &Window) -> Timestamp {
        w.max_timestamp().plus(self.config.strategy.allowed_lateness_ms)
    }

    fn flush(&mut self, ctx: &mut KeyedContext<'_>) {
        if !self.out.is_empty() {
            (ctx.output)(Box::new(std::mem::take(&mut self.out)));
        }
    }

    /// Emits the pane of `key` in `window` (if the behaviours say it should be emitted).
    fn fire(
        config: &Config<R>,
        window: Window,
        key: &K,
        pane: &mut Pane<R::State, R::Output>,
        firing: Firing,
        input_watermark: Timestamp,
        out: &mut Vec<WindowedValue<(K, R::Output)>>,
    ) -> Result<(), UserError> {
        let (reducer, strategy) = (&config.reducer, &config.strategy);
        let history = pane.history.get_or_insert_with(|| {
            Box::new(PaneHistory { fired: 0, nonspeculative: 0, on_time_fired: false, last_output: None })
        });
        let is_last = matches!(firing, Firing::Expiry | Firing::EndOfWindowAndExpiry);
        let end_of_window = matches!(firing, Firing::EndOfWindow | Firing::EndOfWindowAndExpiry);
        let timing = if input_watermark <= window.max_timestamp() {
            PaneTiming::Early
        } else if end_of_window && !history.on_time_fired {
            PaneTiming::OnTime
        } else {
            PaneTiming::Late
        };
        let emit = pane.has_new
            || (timing == PaneTiming::OnTime && strategy.on_time_behavior == OnTimeBehavior::FireAlways)
            || (is_last && strategy.closing_behavior == ClosingBehavior::FireAlways && history.fired > 0);
        if timing == PaneTiming::OnTime {
            history.on_time_fired = true;
        }
        if !emit {
            return Ok(());
        }
        let state = match pane.state.take() {
            Some(s) => s,
            None => reducer.create(key)?,
        };
        let keep = strategy.accumulation_mode != AccumulationMode::Discarding;
        let output = if keep {
            let o = reducer.extract(key, &state)?;
            pane.state = Some(state);
            o
        } else {
            reducer.extract_owned(key, state)?
        };
        let timestamp = match strategy.timestamp_combiner {
            TimestampCombiner::EndOfWindow => window.max_timestamp(),
            _ if !pane.has_new => window.max_timestamp(),
            TimestampCombiner::Earliest => pane.min_ts,
            TimestampCombiner::Latest => pane.max_ts,
        };
        let info = PaneInfo {
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
                    pane: info,
                    retraction: true,
                });
            }
            history.last_output = Some(output.clone());
        }
        out.push(WindowedValue { value: (key.clone(), output), timestamp, window, pane: info, retraction: false });
        history.fired += 1;
        if timing != PaneTiming::Early {
            history.nonspeculative += 1;
        }
        pane.has_new = false;
        pane.min_ts = Timestamp::MAX;
        pane.max_ts = Timestamp::MIN;
        Ok(())
    }
}

impl<K: Key, V: Data, R: Reducer<K, V>> KeyedOperator for GroupAlsoByWindow<K, V, R> {
    fn process(&mut self, input: Batch, ctx: &mut KeyedContext<'_>) -> Result<(), UserError> {
        let input = downcast::<(K, V)>(input);
        let mut dropped = 0i64;
        for wv in input {
            if self.expiry(&wv.window) < self.input_watermark {
                dropped += 1;
                continue;
            }
            let late = wv.window.max_timestamp() < self.input_watermark;
            let (key, value) = wv.value;
            let panes = self.windows.entry(wv.window).or_default();
            let pane = match panes.get_mut(&key) {
                Some(p) => p,
                None => panes.entry(key.clone()).or_insert_with(Pane::new),
            };
            let state = match &mut pane.state {
                Some(s) => s,
                slot => slot.insert(self.config.reducer.create(&key)?),
            };
            self.config.reducer.add(&key, state, value)?;
            if late && !pane.has_new {
                self.late_touched.push((wv.window, key));
            }
            pane.has_new = true;
            pane.min_ts = pane.min_ts.min(wv.timestamp);
            pane.max_ts = pane.max_ts.max(wv.timestamp);
        }
        if dropped > 0 {
            ctx.metrics.inc_counter(DROPPED_DUE_TO_LATENESS, dropped);
        }
        // The default trigger fires again for late data: one late pane per key-window per bundle.
        for (window, key) in std::mem::take(&mut self.late_touched) {
            if let Some(pane) = self.windows.get_mut(&window).and_then(|p| p.get_mut(&key)) {
                Self::fire(&self.config, window, &key, pane, Firing::LateData, self.input_watermark, &mut self.out)?;
            }
        }
        self.flush(ctx);
        Ok(())
    }

    fn advance_watermark(&mut self, watermark: Timestamp, ctx: &mut KeyedContext<'_>) -> Result<(), UserError> {
        if watermark <= self.input_watermark {
            return Ok(());
        }
        let previous = self.input_watermark;
        self.input_watermark = watermark;
        let due: Vec<Window> = self
            .windows
            .keys()
            .filter(|w| {
                let end_passed = w.max_timestamp() < watermark && w.max_timestamp() >= previous;
                end_passed || self.expiry(w) < watermark
            })
            .copied()
            .collect();
        for window in due {
            let end_now = window.max_timestamp() < watermark && window.max_timestamp() >= previous;
            let expired = self.expiry(&window) < watermark;
            let firings: &[Firing] = match (end_now, expired) {
                (true, true) if self.config.strategy.allowed_lateness_ms == 0 => &[Firing::EndOfWindowAndExpiry],
                (true, true) => &[Firing::EndOfWindow, Firing::Expiry],
                (true, false) => &[Firing::EndOfWindow],
                _ => &[Firing::Expiry],
            };
            let mut panes = if expired {
                self.windows.remove(&window).unwrap_or_default()
            } else {
                std::mem::take(self.windows.get_mut(&window).expect("due window exists"))
            };
            for (key, pane) in panes.iter_mut() {
                for firing in firings {
                    Self::fire(&self.config, window, key, pane, *firing, watermark, &mut self.out)?;
                }
                if self.out.len() >= OUTPUT_BATCH {
                    self.flush(ctx);
                }
            }
            if !expired {
                self.windows.insert(window, panes);
            }
        }
        self.flush(ctx);
        Ok(())
    }

    fn advance_processing_time(&mut self, _now: Timestamp, _ctx: &mut KeyedContext<'_>) -> Result<(), UserError> {
        Ok(())
    }

    fn watermark_hold(&self) -> Timestamp {
        let mut hold = Timestamp::MAX;
        for (window, panes) in &self.windows {
            for pane in panes.values().filter(|p| p.has_new) {
                let t = match self.config.strategy.timestamp_combiner {
                    TimestampCombiner::EndOfWindow => window.max_timestamp(),
                    _ => pane.min_ts,
                };
                hold = hold.min(t);
            }
        }
        hold
    }

    fn next_processing_time_timer(&self) -> Option<Timestamp> {
        None
    }
}
