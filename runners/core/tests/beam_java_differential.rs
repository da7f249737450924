//! A differential check of the shared grouping against a reference model of Beam Java's
//! `ReduceFnRunner`, written separately and in Java's shape: an active window set per key,
//! `WatermarkHold`'s element and extra (garbage-collection) holds, `PaneInfoTracker`'s timing,
//! `NonEmptyPanes`, and timers (a garbage-collection activation fires the final pane without
//! asking the trigger). Trigger state machines are shared (`runnel_runner_core::trigger`): what
//! is checked here is everything around them.
//!
//! Random windowing strategies (fixed, sliding or session windows; a choice of triggers,
//! accumulation, allowed lateness, timestamp combiner, closing and on-time behaviour) and random
//! step sequences (bundles, watermark and processing-time advances, then the watermark to +∞)
//! must give, step by step, the same panes (value, window, timestamp, pane info), the same
//! watermark hold, and the same dropped counts.

use proptest::prelude::*;
use runnel_model::exec::{KeyedContext, KeyedOperator};
use runnel_model::metrics::{MetricsSnapshot, StepMetrics};
use runnel_model::{
    AccumulationMode, ClosingBehavior, OnTimeBehavior, PaneInfo, PaneTiming, TimeTransform, Timestamp,
    TimestampCombiner, Trigger, Window, WindowFnSpec, WindowedValue, WindowingStrategy,
};
use runnel_runner_core::group::GroupAlsoByWindow;
use runnel_runner_core::trigger::{self, TriggerState, TriggerTime};
use runnel_runner_core::typed::downcast;
use runnel_runner_core::windows::assign;

mod common;
use common::Sum;

/// One emitted pane: key, sum, window, timestamp, pane.
type Out = (u8, i64, Window, Timestamp, PaneInfo);

#[derive(Clone, Debug)]
enum Step {
    /// One bundle of `(key, value, timestamp)`.
    Bundle(Vec<(u8, i64, i64)>),
    /// The input watermark moves forward by this much.
    Watermark(i64),
    /// Processing time moves forward by this much.
    ProcessingTime(i64),
}

// ---- The reference model ---------------------------------------------------------------------

/// One window of one key, as Java keeps it across its state tags.
struct RefWindow {
    key: u8,
    window: Window,
    /// The reduce function's buffer (`None`: nothing since it was cleared).
    sum: Option<i64>,
    /// `NonEmptyPanes`.
    non_empty: bool,
    /// `WatermarkHold`'s element hold (combined by the timestamp combiner).
    element_hold: Option<Timestamp>,
    /// `WatermarkHold.EXTRA_HOLD_TAG` (garbage collection; combined by EARLIEST).
    extra_hold: Option<Timestamp>,
    trigger: TriggerState,
    /// `PaneInfoTracker`'s stored pane.
    previous: Option<PaneInfo>,
    /// The trigger's finished bits: the window is closed (and no longer active).
    closed: bool,
}

struct Reference {
    s: WindowingStrategy,
    input: Timestamp,
    output: Timestamp,
    now: Timestamp,
    windows: Vec<RefWindow>,
    dropped_late: i64,
    dropped_closed: i64,
}

fn earliest(a: Option<Timestamp>, b: Option<Timestamp>) -> Option<Timestamp> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

impl Reference {
    fn new(s: WindowingStrategy) -> Self {
        Reference {
            s,
            input: Timestamp::MIN,
            output: Timestamp::MIN,
            now: Timestamp(0),
            windows: Vec::new(),
            dropped_late: 0,
            dropped_closed: 0,
        }
    }

    fn gc_time(&self, w: &Window) -> Timestamp {
        w.max_timestamp().plus(self.s.allowed_lateness_ms)
    }

    fn time(&self, w: &Window) -> TriggerTime {
        TriggerTime { watermark: self.input, processing_time: self.now, window_max: w.max_timestamp() }
    }

