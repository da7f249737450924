//! `--explain` prints the plan every example would run (stages, fused transforms, shuffles,
//! lifted combines, side inputs) and runs nothing; the plans are snapshots, so a change in
//! fusion or planning shows up in review.

use runnel_example_tests::{file_names, run_example};
use tempfile::TempDir;

/// Runs `name --explain` with `args` in a directory holding only the (empty) files `inputs`, and
/// returns its standard output.
fn explain_with(name: &str, args: &[&str], inputs: &[&str]) -> String {
    let dir = TempDir::new().unwrap();
    for input in inputs {
        std::fs::write(dir.path().join(input), b"").unwrap();
    }
    let before = file_names(dir.path());
    let mut all: Vec<&str> = args.to_vec();
    all.push("--explain");
    let run = run_example(name, dir.path(), &all);
    assert!(run.success, "{run:?}");
    assert_eq!(file_names(dir.path()), before, "--explain ran nothing");
    assert!(run.stderr.is_empty(), "--explain prints only the plan: {}", run.stderr);
    assert!(run.stdout.starts_with("Plan for the direct runner:"), "{}", run.stdout);
    // One screen: a person reads it at a glance.
    assert!(run.stdout.lines().count() < 60, "{}", run.stdout);
    run.stdout
}

fn explain(name: &str, args: &[&str]) -> String {
    explain_with(name, args, &[])
}

#[test]
fn wordcount_plan() {
    let plan = explain("wordcount", &["--input=in.txt", "--output=out/counts"]);
    assert!(plan.contains("precombined"), "the count is lifted: {plan}");
    insta::assert_snapshot!(plan);
}

#[test]
fn wordcount_plan_without_lifted_combines() {
    let plan = explain("wordcount", &["--input=in.txt", "--output=out/counts", "--direct-lift-combines=off"]);
    assert!(!plan.contains("precombined"), "{plan}");
    insta::assert_snapshot!(plan);
}

#[test]
fn user_score_plan() {
    insta::assert_snapshot!(explain("user_score", &["--input=events.csv", "--output=out/scores"]));
}

#[test]
fn hourly_team_score_plan() {
    insta::assert_snapshot!(explain("hourly_team_score", &["--input=events.csv", "--output=out/scores"]));
}

#[test]
fn leader_board_plan() {
    // The replay file is read when the pipeline is built.
    insta::assert_snapshot!(explain_with(
        "leader_board",
        &["--input=replay.txt", "--output=out/scores"],
        &["replay.txt"]
    ));
}

#[test]
fn game_stats_plan() {
    insta::assert_snapshot!(explain("game_stats", &["--input=events.csv", "--output=out/stats"]));
}
