//! Structural validation of a graph: every reference resolves, no cycles, URNs known, coders fit.

use crate::error::GraphError;
use crate::graph::{Graph, ParDoPayload, Transform};
use crate::urns;
use std::collections::BTreeMap;

impl Graph {
    /// Checks the graph and returns the first problem found, naming the transform, PCollection
    /// or coder at fault.
    pub fn validate(&self) -> Result<(), GraphError> {
        self.check_ids()?;
        self.check_coders()?;
        self.check_pcollections()?;
        self.check_producers()?;
        self.leaf_order()?;
        for t in self.transforms.values().filter(|t| t.is_leaf()) {
            self.check_leaf(t)?;
        }
        Ok(())
    }

    fn check_ids(&self) -> Result<(), GraphError> {
        for (id, t) in &self.transforms {
            if id != &t.unique_name {
                return Err(GraphError::IdMismatch { id: id.clone(), unique_name: t.unique_name.clone() });
            }
            for (role, map) in [("input", &t.inputs), ("output", &t.outputs)] {
                for (tag, pc) in map {
                    if !self.pcollections.contains_key(pc) {
                        return Err(GraphError::DanglingPCollection {
                            transform: id.clone(),
                            role,
                            tag: tag.clone(),
                            pcollection: pc.clone(),
                        });
                    }
                }
            }
            for sub in &t.subtransforms {
                if !self.transforms.contains_key(sub) {
                    return Err(GraphError::DanglingTransform { transform: id.clone(), missing: sub.clone() });
                }
            }
        }
        for root in &self.root_transforms {
            if !self.transforms.contains_key(root) {
                return Err(GraphError::DanglingTransform { transform: "<root>".into(), missing: root.clone() });
            }
        }
        Ok(())
    }

    fn check_coders(&self) -> Result<(), GraphError> {
        for (id, c) in &self.coders {
            let bad = |message: String| GraphError::BadCoder { coder: id.clone(), message };
            if !urns::CODERS.contains(&c.urn.as_str()) {
                return Err(bad(format!("unknown coder URN '{}'", c.urn)));
            }
            for comp in &c.components {
                if !self.coders.contains_key(comp) {
                    return Err(bad(format!("unknown component coder '{comp}'")));
                }
            }
            let expected = match c.urn.as_str() {
                urns::KV_CODER => 2,
                urns::ITERABLE_CODER => 1,
                _ => 0,
            };
            if c.components.len() != expected {
                return Err(bad(format!(
                    "'{}' needs {expected} component coder(s), has {}",
                    c.urn,
                    c.components.len()
                )));
            }
            if c.urn == urns::SERDE_CODER && c.rust_type.is_none() {
                return Err(bad("the serde coder must name its Rust type".into()));
            }
        }
        Ok(())
    }

    fn check_pcollections(&self) -> Result<(), GraphError> {
        for (id, pc) in &self.pcollections {
            if !self.coders.contains_key(&pc.coder_id) {
                return Err(GraphError::DanglingComponent {
                    pcollection: id.clone(),
                    kind: "coder",
                    id: pc.coder_id.clone(),
                });
            }
            if !self.windowing_strategies.contains_key(&pc.windowing_strategy_id) {
                return Err(GraphError::DanglingComponent {
                    pcollection: id.clone(),
                    kind: "windowing strategy",
                    id: pc.windowing_strategy_id.clone(),
                });
            }
        }
        Ok(())
    }

    fn check_producers(&self) -> Result<(), GraphError> {
        let mut producers: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for t in self.transforms.values().filter(|t| t.is_leaf()) {
            for pc in t.outputs.values() {
                producers.entry(pc).or_default().push(&t.unique_name);
            }
        }
        for id in self.pcollections.keys() {
            match producers.get(id.as_str()).map(Vec::as_slice) {
                Some([_]) => {}
                Some(many) => {
                    return Err(GraphError::BadProducer {
                        pcollection: id.clone(),
                        message: format!("produced by several transforms: {}", many.join(", ")),
                    })
                }
                None => {
                    return Err(GraphError::BadProducer {
                        pcollection: id.clone(),
                        message: "no transform produces it".into(),
                    })
                }
            }
        }
        Ok(())
    }

    fn coder_of(&self, pc: &str) -> &str {
        &self.pcollections[pc].coder_id
    }

    /// The component coders of a KV coder, or `None` if `coder` is not a KV coder.
    fn kv_components(&self, coder: &str) -> Option<(&str, &str)> {
        let c = self.coders.get(coder)?;
        (c.urn == urns::KV_CODER).then(|| (c.components[0].as_str(), c.components[1].as_str()))
    }

