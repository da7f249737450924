//! Running a pipeline: choosing the runner `--runner` names, `--dump-graph` and `--explain`
//! (which show the graph or the plan and run nothing), and `run` / `run_async`.

use crate::error::PipelineError;
use crate::handle::{PipelineHandle, PipelineResult};
use crate::options::{PipelineOptions, RunnerKind, Switch};
use crate::pipeline::Pipeline;
use runnel_model::exec::Job;
use runnel_runner_core::capability::{self, Capabilities, Capability};
use runnel_runner_core::plan::{Explain, Plan};
use runnel_runner_core::runner::Clock;
use runnel_runner_core::{JobState, Runner, RunnerOptions};
use runnel_runner_direct::{DirectOptions, DirectRunner, StepObserver};
use runnel_runner_portable::PortableRunner;
use runnel_runner_rayon::{RayonOptions, RayonRunner};
use std::path::Path;
use std::sync::Arc;

/// What a program asked for.
enum Launch {
    /// `--dump-graph` or `--explain`: done, nothing to run.
    NotRun,
    /// Run the job on the runner.
    Run(Box<Job>, Box<dyn Runner + Send>, RunnerOptions),
}

/// The direct runner's options from the pipeline options.
fn direct_options(options: &PipelineOptions) -> DirectOptions {
    DirectOptions {
        checks: options.direct_checks == Switch::On,
        seed: options.seed,
        lift_combines: options.direct_lift_combines == Switch::On,
        step_observer: None,
        capabilities: if options.direct_batch_only { Capabilities::batch_only() } else { Capabilities::all() },
    }
}

/// The runner `--runner` names, if this build has it.
fn runner_for(options: &PipelineOptions) -> Result<Box<dyn Runner + Send>, PipelineError> {
    match options.runner {
        RunnerKind::Direct => Ok(Box::new(DirectRunner::new(direct_options(options)))),
        RunnerKind::Rayon => Ok(Box::new(RayonRunner::new(RayonOptions {
            partitions: None,
            memory_budget: options.memory_budget,
            temp_dir: options.temp_dir.clone(),
        }))),
        RunnerKind::Portable => Ok(Box::new(PortableRunner {
            job_endpoint: options.job_endpoint.clone(),
            environment: match options.environment_type {
                crate::options::WorkerEnvironment::External => runnel_runner_portable::WorkerEnvironment::External,
                crate::options::WorkerEnvironment::Process => runnel_runner_portable::WorkerEnvironment::Process,
            },
            streaming: options.streaming,
        })),
        RunnerKind::Grpc => Err(PipelineError::RunnerNotAvailable("grpc")),
    }
}

impl Pipeline {
    /// Runs the pipeline on the runner its options name, until every watermark reaches +∞.
    ///
    /// With `--dump-graph=FILE` it writes the graph as JSON to FILE, and with `--explain` it
    /// prints the plan (stages, fused transforms, shuffles, lifted combines, side inputs) to
    /// standard output; either way it runs nothing and returns a result in [`JobState::NotRun`],
    /// so every pipeline program honours those flags.
    ///
    /// A pipeline reading an unbounded source runs until the source ends (its watermark reaches
    /// +∞); use [`Pipeline::run_async`] to be able to cancel it.
    pub fn run(&self) -> Result<PipelineResult, PipelineError> {
        match self.prepare()? {
            Launch::NotRun => Ok(PipelineResult::new(JobState::NotRun, Default::default())),
            Launch::Run(job, runner, mut options) => {
                let report = crate::progress::for_job(self.options().progress);
                options.progress = report.clone().map(|r| r as Arc<dyn runnel_runner_core::ProgressSink>);
                tracing::info!(runner = runner.name(), transforms = job.graph.transforms.len(), "running the pipeline");
                let result = runner.run(*job, &options);
                if let Some(report) = &report {
                    report.finish(result.as_ref().ok().map(|r| &r.metrics));
                }
                let result = result?;
                Ok(PipelineResult::new(result.state, result.metrics))
            }
        }
    }

