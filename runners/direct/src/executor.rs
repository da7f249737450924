//! The push-based executor: pending bundles, per-PCollection watermarks, processing-time timers,
//! and sources (bounded, TestStream, unbounded readers).
//!
//! The loop: deliver every pending bundle (in shuffled order), release main input pushed back for
//! side inputs that became ready, propagate watermarks in topological order (keyed operators get
//! `advance_watermark` as their input watermark moves, and may fire), fire due processing-time
//! timers, and repeat until quiescent; then advance one source (a bundle of a Create, one event of
//! the TestStream, a poll of each unbounded reader) and start over. The job is done when every
//! PCollection's watermark is +∞ and nothing is pending, or cancelled when its signal is raised.

use rand::{Rng, SeedableRng};
use runnel_model::exec::{
    Batch, Bindings, DescribeBatch, DoFnInstance, ElementOps, ExecContext, Executable, KeyedContext, KeyedOperator,
    SideInputAccess, UnboundedReader, UserError, ViewMaterializer, ViewValue, WindowAssigner,
};
use runnel_model::metrics::{MetricsSnapshot, StepMetrics};
use runnel_model::{
    urns, Graph, ParDoPayload, TestStreamEvent, TestStreamPayload, Timestamp, Trigger, Window, WindowFnSpec,
    WindowIntoPayload,
};
use runnel_runner_core::runner::{CancelSignal, Clock, ManualClock, StepEvent, StepObserver, StepReport, WallClock};
use runnel_runner_core::{panic_message, windows, JobResult, JobState, RunError, RunnerOptions};
use std::collections::{BTreeMap, VecDeque};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;
use std::time::Duration;

/// Where the TestStream's processing time starts: the epoch, as Beam's Python DirectRunner (Java's
/// starts at the minimum timestamp; only aligned processing-time triggers can tell).
pub(crate) const TEST_CLOCK_START: Timestamp = Timestamp(0);

/// How long to sleep when only an idle unbounded source or a future timer can make progress.
const IDLE_SLEEP: Duration = Duration::from_millis(2);

struct PColl {
    id: String,
    ops: Arc<dyn ElementOps>,
    producer: usize,
    consumers: Vec<(usize, String)>,
    /// Bundles of this PCollection waiting to be delivered.
    pending: usize,
    /// No element that arrives later will have an earlier timestamp, unless it is late. Monotonic.
    watermark: Timestamp,
}

/// One event of a TestStream, ready to replay.
enum Scripted {
    Elements(Batch),
    Watermark(Timestamp),
    ProcessingTime(i64),
}

struct SideSlot {
    tag: String,
    pc: usize,
    window_fn: WindowFnSpec,
    materializer: Arc<dyn ViewMaterializer>,
    /// Everything the side input delivered so far.
    batches: Vec<Batch>,
    /// A view per window, built from `batches`.
    views: BTreeMap<Window, ViewValue>,
    /// The view of a window with no elements (or why there is none); set at the first build.
    empty: Option<Result<ViewValue, String>>,
    /// Whether `batches` changed since `views` was built.
    stale: bool,
}

/// The side inputs of a ParDo as its DoFn reads them.
struct SideViews<'a> {
    slots: &'a [SideSlot],
}

impl SideInputAccess for SideViews<'_> {
    fn get(&self, index: usize, main_window: &Window) -> Result<&ViewValue, UserError> {
        let slot = self.slots.get(index).ok_or_else(|| -> UserError { format!("no side input #{index}").into() })?;
        let window = windows::side_input_window(&slot.window_fn, main_window)?;
        match (slot.views.get(&window), &slot.empty) {
            (Some(v), _) => Ok(v),
            (None, Some(Ok(v))) => Ok(v),
            (None, Some(Err(e))) => Err(e.clone().into()),
            (None, None) => Err(format!("side input '{}' is not materialised yet", slot.tag).into()),
        }
    }
}

/// Whether every side input is ready for a main-input element in `main_window`: complete, or its
/// watermark past the end of the side window `main_window` maps to (all its on-time data is in).
fn side_window_ready(sides: &[SideSlot], pcs: &[PColl], main_window: &Window) -> Result<bool, UserError> {
    for side in sides {
        let pc = &pcs[side.pc];
        if pc.watermark == Timestamp::MAX && pc.pending == 0 {
            continue;
        }
        let window = windows::side_input_window(&side.window_fn, main_window)?;
        if pc.watermark <= window.max_timestamp() {
            return Ok(false);
        }
    }
    Ok(true)
}

enum Assign {
    Builtin(WindowFnSpec),
    Custom(Arc<dyn WindowAssigner>),
}

