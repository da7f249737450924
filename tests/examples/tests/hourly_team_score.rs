//! Black-box tests of the `hourly_team_score` example (Beam's HourlyTeamScore): its command line, output files,
//! parse error counter and graph, per the shared brief `contracts.md`. Expected outputs are computed by hand (the
//! comments give each event's time in UTC). The program is found and built as the crate documentation of
//! `runnel_example_tests` explains.

use runnel_example_tests::{file_names, read_shards, run_example, sorted};
use std::fs;
use std::path::Path;
use tempfile::TempDir;

fn write(dir: &Path, name: &str, contents: &str) {
    let path = dir.join(name);
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, contents).unwrap();
}

/// The `num_parse_errors: N` line of stderr.
fn parse_errors_line(stderr: &str) -> Vec<&str> {
    stderr.lines().filter(|l| l.starts_with("num_parse_errors")).collect()
}

/// Runs the program on `events` (written to `events.csv`) with `flags`, checks that it succeeded with
/// `parse_errors` parse errors, and returns its output lines, sorted.
fn run(events: &str, flags: &[&str], parse_errors: u64) -> Vec<String> {
    let dir = TempDir::new().unwrap();
    write(dir.path(), "events.csv", events);
    let mut args = vec!["--input=events.csv", "--output=out/team_scores"];
    args.extend_from_slice(flags);
    let run = run_example("hourly_team_score", dir.path(), &args);
    assert!(run.success, "{run:?}");
    assert_eq!(parse_errors_line(&run.stderr), [format!("num_parse_errors: {parse_errors}")], "{}", run.stderr);
    read_shards(&dir.path().join("out"), "team_scores").1
}

#[test]
fn sums_per_team_in_hourly_windows_with_exact_boundaries() {
    let lines = run(
        "user1_Red,Red,5,1446454800000,2015-11-02 09:00:00.000\n\
         user2_Red,Red,3,1446458399999,2015-11-02 09:59:59.999\n\
         user1_Red,Red,2,1446458400000,2015-11-02 10:00:00.000\n\
         user3_Blue,Blue,7,1446454799999,2015-11-02 08:59:59.999\n\
         user4_Blue,Blue,1,1446460200000,2015-11-02 10:30:00.000\n\
         user1_Red,Red,10,1446508799999,2015-11-02 23:59:59.999\n\
         user4_Blue,Blue,4,1446508800000,2015-11-03 00:00:00.000\n\
         user5_Old,Old,6,-1,1969-12-31 23:59:59.999\n\
         user5_Old,Old,9,0,1970-01-01 00:00:00.000\n",
        &[],
        0,
    );
    assert_eq!(
        lines,
        sorted(&[
            "team: Red, total_score: 8, window_start: 2015-11-02 09:00:00.000",
            "team: Red, total_score: 2, window_start: 2015-11-02 10:00:00.000",
            "team: Red, total_score: 10, window_start: 2015-11-02 23:00:00.000",
            "team: Blue, total_score: 7, window_start: 2015-11-02 08:00:00.000",
            "team: Blue, total_score: 1, window_start: 2015-11-02 10:00:00.000",
            "team: Blue, total_score: 4, window_start: 2015-11-03 00:00:00.000",
            // No bound by default: events before the epoch are kept too.
            "team: Old, total_score: 6, window_start: 1969-12-31 23:00:00.000",
            "team: Old, total_score: 9, window_start: 1970-01-01 00:00:00.000",
        ])
    );
}

#[test]
fn sums_per_team_not_per_user_and_skips_malformed_lines() {
    let lines = run(
        "user1_Red,Red,5,1446454800000,2015-11-02 09:00:00.000\n\
         user2_Red,Red,-3,1446455000000,2015-11-02 09:03:20.000\n\
         \"Smith, Jo\",\"Red\",\"4\",1446455000001\r\n\
         user1_Red,Red,lots,1446455000002\n\
         user1_Red,Red,1,1446455000003.5\n\
         user1_Red,Red,1\n\
         \n\
         \"unterminated,Red,1,1446455000004\n\
         user,team,score,timestamp_ms,readable_time\n\
         user1_Red,Red,1,9223372036854775807,far beyond the end of time\n\
         user9_Zero,Zero,0,1446455000005",
        &[],
        7,
    );
    assert_eq!(
        lines,
        sorted(&[
            "team: Red, total_score: 6, window_start: 2015-11-02 09:00:00.000",
            "team: Zero, total_score: 0, window_start: 2015-11-02 09:00:00.000",
        ])
    );
}

