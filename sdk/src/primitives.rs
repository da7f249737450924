//! The primitive transforms every runner executes itself (beside ParDo in [`crate::dofn`],
//! WindowInto in [`crate::window`] and CombinePerKey in [`crate::combine`]): Create, Flatten,
//! Reshuffle, GroupByKey. Composites built from them are in [`crate::transforms`].

use crate::pipeline::{single_output, PBegin, PCollection, PTransform, PrimitiveSpec};
use runnel_model::exec::{Batch, Executable, UserError};
use runnel_model::{urns, Boundedness, CreatePayload, Timestamp, WindowedValue, WindowingStrategy};
use runnel_runner_core::group::{BufferValues, GroupAlsoByWindow};
use runnel_runner_core::{Data, Key};
use std::marker::PhantomData;
use std::sync::Arc;

/// A bounded PCollection from elements held by the pipeline.
pub struct Create<T> {
    elements: Vec<WindowedValue<T>>,
    timestamped: bool,
}

impl<T: Data> Create<T> {
    /// Elements in the global window at the minimum timestamp.
    pub fn of(elements: Vec<T>) -> Self {
        Create { elements: elements.into_iter().map(WindowedValue::in_global_window).collect(), timestamped: false }
    }

    /// Elements with event timestamps, in the global window.
    pub fn timestamped(elements: Vec<(T, Timestamp)>) -> Self {
        Create {
            elements: elements.into_iter().map(|(v, t)| WindowedValue::timestamped(v, t)).collect(),
            timestamped: true,
        }
    }
}

impl<T: Data> PTransform<PBegin> for Create<T> {
    type Output = PCollection<T>;
    fn expand(self, input: PBegin) -> PCollection<T> {
        let payload = CreatePayload { element_count: self.elements.len(), timestamped: self.timestamped };
        let elements = Arc::new(self.elements);
        let spec = PrimitiveSpec {
            urn: urns::CREATE,
            inputs: Vec::new(),
            payload: serde_json::to_value(payload).expect("payload serialises"),
            executable: Some(Executable::Create {
                elements: Arc::new(move || -> Result<Batch, UserError> { Ok(Box::new((*elements).clone())) }),
            }),
        };
        single_output(input.pipeline(), spec, WindowingStrategy::global_default(), Boundedness::Bounded, None)
    }
}

/// Merges PCollections of one type and windowing into one.
pub struct Flatten;

impl<T: Data> PTransform<Vec<PCollection<T>>> for Flatten {
    type Output = PCollection<T>;
    fn expand(self, inputs: Vec<PCollection<T>>) -> PCollection<T> {
        let Some(first) = inputs.first() else {
            // No input to take the pipeline from: the one being built on this thread.
            let pipeline = crate::pipeline::expanding().expect("Flatten is applied through Pipeline::apply_to");
            let name = pipeline.lock().current_name();
            pipeline.lock().error(format!(
                "transform '{name}': Flatten needs at least one input (use Create::of(vec![]) for an empty PCollection)"
            ));
            return Create::of(Vec::new()).expand(pipeline.begin());
        };
        let pipeline = first.pipeline().clone();
        let mut b = pipeline.lock();
        let name = b.current_name();
        let strategy = b.strategy_of(first.id());
        let coder = b.pcollection(first.id()).coder_id.clone();
        let mut bounded = Boundedness::Bounded;
        for pc in &inputs {
            if b.strategy_of(pc.id()) != strategy {
                b.error(format!("transform '{name}': Flatten inputs must have the same windowing strategy"));
            }
            if b.pcollection(pc.id()).is_bounded == Boundedness::Unbounded {
                bounded = Boundedness::Unbounded;
            }
            // Same Rust type, so the same bytes: give every input the first input's coder id.
            b.set_coder(pc.id(), coder.clone());
        }
        drop(b);
        let spec = PrimitiveSpec {
            urn: urns::FLATTEN,
            inputs: inputs.iter().enumerate().map(|(i, pc)| (i.to_string(), pc.id().to_string())).collect(),
            payload: serde_json::Value::Null,
            executable: None,
        };
        single_output(&pipeline, spec, strategy, bounded, Some(coder))
    }
}

/// Redistributes elements across workers, breaking fusion (order and bundles change).
pub struct Reshuffle;

impl<T: Data> PTransform<PCollection<T>> for Reshuffle {
    type Output = PCollection<T>;
    fn expand(self, input: PCollection<T>) -> PCollection<T> {
        let b = input.pipeline().lock();
        let strategy = b.strategy_of(input.id());
        let node = b.pcollection(input.id()).clone();
        drop(b);
        let spec = PrimitiveSpec {
            urn: urns::RESHUFFLE,
            inputs: vec![("in".into(), input.id().to_string())],
            payload: serde_json::Value::Null,
            executable: None,
        };
        single_output(input.pipeline(), spec, strategy, node.is_bounded, Some(node.coder_id))
    }
}

/// Groups values per key and window: `(K, V)` → `(K, Vec<V>)`.
pub struct GroupByKey<K, V>(PhantomData<fn(K, V)>);

impl<K: Key, V: Data> GroupByKey<K, V> {
    /// The transform.
    pub fn new() -> Self {
        GroupByKey(PhantomData)
    }
}

impl<K: Key, V: Data> Default for GroupByKey<K, V> {
    fn default() -> Self {
        Self::new()
    }
}

impl<K: Key, V: Data> PTransform<PCollection<(K, V)>> for GroupByKey<K, V> {
    type Output = PCollection<(K, Vec<V>)>;
    fn expand(self, input: PCollection<(K, V)>) -> PCollection<(K, Vec<V>)> {
        let pipeline = input.pipeline().clone();
        let mut b = pipeline.lock();
        b.make_keyed::<K, V>(input.id());
        // The output carries the continuation of the trigger and a consumed merging window
        // function, as in Beam (see `grouping_output_strategy`).
        let strategy = crate::window::grouping_output_strategy(&mut b, input.id());
        let bounded = b.pcollection(input.id()).is_bounded;
        let coder = b.kv_iterable_coder::<K, V>();
        let window_fn = b.window_fn_of(input.id());
        drop(b);
        let spec = PrimitiveSpec {
            urn: urns::GROUP_BY_KEY,
            inputs: vec![("in".into(), input.id().to_string())],
            payload: serde_json::Value::Null,
            executable: Some(Executable::GroupByKey {
                instantiate: Arc::new(move |ws| {
                    Ok(Box::new(GroupAlsoByWindow::<K, V, _>::with_window_fn(BufferValues, ws, window_fn.clone())?))
                }),
            }),
        };
        let out: PCollection<(K, Vec<V>)> = single_output(&pipeline, spec, strategy, bounded, Some(coder));
        pipeline.lock().make_keyed_output::<K, Vec<V>>(out.id());
        out
    }
}
