//! What a pipeline *program* shows while its job runs and when it ends: progress on a terminal
//! and a summary of the job's counters and distributions, both on standard error.
//!
//! The library shows nothing by itself (a test or a service embedding Runnel keeps its stderr):
//! a program's entry opts in once with [`report_to_stderr`], as it installs a `tracing`
//! subscriber. Then every [`Pipeline::run`](crate::Pipeline::run) of the process, unless its
//! options say `--progress=off`:
//! - while the job runs, and only when standard error is a terminal, redraws a few lines at most
//!   five times a second: the elapsed time and, per stage of the plan, the transform that has
//!   produced the most elements and how many;
//! - when the job ends, erases them and prints the summary: `runnel: job finished in 1.2s`, then
//!   one indented line per counter (`counter STEP/NAME = VALUE`) and per distribution
//!   (`distribution STEP/NAME: count N, min A, max B, mean M`). A failed job prints no summary
//!   (the program prints its error).
//!
//! Runners only count (per batch, through [`ProgressSink`]); they know nothing of terminals.

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

/// Shortest time between two redraws of the progress lines.
const REDRAW_EVERY: Duration = Duration::from_millis(200);

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

/// Counts what each transform produced, draws progress lines on a terminal, and prints the
/// summary at the end.
#[derive(Debug)]
pub(crate) struct StderrReport {
    started: Instant,
    /// Draw progress lines (standard error is a terminal).
    draw: bool,
    state: Mutex<ReportState>,
}

#[derive(Debug, Default)]
struct ReportState {
    /// Elements produced and their estimated bytes, per stage, per transform.
    stages: BTreeMap<usize, BTreeMap<String, (u64, u64)>>,
    /// When the lines were last drawn.
    drawn_at: Option<Instant>,
    /// How many lines are on the screen now.
    lines_on_screen: usize,
}

impl StderrReport {
    fn new(draw: bool) -> Self {
        StderrReport { started: Instant::now(), draw, state: Mutex::new(ReportState::default()) }
    }

    /// Erases the progress lines and, for a job that finished, prints the summary of `metrics`.
    pub(crate) fn finish(&self, metrics: Option<&MetricsSnapshot>) {
        let mut state = self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let mut out = String::new();
        erase(&mut out, state.lines_on_screen);
        state.lines_on_screen = 0;
        if let Some(metrics) = metrics {
            out.push_str(&summary(self.started.elapsed(), metrics));
        }
        let _ = std::io::stderr().write_all(out.as_bytes());
    }
}

impl ProgressSink for StderrReport {
    fn record(&self, stage: usize, transform: &str, elements: u64, bytes: u64) {
        let mut state = self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let per_transform = state.stages.entry(stage).or_default();
        match per_transform.get_mut(transform) {
            Some((n, b)) => {
                *n += elements;
                *b += bytes;
            }
            None => {
                per_transform.insert(transform.to_string(), (elements, bytes));
            }
        }
        if !self.draw {
            return;
        }
        let now = Instant::now();
        if state.drawn_at.is_some_and(|at| now.duration_since(at) < REDRAW_EVERY) {
            return;
        }
        state.drawn_at = Some(now);
        let lines = progress_lines(self.started.elapsed(), &state.stages);
        let mut out = String::new();
        erase(&mut out, state.lines_on_screen);
        for line in &lines {
            out.push_str(line);
            out.push('\n');
        }
        state.lines_on_screen = lines.len();
        let _ = std::io::stderr().write_all(out.as_bytes());
    }
}

/// Moves the cursor up over `lines` lines and clears from there to the end of the screen.
fn erase(out: &mut String, lines: usize) {
    if lines > 0 {
        let _ = write!(out, "\x1b[{lines}A\x1b[J");
    }
}

/// The progress lines: elapsed time, then per stage the transform that produced the most.
fn progress_lines(elapsed: Duration, stages: &BTreeMap<usize, BTreeMap<String, (u64, u64)>>) -> Vec<String> {
    let mut lines = vec![format!("runnel: running for {:.1}s", elapsed.as_secs_f64())];
    for (stage, transforms) in stages {
        if let Some((transform, (n, bytes))) = transforms.iter().max_by_key(|(_, (n, _))| *n) {
            lines.push(format!("  stage {stage}: {transform} produced {n} elements, ~{}", human_bytes(*bytes)));
        }
    }
    lines
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
    fn progress_shows_per_stage_the_transform_that_produced_most() {
        let mut stages = BTreeMap::new();
        stages.insert(0, BTreeMap::from([("Read".to_string(), (3, 300)), ("Split".to_string(), (12, 3 << 20))]));
        stages.insert(1, BTreeMap::from([("Count".to_string(), (5, 40))]));
        assert_eq!(
            progress_lines(Duration::from_millis(2100), &stages),
            [
                "runnel: running for 2.1s",
                "  stage 0: Split produced 12 elements, ~3.0 MB",
                "  stage 1: Count produced 5 elements, ~40 B"
            ]
        );
    }
}
