//! Whole-job word count benchmark: the `wordcount` example on the direct runner against a
//! hand-written single-threaded Rust word count with the same tokenisation.
//!
//! `cargo bench -p runnel-bench --bench wordcount` (env `RUNNEL_BENCH_MB`, default 64).
//! It builds the example in release mode, generates the text once, checks that both programs
//! give the same counts, and prints MB/s for each.
//!
//! With `RUNNEL_BENCH_BEAM_PYTHON=/path/to/python` (a Python with `apache-beam` installed), it also
//! runs Beam's own Python word count (`apache_beam.examples.wordcount`, same `[\w']+` words) on
//! the DirectRunner over the same file, once, and reports every figure against it.

use runnel_bench::{best_of, sorted_lines};
use std::path::Path;
use std::process::Command;

/// Beam Python DirectRunner on this machine class, from the issue (MB/s).
const BEAM_PYTHON_MB_S: f64 = 2.2;

fn main() {
    let mb: usize = std::env::var("RUNNEL_BENCH_MB").ok().and_then(|s| s.parse().ok()).unwrap_or(64);
    let (dir, input) = runnel_bench::wordcount_input(mb);
    let size_mb = std::fs::metadata(&input).expect("input").len() as f64 / (1 << 20) as f64;
    let binary = runnel_bench::example_binary("wordcount");

    let baseline_out = dir.join("baseline.txt");
    let baseline = best_of(3, || {
        runnel_bench::handwritten_wordcount(&input, &baseline_out).expect("baseline runs");
    });

    let run_example = |checks: &str, prefix: &Path| {
        let status = Command::new(&binary)
            .arg(format!("--input={}", input.display()))
            .arg(format!("--output={}", prefix.display()))
            .arg(format!("--direct-checks={checks}"))
            .status()
            .expect("example runs");
        assert!(status.success(), "wordcount failed");
    };
    let prefix = dir.join("counts");
    let direct_off = best_of(3, || run_example("off", &prefix));
    let shards = runnel_bench::shards_of(&dir, "counts");
    assert_eq!(sorted_lines(&shards), sorted_lines(&[baseline_out]), "Runnel and the baseline disagree");
    let direct_on = best_of(1, || run_example("on", &prefix));
    let unlifted = best_of(3, || {
        let status = Command::new(&binary)
            .arg(format!("--input={}", input.display()))
            .arg(format!("--output={}", prefix.display()))
            .args(["--direct-checks=off", "--direct-lift-combines=off"])
            .status()
            .expect("example runs");
        assert!(status.success(), "wordcount failed");
    });
    let beam = std::env::var_os("RUNNEL_BENCH_BEAM_PYTHON").map(|python| {
        let out = dir.join("beam");
        best_of(1, || {
            let status = Command::new(&python)
                .args(["-m", "apache_beam.examples.wordcount", "--runner=DirectRunner"])
                .arg(format!("--input={}", input.display()))
                .arg(format!("--output={}", out.display()))
                .stderr(std::process::Stdio::null())
                .status()
                .expect("Beam Python runs");
            assert!(status.success(), "Beam Python's wordcount failed");
        })
    });

    let rate = |secs: f64| size_mb / secs;
    let beam_rate = beam.map(rate).unwrap_or(BEAM_PYTHON_MB_S);
    println!("wordcount on {size_mb:.1} MB of generated text (best of 3; checks on and Beam Python: 1 run)");
    match beam {
        Some(secs) => println!("Beam Python DirectRunner, measured in this run: {:.2} MB/s ({secs:.1} s)", rate(secs)),
        None => {
            println!("Beam Python DirectRunner not run (set RUNNEL_BENCH_BEAM_PYTHON): {BEAM_PYTHON_MB_S} MB/s quoted")
        }
    }
    println!("{:<56} {:>9} {:>10} {:>12}", "program", "MB/s", "× Beam Py", "÷ hand-written");
    for (name, secs) in [
        ("hand-written single-threaded Rust", baseline),
        ("Runnel direct runner, --direct-checks=off", direct_off),
        ("Runnel direct runner, --direct-checks=off, unlifted", unlifted),
        ("Runnel direct runner, --direct-checks=on", direct_on),
    ] {
        println!("{:<56} {:>9.1} {:>10.1} {:>12.2}", name, rate(secs), rate(secs) / beam_rate, secs / baseline);
    }
}
