//! The Fn API logging stream, end to end: what a DoFn logs with `tracing` while Prism runs its
//! bundles reaches Prism's logging service (Prism writes SDK log entries into its own log).

use runnel::prelude::*;
use runnel_runner_portable::local_job_service::LocalPrism;

#[test]
fn a_dofns_log_records_reach_prisms_logging_service() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("prism.log");
    let prism = LocalPrism::start_with_log(Some(&log)).unwrap();
    let options = PipelineOptions::default().with_runner(RunnerKind::Portable).with_job_endpoint(prism.endpoint());
    let p = Pipeline::new(options);
    p.apply("Words", Create::of(vec!["cat".to_string(), "dog".into()]))
        .apply(
            "Probe",
            ParDo::from_fn(|w: String, ctx: &mut DoFnContext<'_, '_, usize>| {
                tracing::warn!(word = %w, "runnel-log-probe");
                ctx.emit(w.len());
                Ok(())
            }),
        )
        .apply("Check", PAssert::equal_in_any_order(vec![3usize, 3]));
    p.run().unwrap();
    drop(prism);
    let text = std::fs::read_to_string(&log).unwrap();
    let probes: Vec<&str> = text.lines().filter(|l| l.contains("runnel-log-probe")).collect();
    assert_eq!(probes.len(), 2, "expected both records in Prism's log:\n{text}");
    assert!(
        probes.iter().any(|l| l.contains("word=cat")) && probes.iter().any(|l| l.contains("word=dog")),
        "{probes:#?}"
    );
}
