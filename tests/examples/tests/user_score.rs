//! Black-box tests of the `user_score` example (Beam's UserScore): its command line, output files, parse error
//! counter and graph, per the shared brief `contracts.md`. The program is found and built as the crate
//! documentation of `runnel_example_tests` explains.

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

#[test]
fn sums_scores_per_user_skipping_and_counting_malformed_lines() {
    let dir = TempDir::new().unwrap();
    write(
        dir.path(),
        "events.csv",
        "user2_AsparagusPig,AsparagusPig,10,1445230923951,2015-11-02 09:09:28.224\n\
         user1_Bat,Bat,3,1445230923952,2015-11-02 09:09:28.225\n\
         user2_AsparagusPig,AsparagusPig,5,1445230923953,2015-11-02 09:09:28.226\n\
         user1_Bat,Bat,not-a-number,1445230923954,2015-11-02 09:09:28.227\n\
         too,few,fields\n\
         user3_Cat,Cat,0,1445230923955\n",
    );
    let run = run_example("user_score", dir.path(), &["--input=events.csv", "--output=out/scores"]);
    assert!(run.success, "{run:?}");
    assert_eq!(parse_errors_line(&run.stderr), ["num_parse_errors: 2"], "{}", run.stderr);
    let (_, lines) = read_shards(&dir.path().join("out"), "scores");
    assert_eq!(
        lines,
        sorted(&[
            "user: user2_AsparagusPig, total_score: 15",
            "user: user1_Bat, total_score: 3",
            "user: user3_Cat, total_score: 0",
        ])
    );
}

#[test]
fn reads_quoted_csv_fields_and_crlf_lines_across_files() {
    let dir = TempDir::new().unwrap();
    write(
        dir.path(),
        "in/a.csv",
        "\"Smith, Jo\",\"Red \"\"A\"\"\",7,1445230923951,\"2015-11-02 09:09:28.224\"\r\n\
         \"Smith, Jo\",Red,\"3\",1445230923952\r\n",
    );
    write(dir.path(), "in/b.csv", "plain,Blue,-2,1445230923953\nplain,Blue,12,1445230923954");
    write(dir.path(), "in/c.csv", "");
    let run = run_example(
        "user_score",
        dir.path(),
        &["--input=in/*.csv", "--output=scores", "--num-shards=2", "--direct-checks=on"],
    );
    assert!(run.success, "{run:?}");
    assert_eq!(parse_errors_line(&run.stderr), ["num_parse_errors: 0"], "{}", run.stderr);
    let (names, lines) = read_shards(dir.path(), "scores");
    assert_eq!(names, ["scores-00000-of-00002", "scores-00001-of-00002"]);
    assert_eq!(lines, sorted(&["user: Smith, Jo, total_score: 10", "user: plain, total_score: 10"]));
}

#[test]
fn malformed_quoting_empty_lines_and_headers_are_parse_errors() {
    let dir = TempDir::new().unwrap();
    write(
        dir.path(),
        "events.csv",
        "user,team,score,timestamp_ms,readable_time\n\
         \n\
         \"unterminated,Red,1,2\n\
         \"u\"x,Red,1,2\n\
         u,Red,1.5,2\n\
         u,Red,1,\n\
         u,Red,4,2\n",
    );
    let run = run_example("user_score", dir.path(), &["--input=events.csv", "--output=scores"]);
    assert!(run.success, "{run:?}");
    assert_eq!(parse_errors_line(&run.stderr), ["num_parse_errors: 6"], "{}", run.stderr);
    let (_, lines) = read_shards(dir.path(), "scores");
    assert_eq!(lines, ["user: u, total_score: 4"]);
}

#[test]
fn a_pattern_matching_nothing_fails_naming_the_pattern() {
    let dir = TempDir::new().unwrap();
    let run = run_example("user_score", dir.path(), &["--input=nothing-*.csv", "--output=scores"]);
    assert!(!run.success, "{run:?}");
    assert!(run.stderr.starts_with("error: "), "{}", run.stderr);
    assert!(run.stderr.contains("'nothing-*.csv'"), "{}", run.stderr);
    assert!(file_names(dir.path()).is_empty());
}

#[test]
fn dump_graph_writes_the_graph_and_runs_nothing() {
    let dir = TempDir::new().unwrap();
    write(dir.path(), "events.csv", "u,t,1,2\n");
    let run =
        run_example("user_score", dir.path(), &["--input=events.csv", "--output=scores", "--dump-graph=graph.json"]);
    assert!(run.success, "{run:?}");
    assert_eq!(file_names(dir.path()), ["events.csv", "graph.json"], "nothing ran: no output");
    let json = fs::read_to_string(dir.path().join("graph.json")).unwrap();
    let mut graph = runnel_model::Graph::from_json(&json).expect("the dump deserialises");
    graph.validate().expect("the dump is a valid graph");
    assert_eq!(graph.to_json(), json, "the dump is the graph's deterministic JSON");
    assert!(json.contains("gaming.ParseGameEvent"), "the graph names the registered DoFn");
    // The binary's fingerprint differs from build to build (absent today): keep it out of the snapshot.
    graph.environment.binary_fingerprint = None;
    insta::assert_snapshot!("user_score_graph", graph.to_json());
}

#[test]
fn a_total_that_overflows_fails_naming_the_transform_and_the_user_and_writes_nothing() {
    let dir = TempDir::new().unwrap();
    let max = i64::MAX;
    write(
        dir.path(),
        "events.csv",
        &format!(
            "user1_Bat,Bat,{max},1445230923951,2015-11-02 09:09:28.224\n\
             user1_Bat,Bat,1,1445230923952,2015-11-02 09:09:28.225\n\
             user2_Cat,Cat,7,1445230923953,2015-11-02 09:09:28.226\n"
        ),
    );
    let run = run_example("user_score", dir.path(), &["--input=events.csv", "--output=out/scores"]);
    assert!(!run.success, "a wrapped (negative) total must not pass as a result: {run:?}");
    assert_eq!(run.code, Some(1), "{run:?}");
    assert_eq!(run.stderr.lines().count(), 1, "one line on stderr: {:?}", run.stderr);
    assert!(run.stderr.starts_with("error: "), "{}", run.stderr);
    for part in ["'ExtractUserScore/SumScores'", "key \"user1_Bat\"", "sum overflowed i64"] {
        assert!(run.stderr.contains(part), "{part} in {}", run.stderr);
    }
    let shards: Vec<String> =
        file_names(&dir.path().join("out")).into_iter().filter(|n| n.starts_with("scores")).collect();
    assert!(shards.is_empty(), "no output left behind: {shards:?}");
}
