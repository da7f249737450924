//! The conformance suite on the direct runner, with its strict checks on (the default) and off.

runnel_conformance::conformance_suite!(direct, runnel::PipelineOptions::default());
runnel_conformance::conformance_suite!(direct_unchecked, runnel::PipelineOptions::default().with_direct_checks(false));
