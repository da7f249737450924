//! [`PortableRunner`]: `--runner=portable --job-endpoint=HOST:PORT`.

use crate::harness::WorkerPool;
use crate::job::JobClient;
use crate::translate::{graph_fingerprint, translate, EnvironmentSpec, TranslateOptions};
use runnel_model::exec::Job;
use runnel_runner_core::capability::Capabilities;
use runnel_runner_core::plan::PlanOptions;
use runnel_runner_core::{JobResult, JobState, RunError, Runner, RunnerOptions};
use std::collections::BTreeMap;

const NAME: &str = "portable";

/// Runs a job on a Beam job server: translates the graph, serves the job's code as an EXTERNAL
/// worker pool on loopback, submits, and waits for the job to end. Batch only for now (the
/// tested job server, Beam Python's, is batch only; streaming needs Prism or Flink).
#[derive(Clone, Debug)]
pub struct PortableRunner {
    /// `HOST:PORT` of the job server (`--job-endpoint`).
    pub job_endpoint: Option<String>,
}

fn failed(message: impl ToString) -> RunError {
    RunError::JobFailed { runner: NAME, message: message.to_string() }
}

impl Runner for PortableRunner {
    fn name(&self) -> &'static str {
        NAME
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities::batch_only()
    }

    fn plan_options(&self) -> PlanOptions {
        // The job server plans (fuses, lifts); this is only what `--explain` shows.
        PlanOptions { lift_combines: true }
    }

    fn run(&self, job: Job, _options: &RunnerOptions) -> Result<JobResult, RunError> {
        let Some(endpoint) = self.job_endpoint.clone().filter(|e| !e.is_empty()) else {
            return Err(RunError::Refused {
                runner: NAME,
                reason: "it needs the job server's address: --job-endpoint=HOST:PORT".into(),
            });
        };
        let fingerprint = graph_fingerprint(&job.graph);
        let graph = job.graph.clone();
        let pool =
            WorkerPool::start(job, fingerprint).map_err(|e| failed(format!("cannot serve the worker pool: {e}")))?;
        let options = TranslateOptions {
            environment: EnvironmentSpec::External { endpoint: pool.endpoint().to_string() },
            batch_only: true,
        };
        let pipeline =
            translate(&graph, &options).map_err(|e| RunError::Refused { runner: NAME, reason: e.to_string() })?;
        let mut client = JobClient::connect(&endpoint).map_err(failed)?;
        let name = format!("runnel-{}", std::process::id());
        let preparation = client
            .prepare(pipeline, &BTreeMap::from([("job_name".to_string(), name.clone())]), &name)
            .map_err(failed)?;
        let job_id = client.run(&preparation).map_err(failed)?;
        tracing::info!(job_id, endpoint, "submitted to the Beam job server");
        let outcome = client
            .wait(&job_id, &mut |importance, text| tracing::debug!(importance, "job server: {text}"))
            .map_err(failed)?;
        if let Err(e) = outcome.into_result() {
            // A job that failed in this program's own code: the user's error, source chain and
            // all, as the other runners report it; the job server's account goes to the log.
            if let Some(user) = pool.take_failure() {
                tracing::info!("the job server reports: {e}");
                return Err(user);
            }
            return Err(failed(e));
        }
        // The job server's committed metrics; a job server that keeps none (or cannot say) leaves
        // the harness's own count of the bundles it ran, which is the same for a job without
        // retries.
        let metrics = match client.metrics(&job_id) {
            Ok(m) if m != Default::default() => m,
            Ok(_) => pool.observed().metrics,
            Err(e) => {
                tracing::warn!("the job server gave no metrics ({e}); reporting the harness's own");
                pool.observed().metrics
            }
        };
        Ok(JobResult { state: JobState::Done, metrics })
    }
}
