//! The physical plan: a graph cut into **stages** of fused transforms, as plain data.
//!
//! Every runner executes the same plan; they differ only in how batches move between stages (a
//! queue in the direct runner, rayon tasks, the Fn API's data plane). A stage maps one-to-one onto
//! a Beam ProcessBundleDescriptor: one root that feeds it (a source, a grouping, or a read of
//! materialised PCollections), the element-wise transforms fused behind the root, and the stage's
//! outputs (a shuffle write keyed by the deterministic key encoding, a materialised side-input
//! view, or a collection another stage reads).
//!
//! Rules (see [`plan`]):
//! - sources (Create, TestStream, ReadUnbounded) start a stage;
//! - GroupByKey and Combine start a stage fed by a shuffle; a Combine of bounded input whose
//!   windowing allows it ([`crate::lift::allows_lifting`]) is **lifted** when the runner asks for
//!   it: the producing stage folds each bundle into accumulators before the shuffle, and the
//!   grouping merges them (unbounded input is not lifted: data dropped as late after the shuffle
//!   would be counted per accumulator, not per element; nor is a combine whose input carries
//!   retractions, `CombinePayload::retracting_input`);
//! - a ParDo with side inputs starts a stage, since its main input may have to wait until the side
//!   inputs are ready for its windows; Reshuffle starts a stage (a redistribution point); a Flatten
//!   starts one unless all its inputs come from one stage;
//! - every other ParDo, WindowInto and Flatten is fused into the stage producing its input.

use crate::RunError;
use runnel_model::{urns, Boundedness, Graph, ParDoPayload};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

/// How a runner wants its graphs planned.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanOptions {
    /// Lift combines before their shuffle where the windowing allows it.
    pub lift_combines: bool,
}

/// A graph as stages, in an order where every stage comes after the stages it reads.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    /// The options it was planned with.
    pub options: PlanOptions,
    /// The stages; a stage's id is its index.
    pub stages: Vec<Stage>,
}

/// What feeds a stage.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RootKind {
    /// A source transform produces the stage's data.
    Source,
    /// A GroupByKey or Combine per key: the runner groups the shuffled input per key and window
    /// (the shared grouping of [`crate::group`]) and the stage continues from its output.
    Grouping,
    /// The root transform (Flatten, Reshuffle, a ParDo with side inputs) reads materialised
    /// PCollections of other stages.
    Read,
}

/// One stage: a root and the transforms fused behind it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Stage {
    /// Index in [`Plan::stages`].
    pub id: usize,
    /// The transform that feeds the stage.
    pub root: String,
    /// What kind of root it is.
    pub root_kind: RootKind,
    /// Every transform the stage runs, the root first, in topological order.
    pub transforms: Vec<String>,
    /// Main inputs read from other stages (the root's inputs; none for a source).
    pub inputs: Vec<StageInput>,
    /// Side inputs of the root ParDo.
    pub side_inputs: Vec<SideInputRead>,
    /// What leaves the stage, one entry per consuming input of another stage.
    pub outputs: Vec<StageOutput>,
}

/// A main input of a stage.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StageInput {
    /// The PCollection read.
    pub pcollection: String,
    /// The root's local input tag.
    pub tag: String,
    /// The stage producing it.
    pub from_stage: usize,
    /// Read from a shuffle (grouping roots) or as a collection.
    pub shuffled: bool,
}

/// A side input of a stage's root ParDo.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SideInputRead {
    /// The side input's tag in the ParDo's payload.
    pub tag: String,
    /// The PCollection behind the view.
    pub pcollection: String,
    /// The stage producing it.
    pub from_stage: usize,
}

/// Where a stage output goes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum OutputKind {
    /// A shuffle write into a grouping, keyed by the deterministic encoding of the key.
    Shuffle {
        /// The key's coder id.
        key_coder: String,
        /// Whether a precombine folds the data into accumulators before the write.
        lifted: bool,
    },
    /// The data of a side-input view, materialised for the consuming stage.
    View {
        /// Index in the consuming stage's [`Stage::side_inputs`].
        side_input: usize,
    },
    /// A collection the consuming stage reads as it is.
    Collection,
}

/// One output of a stage.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StageOutput {
    /// The PCollection written.
    pub pcollection: String,
    /// The consuming stage.
    pub to_stage: usize,
    /// Index in the consuming stage's [`Stage::inputs`] (for views: 0, see the kind).
    pub to_input: usize,
    /// Shuffle, view or collection.
    #[serde(flatten)]
    pub kind: OutputKind,
}

