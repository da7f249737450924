//! Graphs built by hand, shared by the integration tests.
#![allow(dead_code)]

use runnel_model::urns;
use runnel_model::{
    AccumulationMode, Boundedness, ClosingBehavior, Coder, CombinePayload, CreatePayload, Environment, FnRef, Graph,
    OnTimeBehavior, PCollectionNode, ParDoPayload, SideInputSpec, TimeTransform, TimestampCombiner, Transform, Trigger,
    ViewKind, WindowFnSpec, WindowIntoPayload, WindowingStrategy,
};
use serde_json::json;
use std::collections::BTreeMap;

/// A transform with the given inputs and outputs (`(tag, pcollection)` pairs).
pub fn transform(
    name: &str,
    urn: &str,
    inputs: &[(&str, &str)],
    outputs: &[(&str, &str)],
    payload: serde_json::Value,
) -> Transform {
    let map = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
        pairs.iter().map(|(tag, pc)| (tag.to_string(), pc.to_string())).collect()
    };
    Transform {
        unique_name: name.to_string(),
        urn: urn.to_string(),
        inputs: map(inputs),
        outputs: map(outputs),
        payload,
        subtransforms: Vec::new(),
    }
}

/// A ParDo reading `main` and writing the given outputs, with no side inputs.
pub fn par_do(name: &str, main: &str, outputs: &[(&str, &str)]) -> Transform {
    let payload = ParDoPayload {
        do_fn: FnRef::Closure { transform: name.to_string() },
        side_inputs: Vec::new(),
        outputs: outputs.iter().map(|(tag, _)| tag.to_string()).collect(),
    };
    transform(name, urns::PAR_DO, &[("main", main)], outputs, serde_json::to_value(payload).unwrap())
}

pub fn create(name: &str, output: &str) -> Transform {
    let payload = CreatePayload { element_count: 3, timestamped: true };
    transform(name, urns::CREATE, &[], &[("out", output)], serde_json::to_value(payload).unwrap())
}

pub fn pcollection(name: &str, coder: &str, windowing: &str) -> PCollectionNode {
    PCollectionNode {
        unique_name: name.to_string(),
        coder_id: coder.to_string(),
        windowing_strategy_id: windowing.to_string(),
        is_bounded: Boundedness::Bounded,
    }
}

pub fn serde_coder(rust_type: &str) -> Coder {
    Coder { urn: urns::SERDE_CODER.to_string(), components: Vec::new(), rust_type: Some(rust_type.to_string()) }
}

pub fn kv_coder(key: &str, value: &str) -> Coder {
    Coder { urn: urns::KV_CODER.to_string(), components: vec![key.to_string(), value.to_string()], rust_type: None }
}

pub fn iterable_coder(element: &str) -> Coder {
    Coder { urn: urns::ITERABLE_CODER.to_string(), components: vec![element.to_string()], rust_type: None }
}

/// Fixed one-minute windows firing early every 10s of processing time and once per late element.
pub fn fixed_windowing() -> WindowingStrategy {
    WindowingStrategy {
        window_fn: WindowFnSpec::Fixed { size_ms: 60_000, offset_ms: 5_000 },
        trigger: Trigger::AfterWatermark {
            early: Some(Box::new(Trigger::Repeatedly {
                trigger: Box::new(Trigger::AfterProcessingTime {
                    transforms: vec![
                        TimeTransform::Delay { delay_ms: 10_000 },
                        TimeTransform::AlignTo { period_ms: 1_000, offset_ms: 250 },
                    ],
                }),
            })),
            late: Some(Box::new(Trigger::AfterCount { count: 1 })),
        },
        accumulation_mode: AccumulationMode::Accumulating,
        allowed_lateness_ms: 3_600_000,
        timestamp_combiner: TimestampCombiner::Earliest,
        closing_behavior: ClosingBehavior::FireAlways,
        on_time_behavior: OnTimeBehavior::FireIfNonEmpty,
    }
}

/// A merging user window function with a nested JSON payload and a composite trigger.
pub fn custom_windowing() -> WindowingStrategy {
    WindowingStrategy {
        window_fn: WindowFnSpec::Custom {
            name: "my_crate::CalendarSessions".to_string(),
            merging: true,
            payload: json!({
                "gap_ms": 1_800_000,
                "zone": "Europe/Paris",
                "holidays": ["2024-12-25", "2025-01-01"],
                "strict": false,
                "weight": 0.75,
                "extra": null,
            }),
        },
        trigger: Trigger::OrFinally {
            main: Box::new(Trigger::Repeatedly {
                trigger: Box::new(Trigger::AfterAny {
                    triggers: vec![
                        Trigger::AfterCount { count: 100 },
                        Trigger::AfterEach { triggers: vec![Trigger::Always, Trigger::Default] },
                    ],
                }),
            }),
            finally: Box::new(Trigger::AfterAll { triggers: vec![Trigger::Never, Trigger::AfterCount { count: 7 }] }),
        },
        accumulation_mode: AccumulationMode::Retracting,
        allowed_lateness_ms: 0,
        timestamp_combiner: TimestampCombiner::Latest,
        closing_behavior: ClosingBehavior::FireIfNonEmpty,
        on_time_behavior: OnTimeBehavior::FireAlways,
    }
}