enum Kind {
    Create(VecDeque<Batch>),
    TestStream {
        events: VecDeque<Scripted>,
        watermark: Timestamp,
        /// Describes an element event for step reports (only called when someone observes).
        describe: DescribeBatch,
    },
    Reader {
        reader: Box<dyn UnboundedReader>,
        watermark: Timestamp,
    },
    ParDo {
        factory: runnel_model::exec::DoFnFactory,
        payload: ParDoPayload,
        instance: Option<Box<dyn DoFnInstance>>,
        sides: Vec<SideSlot>,
        /// Main input waiting for side inputs to be ready for its windows.
        pushed_back: Vec<Batch>,
        /// Smallest timestamp in `pushed_back` (holds the output watermark).
        pushed_back_min: Timestamp,
        /// Side input progress (watermark, nothing pending) when `pushed_back` was last tried.
        sides_seen: Vec<(Timestamp, bool)>,
    },
    Keyed(Box<KeyedSlot>),
    PassThrough,
    WindowInto(Assign),
}

/// A keyed operator and what the executor caches about it. Its hold and next timer may cost a
/// scan of its state, so they are asked for only after the operator was called since the last
/// time, and only when they can matter.
struct KeyedSlot {
    op: Box<dyn KeyedOperator>,
    /// Whether the trigger has processing-time parts (otherwise no timer is ever set).
    uses_processing_time: bool,
    /// Last hold read, and whether the operator was called since.
    hold: Timestamp,
    hold_stale: bool,
    /// Last next timer read, and whether the operator was called since.
    next_timer: Option<Timestamp>,
    timer_stale: bool,
    /// `(processing time, timer)` of the last `advance_processing_time` call, so a timer the
    /// operator does not clear is not fired again and again at the same time.
    last_timer_call: Option<(Timestamp, Timestamp)>,
}

impl KeyedSlot {
    fn new(op: Box<dyn KeyedOperator>, trigger: &Trigger) -> Box<Self> {
        Box::new(KeyedSlot {
            op,
            uses_processing_time: uses_processing_time(trigger),
            hold: Timestamp::MIN,
            hold_stale: true,
            next_timer: None,
            timer_stale: true,
            last_timer_call: None,
        })
    }

    fn hold(&mut self) -> Timestamp {
        if self.hold_stale {
            self.hold = self.op.watermark_hold();
            self.hold_stale = false;
        }
        self.hold
    }

    fn next_timer(&mut self) -> Option<Timestamp> {
        if !self.uses_processing_time {
            return None;
        }
        if self.timer_stale {
            self.next_timer = self.op.next_processing_time_timer();
            self.timer_stale = false;
        }
        self.next_timer
    }
}

/// Whether a trigger has processing-time parts.
fn uses_processing_time(t: &Trigger) -> bool {
    match t {
        Trigger::AfterProcessingTime { .. } => true,
        Trigger::Default | Trigger::AfterCount { .. } | Trigger::Never | Trigger::Always => false,
        Trigger::AfterWatermark { early, late } => {
            early.as_deref().is_some_and(uses_processing_time) || late.as_deref().is_some_and(uses_processing_time)
        }
        Trigger::Repeatedly { trigger } => uses_processing_time(trigger),
        Trigger::AfterEach { triggers } | Trigger::AfterAny { triggers } | Trigger::AfterAll { triggers } => {
            triggers.iter().any(uses_processing_time)
        }
        Trigger::OrFinally { main, finally } => uses_processing_time(main) || uses_processing_time(finally),
    }
}

struct Node {
    name: String,
    kind: Kind,
    /// The inputs whose watermark is the node's input watermark (all but side inputs).
    main_inputs: Vec<usize>,
    /// Output PCollections by output index (ParDo payload order; one for the others).
    outputs: Vec<usize>,
    /// Last input watermark seen (for keyed operators: last one they were advanced to).
    input_watermark: Timestamp,
    /// Monotonic output watermark: the input watermark held back by buffered data.
    output_watermark: Timestamp,
    metrics: StepMetrics,
}

/// What advancing the sources did.
enum Advance {
    /// A bounded source emitted a bundle, or an unbounded reader gave data or moved on.
    Progress,
    /// The TestStream replayed one event.
    Step(StepEvent),
    /// Only unbounded readers are left, and none had anything.
    Idle,
    /// No source can make progress.
    Nothing,
}

pub(crate) struct Executor {
    nodes: Vec<Node>,
    pcs: Vec<PColl>,
    pending: Vec<(usize, Batch)>,
    checks: bool,
    rng: rand::rngs::StdRng,
    bundle_size: usize,
    clock: Arc<dyn Clock>,
    /// The TestStream's clock (processing time moves only on its events).
    test_clock: Option<Arc<ManualClock>>,
    cancel: CancelSignal,
    observer: Option<StepObserver>,
    /// Whether the TestStream's first event was replayed (the `Start` step is reported before).
    stream_started: bool,
}