    fn check_leaf(&self, t: &Transform) -> Result<(), GraphError> {
        let name = &t.unique_name;
        let shape = |message: String| GraphError::BadShape { transform: name.clone(), message };
        let mismatch = |message: String| GraphError::CoderMismatch { transform: name.clone(), message };
        let single = |map: &BTreeMap<String, String>, what: &str| -> Result<String, GraphError> {
            match map.len() {
                1 => Ok(map.values().next().cloned().unwrap_or_default()),
                n => Err(shape(format!("needs exactly one {what}, has {n}"))),
            }
        };
        match t.urn.as_str() {
            urns::CREATE => {
                if !t.inputs.is_empty() {
                    return Err(shape("a Create has no inputs".into()));
                }
                single(&t.outputs, "output")?;
            }
            urns::TEST_STREAM | urns::READ_UNBOUNDED => {
                if !t.inputs.is_empty() {
                    return Err(shape("a source has no inputs".into()));
                }
                let output = single(&t.outputs, "output")?;
                if self.pcollections[&output].is_bounded != crate::graph::Boundedness::Unbounded {
                    return Err(shape(format!("the output '{output}' of an unbounded source must be unbounded")));
                }
                if t.urn == urns::TEST_STREAM {
                    let payload: crate::graph::TestStreamPayload = t.payload_as()?;
                    let mut watermark = crate::time::Timestamp::MIN;
                    for event in &payload.events {
                        match event {
                            crate::graph::TestStreamEvent::AdvanceWatermark { watermark: w } => {
                                if *w <= watermark {
                                    return Err(shape(format!(
                                        "the watermark must advance: {w} does not follow {watermark}"
                                    )));
                                }
                                watermark = *w;
                            }
                            crate::graph::TestStreamEvent::AdvanceProcessingTime { advance_ms } if *advance_ms <= 0 => {
                                return Err(shape(format!(
                                    "processing time must advance by a positive amount, not {advance_ms}ms"
                                )));
                            }
                            _ if watermark == crate::time::Timestamp::MAX => {
                                return Err(shape("no event may follow the advance of the watermark to +inf".into()));
                            }
                            _ => {}
                        }
                    }
                }
            }
            urns::PAR_DO => {
                let payload: ParDoPayload = t.payload_as()?;
                if !t.inputs.contains_key("main") {
                    return Err(shape("a ParDo needs a 'main' input".into()));
                }
                for side in &payload.side_inputs {
                    if !t.inputs.contains_key(&side.tag) {
                        return Err(shape(format!("side input '{}' is not among the inputs", side.tag)));
                    }
                }
                if t.inputs.len() != payload.side_inputs.len() + 1 {
                    return Err(shape("inputs other than 'main' must all be side inputs".into()));
                }
                for tag in &payload.outputs {
                    if !t.outputs.contains_key(tag) {
                        return Err(shape(format!("output tag '{tag}' is not among the outputs")));
                    }
                }
                if t.outputs.len() != payload.outputs.len() {
                    return Err(shape("outputs and the payload's output tags differ".into()));
                }
            }
            urns::GROUP_BY_KEY | urns::COMBINE_PER_KEY => {
                let input = single(&t.inputs, "input")?;
                let output = single(&t.outputs, "output")?;
                let (in_key, in_value) = self
                    .kv_components(self.coder_of(&input))
                    .ok_or_else(|| mismatch(format!("input coder '{}' is not a KV coder", self.coder_of(&input))))?;
                let (out_key, out_value) = self
                    .kv_components(self.coder_of(&output))
                    .ok_or_else(|| mismatch(format!("output coder '{}' is not a KV coder", self.coder_of(&output))))?;
                if in_key != out_key {
                    return Err(mismatch(format!(
                        "input key coder '{in_key}' differs from output key coder '{out_key}'"
                    )));
                }
                if t.urn == urns::GROUP_BY_KEY {
                    let it = &self.coders[out_value];
                    if it.urn != urns::ITERABLE_CODER || it.components[0] != in_value {
                        return Err(mismatch(format!(
                            "output value coder '{out_value}' is not an iterable of the input value coder '{in_value}'"
                        )));
                    }
                } else {
                    let payload: crate::graph::CombinePayload = t.payload_as()?;
                    if !self.coders.contains_key(&payload.accumulator_coder) {
                        return Err(mismatch(format!(
                            "accumulator coder '{}' does not exist",
                            payload.accumulator_coder
                        )));
                    }
                }
            }
            urns::FLATTEN => {
                let output = single(&t.outputs, "output")?;
                for (tag, input) in &t.inputs {
                    if self.coder_of(input) != self.coder_of(&output) {
                        return Err(mismatch(format!(
                            "input '{tag}' has coder '{}' but the output has '{}'",
                            self.coder_of(input),
                            self.coder_of(&output)
                        )));
                    }
                }
            }
            urns::WINDOW_INTO | urns::RESHUFFLE => {
                let input = single(&t.inputs, "input")?;
                let output = single(&t.outputs, "output")?;
                if self.coder_of(&input) != self.coder_of(&output) {
                    return Err(mismatch(format!(
                        "input coder '{}' differs from output coder '{}'",
                        self.coder_of(&input),
                        self.coder_of(&output)
                    )));
                }
                if t.urn == urns::WINDOW_INTO {
                    let payload: crate::graph::WindowIntoPayload = t.payload_as()?;
                    if self.pcollections[&output].windowing_strategy_id != payload.windowing_strategy {
                        return Err(shape("the output's windowing strategy differs from the payload's".into()));
                    }
                }
            }
            other => return Err(GraphError::UnknownUrn { transform: name.clone(), urn: other.to_string() }),
        }
        Ok(())
    }
}
