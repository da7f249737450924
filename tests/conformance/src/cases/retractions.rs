//! Retractions applied end to end: per-user sums in retracting mode with early firings, re-keyed
//! by team, feed team aggregates (Sum, Mean, a user CombineFn, Min, GroupByKey) that must equal,
//! pane after pane, the aggregate of the latest per-user values; and the refusals of transforms
//! that cannot apply retractions.

use crate::{expect_run_failure, run_ok};
use runnel::prelude::*;
use runnel::testing::{Assert, Observed};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt::Debug;

/// The team of each user.
fn team(user: &str) -> String {
    match user {
        "alice" | "bob" => "red".to_string(),
        _ => "blue".to_string(),
    }
}

/// Early firings on every bundle, then the on-time pane.
fn early_every_bundle() -> Trigger {
    AfterWatermark::past_end_of_window().with_early_firings(AfterCount::of(1))
}

/// Per-user sums of `events` under `windowing` (retracting), re-keyed by team.
fn user_sums_by_team(events: PCollection<(String, i64)>, windowing: WindowInto) -> PCollection<(String, i64)> {
    events
        .apply("UserWindows", windowing.triggering(early_every_bundle()).retracting_fired_panes())
        .combine_per_key("UserSums", combine::Sum::<i64>::new())
        .map("ByTeam", |(user, sum): (String, i64)| (team(&user), sum))
}

/// What one pane of a key and window held: its values, and its retractions.
type PaneContents<T> = (Vec<T>, Vec<T>);

/// The panes of every key and window, in index order, as the values they hold, after checking
/// the algebra of retracting panes: a pane holds one value, and every pane after the first also
/// the retraction of exactly the value of the pane before it.
fn refinements<T: Clone + PartialEq + Debug>(
    observed: &[Observed<(String, T)>],
) -> Result<BTreeMap<(String, Window), Vec<T>>, String> {
    let mut panes: BTreeMap<(String, Window), BTreeMap<i64, PaneContents<T>>> = BTreeMap::new();
    for o in observed {
        let (key, value) = o.value.clone();
        let pane = panes.entry((key, o.window)).or_default().entry(o.pane.index).or_default();
        if o.retraction {
            pane.1.push(value);
        } else {
            pane.0.push(value);
        }
    }
    let mut out = BTreeMap::new();
    for (key_window, panes) in panes {
        let mut values: Vec<T> = Vec::new();
        for (index, (emitted, retracted)) in panes {
            let [value] = emitted.as_slice() else {
                return Err(format!("{key_window:?} pane {index} holds the values {emitted:?}, not one"));
            };
            let previous: Vec<T> = values.last().cloned().into_iter().collect();
            if retracted != previous {
                return Err(format!(
                    "{key_window:?} pane {index} retracts {retracted:?}, but the pane before held {:?}",
                    values.last()
                ));
            }
            values.push(value.clone());
        }
        out.insert(key_window, values);
    }
    Ok(out)
}

/// `(team, window) → pane values` for the expectations below.
fn panes_of<T: Clone>(expected: &[(&str, (i64, i64), &[T])]) -> BTreeMap<(String, Window), Vec<T>> {
    expected.iter().map(|(k, (s, e), vs)| ((k.to_string(), Window::interval(*s, *e)), vs.to_vec())).collect()
}

/// Asserts the exact pane values of every team and window.
fn assert_panes<T: Element + PartialEq>(expected: BTreeMap<(String, Window), Vec<T>>) -> Assert<(String, T)> {
    Assert::on_elements(move |observed| {
        let got = refinements(observed)?;
        if got == expected {
            Ok(())
        } else {
            Err(format!("panes per team and window {got:?}, expected {expected:?}"))
        }
    })
}

/// Asserts the algebra of every pane and the last value of each team and window, leaving out
/// windows whose last value is `ignored` (batch: which windows ever exist, and the panes in
/// between, depend on the order elements arrive in).
fn assert_last<T: Element + PartialEq>(
    expected: BTreeMap<(String, Window), T>,
    ignored: Option<T>,
) -> Assert<(String, T)> {
    Assert::on_elements(move |observed| {
        let got: BTreeMap<(String, Window), T> = refinements(observed)?
            .into_iter()
            .filter_map(|(k, mut vs)| vs.pop().map(|v| (k, v)))
            .filter(|(_, v)| Some(v) != ignored.as_ref())
            .collect();
        if got == expected {
            Ok(())
        } else {
            Err(format!("last pane per team and window {got:?}, expected {expected:?}"))
        }
    })
}