fn is_source(urn: &str) -> bool {
    matches!(urn, urns::CREATE | urns::TEST_STREAM | urns::READ_UNBOUNDED)
}

fn is_grouping(urn: &str) -> bool {
    matches!(urn, urns::GROUP_BY_KEY | urns::COMBINE_PER_KEY)
}

/// The side input tags of a ParDo (empty for any other transform).
pub fn side_input_tags(graph: &Graph, transform: &str) -> Result<Vec<String>, RunError> {
    let t = &graph.transforms[transform];
    if t.urn != urns::PAR_DO {
        return Ok(Vec::new());
    }
    Ok(t.payload_as::<ParDoPayload>()?.side_inputs.into_iter().map(|s| s.tag).collect())
}

/// Cuts a validated graph into stages (see the module documentation for the rules).
pub fn plan(graph: &Graph, options: PlanOptions) -> Result<Plan, RunError> {
    let order = graph.leaf_order()?;
    let mut producer: BTreeMap<&str, &str> = BTreeMap::new();
    for name in &order {
        for pc in graph.transforms[name].outputs.values() {
            producer.insert(pc, name);
        }
    }
    let mut stage_of: BTreeMap<String, usize> = BTreeMap::new();
    let mut stages: Vec<Stage> = Vec::new();
    let producing_stage = |stage_of: &BTreeMap<String, usize>, pc: &str| -> Result<usize, RunError> {
        let p = producer.get(pc).ok_or_else(|| RunError::Binding {
            transform: "<plan>".into(),
            message: format!("pcollection '{pc}' has no producer"),
        })?;
        Ok(stage_of[*p])
    };
    for name in &order {
        let t = &graph.transforms[name];
        let sides = side_input_tags(graph, name)?;
        let main: Vec<(&String, &String)> = t.inputs.iter().filter(|(tag, _)| !sides.contains(tag)).collect();
        let fused_into = if is_source(&t.urn) || is_grouping(&t.urn) || !sides.is_empty() || t.urn == urns::RESHUFFLE {
            None
        } else {
            let from: Vec<usize> =
                main.iter().map(|(_, pc)| producing_stage(&stage_of, pc)).collect::<Result<_, _>>()?;
            match from.split_first() {
                Some((first, rest)) if rest.iter().all(|s| s == first) => Some(*first),
                _ if t.urn == urns::FLATTEN => None,
                _ => {
                    return Err(RunError::Binding {
                        transform: name.clone(),
                        message: format!("cannot plan a '{}' with {} main inputs", t.urn, main.len()),
                    })
                }
            }
        };
        if let Some(s) = fused_into {
            stages[s].transforms.push(name.clone());
            stage_of.insert(name.clone(), s);
            continue;
        }
        let id = stages.len();
        let root_kind = if is_source(&t.urn) {
            RootKind::Source
        } else if is_grouping(&t.urn) {
            RootKind::Grouping
        } else {
            RootKind::Read
        };
        let mut inputs = Vec::new();
        for (tag, pc) in &main {
            inputs.push(StageInput {
                pcollection: (*pc).clone(),
                tag: (*tag).clone(),
                from_stage: producing_stage(&stage_of, pc)?,
                shuffled: root_kind == RootKind::Grouping,
            });
        }
        let mut side_inputs = Vec::new();
        for tag in &sides {
            let pc = &t.inputs[tag];
            side_inputs.push(SideInputRead {
                tag: tag.clone(),
                pcollection: pc.clone(),
                from_stage: producing_stage(&stage_of, pc)?,
            });
        }
        stages.push(Stage {
            id,
            root: name.clone(),
            root_kind,
            transforms: vec![name.clone()],
            inputs,
            side_inputs,
            outputs: Vec::new(),
        });
        stage_of.insert(name.clone(), id);
    }
    // Outputs: every read of another stage, in the consumer's order.
    for id in 0..stages.len() {
        let root = &graph.transforms[&stages[id].root];
        let input = root.inputs.values().next();
        let lifted = options.lift_combines
            && root.urn == urns::COMBINE_PER_KEY
            && input.and_then(|pc| graph.windowing_of(pc)).is_some_and(crate::lift::allows_lifting)
            && !root.payload_as::<runnel_model::CombinePayload>().is_ok_and(|p| p.retracting_input)
            // In streaming, data dropped as late after the shuffle would be counted per
            // accumulator rather than per element: lift bounded input only.
            && input.and_then(|pc| graph.pcollections.get(pc)).is_some_and(|p| p.is_bounded == Boundedness::Bounded);
        for k in 0..stages[id].inputs.len() {
            let input = stages[id].inputs[k].clone();
            let kind = if input.shuffled {
                OutputKind::Shuffle { key_coder: key_coder(graph, &input.pcollection), lifted }
            } else {
                OutputKind::Collection
            };
            stages[input.from_stage].outputs.push(StageOutput {
                pcollection: input.pcollection,
                to_stage: id,
                to_input: k,
                kind,
            });
        }
        for k in 0..stages[id].side_inputs.len() {
            let side = stages[id].side_inputs[k].clone();
            stages[side.from_stage].outputs.push(StageOutput {
                pcollection: side.pcollection,
                to_stage: id,
                to_input: 0,
                kind: OutputKind::View { side_input: k },
            });
        }
    }
    Ok(Plan { options, stages })
}

