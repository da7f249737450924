//! Step-by-step transcripts of a TestStream pipeline, as Beam's own trigger tests are written:
//! each event of the stream (elements in, watermark advance, processing-time advance), followed by
//! exactly the panes it caused at a chosen PCollection.
//!
//! **Direct runner only.** The transcript attaches a capture transform to each chosen
//! PCollection (a ParDo that copies what it sees, with timestamp, window and pane, into memory
//! shared with the test) and runs the pipeline on the direct runner whatever `--runner` says,
//! with a hook the direct runner calls after each TestStream step has run to quiescence. The
//! capture transforms stay in the pipeline (named `Transcript#N`).
//!
//! ```
//! use runnel::prelude::*;
//! use runnel::transcript::{transcript, StepEvent};
//!
//! let p = Pipeline::new(PipelineOptions::default());
//! let sums = p
//!     .apply("Events", TestStream::<(String, i64)>::new()
//!         .add_elements(vec![(("k".to_string(), 1), 3), (("k".to_string(), 2), 7)])
//!         .advance_watermark_to(10))
//!     .apply("Window", WindowInto::new(FixedWindows::of(10)))
//!     .combine_per_key("Sum", combine::Sum::new());
//! let steps = transcript(&p, &sums).unwrap();
//! // Adding elements fires nothing; the watermark passing 9 fires the on-time pane of [0, 10).
//! assert_eq!(steps.len(), 3);
//! assert!(steps[0].outputs.is_empty());
//! assert_eq!(steps[1].event, StepEvent::AdvanceWatermark { to: Timestamp(10) });
//! assert_eq!(steps[1].values(), vec![("k".to_string(), 3)]);
//! assert_eq!(steps[1].outputs[0].pane.timing, PaneTiming::OnTime);
//! // The runner then advances the watermark to +∞ (nothing left to fire).
//! assert!(steps[2].outputs.is_empty());
//! ```

use crate::dofn::{DoFnContext, ParDo};
use crate::error::PipelineError;
use crate::handle::PipelineResult;
use crate::pipeline::{PCollection, Pipeline};
use runnel_model::{urns, Timestamp, WindowedValue};
use runnel_runner_core::Data;
pub use runnel_runner_direct::StepEvent;
use runnel_runner_direct::{StepObserver, StepReport};
use std::sync::{Arc, Mutex};

/// One step of a transcript: the event replayed, and what it caused at the captured PCollection.
#[derive(Clone, Debug, PartialEq)]
pub struct Step<T> {
    /// The TestStream event (or [`StepEvent::Start`] for what bounded sources caused before the
    /// first event; that step is left out when it captured nothing).
    pub event: StepEvent,
    /// Every element that reached the PCollection during the step, with its timestamp, window and
    /// pane, in arrival order (which the direct runner's shuffling may vary between seeds; a
    /// retraction always precedes the value that replaces it).
    pub outputs: Vec<WindowedValue<T>>,
    /// The PCollection's watermark after the step.
    pub watermark: Timestamp,
    /// Processing time after the step.
    pub processing_time: Timestamp,
}

impl<T: Clone> Step<T> {
    /// The values of [`Step::outputs`], without their metadata.
    pub fn values(&self) -> Vec<T> {
        self.outputs.iter().map(|wv| wv.value.clone()).collect()
    }
}

impl<T: std::fmt::Debug> std::fmt::Display for Step<T> {
    /// `event` then one line per output: `value window pane-timing index [retraction] @ timestamp`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "{} (watermark {:?}, processing time {:?})", self.event, self.watermark, self.processing_time)?;
        for wv in &self.outputs {
            writeln!(
                f,
                "  {:?} in {} {}#{}{}{}{} @ {:?}",
                wv.value,
                window_text(&wv.window),
                wv.pane.timing.as_str(),
                wv.pane.index,
                if wv.pane.is_first { " first" } else { "" },
                if wv.pane.is_last { " last" } else { "" },
                if wv.retraction { " RETRACTION" } else { "" },
                wv.timestamp
            )?;
        }
        Ok(())
    }
}

fn window_text(w: &runnel_model::Window) -> String {
    match w.as_interval() {
        Some(w) => format!("[{:?}, {:?})", w.start, w.end),
        None => "global".to_string(),
    }
}

/// A PCollection being captured for a transcript (see [`Recorder::capture`]).
pub struct Capture<T> {
    index: usize,
    pcollection: String,
    buffer: Arc<Mutex<Vec<WindowedValue<T>>>>,
}

/// The end of one step: its report and how much each capture held by then.
struct Boundary {
    report: StepReport,
    lengths: Vec<usize>,
}

type Length = Arc<dyn Fn() -> usize + Send + Sync>;

