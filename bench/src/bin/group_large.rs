//! A GroupByKey over more data than memory, to measure the rayon runner's spilling:
//! `group_large --events=N [--value-bytes=B] [--keys=K] PIPELINE OPTIONS` (e.g. `--runner=rayon --memory-budget=256MiB`).
//!
//! Generates `N` `(key, value)` pairs inside the pipeline (values of `B` bytes, keys spread over `K`), groups them by
//! key, and checks every group: its size and the total length of its values must be what the generator made. Prints
//! the number of groups and elements, and (from the rayon runner's counters) what was spilled. Run it under
//! `/usr/bin/time -v` for the peak memory.

use clap::Parser;
use runnel::prelude::*;

#[derive(Debug, Parser)]
struct Args {
    /// Elements to generate.
    #[arg(long)]
    events: u64,
    /// Bytes per value.
    #[arg(long, default_value_t = 100)]
    value_bytes: usize,
    /// Distinct keys.
    #[arg(long, default_value_t = 100_000)]
    keys: u64,
    #[command(flatten)]
    pipeline: PipelineOptions,
}

/// Generators (one ParDo call each), so that the work is spread over cores from the start.
const SEEDS: u64 = 64;

fn key_of(i: u64, keys: u64) -> u64 {
    runnel_bench::splitmix64(i) % keys
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let (n, keys, value_bytes) = (args.events, args.keys, args.value_bytes);
    let p = Pipeline::new(args.pipeline);
    p.apply("Seeds", Create::of((0..SEEDS).collect::<Vec<u64>>()))
        .apply(
            "Generate",
            ParDo::from_fn(move |seed: u64, ctx: &mut DoFnContext<'_, '_, (u64, String)>| {
                let chunk = n.div_ceil(SEEDS);
                for i in seed * chunk..((seed + 1) * chunk).min(n) {
                    let mut value = format!("{i}:");
                    value.extend(std::iter::repeat_n('x', value_bytes.saturating_sub(value.len())));
                    ctx.emit((key_of(i, keys), value));
                }
                Ok(())
            }),
        )
        .apply("GroupByKey", GroupByKey::new())
        .apply(
            "CheckGroups",
            ParDo::from_fn(move |(_, values): (u64, Vec<String>), ctx: &mut DoFnContext<'_, '_, ()>| {
                ctx.inc_counter("groups", 1);
                ctx.inc_counter("elements", values.len() as i64);
                let bytes: usize = values.iter().map(String::len).sum();
                if bytes < values.len() * value_bytes {
                    return Err(format!("a group's values are shorter than generated: {bytes} bytes").into());
                }
                Ok(())
            }),
        );
    let result = p.run()?;
    let elements = result.counter("elements");
    println!(
        "groups {} elements {elements} spilled runs {} spilled bytes {}",
        result.counter("groups"),
        result.counter("rayon_spilled_runs"),
        result.counter("rayon_spilled_bytes")
    );
    if elements != n as i64 {
        return Err(format!("{elements} elements grouped, {n} generated").into());
    }
    Ok(())
}
