//! Groupings larger than the memory budget: the rayon runner spills sorted runs of the shuffle to disk, merges them,
//! and gives the same result as in memory; the spill files are gone when the job ends, whether it succeeds or fails.

use runnel::combine::Sum;
use runnel::prelude::*;
use runnel_runner_rayon::{SPILLED_BYTES, SPILLED_RUNS};
use std::collections::BTreeMap;
use tempfile::TempDir;

const SEEDS: u64 = 8;
const PER_SEED: u64 = 20_000;
const KEYS: u64 = 997;

/// Element `i`: a key and a value of a few dozen bytes.
fn element(i: u64) -> (u64, String) {
    (i.wrapping_mul(2_654_435_761) % KEYS, format!("value number {i} with some padding to make it larger"))
}

/// The events, generated inside the pipeline so that the shuffle, not the `Create`, holds the data.
fn events(p: &Pipeline) -> PCollection<(u64, String)> {
    p.apply("Seeds", Create::of((0..SEEDS).collect::<Vec<u64>>())).apply(
        "Generate",
        ParDo::from_fn(|seed: u64, ctx: &mut DoFnContext<'_, '_, (u64, String)>| {
            for i in seed * PER_SEED..(seed + 1) * PER_SEED {
                ctx.emit(element(i));
            }
            Ok(())
        }),
    )
}

/// Per key: how many values, and the sum of their lengths, computed without a pipeline.
fn expected() -> Vec<(u64, (u64, u64))> {
    let mut groups: BTreeMap<u64, (u64, u64)> = BTreeMap::new();
    for i in 0..SEEDS * PER_SEED {
        let (key, value) = element(i);
        let g = groups.entry(key).or_default();
        g.0 += 1;
        g.1 += value.len() as u64;
    }
    groups.into_iter().collect()
}

fn options(budget: u64, temp: &TempDir) -> PipelineOptions {
    PipelineOptions::default().with_runner(RunnerKind::Rayon).with_memory_budget(budget).with_temp_dir(temp.path())
}

fn assert_empty(temp: &TempDir) {
    let left: Vec<_> = std::fs::read_dir(temp.path()).unwrap().map(|e| e.unwrap().path()).collect();
    assert!(left.is_empty(), "spill files left behind: {left:?}");
}

#[test]
fn a_group_by_key_over_the_budget_spills_and_gives_the_in_memory_result() {
    for budget in [256 << 10, 1 << 40] {
        let temp = TempDir::new().unwrap();
        let p = Pipeline::new(options(budget, &temp));
        events(&p)
            .apply("GroupByKey", GroupByKey::new())
            .map("Sizes", |(key, values): (u64, Vec<String>)| {
                (key, (values.len() as u64, values.iter().map(|v| v.len() as u64).sum::<u64>()))
            })
            .apply("Check", PAssert::equal_in_any_order(expected()));
        let result = p.run().unwrap();
        let runs = result.counter(SPILLED_RUNS);
        if budget == 1 << 40 {
            assert_eq!(runs, 0, "nothing spills within the budget");
        } else {
            // About 8 MB of values through a 256 KiB budget: many runs.
            assert!(runs > 8, "{runs} runs spilled");
            assert!(result.counter(SPILLED_BYTES) > 4 << 20, "{} bytes spilled", result.counter(SPILLED_BYTES));
        }
        assert_empty(&temp);
    }
}

#[test]
fn a_lifted_combine_over_the_budget_spills_its_accumulators() {
    let temp = TempDir::new().unwrap();
    let p = Pipeline::new(options(16 << 10, &temp));
    let sums = events(&p)
        .map("Lengths", |(key, value): (u64, String)| (key, value.len() as u64))
        .combine_per_key("SumPerKey", Sum::<u64>::new());
    let want: Vec<(u64, u64)> = expected().into_iter().map(|(k, (_, len))| (k, len)).collect();
    sums.apply("Check", PAssert::equal_in_any_order(want));
    let result = p.run().unwrap();
    assert!(result.counter(SPILLED_RUNS) > 0, "the accumulators spilled");
    assert_empty(&temp);
}

#[test]
fn a_failure_after_spilling_leaves_no_spill_files() {
    let temp = TempDir::new().unwrap();
    let p = Pipeline::new(options(256 << 10, &temp));
    events(&p).apply("GroupByKey", GroupByKey::new()).map("Fail", |(key, values): (u64, Vec<String>)| {
        if key == KEYS / 2 {
            panic!("key {key} is bad");
        }
        values.len()
    });
    let error = p.run().unwrap_err().to_string();
    assert!(error.contains("Fail") && error.contains("is bad"), "{error}");
    assert_empty(&temp);
}
