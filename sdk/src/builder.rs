//! The construction state behind a [`Pipeline`]: the graph and bindings being built, composite
//! scopes, interned coders and windowing strategies, construction errors and warnings.

use crate::options::PipelineOptions;
use runnel_model::exec::{Bindings, ElementOps, Executable};
use runnel_model::{urns, Boundedness, Coder, Graph, PCollectionNode, Transform, WindowingStrategy};
use runnel_runner_core::typed::TypedOps;
use runnel_runner_core::{Data, Key};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

/// One level of composite nesting while a transform expands.
pub(crate) struct Scope {
    pub(crate) full_name: String,
    pub(crate) children: Vec<String>,
    pub(crate) primitive: bool,
}

pub(crate) struct Builder {
    pub(crate) graph: Graph,
    pub(crate) bindings: Bindings,
    pub(crate) scopes: Vec<Scope>,
    pub(crate) errors: Vec<String>,
    pub(crate) warnings: Vec<String>,
    pub(crate) coder_ids: BTreeMap<Coder, String>,
    pub(crate) strategy_ids: Vec<(WindowingStrategy, String)>,
    /// The code of user window functions, by windowing strategy id (groupings need it to merge).
    pub(crate) window_fns: BTreeMap<String, Arc<dyn runnel_model::exec::WindowAssigner>>,
    pub(crate) names: BTreeSet<String>,
    pub(crate) options: PipelineOptions,
    /// PCollections that may carry retractions: outputs of groupings in retracting mode, and
    /// everything derived from them element-wise, unless rendered ([`Builder::mark_plain`]).
    pub(crate) retracting: BTreeSet<String>,
}

/// What a primitive transform declares when it is added to the graph.
pub(crate) struct PrimitiveSpec {
    pub urn: &'static str,
    pub inputs: Vec<(String, String)>,
    pub payload: serde_json::Value,
    pub executable: Option<Executable>,
}

/// One output of a primitive: its local tag, coder, windowing and element operations.
pub(crate) struct OutputSpec {
    pub tag: String,
    pub coder: String,
    pub strategy: String,
    pub bounded: Boundedness,
    pub ops: Arc<dyn ElementOps>,
}

impl Builder {
    /// The state of a new pipeline with an empty `graph`.
    pub(crate) fn new(graph: Graph, options: PipelineOptions) -> Self {
        Builder {
            graph,
            bindings: Bindings::default(),
            scopes: Vec::new(),
            errors: Vec::new(),
            warnings: Vec::new(),
            coder_ids: BTreeMap::new(),
            strategy_ids: Vec::new(),
            window_fns: BTreeMap::new(),
            names: BTreeSet::new(),
            options,
            retracting: BTreeSet::new(),
        }
    }

    /// The graph without coders that nothing refers to any more (a PCollection's coder is
    /// replaced when a grouping needs its key-value form).
    pub(crate) fn finished_graph(&self) -> Graph {
        let mut graph = self.graph.clone();
        let mut used: BTreeSet<String> = graph.pcollections.values().map(|p| p.coder_id.clone()).collect();
        for t in graph.transforms.values().filter(|t| t.urn == urns::COMBINE_PER_KEY) {
            if let Ok(payload) = t.payload_as::<runnel_model::CombinePayload>() {
                used.insert(payload.accumulator_coder);
            }
        }
        let mut todo: Vec<String> = used.iter().cloned().collect();
        while let Some(id) = todo.pop() {
            for c in graph.coders.get(&id).map(|c| c.components.clone()).unwrap_or_default() {
                if used.insert(c.clone()) {
                    todo.push(c);
                }
            }
        }
        graph.coders.retain(|id, _| used.contains(id));
        graph
    }

