//! A client of Beam's Job API: prepare, run, watch and cancel a job on a Beam job server.
//!
//! The API is blocking (a pipeline program waits for its job); the gRPC calls run on a small
//! tokio runtime the client owns.

use crate::monitoring::merge_monitoring_infos;
use crate::proto::job_management as jm;
use crate::proto::pipeline as pb;
use jm::job_service_client::JobServiceClient;
use runnel_model::metrics::MetricsSnapshot;
use std::collections::BTreeMap;
use std::time::Duration;
use thiserror::Error;
use tonic::transport::Channel;

/// A job server could not be reached, or refused or failed a request.
#[derive(Debug, Error)]
pub enum JobError {
    /// No connection to the job server.
    #[error("cannot connect to the job server at {endpoint}: {message}")]
    Connect {
        /// `HOST:PORT` as given.
        endpoint: String,
        /// Why.
        message: String,
    },
    /// A request failed.
    #[error("the job server failed {call}: {status}")]
    Call {
        /// The RPC.
        call: &'static str,
        /// gRPC code and message.
        status: String,
    },
    /// The job server refused the pipeline when preparing it (a feature it does not implement,
    /// an invalid graph): nothing ran.
    #[error("the job server refused the pipeline: {message}")]
    Rejected {
        /// The job server's reason.
        message: String,
    },
    /// The job ended in a state other than DONE.
    #[error("job {job_id} ended {state}{}", summary(.messages))]
    Failed {
        /// The job server's id of the job.
        job_id: String,
        /// Its final state, e.g. `FAILED`.
        state: String,
        /// The job server's error messages about it.
        messages: Vec<String>,
    },
    /// No tokio runtime could be started.
    #[error("cannot start the gRPC runtime: {0}")]
    Runtime(String),
}

/// The job server's messages about a failed job, for a person: a Python traceback becomes its
/// last line (the exception), and a message already given is not repeated. The messages
/// themselves stay whole in [`JobError::Failed`] and in the debug log.
fn summary(messages: &[String]) -> String {
    let mut seen: Vec<String> = Vec::new();
    for m in messages {
        let text = if m.contains("Traceback (most recent call last)") {
            m.lines().map(str::trim).rfind(|l| !l.is_empty()).unwrap_or(m).to_string()
        } else {
            m.trim().to_string()
        };
        if !text.is_empty() && !seen.contains(&text) {
            seen.push(text);
        }
    }
    if seen.is_empty() {
        String::new()
    } else {
        format!(": {}", seen.join("; "))
    }
}

fn call_error(call: &'static str) -> impl Fn(tonic::Status) -> JobError {
    move |s| JobError::Call { call, status: format!("{:?}: {}", s.code(), s.message()) }
}

/// The name of a Beam job state.
pub fn state_name(state: i32) -> String {
    jm::job_state::Enum::try_from(state)
        .map(|s| s.as_str_name().to_string())
        .unwrap_or_else(|_| format!("UNKNOWN({state})"))
}

/// Beam's CANCELLED job state.
pub const CANCELLED: i32 = jm::job_state::Enum::Cancelled as i32;

/// Whether a job in `state` will not change any more (STOPPED is where a job starts, not ends).
pub fn is_terminal(state: i32) -> bool {
    use jm::job_state::Enum as S;
    matches!(S::try_from(state), Ok(S::Done | S::Failed | S::Cancelled | S::Drained | S::Updated))
}

/// A pipeline option as the Job API spells it: `beam:option:NAME:v1`.
pub fn option_key(name: &str) -> String {
    format!("beam:option:{name}:v1")
}

/// How a finished job ended, with what the job server said about it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JobOutcome {
    /// The job server's id of the job.
    pub job_id: String,
    /// Its final state (a [`jm::job_state::Enum`] value).
    pub state: i32,
    /// Every message text the job server sent, in order, with its importance.
    pub messages: Vec<(i32, String)>,
}

