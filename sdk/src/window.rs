//! Windowing: `WindowInto` with the built-in window functions.

use crate::pipeline::{single_output, PCollection, PTransform, PrimitiveSpec};
use runnel_model::{
    urns, AccumulationMode, ClosingBehavior, OnTimeBehavior, TimestampCombiner, Trigger, WindowFnSpec,
    WindowIntoPayload, WindowingStrategy,
};
use runnel_runner_core::Data;

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
pub struct WindowInto {
    strategy: WindowingStrategy,
}

impl WindowInto {
    /// Windows by `window_fn` with Beam's defaults (default trigger, discarding, no lateness).
    pub fn new(window_fn: WindowFnSpec) -> Self {
        WindowInto { strategy: WindowingStrategy::with_window_fn(window_fn) }
    }

    /// Sets a whole windowing strategy at once.
    pub fn from_strategy(strategy: WindowingStrategy) -> Self {
        WindowInto { strategy }
    }

    /// Sets the trigger.
    pub fn triggering(mut self, trigger: Trigger) -> Self {
        self.strategy.trigger = trigger;
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
        let strategy_id = b.intern_strategy(self.strategy.clone());
        let node = b.pcollection(input.id()).clone();
        drop(b);
        let spec = PrimitiveSpec {
            urn: urns::WINDOW_INTO,
            inputs: vec![("in".into(), input.id().to_string())],
            payload: serde_json::to_value(WindowIntoPayload { windowing_strategy: strategy_id })
                .expect("payload serialises"),
            executable: None,
        };
        single_output(&pipeline, spec, self.strategy, node.is_bounded, Some(node.coder_id))
    }
}
