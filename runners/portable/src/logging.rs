//! The Fn API logging stream: what a worker logs while it runs bundles goes to the runner's
//! `BeamFnLogging` service, as Beam's SDK harnesses send theirs.
//!
//! Runnel code logs with `tracing`. A worker gets one [`LogForwarding`] dispatcher, which passes
//! every event on to the process's own subscriber (so `--log-level` and the program's stderr
//! behave as everywhere else) and also sends each event it is handed (those the program's filter
//! lets through) to the runner, tagged with the bundle being run on that thread. Entries go out
//! in batches from a task of their own; a runner slower than the worker's logging makes the
//! worker count, not block: the count is reported on stderr when the worker ends.

use crate::proto::fn_execution as fnapi;
use crate::proto::pipeline as pb;
use std::cell::RefCell;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tracing::field::{Field, Visit};
use tracing::level_filters::LevelFilter;
use tracing::span;
use tracing::subscriber::Interest;
use tracing::{Dispatch, Event, Level, Metadata, Subscriber};

/// Entries waiting to be sent, at most; beyond, an entry is counted as undelivered.
const QUEUE: usize = 8192;
/// Entries per `LogEntry.List`, at most.
const BATCH: usize = 512;

thread_local! {
    /// The instruction (bundle) this thread is running, for its log entries.
    static INSTRUCTION: RefCell<String> = const { RefCell::new(String::new()) };
}

/// Runs `f` with this thread's log entries tagged with bundle `instruction`.
pub fn in_instruction<R>(instruction: &str, f: impl FnOnce() -> R) -> R {
    INSTRUCTION.with(|i| i.borrow_mut().replace_range(.., instruction));
    let result = f();
    INSTRUCTION.with(|i| i.borrow_mut().clear());
    result
}

