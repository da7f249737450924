//! Pipeline options: the runner and its flags, from the command line (clap) or a builder.

use clap::{Args, Parser, ValueEnum};
use std::path::PathBuf;

/// The runners a pipeline can be run on (`--help` says which ones this build has).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum RunnerKind {
    /// In-process reference runner with strict checks (in this build).
    #[default]
    #[value(help = "In-process reference runner with strict checks [available]")]
    Direct,
    /// Parallel batch runner on all cores (in this build).
    #[value(help = "Parallel batch runner on all cores [available]")]
    Rayon,
    /// A Beam job server (Flink, Spark, Prism, Beam Python's job service), given by
    /// `--job-endpoint` (in this build; streaming with `--streaming`, on Prism or Flink).
    #[value(help = "A Beam job server given by --job-endpoint [available]")]
    Portable,
    /// Distributed runner: a coordinator and worker processes (not in this build yet).
    #[value(help = "Distributed runner: a coordinator and worker processes [not in this build yet]")]
    Grpc,
}

impl RunnerKind {
    /// Whether this build of Runnel has the runner.
    pub fn is_available(self) -> bool {
        matches!(self, RunnerKind::Direct | RunnerKind::Rayon | RunnerKind::Portable)
    }
}

/// `--progress`: what a pipeline program shows on standard error while its job runs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum Progress {
    /// Progress lines when stderr is a terminal, and the summary of counters at the end.
    #[default]
    Auto,
    /// Neither progress nor the summary.
    Off,
}

/// Where the portable runner's job server runs the program's code.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum WorkerEnvironment {
    /// This program serves the workers itself, on loopback (Beam's EXTERNAL environment).
    #[default]
    External,
    /// The job server starts this program again, with the same arguments, as each worker
    /// (Beam's PROCESS environment; the program's path must exist where the workers run).
    Process,
}

/// `on` or `off`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Switch {
    /// Enabled.
    On,
    /// Disabled.
    Off,
}

/// Options every pipeline program accepts. Flatten them into a program's own clap parser with
/// `#[command(flatten)]`, or use [`PipelineOptions::from_args`] / the builder methods.
#[derive(Clone, Debug, Args)]
pub struct PipelineOptions {
    /// Runner to execute the pipeline on (this build has only the direct runner).
    #[arg(long, value_enum, default_value_t = RunnerKind::Direct)]
    pub runner: RunnerKind,
    /// Progress on a terminal (elements per stage, elapsed time) and a summary of counters and
    /// distributions at the end, on stderr.
    #[arg(long, value_enum, default_value_t = Progress::Auto)]
    pub progress: Progress,
    /// Log filter of the program's `tracing` output on stderr, e.g. `warn` (the default),
    /// `info`, `runnel=debug`; overrides RUST_LOG. Read by the program's entry, which installs
    /// the subscriber.
    #[arg(long, value_name = "FILTER")]
    pub log_level: Option<String>,
    /// Write the pipeline's portable graph as JSON to FILE and exit without running it.
    #[arg(long, value_name = "FILE")]
    pub dump_graph: Option<PathBuf>,
    /// Direct runner: round-trip every element through its coder and shuffle bundle order.
    #[arg(long, value_enum, default_value_t = Switch::On)]
    pub direct_checks: Switch,
    /// Seed for the direct runner's shuffled processing order.
    #[arg(long, default_value_t = 0x5eed)]
    pub seed: u64,
    /// Elements per bundle emitted by sources.
    #[arg(long, default_value_t = 1024)]
    pub bundle_size: usize,
    /// portable runner: the Beam job server's `HOST:PORT`.
    #[arg(long, value_name = "HOST:PORT")]
    pub job_endpoint: Option<String>,
    /// portable runner: where the job server runs the program's code.
    #[arg(long, value_enum, default_value_t = WorkerEnvironment::External)]
    pub environment_type: WorkerEnvironment,
    /// portable runner: the job server runs streaming pipelines (Prism, Flink), so TestStreams
    /// and processing-time triggers are sent rather than refused (Beam Python's job service is
    /// batch-only).
    #[arg(long)]
    pub streaming: bool,
    /// grpc runner: number of worker processes.
    #[arg(long)]
    pub workers: Option<usize>,
    /// Refuse (rather than warn about) triggers that may finish and drop later data.
    #[arg(long)]
    pub refuse_unsafe_triggers: bool,
    /// Print the plan the runner would run (stages, fused transforms, shuffles, lifted combines,
    /// side inputs) and exit without running.
    #[arg(long)]
    pub explain: bool,
    /// Direct runner: run the lifted plan (combines of bounded input fold each bundle before the
    /// shuffle), as parallel runners do.
    #[arg(long, value_enum, default_value_t = Switch::On)]
    pub direct_lift_combines: Switch,
    /// Direct runner: claim bounded batch execution only, refusing what a batch runner refuses
    /// (for testing refusals).
    #[arg(long, hide = true)]
    pub direct_batch_only: bool,
    /// Rayon runner: memory for shuffle data (e.g. `512MiB`, `2GB`) past which groupings spill
    /// sorted runs to disk; by default half the memory available when the job starts.
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    pub memory_budget: Option<u64>,
    /// Where runners write temporary files (the rayon runner's spilled groupings), in a directory
    /// of their own removed when the job ends; by default the system's temporary directory.
    #[arg(long, value_name = "DIR")]
    pub temp_dir: Option<PathBuf>,
}

