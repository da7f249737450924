//! Event time: timestamps and durations in milliseconds, with Beam's bounds.

use serde::{Deserialize, Serialize};
use std::fmt;

/// A point in event time or processing time: milliseconds since the Unix epoch.
///
/// The bounds are Beam's: `i64::MIN / 1000` and `i64::MAX / 1000` milliseconds, so a timestamp
/// converts to Beam's microsecond representation without overflow.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Timestamp(pub i64);

/// One day in milliseconds: the global window ends this long before [`Timestamp::MAX`].
pub const ONE_DAY_MS: i64 = 24 * 60 * 60 * 1000;

impl Timestamp {
    /// The smallest representable timestamp (negative infinity for watermarks).
    pub const MIN: Timestamp = Timestamp(i64::MIN / 1000);
    /// The largest representable timestamp (positive infinity for watermarks).
    pub const MAX: Timestamp = Timestamp(i64::MAX / 1000);

    /// The max timestamp of the global window: one day before [`Timestamp::MAX`].
    #[inline]
    pub const fn end_of_global_window() -> Timestamp {
        Timestamp(Self::MAX.0 - ONE_DAY_MS)
    }

    /// Milliseconds since the epoch.
    #[inline]
    pub const fn millis(self) -> i64 {
        self.0
    }

    /// Adds `ms`, saturating at the bounds.
    #[inline]
    pub fn plus(self, ms: i64) -> Timestamp {
        Timestamp(self.0.saturating_add(ms).clamp(Self::MIN.0, Self::MAX.0))
    }

    /// Subtracts `ms`, saturating at the bounds.
    #[inline]
    pub fn minus(self, ms: i64) -> Timestamp {
        Timestamp(self.0.saturating_sub(ms).clamp(Self::MIN.0, Self::MAX.0))
    }
}

impl fmt::Debug for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if *self == Timestamp::MIN {
            write!(f, "-inf")
        } else if *self == Timestamp::MAX {
            write!(f, "+inf")
        } else {
            write!(f, "{}ms", self.0)
        }
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

impl From<i64> for Timestamp {
    fn from(ms: i64) -> Self {
        Timestamp(ms)
    }
}