fn binding_error(transform: &str, message: impl Into<String>) -> RunError {
    RunError::Binding { transform: transform.to_string(), message: message.into() }
}

/// Runs user code, turning its errors and panics into a failure of `step`.
fn guarded<T>(step: &str, f: impl FnOnce() -> Result<T, UserError>) -> Result<T, RunError> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(RunError::UserCode { transform: step.to_string(), message: e.to_string() }),
        Err(panic) => Err(RunError::UserCode { transform: step.to_string(), message: panic_message(&*panic) }),
    }
}

/// Replays a TestStream's payload with the batches the bindings hold for it.
fn script(
    name: &str,
    payload: &TestStreamPayload,
    batches: Vec<Batch>,
    ops: &Arc<dyn ElementOps>,
) -> Result<VecDeque<Scripted>, RunError> {
    if batches.len() != payload.element_batches() {
        return Err(binding_error(
            name,
            format!(
                "the TestStream's payload has {} element events but the pipeline holds {} batches",
                payload.element_batches(),
                batches.len()
            ),
        ));
    }
    let mut batches = batches.into_iter();
    let mut out = VecDeque::new();
    for event in &payload.events {
        out.push_back(match event {
            TestStreamEvent::AddElements { count } => {
                let batch = batches.next().expect("counted above");
                if ops.len(&batch) != *count {
                    return Err(binding_error(
                        name,
                        format!("an element event of {count} elements holds {}", ops.len(&batch)),
                    ));
                }
                Scripted::Elements(batch)
            }
            TestStreamEvent::AdvanceWatermark { watermark } => Scripted::Watermark(*watermark),
            TestStreamEvent::AdvanceProcessingTime { advance_ms } => Scripted::ProcessingTime(*advance_ms),
        });
    }
    Ok(out)
}

