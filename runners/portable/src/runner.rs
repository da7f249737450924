//! [`PortableRunner`]: `--runner=portable --job-endpoint=HOST:PORT`.

use crate::harness::WorkerPool;
use crate::job::JobClient;
use crate::translate::{graph_fingerprint, translate_job, EnvironmentSpec, TranslateOptions};
use runnel_model::exec::Job;
use runnel_runner_core::capability::{Capabilities, Capability};
use runnel_runner_core::plan::PlanOptions;
use runnel_runner_core::{JobResult, JobState, RunError, Runner, RunnerOptions};
use std::collections::BTreeMap;

const NAME: &str = "portable";

/// Runs a job on a Beam job server: translates the graph, serves the job's code as an EXTERNAL
/// worker pool on loopback (or has the job server start it, PROCESS), submits, and waits for the
/// job to end. A job server is taken as batch-only (Beam Python's is) unless `streaming` says it
/// runs streaming pipelines (Prism, Flink): then TestStreams and processing-time triggers are
/// sent, not refused.
#[derive(Clone, Debug)]
pub struct PortableRunner {
    /// `HOST:PORT` of the job server (`--job-endpoint`).
    pub job_endpoint: Option<String>,
    /// Where the job server runs the program's code (`--environment-type`).
    pub environment: WorkerEnvironment,
    /// Whether the job server runs streaming pipelines (`--streaming`).
    pub streaming: bool,
}

/// Where the job server runs the program's code.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum WorkerEnvironment {
    /// Beam's EXTERNAL environment: this program serves a worker pool on loopback.
    #[default]
    External,
    /// Beam's PROCESS environment: the job server starts this program again, with the same
    /// arguments, as each worker; the worker rebuilds the pipeline, serves the job's bundles and
    /// exits when the job server ends its control stream.
    Process,
}

/// Set in a worker process (by the launcher script of a PROCESS environment) to the arguments
/// the job server started the worker with (`--id=… --provision_endpoint=…`).
pub const WORKER_ENV: &str = "RUNNEL_PORTABLE_WORKER";

/// Quotes `arg` for `sh`.
fn shell_quote(arg: &str) -> String {
    format!("'{}'", arg.replace('\'', "'\\''"))
}

/// Writes the launcher a PROCESS environment names: a script that runs this program, with the
/// arguments it was started with, as a worker (the job server appends its own flags, which the
/// script hands over in [`WORKER_ENV`] rather than to the program's argument parser).
fn write_launcher(dir: &std::path::Path) -> std::io::Result<std::path::PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let exe = std::env::current_exe()?;
    // The worker starts where the program started, so relative paths in its arguments hold.
    let cwd = std::env::current_dir()?;
    let mut line = format!(
        "cd {} && {WORKER_ENV}=\"$*\" exec {}",
        shell_quote(&cwd.to_string_lossy()),
        shell_quote(&exe.to_string_lossy())
    );
    for arg in std::env::args().skip(1) {
        line.push(' ');
        line.push_str(&shell_quote(&arg));
    }
    let path = dir.join("runnel-worker");
    std::fs::write(&path, format!("#!/bin/sh\n# A Runnel worker: this job's program, serving its bundles.\n{line}\n"))?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))?;
    Ok(path)
}

/// The first grouping over windows that expire (any but the global window): where a streaming
/// job server may drop late data, out of Runnel's sight.
fn grouping_of_expiring_windows(graph: &runnel_model::Graph) -> Option<String> {
    graph.transforms.values().find_map(|t| {
        let grouping =
            [runnel_model::urns::GROUP_BY_KEY, runnel_model::urns::COMBINE_PER_KEY].contains(&t.urn.as_str());
        let expiring = t
            .inputs
            .values()
            .any(|pc| graph.windowing_of(pc).is_some_and(|ws| ws.window_fn != runnel_model::WindowFnSpec::Global));
        (grouping && expiring).then(|| t.unique_name.clone())
    })
}

fn failed(message: impl ToString) -> RunError {
    RunError::JobFailed { runner: NAME, message: message.to_string() }
}

