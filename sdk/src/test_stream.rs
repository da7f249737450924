//! `TestStream`: a scripted unbounded source for tests, as Beam's.
//!
//! A TestStream is a list of events: elements arriving with their timestamps, the watermark
//! advancing, processing time advancing. The direct runner replays them one at a time and runs
//! the pipeline to quiescence after each (every resulting bundle delivered, watermarks
//! propagated, due timers fired), so a test controls exactly what the pipeline has seen when. A
//! pipeline with a TestStream runs on a test clock: processing time starts at the epoch (0 ms)
//! and moves only on [`TestStream::advance_processing_time`]. After the last event the runner
//! advances the watermark to +∞, as Beam's runners do, so every window eventually fires and the
//! pipeline ends.
//!
//! ```
//! use runnel::prelude::*;
//!
//! let p = Pipeline::new(PipelineOptions::default());
//! let scores = p.apply(
//!     "Scores",
//!     TestStream::<(String, i64)>::new()
//!         .add_elements(vec![(("red".to_string(), 3), 1), (("red".to_string(), 4), 5)])
//!         .advance_watermark_to(10)
//!         .advance_processing_time(60_000)
//!         .add_elements(vec![(("blue".to_string(), 2), 12)])
//!         .advance_watermark_to_infinity(),
//! );
//! let sums = scores.apply("Window", WindowInto::new(FixedWindows::of(10))).combine_per_key("Sum", combine::Sum::new());
//! sums.apply("Check", PAssert::equal_in_any_order(vec![("red".to_string(), 7i64), ("blue".to_string(), 2)]));
//! p.run().unwrap();
//! ```

use crate::pipeline::{single_output, PBegin, PCollection, PTransform, PrimitiveSpec};
use runnel_model::exec::{Batch, Executable, UserError};
use runnel_model::{
    urns, Boundedness, TestStreamEvent, TestStreamPayload, Timestamp, WindowedValue, WindowingStrategy,
};
use runnel_runner_core::typed::downcast_ref;
use runnel_runner_core::Data;
use std::sync::Arc;

/// A scripted unbounded source: elements, watermark advances and processing-time advances, in
/// order. Build it with the methods below and apply it to the pipeline; its output is an
/// unbounded PCollection in the global window.
///
/// The checks are Beam's: the watermark must move forward, and stay below +∞ except through
/// [`TestStream::advance_watermark_to_infinity`], after which no event may follow; processing
/// time advances by a positive amount. A violation is a construction error naming the transform.
pub struct TestStream<T> {
    events: Vec<Event<T>>,
    watermark: Timestamp,
    errors: Vec<String>,
}

enum Event<T> {
    Elements(Vec<WindowedValue<T>>),
    Watermark(Timestamp),
    ProcessingTime(i64),
}

impl<T: Data> Default for TestStream<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T: Data> TestStream<T> {
    /// A stream with no events yet; its watermark starts at −∞.
    pub fn new() -> Self {
        TestStream { events: Vec::new(), watermark: Timestamp::MIN, errors: Vec::new() }
    }

    fn check_open(&mut self, what: &str) {
        if self.watermark == Timestamp::MAX {
            self.errors.push(format!("{what} after advance_watermark_to_infinity: no event may follow it"));
        }
    }

    /// Elements arrive, each at its timestamp (in the global window). Elements behind the current
    /// watermark are late data, as in a real stream.
    pub fn add_elements<Ts: Into<Timestamp>>(mut self, elements: impl IntoIterator<Item = (T, Ts)>) -> Self {
        self.check_open("add_elements");
        let elements: Vec<WindowedValue<T>> =
            elements.into_iter().map(|(v, ts)| WindowedValue::timestamped(v, ts.into())).collect();
        for e in &elements {
            if e.timestamp < Timestamp::MIN || e.timestamp >= Timestamp::MAX {
                self.errors.push(format!(
                    "element {:?} has timestamp {:?}, outside [{:?}, {:?})",
                    e.value,
                    e.timestamp,
                    Timestamp::MIN,
                    Timestamp::MAX
                ));
            }
        }
        self.events.push(Event::Elements(elements));
        self
    }

    /// The watermark advances to `watermark`, which must be later than the current one and below
    /// +∞ (use [`TestStream::advance_watermark_to_infinity`] to end the stream).
    pub fn advance_watermark_to(mut self, watermark: impl Into<Timestamp>) -> Self {
        let watermark = watermark.into();
        self.check_open("advance_watermark_to");
        if watermark >= Timestamp::MAX {
            self.errors.push(format!(
                "advance_watermark_to({watermark:?}): the watermark cannot reach +inf this way; use \
                 advance_watermark_to_infinity"
            ));
        } else if watermark <= self.watermark {
            self.errors.push(format!(
                "advance_watermark_to({watermark:?}): the watermark must advance, and it is already at {:?}",
                self.watermark
            ));
        } else {
            self.watermark = watermark;
            self.events.push(Event::Watermark(watermark));
        }
        self
    }

    /// Processing time advances by `millis` (positive). Processing-time triggers due by then fire.
    pub fn advance_processing_time(mut self, millis: i64) -> Self {
        self.check_open("advance_processing_time");
        if millis <= 0 {
            self.errors
                .push(format!("advance_processing_time({millis}): processing time must advance by a positive amount"));
        } else {
            self.events.push(Event::ProcessingTime(millis));
        }
        self
    }

    /// The watermark advances to +∞: every window fires and expires; the stream ends. (The
    /// runner does this after the last event anyway.)
    pub fn advance_watermark_to_infinity(mut self) -> Self {
        self.check_open("advance_watermark_to_infinity");
        self.watermark = Timestamp::MAX;
        self.events.push(Event::Watermark(Timestamp::MAX));
        self
    }
}

impl<T: Data> PTransform<PBegin> for TestStream<T> {
    type Output = PCollection<T>;
    fn expand(self, input: PBegin) -> PCollection<T> {
        let pipeline = input.pipeline().clone();
        {
            let mut b = pipeline.lock();
            let name = b.current_name();
            for e in self.errors {
                b.error(format!("transform '{name}': TestStream: {e}"));
            }
        }
        let mut events = Vec::with_capacity(self.events.len());
        let mut batches: Vec<Vec<WindowedValue<T>>> = Vec::new();
        for e in self.events {
            events.push(match e {
                Event::Elements(elements) => {
                    let count = elements.len();
                    batches.push(elements);
                    TestStreamEvent::AddElements { count }
                }
                Event::Watermark(watermark) => TestStreamEvent::AdvanceWatermark { watermark },
                Event::ProcessingTime(advance_ms) => TestStreamEvent::AdvanceProcessingTime { advance_ms },
            });
        }
        let batches = Arc::new(batches);
        let spec = PrimitiveSpec {
            urn: urns::TEST_STREAM,
            inputs: Vec::new(),
            payload: serde_json::to_value(TestStreamPayload { events }).expect("payload serialises"),
            executable: Some(Executable::TestStream {
                elements: Arc::new(move || -> Result<Vec<Batch>, UserError> {
                    Ok(batches.iter().map(|b| Box::new(b.clone()) as Batch).collect())
                }),
                describe: Arc::new(|batch: &Batch| {
                    downcast_ref::<T>(batch).iter().map(|wv| format!("{:?} @ {:?}", wv.value, wv.timestamp)).collect()
                }),
            }),
        };
        single_output(&pipeline, spec, WindowingStrategy::global_default(), Boundedness::Unbounded, None)
    }
}
