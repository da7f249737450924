//! The conformance suite on the direct runner, with its strict checks on (the default) and off.

runnel_conformance::conformance_suite!(direct, runnel::PipelineOptions::default());
runnel_conformance::conformance_suite!(direct_unchecked, runnel::PipelineOptions::default().with_direct_checks(false));
runnel_conformance::conformance_suite!(
    direct_lifted,
    runnel::PipelineOptions::default().with_direct_lift_combines(true)
);
// The direct runner claiming batch only: every case needing more must be refused up front.
runnel_conformance::conformance_suite!(
    direct_batch_only,
    runnel::PipelineOptions::default().with_direct_batch_only(true),
    runnel_conformance::Capabilities::batch_only()
);
