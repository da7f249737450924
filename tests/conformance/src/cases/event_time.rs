//! Event time in batch beyond fixed and sliding windows: sessions, user window functions,
//! triggers and accumulation (batch is streaming with a perfect watermark: each key and window
//! gets the panes its trigger fires when the watermark jumps to +∞), and the trigger safety check.

use crate::{run_ok, Reify};
use runnel::prelude::*;
use serde::{Deserialize, Serialize};

fn timestamped(p: &Pipeline, xs: &[(&str, i64, i64)]) -> PCollection<(String, i64)> {
    p.apply("Events", Create::timestamped(xs.iter().map(|(k, v, t)| ((k.to_string(), *v), Timestamp(*t))).collect()))
}

/// Session windows merge per key: elements closer than the gap share one session, whose window
/// spans from the first element to the last plus the gap; state merges with them.
pub fn sessions_merge_per_key_in_batch(options: PipelineOptions) {
    let p = Pipeline::new(options);
    timestamped(&p, &[("a", 1, 0), ("a", 2, 5), ("a", 4, 30), ("b", 8, 3), ("a", 16, 12)])
        .apply("Sessions", WindowInto::new(Sessions::with_gap(10)))
        .combine_per_key("Sum", combine::Sum::<i64>::new())
        .apply("Reify", Reify)
        .map("Drop pane", |((k, v), w, pane, ts)| (k, v, w, pane.timing, ts))
        .apply(
            "Check",
            PAssert::equal_in_any_order(vec![
                ("a".to_string(), 19, Window::interval(0, 22), PaneTiming::OnTime, Timestamp(21)),
                ("a".into(), 4, Window::interval(30, 40), PaneTiming::OnTime, Timestamp(39)),
                ("b".into(), 8, Window::interval(3, 13), PaneTiming::OnTime, Timestamp(12)),
            ]),
        );
    run_ok(&p);
}

/// A user window function: windows of odd and even hundreds of milliseconds.
#[derive(Clone, Serialize, Deserialize)]
pub struct HundredsWindows {
    width: i64,
}

impl WindowFn for HundredsWindows {
    fn assign(&self, t: Timestamp) -> Vec<Window> {
        let start = t.0 - t.0.rem_euclid(self.width);
        vec![Window::interval(start, start + self.width)]
    }
}

/// `WindowInto::custom`: the user window function's fields travel in the graph and it assigns
/// the windows.
pub fn user_window_fn_assigns_windows(options: PipelineOptions) {
    let p = Pipeline::new(options);
    let windowed = timestamped(&p, &[("a", 1, 10), ("a", 2, 120), ("a", 4, 190)])
        .apply("Hundreds", WindowInto::custom("conformance.Hundreds", HundredsWindows { width: 100 }));
    windowed
        .combine_per_key("Sum", combine::Sum::<i64>::new())
        .apply("Reify", Reify)
        .map("Window", |((k, v), w, _, _)| (k, v, w))
        .apply(
            "Check",
            PAssert::equal_in_any_order(vec![
                ("a".to_string(), 1, Window::interval(0, 100)),
                ("a".into(), 6, Window::interval(100, 200)),
            ]),
        );
    let g = p.graph();
    let json = g.to_json();
    assert!(json.contains("conformance.Hundreds") && json.contains("\"width\": 100"), "{json}");
    run_ok(&p);
}

/// In batch, a repeated count trigger fires panes while the data arrives and the watermark's
/// jump fires the rest; accumulating panes grow, and the final value is the full sum.
pub fn repeated_count_trigger_accumulating_ends_with_the_full_sum(options: PipelineOptions) {
    let p = Pipeline::new(options.with_bundle_size(1));
    let panes = timestamped(&p, &[("a", 1, 1), ("a", 2, 2), ("a", 3, 3), ("a", 4, 4)])
        .apply(
            "Window",
            WindowInto::new(FixedWindows::of(100))
                .triggering(Triggers::repeatedly(AfterCount::of(2)))
                .accumulating_fired_panes(),
        )
        .combine_per_key("Sum", combine::Sum::<i64>::new())
        .apply("Reify", Reify);
    panes.apply(
        "Check",
        PAssert::satisfies(|xs: &[((String, i64), Window, PaneInfo, Timestamp)]| {
            let mut xs = xs.to_vec();
            xs.sort_by_key(|x| x.2.index);
            let last = xs.last().ok_or("no pane")?;
            if last.0 .1 != 10 {
                return Err(format!("the last pane should hold the full sum 10: {xs:?}"));
            }
            if xs.windows(2).any(|w| w[0].0 .1 > w[1].0 .1) {
                return Err(format!("accumulating panes never shrink: {xs:?}"));
            }
            if xs.iter().enumerate().any(|(i, x)| x.2.index != i as i64) {
                return Err(format!("pane indexes count 0, 1, 2…: {xs:?}"));
            }
            Ok(())
        }),
    );
    run_ok(&p);
}