impl Executor {
    pub(crate) fn new(graph: &Graph, mut bindings: Bindings, options: &RunnerOptions) -> Result<Self, RunError> {
        let order = graph.leaf_order()?;
        let mut pc_index: BTreeMap<String, usize> = BTreeMap::new();
        let mut pcs = Vec::new();
        for (i, name) in order.iter().enumerate() {
            let t = &graph.transforms[name];
            for pc in t.outputs.values() {
                let ops = bindings
                    .elements
                    .get(pc)
                    .cloned()
                    .ok_or_else(|| binding_error(name, format!("no element operations for pcollection '{pc}'")))?;
                pc_index.insert(pc.clone(), pcs.len());
                pcs.push(PColl {
                    id: pc.clone(),
                    ops,
                    producer: i,
                    consumers: Vec::new(),
                    pending: 0,
                    watermark: Timestamp::MIN,
                });
            }
        }
        let test_streams: Vec<&String> =
            order.iter().filter(|n| graph.transforms[n.as_str()].urn == urns::TEST_STREAM).collect();
        if test_streams.len() > 1 {
            let names: Vec<String> = test_streams.iter().map(|n| format!("'{n}'")).collect();
            return Err(RunError::Refused {
                runner: "direct",
                reason: format!(
                    "a pipeline may hold one TestStream (it owns the processing-time clock), this one has {}: {}",
                    names.len(),
                    names.join(", ")
                ),
            });
        }
        let (clock, test_clock): (Arc<dyn Clock>, _) = match (test_streams.first(), &options.clock) {
            (Some(stream), Some(_)) => {
                return Err(RunError::Refused {
                    runner: "direct",
                    reason: format!(
                        "TestStream '{stream}' controls processing time, so the pipeline cannot also be given a clock"
                    ),
                })
            }
            (Some(_), None) => {
                let c = Arc::new(ManualClock::new(TEST_CLOCK_START));
                (c.clone(), Some(c))
            }
            (None, Some(c)) => (c.clone(), None),
            (None, None) => (Arc::new(WallClock), None),
        };
        let mut nodes = Vec::new();
        for (i, name) in order.iter().enumerate() {
            let t = &graph.transforms[name];
            let pc = |id: &String| pc_index[id];
            let mut main_inputs: Vec<usize> = Vec::new();
            let side_tags: Vec<String> = if t.urn == urns::PAR_DO {
                t.payload_as::<ParDoPayload>()?.side_inputs.into_iter().map(|s| s.tag).collect()
            } else {
                Vec::new()
            };
            for (tag, id) in &t.inputs {
                if !side_tags.contains(tag) {
                    main_inputs.push(pc(id));
                }
                pcs[pc(id)].consumers.push((i, tag.clone()));
            }
            let mut outputs: Vec<usize> = t.outputs.values().map(pc).collect();
            let executable = bindings.transforms.remove(name);
            let kind = match (t.urn.as_str(), executable) {
                (urns::CREATE, Some(Executable::Create { elements })) => {
                    let ops = &pcs[outputs[0]].ops;
                    let all = guarded(name, || elements())?;
                    Kind::Create(ops.split(all, options.bundle_size).into())
                }
                (urns::TEST_STREAM, Some(Executable::TestStream { elements, describe })) => {
                    let payload: TestStreamPayload = t.payload_as()?;
                    let batches = guarded(name, || elements())?;
                    let ops = &pcs[outputs[0]].ops;
                    let events = script(name, &payload, batches, ops)?;
                    Kind::TestStream { events, watermark: Timestamp::MIN, describe }
                }
                (urns::READ_UNBOUNDED, Some(Executable::ReadUnbounded { open })) => {
                    Kind::Reader { reader: guarded(name, || open())?, watermark: Timestamp::MIN }
                }
                (urns::PAR_DO, Some(Executable::ParDo { instantiate, side_inputs })) => {
                    let payload: ParDoPayload = t.payload_as()?;
                    outputs = payload.outputs.iter().map(|tag| pc(&t.outputs[tag])).collect();
                    if side_inputs.len() != payload.side_inputs.len() {
                        return Err(binding_error(name, "side input count differs from the payload"));
                    }
                    let sides = payload
                        .side_inputs
                        .iter()
                        .zip(side_inputs)
                        .map(|(spec, materializer)| {
                            let id = &t.inputs[&spec.tag];
                            let window_fn =
                                graph.windowing_of(id).map(|w| w.window_fn.clone()).unwrap_or(WindowFnSpec::Global);
                            SideSlot {
                                tag: spec.tag.clone(),
                                pc: pc(id),
                                window_fn,
                                materializer,
                                batches: Vec::new(),
                                views: BTreeMap::new(),
                                empty: None,
                                stale: true,
                            }
                        })
                        .collect();
                    Kind::ParDo {
                        factory: instantiate,
                        payload,
                        instance: None,
                        sides,
                        pushed_back: vec![],
                        pushed_back_min: Timestamp::MAX,
                        sides_seen: Vec::new(),
                    }
                }
                (urns::GROUP_BY_KEY, Some(Executable::GroupByKey { instantiate })) => {
                    let input = t.inputs.values().next().expect("validated");
                    let ws = graph.windowing_of(input).expect("validated").clone();
                    Kind::Keyed(KeyedSlot::new(guarded(name, || instantiate(&ws))?, &ws.trigger))
                }
                (urns::COMBINE_PER_KEY, Some(Executable::Combine { instantiate })) => {
                    let input = t.inputs.values().next().expect("validated");
                    let ws = graph.windowing_of(input).expect("validated").clone();
                    let payload = t.payload_as()?;
                    Kind::Keyed(KeyedSlot::new(guarded(name, || instantiate(&payload, &ws))?, &ws.trigger))
                }
                (urns::FLATTEN | urns::RESHUFFLE, None) => Kind::PassThrough,
                (urns::WINDOW_INTO, executable) => {
                    let payload: WindowIntoPayload = t.payload_as()?;
                    let spec = graph.windowing_strategies[&payload.windowing_strategy].window_fn.clone();
                    match (spec, executable) {
                        (WindowFnSpec::Custom { .. }, Some(Executable::WindowInto { window_fn })) => {
                            Kind::WindowInto(Assign::Custom(window_fn))
                        }
                        (WindowFnSpec::Custom { name: fn_name, .. }, _) => {
                            return Err(binding_error(name, format!("no code bound for window function '{fn_name}'")))
                        }
                        (spec, _) => Kind::WindowInto(Assign::Builtin(spec)),
                    }
                }
                (urn, _) => return Err(binding_error(name, format!("no code bound for '{urn}'"))),
            };
            nodes.push(Node {
                name: name.clone(),
                kind,
                main_inputs,
                outputs,
                input_watermark: Timestamp::MIN,
                output_watermark: Timestamp::MIN,
                metrics: StepMetrics::default(),
            });
        }
        Ok(Executor {
            nodes,
            pcs,
            pending: Vec::new(),
            checks: options.direct_checks,
            rng: rand::rngs::StdRng::seed_from_u64(options.seed),
            bundle_size: options.bundle_size.max(1),
            clock,
            test_clock,
            cancel: options.cancel.clone(),
            observer: options.step_observer.clone(),
            stream_started: false,
        })
    }

    pub(crate) fn run(mut self) -> Result<JobResult, RunError> {
        let outcome = self.run_loop();
        let teardown = self.teardown_all();
        let state = outcome?;
        teardown?;
        let mut metrics = MetricsSnapshot::default();
        for node in &mut self.nodes {
            node.metrics.drain_into(&node.name, &mut metrics);
        }
        Ok(JobResult { state, metrics })
    }

