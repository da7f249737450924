//! The start of Runnel's SDK harness: the external worker pool and the control plane.
//!
//! **Not done yet:** bundles are not executed. [`WorkerPool`] serves
//! `BeamFnExternalWorkerPool` on loopback; for each `StartWorker` it connects to the runner's
//! control endpoint, answers `Register` instructions, and for each `ProcessBundle` fetches the
//! bundle descriptor (`GetProcessBundleDescriptor`) and answers with an error saying that this
//! harness cannot execute bundles yet, so the job fails with that message rather than hanging
//! or pretending to succeed. What it saw (worker requests, descriptors) is kept for inspection,
//! which is how the tests check what a real Beam runner makes of a translated pipeline.

use crate::proto::fn_execution as fnapi;
use fnapi::beam_fn_control_client::BeamFnControlClient;
use fnapi::beam_fn_external_worker_pool_server::{BeamFnExternalWorkerPool, BeamFnExternalWorkerPoolServer};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use tokio_stream::wrappers::{ReceiverStream, TcpListenerStream};

/// The error every bundle is answered with until the harness executes bundles.
pub const NOT_EXECUTING: &str = "Runnel's SDK harness does not execute bundles yet (the Fn API data plane is \
                                 not implemented); run this pipeline on the direct or rayon runner";

/// What the worker pool has seen.
#[derive(Clone, Debug, Default)]
pub struct Observed {
    /// Every `StartWorker` request, in order.
    pub start_requests: Vec<fnapi::StartWorkerRequest>,
    /// Every bundle descriptor fetched, by id.
    pub descriptors: BTreeMap<String, fnapi::ProcessBundleDescriptor>,
    /// Errors of the control plane (connection failures and the like).
    pub errors: Vec<String>,
}

type Shared = Arc<Mutex<Observed>>;

fn record(shared: &Shared, f: impl FnOnce(&mut Observed)) {
    // A poisoned lock only means another task panicked while recording; the data is still usable.
    let mut guard = shared.lock().unwrap_or_else(|e| e.into_inner());
    f(&mut guard);
}

struct Pool {
    observed: Shared,
}

#[tonic::async_trait]
impl BeamFnExternalWorkerPool for Pool {
    async fn start_worker(
        &self,
        request: tonic::Request<fnapi::StartWorkerRequest>,
    ) -> Result<tonic::Response<fnapi::StartWorkerResponse>, tonic::Status> {
        let request = request.into_inner();
        record(&self.observed, |o| o.start_requests.push(request.clone()));
        let Some(control) = request.control_endpoint.as_ref().map(|e| e.url.clone()) else {
            return Ok(tonic::Response::new(fnapi::StartWorkerResponse { error: "no control endpoint given".into() }));
        };
        let observed = self.observed.clone();
        let worker_id = request.worker_id.clone();
        tokio::spawn(async move {
            if let Err(e) = control_loop(&control, &worker_id, observed.clone()).await {
                record(&observed, |o| o.errors.push(format!("worker {worker_id}: {e}")));
            }
        });
        Ok(tonic::Response::new(fnapi::StartWorkerResponse { error: String::new() }))
    }

    async fn stop_worker(
        &self,
        _request: tonic::Request<fnapi::StopWorkerRequest>,
    ) -> Result<tonic::Response<fnapi::StopWorkerResponse>, tonic::Status> {
        // A worker ends when the runner closes its control stream; nothing to stop here.
        Ok(tonic::Response::new(fnapi::StopWorkerResponse { error: String::new() }))
    }
}

fn http(url: &str) -> String {
    if url.contains("://") {
        url.to_string()
    } else {
        format!("http://{url}")
    }
}

/// Serves one worker's control stream until the runner ends it.
async fn control_loop(endpoint: &str, worker_id: &str, observed: Shared) -> Result<(), String> {
    let channel = tonic::transport::Endpoint::from_shared(http(endpoint))
        .map_err(|e| e.to_string())?
        .connect()
        .await
        .map_err(|e| format!("cannot connect to control endpoint {endpoint}: {e:?}"))?;
    let mut client = BeamFnControlClient::new(channel).max_decoding_message_size(256 << 20);
    let (tx, rx) = tokio::sync::mpsc::channel::<fnapi::InstructionResponse>(16);
    let mut request = tonic::Request::new(ReceiverStream::new(rx));
    // Beam runners tell workers apart by this header.
    if let Ok(v) = worker_id.parse() {
        request.metadata_mut().insert("worker_id", v);
    }
    let mut instructions = client.clone().control(request).await.map_err(|e| e.to_string())?.into_inner();
    while let Some(instruction) = instructions.message().await.map_err(|e| e.to_string())? {
        let mut response =
            fnapi::InstructionResponse { instruction_id: instruction.instruction_id, ..Default::default() };
        match instruction.request {
            Some(fnapi::instruction_request::Request::Register(r)) => {
                record(&observed, |o| {
                    for d in r.process_bundle_descriptor {
                        o.descriptors.insert(d.id.clone(), d);
                    }
                });
                response.response = Some(fnapi::instruction_response::Response::Register(fnapi::RegisterResponse {}));
            }
            Some(fnapi::instruction_request::Request::ProcessBundle(pb)) => {
                let id = pb.process_bundle_descriptor_id;
                let known = observed.lock().map(|o| o.descriptors.contains_key(&id)).unwrap_or(false);
                if !known {
                    let request = fnapi::GetProcessBundleDescriptorRequest { process_bundle_descriptor_id: id.clone() };
                    match client.get_process_bundle_descriptor(request).await {
                        Ok(d) => record(&observed, |o| {
                            o.descriptors.insert(id.clone(), d.into_inner());
                        }),
                        Err(e) => record(&observed, |o| o.errors.push(format!("descriptor {id}: {e}"))),
                    }
                }
                response.error = NOT_EXECUTING.to_string();
            }
            _ => response.error = "Runnel's SDK harness does not support this instruction".to_string(),
        }
        if tx.send(response).await.is_err() {
            break;
        }
    }
    // Dropping `tx` half-closes our side of the control stream.
    Ok(())
}

/// A `BeamFnExternalWorkerPool` served on loopback (see the module documentation for what it
/// does and does not do yet).
pub struct WorkerPool {
    runtime: tokio::runtime::Runtime,
    endpoint: String,
    observed: Shared,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
}

impl WorkerPool {
    /// Starts serving on `127.0.0.1` at a free port.
    pub fn start() -> std::io::Result<WorkerPool> {
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
        let listener = runtime.block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))?;
        let endpoint = format!("127.0.0.1:{}", listener.local_addr()?.port());
        let observed: Shared = Arc::default();
        let (shutdown, stop) = tokio::sync::oneshot::channel::<()>();
        let service = BeamFnExternalWorkerPoolServer::new(Pool { observed: observed.clone() });
        runtime.spawn(tonic::transport::Server::builder().add_service(service).serve_with_incoming_shutdown(
            TcpListenerStream::new(listener),
            async {
                let _ = stop.await;
            },
        ));
        Ok(WorkerPool { runtime, endpoint, observed, shutdown: Some(shutdown) })
    }

    /// `HOST:PORT` to put in the EXTERNAL environment.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// A copy of what it has seen so far.
    pub fn observed(&self) -> Observed {
        self.observed.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

impl Drop for WorkerPool {
    fn drop(&mut self) {
        if let Some(s) = self.shutdown.take() {
            let _ = s.send(());
        }
        // Let the server task see the signal before the runtime goes.
        self.runtime.block_on(tokio::task::yield_now());
    }
}
