//! Windowing: `WindowInto` with window functions (built-in or user), triggers, accumulation,
//! allowed lateness, timestamp combiners, closing and on-time behaviour.

use crate::pipeline::{single_output, Builder, PCollection, PTransform, PrimitiveSpec};
use runnel_model::exec::{Executable, WindowAssigner};
use runnel_model::{
    urns, AccumulationMode, ClosingBehavior, OnTimeBehavior, TimeTransform, Timestamp, TimestampCombiner, Trigger,
    Window, WindowFnSpec, WindowIntoPayload, WindowingStrategy,
};
use runnel_runner_core::Data;
use std::sync::Arc;

/// Session windows: each element opens `[t, t + gap)`; overlapping sessions of a key merge.
pub struct Sessions;

impl Sessions {
    /// Sessions closed by `gap_ms` of inactivity.
    pub fn with_gap(gap_ms: i64) -> WindowFnSpec {
        WindowFnSpec::Sessions { gap_ms }
    }
}

/// A user window function: assigns each element to interval windows by its timestamp, and may
/// merge windows (as sessions do).
///
/// Register it at its application with [`WindowInto::custom`]: its fields are serialised into
/// the graph under the given name, and runners rebuild it from there.
pub trait WindowFn: Clone + Send + Sync + serde::Serialize + serde::de::DeserializeOwned + 'static {
    /// The windows an element at `timestamp` belongs to.
    fn assign(&self, timestamp: Timestamp) -> Vec<Window>;

    /// Whether windows merge; if so, [`WindowFn::merge`] says how.
    fn is_merging(&self) -> bool {
        false
    }

    /// Given the live windows of one key, the groups that merge, each with the window it
    /// becomes. Windows in no group stay as they are. Called per key whenever a new window
    /// appears; state and trigger state of a group merge with it.
    fn merge(&self, windows: &[Window]) -> Vec<(Vec<Window>, Window)> {
        let _ = windows;
        Vec::new()
    }
}

struct WindowFnAssigner<F>(F);

impl<F: WindowFn> WindowAssigner for WindowFnAssigner<F> {
    fn assign(&self, timestamp: Timestamp, _: &Window) -> Vec<Window> {
        self.0.assign(timestamp)
    }
    fn merge(&self, windows: &[Window]) -> Vec<(Vec<Window>, Window)> {
        self.0.merge(windows)
    }
}

/// Fire when the watermark passes the end of the window (Beam's `AfterWatermark`).
pub struct AfterWatermark;

impl AfterWatermark {
    /// Fires once the watermark passes the end of the window; add early and late firings with
    /// [`TriggerExt::with_early_firings`] and [`TriggerExt::with_late_firings`].
    pub fn past_end_of_window() -> Trigger {
        Trigger::AfterWatermark { early: None, late: None }
    }
}

/// Fire after processing time passes the first element of the pane (Beam's
/// `AfterProcessingTime.pastFirstElementInPane()`); add a delay or alignment with
/// [`TriggerExt::plus_delay_of`] / [`TriggerExt::aligned_to`].
pub struct AfterProcessingTime;

impl AfterProcessingTime {
    /// Fires as soon as processing time reaches the first element's arrival.
    pub fn past_first_element_in_pane() -> Trigger {
        Trigger::AfterProcessingTime { transforms: Vec::new() }
    }
}

/// Fire once at least `n` elements arrived (Beam's `AfterPane.elementCountAtLeast`).
pub struct AfterCount;

impl AfterCount {
    /// The trigger.
    pub fn of(n: u64) -> Trigger {
        Trigger::AfterCount { count: n }
    }
}

/// Composite triggers.
pub struct Triggers;

impl Triggers {
    /// Fire `t` over and over.
    pub fn repeatedly(t: Trigger) -> Trigger {
        Trigger::Repeatedly { trigger: Box::new(t) }
    }
    /// Each trigger in turn.
    pub fn after_each(ts: Vec<Trigger>) -> Trigger {
        Trigger::AfterEach { triggers: ts }
    }
    /// When any of them fires (Beam's `AfterFirst`).
    pub fn after_any(ts: Vec<Trigger>) -> Trigger {
        Trigger::AfterAny { triggers: ts }
    }
    /// When all of them have fired.
    pub fn after_all(ts: Vec<Trigger>) -> Trigger {
        Trigger::AfterAll { triggers: ts }
    }
    /// Never fire before the window expires.
    pub fn never() -> Trigger {
        Trigger::Never
    }
    /// Fire for every element.
    pub fn always() -> Trigger {
        Trigger::Always
    }
    /// Beam's default: repeatedly when the watermark passes the end of the window.
    pub fn default_trigger() -> Trigger {
        Trigger::Default
    }
}

