//! Black-box tests of the `game_stats` example: spammers left out of team scores through a
//! windowed side input, and session windows (merging) averaged per activity window.

use runnel_example_tests::{read_shards, run_example, sorted};
use std::fs;
use tempfile::TempDir;

#[test]
fn team_scores_without_spammers_and_mean_session_lengths() {
    let dir = TempDir::new().unwrap();
    // Window 00:00: totals alice 20, bob 5, carol 7, dave 300, erin 4, frank 6; mean 57, so dave
    // (300 > 142.5) is a spammer and blue keeps only carol's 7. Window 01:00: alice 3 alone.
    // Sessions (gap 5 min): alice's 0 and 2 min events merge into [0, 7 min): 7 minutes; the
    // others last 5 minutes; alice's 60 min event is a 5-minute session ending in 01:00.
    fs::write(
        dir.path().join("events.csv"),
        "alice,red,10,0,x\nalice,red,10,120000,x\nbob,red,5,60000,x\ncarol,blue,7,180000,x\n\
         dave,blue,300,200000,x\nerin,green,4,240000,x\nfrank,green,6,250000,x\nalice,red,3,3600000,x\nnot,an,event\n",
    )
    .unwrap();
    let run = run_example("game_stats", dir.path(), &["--input=events.csv", "--output=out/stats"]);
    assert!(run.success, "{run:?}");
    assert!(run.stderr.contains("num_parse_errors: 1"), "{}", run.stderr);
    assert!(run.stderr.contains("num_spammers: 1"), "{}", run.stderr);
    let (_, lines) = read_shards(&dir.path().join("out"), "stats");
    assert_eq!(
        lines,
        sorted(&[
            "team: red, total_score: 25, window_start: 1970-01-01 00:00:00.000",
            "team: blue, total_score: 7, window_start: 1970-01-01 00:00:00.000",
            "team: green, total_score: 10, window_start: 1970-01-01 00:00:00.000",
            "team: red, total_score: 3, window_start: 1970-01-01 01:00:00.000",
            "mean_session_minutes: 5.33, sessions: 6, window_start: 1970-01-01 00:00:00.000",
            "mean_session_minutes: 5.00, sessions: 1, window_start: 1970-01-01 01:00:00.000",
        ])
    );
}

#[test]
fn a_longer_gap_merges_more_events_into_one_session() {
    let dir = TempDir::new().unwrap();
    fs::write(dir.path().join("events.csv"), "a,t,1,0,x\na,t,1,600000,x\na,t,1,1200000,x\n").unwrap();
    let run = run_example("game_stats", dir.path(), &["--input=events.csv", "--output=out/s", "--session-gap=15"]);
    assert!(run.success, "{run:?}");
    let (_, lines) = read_shards(&dir.path().join("out"), "s");
    assert!(
        lines.contains(&"mean_session_minutes: 35.00, sessions: 1, window_start: 1970-01-01 00:30:00.000".to_string()),
        "{lines:?}"
    );
}
