//! Batches go through a stage depth first, and bundles queued between stages are consumed while
//! their producer is still running: a DoFn that emits a huge output for one input never has it all
//! held at once. (The memory figures themselves are measured in docs/benchmarks.md; these tests
//! pin the behaviour that bounds it.)

use runnel::prelude::*;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

const EMITTED: usize = 200_000;

/// A ParDo emitting `EMITTED` numbers for its one input, counting as it goes.
fn explode(p: &Pipeline, emitted: Arc<AtomicUsize>) -> PCollection<u64> {
    p.apply("One", Create::of(vec![()])).apply(
        "Explode",
        ParDo::from_fn(move |_: (), ctx: &mut DoFnContext<'_, '_, u64>| {
            for i in 0..EMITTED as u64 {
                emitted.fetch_add(1, Ordering::SeqCst);
                ctx.emit(i);
            }
            Ok(())
        }),
    )
}

/// A ParDo recording how many elements `Explode` had emitted when it first saw one.
fn observe(pc: &PCollection<u64>, name: &str, seen_at: Arc<AtomicUsize>, emitted: Arc<AtomicUsize>) {
    pc.apply(
        name,
        ParDo::from_fn(move |_: u64, _: &mut DoFnContext<'_, '_, ()>| {
            let _ = seen_at.compare_exchange(0, emitted.load(Ordering::SeqCst), Ordering::SeqCst, Ordering::SeqCst);
            Ok(())
        }),
    );
}

#[test]
fn a_fused_transform_receives_output_while_the_dofn_before_it_still_runs() {
    for checks in [true, false] {
        let p = Pipeline::new(PipelineOptions::default().with_direct_checks(checks));
        let (emitted, seen_at) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let out = explode(&p, emitted.clone());
        observe(&out, "Observe", seen_at.clone(), emitted.clone());
        p.run().unwrap();
        let at = seen_at.load(Ordering::SeqCst);
        assert!(at > 0 && at <= 2048, "checks {checks}: first batch seen after {at} of {EMITTED} were emitted");
    }
}

#[test]
fn a_stage_after_a_boundary_consumes_bundles_while_the_producing_stage_still_runs() {
    for checks in [true, false] {
        let p = Pipeline::new(PipelineOptions::default().with_direct_checks(checks));
        let (emitted, seen_at) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let out = explode(&p, emitted.clone()).apply("Boundary", Reshuffle);
        observe(&out, "Observe", seen_at.clone(), emitted.clone());
        assert!(p.explain().unwrap().contains("read Boundary [Reshuffle]"), "Reshuffle starts a stage");
        p.run().unwrap();
        let at = seen_at.load(Ordering::SeqCst);
        assert!(at > 0 && at < EMITTED / 2, "checks {checks}: first bundle seen after {at} of {EMITTED} were emitted");
    }
}
