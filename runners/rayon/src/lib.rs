//! The rayon runner: bounded pipelines in parallel on all cores.
//!
//! It plans the graph with core's planner (combines lifted where the panes cannot change) and runs
//! the stages in plan order, each to completion, every stage split into **partitions** that run
//! on rayon's threads, each partition with its own instance of core's [`StageExecutor`]:
//! - a source stage splits the source's elements across partitions;
//! - a grouping stage has one partition per shuffle bucket: stages writing into it partition their
//!   output by a hash of the deterministic key encoding (after the precombine of a lifted
//!   combine), so every key lands in exactly one partition, which groups it and then sees its
//!   input watermark jump to +∞ (batch is streaming with a perfect watermark);
//! - a read stage (Flatten, Reshuffle, ParDo with side inputs) deals its input batches out to the
//!   partitions; every partition gets all of each side input, which is complete by then.
//!
//! Batches stay typed in memory between stages: nothing is encoded on the way. Unbounded sources,
//! TestStream and processing-time triggers are refused before anything runs.
//!
//! Architecture invariant: depends on `runnel-model` and `runnel-runner-core` only; it schedules
//! partitions, core executes them.
#![warn(missing_docs)]

use rayon::prelude::*;
use runnel_model::exec::{Batch, Bindings, ElementOps, Executable, Job};
use runnel_model::metrics::MetricsSnapshot;
use runnel_model::{urns, Graph, Timestamp};
use runnel_runner_core::capability::{self, Capabilities, Capability};
use runnel_runner_core::plan::{OutputKind, Plan, PlanOptions, RootKind};
use runnel_runner_core::runner::{Clock, WallClock};
use runnel_runner_core::stage::{guarded, output_ops, SideProgress, StageExecutor, StageSink};
use runnel_runner_core::{JobResult, JobState, ProgressSink, RunError, Runner, RunnerOptions};
mod spill;

use spill::{MemoryBudget, Run, SpillDir};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// The rayon runner's own options.
#[derive(Clone, Debug, Default)]
pub struct RayonOptions {
    /// Partitions per stage; by default two per rayon thread (so uneven partitions balance).
    pub partitions: Option<usize>,
    /// Bytes of shuffle data the job may hold in memory before groupings spill to disk; by default
    /// half the memory available when the job starts.
    pub memory_budget: Option<u64>,
    /// Where spill files go (in a directory of their own, removed when the job ends); by default
    /// the system's temporary directory.
    pub temp_dir: Option<PathBuf>,
}

/// The rayon runner.
#[derive(Clone, Debug, Default)]
pub struct RayonRunner {
    /// Its options.
    pub options: RayonOptions,
}

impl RayonRunner {
    /// A rayon runner with these options.
    pub fn new(options: RayonOptions) -> Self {
        RayonRunner { options }
    }
}

impl Runner for RayonRunner {
    fn name(&self) -> &'static str {
        "rayon"
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities::of(&[Capability::Retractions, Capability::RunAsync, Capability::UserWindowFns])
    }

    fn plan_options(&self) -> PlanOptions {
        PlanOptions { lift_combines: true }
    }

    fn run(&self, job: Job, options: &RunnerOptions) -> Result<JobResult, RunError> {
        job.graph.validate()?;
        capability::check(self.name(), &self.capabilities(), &job.graph)?;
        let plan = runnel_runner_core::plan::plan(&job.graph, self.plan_options())?;
        let partitions = self.options.partitions.unwrap_or(2 * rayon::current_num_threads()).max(1);
        let clock: Arc<dyn Clock> = options.clock.clone().unwrap_or_else(|| Arc::new(WallClock));
        let budget = MemoryBudget::new(self.options.memory_budget.unwrap_or_else(spill::default_budget));
        // Dropped on every way out of this function, success or failure: the spill files go with it.
        let spill = SpillDir::new(self.options.temp_dir.clone());
        Execution {
            graph: &job.graph,
            plan: &plan,
            bindings: &job.bindings,
            partitions,
            clock,
            options,
            budget: &budget,
            spill: &spill,
        }
        .run()
    }
}

