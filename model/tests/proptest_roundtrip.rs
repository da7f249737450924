//! Random windowing strategies survive JSON and protobuf round trips.

use proptest::prelude::*;
use runnel_model::{
    AccumulationMode, ClosingBehavior, Graph, OnTimeBehavior, TimeTransform, TimestampCombiner, Trigger, WindowFnSpec,
    WindowingStrategy,
};
use serde_json::Value;

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_filter("JSON has no NaN or infinity", |f| f.is_finite()).prop_map(Value::from),
        ".*".prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(".*", inner, 0..4).prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn window_fn() -> impl Strategy<Value = WindowFnSpec> {
    prop_oneof![
        Just(WindowFnSpec::Global),
        (any::<i64>(), any::<i64>()).prop_map(|(size_ms, offset_ms)| WindowFnSpec::Fixed { size_ms, offset_ms }),
        (any::<i64>(), any::<i64>(), any::<i64>())
            .prop_map(|(size_ms, period_ms, offset_ms)| { WindowFnSpec::Sliding { size_ms, period_ms, offset_ms } }),
        any::<i64>().prop_map(|gap_ms| WindowFnSpec::Sessions { gap_ms }),
        (".*", any::<bool>(), json_value())
            .prop_map(|(name, merging, payload)| { WindowFnSpec::Custom { name, merging, payload } }),
        (".*", any::<i64>()).prop_map(|(cause, gap_ms)| WindowFnSpec::Consumed {
            cause,
            original: Box::new(WindowFnSpec::Sessions { gap_ms })
        }),
    ]
}

fn time_transform() -> impl Strategy<Value = TimeTransform> {
    prop_oneof![
        any::<i64>().prop_map(|delay_ms| TimeTransform::Delay { delay_ms }),
        (any::<i64>(), any::<i64>()).prop_map(|(period_ms, offset_ms)| TimeTransform::AlignTo { period_ms, offset_ms }),
    ]
}

fn trigger() -> impl Strategy<Value = Trigger> {
    let leaf = prop_oneof![
        Just(Trigger::Default),
        Just(Trigger::Never),
        Just(Trigger::Always),
        any::<u64>().prop_map(|count| Trigger::AfterCount { count }),
        prop::collection::vec(time_transform(), 0..4)
            .prop_map(|transforms| Trigger::AfterProcessingTime { transforms }),
    ];
    leaf.prop_recursive(5, 48, 4, |inner| {
        let boxed = inner.clone().prop_map(Box::new);
        let list = prop::collection::vec(inner.clone(), 0..4);
        prop_oneof![
            (prop::option::of(boxed.clone()), prop::option::of(boxed.clone()))
                .prop_map(|(early, late)| Trigger::AfterWatermark { early, late }),
            boxed.clone().prop_map(|trigger| Trigger::Repeatedly { trigger }),
            list.clone().prop_map(|triggers| Trigger::AfterEach { triggers }),
            list.clone().prop_map(|triggers| Trigger::AfterAny { triggers }),
            list.prop_map(|triggers| Trigger::AfterAll { triggers }),
            (boxed.clone(), boxed).prop_map(|(main, finally)| Trigger::OrFinally { main, finally }),
        ]
    })
}

fn windowing_strategy() -> impl Strategy<Value = WindowingStrategy> {
    (
        window_fn(),
        trigger(),
        prop_oneof![
            Just(AccumulationMode::Discarding),
            Just(AccumulationMode::Accumulating),
            Just(AccumulationMode::Retracting)
        ],
        any::<i64>(),
        prop_oneof![
            Just(TimestampCombiner::EndOfWindow),
            Just(TimestampCombiner::Earliest),
            Just(TimestampCombiner::Latest)
        ],
        prop_oneof![Just(ClosingBehavior::FireAlways), Just(ClosingBehavior::FireIfNonEmpty)],
        prop_oneof![Just(OnTimeBehavior::FireAlways), Just(OnTimeBehavior::FireIfNonEmpty)],
    )
        .prop_map(
            |(
                window_fn,
                trigger,
                accumulation_mode,
                allowed_lateness_ms,
                timestamp_combiner,
                closing_behavior,
                on_time_behavior,
            )| WindowingStrategy {
                window_fn,
                trigger,
                accumulation_mode,
                allowed_lateness_ms,
                timestamp_combiner,
                closing_behavior,
                on_time_behavior,
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn trigger_round_trips(t in trigger()) {
        prop_assert_eq!(Trigger::from_proto(t.to_proto()).unwrap(), t.clone());
        let json = serde_json::to_string(&t).unwrap();
        prop_assert_eq!(serde_json::from_str::<Trigger>(&json).unwrap(), t);
    }

    #[test]
    fn window_fn_round_trips(w in window_fn()) {
        prop_assert_eq!(WindowFnSpec::from_proto(w.to_proto()).unwrap(), w.clone());
        let json = serde_json::to_string(&w).unwrap();
        prop_assert_eq!(serde_json::from_str::<WindowFnSpec>(&json).unwrap(), w);
    }

    #[test]
    fn windowing_strategy_round_trips(s in windowing_strategy()) {
        prop_assert_eq!(WindowingStrategy::from_proto(s.to_proto()).unwrap(), s.clone());

        let mut g = Graph::default();
        g.windowing_strategies.insert("ws".to_string(), s);
        let bytes = g.to_proto_bytes();
        let back = Graph::from_proto_bytes(&bytes).unwrap();
        prop_assert_eq!(&back, &g);
        prop_assert_eq!(back.to_proto_bytes(), bytes);

        let json = g.to_json();
        let back = Graph::from_json(&json).unwrap();
        prop_assert_eq!(&back, &g);
        prop_assert_eq!(back.to_json(), json);
    }
}