/// Captures several PCollections of one pipeline and runs it step by step.
pub struct Recorder {
    pipeline: Pipeline,
    lengths: Vec<Length>,
}

impl Recorder {
    /// A recorder for `pipeline`, which must hold a TestStream.
    pub fn new(pipeline: &Pipeline) -> Self {
        Recorder { pipeline: pipeline.clone(), lengths: Vec::new() }
    }

    /// Attaches a capture to `pc` (a transform named `Transcript#N` is added to the pipeline).
    pub fn capture<T: Data>(&mut self, pc: &PCollection<T>) -> Capture<T> {
        let buffer: Arc<Mutex<Vec<WindowedValue<T>>>> = Arc::new(Mutex::new(Vec::new()));
        let graph = self.pipeline.graph();
        let name =
            (0..).map(|n| format!("Transcript#{n}")).find(|n| !graph.transforms.contains_key(n)).expect("a free name");
        let sink = buffer.clone();
        pc.apply(
            &name,
            ParDo::from_fn(move |value: T, ctx: &mut DoFnContext<'_, '_, ()>| {
                let wv = WindowedValue {
                    value,
                    timestamp: ctx.timestamp(),
                    window: ctx.window(),
                    pane: ctx.pane(),
                    retraction: ctx.is_retraction(),
                };
                sink.lock().unwrap_or_else(|e| e.into_inner()).push(wv);
                Ok(())
            }),
        );
        let probe = buffer.clone();
        self.lengths.push(Arc::new(move || probe.lock().unwrap_or_else(|e| e.into_inner()).len()));
        Capture { index: self.lengths.len() - 1, pcollection: pc.id().to_string(), buffer }
    }

    /// Runs the pipeline on the direct runner, one TestStream event at a time.
    pub fn run(self) -> Result<Recording, PipelineError> {
        if !self.pipeline.graph().transforms.values().any(|t| t.urn == urns::TEST_STREAM) {
            return Err(PipelineError::Construction(vec![
                "a transcript needs a pipeline with a TestStream (its events are the steps)".into(),
            ]));
        }
        let boundaries: Arc<Mutex<Vec<Boundary>>> = Arc::new(Mutex::new(Vec::new()));
        let seen = boundaries.clone();
        let lengths = self.lengths.clone();
        let observer = StepObserver(Arc::new(move |report: &StepReport| {
            let lengths = lengths.iter().map(|len| len()).collect();
            seen.lock().unwrap_or_else(|e| e.into_inner()).push(Boundary { report: report.clone(), lengths });
        }));
        let result = self.pipeline.run_direct_observed(observer)?;
        let boundaries = std::mem::take(&mut *boundaries.lock().unwrap_or_else(|e| e.into_inner()));
        Ok(Recording { boundaries, result })
    }
}

/// A finished step-by-step run: the steps seen by each capture, and the pipeline's result.
pub struct Recording {
    boundaries: Vec<Boundary>,
    result: PipelineResult,
}

impl Recording {
    /// How the run ended, with its metrics (e.g. `dropped_due_to_lateness`).
    pub fn result(&self) -> &PipelineResult {
        &self.result
    }

    /// The steps as `capture` saw them. Anything captured after the last step (only possible
    /// when unbounded readers outlive the TestStream) is counted in the last step.
    pub fn steps<T: Data>(&self, capture: &Capture<T>) -> Vec<Step<T>> {
        let all = capture.buffer.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let mut steps = Vec::with_capacity(self.boundaries.len());
        let mut from = 0;
        for (k, b) in self.boundaries.iter().enumerate() {
            let to = if k + 1 == self.boundaries.len() { all.len() } else { b.lengths[capture.index] };
            let outputs = all[from..to].to_vec();
            from = to;
            if b.report.event == StepEvent::Start && outputs.is_empty() {
                continue;
            }
            steps.push(Step {
                event: b.report.event.clone(),
                outputs,
                watermark: b.report.watermarks.get(&capture.pcollection).copied().unwrap_or(Timestamp::MIN),
                processing_time: b.report.processing_time,
            });
        }
        steps
    }
}

/// Runs `pipeline` (which must hold a TestStream) on the direct runner, one event at a time, and
/// returns the steps as `pc` saw them: each event with the elements (panes) it caused at `pc`.
/// Use a [`Recorder`] to capture several PCollections or to read the run's metrics.
pub fn transcript<T: Data>(pipeline: &Pipeline, pc: &PCollection<T>) -> Result<Vec<Step<T>>, PipelineError> {
    let mut recorder = Recorder::new(pipeline);
    let capture = recorder.capture(pc);
    Ok(recorder.run()?.steps(&capture))
}
