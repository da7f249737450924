//! The conformance suite on the rayon runner: every bounded case runs; cases needing TestStream,
//! unbounded sources or processing time must be refused up front.

runnel_conformance::conformance_suite!(
    rayon,
    runnel::PipelineOptions::default().with_runner(runnel::RunnerKind::Rayon),
    runnel_conformance::Capabilities::of(&[
        runnel_conformance::Capability::Retractions,
        runnel_conformance::Capability::RunAsync,
    ])
);
