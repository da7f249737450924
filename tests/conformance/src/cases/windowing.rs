//! Windowing in batch: fixed and sliding windows with GroupByKey and Combine, panes and output
//! timestamps. Batch is streaming with a perfect watermark: each window and key gets exactly one
//! ON_TIME pane (index 0, first and last), at the window's max timestamp (END_OF_WINDOW).

use crate::{run_ok, Reify};
use runnel::model::TimestampCombiner;
use runnel::prelude::*;

/// The single pane of a window fired once, when the watermark reached +∞.
const ON_TIME_ONLY: PaneInfo =
    PaneInfo { is_first: true, is_last: true, timing: PaneTiming::OnTime, index: 0, nonspeculative_index: 0 };

fn events(p: &Pipeline) -> PCollection<(String, i64)> {
    p.apply(
        "Events",
        Create::timestamped(vec![
            (("a".to_string(), 1i64), Timestamp(1)),
            (("a".into(), 2), Timestamp(9)),
            (("b".into(), 3), Timestamp(5)),
            (("a".into(), 4), Timestamp(10)),
            (("b".into(), 5), Timestamp(27)),
            (("c".into(), 6), Timestamp(-3)),
        ]),
    )
}

/// GroupByKey in fixed windows of 10 ms groups per key **and window**; each output is an ON_TIME
/// pane (index 0, first, last) at the window's max timestamp (end − 1 ms).
pub fn fixed_windows_group_by_key_fires_one_on_time_pane_per_window(options: PipelineOptions) {
    assert_eq!(ON_TIME_ONLY, PaneInfo::ON_TIME_AND_ONLY_FIRING);
    let p = Pipeline::new(options);
    let grouped = events(&p)
        .apply("Window", WindowInto::new(FixedWindows::of(10)))
        .group_by_key("Group")
        .map("Sort", |(k, mut vs): (String, Vec<i64>)| {
            vs.sort();
            (k, vs)
        })
        .apply("Reify", Reify);
    grouped.apply(
        "Check",
        PAssert::equal_in_any_order(vec![
            (("a".to_string(), vec![1i64, 2]), Window::interval(0, 10), ON_TIME_ONLY, Timestamp(9)),
            (("b".to_string(), vec![3]), Window::interval(0, 10), ON_TIME_ONLY, Timestamp(9)),
            (("a".to_string(), vec![4]), Window::interval(10, 20), ON_TIME_ONLY, Timestamp(19)),
            (("b".to_string(), vec![5]), Window::interval(20, 30), ON_TIME_ONLY, Timestamp(29)),
            (("c".to_string(), vec![6]), Window::interval(-10, 0), ON_TIME_ONLY, Timestamp(-1)),
        ]),
    );
    run_ok(&p);
}

/// Combine per key in fixed windows combines per key and window, with the same panes and
/// timestamps as GroupByKey.
pub fn fixed_windows_combine_per_key(options: PipelineOptions) {
    let p = Pipeline::new(options);
    let sums = events(&p)
        .apply("Window", WindowInto::new(FixedWindows::of(10)))
        .apply("Sum", Combine::per_key(combine::Sum::new()))
        .apply("Reify", Reify);
    sums.apply(
        "Check",
        PAssert::equal_in_any_order(vec![
            (("a".to_string(), 3i64), Window::interval(0, 10), ON_TIME_ONLY, Timestamp(9)),
            (("b".to_string(), 3), Window::interval(0, 10), ON_TIME_ONLY, Timestamp(9)),
            (("a".to_string(), 4), Window::interval(10, 20), ON_TIME_ONLY, Timestamp(19)),
            (("b".to_string(), 5), Window::interval(20, 30), ON_TIME_ONLY, Timestamp(29)),
            (("c".to_string(), 6), Window::interval(-10, 0), ON_TIME_ONLY, Timestamp(-1)),
        ]),
    );
    run_ok(&p);
}

/// Combine globally in fixed windows gives one result per non-empty window and none for empty
/// windows (the default output exists only in the global window).
pub fn fixed_windows_combine_globally_gives_no_default_for_empty_windows(options: PipelineOptions) {
    let p = Pipeline::new(options);
    let sums = events(&p)
        .apply("Values", Values)
        .apply("Window", WindowInto::new(FixedWindows::of(10)))
        .apply("Sum", Combine::globally(combine::Sum::new()))
        .apply("Reify", Reify);
    sums.apply(
        "Check",
        PAssert::equal_in_any_order(vec![
            (6i64, Window::interval(0, 10), ON_TIME_ONLY, Timestamp(9)),
            (4, Window::interval(10, 20), ON_TIME_ONLY, Timestamp(19)),
            (5, Window::interval(20, 30), ON_TIME_ONLY, Timestamp(29)),
            (6, Window::interval(-10, 0), ON_TIME_ONLY, Timestamp(-1)),
        ]),
    );
    run_ok(&p);
}