/// What reaches one stage from the stages before it.
#[derive(Default)]
struct Inbox {
    /// Per main input port: batches (for a grouping: one list per partition).
    inputs: Vec<Vec<Vec<Batch>>>,
    /// Per side input: every batch of it.
    sides: Vec<Vec<Batch>>,
    /// A grouping's input spilled to disk: per partition, its sorted runs.
    runs: Vec<Vec<Run>>,
    /// The element operations of the spilled records (those of the shuffle writing them).
    spill_ops: Option<Arc<dyn ElementOps>>,
    /// Bytes of `inputs` counted in the memory budget.
    held: u64,
}

/// The work of one partition of a stage.
struct Task {
    /// `(port, batch)` to push in order.
    inputs: Vec<(usize, Batch)>,
    /// Each side input whole (this partition's copy).
    sides: Vec<Vec<Batch>>,
    /// A grouping partition's spilled runs, merged with `inputs` key by key.
    runs: Vec<Run>,
}

/// What one partition produced: per stage output, its batches (per partition of the consuming
/// grouping for a shuffle) and the runs it spilled (likewise), and the bytes of its shuffle
/// outputs still in memory, counted in the budget.
struct Produced {
    outputs: Vec<Vec<Vec<Batch>>>,
    runs: Vec<Vec<Vec<Run>>>,
    held: Vec<u64>,
    metrics: MetricsSnapshot,
}

/// The first failure of a job, seen by every partition: once a partition fails, the others stop at their next
/// batch instead of running to the end of their input.
#[derive(Default)]
struct Failure {
    raised: AtomicBool,
    first: Mutex<Option<RunError>>,
}

impl Failure {
    /// Records `error` unless an earlier one is recorded (errors of partitions that only stopped are never the
    /// first).
    fn raise(&self, error: RunError) {
        let mut first = self.first.lock().unwrap_or_else(|p| p.into_inner());
        if first.is_none() {
            *first = Some(error);
        }
        self.raised.store(true, Ordering::SeqCst);
    }

    fn is_raised(&self) -> bool {
        self.raised.load(Ordering::Relaxed)
    }

    /// What a partition returns when it stops because another failed; never reported.
    fn stopped() -> RunError {
        RunError::Refused { runner: "rayon", reason: "stopped because another partition failed".into() }
    }

    fn take(&self) -> Option<RunError> {
        self.first.lock().unwrap_or_else(|p| p.into_inner()).take()
    }
}

/// A partition's sink: outputs kept in memory, shuffle outputs bucketed by key and spilled to
/// sorted runs when the job is over its memory budget; progress reported per batch.
struct CollectSink<'a> {
    stage: usize,
    shuffled: &'a [bool],
    ops: &'a [Arc<dyn ElementOps>],
    partitions: usize,
    outputs: Vec<Vec<Vec<Batch>>>,
    /// Per shuffle output, per bucket: the runs spilled.
    runs: Vec<Vec<Vec<Run>>>,
    /// Per output: bytes in `outputs` counted in the budget.
    held: Vec<u64>,
    budget: &'a MemoryBudget,
    spill: &'a SpillDir,
    /// The transform reading each output (named when its elements cannot be spilled).
    readers: &'a [String],
    failure: &'a Failure,
    progress: Option<&'a dyn ProgressSink>,
}

impl CollectSink<'_> {
    /// Writes every bucket of shuffle output `output` held in memory as a sorted run.
    fn spill_output(&mut self, output: usize) -> Result<(), RunError> {
        for (bucket, batches) in self.outputs[output].iter_mut().enumerate() {
            let records = spill::encode_keyed(&*self.ops[output], batches.drain(..), &self.readers[output])?;
            if !records.is_empty() {
                self.runs[output][bucket].push(self.spill.write_run(records)?);
            }
        }
        self.budget.release(std::mem::take(&mut self.held[output]));
        Ok(())
    }

    /// Spills every shuffle output held in memory if the job is over its budget.
    fn spill_if_over_budget(&mut self) -> Result<(), RunError> {
        if self.budget.is_over() {
            for output in 0..self.outputs.len() {
                if self.shuffled[output] && self.held[output] > 0 {
                    self.spill_output(output)?;
                }
            }
        }
        Ok(())
    }
}

