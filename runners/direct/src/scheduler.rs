//! The scheduler: bundles queued between stages, per-PCollection watermarks, processing-time
//! timers, and sources (bounded, TestStream, unbounded readers). Stages themselves run in core's
//! [`StageExecutor`].
//!
//! The loop: deliver every queued bundle (in shuffled order), retry main input pushed back for
//! side inputs that became ready, propagate watermarks in stage order (grouping stages are
//! advanced as their input watermark moves, and may fire), fire due processing-time timers, and
//! repeat until quiescent; then advance one source (a bundle of a Create, one event of the
//! TestStream, a poll of each unbounded reader) and start over. The job is done when every
//! PCollection's watermark is +∞ and nothing is queued, or cancelled when its signal is raised.
//!
//! Memory: a stage pushes every batch depth-first through its fused transforms, and when the
//! queue between stages grows past [`MAX_QUEUED`] bundles while a stage runs, the scheduler
//! delivers queued bundles to the stages that are not running at that moment (downstream ones),
//! so a source emitting a huge input is consumed as it goes rather than queued whole.

use crate::{DirectOptions, StepEvent, StepObserver, StepReport};
use rand::{Rng, SeedableRng};
use runnel_model::exec::{Batch, Bindings, DescribeBatch, ElementOps, Executable, UnboundedReader, UserError};
use runnel_model::metrics::MetricsSnapshot;
use runnel_model::{urns, Graph, TestStreamEvent, TestStreamPayload, Timestamp};
use runnel_runner_core::plan::{OutputKind, Plan, RootKind};
use runnel_runner_core::runner::{CancelSignal, Clock, ManualClock, WallClock};
use runnel_runner_core::stage::{guarded, output_ops, SideProgress, StageExecutor, StageSink};
use runnel_runner_core::{JobResult, JobState, ProgressSink, RunError, RunnerOptions};
use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

/// Where the TestStream's processing time starts: the epoch, as Beam's Python DirectRunner (Java's
/// starts at the minimum timestamp; only aligned processing-time triggers can tell).
pub(crate) const TEST_CLOCK_START: Timestamp = Timestamp(0);

/// How long to sleep when only an idle unbounded source or a future timer can make progress.
const IDLE_SLEEP: Duration = Duration::from_millis(2);

/// Queued bundles past which a running stage's writes make the scheduler deliver queued bundles
/// to the stages downstream at once (bounding memory whatever a source emits).
const MAX_QUEUED: usize = 64;

struct PColl {
    id: String,
    ops: Arc<dyn ElementOps>,
    /// Bundles of this PCollection waiting to be delivered.
    queued: usize,
    /// No element that arrives later will have an earlier timestamp, unless it is late. Monotonic.
    watermark: Timestamp,
}

/// One event of a TestStream, ready to replay.
enum Scripted {
    Elements(Batch),
    Watermark(Timestamp),
    ProcessingTime(i64),
}

/// What drives a source stage.
enum Source {
    /// Not a source.
    None,
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
}

/// Where a stage output is delivered.
#[derive(Clone, Copy)]
enum Target {
    /// Main input port of the consuming stage.
    Input(usize),
    /// Side input of the consuming stage's root ParDo.
    Side(usize),
}

#[derive(Clone)]
struct Route {
    /// The PCollection it carries (for a lifted shuffle, as accumulators).
    pc: usize,
    /// The operations of what crosses: the PCollection's, or its accumulators'.
    ops: Arc<dyn ElementOps>,
    stage: usize,
    target: Target,
}