/// Builder methods on triggers.
pub trait TriggerExt {
    /// AfterWatermark: fire repeatedly by `early` before the end of the window.
    fn with_early_firings(self, early: Trigger) -> Trigger;
    /// AfterWatermark: fire repeatedly by `late` after the end of the window.
    fn with_late_firings(self, late: Trigger) -> Trigger;
    /// AfterProcessingTime: wait `ms` more.
    fn plus_delay_of(self, ms: i64) -> Trigger;
    /// AfterProcessingTime: round up to a multiple of `period_ms` (plus `offset_ms`).
    fn aligned_to(self, period_ms: i64, offset_ms: i64) -> Trigger;
    /// Fire as `self`, but stop for good once `until` fires.
    fn or_finally(self, until: Trigger) -> Trigger;
}

impl TriggerExt for Trigger {
    fn with_early_firings(self, e: Trigger) -> Trigger {
        match self {
            Trigger::AfterWatermark { late, .. } => Trigger::AfterWatermark { early: Some(Box::new(e)), late },
            other => other,
        }
    }
    fn with_late_firings(self, l: Trigger) -> Trigger {
        match self {
            Trigger::AfterWatermark { early, .. } => Trigger::AfterWatermark { early, late: Some(Box::new(l)) },
            other => other,
        }
    }
    fn plus_delay_of(self, ms: i64) -> Trigger {
        match self {
            Trigger::AfterProcessingTime { mut transforms } => {
                transforms.push(TimeTransform::Delay { delay_ms: ms });
                Trigger::AfterProcessingTime { transforms }
            }
            other => other,
        }
    }
    fn aligned_to(self, period_ms: i64, offset_ms: i64) -> Trigger {
        match self {
            Trigger::AfterProcessingTime { mut transforms } => {
                transforms.push(TimeTransform::AlignTo { period_ms, offset_ms });
                Trigger::AfterProcessingTime { transforms }
            }
            other => other,
        }
    }
    fn or_finally(self, until: Trigger) -> Trigger {
        Trigger::OrFinally { main: Box::new(self), finally: Box::new(until) }
    }
}

/// Every element in the single global window.
pub struct GlobalWindows;

/// Fixed, non-overlapping windows.
pub struct FixedWindows;

impl FixedWindows {
    /// Windows of `size_ms` milliseconds aligned to the epoch.
    pub fn of(size_ms: i64) -> WindowFnSpec {
        WindowFnSpec::Fixed { size_ms, offset_ms: 0 }
    }

    /// Windows of `size_ms` shifted by `offset_ms`.
    pub fn with_offset(size_ms: i64, offset_ms: i64) -> WindowFnSpec {
        WindowFnSpec::Fixed { size_ms, offset_ms: offset_ms.rem_euclid(size_ms.max(1)) }
    }
}

impl GlobalWindows {
    /// The global window function.
    pub fn of() -> WindowFnSpec {
        WindowFnSpec::Global
    }
}

/// Overlapping windows.
pub struct SlidingWindows;

impl SlidingWindows {
    /// Windows of `size_ms` starting every `period_ms`.
    pub fn of(size_ms: i64, period_ms: i64) -> WindowFnSpec {
        WindowFnSpec::Sliding { size_ms, period_ms, offset_ms: 0 }
    }
}

/// Assigns windows and sets the windowing strategy of the output.
///
/// A trigger set with [`WindowInto::triggering`] must be well formed as Beam Java requires: the
/// sub-triggers of AfterAny and AfterAll, the early and late firings of AfterWatermark and the
/// `finally` of OrFinally must be one-shot triggers (Beam's `OnceTrigger`; see
/// [`runnel_runner_core::trigger::check_one_shot`]). Otherwise construction fails naming the
/// transform and the sub-trigger: wrap the whole trigger in [`Triggers::repeatedly`] instead.
pub struct WindowInto {
    strategy: WindowingStrategy,
    custom: Option<Arc<dyn WindowAssigner>>,
    /// Whether the trigger came from the user (checked) or from another PCollection's strategy.
    check_trigger: bool,
}

