//! What a pipeline program shows on stderr while its job runs and when it ends (issue 10): progress lines only on a
//! terminal, a summary of counters and distributions at the end, `--progress=off` for neither, logs through `tracing`
//! filtered by `--log-level` or `RUST_LOG`, and `--help` saying which runners this build has.
//!
//! The terminal is a pseudo-terminal made by `script` (util-linux), which runs the program with its stdin, stdout and
//! stderr on the terminal and copies what the terminal shows to its own stdout.

use runnel_example_tests::{example, run_example};
use std::fs;
use std::path::Path;
use std::process::Command;
use tempfile::TempDir;

/// A few thousand lines of words: enough for several batches through every stage, run in well under a second.
fn write_words(dir: &Path) {
    let line = "the quick brown fox jumps over the lazy dog again and again\n";
    fs::write(dir.join("in.txt"), line.repeat(4000)).unwrap();
}

/// Runs `example args` under a pseudo-terminal in `dir`; returns the exit status and what the terminal showed.
fn run_on_terminal(dir: &Path, name: &str, args: &[&str]) -> (bool, String) {
    let program = example(name);
    let command_line = std::iter::once(program.to_string_lossy().into_owned())
        .chain(args.iter().map(|a| a.to_string()))
        .map(|a| format!("'{}'", a.replace('\'', r"'\''")))
        .collect::<Vec<_>>()
        .join(" ");
    let output = Command::new("script")
        .args(["-qec", &command_line, "/dev/null"])
        .current_dir(dir)
        .output()
        .expect("`script` (util-linux) runs programs under a pseudo-terminal; install util-linux");
    (output.status.success(), String::from_utf8_lossy(&output.stdout).replace("\r\n", "\n"))
}

#[test]
fn on_a_terminal_a_progress_bar_per_stage_shows_records_bytes_and_time_then_the_summary() {
    for runner in ["--runner=direct", "--runner=rayon"] {
        let dir = TempDir::new().unwrap();
        write_words(dir.path());
        let (success, screen) =
            run_on_terminal(dir.path(), "wordcount", &["--input=in.txt", "--output=out/counts", runner]);
        assert!(success, "{runner}: {screen}");
        // A bar per stage: the first report is drawn at once, later ones at most five times a
        // second, so which transform shows depends on the machine's speed, not that one does.
        assert!(
            screen.contains("stage 0: ") && screen.contains(" records, ~") && screen.contains("s)"),
            "{runner}: records, bytes and elapsed time per stage: {screen:?}"
        );
        assert!(screen.contains("\x1b["), "{runner}: the bars are redrawn in place: {screen:?}");
        assert!(screen.contains("runnel: job finished in "), "{runner}: the summary at the end: {screen:?}");
    }
}

#[test]
fn with_stderr_not_a_terminal_only_the_summary_appears() {
    let dir = TempDir::new().unwrap();
    write_words(dir.path());
    let run = run_example("user_score", dir.path(), &["--input=in.txt", "--output=out/scores"]);
    assert!(run.success, "{run:?}");
    assert!(!run.stderr.contains(" records, ~") && !run.stderr.contains('\x1b'), "no progress: {:?}", run.stderr);
    let lines: Vec<&str> = run.stderr.lines().collect();
    assert!(lines[0].starts_with("runnel: job finished in "), "{:?}", run.stderr);
    assert!(
        lines.contains(&"  counter ParseGameEvent/num_parse_errors = 4000"),
        "the summary lists the counters: {:?}",
        run.stderr
    );
    assert_eq!(lines.last(), Some(&"num_parse_errors: 4000"), "then the program's own line: {:?}", run.stderr);
}

#[test]
fn progress_off_shows_neither_progress_nor_summary_even_on_a_terminal() {
    let dir = TempDir::new().unwrap();
    write_words(dir.path());
    let (success, screen) =
        run_on_terminal(dir.path(), "wordcount", &["--input=in.txt", "--output=out/counts", "--progress=off"]);
    assert!(success, "{screen}");
    assert_eq!(screen, "", "nothing on the terminal");
}

#[test]
fn log_level_and_rust_log_choose_what_the_program_logs_on_stderr() {
    let dir = TempDir::new().unwrap();
    fs::write(dir.path().join("in.txt"), "a b a\n").unwrap();
    let args = ["--input=in.txt", "--output=out/counts", "--progress=off"];
    let quiet = run_example("wordcount", dir.path(), &args);
    assert!(quiet.success, "{quiet:?}");
    assert_eq!(quiet.stderr, "", "warnings only by default");

    let info = run_example("wordcount", dir.path(), &[&args[..], &["--log-level=info"]].concat());
    assert!(info.success, "{info:?}");
    assert!(info.stderr.contains("INFO") && info.stderr.contains("running the pipeline"), "{:?}", info.stderr);

    let program = example("wordcount");
    let output =
        Command::new(&program).args(args).env("RUST_LOG", "runnel=info").current_dir(dir.path()).output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success() && stderr.contains("running the pipeline"), "{stderr:?}");
}

#[test]
fn help_says_which_runners_this_build_has() {
    let dir = TempDir::new().unwrap();
    let run = run_example("wordcount", dir.path(), &["--help"]);
    assert!(run.success, "{run:?}");
    let runner_help: Vec<&str> = run
        .stdout
        .lines()
        .filter(|l| ["direct:", "rayon:", "portable:", "grpc:"].iter().any(|r| l.contains(r)))
        .collect();
    assert_eq!(runner_help.len(), 4, "{}", run.stdout);
    for (line, runner) in runner_help[..3].iter().zip(["direct:", "rayon:", "portable:"]) {
        assert!(line.contains(runner) && line.ends_with("[available]"), "{runner_help:?}");
    }
    assert!(runner_help[3].contains("grpc:") && runner_help[3].ends_with("[not in this build yet]"), "{runner_help:?}");
    assert!(
        run.stdout.contains("--progress <PROGRESS>") && run.stdout.contains("--log-level <FILTER>"),
        "{}",
        run.stdout
    );
}
