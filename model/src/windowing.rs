//! Windowing strategies as plain data: window function, trigger, accumulation, lateness.
//!
//! A runner needs no user code to group by window or fire a trigger: everything here is data
//! (a user `WindowFn` is the one exception, named by its registered type).

use crate::urns;
use serde::{Deserialize, Serialize};

/// Which windows an element is assigned to.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "urn")]
pub enum WindowFnSpec {
    /// Every element in the single global window.
    #[serde(rename = "beam:window_fn:global_windows:v1")]
    Global,
    /// Non-overlapping windows of `size_ms`, shifted by `offset_ms`.
    #[serde(rename = "beam:window_fn:fixed_windows:v1")]
    Fixed {
        /// Window length in milliseconds.
        size_ms: i64,
        /// Shift of the window boundaries from the epoch, in milliseconds.
        offset_ms: i64,
    },
    /// Overlapping windows of `size_ms` starting every `period_ms`.
    #[serde(rename = "beam:window_fn:sliding_windows:v1")]
    Sliding {
        /// Window length in milliseconds.
        size_ms: i64,
        /// Distance between window starts in milliseconds.
        period_ms: i64,
        /// Shift of the window boundaries from the epoch, in milliseconds.
        offset_ms: i64,
    },
    /// Merging windows: each element opens `[t, t + gap_ms)`, overlapping ones merge.
    #[serde(rename = "beam:window_fn:session_windows:v1")]
    Sessions {
        /// Inactivity gap in milliseconds.
        gap_ms: i64,
    },
    /// A user window function registered under `name`; `payload` holds its serialised fields.
    #[serde(rename = "runnel:window_fn:custom:v1")]
    Custom {
        /// The registered name of the user type.
        name: String,
        /// Whether the function merges windows.
        merging: bool,
        /// The user type's fields.
        payload: serde_json::Value,
    },
    /// A merging window function already consumed by a grouping (Beam's `InvalidWindows`): the
    /// grouping's output keeps the merged windows, and a later grouping is refused at
    /// construction unless the collection is re-windowed (e.g. `WindowInto::remerge`, which
    /// restores `original` without touching the windows).
    #[serde(rename = "runnel:window_fn:consumed:v1")]
    Consumed {
        /// Why it may not be used, naming the grouping that consumed it.
        cause: String,
        /// The window function that was consumed.
        original: Box<WindowFnSpec>,
    },
}

impl WindowFnSpec {
    /// The URN naming this kind of window function.
    pub fn urn(&self) -> &'static str {
        match self {
            WindowFnSpec::Global => urns::GLOBAL_WINDOWS,
            WindowFnSpec::Fixed { .. } => urns::FIXED_WINDOWS,
            WindowFnSpec::Sliding { .. } => urns::SLIDING_WINDOWS,
            WindowFnSpec::Sessions { .. } => urns::SESSION_WINDOWS,
            WindowFnSpec::Custom { .. } => urns::CUSTOM_WINDOWS,
            WindowFnSpec::Consumed { .. } => urns::CONSUMED_WINDOWS,
        }
    }

    /// Whether windows assigned by this function merge (sessions, merging user functions). A
    /// consumed function merges no more: its windows stay as they are.
    pub fn is_merging(&self) -> bool {
        match self {
            WindowFnSpec::Sessions { .. } => true,
            WindowFnSpec::Custom { merging, .. } => *merging,
            _ => false,
        }
    }
}

/// How a processing-time trigger's target time is derived from the time of the first element.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TimeTransform {
    /// Add a delay.
    Delay {
        /// Milliseconds.
        delay_ms: i64,
    },
    /// Round up to the next multiple of `period_ms` (shifted by `offset_ms`).
    AlignTo {
        /// Alignment period in milliseconds.
        period_ms: i64,
        /// Alignment offset in milliseconds.
        offset_ms: i64,
    },
}

