//! Window assignment for the built-in window functions, and side input window mapping.

use runnel_model::{IntervalWindow, Timestamp, Window, WindowFnSpec};

/// The windows an element at `ts` belongs to under a built-in window function, or `None` for a
/// user window function (which the SDK binds as code).
pub fn assign(spec: &WindowFnSpec, ts: Timestamp) -> Option<Vec<Window>> {
    Some(match spec {
        WindowFnSpec::Global => vec![Window::Global],
        WindowFnSpec::Fixed { size_ms, offset_ms } => {
            let start = ts.0 - (ts.0 - offset_ms).rem_euclid(*size_ms);
            vec![interval(start, *size_ms)]
        }
        WindowFnSpec::Sliding { size_ms, period_ms, offset_ms } => {
            let last_start = ts.0 - (ts.0 - offset_ms).rem_euclid(*period_ms);
            let mut out = Vec::new();
            let mut start = last_start;
            while start > ts.0 - size_ms {
                out.push(interval(start, *size_ms));
                start -= period_ms;
            }
            out
        }
        WindowFnSpec::Sessions { gap_ms } => vec![interval(ts.0, *gap_ms)],
        WindowFnSpec::Custom { .. } => return None,
        // Never a WindowInto's function; as Beam's InvalidWindows it assigns as the original.
        WindowFnSpec::Consumed { original, .. } => return assign(original, ts),
    })
}

fn interval(start: i64, size: i64) -> Window {
    let end = start.saturating_add(size).min(Timestamp::MAX.0);
    Window::Interval(IntervalWindow { start: Timestamp(start), end: Timestamp(end) })
}

/// The side input window that a main input window reads: the global window for a global side
/// input, otherwise the latest-starting side window holding the main window's max timestamp.
pub fn side_input_window(side: &WindowFnSpec, main: &Window) -> Result<Window, String> {
    match side {
        WindowFnSpec::Global => Ok(Window::Global),
        WindowFnSpec::Sessions { .. } | WindowFnSpec::Custom { .. } | WindowFnSpec::Consumed { .. } => {
            Err(format!("side inputs windowed by '{}' are not supported", side.urn()))
        }
        _ => assign(side, main.max_timestamp())
            .and_then(|ws| ws.into_iter().max_by_key(|w| w.as_interval().map(|i| i.start)))
            .ok_or_else(|| "side input window function assigned no window".to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_windows_hold_their_interval() {
        let spec = WindowFnSpec::Fixed { size_ms: 10, offset_ms: 0 };
        assert_eq!(assign(&spec, Timestamp(9)).unwrap(), vec![Window::interval(0, 10)]);
        assert_eq!(assign(&spec, Timestamp(10)).unwrap(), vec![Window::interval(10, 20)]);
        assert_eq!(assign(&spec, Timestamp(-1)).unwrap(), vec![Window::interval(-10, 0)]);
    }

    #[test]
    fn sliding_windows_assign_size_over_period_windows() {
        let spec = WindowFnSpec::Sliding { size_ms: 10, period_ms: 5, offset_ms: 0 };
        let mut ws = assign(&spec, Timestamp(7)).unwrap();
        ws.sort();
        assert_eq!(ws, vec![Window::interval(0, 10), Window::interval(5, 15)]);
    }
}