    fn run_loop(&mut self) -> Result<JobState, RunError> {
        let mut step: Option<StepEvent> = None;
        loop {
            if !self.settle()? {
                return Ok(JobState::Cancelled);
            }
            if let Some(event) = step.take() {
                self.report(event);
            }
            if self.finished() {
                return Ok(JobState::Done);
            }
            match self.advance_sources()? {
                Advance::Progress => {}
                Advance::Step(event) => step = Some(event),
                Advance::Idle => std::thread::sleep(IDLE_SLEEP),
                Advance::Nothing if self.test_clock.is_none() && self.has_timers() => std::thread::sleep(IDLE_SLEEP),
                Advance::Nothing => {
                    let stuck = self.nodes.iter().find(|n| n.output_watermark < Timestamp::MAX);
                    let name = stuck.map(|n| n.name.as_str()).unwrap_or("<pipeline>");
                    return Err(binding_error(
                        name,
                        "never completed (its output watermark stays below +inf and no source or timer can move it)",
                    ));
                }
            }
        }
    }

    /// Runs to quiescence: every pending bundle delivered, pushed-back input released, watermarks
    /// propagated, due timers fired. False when the job was cancelled meanwhile.
    fn settle(&mut self) -> Result<bool, RunError> {
        loop {
            if self.cancel.is_cancelled() {
                return Ok(false);
            }
            while let Some((pc, batch)) = self.next_pending() {
                self.deliver(pc, batch)?;
                if self.cancel.is_cancelled() {
                    return Ok(false);
                }
            }
            if self.release_pushed_back()? || self.propagate()? || self.fire_timers()? {
                continue;
            }
            return Ok(true);
        }
    }

    /// Every watermark at +∞ and nothing left to deliver.
    fn finished(&self) -> bool {
        self.pending.is_empty()
            && self.pcs.iter().all(|p| p.watermark == Timestamp::MAX)
            && self.nodes.iter().all(|n| n.output_watermark == Timestamp::MAX)
    }

    fn report(&self, event: StepEvent) {
        if let Some(observer) = &self.observer {
            let report = StepReport {
                event,
                processing_time: self.clock.now(),
                watermarks: self.pcs.iter().map(|p| (p.id.clone(), p.watermark)).collect(),
            };
            (observer.0)(&report);
        }
    }

    fn next_pending(&mut self) -> Option<(usize, Batch)> {
        if self.pending.is_empty() {
            return None;
        }
        let i = if self.checks { self.rng.gen_range(0..self.pending.len()) } else { self.pending.len() - 1 };
        let (pc, batch) = self.pending.swap_remove(i);
        self.pcs[pc].pending -= 1;
        Some((pc, batch))
    }

    fn emit(&mut self, pc: usize, batch: Batch) {
        if self.pcs[pc].ops.len(&batch) > 0 {
            self.pcs[pc].pending += 1;
            self.pending.push((pc, batch));
        }
    }

    /// Advances one source: a bundle of the first Create with bundles left; else one event of the
    /// TestStream (after its last event, the advance of its watermark to +∞); else a poll of
    /// every unbounded reader not yet at +∞.
    fn advance_sources(&mut self) -> Result<Advance, RunError> {
        for i in 0..self.nodes.len() {
            if let Kind::Create(batches) = &mut self.nodes[i].kind {
                if let Some(batch) = batches.pop_front() {
                    let out = self.nodes[i].outputs[0];
                    self.emit(out, batch);
                    return Ok(Advance::Progress);
                }
            }
        }
        for i in 0..self.nodes.len() {
            let Kind::TestStream { watermark, .. } = &self.nodes[i].kind else { continue };
            if *watermark == Timestamp::MAX {
                continue;
            }
            if !self.stream_started {
                self.stream_started = true;
                self.report(StepEvent::Start);
            }
            let observed = self.observer.is_some();
            let Kind::TestStream { events, watermark, describe } = &mut self.nodes[i].kind else { unreachable!() };
            let event = match events.pop_front() {
                Some(Scripted::Elements(batch)) => {
                    let elements = if observed { describe(&batch) } else { Vec::new() };
                    let out = self.nodes[i].outputs[0];
                    let ops = self.pcs[out].ops.clone();
                    for b in ops.split(batch, self.bundle_size) {
                        self.emit(out, b);
                    }
                    StepEvent::AddElements { elements }
                }
                Some(Scripted::Watermark(to)) => {
                    *watermark = to;
                    StepEvent::AdvanceWatermark { to }
                }
                Some(Scripted::ProcessingTime(by_ms)) => {
                    self.test_clock.as_ref().expect("a TestStream has a test clock").advance(by_ms);
                    StepEvent::AdvanceProcessingTime { by_ms }
                }
                // As Beam's runner: after the last event, the watermark advances to +∞.
                None => {
                    *watermark = Timestamp::MAX;
                    StepEvent::AdvanceWatermark { to: Timestamp::MAX }
                }
            };
            return Ok(Advance::Step(event));
        }
        let mut readers = false;
        let mut progress = false;
        let now = self.clock.now();
        for i in 0..self.nodes.len() {
            let node = &mut self.nodes[i];
            let Kind::Reader { reader, watermark } = &mut node.kind else { continue };
            if *watermark == Timestamp::MAX {
                continue;
            }
            readers = true;
            let poll = guarded(&node.name, || reader.poll(now))?;
            if poll.watermark > *watermark {
                *watermark = poll.watermark;
                progress = true;
            }
            if let Some(batch) = poll.batch {
                let out = node.outputs[0];
                let ops = self.pcs[out].ops.clone();
                if ops.len(&batch) > 0 {
                    progress = true;
                    for b in ops.split(batch, self.bundle_size) {
                        self.emit(out, b);
                    }
                }
            }
        }
        Ok(match (readers, progress) {
            (_, true) => Advance::Progress,
            (true, false) => Advance::Idle,
            (false, false) => Advance::Nothing,
        })
    }

