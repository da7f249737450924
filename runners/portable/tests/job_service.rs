//! Against Beam Python's local job service (started here; the test fails, naming the fix, when
//! the pinned apache-beam venv is missing — see `scripts/beam-venv.sh`): translated pipelines are
//! prepared and run with Runnel's worker pool as the EXTERNAL environment; their PAssert checks
//! run inside the job, so a wrong result fails the job, which the job client reports.

use runnel::prelude::*;
use runnel_runner_portable::harness::{Observed, WorkerPool};
use runnel_runner_portable::job::{JobClient, JobError, JobOutcome};
use runnel_runner_portable::local_job_service::LocalJobService;
use runnel_runner_portable::translate::{graph_fingerprint, translate, EnvironmentSpec, TranslateOptions};
use std::collections::BTreeMap;

type JobService = LocalJobService;

/// Word counts with a side input (Create, ParDo with a side input, a liftable Combine per key)
/// checked by a PAssert against `expected`.
fn pipeline(expected: Vec<(String, i64)>) -> Pipeline {
    let p = Pipeline::new(PipelineOptions::default());
    let stop = View::as_iterable(&p.apply("StopWords", Create::of(vec!["the".to_string()])));
    let s = stop.clone();
    p.apply("Lines", Create::of(vec!["the cat".to_string(), "the dog".into(), "a cat".into()]))
        .apply(
            "Words",
            ParDo::from_fn(move |line: String, ctx: &mut DoFnContext<'_, '_, (String, i64)>| {
                let stop = ctx.side_input(&s)?.clone();
                for w in line.split(' ').filter(|w| !stop.iter().any(|s| s == w)) {
                    ctx.emit((w.to_string(), 1));
                }
                Ok(())
            })
            .with_side_input(&stop),
        )
        .apply("Count", Combine::per_key(combine::Sum::new()))
        .apply("Check", PAssert::equal_in_any_order(expected));
    p
}

/// Submits `p` to the job service with a worker pool running its code; returns the outcome
/// and what the pool saw.
fn submit(service: &JobService, p: &Pipeline) -> (Result<JobOutcome, JobError>, Observed) {
    let job = p.job().unwrap();
    let fingerprint = graph_fingerprint(&job.graph);
    let graph = job.graph.clone();
    let pool = WorkerPool::start(job, fingerprint).unwrap();
    let options = TranslateOptions {
        environment: EnvironmentSpec::External { endpoint: pool.endpoint().to_string() },
        batch_only: true,
    };
    let beam = translate(&graph, &options).unwrap();
    let mut client = JobClient::connect(service.endpoint()).unwrap();
    let preparation = client.prepare(beam, &BTreeMap::from([("job_name".into(), "words".into())]), "words").unwrap();
    let job_id = client.run(&preparation).unwrap();
    let outcome = client.wait(&job_id, &mut |_, _| {}).unwrap();
    (outcome.into_result(), pool.observed())
}

fn counts(pairs: &[(&str, i64)]) -> Vec<(String, i64)> {
    pairs.iter().map(|(w, n)| (w.to_string(), *n)).collect()
}

#[test]
fn a_pipeline_runs_on_the_job_service_with_runnel_as_the_worker() {
    let expected = counts(&[("cat", 2), ("dog", 1), ("a", 1)]);
    // The same pipeline passes on the direct runner: the reference.
    pipeline(expected.clone()).run().unwrap();
    let service = JobService::start().unwrap();
    let (outcome, seen) = submit(&service, &pipeline(expected));
    if let Err(e) = outcome {
        panic!("{e}; the pool saw: {:?}", seen.errors);
    }
    assert!(!seen.start_requests.is_empty(), "the runner never asked for a worker");
    assert!(seen.bundles > 0);
    // The descriptors hold our functions, naming transforms of our graph.
    let urns: Vec<String> = seen
        .descriptors
        .values()
        .flat_map(|d| d.transforms.values().filter_map(|t| t.spec.as_ref().map(|s| s.urn.clone())))
        .collect();
    assert!(urns.iter().any(|u| u == "beam:runner:source:v1"), "{urns:?}");
    // The job service lifted the combine: its parts ran in our harness.
    assert!(urns.iter().any(|u| u == "beam:transform:combine_per_key_precombine:v1"), "{urns:?}");
}