/// Streaming over fixed windows: every pane of the team totals is the total of the latest
/// per-user sums, as the refinements arrive.
pub fn retracting_user_sums_give_team_totals_in_every_pane_over_fixed_windows(options: PipelineOptions) {
    let p = Pipeline::new(options);
    let stream = TestStream::new()
        .add_elements(vec![(("alice".to_string(), 1), 1), (("carol".to_string(), 4), 2)])
        .add_elements(vec![(("alice".to_string(), 2), 3), (("bob".to_string(), 3), 4)])
        .add_elements(vec![(("carol".to_string(), 5), 5)])
        .advance_watermark_to(10);
    let events = p.apply("Events", stream);
    user_sums_by_team(events, WindowInto::new(FixedWindows::of(10)))
        .combine_per_key("TeamTotals", combine::Sum::<i64>::new())
        .apply(
            "Check",
            // red: alice 1 → alice 3 and bob 3; blue: carol 4 → 9. The on-time panes upstream
            // retract and re-emit the same sums: an early pane downstream, then its on-time one.
            assert_panes(panes_of(&[("red", (0, 10), &[1, 6, 6, 6]), ("blue", (0, 10), &[4, 9, 9, 9])])),
        );
    run_ok(&p);
}

/// The events of the sessions cases: alice's sessions [0, 10) and [15, 25) merge into [0, 25)
/// when her element at 8 arrives, last.
fn session_events() -> Vec<Vec<((String, i64), i64)>> {
    let e = |u: &str, v: i64, t: i64| ((u.to_string(), v), t);
    vec![vec![e("alice", 1, 0), e("bob", 2, 30), e("carol", 7, 5)], vec![e("alice", 3, 15)], vec![e("alice", 4, 8)]]
}

/// Team totals over fixed windows of 20 of per-user sums over sessions.
fn session_team_totals(events: PCollection<(String, i64)>) -> PCollection<(String, i64)> {
    user_sums_by_team(events, WindowInto::new(Sessions::with_gap(10)))
        .apply(
            "TeamWindows",
            WindowInto::new(FixedWindows::of(20)).triggering(early_every_bundle()).retracting_fired_panes(),
        )
        .combine_per_key("TeamTotals", combine::Sum::<i64>::new())
}

/// Streaming over sessions that merge, re-windowed into fixed windows between the groupings:
/// the merge retracts alice's sums of the sessions merged away, each in its own window, before
/// the merged session's sum arrives, so every team total is right.
pub fn retracting_session_sums_give_team_totals_in_every_pane_when_sessions_merge(options: PipelineOptions) {
    let p = Pipeline::new(options);
    let mut stream = TestStream::new();
    for batch in session_events() {
        stream = stream.add_elements(batch);
    }
    let events = p.apply("Events", stream.advance_watermark_to(100));
    session_team_totals(events).apply(
        "Check",
        // Session sums land by their timestamps (the end of each session): alice 1 @9 and 3 @24
        // become 8 @24 when her sessions merge; bob 2 @39; carol 7 @14.
        assert_panes(panes_of(&[
            ("red", (0, 20), &[1, 0, 0]),
            ("red", (20, 40), &[2, 5, 10, 10, 10]),
            ("blue", (0, 20), &[7, 7, 7]),
        ])),
    );
    run_ok(&p);
}

/// The fixed-window chain in batch: whatever the bundles and early panes, each window's last
/// pane is the total of the latest per-user sums.
pub fn retracting_user_sums_give_team_totals_in_batch_over_fixed_windows(options: PipelineOptions) {
    let p = Pipeline::new(options.with_bundle_size(1));
    let e = |u: &str, v: i64, t: i64| ((u.to_string(), v), Timestamp(t));
    let events = vec![e("alice", 1, 1), e("carol", 4, 2), e("alice", 2, 3), e("bob", 3, 4), e("carol", 5, 5)];
    let events = p.apply("Events", Create::timestamped(events));
    let expected =
        [(("red".to_string(), Window::interval(0, 10)), 6), (("blue".to_string(), Window::interval(0, 10)), 9)];
    user_sums_by_team(events, WindowInto::new(FixedWindows::of(10)))
        .combine_per_key("TeamTotals", combine::Sum::<i64>::new())
        .apply("Check", assert_last(expected.into_iter().collect(), None));
    run_ok(&p);
}

