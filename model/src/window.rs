//! Windows, panes and windowed values: the metadata every element carries.

use crate::time::Timestamp;
use serde::{Deserialize, Serialize};

/// A half-open interval `[start, end)` of event time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct IntervalWindow {
    /// Inclusive start.
    pub start: Timestamp,
    /// Exclusive end.
    pub end: Timestamp,
}

impl IntervalWindow {
    /// A window `[start, end)`.
    #[inline]
    pub fn new(start: impl Into<Timestamp>, end: impl Into<Timestamp>) -> Self {
        IntervalWindow { start: start.into(), end: end.into() }
    }

    /// The last timestamp inside the window: `end - 1ms`.
    #[inline]
    pub fn max_timestamp(&self) -> Timestamp {
        self.end.minus(1)
    }

    /// Whether the two windows overlap (share at least one millisecond).
    #[inline]
    pub fn intersects(&self, other: &IntervalWindow) -> bool {
        self.start < other.end && other.start < self.end
    }

    /// The smallest window covering both.
    #[inline]
    pub fn span(&self, other: &IntervalWindow) -> IntervalWindow {
        IntervalWindow { start: self.start.min(other.start), end: self.end.max(other.end) }
    }
}

/// The window an element belongs to.
///
/// Runnel's windows are the global window or an interval; user window functions assign intervals.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Window {
    /// The single window spanning all of time.
    Global,
    /// A bounded interval of event time.
    Interval(IntervalWindow),
}

impl Window {
    /// The last timestamp inside the window (the global window ends one day before the maximum).
    #[inline]
    pub fn max_timestamp(&self) -> Timestamp {
        match self {
            Window::Global => Timestamp::end_of_global_window(),
            Window::Interval(w) => w.max_timestamp(),
        }
    }

    /// The interval, if this is an interval window.
    #[inline]
    pub fn as_interval(&self) -> Option<&IntervalWindow> {
        match self {
            Window::Global => None,
            Window::Interval(w) => Some(w),
        }
    }

    /// A window `[start, end)`.
    #[inline]
    pub fn interval(start: impl Into<Timestamp>, end: impl Into<Timestamp>) -> Window {
        Window::Interval(IntervalWindow::new(start, end))
    }
}

/// When a pane fired relative to the watermark.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum PaneTiming {
    /// Before the watermark passed the end of the window.
    Early,
    /// The first pane after the watermark passed the end of the window.
    OnTime,
    /// After the on-time pane.
    Late,
    /// Not produced by a trigger (e.g. elements that never went through a grouping).
    #[default]
    Unknown,
}

impl PaneTiming {
    /// Beam's spelling: `EARLY`, `ON_TIME`, `LATE`, `UNKNOWN`.
    #[inline]
    pub fn as_str(&self) -> &'static str {
        match self {
            PaneTiming::Early => "EARLY",
            PaneTiming::OnTime => "ON_TIME",
            PaneTiming::Late => "LATE",
            PaneTiming::Unknown => "UNKNOWN",
        }
    }
}

/// Which firing of a trigger produced an element (Beam's `PaneInfo`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PaneInfo {
    /// The first pane of this key and window.
    pub is_first: bool,
    /// The last pane: nothing more will be emitted for this key and window.
    pub is_last: bool,
    /// Timing relative to the watermark.
    pub timing: PaneTiming,
    /// 0, 1, 2, … per key and window.
    pub index: i64,
    /// Counts only ON_TIME and LATE panes; −1 for EARLY panes.
    pub nonspeculative_index: i64,
}

impl PaneInfo {
    /// The pane of elements that have not been through a trigger: first, last, UNKNOWN timing.
    pub const NO_FIRING: PaneInfo =
        PaneInfo { is_first: true, is_last: true, timing: PaneTiming::Unknown, index: 0, nonspeculative_index: 0 };

    /// The single on-time pane of a window fired once when input was complete.
    pub const ON_TIME_AND_ONLY_FIRING: PaneInfo =
        PaneInfo { is_first: true, is_last: true, timing: PaneTiming::OnTime, index: 0, nonspeculative_index: 0 };
}

impl Default for PaneInfo {
    fn default() -> Self {
        PaneInfo::NO_FIRING
    }
}

/// An element with its event-time metadata.
///
/// Runnel keeps one window per windowed value: an element assigned to several windows (sliding)
/// becomes several windowed values at assignment.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WindowedValue<T> {
    /// The element.
    pub value: T,
    /// Its event timestamp.
    pub timestamp: Timestamp,
    /// The window it belongs to.
    pub window: Window,
    /// The pane that produced it.
    pub pane: PaneInfo,
    /// True when this value retracts a previously emitted value (retracting accumulation).
    pub retraction: bool,
}

impl<T> WindowedValue<T> {
    /// A value in the global window at the minimum timestamp, as produced by bounded sources.
    #[inline]
    pub fn in_global_window(value: T) -> Self {
        WindowedValue {
            value,
            timestamp: Timestamp::MIN,
            window: Window::Global,
            pane: PaneInfo::NO_FIRING,
            retraction: false,
        }
    }

    /// A value in the global window at `timestamp`.
    #[inline]
    pub fn timestamped(value: T, timestamp: Timestamp) -> Self {
        WindowedValue { timestamp, ..Self::in_global_window(value) }
    }

    /// The same metadata around another value.
    #[inline]
    pub fn with_value<U>(&self, value: U) -> WindowedValue<U> {
        WindowedValue {
            value,
            timestamp: self.timestamp,
            window: self.window,
            pane: self.pane,
            retraction: self.retraction,
        }
    }
}