    fn combine_holds(&self, a: Option<Timestamp>, b: Timestamp) -> Timestamp {
        match (a, self.s.timestamp_combiner) {
            (None, _) => b,
            (Some(a), TimestampCombiner::Latest) => a.max(b),
            (Some(a), _) => a.min(b),
        }
    }

    /// `WatermarkHold.addGarbageCollectionHold` with a non-empty pane.
    fn gc_hold(&self, w: &Window) -> Option<Timestamp> {
        let gc = self.gc_time(w);
        (gc >= self.input).then_some(gc)
    }

    /// `WatermarkHold.addHolds` (the output watermark is the one reported before this step).
    fn add_holds(&mut self, i: usize, timestamp: Timestamp, output: Timestamp) {
        let w = self.windows[i].window;
        let end = w.max_timestamp();
        let hold = if self.s.timestamp_combiner == TimestampCombiner::EndOfWindow { end } else { timestamp };
        let too_late = hold < output || end < self.input;
        if !too_late {
            let h = self.combine_holds(self.windows[i].element_hold, hold);
            self.windows[i].element_hold = Some(h);
        } else if let Some(gc) = self.gc_hold(&w) {
            self.windows[i].extra_hold = earliest(self.windows[i].extra_hold, Some(gc));
        }
    }

    fn fresh(&self, key: u8, window: Window) -> RefWindow {
        RefWindow {
            key,
            window,
            sum: None,
            non_empty: false,
            element_hold: None,
            extra_hold: None,
            trigger: trigger::new_state(&self.s.trigger),
            previous: None,
            closed: false,
        }
    }

    /// The window an element's `window` becomes: the active window set's merge for sessions.
    /// `None`: the window it lands in is closed.
    fn window_for(&mut self, key: u8, window: Window, output: Timestamp) -> Option<usize> {
        if !self.s.window_fn.is_merging() {
            return Some(match self.windows.iter().position(|w| w.key == key && w.window == window) {
                Some(i) => i,
                None => {
                    self.windows.push(self.fresh(key, window));
                    self.windows.len() - 1
                }
            });
        }
        let iv = |w: &Window| *w.as_interval().expect("sessions are intervals");
        // Active (not closed) windows of the key, merged transitively with the new one.
        let mut span = iv(&window);
        loop {
            let grown = self
                .windows
                .iter()
                .filter(|w| w.key == key && !w.closed && iv(&w.window).intersects(&span))
                .fold(span, |acc, w| acc.span(&iv(&w.window)));
            if grown == span {
                break;
            }
            span = grown;
        }
        let result = Window::Interval(span);
        if self.windows.iter().any(|w| w.key == key && w.closed && w.window == result) {
            return None;
        }
        let group: Vec<usize> = (0..self.windows.len())
            .filter(|&i| {
                let w = &self.windows[i];
                w.key == key && !w.closed && iv(&w.window).intersects(&span)
            })
            .collect();
        if group.is_empty() {
            self.windows.push(self.fresh(key, result));
            return Some(self.windows.len() - 1);
        }
        if group.len() == 1 && self.windows[group[0]].window == result {
            if window != result {
                // onMerge of a NEW window into an ACTIVE one: the extra hold is renewed.
                self.windows[group[0]].extra_hold = self.gc_hold(&result);
            }
            return Some(group[0]);
        }
        // onMerge: reduce state, non-empty flags, element holds, trigger state; panes only for
        // a result that was itself active.
        let mut merged = self.fresh(key, result);
        let sources: Vec<RefWindow> =
            group.iter().rev().map(|&i| self.windows.remove(i)).collect::<Vec<_>>().into_iter().rev().collect();
        let states: Vec<&TriggerState> = sources.iter().map(|w| &w.trigger).collect();
        merged.trigger = trigger::merge(&self.s.trigger, &states);
        for src in &sources {
            merged.sum = match (merged.sum, src.sum) {
                (Some(a), Some(b)) => Some(a + b),
                (a, b) => a.or(b),
            };
            merged.non_empty |= src.non_empty;
            if let Some(h) = src.element_hold {
                merged.element_hold = Some(self.combine_holds(merged.element_hold, h));
            }
            if src.window == result {
                merged.previous = src.previous;
            }
        }
        if self.s.timestamp_combiner == TimestampCombiner::EndOfWindow {
            let end = result.max_timestamp();
            merged.element_hold = (end >= output && end >= self.input).then_some(end);
        }
        merged.extra_hold = self.gc_hold(&result);
        self.windows.push(merged);
        Some(self.windows.len() - 1)
    }