/// The sending end of one worker's logging stream.
pub struct LogSink {
    tx: mpsc::Sender<fnapi::LogEntry>,
    undelivered: AtomicU64,
    /// The task holding the call: it ends once the stream is half-closed and the runner closed
    /// its side.
    call: std::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl LogSink {
    /// Opens the logging stream to `url` (a task of the current runtime sends the entries) and
    /// returns its sending end. The stream half-closes when the last clone of the sink is gone.
    pub fn open(url: &str, worker_id: &str) -> Arc<LogSink> {
        let (tx, mut rx) = mpsc::channel::<fnapi::LogEntry>(QUEUE);
        let (lists_tx, lists_rx) = mpsc::channel::<fnapi::log_entry::List>(4);
        tokio::spawn(async move {
            while let Some(first) = rx.recv().await {
                let mut log_entries = vec![first];
                while log_entries.len() < BATCH {
                    match rx.try_recv() {
                        Ok(entry) => log_entries.push(entry),
                        Err(_) => break,
                    }
                }
                if lists_tx.send(fnapi::log_entry::List { log_entries }).await.is_err() {
                    break;
                }
            }
        });
        let (url, worker_id) = (url.to_string(), worker_id.to_string());
        // Not awaited before use: a runner may answer the call only once it has a first message.
        let call = tokio::spawn(async move {
            let opened = async {
                let mut client =
                    fnapi::beam_fn_logging_client::BeamFnLoggingClient::new(crate::harness::channel(&url).await?);
                let request = crate::harness::with_worker_id(&worker_id, ReceiverStream::new(lists_rx));
                let mut controls = client.logging(request).await.map_err(|e| e.to_string())?.into_inner();
                while controls.message().await.map_err(|e| e.to_string())?.is_some() {}
                Ok::<(), String>(())
            };
            if let Err(e) = opened.await {
                eprintln!("runnel worker {worker_id}: the logging stream to {url} failed: {e}");
            }
        });
        Arc::new(LogSink { tx, undelivered: AtomicU64::new(0), call: std::sync::Mutex::new(Some(call)) })
    }

    /// The task holding the call, to wait for the entries to be sent once every sender is gone.
    pub fn take_call(&self) -> Option<tokio::task::JoinHandle<()>> {
        self.call.lock().unwrap_or_else(|e| e.into_inner()).take()
    }

    fn send(&self, entry: fnapi::LogEntry) {
        if self.tx.try_send(entry).is_err() {
            self.undelivered.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// How many entries could not be queued (the runner read too slowly, or the stream failed).
    pub fn undelivered(&self) -> u64 {
        self.undelivered.load(Ordering::Relaxed)
    }
}

/// A `tracing` subscriber that hands everything to `inner` and also sends each event to a
/// worker's logging stream.
pub struct LogForwarding {
    inner: Dispatch,
    sink: Arc<LogSink>,
    /// Where the program installed no subscriber: the level up to which events are still sent
    /// to the runner (INFO, as Beam's harnesses log by default).
    unfiltered: Option<LevelFilter>,
}

impl LogForwarding {
    /// Forwards to `sink`, on top of the dispatcher in effect where this is called (the
    /// program's own subscriber).
    pub fn dispatch(sink: Arc<LogSink>) -> Dispatch {
        LogForwarding::over(tracing::dispatcher::get_default(|d| d.clone()), sink)
    }

    /// Forwards to `sink`, on top of `inner`. An `inner` that is no subscriber at all (a program
    /// that installed none) lets events up to INFO through to the runner.
    pub fn over(inner: Dispatch, sink: Arc<LogSink>) -> Dispatch {
        let unfiltered = inner.is::<tracing::subscriber::NoSubscriber>().then_some(LevelFilter::INFO);
        Dispatch::new(LogForwarding { inner, sink, unfiltered })
    }
}

/// Beam's severity of a `tracing` level.
fn severity(level: &Level) -> fnapi::log_entry::severity::Enum {
    use fnapi::log_entry::severity::Enum as S;
    match *level {
        Level::TRACE => S::Trace,
        Level::DEBUG => S::Debug,
        Level::INFO => S::Info,
        Level::WARN => S::Warn,
        Level::ERROR => S::Error,
    }
}

/// The message of an event, then its other fields as `name=value`.
#[derive(Default)]
struct Message {
    message: String,
    fields: String,
}

impl Visit for Message {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message.push_str(value);
        } else {
            let _ = write!(self.fields, " {}={value:?}", field.name());
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.message, "{value:?}");
        } else {
            let _ = write!(self.fields, " {}={value:?}", field.name());
        }
    }
}

/// The log entry of an event.
pub fn entry(event: &Event<'_>, instruction: &str) -> fnapi::LogEntry {
    let meta = event.metadata();
    let mut text = Message::default();
    event.record(&mut text);
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    let location = match (meta.file(), meta.line()) {
        (Some(file), Some(line)) => format!("{} ({file}:{line})", meta.target()),
        _ => meta.target().to_string(),
    };
    fnapi::LogEntry {
        severity: severity(meta.level()) as i32,
        timestamp: Some(prost_types::Timestamp { seconds: now.as_secs() as i64, nanos: now.subsec_nanos() as i32 }),
        message: text.message + &text.fields,
        instruction_id: instruction.to_string(),
        log_location: location,
        thread: std::thread::current().name().unwrap_or_default().to_string(),
        ..Default::default()
    }
}

impl Subscriber for LogForwarding {
    fn register_callsite(&self, metadata: &'static Metadata<'static>) -> Interest {
        match self.unfiltered {
            Some(max) if *metadata.level() <= max => Interest::always(),
            Some(_) => Interest::never(),
            None => self.inner.register_callsite(metadata),
        }
    }

    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        match self.unfiltered {
            Some(max) => *metadata.level() <= max,
            None => self.inner.enabled(metadata),
        }
    }

    fn max_level_hint(&self) -> Option<LevelFilter> {
        // The program's filter decides; this adds no level of its own.
        Some(self.unfiltered.unwrap_or_else(LevelFilter::current))
    }

    fn new_span(&self, span: &span::Attributes<'_>) -> span::Id {
        self.inner.new_span(span)
    }

    fn record(&self, span: &span::Id, values: &span::Record<'_>) {
        self.inner.record(span, values)
    }

    fn record_follows_from(&self, span: &span::Id, follows: &span::Id) {
        self.inner.record_follows_from(span, follows)
    }

    fn event(&self, event: &Event<'_>) {
        self.inner.event(event);
        let instruction = INSTRUCTION.with(|i| i.borrow().clone());
        self.sink.send(entry(event, &instruction));
    }

    fn enter(&self, span: &span::Id) {
        self.inner.enter(span)
    }

    fn exit(&self, span: &span::Id) {
        self.inner.exit(span)
    }

    fn clone_span(&self, id: &span::Id) -> span::Id {
        self.inner.clone_span(id)
    }

    fn try_close(&self, id: span::Id) -> bool {
        self.inner.try_close(id)
    }

    fn current_span(&self) -> tracing_core::span::Current {
        self.inner.current_span()
    }
}