impl StageSink for CollectSink<'_> {
    fn inspect(&mut self, producer: &str, _: &str, ops: &dyn ElementOps, batch: &mut Batch) -> Result<(), RunError> {
        if self.failure.is_raised() {
            return Err(Failure::stopped());
        }
        if let Some(progress) = self.progress {
            progress.record_batch(self.stage, producer, ops, batch);
        }
        Ok(())
    }

    fn write(&mut self, output: usize, batch: Batch) -> Result<(), RunError> {
        if self.failure.is_raised() {
            return Err(Failure::stopped());
        }
        if !self.shuffled[output] {
            self.outputs[output][0].push(batch);
            return Ok(());
        }
        let bytes = self.ops[output].estimated_memory(&batch);
        let buckets = self.ops[output].partition_by_key(batch, self.partitions).ok_or_else(|| RunError::Binding {
            transform: self.readers[output].clone(),
            message: format!("the elements of stage output #{output} are not key-value pairs"),
        })?;
        for (bucket, b) in buckets.into_iter().enumerate() {
            if self.ops[output].len(&b) > 0 {
                self.outputs[output][bucket].push(b);
            }
        }
        self.held[output] += bytes;
        if self.budget.take(bytes) {
            self.spill_output(output)?;
        }
        Ok(())
    }
}

/// Counter of a grouping transform: sorted runs of its input spilled to disk (only when it spilled).
pub const SPILLED_RUNS: &str = "rayon_spilled_runs";
/// Counter of a grouping transform: bytes of its input spilled to disk (only when it spilled).
pub const SPILLED_BYTES: &str = "rayon_spilled_bytes";

/// What every partition of a stage shares.
struct StageContext<'a> {
    id: usize,
    shuffled: &'a [bool],
    ops: &'a [Arc<dyn ElementOps>],
    readers: &'a [String],
    complete: &'a [SideProgress],
    failure: &'a Failure,
    spill_ops: Option<&'a Arc<dyn ElementOps>>,
}

struct Execution<'a> {
    graph: &'a Graph,
    plan: &'a Plan,
    bindings: &'a Bindings,
    partitions: usize,
    clock: Arc<dyn Clock>,
    options: &'a RunnerOptions,
    budget: &'a MemoryBudget,
    spill: &'a SpillDir,
}