/// The sessions chain in batch: each window's last pane is the total of the latest per-user
/// sums.
pub fn retracting_session_sums_give_team_totals_in_batch(options: PipelineOptions) {
    let p = Pipeline::new(options.with_bundle_size(1));
    let events: Vec<_> = session_events().concat().into_iter().map(|((u, v), t)| ((u, v), Timestamp(t))).collect();
    let events = p.apply("Events", Create::timestamped(events));
    let expected =
        [(("red".to_string(), Window::interval(20, 40)), 10), (("blue".to_string(), Window::interval(0, 20)), 7)];
    // Red's [0, 20) exists only if alice's first session fired before it merged: then it ends
    // at 0, which is left out.
    session_team_totals(events).apply("Check", assert_last(expected.into_iter().collect(), Some(0)));
    run_ok(&p);
}

/// The batch events of the aggregate cases: alice's sum goes 1 → 3 (or 2 → 3), bob's is 3 and
/// carol's goes to 9, so an aggregate that kept a refined-away sum would be wrong.
fn batch_user_sums(p: &Pipeline) -> PCollection<(String, i64)> {
    let e = |u: &str, v: i64, t: i64| ((u.to_string(), v), Timestamp(t));
    let events = vec![e("alice", 1, 1), e("carol", 4, 2), e("alice", 2, 3), e("bob", 3, 4), e("carol", 5, 5)];
    user_sums_by_team(p.apply("Events", Create::timestamped(events)), WindowInto::new(FixedWindows::of(10)))
}

/// `(team, value)` in the window [0, 10).
fn in_first_window<T>(expected: Vec<(&str, T)>) -> BTreeMap<(String, Window), T> {
    expected.into_iter().map(|(k, v)| ((k.to_string(), Window::interval(0, 10)), v)).collect()
}

/// A user CombineFn: the sum of squares, declaring its inverse or (`invertible: false`) not.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SumOfSquares {
    invertible: bool,
}

impl CombineFn for SumOfSquares {
    type In = i64;
    type Acc = i64;
    type Out = i64;
    fn create_accumulator(&self) -> i64 {
        0
    }
    fn add_input(&self, acc: &mut i64, x: i64) {
        *acc += x * x;
    }
    fn merge_accumulators(&self, acc: &mut i64, other: i64) {
        *acc += other;
    }
    fn retract_input(&self, acc: &mut i64, x: i64) -> Result<(), BoxError> {
        *acc -= x * x;
        Ok(())
    }
    fn retraction(&self) -> Retraction {
        if self.invertible {
            Retraction::Inverse
        } else {
            Retraction::Refuse
        }
    }
    fn extract_output(&self, acc: i64) -> i64 {
        acc
    }
}

/// Mean (a built-in inverse) and a user CombineFn with `retract_input` apply retractions: each
/// team's last pane aggregates the latest per-user sums only.
pub fn mean_and_a_user_combine_fn_apply_retractions(options: PipelineOptions) {
    let p = Pipeline::new(options.with_bundle_size(1));
    let sums = batch_user_sums(&p);
    sums.map("AsI32", |(team, sum): (String, i64)| (team, sum as i32))
        .combine_per_key("TeamMeans", combine::Mean::<i32>::new())
        .apply("CheckMeans", assert_last(in_first_window(vec![("red", 3.0), ("blue", 9.0)]), None));
    sums.combine_per_key("TeamSquares", SumOfSquares { invertible: true })
        .apply("CheckSquares", assert_last(in_first_window(vec![("red", 18), ("blue", 81)]), None));
    run_ok(&p);
}