struct StageSlot {
    root: String,
    root_kind: RootKind,
    /// Taken out while the stage runs.
    exec: Option<StageExecutor>,
    source: Source,
    /// PCollection of each main input port.
    main_inputs: Vec<usize>,
    /// PCollection of each side input.
    sides: Vec<usize>,
    /// Where each stage output goes.
    outputs: Vec<Route>,
    /// Every PCollection produced inside the stage.
    produced: Vec<usize>,
    input_watermark: Timestamp,
    /// Monotonic: the input watermark held back by buffered data.
    output_watermark: Timestamp,
    /// Side input progress when pushed-back main input was last tried.
    sides_seen: Vec<SideProgress>,
    /// `(processing time, timer)` of the last timer call, so a timer the grouping does not clear
    /// is not fired again and again at the same time.
    last_timer_call: Option<(Timestamp, Timestamp)>,
}

struct Queued {
    route: Route,
    batch: Batch,
    /// Enqueue order (the queue itself is reordered as bundles leave it).
    seq: u64,
    /// Whether the bundle holds a retraction.
    retracts: bool,
}

impl Queued {
    /// Whether `self` and `other` travel the same route (the same PCollection to the same input).
    fn same_route(&self, other: &Queued) -> bool {
        let (a, b) = (&self.route, &other.route);
        a.pc == b.pc
            && a.stage == b.stage
            && match (a.target, b.target) {
                (Target::Input(x), Target::Input(y)) | (Target::Side(x), Target::Side(y)) => x == y,
                _ => false,
            }
    }

    /// Whether `self` must wait for the older `other`: bundles of one route may be reordered,
    /// but never across a bundle holding retractions, so a retraction reaches its consumer
    /// before the value that replaces it and after the value it retracts.
    fn waits_for(&self, other: &Queued) -> bool {
        other.seq < self.seq && (self.retracts || other.retracts) && self.same_route(other)
    }
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

pub(crate) struct Scheduler {
    stages: Vec<StageSlot>,
    pcs: Vec<PColl>,
    queue: Vec<Queued>,
    /// Bundles enqueued so far (the next bundle's `seq`).
    enqueued: u64,
    /// Queued bundles holding retractions (when none, bundles may go in any order).
    queued_retracting: usize,
    checks: bool,
    rng: rand::rngs::StdRng,
    bundle_size: usize,
    clock: Arc<dyn Clock>,
    /// The TestStream's clock (processing time moves only on its events).
    test_clock: Option<Arc<ManualClock>>,
    cancel: CancelSignal,
    /// Told the elements each stage takes in, per batch.
    progress: Option<Arc<dyn ProgressSink>>,
    observer: Option<StepObserver>,
    /// Whether the TestStream's first event was replayed (the `Start` step is reported before).
    stream_started: bool,
}

fn binding_error(transform: &str, message: impl Into<String>) -> RunError {
    RunError::Binding { transform: transform.to_string(), message: message.into() }
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

/// The scheduler as a running stage's sink: outputs are queued (and queued bundles delivered to
/// other stages when the queue is long); with checks on, every produced element is round-tripped
/// through its coder.
struct Sink<'a> {
    scheduler: &'a mut Scheduler,
    stage: usize,
}

impl StageSink for Sink<'_> {
    fn write(&mut self, output: usize, batch: Batch) -> Result<(), RunError> {
        let route = self.scheduler.stages[self.stage].outputs[output].clone();
        self.scheduler.enqueue(route, batch);
        if self.scheduler.queue.len() > MAX_QUEUED {
            self.scheduler.drain_downstream()?;
        }
        Ok(())
    }

    fn inspect(
        &mut self,
        producer: &str,
        pcollection: &str,
        ops: &dyn ElementOps,
        batch: &mut Batch,
    ) -> Result<(), RunError> {
        if let Some(progress) = &self.scheduler.progress {
            progress.record_batch(self.stage, producer, ops, batch);
        }
        if !self.scheduler.checks {
            return Ok(());
        }
        guarded(producer, || {
            ops.check_encoding(batch).map_err(|e| -> UserError { format!("output '{pcollection}': {e}").into() })
        })
    }
}