/// When a grouping emits a pane, composable as Beam's triggers.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Trigger {
    /// Repeatedly fire when the watermark passes the end of the window, and for each late element.
    Default,
    /// Fire when the watermark passes the end of the window, with optional early and late firings.
    AfterWatermark {
        /// Fires repeatedly before the end of the window.
        early: Option<Box<Trigger>>,
        /// Fires repeatedly after the end of the window.
        late: Option<Box<Trigger>>,
    },
    /// Fire once processing time reaches the time of the first element, transformed.
    AfterProcessingTime {
        /// Applied in order to the time of the first element of the pane.
        transforms: Vec<TimeTransform>,
    },
    /// Fire once at least `count` elements have arrived.
    AfterCount {
        /// Element count.
        count: u64,
    },
    /// Fire the sub-trigger over and over.
    Repeatedly {
        /// The repeated trigger.
        trigger: Box<Trigger>,
    },
    /// Fire each sub-trigger in turn, finishing after the last.
    AfterEach {
        /// The sequence.
        triggers: Vec<Trigger>,
    },
    /// Fire when any sub-trigger fires; finishes when that one does.
    AfterAny {
        /// The alternatives.
        triggers: Vec<Trigger>,
    },
    /// Fire when all sub-triggers have fired.
    AfterAll {
        /// The conditions.
        triggers: Vec<Trigger>,
    },
    /// Fire as `main` does, but finish for good once `finally` fires.
    OrFinally {
        /// The trigger that fires panes.
        main: Box<Trigger>,
        /// The trigger that ends it.
        finally: Box<Trigger>,
    },
    /// Never fire early: only the final pane at window expiry.
    Never,
    /// Fire for every element.
    Always,
}

/// How successive panes of a window relate.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum AccumulationMode {
    /// Each pane holds only what arrived since the previous firing.
    #[default]
    Discarding,
    /// Each pane holds everything so far.
    Accumulating,
    /// Each refinement first retracts the previous pane's value, then emits the accumulated one.
    Retracting,
}

/// Which timestamp a grouping's output carries.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TimestampCombiner {
    /// The max timestamp of the window.
    #[default]
    EndOfWindow,
    /// The earliest input timestamp of the pane.
    Earliest,
    /// The latest input timestamp of the pane.
    Latest,
}

/// Whether the final pane at window expiry is emitted when it would be empty.
///
/// Beam's default is `FIRE_IF_NON_EMPTY` (`WindowingStrategy.of`), so that is ours too: with the
/// default trigger and allowed lateness, expiry adds no empty pane after the on-time one.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ClosingBehavior {
    /// Always emit the final pane.
    FireAlways,
    /// Emit the final pane only when it holds new data.
    #[default]
    FireIfNonEmpty,
}

/// Whether the on-time pane is emitted when it would be empty.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum OnTimeBehavior {
    /// Always emit the on-time pane.
    #[default]
    FireAlways,
    /// Emit the on-time pane only when it holds new data.
    FireIfNonEmpty,
}

/// The full windowing strategy of a PCollection.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct WindowingStrategy {
    /// Assigns windows.
    pub window_fn: WindowFnSpec,
    /// Decides when panes fire.
    pub trigger: Trigger,
    /// How panes relate.
    pub accumulation_mode: AccumulationMode,
    /// How long after the end of a window late data is still accepted, in milliseconds.
    pub allowed_lateness_ms: i64,
    /// Timestamp of grouped output.
    pub timestamp_combiner: TimestampCombiner,
    /// Final pane behaviour.
    pub closing_behavior: ClosingBehavior,
    /// On-time pane behaviour.
    pub on_time_behavior: OnTimeBehavior,
}

impl WindowingStrategy {
    /// Beam's default: global window, default trigger, discarding, no lateness.
    pub fn global_default() -> Self {
        WindowingStrategy {
            window_fn: WindowFnSpec::Global,
            trigger: Trigger::Default,
            accumulation_mode: AccumulationMode::Discarding,
            allowed_lateness_ms: 0,
            timestamp_combiner: TimestampCombiner::EndOfWindow,
            closing_behavior: ClosingBehavior::FireIfNonEmpty,
            on_time_behavior: OnTimeBehavior::FireAlways,
        }
    }

    /// The default strategy for a window function.
    pub fn with_window_fn(window_fn: WindowFnSpec) -> Self {
        WindowingStrategy { window_fn, ..Self::global_default() }
    }
}

impl Default for WindowingStrategy {
    fn default() -> Self {
        Self::global_default()
    }
}