impl JobOutcome {
    /// Ok when the job is DONE; otherwise the error naming its state and the job server's error
    /// (or, lacking those, warning) messages.
    pub fn into_result(self) -> Result<JobOutcome, JobError> {
        if self.state == jm::job_state::Enum::Done as i32 {
            return Ok(self);
        }
        let at_least = |level: jm::job_message::MessageImportance| {
            self.messages.iter().filter(|(i, _)| *i >= level as i32).map(|(_, m)| m.clone()).collect::<Vec<_>>()
        };
        let mut messages = at_least(jm::job_message::MessageImportance::JobMessageError);
        if messages.is_empty() {
            messages = at_least(jm::job_message::MessageImportance::JobMessageWarning);
        }
        Err(JobError::Failed { job_id: self.job_id, state: state_name(self.state), messages })
    }
}

/// A connection to a Beam job server.
pub struct JobClient {
    runtime: tokio::runtime::Runtime,
    client: JobServiceClient<Channel>,
}

impl JobClient {
    /// Connects to the job server at `endpoint` (`HOST:PORT`).
    pub fn connect(endpoint: &str) -> Result<JobClient, JobError> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(|e| JobError::Runtime(e.to_string()))?;
        let url = if endpoint.contains("://") { endpoint.to_string() } else { format!("http://{endpoint}") };
        let connect_error = |message: String| JobError::Connect { endpoint: endpoint.to_string(), message };
        let channel = Channel::from_shared(url).map_err(|e| connect_error(e.to_string()))?;
        let channel = runtime
            .block_on(channel.connect_timeout(Duration::from_secs(10)).connect())
            .map_err(|e| connect_error(format!("{e:?}")))?;
        // Pipelines of many transforms exceed tonic's default 4 MiB message limit.
        let client = JobServiceClient::new(channel).max_decoding_message_size(256 << 20);
        Ok(JobClient { runtime, client })
    }

    /// Prepares a job: the pipeline, its options (plain names, sent as `beam:option:NAME:v1`)
    /// and a name. Returns the preparation id.
    pub fn prepare(
        &mut self,
        pipeline: pb::Pipeline,
        options: &BTreeMap<String, String>,
        job_name: &str,
    ) -> Result<String, JobError> {
        let fields = options
            .iter()
            .map(|(k, v)| {
                (option_key(k), prost_types::Value { kind: Some(prost_types::value::Kind::StringValue(v.clone())) })
            })
            .collect();
        let request = jm::PrepareJobRequest {
            pipeline: Some(pipeline),
            pipeline_options: Some(prost_types::Struct { fields }),
            job_name: job_name.to_string(),
        };
        let response = self
            .runtime
            .block_on(self.client.prepare(request))
            .map_err(|status| match status.code() {
                // The job server could not be asked: not a verdict on the pipeline.
                tonic::Code::Unavailable | tonic::Code::DeadlineExceeded | tonic::Code::Cancelled => {
                    call_error("Prepare")(status)
                }
                _ => JobError::Rejected { message: status.message().to_string() },
            })?
            .into_inner();
        Ok(response.preparation_id)
    }

    /// Runs a prepared job; returns its job id.
    pub fn run(&mut self, preparation_id: &str) -> Result<String, JobError> {
        let request = jm::RunJobRequest { preparation_id: preparation_id.to_string(), retrieval_token: String::new() };
        let response = self.runtime.block_on(self.client.run(request)).map_err(call_error("Run"))?.into_inner();
        Ok(response.job_id)
    }

    /// The job's current state.
    pub fn state(&mut self, job_id: &str) -> Result<i32, JobError> {
        let request = jm::GetJobStateRequest { job_id: job_id.to_string() };
        let event = self.runtime.block_on(self.client.get_state(request)).map_err(call_error("GetState"))?;
        Ok(event.into_inner().state)
    }

    /// Asks the job server to cancel the job; returns the state it reports.
    pub fn cancel(&mut self, job_id: &str) -> Result<i32, JobError> {
        let request = jm::CancelJobRequest { job_id: job_id.to_string() };
        let response = self.runtime.block_on(self.client.cancel(request)).map_err(call_error("Cancel"))?;
        Ok(response.into_inner().state)
    }

    /// The job's committed user metrics (Runnel's, read back from monitoring infos), or its
    /// attempted ones where the job server reports no committed metrics.
    pub fn metrics(&mut self, job_id: &str) -> Result<MetricsSnapshot, JobError> {
        let request = jm::GetJobMetricsRequest { job_id: job_id.to_string() };
        let response =
            self.runtime.block_on(self.client.get_job_metrics(request)).map_err(call_error("GetJobMetrics"))?;
        let results = response.into_inner().metrics.unwrap_or_default();
        let infos = if results.committed.is_empty() { results.attempted } else { results.committed };
        let mut metrics = MetricsSnapshot::default();
        merge_monitoring_infos(&infos, &mut metrics).map_err(JobError::Runtime)?;
        Ok(metrics)
    }

    /// Follows the job's message stream until it reaches a terminal state, handing each message
    /// text to `on_message` as it comes (with its importance), and returns the outcome.
    pub fn wait(&mut self, job_id: &str, on_message: &mut dyn FnMut(i32, &str)) -> Result<JobOutcome, JobError> {
        self.wait_or_cancel(job_id, &|| false, on_message)
    }

    /// As [`JobClient::wait`], asking the job server to cancel the job once `cancelled` says so
    /// (checked every 100 ms); the outcome is then the state the job ends in (CANCELLED, or
    /// whatever it reached first).
    pub fn wait_or_cancel(
        &mut self,
        job_id: &str,
        cancelled: &dyn Fn() -> bool,
        on_message: &mut dyn FnMut(i32, &str),
    ) -> Result<JobOutcome, JobError> {
        let request = jm::JobMessagesRequest { job_id: job_id.to_string() };
        let mut canceller = self.client.clone();
        let client = &mut self.client;
        let mut messages = Vec::new();
        let state = self.runtime.block_on(async {
            let mut stream =
                client.get_message_stream(request).await.map_err(call_error("GetMessageStream"))?.into_inner();
            let mut poll = tokio::time::interval(std::time::Duration::from_millis(100));
            let mut cancel_sent = false;
            loop {
                let item = tokio::select! {
                    item = stream.message() => item.map_err(call_error("GetMessageStream"))?,
                    _ = poll.tick(), if !cancel_sent => {
                        if cancelled() {
                            cancel_sent = true;
                            let request = jm::CancelJobRequest { job_id: job_id.to_string() };
                            canceller.cancel(request).await.map_err(call_error("Cancel"))?;
                        }
                        continue;
                    }
                };
                let Some(item) = item else { break };
                match item.response {
                    Some(jm::job_messages_response::Response::MessageResponse(m)) => {
                        on_message(m.importance, &m.message_text);
                        messages.push((m.importance, m.message_text));
                    }
                    Some(jm::job_messages_response::Response::StateResponse(s)) if is_terminal(s.state) => {
                        return Ok(Some(s.state));
                    }
                    _ => {}
                }
            }
            Ok::<_, JobError>(None)
        })?;
        // A stream that ends without a terminal state: ask for the state directly.
        let state = match state {
            Some(s) => s,
            None => self.state(job_id)?,
        };
        Ok(JobOutcome { job_id: job_id.to_string(), state, messages })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_jobs_python_tracebacks_are_summed_up_by_their_exception_once() {
        let traceback = "Traceback (most recent call last):\n  File \"x.py\", line 1, in f\n    raise E\n\
                         NotImplementedError: beam:transform:teststream:v1\n";
        let e = JobError::Failed {
            job_id: "j".into(),
            state: "FAILED".into(),
            messages: vec![traceback.into(), format!("Error running pipeline.\n{traceback}"), "worker lost".into()],
        };
        assert_eq!(e.to_string(), "job j ended FAILED: NotImplementedError: beam:transform:teststream:v1; worker lost");
    }
}
