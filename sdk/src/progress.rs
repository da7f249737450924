//! What a pipeline *program* shows while its job runs and when it ends: progress on a terminal
//! and a summary of the job's counters and distributions, both on standard error.
//!
//! The library shows nothing by itself (a test or a service embedding Runnel keeps its stderr):
//! a program's entry opts in once with [`report_to_stderr`], as it installs a `tracing`
//! subscriber. Then every [`Pipeline::run`](crate::Pipeline::run) of the process, unless its
//! options say `--progress=off`:
//! - while the job runs, and only when standard error is a terminal, shows an `indicatif`
//!   progress bar per stage of the plan, redrawn at most five times a second: the transform of
//!   the stage that has produced the most records, how many, about how many bytes, and how long
//!   the stage has run;
//! - when the job ends, erases them and prints the summary: `runnel: job finished in 1.2s`, then
//!   one indented line per counter (`counter STEP/NAME = VALUE`) and per distribution
//!   (`distribution STEP/NAME: count N, min A, max B, mean M`). A failed job prints no summary
//!   (the program prints its error).
//!
//! Runners only count (per batch, through [`ProgressSink`]); they know nothing of terminals.

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use runnel_model::metrics::MetricsSnapshot;
use runnel_runner_core::ProgressSink;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{IsTerminal, Write as _};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Set by [`report_to_stderr`].
static PROGRAM_REPORTS: AtomicBool = AtomicBool::new(false);

/// How often the progress bars are redrawn at most, per second.
const REDRAWS_PER_SECOND: u8 = 5;

/// Makes every later [`Pipeline::run`](crate::Pipeline::run) of this process show progress on
/// standard error when it is a terminal, and print the summary of the job when it ends (unless
/// the pipeline's options say `--progress=off`). For a program's entry (`main`), never for a
/// library; `runnel_examples::run_main` calls it.
pub fn report_to_stderr() {
    PROGRAM_REPORTS.store(true, Ordering::Relaxed);
}

/// The report of one job, if the program asked for reports and the options allow them.
pub(crate) fn for_job(progress: crate::options::Progress) -> Option<Arc<StderrReport>> {
    if progress == crate::options::Progress::Off || !PROGRAM_REPORTS.load(Ordering::Relaxed) {
        return None;
    }
    Some(Arc::new(StderrReport::new(std::io::stderr().is_terminal())))
}

/// Counts what each transform produced, draws a progress bar per stage on a terminal, and
/// prints the summary at the end.
#[derive(Debug)]
pub(crate) struct StderrReport {
    started: Instant,
    /// The bars, when standard error is a terminal.
    bars: Option<MultiProgress>,
    state: Mutex<ReportState>,
}

#[derive(Debug, Default)]
struct ReportState {
    /// Per stage: elements produced and their estimated bytes per transform, and its bar.
    stages: BTreeMap<usize, StageProgress>,
}

#[derive(Debug, Default)]
struct StageProgress {
    transforms: BTreeMap<String, (u64, u64)>,
    bar: Option<ProgressBar>,
}

impl StderrReport {
    fn new(draw: bool) -> Self {
        let bars =
            draw.then(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr_with_hz(REDRAWS_PER_SECOND)));
        StderrReport { started: Instant::now(), bars, state: Mutex::new(ReportState::default()) }
    }

    /// A new stage's bar, placed among the others in stage order: a spinner, the stage, what it
    /// produced and how long it has run.
    fn new_bar(bars: &MultiProgress, stage: usize, position: usize) -> ProgressBar {
        let style = ProgressStyle::with_template("{spinner} stage {prefix}: {msg} ({elapsed})")
            .unwrap_or_else(|_| ProgressStyle::default_spinner());
        let bar = bars.insert(position, ProgressBar::new_spinner().with_style(style).with_prefix(stage.to_string()));
        bar.enable_steady_tick(Duration::from_millis(1000 / u64::from(REDRAWS_PER_SECOND)));
        bar
    }

    /// Erases the progress bars and, for a job that finished, prints the summary of `metrics`.
    pub(crate) fn finish(&self, metrics: Option<&MetricsSnapshot>) {
        let mut state = self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        for stage in state.stages.values_mut() {
            if let Some(bar) = stage.bar.take() {
                bar.finish_and_clear();
            }
        }
        if let Some(bars) = &self.bars {
            let _ = bars.clear();
        }
        if let Some(metrics) = metrics {
            let _ = std::io::stderr().write_all(summary(self.started.elapsed(), metrics).as_bytes());
        }
    }
}