    /// `ReduceFnRunner.onTrigger` (and `emit` around it when `finished` is not forced).
    fn on_trigger(&mut self, i: usize, is_finished: bool, output: Timestamp, out: &mut Vec<Out>) {
        let s = self.s.clone();
        let input = self.input;
        let gc = self.gc_hold(&self.windows[i].window);
        let w = &mut self.windows[i];
        let end = w.window.max_timestamp();
        // WatermarkHold.extractAndRelease.
        let old = earliest(w.element_hold, w.extra_hold);
        let timestamp = match old {
            Some(t) if t <= end => t,
            _ => end,
        };
        w.element_hold = None;
        w.extra_hold = None;
        if !is_finished && s.closing_behavior == ClosingBehavior::FireAlways {
            w.extra_hold = gc;
        }
        // PaneInfoTracker.describePane.
        let (index, nonspeculative) = match &w.previous {
            None => (0, 0),
            Some(p) => (p.index + 1, p.nonspeculative_index + 1),
        };
        let only_early = w.previous.is_none_or(|p| p.timing == PaneTiming::Early);
        let timing = if end < output || !only_early {
            PaneTiming::Late
        } else if input <= end {
            PaneTiming::Early
        } else {
            PaneTiming::OnTime
        };
        let pane = PaneInfo {
            is_first: w.previous.is_none(),
            is_last: is_finished,
            timing,
            index,
            nonspeculative_index: if timing == PaneTiming::Early { -1 } else { nonspeculative },
        };
        // needToEmit.
        let emit = w.non_empty
            || (timing == PaneTiming::OnTime && s.on_time_behavior == OnTimeBehavior::FireAlways)
            || (is_finished && s.closing_behavior == ClosingBehavior::FireAlways);
        if emit {
            out.push((w.key, w.sum.unwrap_or(0), w.window, timestamp, pane));
            w.previous = Some(pane);
        }
        w.non_empty = false;
        if is_finished || s.accumulation_mode == AccumulationMode::Discarding {
            w.sum = None;
        }
    }

    /// `ReduceFnRunner.emit`: the trigger fired.
    fn emit(&mut self, i: usize, output: Timestamp, out: &mut Vec<Out>) {
        let time = self.time(&self.windows[i].window);
        let t = self.s.trigger.clone();
        trigger::on_fire(&t, &mut self.windows[i].trigger, &time);
        let finished = self.windows[i].trigger.finished;
        self.on_trigger(i, finished, output, out);
        if finished {
            self.windows[i].closed = true;
        }
    }

    fn end_step(&mut self) {
        let hold = self.hold();
        self.output = self.output.max(self.input.min(hold));
    }

    fn hold(&self) -> Timestamp {
        self.windows.iter().filter_map(|w| earliest(w.element_hold, w.extra_hold)).min().unwrap_or(Timestamp::MAX)
    }

    fn bundle(&mut self, elements: &[(u8, i64, i64)]) -> Vec<Out> {
        let output = self.output;
        let mut out = Vec::new();
        let mut consider: Vec<(u8, Window)> = Vec::new();
        for &(key, value, t) in elements {
            for window in assign(&self.s.window_fn, Timestamp(t)).expect("built-in") {
                if self.gc_time(&window) < self.input {
                    self.dropped_late += 1;
                    continue;
                }
                let Some(i) = self.window_for(key, window, output) else {
                    self.dropped_closed += 1;
                    continue;
                };
                if self.windows[i].closed {
                    self.dropped_closed += 1;
                    continue;
                }
                let w = &mut self.windows[i];
                w.sum = Some(w.sum.unwrap_or(0) + value);
                w.non_empty = true;
                self.add_holds(i, Timestamp(t), output);
                let time = self.time(&self.windows[i].window);
                let tr = self.s.trigger.clone();
                trigger::on_element(&tr, &mut self.windows[i].trigger, &time);
                consider.push((key, self.windows[i].window));
            }
        }
        consider.dedup();
        for (key, window) in consider {
            let Some(i) = self.windows.iter().position(|w| w.key == key && w.window == window && !w.closed) else {
                continue;
            };
            let time = self.time(&window);
            if trigger::should_fire(&self.s.trigger, &self.windows[i].trigger, &time) {
                self.emit(i, output, &mut out);
            }
        }
        self.end_step();
        out
    }