    /// Starts the pipeline on a thread of its own and returns at once; the handle can cancel the
    /// job or wait for it. Honours `--dump-graph` and `--explain` as [`Pipeline::run`] does.
    pub fn run_async(&self) -> Result<PipelineHandle, PipelineError> {
        self.launch_async(None)
    }

    /// As [`Pipeline::run_async`], with processing time read from `clock` (e.g. a
    /// [`runnel_runner_core::runner::ManualClock`] the test advances) instead of the wall clock.
    /// A pipeline with a TestStream has its own clock and refuses another one.
    pub fn run_async_with_clock(&self, clock: Arc<dyn Clock>) -> Result<PipelineHandle, PipelineError> {
        self.launch_async(Some(clock))
    }

    fn launch_async(&self, clock: Option<Arc<dyn Clock>>) -> Result<PipelineHandle, PipelineError> {
        match self.prepare()? {
            Launch::NotRun => Ok(PipelineHandle::finished(PipelineResult::new(JobState::NotRun, Default::default()))),
            Launch::Run(job, runner, mut options) => {
                if !runner.capabilities().supports(Capability::RunAsync) {
                    return Err(runnel_runner_core::RunError::Refused {
                        runner: runner.name(),
                        reason: format!("it does not support {}", Capability::RunAsync),
                    }
                    .into());
                }
                options.clock = clock;
                Ok(PipelineHandle::spawn(*job, runner, options))
            }
        }
    }

    /// The physical plan the runner named by the options would run (see [`Pipeline::explain`]).
    pub fn plan(&self) -> Result<Plan, PipelineError> {
        let job = self.job()?;
        let runner = runner_for(&self.options())?;
        Ok(runnel_runner_core::plan::plan(&job.graph, runner.plan_options())?)
    }

    /// The plan as text a person reads: what `--explain` prints.
    pub fn explain(&self) -> Result<String, PipelineError> {
        let job = self.job()?;
        let runner = runner_for(&self.options())?;
        let plan = runnel_runner_core::plan::plan(&job.graph, runner.plan_options())?;
        Ok(Explain { plan: &plan, graph: &job.graph, runner: runner.name() }.to_string())
    }

    /// Runs on the direct runner with a step observer, ignoring `--runner`, `--dump-graph` and
    /// `--explain` (for test tools that need the direct runner's hooks).
    pub(crate) fn run_direct_observed(&self, observer: StepObserver) -> Result<PipelineResult, PipelineError> {
        let job = self.job()?;
        let options = self.options();
        let runner = DirectRunner::new(DirectOptions { step_observer: Some(observer), ..direct_options(&options) });
        let result = runner.run(job, &options.runner_options())?;
        Ok(PipelineResult::new(result.state, result.metrics))
    }

    /// The checked job, the runner its options name and the runner options; handles
    /// `--dump-graph` and `--explain`.
    fn prepare(&self) -> Result<Launch, PipelineError> {
        let job = self.job()?;
        let options = self.options();
        let runner = runner_for(&options)?;
        let mut not_run = false;
        if let Some(path) = &options.dump_graph {
            write_atomically(path, job.graph.to_json().as_bytes())
                .map_err(|error| PipelineError::DumpGraph { path: path.display().to_string(), error })?;
            not_run = true;
        }
        if options.explain {
            let plan = runnel_runner_core::plan::plan(&job.graph, runner.plan_options())?;
            print!("{}", Explain { plan: &plan, graph: &job.graph, runner: runner.name() });
            not_run = true;
        }
        if not_run {
            return Ok(Launch::NotRun);
        }
        // Refuse before anything runs what the runner cannot run faithfully.
        capability::check(runner.name(), &runner.capabilities(), &job.graph)?;
        Ok(Launch::Run(Box::new(job), runner, options.runner_options()))
    }
}

/// Writes `bytes` to `path` through a temporary file renamed into place, creating the parent
/// directories.
fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let name = path.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
    let tmp = dir.join(format!(".{name}.runnel-tmp-{}", std::process::id()));
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path).inspect_err(|_| {
        let _ = std::fs::remove_file(&tmp);
    })
}