    /// The smallest timestamp among the pending bundles of `pc` (+∞ if none).
    fn pending_min(&self, pc: usize) -> Timestamp {
        if self.pcs[pc].pending == 0 {
            return Timestamp::MAX;
        }
        let ops = &self.pcs[pc].ops;
        self.pending
            .iter()
            .filter(|(p, _)| *p == pc)
            .filter_map(|(_, b)| ops.min_timestamp(b))
            .min()
            .unwrap_or(Timestamp::MAX)
    }

    /// Retries main input pushed back for side inputs, where their progress changed since the
    /// last try. True when some of it ran.
    fn release_pushed_back(&mut self) -> Result<bool, RunError> {
        let mut ran = false;
        for i in 0..self.nodes.len() {
            let Kind::ParDo { sides, pushed_back, sides_seen, .. } = &self.nodes[i].kind else { continue };
            if pushed_back.is_empty() {
                continue;
            }
            let progress: Vec<(Timestamp, bool)> =
                sides.iter().map(|s| (self.pcs[s.pc].watermark, self.pcs[s.pc].pending == 0)).collect();
            if progress == *sides_seen {
                continue;
            }
            let Kind::ParDo { pushed_back, pushed_back_min, sides_seen, .. } = &mut self.nodes[i].kind else {
                unreachable!()
            };
            *sides_seen = progress;
            *pushed_back_min = Timestamp::MAX;
            for batch in std::mem::take(pushed_back) {
                ran |= self.process_main(i, batch)?;
            }
        }
        Ok(ran)
    }

    /// One pass in topological order: each node's input watermark is the minimum of its main
    /// inputs' watermarks; keyed operators are advanced to it (and may fire); its output
    /// watermark is that, held back by buffered data (keyed holds, pushed-back input), and each
    /// output PCollection's watermark is further held by its pending bundles. True when anything
    /// moved or was emitted.
    fn propagate(&mut self) -> Result<bool, RunError> {
        let mut changed = false;
        for i in 0..self.nodes.len() {
            let input = self.nodes[i].main_inputs.iter().map(|&pc| self.pcs[pc].watermark).min();
            let input = input.unwrap_or(Timestamp::MAX);
            let output = match &self.nodes[i].kind {
                Kind::Create(batches) if batches.is_empty() => Timestamp::MAX,
                Kind::Create(_) => Timestamp::MIN,
                Kind::TestStream { watermark, .. } | Kind::Reader { watermark, .. } => *watermark,
                Kind::ParDo { pushed_back_min, .. } => input.min(*pushed_back_min),
                Kind::PassThrough | Kind::WindowInto(_) => input,
                Kind::Keyed(_) => {
                    if input > self.nodes[i].input_watermark {
                        self.nodes[i].input_watermark = input;
                        let outputs = self.keyed(i, |op, ctx| op.advance_watermark(input, ctx))?;
                        for b in outputs {
                            self.emit(self.nodes[i].outputs[0], b);
                        }
                    }
                    let current = self.nodes[i].output_watermark;
                    let Kind::Keyed(slot) = &mut self.nodes[i].kind else { unreachable!() };
                    if input == Timestamp::MAX {
                        // At +∞ everything has fired and expired: nothing can be held any more.
                        Timestamp::MAX
                    } else if input <= current {
                        // The output cannot move: no need to read the hold.
                        current
                    } else {
                        input.min(slot.hold())
                    }
                }
            };
            let node = &mut self.nodes[i];
            node.input_watermark = node.input_watermark.max(input);
            if output > node.output_watermark {
                node.output_watermark = output;
                changed = true;
            }
            let output = node.output_watermark;
            for k in 0..self.nodes[i].outputs.len() {
                let pc = self.nodes[i].outputs[k];
                let w = output.min(self.pending_min(pc));
                if w > self.pcs[pc].watermark {
                    self.pcs[pc].watermark = w;
                    changed = true;
                }
            }
        }
        Ok(changed || !self.pending.is_empty())
    }

