//! Pipeline structure (composite transforms and their graph names), registered DoFns, metrics.

use crate::run_ok;
use runnel::model::metrics::DistributionData;
use runnel::model::{urns, FnRef, ParDoPayload};
use runnel::prelude::*;
use serde::{Deserialize, Serialize};

/// A user composite: splits lines into words and counts them, with named inner transforms.
struct CountWords;

impl PTransform<PCollection<String>> for CountWords {
    type Output = PCollection<(String, u64)>;
    fn expand(self, lines: PCollection<String>) -> Self::Output {
        lines
            .flat_map("ExtractWords", |l: String| l.split_whitespace().map(str::to_lowercase).collect::<Vec<_>>())
            .filter("DropNumbers", |w| !w.chars().all(|c| c.is_ascii_digit()))
            .apply("Count", CountPerElement::new())
    }
}

/// A composite applying another user composite, to check two levels of nesting.
struct TopWord;

impl PTransform<PCollection<String>> for TopWord {
    type Output = PCollection<Vec<(u64, String)>>;
    fn expand(self, lines: PCollection<String>) -> Self::Output {
        lines
            .apply("CountWords", CountWords)
            .apply("Swap", KvSwap)
            .apply("Top", Combine::globally(combine::Top::largest(1)))
    }
}

/// A user composite expands to the transforms it applies, named `Outer/Inner` in the graph, and
/// keeps its structure (subtransforms in application order); it computes what they compute.
pub fn composite_transform_nests_names_in_graph(options: PipelineOptions) {
    let p = Pipeline::new(options);
    let lines = p.apply("Lines", Create::of(vec!["the cat".to_string(), "The dog 42".into(), "a cat".into()]));
    let counts = lines.apply("CountWords", CountWords);
    let top = lines.apply("TopWord", TopWord);
    counts.apply(
        "CheckCounts",
        PAssert::equal_in_any_order(vec![
            ("the".to_string(), 2u64),
            ("cat".into(), 2),
            ("dog".into(), 1),
            ("a".into(), 1),
        ]),
    );
    // (2, "the") beats (2, "cat"): Top orders whole pairs.
    top.apply("CheckTop", PAssert::equal_in_any_order(vec![vec![(2u64, "the".to_string())]]));

    let g = p.graph();
    let composite = |name: &str| {
        let t = g.transforms.get(name).unwrap_or_else(|| panic!("no transform '{name}' in the graph"));
        assert_eq!(t.urn, urns::COMPOSITE, "'{name}' should be a composite");
        t.subtransforms.clone()
    };
    assert_eq!(
        composite("CountWords"),
        vec!["CountWords/ExtractWords", "CountWords/DropNumbers", "CountWords/Count"],
        "subtransforms of CountWords, in application order"
    );
    assert_eq!(composite("CountWords/Count").len(), 2, "CountPerElement expands to two transforms");
    assert_eq!(composite("TopWord"), vec!["TopWord/CountWords", "TopWord/Swap", "TopWord/Top"]);
    assert_eq!(
        composite("TopWord/CountWords"),
        vec!["TopWord/CountWords/ExtractWords", "TopWord/CountWords/DropNumbers", "TopWord/CountWords/Count"]
    );
    assert_eq!(g.transforms["CountWords/ExtractWords"].urn, urns::PAR_DO);
    assert_eq!(g.transforms["TopWord/CountWords/ExtractWords"].urn, urns::PAR_DO);
    for root in ["Lines", "CountWords", "TopWord", "CheckCounts", "CheckTop"] {
        assert!(
            g.root_transforms.iter().any(|r| r == root),
            "'{root}' should be a root transform: {:?}",
            g.root_transforms
        );
    }
    assert!(!g.root_transforms.iter().any(|r| r.contains('/')), "nested transforms are not roots");
    run_ok(&p);
}

/// A DoFn registered by name: its fields travel in the graph.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct AddOffset {
    /// Added to every element.
    pub offset: i64,
    /// Prefix of the output.
    pub label: String,
}

impl DoFn for AddOffset {
    type In = i64;
    type Out = String;
    fn process(&mut self, x: i64, ctx: &mut DoFnContext<'_, '_, String>) -> Result<(), BoxError> {
        ctx.emit(format!("{}{}", self.label, x + self.offset));
        Ok(())
    }
}

runnel::register_dofn!(AddOffset, "runnel.conformance.AddOffset");

/// `ParDo::registered`: the graph payload holds the DoFn's registered name and fields, and the
/// runner rebuilds the DoFn from them and runs it.
pub fn registered_dofn_is_serialised_in_graph_and_runs(options: PipelineOptions) {
    let p = Pipeline::new(options);
    let xs = p.apply("Create", Create::of(vec![1i64, 2]));
    xs.apply("AddOffset", ParDo::registered(AddOffset { offset: 40, label: "n=".into() }))
        .apply("Check", PAssert::equal_in_any_order(vec!["n=41".to_string(), "n=42".into()]));

    let g = p.graph();
    let t = &g.transforms["AddOffset"];
    assert_eq!(t.urn, urns::PAR_DO);
    let payload: ParDoPayload = t.payload_as().expect("a ParDo payload");
    match payload.do_fn {
        FnRef::Registered { value } => assert_eq!(
            value,
            serde_json::json!({ "type": "runnel.conformance.AddOffset", "value": { "offset": 40, "label": "n=" } }),
            "the payload should hold the registered name and every field"
        ),
        other => panic!("expected a registered DoFn in the payload, got {other:?}"),
    }
    // The registered DoFn is rebuilt from the graph alone: a graph read back from JSON is equal.
    assert_eq!(runnel::model::Graph::from_json(&g.to_json()).expect("graph JSON reads back"), g);
    run_ok(&p);
}