#[test]
fn a_failing_assertion_fails_the_job_with_its_message() {
    let service = JobService::start().unwrap();
    let (outcome, _) = submit(&service, &pipeline(counts(&[("cat", 3)])));
    let err = outcome.unwrap_err();
    let JobError::Failed { state, messages, .. } = &err else { panic!("{err}") };
    assert_eq!(state, "FAILED", "{err}");
    assert!(messages.iter().any(|m| m.contains("assertion failed in Check")), "{err}");
}

#[test]
fn a_worker_refuses_a_pipeline_other_than_its_own() {
    let service = JobService::start().unwrap();
    // The pool runs one pipeline's code; the runner is sent another graph.
    let p = pipeline(counts(&[("cat", 2), ("dog", 1), ("a", 1)]));
    // Same transforms plus one: another graph (the PAssert's expectation is code, not graph).
    let other = pipeline(counts(&[("cat", 2), ("dog", 1), ("a", 1)]));
    other.apply("Extra", Create::of(vec![1i64]));
    let pool = WorkerPool::start(p.job().unwrap(), graph_fingerprint(&p.graph())).unwrap();
    let options = TranslateOptions {
        environment: EnvironmentSpec::External { endpoint: pool.endpoint().to_string() },
        batch_only: true,
    };
    let beam = translate(&other.graph(), &options).unwrap();
    let mut client = JobClient::connect(service.endpoint()).unwrap();
    let preparation = client.prepare(beam, &BTreeMap::new(), "other").unwrap();
    let job_id = client.run(&preparation).unwrap();
    let err = client.wait(&job_id, &mut |_, _| {}).unwrap().into_result().unwrap_err();
    assert!(err.to_string().contains("a worker runs only the pipeline it built"), "{err}");
}

#[test]
fn an_unreachable_job_server_is_a_connect_error() {
    // A port just bound and released: nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    match JobClient::connect(&format!("127.0.0.1:{port}")) {
        Err(JobError::Connect { endpoint, .. }) => assert_eq!(endpoint, format!("127.0.0.1:{port}")),
        Err(other) => panic!("expected a connect error, got {other}"),
        Ok(_) => panic!("connected to a closed port"),
    }
}

/// A lookup view is read key by key through Beam's multimap side inputs: one state read per key
/// asked (per bundle), none of the window as a whole; a key asked twice is read once.
#[test]
fn a_lookup_view_reads_only_the_keys_asked_through_multimap_state() {
    let p = Pipeline::new(PipelineOptions::default());
    let side: Vec<(String, i64)> = (0..1000).map(|i| (format!("k{i}"), i)).collect();
    let view = View::as_multimap_lookup(&p.apply("Side", Create::of(side)));
    let v = view.clone();
    p.apply("Main", Create::of(vec!["k7".to_string(), "k7".into(), "k999".into(), "none".into()]))
        .apply(
            "Lookup",
            ParDo::from_fn(move |k: String, ctx: &mut DoFnContext<'_, '_, (String, Vec<i64>)>| {
                let values = ctx.side_input(&v)?.get(&k)?;
                ctx.emit((k, values));
                Ok(())
            })
            .with_side_input(&view),
        )
        .apply(
            "Check",
            PAssert::equal_in_any_order(vec![
                ("k7".to_string(), vec![7i64]),
                ("k7".into(), vec![7]),
                ("k999".into(), vec![999]),
                ("none".into(), vec![]),
            ]),
        );
    let service = JobService::start().unwrap();
    let (outcome, seen) = submit(&service, &p);
    if let Err(e) = outcome {
        panic!("{e}; the pool saw: {:?}", seen.errors);
    }
    let side_reads = |kind: &str| seen.state_reads.get(&(kind.to_string(), "Lookup".to_string())).copied().unwrap_or(0);
    assert_eq!(side_reads("iterable_side_input"), 0, "{:?}", seen.state_reads);
    // Three distinct keys; a bundle may hold some of them only, never a key read twice in one.
    let multimap = side_reads("multimap_side_input");
    assert!((3..=4).contains(&multimap), "{:?} for 3 distinct keys", seen.state_reads);
}
