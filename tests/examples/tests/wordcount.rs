//! Black-box tests of the `wordcount` example: its command line, output files and graph, per
//! docs/contracts (shared brief `contracts.md`). The program is found and built as the crate documentation of
//! `runnel_example_tests` explains (a nested `cargo build --examples`, or `RUNNEL_EXAMPLES_DIR`).

use runnel_example_tests::{file_names, read_shards, run_example, sorted};
use std::fs;
use std::path::Path;
use tempfile::TempDir;

fn write(dir: &Path, name: &str, contents: &[u8]) {
    let path = dir.join(name);
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, contents).unwrap();
}

#[test]
fn counts_unicode_words_with_apostrophes_case_sensitively() {
    let dir = TempDir::new().unwrap();
    write(
        dir.path(),
        "input.txt",
        "The naïve café, the NAÏVE café!\n日本語のテキスト、日本語\ndon't stop: don't, won't 'quoted'\nsnake_case 42 x-y\n"
            .as_bytes(),
    );
    let run = run_example("wordcount", dir.path(), &["--input=input.txt", "--output=out/counts", "--direct-checks=on"]);
    assert!(run.success, "{run:?}");
    assert!(
        run.stderr.starts_with("runnel: job finished in ") && run.stderr.lines().count() == 1,
        "only the end-of-job summary on stderr on success (wordcount has no counters): {:?}",
        run.stderr
    );
    let (_, lines) = read_shards(&dir.path().join("out"), "counts");
    assert_eq!(
        lines,
        sorted(&[
            "The: 1",
            "the: 1",
            "naïve: 1",
            "NAÏVE: 1",
            "café: 2",
            "日本語のテキスト: 1",
            "日本語: 1",
            "don't: 2",
            "stop: 1",
            "won't: 1",
            "'quoted': 1",
            "snake_case: 1",
            "42: 1",
            "x: 1",
            "y: 1",
        ])
    );
}

#[test]
fn reads_every_file_of_a_glob_with_crlf_empty_files_and_no_final_newline() {
    let dir = TempDir::new().unwrap();
    write(dir.path(), "data/a.txt", b"alpha beta\r\nbeta\r\n\r\ngamma\r\n");
    write(dir.path(), "data/b.txt", b"");
    write(dir.path(), "data/c.txt", b"beta\nlast words");
    write(dir.path(), "data/d.txt", b"\n\n");
    write(dir.path(), "data/ignored.md", b"alpha alpha alpha\n");
    write(dir.path(), "data/.hidden.txt", b"alpha alpha alpha\n");
    let run = run_example("wordcount", dir.path(), &["--input=data/*.txt", "--output=counts"]);
    assert!(run.success, "{run:?}");
    let (_, lines) = read_shards(dir.path(), "counts");
    assert_eq!(lines, sorted(&["alpha: 1", "beta: 3", "gamma: 1", "last: 1", "words: 1"]));
}

#[test]
fn a_plain_path_and_an_absolute_output_prefix_in_a_new_directory() {
    let dir = TempDir::new().unwrap();
    write(dir.path(), "one.txt", b"to be or not to be\n");
    let prefix = dir.path().join("new/deep/dir/wc");
    let output = format!("--output={}", prefix.display());
    let input = format!("--input={}", dir.path().join("one.txt").display());
    let run = run_example("wordcount", dir.path(), &[&input, &output]);
    assert!(run.success, "{run:?}");
    let (_, lines) = read_shards(&dir.path().join("new/deep/dir"), "wc");
    assert_eq!(lines, sorted(&["to: 2", "be: 2", "or: 1", "not: 1"]));
}

#[test]
fn num_shards_fixes_the_number_of_output_files() {
    let dir = TempDir::new().unwrap();
    let text: String = (0..200).map(|i| format!("w{i} common\n")).collect();
    write(dir.path(), "in.txt", text.as_bytes());
    // The one run with the direct runner's strict checks off.
    let run = run_example(
        "wordcount",
        dir.path(),
        &["--input=in.txt", "--output=out/counts", "--num-shards=3", "--direct-checks=off"],
    );
    assert!(run.success, "{run:?}");
    let out = dir.path().join("out");
    assert_eq!(file_names(&out), ["counts-00000-of-00003", "counts-00001-of-00003", "counts-00002-of-00003"]);
    let (_, lines) = read_shards(&out, "counts");
    let mut expected: Vec<String> = (0..200).map(|i| format!("w{i}: 1")).collect();
    expected.push("common: 200".to_string());
    expected.sort();
    assert_eq!(lines, expected);
}

