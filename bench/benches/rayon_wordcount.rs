//! Word count on the rayon runner against a hand-written rayon word count, at several input sizes, and the speed-up
//! of both from one core to all of them.
//!
//! `cargo bench -p runnel-bench --bench rayon_wordcount` (env `RUNNEL_BENCH_SIZES`, MB, default `50,200`).
//! For each size it generates the text once (one file), runs the hand-written program
//! ([`runnel_bench::handwritten_rayon_wordcount`]: read, split `[\w']+`, per-task hash maps, merge, write) and the
//! `wordcount` example with `--runner=rayon`, best of 3 each, checks that they give the same counts, and prints the
//! seconds, MB/s and the ratio Runnel ÷ hand-written. Then, on the largest size, both with one thread
//! (`RAYON_NUM_THREADS=1`, best of 2) for the speed-up to all cores.

use runnel_bench::{best_of, handwritten_rayon_wordcount, shards_of, sorted_lines};
use std::path::Path;
use std::process::Command;

/// Runs the wordcount example on the rayon runner, with `threads` rayon threads (`None`: all cores).
fn run_runnel(binary: &Path, input: &Path, prefix: &Path, threads: Option<usize>) {
    let mut command = Command::new(binary);
    command.arg(format!("--input={}", input.display())).arg(format!("--output={}", prefix.display()));
    command.arg("--runner=rayon");
    if let Some(n) = threads {
        command.env("RAYON_NUM_THREADS", n.to_string());
    }
    let status = command.status().expect("example runs");
    assert!(status.success(), "wordcount on rayon failed");
}

fn main() {
    let sizes: Vec<usize> = std::env::var("RUNNEL_BENCH_SIZES")
        .unwrap_or_else(|_| "50,200".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let binary = runnel_bench::example_binary("wordcount");
    let cores = rayon::current_num_threads();
    println!("wordcount, rayon runner against hand-written rayon, {cores} threads (best of 3)");
    println!("{:>8} {:>12} {:>10} {:>12} {:>10} {:>8}", "MB", "hand-written", "MB/s", "Runnel", "MB/s", "ratio");
    let mut largest = None;
    for mb in sizes {
        let (dir, input) = runnel_bench::wordcount_input(mb);
        let size_mb = std::fs::metadata(&input).expect("input").len() as f64 / (1 << 20) as f64;
        let baseline_out = dir.join("rayon-baseline.txt");
        let hand = best_of(3, || {
            handwritten_rayon_wordcount(&input, &baseline_out).expect("baseline runs");
        });
        let prefix = dir.join("rayon-counts");
        let runnel = best_of(3, || run_runnel(&binary, &input, &prefix, None));
        let (ours, theirs) = (sorted_lines(&shards_of(&dir, "rayon-counts")), sorted_lines(&[baseline_out]));
        assert!(
            ours == theirs,
            "Runnel ({} lines) and the baseline ({} lines) disagree on {mb} MB",
            ours.len(),
            theirs.len()
        );
        println!(
            "{:>8.1} {:>11.2}s {:>10.1} {:>11.2}s {:>10.1} {:>8.2}",
            size_mb,
            hand,
            size_mb / hand,
            runnel,
            size_mb / runnel,
            runnel / hand
        );
        largest = Some((size_mb, dir, input, hand, runnel));
    }
    let Some((size_mb, dir, input, hand_all, runnel_all)) = largest else { return };
    let one_thread = rayon::ThreadPoolBuilder::new().num_threads(1).build().expect("a one-thread pool");
    let baseline_out = dir.join("rayon-baseline-1.txt");
    let hand_one = best_of(2, || {
        one_thread.install(|| handwritten_rayon_wordcount(&input, &baseline_out).expect("baseline runs"));
    });
    let runnel_one = best_of(2, || run_runnel(&binary, &input, &dir.join("rayon-one-thread-counts"), Some(1)));
    println!("speed-up on {size_mb:.1} MB from 1 thread to {cores} (best of 2 with 1 thread):");
    println!("  hand-written: {hand_one:.2}s -> {hand_all:.2}s = {:.2}x", hand_one / hand_all);
    println!("  Runnel rayon: {runnel_one:.2}s -> {runnel_all:.2}s = {:.2}x", runnel_one / runnel_all);
}