impl Scheduler {
    pub(crate) fn new(
        graph: &Graph,
        plan: &Plan,
        mut bindings: Bindings,
        options: &RunnerOptions,
        direct: &DirectOptions,
    ) -> Result<Self, RunError> {
        let mut pc_index: BTreeMap<String, usize> = BTreeMap::new();
        let mut pcs = Vec::new();
        let mut produced_by: Vec<Vec<usize>> = vec![Vec::new(); plan.stages.len()];
        for stage in &plan.stages {
            for name in &stage.transforms {
                for pc in graph.transforms[name].outputs.values() {
                    let ops =
                        bindings.elements.get(pc).cloned().ok_or_else(|| {
                            binding_error(name, format!("no element operations for pcollection '{pc}'"))
                        })?;
                    pc_index.insert(pc.clone(), pcs.len());
                    produced_by[stage.id].push(pcs.len());
                    pcs.push(PColl { id: pc.clone(), ops, queued: 0, watermark: Timestamp::MIN });
                }
            }
        }
        let test_streams: Vec<&String> = plan
            .stages
            .iter()
            .map(|s| &s.root)
            .filter(|n| graph.transforms[n.as_str()].urn == urns::TEST_STREAM)
            .collect();
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
        let mut stages = Vec::new();
        for (stage, produced) in plan.stages.iter().zip(produced_by) {
            let name = &stage.root;
            let t = &graph.transforms[name];
            let source = if stage.root_kind != RootKind::Source {
                Source::None
            } else {
                let out = produced[0];
                match (t.urn.as_str(), bindings.transforms.remove(name)) {
                    (urns::CREATE, Some(Executable::Create { elements })) => {
                        let all = guarded(name, || elements())?;
                        Source::Create(pcs[out].ops.split(all, options.bundle_size).into())
                    }
                    (urns::TEST_STREAM, Some(Executable::TestStream { elements, describe })) => {
                        let payload: TestStreamPayload = t.payload_as()?;
                        let batches = guarded(name, || elements())?;
                        let events = script(name, &payload, batches, &pcs[out].ops)?;
                        Source::TestStream { events, watermark: Timestamp::MIN, describe }
                    }
                    (urns::READ_UNBOUNDED, Some(Executable::ReadUnbounded { open })) => {
                        Source::Reader { reader: guarded(name, || open())?, watermark: Timestamp::MIN }
                    }
                    (urn, _) => return Err(binding_error(name, format!("no code bound for '{urn}'"))),
                }
            };
            let exec = StageExecutor::new(plan, stage.id, graph, &bindings)?;
            let mut outputs = Vec::new();
            for (k, o) in stage.outputs.iter().enumerate() {
                outputs.push(Route {
                    pc: pc_index[&o.pcollection],
                    ops: output_ops(plan, stage.id, k, &bindings)?,
                    stage: o.to_stage,
                    target: match o.kind {
                        OutputKind::View { side_input } => Target::Side(side_input),
                        _ => Target::Input(o.to_input),
                    },
                });
            }
            stages.push(StageSlot {
                root: name.clone(),
                root_kind: stage.root_kind,
                exec: Some(exec),
                source,
                main_inputs: stage.inputs.iter().map(|i| pc_index[&i.pcollection]).collect(),
                sides: stage.side_inputs.iter().map(|s| pc_index[&s.pcollection]).collect(),
                outputs,
                produced,
                input_watermark: Timestamp::MIN,
                output_watermark: Timestamp::MIN,
                sides_seen: Vec::new(),
                last_timer_call: None,
            });
        }
        Ok(Scheduler {
            stages,
            pcs,
            queue: Vec::new(),
            enqueued: 0,
            queued_retracting: 0,
            checks: direct.checks,
            rng: rand::rngs::StdRng::seed_from_u64(direct.seed),
            bundle_size: options.bundle_size.max(1),
            clock,
            test_clock,
            cancel: options.cancel.clone(),
            progress: options.progress.clone(),
            observer: direct.step_observer.clone(),
            stream_started: false,
        })
    }

