//! Crash tests of the commit protocol of file outputs (`runnel_io::commit`, `docs/file-outputs.md`).
//!
//! Each test runs writers as child processes — this test executable, re-executed with [`CHILD_VAR`] set, runs a
//! pipeline that writes `RUN line I` lines with `WriteToText` — and kills them with SIGKILL at each step of the
//! commit, or at random moments, or holds one in the middle of its job while another starts. After every kill the
//! output prefix must hold the shards of one run only: its complete set, a visibly incomplete set (fewer than
//! `NNNNN` shards of `-of-NNNNN`), or nothing; and the next run must leave exactly its own complete set and no
//! hidden file.
//!
//! The runs of one test write different shard counts, so that a mix of two runs would also show as shards of two
//! counts. This file has its own `main` (`harness = false`) so that the child mode is not a test.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use runnel::prelude::*;
use runnel_io::commit::{set_commit_hook, CommitStep};
use runnel_io::text::WriteToText;

/// Set in a child: it runs one writer instead of the tests.
const CHILD_VAR: &str = "RUNNEL_COMMIT_CRASH_CHILD";
/// The child's output prefix.
const PREFIX_VAR: &str = "RUNNEL_COMMIT_CRASH_PREFIX";
/// The child's run name, the first word of each line it writes.
const RUN_VAR: &str = "RUNNEL_COMMIT_CRASH_RUN";
/// The child's number of shards.
const SHARDS_VAR: &str = "RUNNEL_COMMIT_CRASH_SHARDS";
/// The commit step (`CommitStep`'s `Display`) at which the child reports `STOPPED STEP` on stdout and blocks.
const STOP_VAR: &str = "RUNNEL_COMMIT_CRASH_STOP";
/// A file whose creation lets a blocked child go on; without it a blocked child waits to be killed.
const RESUME_VAR: &str = "RUNNEL_COMMIT_CRASH_RESUME";
/// Milliseconds the child sleeps at every commit step, to stretch its commit for kills at random moments.
const DELAY_VAR: &str = "RUNNEL_COMMIT_CRASH_DELAY_MS";

/// Lines each run writes.
const LINES: usize = 40;
/// The longest a child may take to reach its stopping point or to finish.
const CHILD_TIMEOUT: Duration = Duration::from_secs(120);

fn main() {
    if std::env::var_os(CHILD_VAR).is_some() {
        child_main();
        return;
    }
    let tests: [(&str, fn()); 6] = [
        ("a_writer_killed_at_any_step_of_its_commit_never_leaves_two_runs_mixed", killed_at_every_step),
        ("a_run_killed_while_recovering_a_dead_commit_is_recovered_by_the_next", killed_during_recovery),
        ("a_writer_killed_at_random_moments_never_leaves_two_runs_mixed", killed_at_random_moments),
        ("a_second_writer_of_a_live_prefix_is_refused_naming_the_first", second_writer_is_refused),
        ("leftovers_of_dead_runs_and_stale_shards_are_gone_after_the_next_run", leftovers_are_cleaned),
        ("two_writers_started_together_leave_one_runs_complete_set", writers_started_together),
    ];
    let filter: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with('-')).collect();
    let (mut passed, mut failed, mut filtered) = (0, 0, 0);
    for (name, test) in tests {
        if !filter.is_empty() && !filter.iter().any(|f| name.contains(f.as_str())) {
            filtered += 1;
            continue;
        }
        match std::panic::catch_unwind(test) {
            Ok(()) => {
                println!("test {name} ... ok");
                passed += 1;
            }
            Err(_) => {
                println!("test {name} ... FAILED");
                failed += 1;
            }
        }
    }
    let result = if failed == 0 { "ok" } else { "FAILED" };
    println!(
        "\ntest result: {result}. {passed} passed; {failed} failed; 0 ignored; 0 measured; {filtered} filtered out"
    );
    if failed > 0 {
        std::process::exit(1);
    }
}