/// The key coder of a keyed PCollection (its KV coder's first component).
fn key_coder(graph: &Graph, pc: &str) -> String {
    let coder_id = graph.pcollections.get(pc).map(|p| p.coder_id.clone()).unwrap_or_default();
    match graph.coders.get(&coder_id) {
        Some(c) if c.urn == urns::KV_CODER && !c.components.is_empty() => c.components[0].clone(),
        _ => coder_id,
    }
}

/// A short name of a transform's URN, for people.
pub fn urn_label(urn: &str) -> &str {
    match urn {
        urns::CREATE => "Create",
        urns::PAR_DO => "ParDo",
        urns::GROUP_BY_KEY => "GroupByKey",
        urns::COMBINE_PER_KEY => "CombinePerKey",
        urns::FLATTEN => "Flatten",
        urns::WINDOW_INTO => "WindowInto",
        urns::RESHUFFLE => "Reshuffle",
        urns::TEST_STREAM => "TestStream",
        urns::READ_UNBOUNDED => "ReadUnbounded",
        other => other,
    }
}

/// A plan as text a person reads in one screen (what `--explain` prints).
pub struct Explain<'a> {
    /// The plan.
    pub plan: &'a Plan,
    /// The graph it was made from (for URNs and side input tags).
    pub graph: &'a Graph,
    /// The runner it is for.
    pub runner: &'a str,
}

impl fmt::Display for Explain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (plan, graph) = (self.plan, self.graph);
        let shuffles = plan.stages.iter().filter(|s| s.root_kind == RootKind::Grouping).count();
        let lifted = plan
            .stages
            .iter()
            .flat_map(|s| &s.outputs)
            .filter(|o| matches!(o.kind, OutputKind::Shuffle { lifted: true, .. }))
            .count();
        writeln!(
            f,
            "Plan for the {} runner: {} stages, {} shuffles, {} lifted combines (combine lifting {}).",
            self.runner,
            plan.stages.len(),
            shuffles,
            lifted,
            if plan.options.lift_combines { "on" } else { "off" }
        )?;
        writeln!(
            f,
            "Each stage: its root, what it reads (<) and writes (>), then the transforms fused behind the root (+)."
        )?;
        for s in &plan.stages {
            let root = &graph.transforms[&s.root];
            let what = match s.root_kind {
                RootKind::Source => "source",
                RootKind::Grouping => "grouping",
                RootKind::Read => "read",
            };
            let mut line = format!("S{} {what} {} [{}]", s.id, s.root, urn_label(&root.urn));
            for input in &s.inputs {
                let how = if input.shuffled { "shuffle " } else { "" };
                line.push_str(&format!("  < {how}S{}", input.from_stage));
            }
            for side in &s.side_inputs {
                line.push_str(&format!("  < view S{}", side.from_stage));
            }
            for o in &s.outputs {
                match &o.kind {
                    OutputKind::Shuffle { key_coder, lifted } => line.push_str(&format!(
                        "  > S{} shuffle (key {key_coder}{})",
                        o.to_stage,
                        if *lifted { ", precombined" } else { "" }
                    )),
                    OutputKind::View { .. } => line.push_str(&format!("  > S{} view", o.to_stage)),
                    OutputKind::Collection => line.push_str(&format!("  > S{}", o.to_stage)),
                }
            }
            writeln!(f, "{line}")?;
            // The fused transforms, wrapped at about 100 columns.
            let mut fused = String::new();
            for t in s.transforms.iter().skip(1) {
                let item = format!("{t} [{}]", urn_label(&graph.transforms[t].urn));
                if !fused.is_empty() && fused.len() + item.len() > 96 {
                    writeln!(f, "   + {fused}")?;
                    fused.clear();
                }
                if !fused.is_empty() {
                    fused.push_str(", ");
                }
                fused.push_str(&item);
            }
            if !fused.is_empty() {
                writeln!(f, "   + {fused}")?;
            }
        }
        Ok(())
    }
}
