//! Runnel's SDK harness: the external worker pool, and workers speaking Beam's Fn API.
//!
//! [`WorkerPool`] serves `BeamFnExternalWorkerPool` on loopback for one job. For each
//! `StartWorker` a worker connects to the runner's control endpoint; for each `ProcessBundle` it
//! fetches the bundle descriptor (`GetProcessBundleDescriptor`; `Register` is honoured too) and
//! runs the bundle with a [`BundleProcessor`] (one per descriptor, reused across bundles): blocks
//! of input are processed as they arrive on the data streams (multiplexed by instruction and
//! transform, ended by `is_last`), output goes back in blocks as it is produced, then with
//! `is_last`; side inputs are read through the state API (whole windows, or one key at a time for
//! lookup views). The bundle's user metrics go back as
//! monitoring infos in its response. When the runner ends the control stream, the worker drops
//! its data and state streams, half-closing them (a runner otherwise waits out a shutdown grace
//! period). What the program logs (`tracing`) while running a bundle also goes to the runner's
//! logging service, tagged with the bundle ([`crate::logging`]). Not done: splitting, user state
//! and timers.

use crate::bundle::{BundleProcessor, Emit, StateRead, StateSideInputs, DATA_SINK, DATA_SOURCE};
use crate::logging::{LogForwarding, LogSink};
use crate::monitoring::{to_monitoring_infos, ShortIds};
use crate::proto::fn_execution as fnapi;
use fnapi::beam_fn_control_client::BeamFnControlClient;
use fnapi::beam_fn_data_client::BeamFnDataClient;
use fnapi::beam_fn_external_worker_pool_server::{BeamFnExternalWorkerPool, BeamFnExternalWorkerPoolServer};
use fnapi::beam_fn_state_client::BeamFnStateClient;
use fnapi::provision_service_client::ProvisionServiceClient;
use prost::Message;
use runnel_model::exec::{Job, UserError};
use runnel_model::metrics::MetricsSnapshot;
use runnel_runner_core::RunError;
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::{mpsc, oneshot};
use tokio_stream::wrappers::{ReceiverStream, TcpListenerStream};

/// What the worker pool has seen, for tests and diagnostics.
#[derive(Clone, Debug, Default)]
pub struct Observed {
    /// Every `StartWorker` request, in order.
    pub start_requests: Vec<fnapi::StartWorkerRequest>,
    /// Every bundle descriptor received, by id.
    pub descriptors: BTreeMap<String, fnapi::ProcessBundleDescriptor>,
    /// Bundles processed.
    pub bundles: usize,
    /// The user metrics of the bundles processed.
    pub metrics: MetricsSnapshot,
    /// Errors: failed bundles and control plane failures.
    pub errors: Vec<String>,
    /// State reads by kind of state key (`iterable_side_input`, `multimap_side_input`) and
    /// reading transform; a read of several pages counts once.
    pub state_reads: BTreeMap<(String, String), usize>,
}

type Shared = Arc<Mutex<Observed>>;