#[test]
fn empty_input_gives_empty_shards() {
    let dir = TempDir::new().unwrap();
    write(dir.path(), "empty.txt", b"");
    let run = run_example("wordcount", dir.path(), &["--input=empty.txt", "--output=counts", "--num-shards=2"]);
    assert!(run.success, "{run:?}");
    let (names, lines) = read_shards(dir.path(), "counts");
    assert_eq!(names, ["counts-00000-of-00002", "counts-00001-of-00002"]);
    assert!(lines.is_empty());
}

#[test]
fn a_pattern_matching_nothing_fails_naming_the_pattern() {
    let dir = TempDir::new().unwrap();
    let run = run_example("wordcount", dir.path(), &["--input=missing/*.txt", "--output=out/counts"]);
    assert!(!run.success, "{run:?}");
    assert_eq!(run.stderr.lines().count(), 1, "one line on stderr: {:?}", run.stderr);
    assert!(run.stderr.starts_with("error: "), "{}", run.stderr);
    assert!(run.stderr.contains("no file matches the input pattern 'missing/*.txt'"), "{}", run.stderr);
    assert!(run.stderr.contains("ReadLines"), "names the transform: {}", run.stderr);
    assert!(file_names(dir.path()).is_empty(), "{:?}", file_names(dir.path()));
}

#[test]
fn invalid_utf8_fails_naming_file_and_line_and_leaves_no_output() {
    let dir = TempDir::new().unwrap();
    write(dir.path(), "in/good.txt", b"fine words\n");
    write(dir.path(), "in/bad.txt", b"fine\r\nstill fine\r\nnot \xC3\x28 fine\r\nnever read\r\n");
    let run = run_example("wordcount", dir.path(), &["--input=in/*.txt", "--output=counts", "--num-shards=2"]);
    assert!(!run.success, "{run:?}");
    assert_eq!(run.stderr.lines().count(), 1, "one line on stderr: {:?}", run.stderr);
    assert!(run.stderr.contains("in/bad.txt"), "names the file: {}", run.stderr);
    assert!(run.stderr.contains("line 3"), "names the line: {}", run.stderr);
    let visible: Vec<String> = file_names(dir.path()).into_iter().filter(|n| n.starts_with("counts")).collect();
    assert!(visible.is_empty(), "no final output file: {visible:?}");
}

#[test]
fn an_output_prefix_naming_a_directory_or_nothing_is_refused_before_anything_runs() {
    for (output, says) in [("--output=out/", "names a directory"), ("--output=", "the prefix is empty")] {
        let dir = TempDir::new().unwrap();
        write(dir.path(), "in.txt", b"a\n");
        let run = run_example("wordcount", dir.path(), &["--input=in.txt", output, "--dump-graph=graph.json"]);
        assert!(!run.success, "{run:?}");
        assert!(run.stderr.starts_with("error: "), "{}", run.stderr);
        assert!(run.stderr.contains("--output"), "{}", run.stderr);
        assert!(run.stderr.contains(says), "{}", run.stderr);
        assert_eq!(file_names(dir.path()), ["in.txt"], "nothing was built, dumped or run");
    }
}

#[test]
fn a_directory_given_as_input_is_reported_as_a_directory() {
    let dir = TempDir::new().unwrap();
    write(dir.path(), "data/a.txt", b"a\n");
    let run = run_example("wordcount", dir.path(), &["--input=data", "--output=counts"]);
    assert!(!run.success, "{run:?}");
    assert_eq!(run.stderr.lines().count(), 1, "one line on stderr: {:?}", run.stderr);
    assert!(
        run.stderr.contains(
            "the input 'data' is a directory, not a file: to read the files in it, give a glob such as 'data/*'"
        ),
        "{}",
        run.stderr
    );
}

#[test]
fn a_new_run_replaces_every_shard_of_an_earlier_run_whatever_its_shard_count() {
    let dir = TempDir::new().unwrap();
    write(dir.path(), "first.txt", b"old old old\n");
    write(dir.path(), "second.txt", b"new\n");
    let run = run_example("wordcount", dir.path(), &["--input=first.txt", "--output=out/counts", "--num-shards=3"]);
    assert!(run.success, "{run:?}");
    let run = run_example("wordcount", dir.path(), &["--input=second.txt", "--output=out/counts", "--num-shards=2"]);
    assert!(run.success, "{run:?}");
    // Every file of out/ is a shard of the second run: no shard of the first, no hidden file.
    assert_eq!(file_names(&dir.path().join("out")), ["counts-00000-of-00002", "counts-00001-of-00002"]);
    let (_, lines) = read_shards(&dir.path().join("out"), "counts");
    assert_eq!(lines, ["new: 1"]);
}