/// Sliding windows of size 10 every 5 put each element in 10 / 5 = 2 windows, keeping its
/// timestamp.
pub fn sliding_windows_assign_size_over_period_windows(options: PipelineOptions) {
    let p = Pipeline::new(options);
    let xs = p.apply("Create", Create::timestamped(vec![("x".to_string(), Timestamp(7)), ("y".into(), Timestamp(10))]));
    let windowed = xs
        .apply("Window", WindowInto::new(SlidingWindows::of(10, 5)))
        .apply("Reify", Reify)
        .map("Project", |(x, w, _, ts)| (x, w, ts));
    windowed.apply(
        "Check",
        PAssert::equal_in_any_order(vec![
            ("x".to_string(), Window::interval(0, 10), Timestamp(7)),
            ("x".to_string(), Window::interval(5, 15), Timestamp(7)),
            ("y".to_string(), Window::interval(5, 15), Timestamp(10)),
            ("y".to_string(), Window::interval(10, 20), Timestamp(10)),
        ]),
    );
    // When the period does not divide the size, an element lands in ceil or floor of size/period.
    let zs = p.apply("Uneven", Create::timestamped(vec![(9u8, Timestamp(9)), (7, Timestamp(7))]));
    zs.apply("UnevenWindow", WindowInto::new(SlidingWindows::of(10, 3)))
        .apply("UnevenReify", Reify)
        .map("UnevenProject", |(x, w, _, _)| (x, w))
        .apply(
            "CheckUneven",
            PAssert::equal_in_any_order(vec![
                (9u8, Window::interval(0, 10)),
                (9, Window::interval(3, 13)),
                (9, Window::interval(6, 16)),
                (9, Window::interval(9, 19)),
                (7, Window::interval(0, 10)),
                (7, Window::interval(3, 13)),
                (7, Window::interval(6, 16)),
            ]),
        );
    run_ok(&p);
}

/// Combining in sliding windows counts each element once in every window holding it.
pub fn sliding_windows_combine_counts_per_window(options: PipelineOptions) {
    let p = Pipeline::new(options);
    let xs = p.apply("Create", Create::timestamped(vec![(1u8, Timestamp(2)), (2, Timestamp(7)), (3, Timestamp(12))]));
    let counts = xs
        .apply("Window", WindowInto::new(SlidingWindows::of(10, 5)))
        .apply("Count", Combine::globally(combine::Count::new()))
        .apply("Reify", Reify);
    counts.apply(
        "Check",
        PAssert::equal_in_any_order(vec![
            (1u64, Window::interval(-5, 5), ON_TIME_ONLY, Timestamp(4)),
            (2, Window::interval(0, 10), ON_TIME_ONLY, Timestamp(9)),
            (2, Window::interval(5, 15), ON_TIME_ONLY, Timestamp(14)),
            (1, Window::interval(10, 20), ON_TIME_ONLY, Timestamp(19)),
        ]),
    );
    run_ok(&p);
}

/// PAssert on a windowed PCollection checks its whole contents, across all windows (as Beam's
/// PAssert does by default), not each window separately.
pub fn passert_checks_contents_across_all_windows(options: PipelineOptions) {
    let p = Pipeline::new(options);
    let windowed = events(&p).apply("Window", WindowInto::new(FixedWindows::of(10))).apply("Values", Values);
    windowed.apply("Check", PAssert::equal_in_any_order(vec![1i64, 2, 3, 4, 5, 6]));
    run_ok(&p);
}