/// Retracting accumulation: a downstream Sum applies the retractions itself (no signing by
/// hand), so it gives the final accumulated value of each key.
pub fn retracting_panes_keep_a_downstream_sum_correct(options: PipelineOptions) {
    let p = Pipeline::new(options.with_bundle_size(1));
    timestamped(&p, &[("a", 1, 1), ("a", 2, 2), ("a", 3, 3), ("b", 5, 4)])
        .apply(
            "Window",
            WindowInto::new(FixedWindows::of(100))
                .triggering(Triggers::repeatedly(AfterCount::of(1)))
                .retracting_fired_panes(),
        )
        .combine_per_key("Sum", combine::Sum::<i64>::new())
        .apply("NetWindow", WindowInto::new(GlobalWindows::of()).retracting_fired_panes())
        .combine_per_key("Net", combine::Sum::<i64>::new())
        .apply("Check", PAssert::equal_in_any_order(vec![("a".to_string(), 6i64), ("b".into(), 5)]));
    run_ok(&p);
}

/// A trigger that may finish (AfterCount alone) is warned about at construction, and refused
/// when the options say so.
pub fn trigger_that_may_finish_is_warned_or_refused(options: PipelineOptions) {
    let p = Pipeline::new(options.clone());
    timestamped(&p, &[("a", 1, 1)])
        .apply("Window", WindowInto::new(FixedWindows::of(10)).triggering(AfterCount::of(3)));
    let warnings = p.warnings();
    assert!(warnings.iter().any(|w| w.contains("'Window'") && w.contains("may finish")), "{warnings:?}");

    let p = Pipeline::new(options.with_refuse_unsafe_triggers(true));
    timestamped(&p, &[("a", 1, 1)])
        .apply("Window", WindowInto::new(FixedWindows::of(10)).triggering(AfterCount::of(3)));
    let err = p.run().expect_err("refused at construction").to_string();
    assert!(err.contains("may finish"), "{err}");

    let p = Pipeline::new(PipelineOptions::default());
    timestamped(&p, &[("a", 1, 1)]).apply(
        "Window",
        WindowInto::new(FixedWindows::of(10))
            .triggering(AfterWatermark::past_end_of_window().with_late_firings(AfterCount::of(1))),
    );
    assert!(p.warnings().is_empty(), "late firings repeat: nothing is dropped");
}

/// A merging user window function: sessions in which windows that merely touch also merge
/// (built-in sessions merge only overlapping ones).
#[derive(Clone, Serialize, Deserialize)]
pub struct TouchingSessions {
    gap: i64,
}

impl WindowFn for TouchingSessions {
    fn assign(&self, t: Timestamp) -> Vec<Window> {
        vec![Window::interval(t.0, t.0 + self.gap)]
    }
    fn is_merging(&self) -> bool {
        true
    }
    fn merge(&self, windows: &[Window]) -> Vec<(Vec<Window>, Window)> {
        let mut sorted: Vec<Window> = windows.to_vec();
        sorted.sort();
        let mut groups: Vec<(Vec<Window>, Window)> = Vec::new();
        for w in sorted {
            let iv = *w.as_interval().expect("interval windows");
            match groups.last_mut() {
                Some((group, Window::Interval(span))) if iv.start <= span.end => {
                    group.push(w);
                    *span = span.span(&iv);
                }
                _ => groups.push((vec![w], w)),
            }
        }
        groups.into_iter().filter(|(g, _)| g.len() > 1).collect()
    }
}

/// A merging user window function merges windows (and their state) as it says, on every
/// grouping downstream of it.
pub fn merging_user_window_fn_merges_windows_and_state(options: PipelineOptions) {
    let p = Pipeline::new(options);
    timestamped(&p, &[("a", 1, 0), ("a", 2, 10), ("a", 4, 30), ("b", 8, 5)])
        .apply("Touching", WindowInto::custom("conformance.TouchingSessions", TouchingSessions { gap: 10 }))
        .combine_per_key("Sum", combine::Sum::<i64>::new())
        .apply("Reify", Reify)
        .map("Window", |((k, v), w, _, _)| (k, v, w))
        .apply(
            "Check",
            PAssert::equal_in_any_order(vec![
                ("a".to_string(), 3, Window::interval(0, 20)),
                ("a".into(), 4, Window::interval(30, 40)),
                ("b".into(), 8, Window::interval(5, 15)),
            ]),
        );
    assert!(p.graph().to_json().contains("\"merging\": true"));
    run_ok(&p);
}