    /// Timers: garbage collection fires the final pane and drops the window; other windows fire
    /// if their trigger says so.
    fn timers(&mut self) -> Vec<Out> {
        let output = self.output;
        let mut out = Vec::new();
        let mut i = 0;
        while i < self.windows.len() {
            let w = &self.windows[i];
            if self.gc_time(&w.window) < self.input {
                if !w.closed {
                    self.on_trigger(i, true, output, &mut out);
                }
                self.windows.remove(i);
                continue;
            }
            let time = self.time(&w.window);
            if !w.closed && trigger::should_fire(&self.s.trigger, &w.trigger, &time) {
                self.emit(i, output, &mut out);
            }
            i += 1;
        }
        self.end_step();
        out
    }

    fn step(&mut self, step: &Step) -> Vec<Out> {
        match step {
            Step::Bundle(elements) => self.bundle(elements),
            Step::Watermark(d) => {
                self.input = if *d == i64::MAX { Timestamp::MAX } else { self.input.max(Timestamp(0)).plus(*d) };
                self.timers()
            }
            Step::ProcessingTime(d) => {
                self.now = self.now.plus(*d);
                self.timers()
            }
        }
    }
}

// ---- The implementation under test -------------------------------------------------------------

struct Actual {
    op: GroupAlsoByWindow<u8, i64, Sum>,
    spec: WindowFnSpec,
    input: Timestamp,
    now: Timestamp,
    metrics: StepMetrics,
}

impl Actual {
    fn step(&mut self, step: &Step) -> Vec<Out> {
        let mut out: Vec<Out> = Vec::new();
        let mut sink = |b: runnel_model::exec::Batch| {
            out.extend(
                downcast::<(u8, i64)>(b)
                    .into_iter()
                    .map(|wv| (wv.value.0, wv.value.1, wv.window, wv.timestamp, wv.pane)),
            )
        };
        match step {
            Step::Bundle(elements) => {
                let mut batch = Vec::new();
                for &(k, v, t) in elements {
                    for w in assign(&self.spec, Timestamp(t)).expect("built-in") {
                        batch.push(WindowedValue { window: w, ..WindowedValue::timestamped((k, v), Timestamp(t)) });
                    }
                }
                let mut ctx = KeyedContext {
                    step: "G",
                    output: &mut sink,
                    metrics: &mut self.metrics,
                    processing_time: self.now,
                };
                self.op.process(Box::new(batch), &mut ctx).expect("process");
            }
            Step::Watermark(d) => {
                self.input = if *d == i64::MAX { Timestamp::MAX } else { self.input.max(Timestamp(0)).plus(*d) };
                let mut ctx = KeyedContext {
                    step: "G",
                    output: &mut sink,
                    metrics: &mut self.metrics,
                    processing_time: self.now,
                };
                self.op.advance_watermark(self.input, &mut ctx).expect("watermark");
            }
            Step::ProcessingTime(d) => {
                self.now = self.now.plus(*d);
                let mut ctx = KeyedContext {
                    step: "G",
                    output: &mut sink,
                    metrics: &mut self.metrics,
                    processing_time: self.now,
                };
                self.op.advance_processing_time(self.now, &mut ctx).expect("processing time");
            }
        }
        out
    }
}

// ---- Random strategies and steps ------------------------------------------------------------------

fn apt(delay: i64) -> Trigger {
    Trigger::AfterProcessingTime { transforms: vec![TimeTransform::Delay { delay_ms: delay }] }
}

