//! A failing partition stops the whole job promptly: the other partitions stop at their next batch instead of
//! running to the end of their input, and the job fails with the first real error, naming the transform.

use runnel::prelude::*;
use std::sync::atomic::{AtomicU64, Ordering};

/// Elements that reached the transform after the failing one (in any partition).
static PROCESSED: AtomicU64 = AtomicU64::new(0);

#[test]
fn one_failing_partition_stops_the_others_and_names_the_transform() {
    const N: u64 = 800_000;
    let p = Pipeline::new(PipelineOptions::default().with_runner(RunnerKind::Rayon));
    p.apply("Numbers", Create::of((0..N).collect::<Vec<u64>>()))
        .apply("Reshuffle", Reshuffle)
        .map("Check", |x: u64| {
            if x == N / 2 {
                panic!("element {x} is bad");
            }
            x
        })
        .map("Count", |x: u64| {
            PROCESSED.fetch_add(1, Ordering::Relaxed);
            // Enough work per element that the failing partition is reached long before the others end.
            (0..200u64).fold(x, |a, b| a.wrapping_mul(31).wrapping_add(b))
        });
    let error = p.run().unwrap_err().to_string();
    assert!(error.contains("Check") && error.contains("element 400000 is bad"), "{error}");
    let processed = PROCESSED.load(Ordering::Relaxed);
    // The reshuffle deals the elements to 8 tasks (2 per partition, 2 partitions per thread on 2 cores or more); a
    // partition that ran on to the end of its task would make at least one task's worth.
    assert!(processed < N / 8, "the other partitions ran on: {processed} of {N} elements processed");
}