/// Min has no inverse: over retracting input it keeps a multiset of its inputs, so a refined-away
/// smaller sum no longer counts.
pub fn min_over_retracting_input_keeps_a_multiset_of_inputs(options: PipelineOptions) {
    let p = Pipeline::new(options.with_bundle_size(1));
    batch_user_sums(&p)
        .combine_per_key("TeamMin", combine::Min::<i64>::new())
        .apply("Check", assert_last(in_first_window(vec![("red", Some(3)), ("blue", Some(9))]), None));
    run_ok(&p);
}

/// GroupByKey of retracting input: a retraction removes its value from the group, and the
/// grouping retracts its previous group before emitting the new one.
pub fn group_by_key_of_retracting_input_removes_retracted_values(options: PipelineOptions) {
    let p = Pipeline::new(options.with_bundle_size(1));
    batch_user_sums(&p)
        .group_by_key("TeamGroups")
        .map("Sorted", |(team, mut sums): (String, Vec<i64>)| {
            sums.sort();
            (team, sums)
        })
        .apply("Check", assert_last(in_first_window(vec![("red", vec![3, 3]), ("blue", vec![9])]), None));
    run_ok(&p);
}

/// A combine without an inverse that does not ask for a multiset is refused over retracting
/// input, at construction, naming the transform.
pub fn combine_without_an_inverse_over_retracting_input_is_refused(options: PipelineOptions) {
    let message = expect_run_failure(options, |p| {
        batch_user_sums(p).combine_per_key("TeamSquares", SumOfSquares { invertible: false });
    });
    crate::assert_contains_all(&message, &["'TeamSquares'", "carries retractions", "no inverse", "retract_input"]);
}

/// A WindowInto into a non-retracting strategy downstream of retractions is refused (a later
/// grouping would count every refinement); rendering the retractions first is accepted.
pub fn window_into_a_non_retracting_strategy_after_retractions_is_refused(options: PipelineOptions) {
    let message = expect_run_failure(options.clone(), |p| {
        batch_user_sums(p).apply("Rewindow", WindowInto::new(GlobalWindows::of()));
    });
    crate::assert_contains_all(&message, &["'Rewindow'", "carries retractions", "not retracting", "RenderRetractions"]);

    let p = Pipeline::new(options);
    batch_user_sums(&p)
        .apply(
            "Render",
            RenderRetractions(|(team, sum): (String, i64), retraction: bool| {
                (team, if retraction { -sum } else { sum })
            }),
        )
        .apply("Rewindow", WindowInto::new(GlobalWindows::of()))
        .combine_per_key("Net", combine::Sum::<i64>::new())
        .apply("Check", PAssert::equal_in_any_order(vec![("red".to_string(), 6i64), ("blue".to_string(), 9)]));
    run_ok(&p);
}