/// Counters sum over all elements, distributions summarise the reported values, gauges keep the
/// value set; `PipelineResult::metrics()` reports each under the transform's unique name.
pub fn metrics_counter_distribution_and_gauge(options: PipelineOptions) {
    let p = Pipeline::new(options);
    let xs = p.apply("Create", Create::of(vec![3i64, -2, 10, 5]));
    let out = xs.apply(
        "Measure",
        ParDo::from_fn(|x: i64, ctx: &mut DoFnContext<'_, '_, i64>| {
            ctx.inc_counter("elements", 1);
            ctx.inc_counter("total", x);
            ctx.update_distribution("values", x);
            ctx.set_gauge("constant", 7);
            ctx.emit(x);
            Ok(())
        }),
    );
    out.apply("Check", PAssert::equal_in_any_order(vec![3i64, -2, 10, 5]));
    let result = run_ok(&p);
    let m = result.metrics();
    assert_eq!(m.counter_at("Measure", "elements"), Some(4), "counter per transform: {m:?}");
    assert_eq!(m.counter_at("Measure", "total"), Some(16), "counter per transform: {m:?}");
    assert_eq!(result.counter("elements"), 4, "counter summed over transforms");
    assert_eq!(result.counter("no such counter"), 0);
    assert_eq!(m.distribution("values"), Some(DistributionData { count: 4, sum: 16, min: -2, max: 10 }), "{m:?}");
    assert_eq!(m.gauge("constant"), Some(7), "{m:?}");
}

/// A registered DoFn that holds the view of its side input (serialised as the view's tag).
#[derive(Clone, Serialize, Deserialize)]
pub struct ScaleBy {
    factor: PCollectionView<i64>,
}

impl DoFn for ScaleBy {
    type In = i64;
    type Out = i64;
    fn process(&mut self, x: i64, ctx: &mut DoFnContext<'_, '_, i64>) -> Result<(), BoxError> {
        let factor = *ctx.side_input(&self.factor)?;
        ctx.emit(x * factor);
        Ok(())
    }
}

runnel::register_dofn!(ScaleBy, "runnel.conformance.ScaleBy");

/// A registered DoFn reads a side input through a view it holds as a field: the view survives
/// the DoFn's trip through the graph's JSON.
pub fn registered_dofn_reads_side_input_through_its_view(options: PipelineOptions) {
    let p = Pipeline::new(options);
    let factor = View::as_singleton(&p.apply("Factor", Create::of(vec![10i64])));
    p.apply("Create", Create::of(vec![1i64, 2]))
        .apply("Scale", ParDo::registered(ScaleBy { factor: factor.clone() }).with_side_input(&factor))
        .apply("Check", PAssert::equal_in_any_order(vec![10i64, 20]));
    run_ok(&p);
}

/// A user CombineFn with a parameter: sums values above a threshold.
#[derive(Clone, Serialize, Deserialize)]
pub struct SumAbove {
    threshold: i64,
}

impl CombineFn for SumAbove {
    type In = i64;
    type Acc = i64;
    type Out = i64;
    fn create_accumulator(&self) -> i64 {
        0
    }
    fn add_input(&self, acc: &mut i64, x: i64) {
        if x > self.threshold {
            *acc += x;
        }
    }
    fn merge_accumulators(&self, acc: &mut i64, other: i64) {
        *acc += other;
    }
    fn extract_output(&self, acc: i64) -> i64 {
        acc
    }
}

/// `CombinePerKey::registered`: the payload holds the CombineFn's name and fields, and the runner
/// rebuilds it from them (the threshold must come through, or the sums differ).
pub fn registered_combine_fn_is_serialised_in_graph_and_runs(options: PipelineOptions) {
    let p = Pipeline::new(options);
    p.apply("Create", Create::of(vec![("a".to_string(), 1i64), ("a".into(), 5), ("b".into(), 7)]))
        .apply("SumAbove", CombinePerKey::registered("conformance.SumAbove", SumAbove { threshold: 2 }))
        .apply("Check", PAssert::equal_in_any_order(vec![("a".to_string(), 5i64), ("b".into(), 7)]));
    let g = p.graph();
    let payload: runnel::model::CombinePayload = g.transforms["SumAbove"].payload_as().expect("combine payload");
    assert_eq!(
        payload.combine_fn,
        FnRef::Registered { value: serde_json::json!({ "type": "conformance.SumAbove", "value": { "threshold": 2 } }) }
    );
    run_ok(&p);
}