impl Execution<'_> {
    fn run(&self) -> Result<JobResult, RunError> {
        let mut inboxes: Vec<Inbox> =
            self.plan
                .stages
                .iter()
                .map(|s| Inbox {
                    inputs: s
                        .inputs
                        .iter()
                        .map(|i| {
                            if i.shuffled {
                                (0..self.partitions).map(|_| Vec::new()).collect()
                            } else {
                                vec![Vec::new()]
                            }
                        })
                        .collect(),
                    sides: s.side_inputs.iter().map(|_| Vec::new()).collect(),
                    runs: (0..self.partitions).map(|_| Vec::new()).collect(),
                    spill_ops: None,
                    held: 0,
                })
                .collect();
        let mut metrics = MetricsSnapshot::default();
        for id in 0..self.plan.stages.len() {
            if self.options.cancel.is_cancelled() {
                return Ok(JobResult { state: JobState::Cancelled, metrics });
            }
            let inbox = std::mem::take(&mut inboxes[id]);
            // What this stage reads leaves the budget: a grouping takes it a partition (or, spilled, a chunk) at a
            // time.
            self.budget.release(inbox.held);
            let stage = &self.plan.stages[id];
            let output_ops: Vec<Arc<dyn ElementOps>> = (0..stage.outputs.len())
                .map(|o| output_ops(self.plan, id, o, self.bindings))
                .collect::<Result<_, _>>()?;
            let produced = self.run_stage(id, inbox, &output_ops)?;
            for p in produced {
                metrics.merge(&p.metrics);
                for (o, runs) in p.runs.into_iter().enumerate() {
                    let target = &mut inboxes[stage.outputs[o].to_stage];
                    if runs.iter().any(|r| !r.is_empty()) {
                        target.spill_ops = Some(output_ops[o].clone());
                    }
                    for (bucket, r) in runs.into_iter().enumerate() {
                        target.runs[bucket].extend(r);
                    }
                    target.held += p.held[o];
                }
                for (o, batches) in p.outputs.into_iter().enumerate() {
                    let out = &stage.outputs[o];
                    let target = &mut inboxes[out.to_stage];
                    match out.kind {
                        OutputKind::View { side_input } => {
                            target.sides[side_input].extend(batches.into_iter().flatten())
                        }
                        OutputKind::Shuffle { .. } => {
                            for (bucket, b) in batches.into_iter().enumerate() {
                                target.inputs[out.to_input][bucket].extend(b);
                            }
                        }
                        OutputKind::Collection => target.inputs[out.to_input][0].extend(batches.into_iter().flatten()),
                    }
                }
            }
        }
        Ok(JobResult { state: JobState::Done, metrics })
    }

    /// Deals a stage's input out to its partitions.
    fn tasks(&self, id: usize, inbox: Inbox) -> Result<Vec<Task>, RunError> {
        let stage = &self.plan.stages[id];
        let side_ops: Vec<Arc<dyn ElementOps>> =
            stage.side_inputs.iter().map(|s| self.ops(&stage.root, &s.pcollection)).collect::<Result<_, _>>()?;
        let copy_sides = |sides: &[Vec<Batch>]| -> Vec<Vec<Batch>> {
            sides.iter().zip(&side_ops).map(|(bs, ops)| bs.iter().map(|b| ops.clone_batch(b)).collect()).collect()
        };
        let mut tasks: Vec<Task> = Vec::new();
        match stage.root_kind {
            RootKind::Source => {
                let root = &self.graph.transforms[&stage.root];
                let Some(Executable::Create { elements }) = self.bindings.transforms.get(&stage.root) else {
                    return Err(RunError::Binding {
                        transform: stage.root.clone(),
                        message: format!("the rayon runner runs no '{}' source", root.urn),
                    });
                };
                debug_assert_eq!(root.urn, urns::CREATE);
                let out = root
                    .outputs
                    .values()
                    .next()
                    .ok_or_else(|| RunError::Binding { transform: stage.root.clone(), message: "no output".into() })?;
                let ops = self.ops(&stage.root, out)?;
                let all = guarded(&stage.root, || elements())?;
                let per = ops.len(&all).div_ceil(self.partitions).max(1);
                for batch in ops.split(all, per).into_iter().filter(|b| ops.len(b) > 0) {
                    tasks.push(Task { inputs: vec![(0, batch)], sides: Vec::new(), runs: Vec::new() });
                }
            }
            RootKind::Grouping => {
                let mut ports = inbox.inputs.into_iter();
                let buckets = ports.next().unwrap_or_default();
                for (bucket, runs) in buckets.into_iter().zip(inbox.runs) {
                    tasks.push(Task { inputs: bucket.into_iter().map(|b| (0, b)).collect(), sides: Vec::new(), runs });
                }
            }
            RootKind::Read => {
                // Twice as many tasks as partitions, and batches cut so that there are pieces enough for all of
                // them: a reshuffle of a few file ranges must still keep every core busy, and rayon balances
                // uneven tasks by stealing.
                let count = 2 * self.partitions;
                let port_ops: Vec<Arc<dyn ElementOps>> =
                    stage.inputs.iter().map(|i| self.ops(&stage.root, &i.pcollection)).collect::<Result<_, _>>()?;
                let total: usize = inbox
                    .inputs
                    .iter()
                    .zip(&port_ops)
                    .map(|(l, ops)| l.iter().flatten().map(|b| ops.len(b)).sum::<usize>())
                    .sum();
                let piece = total.div_ceil(count).max(1);
                tasks = (0..count).map(|_| Task { inputs: Vec::new(), sides: Vec::new(), runs: Vec::new() }).collect();
                let mut next = 0;
                for ((port, lists), ops) in inbox.inputs.into_iter().enumerate().zip(&port_ops) {
                    for batch in lists.into_iter().flatten() {
                        let pieces = if ops.len(&batch) > piece { ops.split(batch, piece) } else { vec![batch] };
                        for b in pieces {
                            tasks[next % count].inputs.push((port, b));
                            next += 1;
                        }
                    }
                }
                tasks.retain(|t| !t.inputs.is_empty());
                for task in &mut tasks {
                    task.sides = copy_sides(&inbox.sides);
                }
            }
        }
        Ok(tasks)
    }

    fn ops(&self, transform: &str, pc: &str) -> Result<Arc<dyn ElementOps>, RunError> {
        self.bindings.elements.get(pc).cloned().ok_or_else(|| RunError::Binding {
            transform: transform.to_string(),
            message: format!("no element operations for pcollection '{pc}'"),
        })
    }

    /// Runs every partition of stage `id`, whose outputs have the element operations `ops`.
    fn run_stage(&self, id: usize, mut inbox: Inbox, ops: &[Arc<dyn ElementOps>]) -> Result<Vec<Produced>, RunError> {
        let stage = &self.plan.stages[id];
        let shuffled: Vec<bool> = stage.outputs.iter().map(|o| matches!(o.kind, OutputKind::Shuffle { .. })).collect();
        let readers: Vec<String> = stage.outputs.iter().map(|o| self.plan.stages[o.to_stage].root.clone()).collect();
        let spill_ops = inbox.spill_ops.take();
        let tasks = self.tasks(id, inbox)?;
        let complete = vec![SideProgress { watermark: Timestamp::MAX, complete: true }; stage.side_inputs.len()];
        let failure = Failure::default();
        let context = StageContext {
            id,
            shuffled: &shuffled,
            ops,
            readers: &readers,
            complete: &complete,
            failure: &failure,
            spill_ops: spill_ops.as_ref(),
        };
        let produced: Result<Vec<Produced>, ()> = tasks
            .into_par_iter()
            .map(|task| {
                if failure.is_raised() {
                    return Err(());
                }
                // A partition stopped by another's failure errs only after that failure is recorded, so the
                // recorded error is the first real one.
                self.run_partition(&context, task).map_err(|e| failure.raise(e))
            })
            .collect();
        produced.map_err(|()| failure.take().unwrap_or_else(Failure::stopped))
    }

    /// Empty lists per stage output: one per partition of the consuming grouping for a shuffle,
    /// `unshuffled` for any other output.
    fn per_output<T>(&self, shuffled: &[bool], unshuffled: usize) -> Vec<Vec<Vec<T>>> {
        shuffled
            .iter()
            .map(|s| (0..if *s { self.partitions } else { unshuffled }).map(|_| Vec::new()).collect())
            .collect()
    }

    /// Runs one partition of a stage with its own stage executor (a grouping partition with spilled input: one
    /// executor per chunk of keys).
    fn run_partition(&self, cx: &StageContext<'_>, mut task: Task) -> Result<Produced, RunError> {
        let outputs = cx.shuffled.len();
        let mut sink = CollectSink {
            stage: cx.id,
            shuffled: cx.shuffled,
            ops: cx.ops,
            partitions: self.partitions,
            outputs: self.per_output(cx.shuffled, 1),
            runs: self.per_output(cx.shuffled, 0),
            held: vec![0; outputs],
            budget: self.budget,
            spill: self.spill,
            readers: cx.readers,
            failure: cx.failure,
            progress: self.options.progress.as_deref(),
        };
        let mut metrics = MetricsSnapshot::default();
        let runs = std::mem::take(&mut task.runs);
        if runs.is_empty() {
            self.run_executor(cx, task, &mut sink, &mut metrics)?;
        } else {
            self.run_spilled(cx, task, &runs, &mut sink, &mut metrics)?;
        }
        // A partition that ends with the job over budget hands its shuffle output over on disk.
        sink.spill_if_over_budget()?;
        Ok(Produced { outputs: sink.outputs, runs: sink.runs, held: sink.held, metrics })
    }

    /// Runs `task` through a new executor of the stage, tearing it down whatever happens.
    fn run_executor(
        &self,
        cx: &StageContext<'_>,
        task: Task,
        sink: &mut CollectSink<'_>,
        metrics: &mut MetricsSnapshot,
    ) -> Result<(), RunError> {
        let mut exec = StageExecutor::new(self.plan, cx.id, self.graph, self.bindings)?;
        let outcome = self.run_task(&mut exec, task, cx.complete, sink);
        let teardown = exec.teardown();
        outcome?;
        teardown?;
        exec.drain_metrics(metrics);
        Ok(())
    }

    /// A grouping partition whose input was partly spilled: merges the runs with what is in memory, key by key,
    /// and groups one chunk of whole keys at a time, each in a new executor (in batch a key's panes depend on its
    /// own elements only, so chunks are as independent as partitions).
    fn run_spilled(
        &self,
        cx: &StageContext<'_>,
        task: Task,
        runs: &[Run],
        sink: &mut CollectSink<'_>,
        metrics: &mut MetricsSnapshot,
    ) -> Result<(), RunError> {
        let root = &self.plan.stages[cx.id].root;
        let ops = cx.spill_ops.ok_or_else(|| RunError::Binding {
            transform: root.clone(),
            message: "spilled runs without the element operations that wrote them".into(),
        })?;
        let records = spill::encode_keyed(&**ops, task.inputs.into_iter().map(|(_, batch)| batch), root)?;
        let threads = rayon::current_num_threads() as u64;
        // A chunk is decoded and grouped beside its bytes: a few times its encoded size per thread.
        let chunk_bytes = usize::try_from((self.budget.limit() / (8 * threads)).max(4096)).unwrap_or(usize::MAX);
        spill::merge_by_key(runs, records, chunk_bytes, |bytes| {
            if cx.failure.is_raised() {
                return Err(Failure::stopped());
            }
            let batch = ops.decode(&bytes).map_err(|e| RunError::user_code(root, e))?;
            let chunk = Task { inputs: vec![(0, batch)], sides: Vec::new(), runs: Vec::new() };
            self.run_executor(cx, chunk, sink, metrics)
        })?;
        metrics.inc_counter(root, SPILLED_RUNS, runs.len() as i64);
        metrics.inc_counter(root, SPILLED_BYTES, runs.iter().map(|r| r.bytes as i64).sum());
        Ok(())
    }

    fn run_task(
        &self,
        exec: &mut StageExecutor,
        task: Task,
        complete: &[SideProgress],
        sink: &mut CollectSink<'_>,
    ) -> Result<(), RunError> {
        let kind = exec.stage().root_kind;
        for (index, batches) in task.sides.into_iter().enumerate() {
            for b in batches {
                exec.add_side_input(index, b)?;
            }
        }
        let now = self.clock.now();
        for (port, batch) in task.inputs {
            if self.options.cancel.is_cancelled() {
                return Ok(());
            }
            match kind {
                RootKind::Source => exec.process_source(batch, sink)?,
                _ => exec.process_input(port, batch, complete, now, sink)?,
            }
        }
        if kind == RootKind::Grouping {
            // Batch: all input is in, the watermark jumps to +∞ and every window fires and expires.
            exec.advance_watermark(Timestamp::MAX, self.clock.now(), sink)?;
        }
        Ok(())
    }
}