#[test]
fn a_prefix_another_job_is_writing_is_refused_naming_that_job() {
    let dir = TempDir::new().unwrap();
    write(dir.path(), "in.txt", b"a\n");
    let prefix = dir.path().join("out/counts");
    let other = runnel_io::commit::PrefixLock::acquire(prefix.to_str().unwrap(), "otherjob").unwrap();
    let run = run_example("wordcount", dir.path(), &["--input=in.txt", "--output=out/counts"]);
    assert!(!run.success, "{run:?}");
    assert_eq!(run.stderr.lines().count(), 1, "one line on stderr: {:?}", run.stderr);
    let expected = format!(
        "output prefix 'out/counts' is being written by another job, job otherjob (pid {} on host ",
        std::process::id()
    );
    assert!(run.stderr.contains(&expected), "{}", run.stderr);
    assert!(run.stderr.contains("out/.counts.runnel-lock"), "names the lock: {}", run.stderr);
    assert_eq!(file_names(&dir.path().join("out")), [".counts.runnel-lock"], "the refused job wrote nothing");
    other.release().unwrap();
    let run = run_example("wordcount", dir.path(), &["--input=in.txt", "--output=out/counts"]);
    assert!(run.success, "{run:?}");
    assert_eq!(file_names(&dir.path().join("out")), ["counts-00000-of-00001"]);
}

#[test]
fn an_unknown_runner_is_an_error_listing_the_valid_ones() {
    let dir = TempDir::new().unwrap();
    write(dir.path(), "in.txt", b"a\n");
    let run = run_example("wordcount", dir.path(), &["--input=in.txt", "--output=counts", "--runner=bogus"]);
    assert!(!run.success, "{run:?}");
    assert!(run.stderr.contains("bogus"), "{}", run.stderr);
    for runner in ["direct", "rayon", "grpc"] {
        assert!(run.stderr.contains(runner), "lists {runner}: {}", run.stderr);
    }
    assert_eq!(file_names(dir.path()), ["in.txt"]);
}

#[test]
fn the_grpc_runner_is_not_available_yet() {
    let dir = TempDir::new().unwrap();
    write(dir.path(), "in.txt", b"a\n");
    let run = run_example("wordcount", dir.path(), &["--input=in.txt", "--output=counts", "--runner=grpc"]);
    assert!(!run.success, "{run:?}");
    assert!(run.stderr.starts_with("error: "), "{}", run.stderr);
    assert!(run.stderr.contains("grpc runner is not available yet"), "{}", run.stderr);
    assert_eq!(file_names(dir.path()), ["in.txt"]);
}

#[test]
fn missing_required_arguments_are_usage_errors() {
    let dir = TempDir::new().unwrap();
    let run = run_example("wordcount", dir.path(), &["--input=in.txt"]);
    assert!(!run.success, "{run:?}");
    assert!(run.stderr.contains("--output"), "{}", run.stderr);
}

#[test]
fn help_lists_the_program_and_pipeline_options() {
    let dir = TempDir::new().unwrap();
    let run = run_example("wordcount", dir.path(), &["--help"]);
    assert!(run.success, "{run:?}");
    for flag in ["--input", "--output", "--num-shards", "--runner", "--dump-graph", "--direct-checks", "--workers"] {
        assert!(run.stdout.contains(flag), "--help lists {flag}: {}", run.stdout);
    }
}

#[test]
fn dump_graph_writes_the_graph_and_runs_nothing() {
    let dir = TempDir::new().unwrap();
    write(dir.path(), "in.txt", b"a b a\n");
    let run = run_example(
        "wordcount",
        dir.path(),
        &["--input=in.txt", "--output=out/counts", "--dump-graph=graph.json", "--direct-checks=on"],
    );
    assert!(run.success, "{run:?}");
    assert_eq!(file_names(dir.path()), ["graph.json", "in.txt"], "nothing ran: no output");
    let json = fs::read_to_string(dir.path().join("graph.json")).unwrap();
    let mut graph = runnel_model::Graph::from_json(&json).expect("the dump deserialises");
    graph.validate().expect("the dump is a valid graph");
    assert_eq!(graph.to_json(), json, "the dump is the graph's deterministic JSON");
    for registered in ["wordcount.ExtractWords", "runnel_io.text.ReadFile"] {
        assert!(json.contains(registered), "the graph names the registered DoFn {registered}");
    }
    // The binary's fingerprint differs from build to build (absent today): keep it out of the snapshot.
    graph.environment.binary_fingerprint = None;
    insta::assert_snapshot!("wordcount_graph", graph.to_json());
}