/// Events at, just inside and just outside the bounds 09:00 and 10:00, in windows of 30 minutes.
const AROUND_BOUNDS: &str = "\
a,A,1,1446454800000,2015-11-02 09:00:00.000 (= start: dropped)
a,A,2,1446454800001,2015-11-02 09:00:00.001
a,A,4,1446456599999,2015-11-02 09:29:59.999
a,A,8,1446456600000,2015-11-02 09:30:00.000
b,B,16,1446458399999,2015-11-02 09:59:59.999
b,B,32,1446458400000,2015-11-02 10:00:00.000 (= stop: dropped)
b,B,64,1446454799999,2015-11-02 08:59:59.999 (before start: dropped)
a,A,128,1446458400001,2015-11-02 10:00:00.001 (after stop: dropped)
not,an,event
";

#[test]
fn keeps_only_events_strictly_between_the_bounds() {
    let lines =
        run(AROUND_BOUNDS, &["--start-min=2015-11-02-09-00", "--stop-min=2015-11-02-10-00", "--window-duration=30"], 1);
    assert_eq!(
        lines,
        sorted(&[
            "team: A, total_score: 6, window_start: 2015-11-02 09:00:00.000",
            "team: A, total_score: 8, window_start: 2015-11-02 09:30:00.000",
            "team: B, total_score: 16, window_start: 2015-11-02 09:30:00.000",
        ])
    );
}

#[test]
fn each_bound_works_alone() {
    let lines = run(AROUND_BOUNDS, &["--start-min=2015-11-02-09-00", "--window-duration=30"], 1);
    assert_eq!(
        lines,
        sorted(&[
            "team: A, total_score: 6, window_start: 2015-11-02 09:00:00.000",
            "team: A, total_score: 8, window_start: 2015-11-02 09:30:00.000",
            "team: A, total_score: 128, window_start: 2015-11-02 10:00:00.000",
            "team: B, total_score: 16, window_start: 2015-11-02 09:30:00.000",
            "team: B, total_score: 32, window_start: 2015-11-02 10:00:00.000",
        ])
    );
    let lines = run(AROUND_BOUNDS, &["--stop-min=2015-11-02-10-00", "--window-duration=30"], 1);
    assert_eq!(
        lines,
        sorted(&[
            "team: A, total_score: 7, window_start: 2015-11-02 09:00:00.000",
            "team: A, total_score: 8, window_start: 2015-11-02 09:30:00.000",
            "team: B, total_score: 64, window_start: 2015-11-02 08:30:00.000",
            "team: B, total_score: 16, window_start: 2015-11-02 09:30:00.000",
        ])
    );
}

#[test]
fn the_default_window_is_an_hour_and_bounds_need_not_be_on_window_edges() {
    let lines = run(AROUND_BOUNDS, &["--start-min=2015-11-02-08-59", "--stop-min=2015-11-02-10-01"], 1);
    assert_eq!(
        lines,
        sorted(&[
            "team: A, total_score: 15, window_start: 2015-11-02 09:00:00.000",
            "team: A, total_score: 128, window_start: 2015-11-02 10:00:00.000",
            "team: B, total_score: 64, window_start: 2015-11-02 08:00:00.000",
            "team: B, total_score: 16, window_start: 2015-11-02 09:00:00.000",
            "team: B, total_score: 32, window_start: 2015-11-02 10:00:00.000",
        ])
    );
}

#[test]
fn windows_are_aligned_to_the_epoch_not_to_the_hour() {
    // 2015-11-02 00:00 UTC is minute 24,107,040 of the epoch, 6 more than a multiple of 7: windows of 7 minutes
    // start at 23:54, 00:01, 00:08, …
    let lines = run(
        "u,T,1,1446422459999,2015-11-02 00:00:59.999\n\
         u,T,2,1446422580000,2015-11-02 00:03:00.000\n\
         u,T,4,1446422879999,2015-11-02 00:07:59.999\n\
         u,T,8,1446422880000,2015-11-02 00:08:00.000\n",
        &["--window-duration=7"],
        0,
    );
    assert_eq!(
        lines,
        sorted(&[
            "team: T, total_score: 1, window_start: 2015-11-01 23:54:00.000",
            "team: T, total_score: 6, window_start: 2015-11-02 00:01:00.000",
            "team: T, total_score: 8, window_start: 2015-11-02 00:08:00.000",
        ])
    );
    // A day-long window.
    let lines = run(
        "u,T,1,1446422459999\nu,T,2,1446508799999\nu,T,4,1446508800000\n",
        &["--window-duration=1440", "--num-shards=3"],
        0,
    );
    assert_eq!(
        lines,
        sorted(&[
            "team: T, total_score: 3, window_start: 2015-11-02 00:00:00.000",
            "team: T, total_score: 4, window_start: 2015-11-03 00:00:00.000",
        ])
    );
}

