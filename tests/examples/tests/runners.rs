//! The same example program on every runner gives the same output: wordcount, user_score and
//! hourly_team_score on the direct and the rayon runner, and on the portable runner through Beam
//! Python's local job service and through Prism (both started by the test), over generated input
//! with parse errors.

use runnel_example_tests::{read_shards, run_example};
use runnel_runner_portable::local_job_service::{LocalJobService, LocalPrism};
use std::fmt::Write as _;
use std::fs;
use tempfile::TempDir;

/// Runs `name` with `args` on `runner` (a `--runner` value, then more flags) in a directory holding
/// `input` as `input_name`, and returns its sorted output lines and its stderr.
fn output(name: &str, runner: &[&str], input_name: &str, input: &str, args: &[&str]) -> (Vec<String>, String) {
    let dir = TempDir::new().unwrap();
    fs::write(dir.path().join(input_name), input).unwrap();
    let temp = dir.path().join("tmp");
    fs::create_dir(&temp).unwrap();
    let runner_flag = format!("--runner={}", runner[0]);
    let temp_flag = format!("--temp-dir={}", temp.display());
    let mut all: Vec<&str> = args.to_vec();
    all.push(&runner_flag);
    all.push(&temp_flag);
    all.extend_from_slice(&runner[1..]);
    let run = run_example(name, dir.path(), &all);
    assert!(run.success, "{name} on {runner:?}: {run:?}");
    assert_eq!(fs::read_dir(&temp).unwrap().count(), 0, "{name} on {runner:?} left temporary files");
    // The summary's elapsed time differs from run to run, and only a spilling runner reports what
    // it spilled; the other counters must not differ.
    let counters = run
        .stderr
        .lines()
        .filter(|l| !l.contains("job finished in") && !l.contains("rayon_spilled_"))
        .collect::<Vec<_>>()
        .join("\n");
    assert!(counters.contains("num_parse_errors") || name == "wordcount", "{}", run.stderr);
    (read_shards(&dir.path().join("out"), "result").1, counters)
}

/// Asserts `name` gives the same output and the same counters on the portable runner, through
/// Beam Python's job service and through Prism, as on the direct runner.
fn same_on_portable(name: &str, input_name: &str, input: &str, args: &[&str]) {
    let (direct, direct_err) = output(name, &["direct"], input_name, input, args);
    assert!(!direct.is_empty(), "{name} gave no output");
    let python = LocalJobService::start().unwrap();
    let prism = LocalPrism::start().unwrap();
    for (server, endpoint) in [("Beam Python's job service", python.endpoint()), ("Prism", prism.endpoint())] {
        let endpoint = format!("--job-endpoint={endpoint}");
        let mut with_endpoint = args.to_vec();
        with_endpoint.push(&endpoint);
        let (portable, portable_err) = output(name, &["portable"], input_name, input, &with_endpoint);
        assert_eq!(direct, portable, "{name}: the portable runner's output on {server} differs from direct's");
        assert_eq!(direct_err, portable_err, "{name}: the portable runner's counters on {server} differ from direct's");
    }
}

/// Asserts `name` gives the same output and the same stderr (counters) on both runners, and on
/// the rayon runner spilling every grouping to disk (a one-byte memory budget).
fn same_on_every_runner(name: &str, input_name: &str, input: &str, args: &[&str]) {
    let (direct, direct_err) = output(name, &["direct"], input_name, input, args);
    assert!(!direct.is_empty(), "{name} gave no output");
    for runner in [&["rayon"][..], &["rayon", "--memory-budget=1B"]] {
        let (rayon, rayon_err) = output(name, runner, input_name, input, args);
        assert_eq!(direct, rayon, "{name}: {runner:?} gives another output than the direct runner");
        assert_eq!(direct_err, rayon_err, "{name}: the counters differ on {runner:?}");
    }
}