    /// Registers the primitive that the innermost transform being applied expands to, and
    /// returns the ids of its outputs.
    pub(crate) fn add_primitive(&mut self, spec: PrimitiveSpec, outputs: Vec<OutputSpec>) -> Vec<String> {
        let Some(scope) = self.scopes.last_mut() else {
            self.errors.push(format!("a {} was added outside of apply()", spec.urn));
            return Vec::new();
        };
        if scope.primitive || !scope.children.is_empty() {
            self.errors.push(format!(
                "transform '{}' expands to more than one primitive: apply each under its own name",
                scope.full_name
            ));
        }
        scope.primitive = true;
        let name = scope.full_name.clone();
        let retracting = self.outputs_retract(spec.urn, spec.inputs.iter().map(|(_, id)| id.as_str()));
        let mut out_map = BTreeMap::new();
        let mut ids = Vec::new();
        for o in outputs {
            let id = format!("{name}.{}", o.tag);
            self.graph.pcollections.insert(
                id.clone(),
                PCollectionNode {
                    unique_name: id.clone(),
                    coder_id: o.coder,
                    windowing_strategy_id: o.strategy,
                    is_bounded: o.bounded,
                },
            );
            self.bindings.elements.insert(id.clone(), o.ops);
            if retracting {
                self.retracting.insert(id.clone());
            }
            out_map.insert(o.tag, id.clone());
            ids.push(id);
        }
        if let Some(exe) = spec.executable {
            self.bindings.transforms.insert(name.clone(), exe);
        }
        self.graph.transforms.insert(
            name.clone(),
            Transform {
                unique_name: name,
                urn: spec.urn.to_string(),
                inputs: spec.inputs.into_iter().collect(),
                outputs: out_map,
                payload: spec.payload,
                subtransforms: Vec::new(),
            },
        );
        ids
    }