    /// Whether a keyed operator that can still fire has a processing-time timer set.
    fn has_timers(&mut self) -> bool {
        self.nodes.iter_mut().any(|n| match &mut n.kind {
            Kind::Keyed(slot) => n.input_watermark < Timestamp::MAX && slot.next_timer().is_some(),
            _ => false,
        })
    }

    /// Fires the processing-time timers that are due. True when any operator was called.
    fn fire_timers(&mut self) -> Result<bool, RunError> {
        let now = self.clock.now();
        let mut fired = false;
        for i in 0..self.nodes.len() {
            if self.nodes[i].input_watermark == Timestamp::MAX {
                continue;
            }
            let Kind::Keyed(slot) = &mut self.nodes[i].kind else { continue };
            let Some(timer) = slot.next_timer() else { continue };
            if timer > now || slot.last_timer_call == Some((now, timer)) {
                continue;
            }
            slot.last_timer_call = Some((now, timer));
            let outputs = self.keyed(i, |op, ctx| op.advance_processing_time(now, ctx))?;
            for b in outputs {
                self.emit(self.nodes[i].outputs[0], b);
            }
            fired = true;
        }
        Ok(fired)
    }

    /// Runs the part of a main-input batch whose windows the side inputs are ready for, and
    /// pushes the rest back. True when some of it ran.
    fn process_main(&mut self, i: usize, batch: Batch) -> Result<bool, RunError> {
        let Kind::ParDo { sides, .. } = &self.nodes[i].kind else { unreachable!() };
        if sides.is_empty() {
            self.run_pardo(i, batch)?;
            return Ok(true);
        }
        let ops = self.pcs[self.nodes[i].main_inputs[0]].ops.clone();
        let windows = ops.windows(&batch);
        let mut ready = std::collections::BTreeSet::new();
        for w in &windows {
            if guarded(&self.nodes[i].name, || side_window_ready(sides, &self.pcs, w))? {
                ready.insert(*w);
            }
        }
        let (now, later) = if ready.len() == windows.len() {
            (Some(batch), None)
        } else if ready.is_empty() {
            (None, Some(batch))
        } else {
            let now = ops.assign_windows(ops.clone_batch(&batch), &mut |_, w| {
                if ready.contains(w) {
                    vec![*w]
                } else {
                    vec![]
                }
            });
            let later = ops.assign_windows(batch, &mut |_, w| if ready.contains(w) { vec![] } else { vec![*w] });
            (Some(now), Some(later))
        };
        if let Some(batch) = later {
            let min = ops.min_timestamp(&batch).unwrap_or(Timestamp::MAX);
            let Kind::ParDo { pushed_back, pushed_back_min, .. } = &mut self.nodes[i].kind else { unreachable!() };
            *pushed_back_min = (*pushed_back_min).min(min);
            pushed_back.push(batch);
        }
        match now {
            Some(batch) => {
                self.refresh_views(i)?;
                self.run_pardo(i, batch)?;
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// Rebuilds the views of side inputs that received data since they were last built.
    fn refresh_views(&mut self, i: usize) -> Result<(), RunError> {
        let node = &mut self.nodes[i];
        let Kind::ParDo { sides, .. } = &mut node.kind else { unreachable!() };
        for side in sides.iter_mut().filter(|s| s.stale) {
            let step = format!("{} (side input '{}')", node.name, side.tag);
            side.views = guarded(&step, || side.materializer.materialize(&side.batches))?;
            if side.empty.is_none() {
                side.empty = Some(side.materializer.empty().map_err(|e| e.to_string()));
            }
            side.stale = false;
        }
        Ok(())
    }

    fn deliver(&mut self, pc: usize, mut batch: Batch) -> Result<(), RunError> {
        let ops = self.pcs[pc].ops.clone();
        if self.checks {
            let producer = &self.nodes[self.pcs[pc].producer].name;
            guarded(producer, || {
                ops.check_encoding(&batch)
                    .map_err(|e| -> UserError { format!("output '{}': {e}", self.pcs[pc].id).into() })
            })?;
            ops.shuffle(&mut batch, self.rng.gen());
        }
        let consumers = self.pcs[pc].consumers.clone();
        let mut batch = Some(batch);
        for (k, (node, tag)) in consumers.iter().enumerate() {
            let b = if k + 1 == consumers.len() {
                batch.take().expect("last consumer takes the batch")
            } else {
                ops.clone_batch(batch.as_ref().expect("batch present"))
            };
            self.process(*node, tag, b)?;
        }
        Ok(())
    }

    fn process(&mut self, i: usize, tag: &str, batch: Batch) -> Result<(), RunError> {
        let out_ops = self.pcs[self.nodes[i].outputs[0]].ops.clone();
        match &mut self.nodes[i].kind {
            Kind::ParDo { sides, .. } => {
                if tag != "main" {
                    let slot = sides.iter_mut().find(|s| s.tag == tag).expect("side tag validated");
                    slot.batches.push(batch);
                    slot.stale = true;
                    return Ok(());
                }
                self.process_main(i, batch).map(|_| ())
            }
            Kind::Keyed(_) => {
                let outputs = self.keyed(i, |op, ctx| op.process(batch, ctx))?;
                for b in outputs {
                    self.emit(self.nodes[i].outputs[0], b);
                }
                Ok(())
            }
            Kind::PassThrough => {
                self.emit(self.nodes[i].outputs[0], batch);
                Ok(())
            }
            Kind::WindowInto(assign) => {
                let ops = out_ops;
                let out = match assign {
                    Assign::Builtin(spec) => {
                        ops.assign_windows(batch, &mut |ts, _| windows::assign(spec, ts).expect("built-in window fn"))
                    }
                    Assign::Custom(f) => {
                        let f = f.clone();
                        guarded(&self.nodes[i].name, || Ok(ops.assign_windows(batch, &mut |ts, w| f.assign(ts, w))))?
                    }
                };
                self.emit(self.nodes[i].outputs[0], out);
                Ok(())
            }
            Kind::Create(_) | Kind::TestStream { .. } | Kind::Reader { .. } => {
                Err(binding_error(&self.nodes[i].name, "a source has no inputs"))
            }
        }
    }

    fn keyed(
        &mut self,
        i: usize,
        f: impl FnOnce(&mut dyn KeyedOperator, &mut KeyedContext<'_>) -> Result<(), UserError>,
    ) -> Result<Vec<Batch>, RunError> {
        let processing_time = self.clock.now();
        let node = &mut self.nodes[i];
        let Kind::Keyed(slot) = &mut node.kind else { unreachable!() };
        slot.hold_stale = true;
        slot.timer_stale = true;
        let mut outputs = Vec::new();
        let mut sink = |b: Batch| outputs.push(b);
        let mut ctx = KeyedContext { step: &node.name, output: &mut sink, metrics: &mut node.metrics, processing_time };
        guarded(&node.name, || f(slot.op.as_mut(), &mut ctx))?;
        Ok(outputs)
    }

    fn run_pardo(&mut self, i: usize, batch: Batch) -> Result<(), RunError> {
        let node = &mut self.nodes[i];
        let Kind::ParDo { factory, payload, instance, sides, .. } = &mut node.kind else { unreachable!() };
        let name = &node.name;
        if instance.is_none() {
            let mut fresh = guarded(name, || factory(payload))?;
            guarded(name, || fresh.setup())?;
            *instance = Some(fresh);
        }
        let dofn = instance.as_mut().expect("instance set up");
        let views = SideViews { slots: sides };
        let side_inputs: &dyn SideInputAccess = &views;
        let mut produced: Vec<(usize, Batch)> = Vec::new();
        let mut sink = |idx: usize, b: Batch| produced.push((idx, b));
        let mut ctx = ExecContext { step: name, output: &mut sink, side_inputs, metrics: &mut node.metrics };
        guarded(name, || {
            dofn.start_bundle(&mut ctx)?;
            dofn.process_batch(batch, &mut ctx)?;
            dofn.finish_bundle(&mut ctx)
        })?;
        let outputs = node.outputs.clone();
        for (idx, b) in produced {
            let pc =
                *outputs.get(idx).ok_or_else(|| binding_error(&self.nodes[i].name, format!("no output #{idx}")))?;
            self.emit(pc, b);
        }
        Ok(())
    }

    fn teardown_all(&mut self) -> Result<(), RunError> {
        let mut first_error = None;
        for node in &mut self.nodes {
            if let Kind::ParDo { instance: Some(dofn), .. } = &mut node.kind {
                if let Err(e) = guarded(&node.name, || dofn.teardown()) {
                    first_error.get_or_insert(e);
                }
            }
        }
        first_error.map_or(Ok(()), Err)
    }
}