impl WindowInto {
    /// Windows by `window_fn` with Beam's defaults (default trigger, discarding, no lateness).
    pub fn new(window_fn: WindowFnSpec) -> Self {
        WindowInto { strategy: WindowingStrategy::with_window_fn(window_fn), custom: None, check_trigger: false }
    }

    /// Windows by a user [`WindowFn`] registered under a stable `name`.
    pub fn custom<F: WindowFn>(name: &str, f: F) -> Self {
        let payload = serde_json::to_value(&f).unwrap_or_else(|e| serde_json::json!({ "error": e.to_string() }));
        let spec = WindowFnSpec::Custom { name: name.to_string(), merging: f.is_merging(), payload };
        WindowInto {
            strategy: WindowingStrategy::with_window_fn(spec),
            custom: Some(Arc::new(WindowFnAssigner(f))),
            check_trigger: false,
        }
    }

    /// Sets a whole windowing strategy at once, typically one taken from another PCollection.
    /// Its trigger is taken as it is (a grouping's continuation trigger may hold sub-triggers that
    /// [`WindowInto::triggering`] would refuse, as Beam's continuations do).
    pub fn from_strategy(strategy: WindowingStrategy) -> Self {
        WindowInto { strategy, custom: None, check_trigger: false }
    }

    /// Beam's `Window.remerge()`: keeps every element's window and the windowing strategy, but
    /// makes a merging window function that a grouping consumed (sessions, say) merge again at
    /// the next grouping. Without it (or another `WindowInto`), grouping the output of a grouping
    /// over merging windows is refused, as in Beam.
    pub fn remerge() -> Remerge {
        Remerge
    }

    /// Sets the trigger. Where Beam requires a one-shot trigger (see [`WindowInto`]) it must be
    /// one, or construction fails.
    pub fn triggering(mut self, trigger: Trigger) -> Self {
        self.strategy.trigger = trigger;
        self.check_trigger = true;
        self
    }

    /// Each pane holds only what arrived since the previous one.
    pub fn discarding_fired_panes(mut self) -> Self {
        self.strategy.accumulation_mode = AccumulationMode::Discarding;
        self
    }

    /// Each pane holds everything so far.
    pub fn accumulating_fired_panes(mut self) -> Self {
        self.strategy.accumulation_mode = AccumulationMode::Accumulating;
        self
    }

    /// Each refinement retracts the previous pane's value first.
    pub fn retracting_fired_panes(mut self) -> Self {
        self.strategy.accumulation_mode = AccumulationMode::Retracting;
        self
    }

    /// Accepts data up to `ms` after the end of a window.
    pub fn with_allowed_lateness(mut self, ms: i64) -> Self {
        self.strategy.allowed_lateness_ms = ms.max(0);
        self
    }

    /// Sets the output timestamp of groupings.
    pub fn with_timestamp_combiner(mut self, c: TimestampCombiner) -> Self {
        self.strategy.timestamp_combiner = c;
        self
    }

    /// Sets whether the final pane is emitted when empty.
    pub fn with_closing_behavior(mut self, c: ClosingBehavior) -> Self {
        self.strategy.closing_behavior = c;
        self
    }

    /// Sets whether the on-time pane is emitted when empty.
    pub fn with_on_time_behavior(mut self, o: OnTimeBehavior) -> Self {
        self.strategy.on_time_behavior = o;
        self
    }
}

