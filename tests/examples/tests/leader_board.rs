//! Black-box tests of the `leader_board` example (Beam's LeaderBoard) over a replay file: the
//! panes are checked against a transcript worked out by hand, step by step, below.

use runnel_example_tests::{read_shards, run_example, sorted};
use std::fs;
use tempfile::TempDir;

/// The replay, with what each step causes (processing time starts at 0; team windows of 60 min,
/// early firings 5 min after a pane's first element, a late firing per late event, 120 min of
/// allowed lateness; user panes 10 min after a pane's first element; accumulating).
const REPLAY: &str = "\
user1,red,3,1000,x
user2,blue,5,2000,x
@processing-time +300000
user1,red,4,3000,x
@watermark 3600000
user3,red,10,5000,x
bad line
@processing-time +600000
@watermark 7200000
user1,red,1,4000,x
@watermark 12000000
user1,red,100,6000,x
";
// pt 0:       red 3 and blue 5 arrive: early timers at pt 300000; user timers at pt 600000.
// pt 300000:  red EARLY 3 (index 0), blue EARLY 5 (index 0).
//             red 4 arrives: next early timer at pt 600000.
// wm 3600000: the window [00:00, 01:00) ends: red ON_TIME 7 (index 1); blue ON_TIME 5 (index 1:
//             on-time panes fire even without new data).
//             red 10 arrives late (within lateness): red LATE 17 (index 2); user3's timer at
//             pt 900000. "bad line" is counted.
// pt 900000:  user1 EARLY 7, user2 EARLY 5, user3 EARLY 10 (each index 0); red's early timer is
//             moot (past the end of the window).
// wm 7200000: nothing (the window expires at 01:00 + 120 min = 10800000).
//             red 1 arrives late: red LATE 18 (index 3).
// wm 12000000: the window expires; nothing new, so no final pane (FIRE_IF_NON_EMPTY).
//             red 100 arrives for the expired window: dropped and counted; user1 gets it.
// wm +inf:    the global window ends: every user's ON_TIME pane (index 1), user1 with 108.

#[test]
fn replay_gives_the_hand_checked_panes() {
    let dir = TempDir::new().unwrap();
    fs::write(dir.path().join("replay.txt"), REPLAY).unwrap();
    let run = run_example("leader_board", dir.path(), &["--input=replay.txt", "--output=out/scores"]);
    assert!(run.success, "{run:?}");
    assert!(run.stderr.contains("num_parse_errors: 1"), "{}", run.stderr);
    assert!(run.stderr.contains("dropped_due_to_lateness: 1"), "{}", run.stderr);
    let (_, lines) = read_shards(&dir.path().join("out"), "scores");
    let w = "window_start: 1970-01-01 00:00:00.000";
    assert_eq!(
        lines,
        sorted(&[
            &format!("team: red, total_score: 3, {w}, timing: EARLY, index: 0"),
            &format!("team: blue, total_score: 5, {w}, timing: EARLY, index: 0"),
            &format!("team: red, total_score: 7, {w}, timing: ON_TIME, index: 1"),
            &format!("team: blue, total_score: 5, {w}, timing: ON_TIME, index: 1"),
            &format!("team: red, total_score: 17, {w}, timing: LATE, index: 2"),
            &format!("team: red, total_score: 18, {w}, timing: LATE, index: 3"),
            "user: user1, total_score: 7, timing: EARLY, index: 0",
            "user: user2, total_score: 5, timing: EARLY, index: 0",
            "user: user3, total_score: 10, timing: EARLY, index: 0",
            "user: user1, total_score: 108, timing: ON_TIME, index: 1",
            "user: user2, total_score: 5, timing: ON_TIME, index: 1",
            "user: user3, total_score: 10, timing: ON_TIME, index: 1",
        ])
    );
}

/// A blank line is an unparsable line, as Beam's `ParseEventFn` treats it: counted, not skipped.
/// The file's final newline ends the last line and adds no blank one.
#[test]
fn a_blank_line_is_counted_as_a_parse_error() {
    let dir = TempDir::new().unwrap();
    fs::write(dir.path().join("replay.txt"), "user1,red,3,1000,x\n\n@watermark 3600000\r\n\r\nuser2,red,4,2000,x\n")
        .unwrap();
    let run = run_example("leader_board", dir.path(), &["--input=replay.txt", "--output=out/s"]);
    assert!(run.success, "{run:?}");
    assert!(run.stderr.contains("num_parse_errors: 2"), "{}", run.stderr);
}

#[test]
fn durations_come_from_the_flags() {
    // With no allowed lateness the late events are dropped, and with 1-minute early firings the
    // first processing-time step fires both teams early.
    let dir = TempDir::new().unwrap();
    fs::write(dir.path().join("replay.txt"), REPLAY).unwrap();
    let run = run_example(
        "leader_board",
        dir.path(),
        &["--input=replay.txt", "--output=out/s", "--allowed-lateness=0", "--early-period=1", "--user-period=60"],
    );
    assert!(run.success, "{run:?}");
    assert!(run.stderr.contains("dropped_due_to_lateness: 3"), "{}", run.stderr);
    let (_, lines) = read_shards(&dir.path().join("out"), "s");
    assert!(!lines.iter().any(|l| l.contains("LATE")), "{lines:?}");
    assert!(
        !lines.iter().any(|l| l.starts_with("user") && l.contains("EARLY")),
        "users fire only at the end: {lines:?}"
    );
}

#[test]
fn a_missing_replay_file_is_a_clear_error() {
    let dir = TempDir::new().unwrap();
    let run = run_example("leader_board", dir.path(), &["--input=nope.txt", "--output=out/s"]);
    assert!(!run.success);
    assert!(run.stderr.contains("nope.txt"), "{}", run.stderr);
    assert!(!dir.path().join("out").exists() || fs::read_dir(dir.path().join("out")).unwrap().next().is_none());
}