#[test]
fn reads_every_file_of_a_glob_into_sharded_output() {
    let dir = TempDir::new().unwrap();
    write(dir.path(), "in/a.csv", "u,Red,1,1446454800000\nu,Blue,2,1446454800000\n");
    write(dir.path(), "in/b.csv", "v,Red,3,1446458399999\r\nbroken\r\n");
    write(dir.path(), "in/c.csv", "");
    let run = run_example("hourly_team_score", dir.path(), &["--input=in/*.csv", "--output=scores", "--num-shards=2"]);
    assert!(run.success, "{run:?}");
    assert_eq!(parse_errors_line(&run.stderr), ["num_parse_errors: 1"], "{}", run.stderr);
    let (names, lines) = read_shards(dir.path(), "scores");
    assert_eq!(names, ["scores-00000-of-00002", "scores-00001-of-00002"]);
    assert_eq!(
        lines,
        sorted(&[
            "team: Red, total_score: 4, window_start: 2015-11-02 09:00:00.000",
            "team: Blue, total_score: 2, window_start: 2015-11-02 09:00:00.000",
        ])
    );
}

#[test]
fn no_events_give_empty_output() {
    assert!(run("", &[], 0).is_empty());
    assert!(run("u,T,1,1446454800000\n", &["--stop-min=2015-11-02-09-00"], 0).is_empty());
}

#[test]
fn bad_flags_fail_naming_the_flag_and_write_nothing() {
    let dir = TempDir::new().unwrap();
    write(dir.path(), "events.csv", "u,T,1,1446454800000\n");
    for (flag, named) in [
        ("--start-min=2015-11-02", "2015-11-02"),
        ("--stop-min=2015-11-02-24-00", "2015-11-02-24-00"),
        ("--window-duration=0", "--window-duration"),
        ("--window-duration=ten", "--window-duration"),
    ] {
        let run = run_example("hourly_team_score", dir.path(), &["--input=events.csv", "--output=scores", flag]);
        assert!(!run.success, "{flag}: {run:?}");
        assert!(run.stderr.contains(named), "{flag}: {}", run.stderr);
        assert_eq!(file_names(dir.path()), ["events.csv"], "{flag}: nothing written");
    }
    let run = run_example("hourly_team_score", dir.path(), &["--input=nothing-*.csv", "--output=scores"]);
    assert!(!run.success, "{run:?}");
    assert!(run.stderr.starts_with("error: ") && run.stderr.contains("'nothing-*.csv'"), "{}", run.stderr);
    assert_eq!(file_names(dir.path()), ["events.csv"]);
}

#[test]
fn dump_graph_writes_the_graph_and_runs_nothing() {
    let dir = TempDir::new().unwrap();
    write(dir.path(), "events.csv", "u,t,1,2\n");
    let run = run_example(
        "hourly_team_score",
        dir.path(),
        &[
            "--input=events.csv",
            "--output=scores",
            "--window-duration=30",
            "--start-min=2015-11-02-09-00",
            "--stop-min=2015-11-02-10-00",
            "--dump-graph=graph.json",
        ],
    );
    assert!(run.success, "{run:?}");
    assert_eq!(file_names(dir.path()), ["events.csv", "graph.json"], "nothing ran: no output");
    let json = fs::read_to_string(dir.path().join("graph.json")).unwrap();
    let mut graph = runnel_model::Graph::from_json(&json).expect("the dump deserialises");
    graph.validate().expect("the dump is a valid graph");
    assert_eq!(graph.to_json(), json, "the dump is the graph's deterministic JSON");
    for name in ["gaming.ParseGameEvent", "gaming.AddEventTimestamps", "hourly_team_score.FilterByTime"] {
        assert!(json.contains(name), "the graph names the registered DoFn {name}");
    }
    // Fixed windows of 30 minutes, and the bounds 2015-11-02 09:00 and 10:00 UTC, are plain data in the graph.
    assert!(json.contains("1800000") && json.contains("1446454800000") && json.contains("1446458400000"), "{json}");
    // The binary's fingerprint differs from build to build (absent today): keep it out of the snapshot.
    graph.environment.binary_fingerprint = None;
    insta::assert_snapshot!("hourly_team_score_graph", graph.to_json());
}