impl<T: Data> PTransform<PCollection<T>> for WindowInto {
    type Output = PCollection<T>;
    fn expand(self, input: PCollection<T>) -> PCollection<T> {
        let pipeline = input.pipeline().clone();
        let mut b = pipeline.lock();
        if self.check_trigger {
            if let Err(e) = runnel_runner_core::trigger::check_one_shot(&self.strategy.trigger) {
                let name = b.current_name();
                b.error(format!("transform '{name}': {e}"));
            }
        }
        if runnel_runner_core::trigger::may_finish(&self.strategy.trigger) {
            let name = b.current_name();
            b.trigger_may_finish(&name, &self.strategy.trigger);
        }
        if b.is_retracting(input.id()) && self.strategy.accumulation_mode != AccumulationMode::Retracting {
            let name = b.current_name();
            b.refuse_retractions(
                &name,
                input.id(),
                "the new windowing strategy is not retracting: a later grouping would count every \
                 refinement on top of the value it replaces; window into a retracting strategy \
                 (.retracting_fired_panes()) or render the retractions first (RenderRetractions)",
            );
        }
        let strategy_id = b.intern_strategy(self.strategy.clone());
        if let Some(window_fn) = &self.custom {
            b.bind_window_fn(&strategy_id, window_fn.clone());
        }
        let node = b.pcollection(input.id()).clone();
        drop(b);
        let spec = PrimitiveSpec {
            urn: urns::WINDOW_INTO,
            inputs: vec![("in".into(), input.id().to_string())],
            payload: serde_json::to_value(WindowIntoPayload { windowing_strategy: strategy_id })
                .expect("payload serialises"),
            executable: self.custom.map(|window_fn| Executable::WindowInto { window_fn }),
        };
        single_output(&pipeline, spec, self.strategy, node.is_bounded, Some(node.coder_id))
    }
}

/// See [`WindowInto::remerge`]: a pass-through (a Flatten of one input, so no window is
/// reassigned) whose output has the input's windowing strategy with a consumed window function
/// restored; on any other input it changes nothing.
pub struct Remerge;

impl<T: Data> PTransform<PCollection<T>> for Remerge {
    type Output = PCollection<T>;
    fn expand(self, input: PCollection<T>) -> PCollection<T> {
        remerge(input)
    }
}

fn remerge<T: Data>(input: PCollection<T>) -> PCollection<T> {
    let pipeline = input.pipeline().clone();
    let mut b = pipeline.lock();
    let mut strategy = b.strategy_of(input.id());
    if let WindowFnSpec::Consumed { original, .. } = strategy.window_fn {
        strategy.window_fn = *original;
    }
    if let Some(code) = b.window_fn_of(input.id()) {
        let id = b.intern_strategy(strategy.clone());
        b.bind_window_fn(&id, code);
    }
    let node = b.pcollection(input.id()).clone();
    drop(b);
    let spec = PrimitiveSpec {
        urn: urns::FLATTEN,
        inputs: vec![("0".into(), input.id().to_string())],
        payload: serde_json::Value::Null,
        executable: None,
    };
    single_output(&pipeline, spec, strategy, node.is_bounded, Some(node.coder_id))
}

/// The windowing strategy of a grouping's output (GroupByKey, Combine per key), as Beam's
/// GroupByKey gives it: the continuation of the trigger, so that a grouping downstream fires as
/// this one's panes arrive; and a merging window function marked consumed
/// ([`WindowFnSpec::Consumed`], Beam's `InvalidWindows`), since the output's windows are final.
/// Records a construction error, naming this grouping and the one that consumed it, when the
/// input's window function was already consumed.
pub(crate) fn grouping_output_strategy(b: &mut Builder, input: &str) -> WindowingStrategy {
    let name = b.current_name();
    let mut strategy = b.strategy_of(input);
    if let WindowFnSpec::Consumed { cause, .. } = &strategy.window_fn {
        b.error(format!(
            "transform '{name}': a grouping needs a valid window function, but {cause}; re-window the \
             input first: WindowInto::remerge() to merge its windows again at this grouping, or a new \
             WindowInto"
        ));
    }
    strategy.trigger = runnel_runner_core::trigger::continuation(&strategy.trigger);
    if strategy.window_fn.is_merging() {
        let cause = format!(
            "the merging window function {} has already been consumed by the previous grouping '{name}'",
            strategy.window_fn.urn()
        );
        strategy.window_fn = WindowFnSpec::Consumed { cause, original: Box::new(strategy.window_fn) };
        // Keep the user function's code reachable, for a later remerge.
        if let Some(code) = b.window_fn_of(input) {
            let id = b.intern_strategy(strategy.clone());
            b.bind_window_fn(&id, code);
        }
    }
    strategy
}