/// Game events `user,team,score,timestamp_ms,readable` over a few hours, with some bad lines.
fn game_events(n: usize) -> String {
    let mut s = String::new();
    for i in 0..n {
        if i % 97 == 0 {
            s.push_str("not,a,valid,line\n");
            continue;
        }
        let user = format!("user{}_{}", i % 37, ["Red", "Blue", "Green"][i % 3]);
        let team = ["Red", "Blue", "Green"][i % 3];
        let ts = 1_446_454_800_000i64 + (i as i64 * 7_919_000) % (5 * 3_600_000);
        let _ = writeln!(s, "{user},{team},{},{ts},2015-11-02 09:00:00.000", (i * 13) % 20);
    }
    s
}

#[test]
fn wordcount_is_the_same_on_direct_and_rayon() {
    let mut text = String::new();
    for i in 0..3000 {
        let _ = writeln!(text, "the river's w{} flows w{} and Straße {}", i % 101, i % 7, i % 13);
    }
    same_on_every_runner("wordcount", "in.txt", &text, &["--input=in.txt", "--output=out/result", "--num-shards=3"]);
}

#[test]
fn user_score_is_the_same_on_direct_and_rayon() {
    same_on_every_runner(
        "user_score",
        "events.csv",
        &game_events(4000),
        &["--input=events.csv", "--output=out/result"],
    );
}

#[test]
fn hourly_team_score_is_the_same_on_direct_and_rayon() {
    same_on_every_runner(
        "hourly_team_score",
        "events.csv",
        &game_events(4000),
        &["--input=events.csv", "--output=out/result"],
    );
}

#[test]
fn a_failing_job_on_rayon_names_file_and_line_exits_non_zero_and_writes_nothing() {
    let dir = TempDir::new().unwrap();
    let mut input = b"good line\n".repeat(5000);
    input.extend_from_slice(b"bad \xFF line\nafter\n");
    fs::write(dir.path().join("in.txt"), &input).unwrap();
    let run = run_example("wordcount", dir.path(), &["--input=in.txt", "--output=out/result", "--runner=rayon"]);
    assert!(!run.success, "{run:?}");
    assert!(run.stderr.contains("invalid UTF-8 in in.txt at line 5001"), "{}", run.stderr);
    let out = dir.path().join("out");
    let left: Vec<_> = fs::read_dir(&out).map(|d| d.map(|e| e.unwrap().file_name()).collect()).unwrap_or_default();
    assert!(left.iter().all(|n| n.to_string_lossy().ends_with(".runnel-lock")), "no output: {left:?}");
}

#[test]
fn wordcount_is_the_same_on_direct_and_portable() {
    let mut text = String::new();
    for i in 0..3000 {
        let _ = writeln!(text, "the river's w{} flows w{} and Straße {}", i % 101, i % 7, i % 13);
    }
    same_on_portable("wordcount", "in.txt", &text, &["--input=in.txt", "--output=out/result", "--num-shards=3"]);
}

#[test]
fn user_score_is_the_same_on_direct_and_portable() {
    same_on_portable("user_score", "events.csv", &game_events(4000), &["--input=events.csv", "--output=out/result"]);
}

#[test]
fn hourly_team_score_is_the_same_on_direct_and_portable() {
    same_on_portable(
        "hourly_team_score",
        "events.csv",
        &game_events(4000),
        &["--input=events.csv", "--output=out/result"],
    );
}

