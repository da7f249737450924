//! Laws of window assignment (`runnel_runner_core::windows::assign`), checked with proptest on random window
//! functions and timestamps: every assigned window holds the timestamp, has the function's size, is aligned to its
//! offset, and no window is missing or repeated.

use proptest::prelude::*;
use runnel_model::{Timestamp, Window, WindowFnSpec};
use runnel_runner_core::windows::{assign, side_input_window};

/// About ±31,000 years around the epoch: far from the bounds, so no window is clamped.
const SPAN: i64 = 1_000_000_000_000_000;
/// Window sizes and periods up to about 115 days.
const MAX_SIZE: i64 = 10_000_000_000;

fn timestamps() -> impl Strategy<Value = i64> {
    prop_oneof![
        -SPAN..SPAN,
        // Near the epoch, where signs change.
        -100_000i64..100_000,
        // On and next to multiples of round sizes, where windows begin and end.
        (-1_000_000i64..1_000_000, prop::sample::select(vec![1_000i64, 60_000, 3_600_000]), -1i64..=1)
            .prop_map(|(k, unit, d)| k * unit + d),
    ]
}

fn sizes() -> impl Strategy<Value = i64> {
    prop_oneof![1i64..100, 1i64..MAX_SIZE, prop::sample::select(vec![1_000i64, 60_000, 3_600_000, 86_400_000])]
}

/// `(size, period)` of sliding windows: sizes that are multiples of the period, and arbitrary ones (also smaller than
/// the period), at most 16 periods long (so at most 16 windows per element).
fn sliding_sizes() -> impl Strategy<Value = (i64, i64)> {
    sizes().prop_flat_map(|period| {
        prop_oneof![
            (1i64..=16).prop_map(move |k| (k * period, period)),
            (1..=16 * period).prop_map(move |s| (s, period))
        ]
    })
}

/// `(start, end)` of an interval window.
fn bounds(w: &Window) -> (i64, i64) {
    let i = w.as_interval().expect("an interval window");
    (i.start.millis(), i.end.millis())
}