/// The text sink cannot take a line back: it refuses retracting input naming the transform,
/// unless told how to render retractions as lines; then every refinement is written.
pub fn text_sink_refuses_retracting_input_unless_it_renders_retractions(options: PipelineOptions) {
    let dir = std::env::temp_dir().join(format!(
        "runnel-retract-sink-{}-{:?}",
        std::process::id(),
        std::thread::current().id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    let prefix = dir.join("totals").display().to_string();
    let lines = |p: &Pipeline| batch_user_sums(p).map("Lines", |(team, sum): (String, i64)| format!("{team} {sum}"));

    let refused_prefix = prefix.clone();
    let message = expect_run_failure(options.clone(), move |p| {
        lines(p).apply("Write", runnel_io::text::WriteToText::new(&refused_prefix));
    });
    crate::assert_contains_all(&message, &["'Write'", "carries retractions", "with_retractions_rendered"]);

    let p = Pipeline::new(options.with_bundle_size(1));
    lines(&p).apply(
        "Write",
        runnel_io::text::WriteToText::new(&prefix)
            .with_num_shards(1)
            .with_retractions_rendered(|line, retraction| format!("{}{line}", if retraction { "-" } else { "+" })),
    );
    run_ok(&p);
    let written = std::fs::read_to_string(format!("{prefix}-00000-of-00001")).expect("the shard is written");
    // What the lines net to: each user's latest sum once (alice's and bob's are both 3).
    let mut net: BTreeMap<String, i64> = BTreeMap::new();
    for line in written.lines() {
        let (sign, rest) = line.split_at(1);
        *net.entry(rest.to_string()).or_default() += if sign == "-" { -1 } else { 1 };
    }
    net.retain(|_, n| *n != 0);
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(net, BTreeMap::from([("red 3".to_string(), 2), ("blue 9".to_string(), 1)]), "{written}");
}

/// Element-wise transforms and Flatten carry the retraction flag: the teams split by a Filter
/// and flattened back still total the latest per-user sums.
pub fn filter_and_flatten_carry_retractions(options: PipelineOptions) {
    let p = Pipeline::new(options.with_bundle_size(1));
    let sums = batch_user_sums(&p);
    let red = sums.filter("Red", |(team, _): &(String, i64)| team == "red");
    let blue = sums.filter("Blue", |(team, _): &(String, i64)| team == "blue");
    p.apply_to("Teams", vec![red, blue], Flatten)
        .combine_per_key("TeamTotals", combine::Sum::<i64>::new())
        .apply("Check", assert_last(in_first_window(vec![("red", 6), ("blue", 9)]), None));
    run_ok(&p);
}

/// A side input view of retracting input holds the latest values: each retraction removes the
/// value it retracts.
pub fn side_input_of_retracting_input_holds_the_latest_values(options: PipelineOptions) {
    let p = Pipeline::new(options.with_bundle_size(1));
    let view = View::as_multimap(&batch_user_sums(&p));
    let v = view.clone();
    let teams = vec![("red".to_string(), Timestamp(1)), ("blue".to_string(), Timestamp(1))];
    p.apply("Teams", Create::timestamped(teams))
        .apply("TeamWindows", WindowInto::new(FixedWindows::of(10)))
        .apply(
            "Lookup",
            ParDo::from_fn(move |team: String, ctx: &mut DoFnContext<'_, '_, (String, Vec<i64>)>| {
                let mut sums = ctx.side_input(&v)?.get(&team).cloned().unwrap_or_default();
                sums.sort();
                ctx.emit((team, sums));
                Ok(())
            })
            .with_side_input(&view),
        )
        .apply(
            "Check",
            PAssert::equal_in_any_order(vec![("red".to_string(), vec![3i64, 3]), ("blue".to_string(), vec![9])]),
        );
    run_ok(&p);
}

/// Order: a refinement's retraction never reaches the next grouping before the value it
/// retracts, nor after the value replacing it (one event of elements cut into bundles of one,
/// whose outputs a runner free to reorder bundles would deliver in any order). With a single user per team, every team total must then be a sum the
/// user's grouping emitted; a misordered retraction would show a total no one emitted (the
/// values are powers of two, so every emitted sum is a distinct set of bits).
pub fn retractions_reach_the_next_grouping_in_order(options: PipelineOptions) {
    let p = Pipeline::new(options.with_bundle_size(1));
    let events: Vec<_> = (0..24).map(|i| (("alice".to_string(), 1i64 << i), 0)).collect();
    let user_sums = p
        .apply("Events", TestStream::new().add_elements(events))
        .apply(
            "UserWindows",
            WindowInto::new(GlobalWindows::of())
                .triggering(Triggers::repeatedly(AfterCount::of(1)))
                .retracting_fired_panes(),
        )
        .combine_per_key("UserSums", combine::Sum::<i64>::new());
    let team_totals = user_sums
        .map("ByTeam", |(user, sum): (String, i64)| (team(&user), sum))
        .combine_per_key("TeamTotals", combine::Sum::<i64>::new());
    p.apply_to("Both", vec![user_sums, team_totals], Flatten).apply(
        "Check",
        Assert::on_elements(|observed: &[Observed<(String, i64)>]| {
            let values = |key: &str| -> Vec<i64> {
                observed.iter().filter(|o| !o.retraction && o.value.0 == key).map(|o| o.value.1).collect()
            };
            let (emitted, totals) = (values("alice"), values("red"));
            match totals.iter().find(|t| !emitted.contains(t)) {
                None if totals.contains(&((1 << 24) - 1)) => Ok(()),
                None => Err(format!("no team total is the full sum: {totals:?}")),
                Some(t) => Err(format!("team total {t:#b} was never a user sum (emitted {emitted:?})")),
            }
        }),
    );
    run_ok(&p);
}