// ---------------------------------------------------------------------------------------------------------------------
// The child: one writer
// ---------------------------------------------------------------------------------------------------------------------

fn child_main() {
    set_commit_hook(on_commit_step);
    let var = |name: &str| std::env::var(name).unwrap_or_else(|_| panic!("{name} is not set"));
    let prefix = var(PREFIX_VAR);
    let run = var(RUN_VAR);
    let shards: usize = var(SHARDS_VAR).parse().expect("a number of shards");
    let p = Pipeline::new(PipelineOptions::default());
    let lines: Vec<String> = (0..LINES).map(|i| format!("{run} line {i}")).collect();
    p.apply("Lines", Create::of(lines)).apply("Write", WriteToText::new(prefix).with_num_shards(shards));
    if let Err(error) = p.run() {
        eprintln!("error: {error}");
        std::process::exit(1);
    }
}

fn on_commit_step(step: CommitStep) {
    if let Some(ms) = std::env::var(DELAY_VAR).ok().and_then(|ms| ms.parse().ok()) {
        std::thread::sleep(Duration::from_millis(ms));
    }
    if std::env::var(STOP_VAR).is_ok_and(|stop| stop == step.to_string()) {
        println!("STOPPED {step}");
        let _ = std::io::stdout().flush();
        let resume = std::env::var_os(RESUME_VAR).map(PathBuf::from);
        while !resume.as_ref().is_some_and(|path| path.exists()) {
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

// ---------------------------------------------------------------------------------------------------------------------
// Running children
// ---------------------------------------------------------------------------------------------------------------------

/// A writer to start: run name, shard count, and where to stop.
struct Writer<'a> {
    prefix: &'a str,
    run: &'a str,
    shards: usize,
    stop: Option<String>,
    resume: Option<PathBuf>,
    delay_ms: Option<u64>,
}

impl<'a> Writer<'a> {
    fn new(prefix: &'a str, run: &'a str, shards: usize) -> Self {
        Writer { prefix, run, shards, stop: None, resume: None, delay_ms: None }
    }

    fn stop_at(mut self, step: &str) -> Self {
        self.stop = Some(step.to_owned());
        self
    }

    fn spawn(&self) -> Child {
        let mut command = Command::new(std::env::current_exe().expect("the test executable"));
        command
            .env(CHILD_VAR, "1")
            .env(PREFIX_VAR, self.prefix)
            .env(RUN_VAR, self.run)
            .env(SHARDS_VAR, self.shards.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if let Some(stop) = &self.stop {
            command.env(STOP_VAR, stop);
        }
        if let Some(resume) = &self.resume {
            command.env(RESUME_VAR, resume);
        }
        if let Some(ms) = self.delay_ms {
            command.env(DELAY_VAR, ms.to_string());
        }
        command.spawn().expect("cannot start a writer")
    }

    /// Runs the writer to its end; returns whether it succeeded, and its stderr.
    fn run(&self) -> (bool, String) {
        finish(self.spawn())
    }

    /// Starts the writer and waits until it blocks at its stopping step.
    fn start_and_wait_for_stop(&self) -> Child {
        let stop = self.stop.as_deref().expect("a stopping step");
        let mut child = self.spawn();
        let stdout = child.stdout.take().expect("piped stdout");
        let (sender, receiver) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if sender.send(line).is_err() {
                    return;
                }
            }
        });
        let deadline = Instant::now() + CHILD_TIMEOUT;
        loop {
            match receiver.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                Ok(line) if line == format!("STOPPED {stop}") => return child,
                Ok(_) => {}
                Err(_) => {
                    let _ = child.kill();
                    let output = child.wait_with_output().expect("the writer's output");
                    panic!("writer {} did not stop at {stop}: {}", self.run, String::from_utf8_lossy(&output.stderr));
                }
            }
        }
    }
}

