//! The conformance suite on the rayon runner, in memory and spilling: every bounded case runs; cases needing TestStream,
//! unbounded sources or processing time must be refused up front.

runnel_conformance::conformance_suite!(
    rayon,
    runnel::PipelineOptions::default().with_runner(runnel::RunnerKind::Rayon),
    runnel_conformance::Capabilities::of(&[
        runnel_conformance::Capability::Retractions,
        runnel_conformance::Capability::RunAsync,
        runnel_conformance::Capability::UserWindowFns,
    ])
);

// The same suite with a memory budget of one byte: every shuffle into a grouping spills sorted runs to disk and every
// grouping merges them, so every case also checks the spilling path against the in-memory results.
runnel_conformance::conformance_suite!(
    rayon_spilling,
    runnel::PipelineOptions::default().with_runner(runnel::RunnerKind::Rayon).with_memory_budget(1),
    runnel_conformance::Capabilities::of(&[
        runnel_conformance::Capability::Retractions,
        runnel_conformance::Capability::RunAsync,
        runnel_conformance::Capability::UserWindowFns,
    ])
);