/// The logging endpoint of a provision info or a start request, if any.
pub fn endpoint(descriptor: Option<&pb::ApiServiceDescriptor>) -> Option<String> {
    descriptor.map(|d| d.url.clone()).filter(|u| !u.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use fnapi::beam_fn_logging_server::{BeamFnLogging, BeamFnLoggingServer};
    use std::sync::Mutex;
    use tokio_stream::wrappers::TcpListenerStream;

    /// A `LogEntry` as a line.
    fn describe(entry: &fnapi::LogEntry) -> String {
        let severity = fnapi::log_entry::severity::Enum::try_from(entry.severity)
            .map(|s| s.as_str_name().to_string())
            .unwrap_or_else(|_| entry.severity.to_string());
        format!("{severity} [{}] {}", entry.instruction_id, entry.message)
    }

    /// A runner's logging service that keeps what it receives.
    #[derive(Clone, Default)]
    struct Kept(Arc<Mutex<Vec<fnapi::LogEntry>>>);

    #[tonic::async_trait]
    impl BeamFnLogging for Kept {
        type LoggingStream = ReceiverStream<Result<fnapi::LogControl, tonic::Status>>;
        async fn logging(
            &self,
            request: tonic::Request<tonic::Streaming<fnapi::log_entry::List>>,
        ) -> Result<tonic::Response<Self::LoggingStream>, tonic::Status> {
            let mut lists = request.into_inner();
            let kept = self.0.clone();
            let (_tx, rx) = mpsc::channel(1);
            tokio::spawn(async move {
                while let Ok(Some(list)) = lists.message().await {
                    kept.lock().unwrap().extend(list.log_entries);
                }
                drop(_tx);
            });
            Ok(tonic::Response::new(ReceiverStream::new(rx)))
        }
    }

    #[test]
    fn events_reach_the_runner_tagged_with_their_bundle_and_filtered_as_the_program_filters() {
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
        let kept = Kept::default();
        let url = runtime.block_on(async {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let url = listener.local_addr().unwrap().to_string();
            let server = tonic::transport::Server::builder().add_service(BeamFnLoggingServer::new(kept.clone()));
            tokio::spawn(server.serve_with_incoming(TcpListenerStream::new(listener)));
            url
        });
        let sink = runtime.block_on(async { LogSink::open(&url, "worker-1") });
        // A program without a subscriber: INFO and above go to the runner, DEBUG does not.
        let dispatch = LogForwarding::over(Dispatch::none(), sink.clone());
        tracing::dispatcher::with_default(&dispatch, || {
            in_instruction("bundle-7", || {
                tracing::warn!(word = "cat", "a probe");
                tracing::debug!("not sent");
            });
            tracing::error!("outside a bundle");
        });
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while kept.0.lock().unwrap().len() < 2 && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        let entries: Vec<String> = kept.0.lock().unwrap().iter().map(describe).collect();
        assert_eq!(entries, vec!["WARN [bundle-7] a probe word=\"cat\"", "ERROR [] outside a bundle"]);
        let first = kept.0.lock().unwrap()[0].clone();
        assert!(first.log_location.contains("logging.rs:"), "{}", first.log_location);
        assert!(first.timestamp.is_some());
        assert_eq!(sink.undelivered(), 0);
    }
}