fn triggers() -> Vec<Trigger> {
    let count = |n| Trigger::AfterCount { count: n };
    vec![
        Trigger::Default,
        Trigger::AfterWatermark { early: Some(Box::new(count(1))), late: Some(Box::new(count(1))) },
        Trigger::AfterWatermark { early: Some(Box::new(apt(5))), late: None },
        Trigger::Repeatedly { trigger: Box::new(count(2)) },
        count(1),
        Trigger::Repeatedly { trigger: Box::new(apt(5)) },
        Trigger::Never,
        Trigger::OrFinally {
            main: Box::new(Trigger::Repeatedly { trigger: Box::new(count(1)) }),
            finally: Box::new(count(3)),
        },
    ]
}

fn strategy() -> impl Strategy<Value = WindowingStrategy> {
    let window_fns = vec![
        WindowFnSpec::Fixed { size_ms: 10, offset_ms: 0 },
        WindowFnSpec::Sliding { size_ms: 20, period_ms: 10, offset_ms: 0 },
        WindowFnSpec::Sessions { gap_ms: 8 },
    ];
    (
        prop::sample::select(window_fns),
        prop::sample::select(triggers()),
        any::<bool>(),
        prop::sample::select(vec![0i64, 15]),
        prop::sample::select(vec![
            TimestampCombiner::EndOfWindow,
            TimestampCombiner::Earliest,
            TimestampCombiner::Latest,
        ]),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(|(window_fn, trigger, accumulating, lateness, combiner, closing_always, on_time_always)| {
            WindowingStrategy {
                window_fn,
                trigger,
                accumulation_mode: if accumulating {
                    AccumulationMode::Accumulating
                } else {
                    AccumulationMode::Discarding
                },
                allowed_lateness_ms: lateness,
                timestamp_combiner: combiner,
                closing_behavior: if closing_always {
                    ClosingBehavior::FireAlways
                } else {
                    ClosingBehavior::FireIfNonEmpty
                },
                on_time_behavior: if on_time_always {
                    OnTimeBehavior::FireAlways
                } else {
                    OnTimeBehavior::FireIfNonEmpty
                },
            }
        })
}

fn steps() -> impl Strategy<Value = Vec<Step>> {
    let step = prop_oneof![
        3 => prop::collection::vec((0u8..2, 1i64..5, 0i64..80), 1..4).prop_map(Step::Bundle),
        2 => (1i64..25).prop_map(Step::Watermark),
        1 => (1i64..8).prop_map(Step::ProcessingTime),
    ];
    prop::collection::vec(step, 1..25).prop_map(|mut v| {
        v.push(Step::Watermark(i64::MAX));
        v
    })
}

fn sorted(mut v: Vec<Out>) -> Vec<Out> {
    v.sort_by_key(|(k, sum, w, ts, p)| (*k, *w, p.index, *ts, *sum));
    v
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn the_grouping_gives_beam_javas_panes_step_by_step(s in strategy(), steps in steps()) {
        let mut reference = Reference::new(s.clone());
        let mut actual = Actual {
            op: GroupAlsoByWindow::new(Sum, &s).expect("supported"),
            spec: s.window_fn.clone(),
            input: Timestamp::MIN,
            now: Timestamp(0),
            metrics: StepMetrics::default(),
        };
        for (n, step) in steps.iter().enumerate() {
            let expected = sorted(reference.step(step));
            let got = sorted(actual.step(step));
            prop_assert_eq!(&got, &expected, "step {} {:?}", n, step);
            prop_assert_eq!(actual.op.watermark_hold(), reference.hold(), "hold after step {} {:?}", n, step);
        }
        let mut snapshot = MetricsSnapshot::default();
        actual.metrics.drain_into("G", &mut snapshot);
        prop_assert_eq!(snapshot.counter("dropped_due_to_lateness"), reference.dropped_late);
        prop_assert_eq!(snapshot.counter("dropped_due_to_closed_window"), reference.dropped_closed);
    }
}