/// Waits for a child to exit (killing it after [`CHILD_TIMEOUT`]); returns whether it succeeded.
fn wait_with_timeout(child: &mut Child) -> bool {
    let deadline = Instant::now() + CHILD_TIMEOUT;
    loop {
        if let Some(status) = child.try_wait().expect("the writer's status") {
            return status.success();
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("a writer did not finish within {CHILD_TIMEOUT:?}");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Waits for a writer to end; returns whether it succeeded, and its stderr.
fn finish(mut child: Child) -> (bool, String) {
    let status = wait_with_timeout(&mut child);
    let mut stderr = String::new();
    let _ = std::io::Read::read_to_string(&mut child.stderr.take().expect("piped stderr"), &mut stderr);
    (status, stderr)
}

/// Kills a child with SIGKILL and reaps it.
fn kill(mut child: Child) {
    child.kill().expect("cannot kill a writer");
    child.wait().expect("cannot reap a writer");
}

// ---------------------------------------------------------------------------------------------------------------------
// What a reader sees
// ---------------------------------------------------------------------------------------------------------------------

/// What a reader of `PREFIX-*` sees.
#[derive(Debug, PartialEq, Eq)]
enum Seen {
    /// No shard.
    Nothing,
    /// Every shard of one run: `run` wrote all of it.
    Complete { run: String, shards: usize },
    /// Fewer than `shards` shards of `-of-shards`, all of one run (as far as their lines tell).
    Incomplete { run: Option<String>, shards: usize, present: usize },
}

/// Reads the shards of `name` in `dir` as a reader would, and panics if they mix two runs: two shard counts, more
/// shards than their count says, lines of two runs, or a complete set missing some of its run's lines.
fn seen(dir: &Path, name: &str) -> Seen {
    let mut shards = Vec::new();
    for entry in std::fs::read_dir(dir).expect("the output directory") {
        let file_name = entry.expect("an entry").file_name().into_string().expect("a UTF-8 name");
        // Shards `NAME-SSSSS-of-NNNNN` only, not those of another prefix such as `NAME-x`.
        let Some(rest) = file_name.strip_prefix(&format!("{name}-")) else { continue };
        let Some((index, count)) = rest.split_once("-of-") else { continue };
        let (Ok(index), Ok(count)) = (index.parse::<usize>(), count.parse::<usize>()) else { continue };
        shards.push((index, count, file_name));
    }
    if shards.is_empty() {
        return Seen::Nothing;
    }
    let counts: BTreeSet<usize> = shards.iter().map(|s| s.1).collect();
    assert_eq!(counts.len(), 1, "shards of two shard counts, so of two runs: {shards:?}");
    let count = shards[0].1;
    assert!(shards.len() <= count && shards.iter().all(|s| s.0 < count), "{shards:?}");
    let mut runs = BTreeSet::new();
    let mut lines = 0;
    for (_, _, file_name) in &shards {
        let text = std::fs::read_to_string(dir.join(file_name)).expect("a shard");
        for line in text.lines() {
            runs.insert(line.split(' ').next().unwrap_or_default().to_owned());
            lines += 1;
        }
    }
    assert!(runs.len() <= 1, "lines of several runs {runs:?} in {shards:?}");
    let run = runs.into_iter().next();
    if shards.len() == count {
        let run = run.unwrap_or_else(|| panic!("a complete set without lines: {shards:?}"));
        assert_eq!(lines, LINES, "the complete set of run {run} has {lines} of its {LINES} lines");
        Seen::Complete { run, shards: count }
    } else {
        Seen::Incomplete { run, shards: count, present: shards.len() }
    }
}

fn complete(run: &str, shards: usize) -> Seen {
    Seen::Complete { run: run.to_owned(), shards }
}

/// The hidden files of `dir` (locks, journals, temporary files).
fn hidden_files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .expect("the output directory")
        .map(|e| e.expect("an entry").file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with('.'))
        .collect();
    names.sort();
    names
}

/// A temporary directory and the prefix `DIR/out/counts` in it.
fn output() -> (tempfile::TempDir, PathBuf, String) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let out = dir.path().join("out");
    let prefix = out.join("counts").to_str().expect("a UTF-8 path").to_owned();
    (dir, out, prefix)
}

/// Runs a writer to completion and checks that it leaves exactly its own complete set and no hidden file.
fn run_to_completion(out: &Path, prefix: &str, run: &str, shards: usize) {
    let (ok, stderr) = Writer::new(prefix, run, shards).run();
    assert!(ok, "writer {run} failed: {stderr}");
    assert_eq!(seen(out, "counts"), complete(run, shards));
    assert_eq!(hidden_files(out), Vec::<String>::new(), "after run {run}");
}

// ---------------------------------------------------------------------------------------------------------------------
// The tests
// ---------------------------------------------------------------------------------------------------------------------

/// Every step of a commit of 2 shards over an old set of 3, and what a reader sees when the writer dies there.
fn steps() -> Vec<(&'static str, Seen)> {
    let old = || complete("old", 3);
    let new = || complete("new", 2);
    vec![
        ("lock-acquired", old()),
        ("shards-written", old()),
        ("journal-written", old()),
        ("old-shard-deleted:0", Seen::Incomplete { run: Some("old".into()), shards: 3, present: 2 }),
        ("old-shard-deleted:1", Seen::Incomplete { run: Some("old".into()), shards: 3, present: 1 }),
        ("old-shard-deleted:2", Seen::Nothing),
        ("shard-renamed:0", Seen::Incomplete { run: Some("new".into()), shards: 2, present: 1 }),
        ("shard-renamed:1", new()),
        ("shards-renamed", new()),
        ("journal-removed", new()),
    ]
}

/// A writer killed at each step of its commit: the prefix holds one run's shards only, as `docs/file-outputs.md`
/// says; the next run to take the lock completes the dead commit (if its journal was written) before anything
/// else; and the run after leaves exactly its own complete set and no hidden file.
fn killed_at_every_step() {
    for (step, expected) in steps() {
        let (_dir, out, prefix) = output();
        run_to_completion(&out, &prefix, "old", 3);

        let writer = Writer::new(&prefix, "new", 2).stop_at(step).start_and_wait_for_stop();
        assert_eq!(seen(&out, "counts"), expected, "while the writer is at {step}");
        kill(writer);
        assert_eq!(seen(&out, "counts"), expected, "after the writer was killed at {step}");

        // The next run recovers when it takes the lock: rolled forward once the journal was written.
        let rolled_forward = !matches!(step, "lock-acquired" | "shards-written");
        let next = Writer::new(&prefix, "next", 4).stop_at("lock-acquired").start_and_wait_for_stop();
        let recovered = if rolled_forward { complete("new", 2) } else { complete("old", 3) };
        assert_eq!(seen(&out, "counts"), recovered, "after recovering from a kill at {step}");
        assert_eq!(hidden_files(&out), [".counts.runnel-lock"], "dead runs' temporary files are gone ({step})");
        kill(next);

        run_to_completion(&out, &prefix, "last", 5);
    }
}

/// A run killed while it completes a dead run's commit leaves a state the run after recovers from.
fn killed_during_recovery() {
    let (_dir, out, prefix) = output();
    run_to_completion(&out, &prefix, "old", 3);
    kill(Writer::new(&prefix, "new", 2).stop_at("old-shard-deleted:0").start_and_wait_for_stop());
    // The dead commit deleted the first old shard; the recovery deletes the second, then is killed.
    let recovering = Writer::new(&prefix, "next", 4).stop_at("old-shard-deleted:1").start_and_wait_for_stop();
    assert_eq!(seen(&out, "counts"), Seen::Incomplete { run: Some("old".into()), shards: 3, present: 1 });
    kill(recovering);
    let recovering = Writer::new(&prefix, "next", 4).stop_at("shard-renamed:0").start_and_wait_for_stop();
    assert_eq!(seen(&out, "counts"), Seen::Incomplete { run: Some("new".into()), shards: 2, present: 1 });
    kill(recovering);
    let recovered = Writer::new(&prefix, "next", 4).stop_at("lock-acquired").start_and_wait_for_stop();
    assert_eq!(seen(&out, "counts"), complete("new", 2));
    kill(recovered);
    run_to_completion(&out, &prefix, "last", 5);
}

/// Writers killed at random moments of their run (their commit stretched by a pause at each step): the prefix never
/// holds two runs' shards, and the next run leaves exactly its own complete set.
fn killed_at_random_moments() {
    /// The pause at each commit step: long enough that a good share of the kills fall inside the commit.
    const STEP_DELAY_MS: u64 = 6;
    // How long an uninterrupted run takes, so that kills fall anywhere in one.
    let (_dir, out, prefix) = output();
    let start = Instant::now();
    let mut timed = Writer::new(&prefix, "timed", 7);
    timed.delay_ms = Some(STEP_DELAY_MS);
    let (ok, stderr) = timed.run();
    assert!(ok, "{stderr}");
    let duration = start.elapsed();
    assert_eq!(seen(&out, "counts"), complete("timed", 7));

    let mut rng = 0x2545_f491_4f6c_dd1d_u64; // xorshift64, fixed seed: reproducible trials
    let mut outcomes = BTreeSet::new();
    // 16 trials, and more (up to 48) while every kill has fallen at the same point, as a loaded machine may make
    // runs slower than the timed one.
    for trial in 0..48 {
        if trial >= 16 && outcomes.len() >= 2 {
            break;
        }
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        let delay = duration.mul_f64((rng % 1000) as f64 / 1000.0 * 1.2);
        let (_dir, out, prefix) = output();
        run_to_completion(&out, &prefix, "old", 3);
        let mut writer = Writer::new(&prefix, "new", 7);
        writer.delay_ms = Some(STEP_DELAY_MS);
        let mut child = writer.spawn();
        std::thread::sleep(delay);
        let _ = child.kill();
        let _ = child.wait();
        let after_kill = seen(&out, "counts");
        outcomes.insert(format!("{after_kill:?}"));
        match &after_kill {
            Seen::Nothing => {}
            Seen::Complete { run, shards } => assert!(
                (run == "old" && *shards == 3) || (run == "new" && *shards == 7),
                "trial {trial}: {after_kill:?}"
            ),
            Seen::Incomplete { run, shards, .. } => assert!(
                (run.as_deref() != Some("new") && *shards == 3) || (run.as_deref() != Some("old") && *shards == 7),
                "trial {trial}: {after_kill:?}"
            ),
        }
        run_to_completion(&out, &prefix, "next", 2);
    }
    println!("random kills left: {outcomes:?}");
    assert!(outcomes.len() >= 2, "the kills should fall at different moments: {outcomes:?}");
}

/// While a writer holds the prefix, a second one is refused with an error naming the first (its token and pid) and
/// changes nothing; the first then completes; and once the first is killed, its lock does not keep a third out.
fn second_writer_is_refused() {
    let (dir, out, prefix) = output();
    run_to_completion(&out, &prefix, "old", 3);
    let resume = dir.path().join("resume");
    let mut first = Writer::new(&prefix, "first", 2).stop_at("shards-written");
    first.resume = Some(resume.clone());
    let mut first = first.start_and_wait_for_stop();

    let (ok, stderr) = Writer::new(&prefix, "second", 4).run();
    assert!(!ok, "the second writer must be refused");
    let lock = out.join(".counts.runnel-lock");
    assert!(stderr.contains(&format!("output prefix '{prefix}' is being written by another job, job ")), "{stderr}");
    assert!(stderr.contains(&format!("(pid {} on host ", first.id())), "{stderr}");
    assert!(stderr.contains(&lock.display().to_string()), "{stderr}");
    assert!(stderr.contains("Write/MakeJobToken"), "refused before anything is written: {stderr}");
    assert_eq!(seen(&out, "counts"), complete("old", 3));

    std::fs::write(&resume, "").expect("the resume file");
    assert!(wait_with_timeout(&mut first), "the first writer completes after the second was refused");
    assert_eq!(seen(&out, "counts"), complete("first", 2));
    assert_eq!(hidden_files(&out), Vec::<String>::new());

    let holder = Writer::new(&prefix, "holder", 4).stop_at("shards-written").start_and_wait_for_stop();
    kill(holder);
    run_to_completion(&out, &prefix, "third", 5);
}

/// Temporary files of killed runs, a stray journal being written, a dead lock and shards of other counts are all
/// gone after the next successful run, which leaves exactly its own set; other prefixes' files are kept.
fn leftovers_are_cleaned() {
    let (_dir, out, prefix) = output();
    run_to_completion(&out, &prefix, "old", 3);
    for step in ["lock-acquired", "shards-written"] {
        kill(Writer::new(&prefix, "dead", 2).stop_at(step).start_and_wait_for_stop());
    }
    std::fs::write(out.join("counts-00000-of-00001"), "stale line\n").expect("a stale shard");
    std::fs::write(out.join("counts-00003-of-00009"), "stale line\n").expect("a stale shard");
    std::fs::write(out.join(".counts.runnel-journal.deadjob.tmp"), "{").expect("a stray journal");
    std::fs::write(out.join("counts-x-00000-of-00001"), "another prefix\n").expect("another prefix's shard");
    let hidden = hidden_files(&out);
    assert!(hidden.iter().any(|name| name.contains(".runnel-tmp-")), "{hidden:?}");
    assert!(hidden.contains(&".counts.runnel-lock".to_owned()), "{hidden:?}");

    let (ok, stderr) = Writer::new(&prefix, "next", 2).run();
    assert!(ok, "{stderr}");
    let mut names: Vec<String> = std::fs::read_dir(&out)
        .expect("the output directory")
        .map(|e| e.expect("an entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["counts-00000-of-00002", "counts-00001-of-00002", "counts-x-00000-of-00001"]);
    assert_eq!(seen(&out, "counts"), complete("next", 2));
}

/// Two writers of one prefix started at the same moment, with no pause anywhere: each either completes or is
/// refused because the other is writing; the prefix ends with the complete set of one of them and no hidden file.
fn writers_started_together() {
    let mut refusals = 0;
    for trial in 0..10 {
        let (_dir, out, prefix) = output();
        let a = Writer::new(&prefix, "a", 3).spawn();
        let b = Writer::new(&prefix, "b", 2).spawn();
        let ((a_ok, a_err), (b_ok, b_err)) = (finish(a), finish(b));
        assert!(a_ok || b_ok, "trial {trial}: both failed: {a_err} / {b_err}");
        for (ok, stderr) in [(a_ok, &a_err), (b_ok, &b_err)] {
            if !ok {
                refusals += 1;
                assert!(stderr.contains("is being written by another job"), "trial {trial}: {stderr}");
            }
        }
        let result = seen(&out, "counts");
        let expected: Vec<Seen> = [(a_ok, "a", 3), (b_ok, "b", 2)]
            .into_iter()
            .filter(|(ok, _, _)| *ok)
            .map(|(_, run, shards)| complete(run, shards))
            .collect();
        assert!(expected.contains(&result), "trial {trial}: {result:?}, expected one of {expected:?}");
        assert_eq!(hidden_files(&out), Vec::<String>::new(), "trial {trial}");
    }
    println!("writers started together: {refusals} refusals in 10 trials");
}