/// PROCESS environment on Prism: Prism starts the example again (through the launcher script the
/// runner writes) as its worker, which rebuilds the pipeline from the same arguments and serves
/// the bundles; output and counters are the direct runner's.
#[test]
fn examples_on_prism_with_process_workers_are_the_same_as_on_direct() {
    let mut text = String::new();
    for i in 0..2000 {
        let _ = writeln!(text, "the river's w{} flows w{} and Straße {}", i % 101, i % 7, i % 13);
    }
    let events = game_events(3000);
    let prism = LocalPrism::start().unwrap();
    let endpoint = format!("--job-endpoint={}", prism.endpoint());
    for (name, input_name, input, args) in [
        ("wordcount", "in.txt", &text, &["--input=in.txt", "--output=out/result", "--num-shards=2"][..]),
        ("user_score", "events.csv", &events, &["--input=events.csv", "--output=out/result"][..]),
    ] {
        let (direct, direct_err) = output(name, &["direct"], input_name, input, args);
        assert!(!direct.is_empty(), "{name} gave no output");
        let runner = ["portable", endpoint.as_str(), "--environment-type=process"];
        let (portable, portable_err) = output(name, &runner, input_name, input, args);
        assert_eq!(direct, portable, "{name}: PROCESS workers on Prism give another output than direct");
        assert_eq!(direct_err, portable_err, "{name}: PROCESS workers on Prism report other counters than direct");
    }
}

/// leader_board, the streaming example, on Prism (`--streaming`): its replay becomes Beam's
/// TestStream, which Prism replays; the grouping, triggers and watermarks are Prism's. The replay
/// has no late event. Every pane the direct runner gives, Prism gives, with the same counters;
/// beyond them Prism fires each accumulating team window once more when it closes (a LATE pane
/// repeating the window's last total, which Beam Java does not emit under FIRE_IF_NON_EMPTY):
/// pinned here, so the day Prism stops, this fails.
#[test]
fn leader_board_streams_on_prism_as_on_direct_but_for_prisms_closing_panes() {
    let replay = "\
user1,red,3,1000,x
user2,blue,5,2000,x
@processing-time +300000
user1,red,4,3000,x
not,an,event
@processing-time +600000
user3,red,10,3700000,x
@watermark 3600000
user2,blue,6,3800000,x
@processing-time +300000
@watermark 7300000
user1,red,1,7400000,x
";
    let args = ["--input=replay.txt", "--output=out/result"];
    let (direct, direct_err) = output("leader_board", &["direct"], "replay.txt", replay, &args);
    assert!(direct.iter().any(|l| l.contains("timing: EARLY")), "{direct:?}");
    let prism = LocalPrism::start().unwrap();
    let endpoint = format!("--job-endpoint={}", prism.endpoint());
    let runner = ["portable", endpoint.as_str(), "--streaming"];
    let (on_prism, prism_err) = output("leader_board", &runner, "replay.txt", replay, &args);
    // Told up front: late data Prism drops is not counted.
    let (warnings, counters): (Vec<&str>, Vec<&str>) = prism_err.lines().partition(|l| l.contains("WARN"));
    assert!(
        warnings.iter().any(|w| w.contains("groups in the job server") && w.contains("dropped_due_to_lateness")),
        "{prism_err}"
    );
    assert_eq!(direct_err, counters.join("\n"), "leader_board: the counters on Prism differ from direct's");
    for line in &direct {
        assert!(on_prism.contains(line), "Prism lacks the pane {line:?}: {on_prism:#?}");
    }
    let extra: Vec<&String> = on_prism.iter().filter(|l| !direct.contains(l)).collect();
    // Each team window's closing pane: LATE, with the total of the window's last pane on direct.
    let team_windows = direct.iter().filter(|l| l.starts_with("team:") && l.contains("ON_TIME")).count();
    assert_eq!(extra.len(), team_windows, "one closing pane per team window: {extra:#?}");
    for line in extra {
        let (head, pane) = line.split_once(", timing: ").unwrap();
        assert!(pane.starts_with("LATE"), "{line}");
        let window = head.split(", total_score").next().unwrap();
        let window_start = head.split(", window_start: ").nth(1).unwrap();
        let total = head.split("total_score: ").nth(1).unwrap().split(',').next().unwrap();
        let last_on_direct = direct
            .iter()
            .filter(|l| l.starts_with(window) && l.contains(window_start))
            .max_by_key(|l| l.rsplit("index: ").next().unwrap().parse::<u32>().unwrap())
            .unwrap();
        assert!(last_on_direct.contains(&format!("total_score: {total},")), "{line} vs {last_on_direct}");
    }
}
