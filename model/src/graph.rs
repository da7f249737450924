//! The portable pipeline graph: components keyed by stable ids, modelled on Beam's Runner API.

use crate::error::GraphError;
use crate::time::Timestamp;
use crate::windowing::WindowingStrategy;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// Whether a PCollection is finite.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Boundedness {
    /// Finite: its watermark reaches +∞ when its producer finishes.
    Bounded,
    /// Possibly infinite: runs until the watermark reaches +∞ or the job is cancelled.
    Unbounded,
}

/// One application of a transform.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Transform {
    /// Hierarchical unique name, e.g. `CountWords/ExtractWords`; also the transform's id.
    pub unique_name: String,
    /// What the transform does (see [`crate::urns`]).
    pub urn: String,
    /// Input PCollection ids by local tag.
    pub inputs: BTreeMap<String, String>,
    /// Output PCollection ids by local tag.
    pub outputs: BTreeMap<String, String>,
    /// URN-specific parameters.
    #[serde(default, skip_serializing_if = "serde_json::Value::is_null")]
    pub payload: serde_json::Value,
    /// Ids of the transforms a composite expands to, in application order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub subtransforms: Vec<String>,
}

impl Transform {
    /// Whether this transform runs itself (no subtransforms).
    pub fn is_leaf(&self) -> bool {
        self.subtransforms.is_empty()
    }

    /// Decodes the payload into its typed form, naming this transform on failure.
    pub fn payload_as<P: serde::de::DeserializeOwned>(&self) -> Result<P, GraphError> {
        serde_json::from_value(self.payload.clone())
            .map_err(|e| GraphError::BadPayload { transform: self.unique_name.clone(), message: e.to_string() })
    }
}

/// A PCollection: a typed, windowed, possibly unbounded collection.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PCollectionNode {
    /// Human-readable name (the producing transform and output tag).
    pub unique_name: String,
    /// Id of its element coder.
    pub coder_id: String,
    /// Id of its windowing strategy.
    pub windowing_strategy_id: String,
    /// Finite or not.
    pub is_bounded: Boundedness,
}

/// How elements are encoded to bytes.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Coder {
    /// Coder kind (see [`crate::urns`]).
    pub urn: String,
    /// Component coder ids (key and value for KV, element for iterable).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub components: Vec<String>,
    /// For the serde coder: the Rust type it encodes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rust_type: Option<String>,
}

/// What built the graph.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Environment {
    /// SDK name and version.
    pub sdk: String,
    /// Fingerprint of the binary that built the graph, when a runner needs one (left out of
    /// snapshots: it changes with every build).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub binary_fingerprint: Option<String>,
}

/// The portable graph of a pipeline.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Graph {
    /// Transforms by id (their unique name).
    pub transforms: BTreeMap<String, Transform>,
    /// PCollections by id.
    pub pcollections: BTreeMap<String, PCollectionNode>,
    /// Coders by id.
    pub coders: BTreeMap<String, Coder>,
    /// Windowing strategies by id.
    pub windowing_strategies: BTreeMap<String, WindowingStrategy>,
    /// Top-level transforms in application order.
    pub root_transforms: Vec<String>,
    /// What built the graph.
    pub environment: Environment,
}

impl Graph {
    /// Deterministic, pretty JSON (maps are ordered; no addresses or random ids).
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("a graph is always serialisable to JSON")
    }

    /// Parses JSON, reporting the line and column of a syntax error.
    pub fn from_json(json: &str) -> Result<Graph, GraphError> {
        serde_json::from_str(json).map_err(|e| GraphError::Json {
            line: e.line(),
            column: e.column(),
            message: e.to_string(),
        })
    }

    /// Leaf transforms in a topological order (producers before consumers), ties broken by name.
    pub fn leaf_order(&self) -> Result<Vec<String>, GraphError> {
        let leaves: Vec<&Transform> = self.transforms.values().filter(|t| t.is_leaf()).collect();
        let mut producer: BTreeMap<&str, &str> = BTreeMap::new();
        for t in &leaves {
            for pc in t.outputs.values() {
                producer.insert(pc, &t.unique_name);
            }
        }
        let mut deps: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
        for t in &leaves {
            let entry = deps.entry(&t.unique_name).or_default();
            for pc in t.inputs.values() {
                if let Some(p) = producer.get(pc.as_str()) {
                    entry.insert(p);
                }
            }
        }
        let mut order = Vec::with_capacity(leaves.len());
        let mut done: BTreeSet<&str> = BTreeSet::new();
        while order.len() < leaves.len() {
            let ready: Vec<&str> = deps
                .iter()
                .filter(|(name, ds)| !done.contains(*name) && ds.iter().all(|d| done.contains(d)))
                .map(|(name, _)| *name)
                .collect();
            if ready.is_empty() {
                // Every transform left waits on another one left (else it would be ready), so
                // following those waits comes back round: the first transform seen twice is on a
                // cycle (the first one left may only be downstream of it).
                let mut at = deps.keys().find(|n| !done.contains(*n)).copied().unwrap_or_default();
                let mut seen: BTreeSet<&str> = BTreeSet::new();
                while seen.insert(at) {
                    let waits_on = deps.get(at).and_then(|ds| ds.iter().find(|d| !done.contains(*d)));
                    at = waits_on.copied().unwrap_or(at);
                }
                return Err(GraphError::Cycle { transform: at.to_string() });
            }
            for name in ready {
                done.insert(name);
                order.push(name.to_string());
            }
        }
        Ok(order)
    }

    /// The leaf transform producing `pcollection`, if any.
    pub fn producer(&self, pcollection: &str) -> Option<&Transform> {
        self.transforms.values().find(|t| t.is_leaf() && t.outputs.values().any(|p| p == pcollection))
    }

    /// Leaf transforms reading `pcollection`, with the local input tag.
    pub fn consumers(&self, pcollection: &str) -> Vec<(&Transform, &str)> {
        self.transforms
            .values()
            .filter(|t| t.is_leaf())
            .flat_map(|t| t.inputs.iter().filter(|(_, p)| *p == pcollection).map(move |(tag, _)| (t, tag.as_str())))
            .collect()
    }

    /// The windowing strategy of a PCollection.
    pub fn windowing_of(&self, pcollection: &str) -> Option<&WindowingStrategy> {
        let pc = self.pcollections.get(pcollection)?;
        self.windowing_strategies.get(&pc.windowing_strategy_id)
    }
}