fn record(shared: &Shared, f: impl FnOnce(&mut Observed)) {
    // A poisoned lock only means another task panicked while recording; the data is still usable.
    let mut guard = shared.lock().unwrap_or_else(|e| e.into_inner());
    f(&mut guard);
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The job a pool's workers run.
struct JobCode {
    job: Job,
    fingerprint: String,
}

/// The first bundle failure, with the user's error and its source chain.
type Failure = Arc<Mutex<Option<RunError>>>;

/// What the workers of one pool (or the one worker of a PROCESS) share.
#[derive(Clone)]
struct Pool {
    code: Arc<JobCode>,
    short_ids: Arc<ShortIds>,
    observed: Shared,
    failure: Failure,
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
        let logging = crate::logging::endpoint(request.logging_endpoint.as_ref());
        let worker = Worker::new(request.worker_id.clone(), self, logging);
        tokio::spawn(async move {
            let (served, _) = worker.clone().serve(&control).await;
            if let Err(e) = served {
                record(&worker.observed, |o| o.errors.push(format!("worker {}: {e}", worker.id)));
            }
            // This process goes on: the rest of the log leaves in the background.
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

pub(crate) async fn channel(url: &str) -> Result<tonic::transport::Channel, String> {
    tonic::transport::Endpoint::from_shared(http(url))
        .map_err(|e| e.to_string())?
        .connect()
        .await
        .map_err(|e| format!("cannot connect to {url}: {e:?}"))
}

/// A request carrying the worker id header, by which Beam runners tell workers apart.
pub(crate) fn with_worker_id<T>(worker_id: &str, body: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(body);
    if let Ok(v) = worker_id.parse() {
        request.metadata_mut().insert("worker_id", v);
    }
    request
}

/// A block of data received for one transform of a bundle.
struct Block {
    transform: String,
    data: Vec<u8>,
    is_last: bool,
}

/// Where the blocks of each bundle go: to the bundle once it listens, held until then.
#[derive(Default)]
struct Routes {
    listening: HashMap<String, mpsc::Sender<Block>>,
    early: HashMap<String, Vec<Block>>,
    /// Set when the stream failed or ended: later listeners get nothing.
    closed: Option<String>,
}

/// One data stream: our sender, and the routes of what arrives, by instruction.
struct DataConn {
    tx: mpsc::Sender<fnapi::Elements>,
    routes: Arc<Mutex<Routes>>,
}

impl DataConn {
    /// The blocks of bundle `instruction`, those that came early first.
    fn listen(&self, instruction: &str) -> mpsc::Receiver<Block> {
        let mut routes = lock(&self.routes);
        let early = routes.early.remove(instruction).unwrap_or_default();
        // Room for every block that came early, so they stay ahead of those still to come.
        let (tx, rx) = mpsc::channel(early.len().max(16));
        for block in early {
            let _ = tx.try_send(block);
        }
        if routes.closed.is_none() {
            routes.listening.insert(instruction.to_string(), tx);
        }
        rx
    }

    fn forget(&self, instruction: &str) {
        let mut routes = lock(&self.routes);
        routes.listening.remove(instruction);
        routes.early.remove(instruction);
    }
}

/// One state stream: our sender and the requests waiting for their response.
struct StateConn {
    tx: mpsc::Sender<fnapi::StateRequest>,
    pending: Arc<Mutex<HashMap<String, oneshot::Sender<fnapi::StateResponse>>>>,
    next_id: AtomicU64,
}

/// A processor between bundles, with the cell naming the instruction its side inputs read for.
type IdleProcessor = (BundleProcessor, Arc<Mutex<String>>);

struct Worker {
    id: String,
    /// Short ids of metrics, shared by the process's workers.
    short_ids: Arc<ShortIds>,
    code: Arc<JobCode>,
    observed: Shared,
    failure: Failure,
    descriptors: Mutex<HashMap<String, Arc<fnapi::ProcessBundleDescriptor>>>,
    /// Idle processors by descriptor id, with the instruction their side inputs read for.
    processors: Mutex<HashMap<String, Vec<IdleProcessor>>>,
    /// Data and state streams by endpoint. Held across their opening: a runner sends a worker's
    /// data on one stream per endpoint (Prism, on the newest), so a bundle must never open a
    /// second one beside another bundle's.
    data: tokio::sync::Mutex<HashMap<String, Arc<DataConn>>>,
    state: tokio::sync::Mutex<HashMap<String, Arc<StateConn>>>,
    /// The logging stream, and the dispatcher bundles log through; taken (half-closing the
    /// stream) when the control stream ends.
    logging: Mutex<Option<(Arc<LogSink>, tracing::Dispatch)>>,
}

/// Opens the logging stream to `endpoint`, if the runner named one (within a runtime).
fn logging_of(endpoint: Option<String>, worker_id: &str) -> Option<(Arc<LogSink>, tracing::Dispatch)> {
    let sink = LogSink::open(&endpoint?, worker_id);
    let dispatch = LogForwarding::dispatch(sink.clone());
    Some((sink, dispatch))
}

impl Worker {
    /// A worker of `pool`'s job, logging to `logging` if the runner names an endpoint (called
    /// within a runtime, which sends the log).
    fn new(id: String, pool: &Pool, logging: Option<String>) -> Arc<Worker> {
        Arc::new(Worker {
            logging: Mutex::new(logging_of(logging, &id)),
            id,
            short_ids: pool.short_ids.clone(),
            code: pool.code.clone(),
            observed: pool.observed.clone(),
            failure: pool.failure.clone(),
            descriptors: Mutex::default(),
            processors: Mutex::default(),
            data: tokio::sync::Mutex::default(),
            state: tokio::sync::Mutex::default(),
        })
    }

    /// Serves the control stream at `control` until the runner ends it, then lets go of the
    /// worker's streams: data and state half-close (bundles still waiting for input get none:
    /// their runner is gone), and the logging stream sends what is queued, in the task returned.
    async fn serve(self: Arc<Self>, control: &str) -> (Result<(), String>, Option<tokio::task::JoinHandle<()>>) {
        let served = self.clone().control_loop(control).await;
        for conn in self.data.lock().await.drain().map(|(_, c)| c) {
            let mut routes = lock(&conn.routes);
            routes.closed = Some("the runner ended the control stream".into());
            routes.listening.clear();
        }
        self.state.lock().await.clear();
        (served, self.close_logging())
    }

    /// Drops the worker's hold on its logging stream (bundles still running keep theirs), says
    /// how many entries it could not send, and gives the task that sends the rest.
    fn close_logging(&self) -> Option<tokio::task::JoinHandle<()>> {
        let (sink, _) = lock(&self.logging).take()?;
        let lost = sink.undelivered();
        if lost > 0 {
            eprintln!("runnel worker {}: {lost} log entries could not be sent to the runner", self.id);
        }
        sink.take_call()
    }

    /// Serves the control stream until the runner ends it.
    async fn control_loop(self: Arc<Self>, endpoint: &str) -> Result<(), String> {
        let mut client = BeamFnControlClient::new(channel(endpoint).await?).max_decoding_message_size(256 << 20);
        let (tx, rx) = mpsc::channel::<fnapi::InstructionResponse>(64);
        let request = with_worker_id(&self.id, ReceiverStream::new(rx));
        let mut instructions = client.control(request).await.map_err(|e| e.to_string())?.into_inner();
        while let Some(instruction) = instructions.message().await.map_err(|e| e.to_string())? {
            let id = instruction.instruction_id.clone();
            match instruction.request {
                Some(fnapi::instruction_request::Request::Register(r)) => {
                    for d in r.process_bundle_descriptor {
                        record(&self.observed, |o| {
                            o.descriptors.insert(d.id.clone(), d.clone());
                        });
                        lock(&self.descriptors).insert(d.id.clone(), Arc::new(d));
                    }
                    let response = fnapi::InstructionResponse {
                        instruction_id: id,
                        response: Some(fnapi::instruction_response::Response::Register(fnapi::RegisterResponse {})),
                        ..Default::default()
                    };
                    let _ = tx.send(response).await;
                }
                Some(fnapi::instruction_request::Request::ProcessBundle(pb)) => {
                    // Each bundle in a task of its own: its data may still be on the way.
                    let (worker, tx, client) = (self.clone(), tx.clone(), client.clone());
                    tokio::spawn(async move {
                        let mut response =
                            fnapi::InstructionResponse { instruction_id: id.clone(), ..Default::default() };
                        match worker.process_bundle(&id, pb, client).await {
                            Ok(done) => {
                                record(&worker.observed, |o| o.bundles += 1);
                                response.response = Some(fnapi::instruction_response::Response::ProcessBundle(done));
                            }
                            Err(e) => {
                                record(&worker.observed, |o| o.errors.push(e.clone()));
                                response.error = e;
                            }
                        }
                        let _ = tx.send(response).await;
                    });
                }
                Some(fnapi::instruction_request::Request::MonitoringInfos(request)) => {
                    let monitoring_info = self.short_ids.metadata(&request.monitoring_info_id);
                    let response = fnapi::InstructionResponse {
                        instruction_id: id,
                        response: Some(fnapi::instruction_response::Response::MonitoringInfos(
                            fnapi::MonitoringInfosMetadataResponse { monitoring_info },
                        )),
                        ..Default::default()
                    };
                    let _ = tx.send(response).await;
                }
                Some(
                    request @ (fnapi::instruction_request::Request::ProcessBundleProgress(_)
                    | fnapi::instruction_request::Request::ProcessBundleSplit(_)
                    | fnapi::instruction_request::Request::HarnessMonitoringInfos(_)),
                ) => {
                    // Answered, with nothing: no progress is reported (metrics come with the
                    // bundle's response), a bundle is never split (declining is allowed; an
                    // error fails the job on Prism, which asks for splits of slow bundles), and
                    // the harness keeps no metrics of its own.
                    use fnapi::instruction_request::Request as Asked;
                    use fnapi::instruction_response::Response as Answer;
                    let answer = match request {
                        Asked::ProcessBundleProgress(_) => Answer::ProcessBundleProgress(Default::default()),
                        Asked::ProcessBundleSplit(_) => Answer::ProcessBundleSplit(Default::default()),
                        _ => Answer::HarnessMonitoringInfos(Default::default()),
                    };
                    let response =
                        fnapi::InstructionResponse { instruction_id: id, response: Some(answer), ..Default::default() };
                    let _ = tx.send(response).await;
                }
                _ => {
                    let response = fnapi::InstructionResponse {
                        instruction_id: id,
                        error: "Runnel's SDK harness does not support this instruction".to_string(),
                        ..Default::default()
                    };
                    let _ = tx.send(response).await;
                }
            }
        }
        Ok(())
    }

    async fn descriptor(
        &self,
        id: &str,
        mut client: BeamFnControlClient<tonic::transport::Channel>,
    ) -> Result<Arc<fnapi::ProcessBundleDescriptor>, String> {
        if let Some(d) = lock(&self.descriptors).get(id) {
            return Ok(d.clone());
        }
        let request = fnapi::GetProcessBundleDescriptorRequest { process_bundle_descriptor_id: id.to_string() };
        let d = client
            .get_process_bundle_descriptor(with_worker_id(&self.id, request))
            .await
            .map_err(|e| format!("cannot get bundle descriptor {id}: {e}"))?
            .into_inner();
        record(&self.observed, |o| {
            o.descriptors.insert(id.to_string(), d.clone());
        });
        let d = Arc::new(d);
        lock(&self.descriptors).insert(id.to_string(), d.clone());
        Ok(d)
    }

    async fn data_conn(&self, url: &str) -> Result<Arc<DataConn>, String> {
        let mut open = self.data.lock().await;
        if let Some(c) = open.get(url) {
            return Ok(c.clone());
        }
        let mut client = BeamFnDataClient::new(channel(url).await?).max_decoding_message_size(256 << 20);
        let (tx, rx) = mpsc::channel::<fnapi::Elements>(64);
        let conn = Arc::new(DataConn { tx, routes: Arc::default() });
        let routes = conn.routes.clone();
        let request = with_worker_id(&self.id, ReceiverStream::new(rx));
        // The call is awaited in its own task: a runner may answer a stream's headers only once
        // it has received a first message, which the caller is about to send.
        tokio::spawn(async move {
            let ended = match client.data(request).await {
                Ok(r) => {
                    let mut inbound = r.into_inner();
                    loop {
                        match inbound.message().await {
                            Ok(Some(elements)) => {
                                for d in elements.data {
                                    let (instruction, transform) = (&d.instruction_id, &d.transform_id);
                                    let (bytes, last) = (d.data.len(), d.is_last);
                                    tracing::trace!(instruction, transform, bytes, last, "data received");
                                    let block = Block { transform: d.transform_id, data: d.data, is_last: d.is_last };
                                    let listener = {
                                        let mut r = lock(&routes);
                                        match r.listening.get(&d.instruction_id) {
                                            Some(l) => Some(l.clone()),
                                            None => {
                                                r.early.entry(d.instruction_id).or_default().push(block);
                                                continue;
                                            }
                                        }
                                    };
                                    if let Some(l) = listener {
                                        // A bundle that failed stopped listening: its data is dropped.
                                        let _ = l.send(block).await;
                                    }
                                }
                            }
                            Ok(None) => break "the runner ended the data stream".to_string(),
                            Err(e) => break format!("data stream failed: {e}"),
                        }
                    }
                }
                Err(e) => format!("data stream failed: {e}"),
            };
            let mut r = lock(&routes);
            r.closed = Some(ended);
            // Dropping the senders ends every listening bundle's input.
            r.listening.clear();
        });
        open.insert(url.to_string(), conn.clone());
        Ok(conn)
    }

    async fn state_conn(&self, url: &str) -> Result<Arc<StateConn>, String> {
        let mut open = self.state.lock().await;
        if let Some(c) = open.get(url) {
            return Ok(c.clone());
        }
        let mut client = BeamFnStateClient::new(channel(url).await?).max_decoding_message_size(256 << 20);
        let (tx, rx) = mpsc::channel::<fnapi::StateRequest>(64);
        let conn = Arc::new(StateConn { tx, pending: Arc::default(), next_id: AtomicU64::new(0) });
        let pending = conn.pending.clone();
        let request = with_worker_id(&self.id, ReceiverStream::new(rx));
        // As for data: the call completes only once the first request is sent.
        tokio::spawn(async move {
            if let Ok(response) = client.state(request).await {
                let mut inbound = response.into_inner();
                while let Ok(Some(response)) = inbound.message().await {
                    if let Some(waiter) = lock(&pending).remove(&response.id) {
                        let _ = waiter.send(response);
                    }
                }
            }
            // Waiters left see their sender dropped: the stream ended.
            lock(&pending).clear();
        });
        open.insert(url.to_string(), conn.clone());
        Ok(conn)
    }

    /// Reads all pages of one iterable side input.
    async fn read_side_input(
        &self,
        url: &str,
        instruction: &str,
        transform: &str,
        side_input: &str,
        window: Vec<u8>,
        by_key: Option<Vec<u8>>,
    ) -> Result<Vec<u8>, String> {
        let conn = self.state_conn(url).await?;
        let (transform_id, side_input_id) = (transform.to_string(), side_input.to_string());
        use fnapi::state_key::{IterableSideInput, MultimapSideInput, Type};
        let (kind, r#type) = match by_key {
            None => (
                "iterable_side_input",
                Type::IterableSideInput(IterableSideInput { transform_id, side_input_id, window }),
            ),
            Some(key) => (
                "multimap_side_input",
                Type::MultimapSideInput(MultimapSideInput { transform_id, side_input_id, window, key }),
            ),
        };
        record(&self.observed, |o| *o.state_reads.entry((kind.to_string(), transform.to_string())).or_default() += 1);
        let key = fnapi::StateKey { r#type: Some(r#type) };
        let mut all = Vec::new();
        let mut token = Vec::new();
        loop {
            let id = format!("{}-{}", self.id, conn.next_id.fetch_add(1, Ordering::Relaxed));
            let (reply, wait) = oneshot::channel();
            lock(&conn.pending).insert(id.clone(), reply);
            let request = fnapi::StateRequest {
                id,
                instruction_id: instruction.to_string(),
                state_key: Some(key.clone()),
                request: Some(fnapi::state_request::Request::Get(fnapi::StateGetRequest { continuation_token: token })),
            };
            tracing::trace!(instruction, transform, side_input, "state request");
            conn.tx.send(request).await.map_err(|_| "the state stream is closed".to_string())?;
            let response = wait.await.map_err(|_| "the state stream ended before answering".to_string())?;
            tracing::trace!(instruction, transform, side_input, error = response.error, "state response");
            if !response.error.is_empty() {
                return Err(format!("side input '{side_input}' of '{transform}': {}", response.error));
            }
            let Some(fnapi::state_response::Response::Get(page)) = response.response else {
                return Err("a state response without data".to_string());
            };
            all.extend_from_slice(&page.data);
            if page.continuation_token.is_empty() {
                return Ok(all);
            }
            token = page.continuation_token;
        }
    }

    /// An idle processor of `descriptor`, or a new one, with the cell naming the instruction
    /// its side inputs are read for.
    fn processor(
        self: &Arc<Self>,
        descriptor: &fnapi::ProcessBundleDescriptor,
        handle: &tokio::runtime::Handle,
    ) -> Result<IdleProcessor, String> {
        if let Some(idle) = lock(&self.processors).get_mut(&descriptor.id).and_then(Vec::pop) {
            return Ok(idle);
        }
        let instruction: Arc<Mutex<String>> = Arc::default();
        let state_url = descriptor.state_api_service_descriptor.as_ref().map(|d| d.url.clone());
        let (worker, current, handle) = (self.clone(), instruction.clone(), handle.clone());
        let read: Arc<StateRead> =
            Arc::new(move |transform: &str, side: &str, window: Vec<u8>, key: Option<Vec<u8>>| {
                let url = state_url.as_deref().ok_or("the runner gave no state endpoint for side inputs")?;
                let instruction = lock(&current).clone();
                Ok(handle.block_on(worker.read_side_input(url, &instruction, transform, side, window, key))?)
            });
        let job = &self.code.job;
        let sides = StateSideInputs::new(job, descriptor, read).map_err(|e| e.to_string())?;
        let processor = BundleProcessor::new(job, &self.code.fingerprint, descriptor, Arc::new(sides))
            .map_err(|e| e.to_string())?;
        Ok((processor, instruction))
    }

    async fn process_bundle(
        self: &Arc<Self>,
        instruction: &str,
        request: fnapi::ProcessBundleRequest,
        client: BeamFnControlClient<tonic::transport::Channel>,
    ) -> Result<fnapi::ProcessBundleResponse, String> {
        tracing::debug!(instruction, descriptor = request.process_bundle_descriptor_id, "bundle requested");
        let descriptor = self.descriptor(&request.process_bundle_descriptor_id, client).await?;
        tracing::trace!(instruction, "descriptor at hand");
        // The data connection of every source and sink.
        let mut sources: Vec<(String, Arc<DataConn>)> = Vec::new();
        let mut sinks: HashMap<String, Arc<DataConn>> = HashMap::new();
        for (id, t) in &descriptor.transforms {
            let Some(spec) = &t.spec else { continue };
            if spec.urn == DATA_SOURCE || spec.urn == DATA_SINK {
                let port = fnapi::RemoteGrpcPort::decode(spec.payload.as_slice()).map_err(|e| e.to_string())?;
                let url = port.api_service_descriptor.map(|d| d.url).ok_or("a data port without endpoint")?;
                let conn = self.data_conn(&url).await?;
                if spec.urn == DATA_SOURCE {
                    sources.push((id.clone(), conn));
                } else {
                    sinks.insert(id.clone(), conn);
                }
            }
        }
        // Every connection the sources use, listened to for this bundle.
        let mut inputs = Vec::new();
        let mut conns: Vec<Arc<DataConn>> = Vec::new();
        for (_, conn) in &sources {
            if !conns.iter().any(|c| Arc::ptr_eq(c, conn)) {
                inputs.push(conn.listen(instruction));
                conns.push(conn.clone());
            }
        }
        let (worker, instruction_owned, handle) =
            (self.clone(), instruction.to_string(), tokio::runtime::Handle::current());
        let logging = lock(&self.logging).as_ref().map(|(_, dispatch)| dispatch.clone());
        let body = move || {
            tracing::trace!(instruction = instruction_owned, "processing");
            let (mut processor, current) = worker.processor(&descriptor, &handle)?;
            tracing::trace!(instruction = instruction_owned, "processor at hand");
            *lock(&current) = instruction_owned.clone();
            let instruction = instruction_owned.as_str();
            let mut emit = |sink: &str, data: Vec<u8>| -> Result<(), UserError> {
                let conn = sinks.get(sink).ok_or_else(|| format!("no data connection for sink '{sink}'"))?;
                let data = fnapi::elements::Data {
                    instruction_id: instruction.to_string(),
                    transform_id: sink.to_string(),
                    data,
                    is_last: false,
                };
                let elements = fnapi::Elements { data: vec![data], timers: vec![] };
                conn.tx.blocking_send(elements).map_err(|_| "the data stream is closed")?;
                Ok(())
            };
            let run = |processor: &mut BundleProcessor, emit: &mut Emit<'_>| -> Result<(), RunError> {
                let stream_ended = || RunError::JobFailed {
                    runner: "portable",
                    message: "the data stream ended before the bundle's input".into(),
                };
                let mut open: std::collections::BTreeSet<String> = processor.source_ids().into_iter().collect();
                let mut inputs = inputs;
                while !open.is_empty() {
                    let mut received = None;
                    for rx in &mut inputs {
                        if let Ok(block) = rx.try_recv() {
                            received = Some(block);
                            break;
                        }
                    }
                    let block = match received {
                        Some(b) => b,
                        // Nothing waiting: block on the first connection still sending.
                        None => match inputs.iter_mut().find(|rx| !rx.is_closed() || !rx.is_empty()) {
                            Some(rx) => rx.blocking_recv().ok_or_else(stream_ended)?,
                            None => return Err(stream_ended()),
                        },
                    };
                    processor.feed(&block.transform, &block.data, block.is_last, emit)?;
                    if block.is_last {
                        open.remove(&block.transform);
                    }
                }
                processor.finish(emit)?;
                for sink in processor.sink_ids() {
                    let closed = |message: &str| RunError::Binding { transform: sink.clone(), message: message.into() };
                    let conn = sinks.get(&sink).ok_or_else(|| closed("no data connection"))?;
                    let data = fnapi::elements::Data {
                        instruction_id: instruction.to_string(),
                        transform_id: sink.clone(),
                        data: Vec::new(),
                        is_last: true,
                    };
                    conn.tx
                        .blocking_send(fnapi::Elements { data: vec![data], timers: vec![] })
                        .map_err(|_| closed("the data stream is closed"))?;
                }
                Ok(())
            };
            let result = run(&mut processor, &mut emit);
            let mut metrics = MetricsSnapshot::default();
            processor.drain_metrics(&mut metrics);
            match result {
                Ok(()) => {
                    lock(&worker.processors).entry(descriptor.id.clone()).or_default().push((processor, current));
                    Ok(metrics)
                }
                Err(e) => {
                    // A failed processor may hold half a bundle: it is not used again.
                    let _ = processor.teardown();
                    let message = e.to_string();
                    lock(&worker.failure).get_or_insert(e);
                    Err(message)
                }
            }
        };
        let id = instruction.to_string();
        let outcome = tokio::task::spawn_blocking(move || match logging {
            Some(dispatch) => {
                tracing::dispatcher::with_default(&dispatch, || crate::logging::in_instruction(&id, body))
            }
            None => body(),
        })
        .await
        .map_err(|e| format!("the bundle panicked: {e}"));
        for conn in &conns {
            conn.forget(instruction);
        }
        tracing::debug!(instruction, ok = matches!(outcome, Ok(Ok(_))), "bundle processed");
        let metrics = outcome??;
        let monitoring_infos = to_monitoring_infos(&metrics);
        // Both forms: full infos (Beam Python's runner reads them) and payloads by short id
        // (Prism reads those, asking for their metadata once).
        let monitoring_data = self.short_ids.payloads(&monitoring_infos);
        record(&self.observed, |o| o.metrics.merge(&metrics));
        Ok(fnapi::ProcessBundleResponse { monitoring_infos, monitoring_data, ..Default::default() })
    }
}

/// Serves as one worker of a PROCESS environment, as the job server started it (`flags`: its
/// `--id=…` and `--provision_endpoint=…`): asks the provisioning service for the control
/// endpoint, then serves bundles until the job server ends the control stream.
pub fn serve_process_worker(job: Job, fingerprint: String, flags: &str) -> Result<(), String> {
    let flag = |name: &str| -> Option<String> {
        flags
            .split_whitespace()
            .find_map(|f| f.strip_prefix(&format!("--{name}=")))
            .map(|v| v.trim_matches(|c| c == '\'' || c == '"').to_string())
    };
    let id = flag("id").ok_or_else(|| format!("no --id among the worker's flags '{flags}'"))?;
    let provision = flag("provision_endpoint")
        .ok_or_else(|| format!("no --provision_endpoint among the worker's flags '{flags}'"))?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let pool = Pool {
        code: Arc::new(JobCode { job, fingerprint }),
        short_ids: Arc::default(),
        observed: Arc::default(),
        failure: Arc::default(),
    };
    let result = runtime.block_on(async {
        let mut client = ProvisionServiceClient::new(channel(&provision).await?);
        let info = client
            .get_provision_info(with_worker_id(&id, fnapi::GetProvisionInfoRequest {}))
            .await
            .map_err(|e| format!("cannot get the provision info from {provision}: {e}"))?
            .into_inner()
            .info
            .unwrap_or_default();
        let control = info.control_endpoint.map(|e| e.url).ok_or("the provision info names no control endpoint")?;
        let worker = Worker::new(id.clone(), &pool, crate::logging::endpoint(info.logging_endpoint.as_ref()));
        let (served, logging) = worker.serve(&control).await;
        // The process ends next: let the logging stream send what is queued first.
        if let Some(call) = logging {
            let _ = tokio::time::timeout(std::time::Duration::from_secs(2), call).await;
        }
        served
    });
    runtime.shutdown_background();
    result
}

/// A `BeamFnExternalWorkerPool` served on loopback, whose workers run one job's code.
pub struct WorkerPool {
    /// Taken only when dropped.
    runtime: Option<tokio::runtime::Runtime>,
    endpoint: String,
    observed: Shared,
    failure: Failure,
    shutdown: Option<oneshot::Sender<()>>,
}

impl WorkerPool {
    /// Starts serving on `127.0.0.1` at a free port; `fingerprint` is the
    /// [`crate::translate::graph_fingerprint`] of the graph submitted, which every bundle's
    /// functions must carry.
    pub fn start(job: Job, fingerprint: String) -> std::io::Result<WorkerPool> {
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
        let listener = runtime.block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))?;
        let endpoint = format!("127.0.0.1:{}", listener.local_addr()?.port());
        let observed: Shared = Arc::default();
        let (shutdown, stop) = oneshot::channel::<()>();
        let code = Arc::new(JobCode { job, fingerprint });
        let failure: Failure = Arc::default();
        let service = BeamFnExternalWorkerPoolServer::new(Pool {
            code,
            short_ids: Arc::default(),
            observed: observed.clone(),
            failure: failure.clone(),
        });
        runtime.spawn(tonic::transport::Server::builder().add_service(service).serve_with_incoming_shutdown(
            TcpListenerStream::new(listener),
            async {
                let _ = stop.await;
            },
        ));
        Ok(WorkerPool { runtime: Some(runtime), endpoint, observed, failure, shutdown: Some(shutdown) })
    }

    /// `HOST:PORT` to put in the EXTERNAL environment.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// The first bundle failure its workers saw, with the user's error and its source chain.
    pub fn take_failure(&self) -> Option<RunError> {
        lock(&self.failure).take()
    }

    /// A copy of what it has seen so far.
    pub fn observed(&self) -> Observed {
        lock(&self.observed).clone()
    }
}

impl Drop for WorkerPool {
    fn drop(&mut self) {
        if let Some(s) = self.shutdown.take() {
            let _ = s.send(());
        }
        if let Some(runtime) = self.runtime.take() {
            // Let the server task see the signal before the runtime goes.
            runtime.block_on(tokio::task::yield_now());
            // A bundle thread may still wait on a runner that failed the job and went silent:
            // the runtime does not wait for it.
            runtime.shutdown_background();
        }
    }
}