/// A small valid graph:
///
/// ```text
/// Create -> Parse (ParDo, outputs out + errors)
///   Parse.out -> Count/GroupByKey            (inside the composite Count)
///   Parse.out -> Count/Sum (CombinePerKey)   (inside the composite Count)
///   Parse.out + Count/Sum.out -> Flatten -> Window (fixed windows, AfterWatermark)
///   Window.out -> Sessionize (custom window fn) -> Enrich (ParDo, side input GBK output)
/// ```
///
/// Every windowing enum value appears in one of its strategies; sliding and session strategies
/// are registered but unused.
pub fn sample_graph() -> Graph {
    let mut g = Graph {
        environment: Environment {
            sdk: "runnel 0.1.0".to_string(),
            binary_fingerprint: Some("sha256:0123abcd".to_string()),
        },
        ..Graph::default()
    };

    for (id, coder) in [
        ("str", serde_coder("alloc::string::String")),
        ("i64", serde_coder("i64")),
        ("kv_str_i64", kv_coder("str", "i64")),
        ("iter_i64", iterable_coder("i64")),
        ("kv_str_iter_i64", kv_coder("str", "iter_i64")),
    ] {
        g.coders.insert(id.to_string(), coder);
    }

    g.windowing_strategies.insert("global".to_string(), WindowingStrategy::global_default());
    g.windowing_strategies.insert("fixed".to_string(), fixed_windowing());
    g.windowing_strategies.insert("custom".to_string(), custom_windowing());
    g.windowing_strategies.insert(
        "sliding".to_string(),
        WindowingStrategy::with_window_fn(WindowFnSpec::Sliding { size_ms: 10_000, period_ms: 2_000, offset_ms: 0 }),
    );
    g.windowing_strategies
        .insert("sessions".to_string(), WindowingStrategy::with_window_fn(WindowFnSpec::Sessions { gap_ms: 30_000 }));

    for (id, coder, windowing) in [
        ("Create.out", "str", "global"),
        ("Parse.out", "kv_str_i64", "global"),
        ("Parse.errors", "str", "global"),
        ("Count/GroupByKey.out", "kv_str_iter_i64", "global"),
        ("Count/Sum.out", "kv_str_i64", "global"),
        ("Flatten.out", "kv_str_i64", "global"),
        ("Window.out", "kv_str_i64", "fixed"),
        ("Sessionize.out", "kv_str_i64", "custom"),
        ("Enrich.out", "kv_str_i64", "custom"),
    ] {
        g.pcollections.insert(id.to_string(), pcollection(id, coder, windowing));
    }
    g.pcollections.get_mut("Enrich.out").unwrap().is_bounded = Boundedness::Unbounded;

    let mut add = |t: Transform| {
        g.transforms.insert(t.unique_name.clone(), t);
    };
    add(create("Create", "Create.out"));
    add(par_do("Parse", "Create.out", &[("out", "Parse.out"), ("errors", "Parse.errors")]));
    add(transform(
        "Count/GroupByKey",
        urns::GROUP_BY_KEY,
        &[("in", "Parse.out")],
        &[("out", "Count/GroupByKey.out")],
        serde_json::Value::Null,
    ));
    add(transform(
        "Count/Sum",
        urns::COMBINE_PER_KEY,
        &[("in", "Parse.out")],
        &[("out", "Count/Sum.out")],
        serde_json::to_value(CombinePayload {
            combine_fn: FnRef::Builtin { name: "sum".to_string(), params: json!({"checked": true}) },
            accumulator_coder: "i64".to_string(),
            retracting_input: false,
        })
        .unwrap(),
    ));
    add(Transform {
        subtransforms: vec!["Count/GroupByKey".to_string(), "Count/Sum".to_string()],
        ..transform(
            "Count",
            urns::COMPOSITE,
            &[("in", "Parse.out")],
            &[("grouped", "Count/GroupByKey.out"), ("sums", "Count/Sum.out")],
            serde_json::Value::Null,
        )
    });
    add(transform(
        "Flatten",
        urns::FLATTEN,
        &[("0", "Parse.out"), ("1", "Count/Sum.out")],
        &[("out", "Flatten.out")],
        serde_json::Value::Null,
    ));
    add(transform(
        "Window",
        urns::WINDOW_INTO,
        &[("in", "Flatten.out")],
        &[("out", "Window.out")],
        serde_json::to_value(WindowIntoPayload { windowing_strategy: "fixed".to_string() }).unwrap(),
    ));
    add(transform(
        "Sessionize",
        urns::WINDOW_INTO,
        &[("in", "Window.out")],
        &[("out", "Sessionize.out")],
        serde_json::to_value(WindowIntoPayload { windowing_strategy: "custom".to_string() }).unwrap(),
    ));
    add(transform(
        "Enrich",
        urns::PAR_DO,
        &[("main", "Sessionize.out"), ("totals", "Count/GroupByKey.out")],
        &[("out", "Enrich.out")],
        serde_json::to_value(ParDoPayload {
            do_fn: FnRef::Registered { value: json!({"my_crate::Enrich": {"factor": 2, "label": "x"}}) },
            side_inputs: vec![SideInputSpec { tag: "totals".to_string(), view: ViewKind::MultiMap }],
            outputs: vec!["out".to_string()],
        })
        .unwrap(),
    ));

    g.root_transforms =
        ["Create", "Parse", "Count", "Flatten", "Window", "Sessionize", "Enrich"].map(String::from).to_vec();
    g
}