/// The EARLIEST and LATEST timestamp combiners give a pane the earliest or latest timestamp of
/// its inputs instead of the end of the window.
pub fn fixed_windows_timestamp_combiners_earliest_and_latest(options: PipelineOptions) {
    let p = Pipeline::new(options);
    let kvs = events(&p);
    let pick = |name: &str, c: TimestampCombiner| {
        kvs.apply(&format!("Window{name}"), WindowInto::new(FixedWindows::of(10)).with_timestamp_combiner(c))
            .apply(&format!("Sum{name}"), Combine::per_key(combine::Sum::new()))
            .apply(&format!("Reify{name}"), Reify)
            .map(&format!("Project{name}"), |(kv, w, _, ts)| (kv, w, ts))
    };
    let earliest = pick("Earliest", TimestampCombiner::Earliest);
    let latest = pick("Latest", TimestampCombiner::Latest);
    earliest.apply(
        "CheckEarliest",
        PAssert::equal_in_any_order(vec![
            (("a".to_string(), 3i64), Window::interval(0, 10), Timestamp(1)),
            (("b".to_string(), 3), Window::interval(0, 10), Timestamp(5)),
            (("a".to_string(), 4), Window::interval(10, 20), Timestamp(10)),
            (("b".to_string(), 5), Window::interval(20, 30), Timestamp(27)),
            (("c".to_string(), 6), Window::interval(-10, 0), Timestamp(-3)),
        ]),
    );
    latest.apply(
        "CheckLatest",
        PAssert::equal_in_any_order(vec![
            (("a".to_string(), 3i64), Window::interval(0, 10), Timestamp(9)),
            (("b".to_string(), 3), Window::interval(0, 10), Timestamp(5)),
            (("a".to_string(), 4), Window::interval(10, 20), Timestamp(10)),
            (("b".to_string(), 5), Window::interval(20, 30), Timestamp(27)),
            (("c".to_string(), 6), Window::interval(-10, 0), Timestamp(-3)),
        ]),
    );
    run_ok(&p);
}

/// Grouped output keeps its window: grouping it again (re-keyed) groups within the same windows.
pub fn fixed_windows_survive_a_second_grouping(options: PipelineOptions) {
    let p = Pipeline::new(options);
    let per_key = events(&p)
        .apply("Window", WindowInto::new(FixedWindows::of(10)))
        .apply("CountPerKey", Combine::per_key(combine::Count::new()));
    let keys_per_window = per_key
        .map("ByUnit", |(k, _)| ((), k))
        .group_by_key("GroupAgain")
        .map("Sort", |((), mut ks): ((), Vec<String>)| {
            ks.sort();
            ks
        })
        .apply("Reify", Reify)
        .map("Project", |(ks, w, pane, ts)| (ks, w, pane, ts));
    keys_per_window.apply(
        "Check",
        PAssert::equal_in_any_order(vec![
            (vec!["a".to_string(), "b".to_string()], Window::interval(0, 10), ON_TIME_ONLY, Timestamp(9)),
            (vec!["a".to_string()], Window::interval(10, 20), ON_TIME_ONLY, Timestamp(19)),
            (vec!["b".to_string()], Window::interval(20, 30), ON_TIME_ONLY, Timestamp(29)),
            (vec!["c".to_string()], Window::interval(-10, 0), ON_TIME_ONLY, Timestamp(-1)),
        ]),
    );
    run_ok(&p);
}

/// Fixed windows with an offset shift the window boundaries by the offset.
pub fn fixed_windows_with_offset_shift_boundaries(options: PipelineOptions) {
    let p = Pipeline::new(options);
    let xs = p.apply("Create", Create::timestamped(vec![(1u8, Timestamp(2)), (2, Timestamp(3)), (3, Timestamp(12))]));
    xs.apply("Window", WindowInto::new(FixedWindows::with_offset(10, 3)))
        .apply("Count", Combine::globally(combine::Count::new()))
        .apply("Reify", Reify)
        .apply(
            "Check",
            PAssert::equal_in_any_order(vec![
                (1u64, Window::interval(-7, 3), ON_TIME_ONLY, Timestamp(2)),
                (2, Window::interval(3, 13), ON_TIME_ONLY, Timestamp(12)),
            ]),
        );
    run_ok(&p);
}

/// Combine::globally keeps a global windowing strategy that is not the default one (here the
/// EARLIEST timestamp combiner): it builds, gives the sum at the earliest input timestamp, and
/// still gives one default output for an empty input.
pub fn combine_globally_in_global_window_with_non_default_strategy(options: PipelineOptions) {
    let p = Pipeline::new(options);
    let earliest = || WindowInto::new(GlobalWindows::of()).with_timestamp_combiner(TimestampCombiner::Earliest);
    let xs = p.apply("Create", Create::timestamped(vec![(1i64, Timestamp(5)), (2, Timestamp(3))]));
    xs.apply("Window", earliest())
        .apply("Sum", Combine::globally(combine::Sum::new()))
        .apply("Reify", Reify)
        .map("Project", |(x, w, _, ts)| (x, w, ts))
        .apply("Check", PAssert::equal_in_any_order(vec![(3i64, Window::Global, Timestamp(3))]));
    let empty = p.apply("Empty", Create::of(Vec::<i64>::new()));
    empty
        .apply("EmptyWindow", earliest())
        .apply("EmptySum", Combine::globally(combine::Sum::new()))
        .apply("CheckEmpty", PAssert::equal_in_any_order(vec![0i64]));
    run_ok(&p);
}