impl ProgressSink for StderrReport {
    fn record(&self, stage: usize, transform: &str, elements: u64, bytes: u64) {
        let mut state = self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let position = state.stages.range(..stage).count();
        let progress = state.stages.entry(stage).or_default();
        match progress.transforms.get_mut(transform) {
            Some((n, b)) => {
                *n += elements;
                *b += bytes;
            }
            None => {
                progress.transforms.insert(transform.to_string(), (elements, bytes));
            }
        }
        if let Some(bars) = &self.bars {
            let bar = progress.bar.get_or_insert_with(|| Self::new_bar(bars, stage, position));
            bar.set_message(stage_message(&progress.transforms));
        }
    }
}

/// What a stage's bar says: the transform that has produced the most, how many elements and
/// about how many bytes.
fn stage_message(transforms: &BTreeMap<String, (u64, u64)>) -> String {
    match transforms.iter().max_by_key(|(_, (n, _))| *n) {
        Some((transform, (n, bytes))) => format!("{transform}, {n} records, ~{}", human_bytes(*bytes)),
        None => String::new(),
    }
}

/// `bytes` in B, KB, MB or GB (powers of 1024), one decimal above bytes.
fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["B", "KB", "MB", "GB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// The end-of-job summary: elapsed time, every counter and distribution.
fn summary(elapsed: Duration, metrics: &MetricsSnapshot) -> String {
    let mut out = format!("runnel: job finished in {:.2}s\n", elapsed.as_secs_f64());
    for (key, value) in &metrics.counters {
        let _ = writeln!(out, "  counter {}/{} = {value}", key.step, key.name);
    }
    for (key, d) in &metrics.distributions {
        let mean = d.mean().map(|m| format!("{m:.2}")).unwrap_or_else(|| "-".into());
        let _ = writeln!(
            out,
            "  distribution {}/{}: count {}, min {}, max {}, mean {mean}",
            key.step, key.name, d.count, d.min, d.max
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use runnel_model::metrics::DistributionData;

    #[test]
    fn summary_lists_every_counter_and_distribution_on_its_own_line() {
        let mut metrics = MetricsSnapshot::default();
        metrics.inc_counter("Parse", "num_parse_errors", 2);
        metrics.distributions.insert(
            runnel_model::metrics::MetricKey { step: "Len".into(), name: "length".into() },
            DistributionData { count: 2, sum: 6, min: 2, max: 4 },
        );
        let text = summary(Duration::from_millis(1500), &metrics);
        assert_eq!(
            text,
            "runnel: job finished in 1.50s\n  counter Parse/num_parse_errors = 2\n  \
             distribution Len/length: count 2, min 2, max 4, mean 3.00\n"
        );
    }

    #[test]
    fn a_stage_bar_shows_the_transform_that_produced_most() {
        let stage = BTreeMap::from([("Read".to_string(), (3, 300)), ("Split".to_string(), (12, 3 << 20))]);
        assert_eq!(stage_message(&stage), "Split, 12 records, ~3.0 MB");
        assert_eq!(stage_message(&BTreeMap::from([("Count".to_string(), (5, 40))])), "Count, 5 records, ~40 B");
    }

    #[test]
    fn records_are_counted_per_stage_and_transform_without_a_terminal() {
        let report = StderrReport::new(false);
        report.record(1, "Count", 5, 40);
        report.record(0, "Read", 3, 300);
        report.record(1, "Count", 2, 16);
        let state = report.state.lock().unwrap();
        assert_eq!(state.stages[&1].transforms["Count"], (7, 56));
        assert_eq!(state.stages[&0].transforms["Read"], (3, 300));
        assert!(state.stages.values().all(|s| s.bar.is_none()), "no bars without a terminal");
    }
}