/// How a user function is found: a closure known to the binary, or a registered serialisable type.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FnRef {
    /// A closure: not serialisable; the binary that built the graph holds it under this
    /// transform's unique name.
    Closure {
        /// The transform whose closure this is.
        transform: String,
    },
    /// A registered type (typetag JSON: `{"<registered name>": {fields…}}`).
    Registered {
        /// The serialised value.
        value: serde_json::Value,
    },
    /// A function built into the SDK, identified by name and parameters.
    Builtin {
        /// e.g. `sum`, `count`, `top`.
        name: String,
        /// Its parameters, if any.
        #[serde(default, skip_serializing_if = "serde_json::Value::is_null")]
        params: serde_json::Value,
    },
}

/// How a side input is presented to a DoFn.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ViewKind {
    /// Exactly one value (or a default when empty).
    Singleton,
    /// All values, in no particular order.
    Iterable,
    /// All values as a list.
    List,
    /// A map from key to the single value of each key.
    Map,
    /// A map from key to all values of each key.
    MultiMap,
    /// The value of a key, looked up when asked (not the whole window at once).
    MapLookup,
    /// The values of a key, looked up when asked (not the whole window at once).
    MultimapLookup,
}

impl ViewKind {
    /// Whether the view reads values key by key (Beam's multimap side input access).
    pub fn reads_by_key(self) -> bool {
        matches!(self, ViewKind::MapLookup | ViewKind::MultimapLookup)
    }
}

/// A side input of a ParDo.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SideInputSpec {
    /// Local input tag in the transform's inputs.
    pub tag: String,
    /// How it is presented.
    pub view: ViewKind,
}

/// Payload of [`crate::urns::PAR_DO`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ParDoPayload {
    /// The DoFn.
    pub do_fn: FnRef,
    /// Side inputs in the order the DoFn indexes them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub side_inputs: Vec<SideInputSpec>,
    /// Output tags in the order the DoFn indexes them; the first is the main output.
    pub outputs: Vec<String>,
}

/// Payload of [`crate::urns::COMBINE_PER_KEY`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CombinePayload {
    /// The CombineFn.
    pub combine_fn: FnRef,
    /// Coder id of the accumulator (what crosses a lifted shuffle).
    pub accumulator_coder: String,
    /// Whether the input may carry retractions (it comes from a grouping in retracting mode):
    /// the combine applies them, and runners must not lift it (a partial accumulator cannot
    /// carry a retraction across the shuffle).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub retracting_input: bool,
}

/// Payload of [`crate::urns::CREATE`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CreatePayload {
    /// How many elements the pipeline holds for it.
    pub element_count: usize,
    /// Whether elements carry their own timestamps.
    #[serde(default)]
    pub timestamped: bool,
}

/// Payload of [`crate::urns::WINDOW_INTO`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WindowIntoPayload {
    /// Id of the windowing strategy the output gets.
    pub windowing_strategy: String,
}

/// One event of a TestStream, as plain data (the elements themselves are held by the pipeline).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TestStreamEvent {
    /// Elements arrive: the next batch the pipeline holds for the stream, of `count` elements.
    AddElements {
        /// How many elements.
        count: usize,
    },
    /// The watermark advances to `watermark` ([`Timestamp::MAX`]: +∞, the end of the stream).
    AdvanceWatermark {
        /// The new watermark.
        watermark: Timestamp,
    },
    /// Processing time advances by `advance_ms` milliseconds.
    AdvanceProcessingTime {
        /// The advance, positive.
        advance_ms: i64,
    },
}

/// Payload of [`crate::urns::TEST_STREAM`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TestStreamPayload {
    /// The events in order. A runner advances the watermark to +∞ after the last one.
    pub events: Vec<TestStreamEvent>,
}

impl TestStreamPayload {
    /// How many element batches the pipeline must hold for the stream.
    pub fn element_batches(&self) -> usize {
        self.events.iter().filter(|e| matches!(e, TestStreamEvent::AddElements { .. })).count()
    }
}