fn contains(w: &Window, ts: i64) -> bool {
    let (start, end) = bounds(w);
    start <= ts && ts < end
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2_000))]

    #[test]
    fn fixed_windows_assign_exactly_one_aligned_window_holding_the_timestamp(
        ts in timestamps(),
        size in sizes(),
        offset in -MAX_SIZE..MAX_SIZE,
    ) {
        let windows = assign(&WindowFnSpec::Fixed { size_ms: size, offset_ms: offset }, Timestamp(ts)).unwrap();
        prop_assert_eq!(windows.len(), 1);
        let w = &windows[0];
        let (start, end) = bounds(w);
        prop_assert!(contains(w, ts), "{:?} does not hold {}", w, ts);
        prop_assert_eq!(end - start, size);
        prop_assert_eq!((start - offset).rem_euclid(size), 0, "{:?} is not aligned to offset {}", w, offset);
        prop_assert_eq!(w.max_timestamp().millis(), end - 1);
        // The offset matters only modulo the size.
        let normalised = WindowFnSpec::Fixed { size_ms: size, offset_ms: offset.rem_euclid(size) };
        prop_assert_eq!(assign(&normalised, Timestamp(ts)).unwrap(), windows);
    }

    #[test]
    fn fixed_windows_tile_time(ts in timestamps(), size in sizes(), offset in 0i64..MAX_SIZE) {
        // The last millisecond of a window and the first of the next one are in adjacent windows.
        let spec = WindowFnSpec::Fixed { size_ms: size, offset_ms: offset };
        let w = assign(&spec, Timestamp(ts)).unwrap()[0];
        let (start, end) = bounds(&w);
        prop_assert_eq!(assign(&spec, Timestamp(start)).unwrap(), vec![w]);
        prop_assert_eq!(assign(&spec, Timestamp(end - 1)).unwrap(), vec![w]);
        let next = assign(&spec, Timestamp(end)).unwrap()[0];
        prop_assert_eq!(bounds(&next), (end, end + size));
        let previous = assign(&spec, Timestamp(start - 1)).unwrap()[0];
        prop_assert_eq!(bounds(&previous), (start - size, start));
    }

    #[test]
    fn sliding_windows_assign_every_aligned_window_holding_the_timestamp_once(
        ts in timestamps(),
        (size, period) in sliding_sizes(),
        offset in -MAX_SIZE..MAX_SIZE,
    ) {
        let spec = WindowFnSpec::Sliding { size_ms: size, period_ms: period, offset_ms: offset };
        let windows = assign(&spec, Timestamp(ts)).unwrap();
        for w in &windows {
            let (start, end) = bounds(w);
            prop_assert!(contains(w, ts), "{:?} does not hold {}", w, ts);
            prop_assert_eq!(end - start, size);
            prop_assert_eq!((start - offset).rem_euclid(period), 0, "{:?} not aligned to {} mod {}", w, offset, period);
        }
        let mut starts: Vec<i64> = windows.iter().map(|w| bounds(w).0).collect();
        starts.sort_unstable();
        starts.dedup();
        prop_assert_eq!(starts.len(), windows.len(), "a window is assigned twice: {:?}", windows);
        // How many: size/period when the period divides the size, otherwise the floor or the ceiling of it.
        let count = windows.len() as i64;
        if size % period == 0 {
            prop_assert_eq!(count, size / period);
        } else {
            prop_assert!(count == size / period || count == size / period + 1, "{} windows", count);
        }
        // None is missing: the aligned windows just before the earliest and just after the latest do not hold ts.
        let latest = ts - (ts - offset).rem_euclid(period);
        match (starts.first(), starts.last()) {
            (Some(&first), Some(&last)) => {
                prop_assert_eq!(last, latest, "the latest aligned start at or before ts is assigned");
                prop_assert!(first - period + size <= ts, "the window starting at {} also holds {}", first - period, ts);
            }
            _ => prop_assert!(latest + size <= ts && size < period, "no window, yet [{}, +{}) holds {}", latest, size, ts),
        }
        prop_assert!(latest + period > ts, "a later aligned window starts before ts");
    }

    #[test]
    fn sliding_windows_with_period_equal_to_size_are_fixed_windows(
        ts in timestamps(),
        size in sizes(),
        offset in 0i64..MAX_SIZE,
    ) {
        let sliding = assign(&WindowFnSpec::Sliding { size_ms: size, period_ms: size, offset_ms: offset }, Timestamp(ts));
        let fixed = assign(&WindowFnSpec::Fixed { size_ms: size, offset_ms: offset }, Timestamp(ts));
        prop_assert_eq!(sliding, fixed);
    }

    #[test]
    fn sessions_assign_the_proto_window_from_the_timestamp_to_the_gap(ts in timestamps(), gap in sizes()) {
        let windows = assign(&WindowFnSpec::Sessions { gap_ms: gap }, Timestamp(ts)).unwrap();
        prop_assert_eq!(windows, vec![Window::interval(ts, ts + gap)]);
    }

    #[test]
    fn the_global_window_holds_everything(ts in timestamps()) {
        prop_assert_eq!(assign(&WindowFnSpec::Global, Timestamp(ts)).unwrap(), vec![Window::Global]);
    }

    #[test]
    fn windows_near_the_end_of_time_still_hold_their_timestamp(
        before_end in 0i64..MAX_SIZE,
        (size, period) in sliding_sizes(),
    ) {
        // Up to the end of the global window; windows reaching past the maximum timestamp end there.
        let ts = Timestamp::end_of_global_window().millis() - before_end;
        for spec in [
            WindowFnSpec::Fixed { size_ms: size, offset_ms: 0 },
            WindowFnSpec::Sliding { size_ms: size, period_ms: period, offset_ms: 0 },
            WindowFnSpec::Sessions { gap_ms: size },
        ] {
            for w in assign(&spec, Timestamp(ts)).unwrap() {
                let (start, end) = bounds(&w);
                prop_assert!(contains(&w, ts), "{:?}: {:?} does not hold {}", spec, w, ts);
                prop_assert!(end <= Timestamp::MAX.millis());
                prop_assert!(end - start == size || end == Timestamp::MAX.millis(), "{:?}: {:?}", spec, w);
            }
        }
    }

    #[test]
    fn a_side_input_window_holds_the_end_of_the_main_window(
        ts in timestamps(),
        main_size in sizes(),
        (side_size, side_period) in sliding_sizes(),
    ) {
        let main = assign(&WindowFnSpec::Fixed { size_ms: main_size, offset_ms: 0 }, Timestamp(ts)).unwrap()[0];
        let end = main.max_timestamp().millis();
        let fixed = side_input_window(&WindowFnSpec::Fixed { size_ms: side_size, offset_ms: 0 }, &main).unwrap();
        prop_assert!(contains(&fixed, end), "{:?} does not hold {}", fixed, end);
        // Sliding: the latest-starting window holding it (when one does).
        let sliding = WindowFnSpec::Sliding { size_ms: side_size, period_ms: side_period, offset_ms: 0 };
        match side_input_window(&sliding, &main) {
            Ok(w) => {
                prop_assert!(contains(&w, end));
                let latest = assign(&sliding, Timestamp(end)).unwrap().iter().map(|w| bounds(w).0).max();
                prop_assert_eq!(Some(bounds(&w).0), latest);
            }
            Err(_) => prop_assert!(assign(&sliding, Timestamp(end)).unwrap().is_empty()),
        }
        prop_assert_eq!(side_input_window(&WindowFnSpec::Global, &main), Ok(Window::Global));
    }
}