/// Parses a size in bytes: a number with an optional unit, `B`, `KB`/`KiB`, `MB`/`MiB`,
/// `GB`/`GiB`… (SI and binary units as written).
fn parse_size(text: &str) -> Result<u64, String> {
    text.trim()
        .parse::<bytesize::ByteSize>()
        .map(|size| size.as_u64())
        .map_err(|e| format!("'{text}' is not a size such as 512MiB or 2GB: {e}"))
}

#[derive(Parser)]
struct OnlyPipelineOptions {
    #[command(flatten)]
    options: PipelineOptions,
}

impl Default for PipelineOptions {
    fn default() -> Self {
        PipelineOptions {
            runner: RunnerKind::Direct,
            progress: Progress::Auto,
            log_level: None,
            dump_graph: None,
            direct_checks: Switch::On,
            seed: 0x5eed,
            bundle_size: 1024,
            job_endpoint: None,
            environment_type: WorkerEnvironment::External,
            streaming: false,
            workers: None,
            refuse_unsafe_triggers: false,
            explain: false,
            direct_lift_combines: Switch::On,
            direct_batch_only: false,
            memory_budget: None,
            temp_dir: None,
        }
    }
}

impl PipelineOptions {
    /// Parses the process's command line (exits with usage on error, like any clap program).
    ///
    /// Only a program's entry parses the process's command line, so this also makes the process
    /// report its jobs on stderr ([`crate::progress::report_to_stderr`]: progress on a terminal,
    /// the summary at the end, unless `--progress=off`).
    pub fn from_args() -> Self {
        let options = OnlyPipelineOptions::parse().options;
        crate::progress::report_to_stderr();
        options
    }

    /// Parses the given arguments (the first is the program name).
    pub fn try_from_args<I, S>(args: I) -> Result<Self, clap::Error>
    where
        I: IntoIterator<Item = S>,
        S: Into<std::ffi::OsString> + Clone,
    {
        OnlyPipelineOptions::try_parse_from(args).map(|o| o.options)
    }

    /// Sets the runner.
    pub fn with_runner(mut self, runner: RunnerKind) -> Self {
        self.runner = runner;
        self
    }

    /// Sets what a program shows while the job runs (`Progress::Off`: nothing).
    pub fn with_progress(mut self, progress: Progress) -> Self {
        self.progress = progress;
        self
    }

    /// Turns the direct runner's strict checks on or off.
    pub fn with_direct_checks(mut self, on: bool) -> Self {
        self.direct_checks = if on { Switch::On } else { Switch::Off };
        self
    }

    /// Sets the seed of the direct runner's shuffled order.
    pub fn with_seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// Sets the elements per bundle emitted by sources.
    pub fn with_bundle_size(mut self, n: usize) -> Self {
        self.bundle_size = n.max(1);
        self
    }

    /// Makes triggers that may finish (and drop later data) a construction error.
    pub fn with_refuse_unsafe_triggers(mut self, refuse: bool) -> Self {
        self.refuse_unsafe_triggers = refuse;
        self
    }

    /// Direct runner: runs the lifted plan (combines fold each bundle before their shuffle).
    pub fn with_direct_lift_combines(mut self, on: bool) -> Self {
        self.direct_lift_combines = if on { Switch::On } else { Switch::Off };
        self
    }

    /// Rayon runner: the memory for shuffle data past which groupings spill to disk, in bytes.
    pub fn with_memory_budget(mut self, bytes: u64) -> Self {
        self.memory_budget = Some(bytes);
        self
    }

    /// Where runners write temporary files (spilled groupings).
    pub fn with_temp_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.temp_dir = Some(dir.into());
        self
    }

    /// Direct runner: claims bounded batch execution only, so it refuses what a batch runner
    /// refuses (for testing refusals).
    pub fn with_direct_batch_only(mut self, on: bool) -> Self {
        self.direct_batch_only = on;
        self
    }

    /// Sets where the portable runner's job server runs the program's code.
    pub fn with_environment_type(mut self, environment: WorkerEnvironment) -> Self {
        self.environment_type = environment;
        self
    }

    /// Says whether the portable runner's job server runs streaming pipelines (`--streaming`).
    pub fn with_streaming(mut self, on: bool) -> Self {
        self.streaming = on;
        self
    }

    /// Sets the portable runner's job server (`HOST:PORT`).
    pub fn with_job_endpoint(mut self, endpoint: impl Into<String>) -> Self {
        self.job_endpoint = Some(endpoint.into());
        self
    }

    /// Sets the grpc runner's worker count.
    pub fn with_workers(mut self, n: usize) -> Self {
        self.workers = Some(n);
        self
    }

    pub(crate) fn runner_options(&self) -> runnel_runner_core::RunnerOptions {
        runnel_runner_core::RunnerOptions {
            bundle_size: self.bundle_size.max(1),
            workers: self.workers,
            ..Default::default()
        }
    }
}