impl Runner for PortableRunner {
    fn name(&self) -> &'static str {
        NAME
    }

    fn capabilities(&self) -> Capabilities {
        if self.streaming {
            // Unbounded sources would need splittable DoFns, not built yet.
            Capabilities::of(&[Capability::TestStream, Capability::ProcessingTime, Capability::RunAsync])
        } else {
            // A handle's cancel becomes the job server's Cancel.
            Capabilities::of(&[Capability::RunAsync])
        }
    }

    fn plan_options(&self) -> PlanOptions {
        // The job server plans (fuses, lifts); this is only what `--explain` shows.
        PlanOptions { lift_combines: true }
    }

    fn run(&self, job: Job, runner_options: &RunnerOptions) -> Result<JobResult, RunError> {
        if let Ok(flags) = std::env::var(WORKER_ENV) {
            // Started by a job server as a worker: serve, then end the process (the program's
            // own code after `run` is the submitter's business, not a worker's).
            let fingerprint = graph_fingerprint(&job.graph);
            match crate::harness::serve_process_worker(job, fingerprint, &flags) {
                Ok(()) => std::process::exit(0),
                Err(e) => {
                    eprintln!("runnel worker: {e}");
                    std::process::exit(1)
                }
            }
        }
        let Some(endpoint) = self.job_endpoint.clone().filter(|e| !e.is_empty()) else {
            return Err(RunError::Refused {
                runner: NAME,
                reason: "it needs the job server's address: --job-endpoint=HOST:PORT".into(),
            });
        };
        let fingerprint = graph_fingerprint(&job.graph);
        // The pool serves EXTERNAL workers; in PROCESS mode it only stays idle.
        let pool = WorkerPool::start(job.clone(), fingerprint)
            .map_err(|e| failed(format!("cannot serve the worker pool: {e}")))?;
        let launcher_dir = tempfile::tempdir().map_err(|e| failed(format!("cannot write the worker launcher: {e}")))?;
        let environment = match self.environment {
            WorkerEnvironment::External => EnvironmentSpec::External { endpoint: pool.endpoint().to_string() },
            WorkerEnvironment::Process => {
                let launcher = write_launcher(launcher_dir.path())
                    .map_err(|e| failed(format!("cannot write the worker launcher: {e}")))?;
                EnvironmentSpec::Process { command: launcher.to_string_lossy().into_owned() }
            }
        };
        let options = TranslateOptions { environment, batch_only: !self.streaming };
        let pipeline =
            translate_job(&job, &options).map_err(|e| RunError::Refused { runner: NAME, reason: e.to_string() })?;
        if self.streaming {
            if let Some(grouping) = grouping_of_expiring_windows(&job.graph) {
                tracing::warn!(
                    "'{grouping}' groups in the job server: data arriving after its window expired is dropped there, \
                     and not counted in {} (Prism keeps no such counter)",
                    runnel_runner_core::metric_names::DROPPED_DUE_TO_LATENESS
                );
            }
        }
        let mut client = JobClient::connect(&endpoint).map_err(failed)?;
        let name = format!("runnel-{}", std::process::id());
        let mut job_options = BTreeMap::from([("job_name".to_string(), name.clone())]);
        if self.streaming {
            // What Beam's SDKs send for an unbounded pipeline (Flink reads it).
            job_options.insert("streaming".to_string(), "true".to_string());
        }
        let preparation = client.prepare(pipeline, &job_options, &name).map_err(|e| match e {
            e @ crate::job::JobError::Rejected { .. } => RunError::Refused { runner: NAME, reason: e.to_string() },
            e => failed(e),
        })?;
        let job_id = client.run(&preparation).map_err(failed)?;
        tracing::info!(job_id, endpoint, "submitted to the Beam job server");
        let cancel = runner_options.cancel.clone();
        let outcome = client
            .wait_or_cancel(&job_id, &|| cancel.is_cancelled(), &mut |importance, text| {
                tracing::debug!(importance, "job server: {text}")
            })
            .map_err(failed)?;
        if outcome.state == crate::job::CANCELLED {
            tracing::info!(job_id, "cancelled on the job server");
            let metrics = client.metrics(&job_id).unwrap_or_else(|_| pool.observed().metrics);
            return Ok(JobResult { state: JobState::Cancelled, metrics });
        }
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