    pub(crate) fn run(mut self) -> Result<JobResult, RunError> {
        let outcome = self.run_loop();
        let mut teardown = Ok(());
        for stage in &mut self.stages {
            if let Some(exec) = &mut stage.exec {
                let result = exec.teardown();
                if teardown.is_ok() {
                    teardown = result;
                }
            }
        }
        let state = outcome?;
        teardown?;
        let mut metrics = MetricsSnapshot::default();
        for stage in &mut self.stages {
            if let Some(exec) = &mut stage.exec {
                exec.drain_metrics(&mut metrics);
            }
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
                    let stuck = self.stages.iter().find(|s| s.output_watermark < Timestamp::MAX);
                    let name = stuck.map(|s| s.root.as_str()).unwrap_or("<pipeline>");
                    return Err(binding_error(
                        name,
                        "never completed (its output watermark stays below +inf and no source or timer can move it)",
                    ));
                }
            }
        }
    }

    /// Runs to quiescence: every queued bundle delivered, pushed-back input released, watermarks
    /// propagated, due timers fired. False when the job was cancelled meanwhile.
    fn settle(&mut self) -> Result<bool, RunError> {
        loop {
            if self.cancel.is_cancelled() {
                return Ok(false);
            }
            while let Some(queued) = self.next_queued(|_| true) {
                self.deliver(queued)?;
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
        self.queue.is_empty()
            && self.pcs.iter().all(|p| p.watermark == Timestamp::MAX)
            && self.stages.iter().all(|s| s.output_watermark == Timestamp::MAX)
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

    fn enqueue(&mut self, route: Route, batch: Batch) {
        if route.ops.len(&batch) > 0 {
            self.pcs[route.pc].queued += 1;
            let retracts = route.ops.has_retractions(&batch);
            self.queued_retracting += usize::from(retracts);
            self.enqueued += 1;
            self.queue.push(Queued { route, batch, seq: self.enqueued, retracts });
        }
    }

    /// A queued bundle whose stage `deliverable` accepts: a random one with checks on, else the
    /// newest (depth first).
    fn next_queued(&mut self, deliverable: impl Fn(&StageSlot) -> bool) -> Option<Queued> {
        let ordered = self.queued_retracting > 0;
        let candidates: Vec<usize> = (0..self.queue.len())
            .filter(|&i| deliverable(&self.stages[self.queue[i].route.stage]))
            .filter(|&i| !ordered || !self.queue.iter().any(|other| self.queue[i].waits_for(other)))
            .collect();
        if candidates.is_empty() {
            return None;
        }
        let pick = if self.checks {
            candidates[self.rng.gen_range(0..candidates.len())]
        } else {
            candidates[candidates.len() - 1]
        };
        let queued = self.queue.swap_remove(pick);
        self.pcs[queued.route.pc].queued -= 1;
        self.queued_retracting -= usize::from(queued.retracts);
        Some(queued)
    }

    /// Delivers queued bundles to stages not running now, until the queue is short again.
    fn drain_downstream(&mut self) -> Result<(), RunError> {
        while self.queue.len() > MAX_QUEUED / 2 {
            let Some(queued) = self.next_queued(|s| s.exec.is_some()) else { break };
            self.deliver(queued)?;
        }
        Ok(())
    }

    /// The progress of each side input of `stage`.
    fn side_progress(&self, stage: usize) -> Vec<SideProgress> {
        self.stages[stage]
            .sides
            .iter()
            .map(|&pc| {
                let p = &self.pcs[pc];
                SideProgress { watermark: p.watermark, complete: p.watermark == Timestamp::MAX && p.queued == 0 }
            })
            .collect()
    }

    /// Runs `f` on stage `stage`'s executor, with the scheduler as its sink.
    fn with_stage<T>(
        &mut self,
        stage: usize,
        f: impl FnOnce(&mut StageExecutor, &mut Sink<'_>) -> Result<T, RunError>,
    ) -> Result<T, RunError> {
        let mut exec = self.stages[stage].exec.take().expect("a stage is not re-entered");
        let result = f(&mut exec, &mut Sink { scheduler: self, stage });
        self.stages[stage].exec = Some(exec);
        result
    }

    fn deliver(&mut self, queued: Queued) -> Result<(), RunError> {
        let Queued { route, mut batch, .. } = queued;
        if self.checks {
            route.ops.shuffle(&mut batch, self.rng.gen());
        }
        match route.target {
            Target::Side(index) => self.with_stage(route.stage, |exec, _| exec.add_side_input(index, batch)),
            Target::Input(port) => {
                let progress = self.side_progress(route.stage);
                let now = self.clock.now();
                self.with_stage(route.stage, |exec, sink| exec.process_input(port, batch, &progress, now, sink))
            }
        }
    }

    /// Pushes a batch a source produced through its stage.
    fn emit_source(&mut self, stage: usize, mut batch: Batch) -> Result<(), RunError> {
        let out = self.stages[stage].produced[0];
        if self.pcs[out].ops.len(&batch) == 0 {
            return Ok(());
        }
        if self.checks {
            self.pcs[out].ops.shuffle(&mut batch, self.rng.gen());
        }
        self.with_stage(stage, |exec, sink| exec.process_source(batch, sink))
    }

    /// Advances one source: a bundle of the first Create with bundles left; else one event of the
    /// TestStream (after its last event, the advance of its watermark to +∞); else a poll of
    /// every unbounded reader not yet at +∞.
    fn advance_sources(&mut self) -> Result<Advance, RunError> {
        for i in 0..self.stages.len() {
            if let Source::Create(batches) = &mut self.stages[i].source {
                if let Some(batch) = batches.pop_front() {
                    self.emit_source(i, batch)?;
                    return Ok(Advance::Progress);
                }
            }
        }
        for i in 0..self.stages.len() {
            let Source::TestStream { watermark, .. } = &self.stages[i].source else { continue };
            if *watermark == Timestamp::MAX {
                continue;
            }
            if !self.stream_started {
                self.stream_started = true;
                self.report(StepEvent::Start);
            }
            let observed = self.observer.is_some();
            let Source::TestStream { events, watermark, describe } = &mut self.stages[i].source else { unreachable!() };
            let event = match events.pop_front() {
                Some(Scripted::Elements(batch)) => {
                    let elements = if observed { describe(&batch) } else { Vec::new() };
                    let ops = self.pcs[self.stages[i].produced[0]].ops.clone();
                    for b in ops.split(batch, self.bundle_size) {
                        self.emit_source(i, b)?;
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
        for i in 0..self.stages.len() {
            let stage = &mut self.stages[i];
            let Source::Reader { reader, watermark } = &mut stage.source else { continue };
            if *watermark == Timestamp::MAX {
                continue;
            }
            readers = true;
            let poll = guarded(&stage.root, || reader.poll(now))?;
            if poll.watermark > *watermark {
                *watermark = poll.watermark;
                progress = true;
            }
            if let Some(batch) = poll.batch {
                let ops = self.pcs[self.stages[i].produced[0]].ops.clone();
                if ops.len(&batch) > 0 {
                    progress = true;
                    for b in ops.split(batch, self.bundle_size) {
                        self.emit_source(i, b)?;
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

    /// The smallest timestamp among the queued bundles of `pc` (+∞ if none).
    fn queued_min(&self, pc: usize) -> Timestamp {
        if self.pcs[pc].queued == 0 {
            return Timestamp::MAX;
        }
        self.queue
            .iter()
            .filter(|q| q.route.pc == pc)
            .filter_map(|q| q.route.ops.min_timestamp(&q.batch))
            .min()
            .unwrap_or(Timestamp::MAX)
    }

    /// Retries main input pushed back for side inputs, where their progress changed since the
    /// last try. True when some of it ran.
    fn release_pushed_back(&mut self) -> Result<bool, RunError> {
        let mut ran = false;
        for i in 0..self.stages.len() {
            if !self.stages[i].exec.as_ref().is_some_and(|e| e.has_pushed_back()) {
                continue;
            }
            let progress = self.side_progress(i);
            if progress == self.stages[i].sides_seen {
                continue;
            }
            self.stages[i].sides_seen = progress.clone();
            ran |= self.with_stage(i, |exec, sink| exec.retry_pushed_back(&progress, sink))?;
        }
        Ok(ran)
    }

    /// One pass in stage order: each stage's input watermark is the minimum of its main inputs'
    /// watermarks; grouping stages are advanced to it (and may fire); its output watermark is
    /// that, held back by buffered data (grouping holds, pushed-back input), and each PCollection
    /// it produces is further held by its queued bundles. True when anything moved or was queued.
    fn propagate(&mut self) -> Result<bool, RunError> {
        let mut changed = false;
        for i in 0..self.stages.len() {
            let input =
                self.stages[i].main_inputs.iter().map(|&pc| self.pcs[pc].watermark).min().unwrap_or(Timestamp::MAX);
            let source_watermark = match &self.stages[i].source {
                Source::Create(batches) if batches.is_empty() => Some(Timestamp::MAX),
                Source::Create(_) => Some(Timestamp::MIN),
                Source::TestStream { watermark, .. } | Source::Reader { watermark, .. } => Some(*watermark),
                Source::None => None,
            };
            let output = match (source_watermark, self.stages[i].root_kind) {
                (Some(w), _) => w,
                (None, RootKind::Grouping) => {
                    if input > self.stages[i].input_watermark {
                        self.stages[i].input_watermark = input;
                        let now = self.clock.now();
                        self.with_stage(i, |exec, sink| exec.advance_watermark(input, now, sink))?;
                    }
                    let current = self.stages[i].output_watermark;
                    self.stages[i].exec.as_mut().expect("not running").output_watermark(input, current)
                }
                (None, _) => {
                    let current = self.stages[i].output_watermark;
                    self.stages[i].exec.as_mut().expect("not running").output_watermark(input, current)
                }
            };
            let stage = &mut self.stages[i];
            stage.input_watermark = stage.input_watermark.max(input);
            if output > stage.output_watermark {
                stage.output_watermark = output;
                changed = true;
            }
            let output = stage.output_watermark;
            for k in 0..self.stages[i].produced.len() {
                let pc = self.stages[i].produced[k];
                let w = output.min(self.queued_min(pc));
                if w > self.pcs[pc].watermark {
                    self.pcs[pc].watermark = w;
                    changed = true;
                }
            }
        }
        Ok(changed || !self.queue.is_empty())
    }

    /// Whether a grouping that can still fire has a processing-time timer set.
    fn has_timers(&mut self) -> bool {
        self.stages
            .iter_mut()
            .any(|s| s.input_watermark < Timestamp::MAX && s.exec.as_mut().is_some_and(|e| e.next_timer().is_some()))
    }

    /// Fires the processing-time timers that are due. True when any grouping was called.
    fn fire_timers(&mut self) -> Result<bool, RunError> {
        let now = self.clock.now();
        let mut fired = false;
        for i in 0..self.stages.len() {
            if self.stages[i].input_watermark == Timestamp::MAX {
                continue;
            }
            let Some(timer) = self.stages[i].exec.as_mut().and_then(|e| e.next_timer()) else { continue };
            if timer > now || self.stages[i].last_timer_call == Some((now, timer)) {
                continue;
            }
            self.stages[i].last_timer_call = Some((now, timer));
            self.with_stage(i, |exec, sink| exec.advance_processing_time(now, sink))?;
            fired = true;
        }
        Ok(fired)
    }
}