/// Every trigger variant, alone (with simple children) and nested.
pub fn all_triggers() -> Vec<Trigger> {
    let b = Box::new;
    vec![
        Trigger::Default,
        Trigger::Never,
        Trigger::Always,
        Trigger::AfterCount { count: 0 },
        Trigger::AfterCount { count: u64::MAX },
        Trigger::AfterWatermark { early: None, late: None },
        Trigger::AfterWatermark { early: Some(b(Trigger::AfterCount { count: 3 })), late: None },
        Trigger::AfterWatermark { early: None, late: Some(b(Trigger::Never)) },
        Trigger::AfterProcessingTime { transforms: vec![] },
        Trigger::AfterProcessingTime {
            transforms: vec![
                TimeTransform::AlignTo { period_ms: 60_000, offset_ms: -1 },
                TimeTransform::Delay { delay_ms: i64::MIN },
                TimeTransform::Delay { delay_ms: 0 },
            ],
        },
        Trigger::Repeatedly { trigger: b(Trigger::Always) },
        Trigger::AfterEach { triggers: vec![] },
        Trigger::AfterEach { triggers: vec![Trigger::AfterCount { count: 1 }, Trigger::Never] },
        Trigger::AfterAny { triggers: vec![] },
        Trigger::AfterAny { triggers: vec![Trigger::Default, Trigger::Always, Trigger::Never] },
        Trigger::AfterAll { triggers: vec![] },
        Trigger::AfterAll { triggers: vec![Trigger::AfterCount { count: 2 }] },
        Trigger::OrFinally { main: b(Trigger::Always), finally: b(Trigger::AfterCount { count: 9 }) },
        fixed_windowing().trigger,
        custom_windowing().trigger,
    ]
}

/// Every window function variant.
pub fn all_window_fns() -> Vec<WindowFnSpec> {
    vec![
        WindowFnSpec::Global,
        WindowFnSpec::Fixed { size_ms: 60_000, offset_ms: 0 },
        WindowFnSpec::Fixed { size_ms: i64::MAX, offset_ms: i64::MIN },
        WindowFnSpec::Sliding { size_ms: 10_000, period_ms: 1_000, offset_ms: 500 },
        WindowFnSpec::Sessions { gap_ms: 30_000 },
        WindowFnSpec::Custom { name: "a::B".to_string(), merging: false, payload: serde_json::Value::Null },
        WindowFnSpec::Custom { name: String::new(), merging: true, payload: json!("") },
        WindowFnSpec::Custom { name: "x".to_string(), merging: true, payload: json!({"b": [1, -2, 3.5], "a": {}}) },
        custom_windowing().window_fn,
        WindowFnSpec::Consumed {
            cause: "consumed by 'G'".to_string(),
            original: Box::new(WindowFnSpec::Sessions { gap_ms: 30_000 }),
        },
    ]
}

pub const ACCUMULATION_MODES: [AccumulationMode; 3] =
    [AccumulationMode::Discarding, AccumulationMode::Accumulating, AccumulationMode::Retracting];
pub const TIMESTAMP_COMBINERS: [TimestampCombiner; 3] =
    [TimestampCombiner::EndOfWindow, TimestampCombiner::Earliest, TimestampCombiner::Latest];
pub const CLOSING_BEHAVIORS: [ClosingBehavior; 2] = [ClosingBehavior::FireAlways, ClosingBehavior::FireIfNonEmpty];
pub const ON_TIME_BEHAVIORS: [OnTimeBehavior; 2] = [OnTimeBehavior::FireAlways, OnTimeBehavior::FireIfNonEmpty];

/// Every combination of the windowing strategy's enums.
pub fn all_enum_strategies() -> Vec<WindowingStrategy> {
    let mut all = Vec::new();
    for accumulation_mode in ACCUMULATION_MODES {
        for timestamp_combiner in TIMESTAMP_COMBINERS {
            for closing_behavior in CLOSING_BEHAVIORS {
                for on_time_behavior in ON_TIME_BEHAVIORS {
                    all.push(WindowingStrategy {
                        accumulation_mode,
                        timestamp_combiner,
                        closing_behavior,
                        on_time_behavior,
                        allowed_lateness_ms: all.len() as i64 * 1000 - 5000,
                        ..WindowingStrategy::global_default()
                    });
                }
            }
        }
    }
    all
}