    /// Whether the outputs of a primitive `urn` reading `inputs` may carry retractions: a
    /// grouping's when its input is windowed in retracting mode (it retracts its own panes, and
    /// applies retractions it receives); any other transform's when one of its inputs may.
    fn outputs_retract<'a>(&self, urn: &str, mut inputs: impl Iterator<Item = &'a str>) -> bool {
        if urn == urns::GROUP_BY_KEY || urn == urns::COMBINE_PER_KEY {
            inputs.any(|pc| {
                self.graph
                    .windowing_of(pc)
                    .is_some_and(|ws| ws.accumulation_mode == runnel_model::AccumulationMode::Retracting)
            })
        } else {
            inputs.any(|pc| self.retracting.contains(pc))
        }
    }

    /// Whether PCollection `pc` may carry retractions.
    pub(crate) fn is_retracting(&self, pc: &str) -> bool {
        self.retracting.contains(pc)
    }

    /// Declares that `pc` carries no retractions: its producer renders them as plain values.
    pub(crate) fn mark_plain(&mut self, pc: &str) {
        self.retracting.remove(pc);
    }

    /// Records a construction error for `transform` reading retracting input it cannot apply.
    pub(crate) fn refuse_retractions(&mut self, transform: &str, input: &str, why: &str) {
        self.errors.push(format!(
            "transform '{transform}': its input {input} carries retractions (it comes from a grouping in \
             retracting mode), and {why}"
        ));
    }

    /// The unique name of the transform being expanded.
    pub(crate) fn current_name(&self) -> String {
        self.scopes.last().map(|s| s.full_name.clone()).unwrap_or_default()
    }

    /// Beam's safety check: a trigger that can finish closes its window, and later data for it
    /// is dropped. Recorded as a warning (see [`Pipeline::warnings`]), or as a construction
    /// error when the options refuse such triggers.
    pub(crate) fn trigger_may_finish(&mut self, transform: &str, trigger: &runnel_model::Trigger) {
        let message = format!(
            "transform '{transform}': trigger {trigger:?} may finish, after which data arriving for its window \
             is dropped (counted in dropped_due_to_closed_window); wrap it in Repeatedly to keep firing"
        );
        tracing::warn!("{message}");
        if self.options.refuse_unsafe_triggers {
            self.errors.push(message);
        } else {
            self.warnings.push(message);
        }
    }

    pub(crate) fn error(&mut self, message: String) {
        self.errors.push(message);
    }

    fn intern_coder(&mut self, coder: Coder) -> String {
        if let Some(id) = self.coder_ids.get(&coder) {
            return id.clone();
        }
        let id = format!("c{}", self.coder_ids.len());
        self.graph.coders.insert(id.clone(), coder.clone());
        self.coder_ids.insert(coder, id.clone());
        id
    }

    /// The default serde coder of `T`.
    pub(crate) fn serde_coder<T: 'static>(&mut self) -> String {
        self.intern_coder(Coder {
            urn: urns::SERDE_CODER.to_string(),
            components: Vec::new(),
            rust_type: Some(std::any::type_name::<T>().to_string()),
        })
    }

    /// The coder of a key-value pair.
    pub(crate) fn kv_coder<K: 'static, V: 'static>(&mut self) -> String {
        let k = self.serde_coder::<K>();
        let v = self.serde_coder::<V>();
        self.intern_coder(Coder { urn: urns::KV_CODER.to_string(), components: vec![k, v], rust_type: None })
    }

    /// The coder of a key with all its values.
    pub(crate) fn kv_iterable_coder<K: 'static, V: 'static>(&mut self) -> String {
        let k = self.serde_coder::<K>();
        let v = self.serde_coder::<V>();
        let it =
            self.intern_coder(Coder { urn: urns::ITERABLE_CODER.to_string(), components: vec![v], rust_type: None });
        self.intern_coder(Coder { urn: urns::KV_CODER.to_string(), components: vec![k, it], rust_type: None })
    }

    /// Marks a PCollection of pairs as keyed: KV coder and key partitioning.
    pub(crate) fn make_keyed<K: Key, V: Data>(&mut self, pc: &str) {
        let coder = self.kv_coder::<K, V>();
        self.set_coder(pc, coder);
        self.bindings.elements.insert(pc.to_string(), Arc::new(TypedOps::<(K, V)>::keyed()));
        // A runner that splits a stage at a Flatten, WindowInto or Reshuffle feeding the
        // grouping (Beam's do) writes their inputs to the shuffle: those are keyed too.
        let mut upstream = vec![pc.to_string()];
        while let Some(pc) = upstream.pop() {
            let Some(producer) = self.graph.producer(&pc) else { continue };
            if ![urns::FLATTEN, urns::WINDOW_INTO, urns::RESHUFFLE].contains(&producer.urn.as_str()) {
                continue;
            }
            for input in producer.inputs.values().cloned().collect::<Vec<_>>() {
                self.bindings.elements.insert(input.clone(), Arc::new(TypedOps::<(K, V)>::keyed()));
                upstream.push(input);
            }
        }
    }

    /// Gives a PCollection of pairs key partitioning, keeping its coder.
    pub(crate) fn make_keyed_output<K: Key, V: Data>(&mut self, pc: &str) {
        self.bindings.elements.insert(pc.to_string(), Arc::new(TypedOps::<(K, V)>::keyed()));
    }

    /// Records the code of the user window function of a windowing strategy.
    pub(crate) fn bind_window_fn(&mut self, strategy_id: &str, f: Arc<dyn runnel_model::exec::WindowAssigner>) {
        self.window_fns.insert(strategy_id.to_string(), f);
    }

    /// The code of the user window function windowing `pc`, if it has one.
    pub(crate) fn window_fn_of(&self, pc: &str) -> Option<Arc<dyn runnel_model::exec::WindowAssigner>> {
        self.window_fns.get(&self.graph.pcollections.get(pc)?.windowing_strategy_id).cloned()
    }

    pub(crate) fn intern_strategy(&mut self, ws: WindowingStrategy) -> String {
        if let Some((_, id)) = self.strategy_ids.iter().find(|(s, _)| *s == ws) {
            return id.clone();
        }
        let id = format!("ws{}", self.strategy_ids.len());
        self.graph.windowing_strategies.insert(id.clone(), ws.clone());
        self.strategy_ids.push((ws, id.clone()));
        id
    }

    pub(crate) fn pcollection(&self, id: &str) -> &PCollectionNode {
        &self.graph.pcollections[id]
    }

    pub(crate) fn strategy_of(&self, pc: &str) -> WindowingStrategy {
        let id = &self.graph.pcollections[pc].windowing_strategy_id;
        self.graph.windowing_strategies[id].clone()
    }

    /// Sets the coder of `pc` and of every PCollection tied to it by a transform that keeps
    /// elements as they are (Flatten, Reshuffle, WindowInto), so their coders stay equal.
    /// The element type is the same, so the bytes are too: only the coder's description changes.
    pub(crate) fn set_coder(&mut self, pc: &str, coder: String) {
        let mut todo = vec![pc.to_string()];
        while let Some(id) = todo.pop() {
            match self.graph.pcollections.get_mut(&id) {
                Some(node) if node.coder_id != coder => node.coder_id = coder.clone(),
                _ => continue,
            }
            for t in self.graph.transforms.values() {
                let keeps = [urns::FLATTEN, urns::RESHUFFLE, urns::WINDOW_INTO].contains(&t.urn.as_str());
                if keeps && (t.inputs.values().any(|p| *p == id) || t.outputs.values().any(|p| *p == id)) {
                    todo.extend(t.inputs.values().chain(t.outputs.values()).cloned());
                }
            }
        }
    }
}
