//! `--explain` prints the plan every example would run (stages, fused transforms, shuffles,
//! lifted combines, side inputs) and runs nothing; the plans are snapshots, so a change in
//! fusion or planning shows up in review.

use runnel_example_tests::{file_names, run_example};
use tempfile::TempDir;

/// Runs `name --explain` with `args` in an empty directory and returns its standard output.
fn explain(name: &str, args: &[&str]) -> String {
    let dir = TempDir::new().unwrap();
    let mut all: Vec<&str> = args.to_vec();
    all.push("--explain");
    let run = run_example(name, dir.path(), &all);
    assert!(run.success, "{run:?}");
    assert!(file_names(dir.path()).is_empty(), "--explain ran nothing: {:?}", file_names(dir.path()));
    assert!(run.stdout.starts_with("Plan for the direct runner:"), "{}", run.stdout);
    // One screen: a person reads it at a glance.
    assert!(run.stdout.lines().count() < 60, "{}", run.stdout);
    run.stdout
}

#[test]
fn wordcount_plan() {
    insta::assert_snapshot!(explain("wordcount", &["--input=in.txt", "--output=out/counts"]));
}

#[test]
fn wordcount_plan_with_lifted_combines() {
    let plan = explain("wordcount", &["--input=in.txt", "--output=out/counts", "--direct-lift-combines=on"]);
    assert!(plan.contains("precombined"), "{plan}");
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
    insta::assert_snapshot!(explain("leader_board", &["--input=replay.txt", "--output=out/scores"]));
}

#[test]
fn game_stats_plan() {
    insta::assert_snapshot!(explain("game_stats", &["--input=events.csv", "--output=out/stats"]));
}
