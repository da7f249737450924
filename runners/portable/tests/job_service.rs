//! Against Beam Python's local job service (started here; the test fails, naming the fix, when
//! the pinned apache-beam venv is missing — see `scripts/beam-venv.sh`): a translated pipeline
//! is prepared and run, the runner fuses it and asks Runnel's worker pool for a worker, the
//! worker fetches the bundle descriptors, and the job fails with the harness's own message
//! (bundles are not executed yet), which the job client reports.

use runnel::prelude::*;
use runnel_runner_portable::harness::{WorkerPool, NOT_EXECUTING};
use runnel_runner_portable::job::{JobClient, JobError};
use runnel_runner_portable::translate::{translate, EnvironmentSpec, FnPayload, TranslateOptions};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The Python of the venv holding apache-beam 2.77.0: `$RUNNEL_BEAM_VENV/bin/python`, by
/// default `/opt/beam-venv/bin/python` (where `scripts/beam-venv.sh` puts it).
fn beam_python() -> PathBuf {
    let venv = std::env::var("RUNNEL_BEAM_VENV").unwrap_or_else(|_| "/opt/beam-venv".to_string());
    let python = PathBuf::from(venv).join("bin/python");
    assert!(
        python.exists(),
        "{} is missing: run scripts/beam-venv.sh (or set RUNNEL_BEAM_VENV) to install apache-beam 2.77.0",
        python.display()
    );
    python
}

/// Beam Python's local job service, stopped when dropped.
struct JobService {
    child: Child,
    endpoint: String,
    _dir: tempfile::TempDir,
}

impl JobService {
    fn start() -> JobService {
        let dir = tempfile::tempdir().unwrap();
        let port_file = dir.path().join("port");
        let child = Command::new(beam_python())
            .args(["-m", "apache_beam.runners.portability.local_job_service_main", "--port", "0", "--port_file"])
            .arg(&port_file)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("cannot start Beam Python's job service");
        let mut service = JobService { child, endpoint: String::new(), _dir: dir };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(port) = std::fs::read_to_string(&port_file) {
                if !port.trim().is_empty() {
                    // The file may hold `localhost:PORT` or just the port.
                    let port = port.trim().rsplit(':').next().unwrap().to_string();
                    service.endpoint = format!("localhost:{port}");
                    return service;
                }
            }
            if let Some(status) = service.child.try_wait().unwrap() {
                panic!("Beam Python's job service exited at start: {status}");
            }
            assert!(Instant::now() < deadline, "Beam Python's job service wrote no port file in 60 s");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for JobService {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Word counts with a side input: Create, ParDo, Combine per key (liftable), a side input.
fn pipeline() -> Pipeline {
    let p = Pipeline::new(PipelineOptions::default());
    let stop = View::as_iterable(&p.apply("StopWords", Create::of(vec!["the".to_string()])));
    let s = stop.clone();
    p.apply("Lines", Create::of(vec!["the cat".to_string(), "the dog".into()]))
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
        .apply("Count", Combine::per_key(combine::Sum::new()));
    p
}

#[test]
fn the_job_service_fuses_the_pipeline_and_the_failure_reaches_the_client() {
    let service = JobService::start();
    let pool = WorkerPool::start().unwrap();
    let graph = pipeline().graph();
    let options = TranslateOptions {
        environment: EnvironmentSpec::External { endpoint: pool.endpoint().to_string() },
        batch_only: true,
    };
    let beam = translate(&graph, &options).unwrap();

    let mut client = JobClient::connect(&service.endpoint).unwrap();
    let preparation = client.prepare(beam, &BTreeMap::from([("job_name".into(), "words".into())]), "words").unwrap();
    let job_id = client.run(&preparation).unwrap();
    let outcome = client.wait(&job_id, &mut |_, _| {}).unwrap();
    let err = outcome.clone().into_result().unwrap_err();
    let JobError::Failed { state, messages, .. } = &err else { panic!("{err}") };
    assert_eq!(state, "FAILED", "{err}");
    assert!(messages.iter().any(|m| m.contains(NOT_EXECUTING)), "{err}; all messages: {:?}", outcome.messages);

    let seen = pool.observed();
    assert!(!seen.start_requests.is_empty(), "the runner never asked for a worker");
    assert!(seen.start_requests[0].control_endpoint.is_some());
    assert!(!seen.descriptors.is_empty(), "no bundle descriptor was fetched: {:?}", seen.errors);
    // The descriptors hold our transforms under their ids, with our function payloads.
    let mut urns = Vec::new();
    for d in seen.descriptors.values() {
        for (id, t) in &d.transforms {
            let urn = t.spec.as_ref().map(|s| s.urn.clone()).unwrap_or_default();
            if urn == "beam:transform:pardo:v1" {
                let p: runnel_runner_portable::proto::pipeline::ParDoPayload =
                    prost::Message::decode(t.spec.as_ref().unwrap().payload.as_slice()).unwrap();
                let f = p.do_fn.unwrap();
                let payload: FnPayload = serde_json::from_slice(&f.payload).unwrap();
                assert!(graph.transforms.contains_key(&payload.transform), "{id}: {payload:?}");
            }
            urns.push(urn);
        }
    }
    assert!(urns.iter().any(|u| u == "beam:runner:source:v1"), "{urns:?}");
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
