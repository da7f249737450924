//! Create and the element-wise transforms: Map, FlatMap, Filter, ParDo, WithTimestamps, and the
//! key-value helpers.

use crate::{run_ok, Reify};
use runnel::prelude::*;

/// `Create::of` gives exactly its elements, in the global window, at the minimum timestamp, in
/// the pane of elements that never went through a trigger.
pub fn create_of_gives_elements_in_global_window_at_min_timestamp(options: PipelineOptions) {
    let p = Pipeline::new(options);
    let xs = p.apply("Create", Create::of(vec![3i64, 1, 2, 1]));
    xs.apply("CheckValues", PAssert::equal_in_any_order(vec![1i64, 1, 2, 3]));
    xs.apply("Reify", Reify).apply(
        "CheckMetadata",
        PAssert::equal_in_any_order(
            [1i64, 1, 2, 3].into_iter().map(|x| (x, Window::Global, PaneInfo::NO_FIRING, Timestamp::MIN)).collect(),
        ),
    );
    run_ok(&p);
}

/// `Create::of(vec![])` gives an empty PCollection.
pub fn create_of_empty_gives_empty_pcollection(options: PipelineOptions) {
    let p = Pipeline::new(options);
    let xs = p.apply("Create", Create::of(Vec::<String>::new()));
    xs.apply("Check", PAssert::is_empty());
    run_ok(&p);
}

/// `Create::timestamped` gives each element its timestamp (read by a DoFn via `ctx.timestamp()`).
pub fn create_timestamped_keeps_timestamps(options: PipelineOptions) {
    let p = Pipeline::new(options);
    let xs = p.apply("Create", Create::timestamped(vec![("a".to_string(), Timestamp(5)), ("b".into(), Timestamp(-7))]));
    let stamped = xs.apply(
        "ReadTimestamp",
        ParDo::from_fn(|x: String, ctx: &mut DoFnContext<'_, '_, (String, i64)>| {
            let ts = ctx.timestamp().millis();
            ctx.emit((x, ts));
            Ok(())
        }),
    );
    stamped.apply("Check", PAssert::equal_in_any_order(vec![("a".to_string(), 5i64), ("b".to_string(), -7)]));
    run_ok(&p);
}

/// `Map` applies its function to each element.
pub fn map_applies_function_to_each_element(options: PipelineOptions) {
    let p = Pipeline::new(options);
    let xs = p.apply("Create", Create::of(vec![1i64, 2, 3]));
    let ys = xs.map("Square", |x| x * x);
    let zs = ys.apply("Describe", Map::new(|x: i64| format!("<{x}>")));
    zs.apply("Check", PAssert::equal_in_any_order(vec!["<1>".to_string(), "<4>".into(), "<9>".into()]));
    run_ok(&p);
}

/// `FlatMap` emits every element of what its function returns, possibly none.
pub fn flat_map_emits_zero_or_more_per_element(options: PipelineOptions) {
    let p = Pipeline::new(options);
    let lines = p.apply("Create", Create::of(vec!["a b".to_string(), String::new(), "c  a".into()]));
    let words = lines.flat_map("Split", |l: String| l.split_whitespace().map(String::from).collect::<Vec<_>>());
    let repeated = p
        .apply("Numbers", Create::of(vec![0u32, 1, 3]))
        .apply("Repeat", FlatMap::new(|n: u32| std::iter::repeat_n(n, n as usize)));
    words.apply("CheckWords", PAssert::equal_in_any_order(vec!["a".to_string(), "b".into(), "c".into(), "a".into()]));
    repeated.apply("CheckRepeated", PAssert::equal_in_any_order(vec![1u32, 3, 3, 3]));
    run_ok(&p);
}

/// `Filter` keeps exactly the elements for which the predicate holds.
pub fn filter_keeps_matching_elements(options: PipelineOptions) {
    let p = Pipeline::new(options);
    let xs = p.apply("Create", Create::of((1i64..=10).collect()));
    xs.filter("Even", |x| x % 2 == 0).apply("CheckEven", PAssert::equal_in_any_order(vec![2i64, 4, 6, 8, 10]));
    xs.apply("None", Filter::new(|_: &i64| false)).apply("CheckNone", PAssert::is_empty());
    run_ok(&p);
}

/// Map, FlatMap and Filter keep each element's timestamp.
pub fn element_wise_transforms_keep_timestamps(options: PipelineOptions) {
    let p = Pipeline::new(options);
    let xs =
        p.apply("Create", Create::timestamped(vec![(1i64, Timestamp(10)), (2, Timestamp(20)), (3, Timestamp(30))]));
    let out = xs
        .map("Double", |x| x * 2)
        .flat_map("Twice", |x| vec![x, x + 1])
        .filter("DropOdd", |x| x % 2 == 0)
        .apply("Reify", Reify)
        .map("Project", |(x, w, _, ts)| (x, w, ts.millis()));
    out.apply(
        "Check",
        PAssert::equal_in_any_order(vec![
            (2i64, Window::Global, 10i64),
            (4, Window::Global, 20),
            (6, Window::Global, 30),
        ]),
    );
    run_ok(&p);
}

/// Where a [`Lifecycle`] DoFn is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    New,
    SetUp,
    InBundle,
    BetweenBundles,
    TornDown,
}

/// A DoFn that checks the order of its lifecycle calls (failing the run on a violation), emits
/// `("element", x)` per element and `("bundle_sum", sum of the bundle)` from `finish_bundle`.
#[derive(Clone)]
struct Lifecycle {
    phase: Phase,
    bundle_sum: i64,
}

impl Lifecycle {
    fn step(&mut self, call: &str, allowed: &[Phase], next: Phase) -> Result<(), BoxError> {
        if !allowed.contains(&self.phase) {
            return Err(format!("lifecycle violated: {call} called in phase {:?}", self.phase).into());
        }
        self.phase = next;
        Ok(())
    }
}

impl DoFn for Lifecycle {
    type In = i64;
    type Out = (String, i64);

    fn setup(&mut self) -> Result<(), BoxError> {
        self.step("setup", &[Phase::New], Phase::SetUp)
    }

    fn start_bundle(&mut self) -> Result<(), BoxError> {
        self.bundle_sum = 0;
        self.step("start_bundle", &[Phase::SetUp, Phase::BetweenBundles], Phase::InBundle)
    }

    fn process(&mut self, x: i64, ctx: &mut DoFnContext<'_, '_, (String, i64)>) -> Result<(), BoxError> {
        self.step("process", &[Phase::InBundle], Phase::InBundle)?;
        self.bundle_sum += x;
        ctx.emit(("element".to_string(), x));
        Ok(())
    }

    fn finish_bundle(&mut self, ctx: &mut DoFnContext<'_, '_, (String, i64)>) -> Result<(), BoxError> {
        self.step("finish_bundle", &[Phase::InBundle], Phase::BetweenBundles)?;
        ctx.emit(("bundle_sum".to_string(), self.bundle_sum));
        Ok(())
    }

    fn teardown(&mut self) -> Result<(), BoxError> {
        self.step("teardown", &[Phase::SetUp, Phase::BetweenBundles], Phase::TornDown)
    }
}

/// A struct DoFn gets setup, then start_bundle / process / finish_bundle per bundle, then teardown,
/// in that order; what it emits from finish_bundle reaches the output. However the runner cuts
/// bundles, the bundle sums add up to the total.
pub fn pardo_struct_dofn_follows_lifecycle_and_emits_in_finish_bundle(options: PipelineOptions) {
    // Small source bundles, so that a runner that honours the option runs several bundles.
    let p = Pipeline::new(options.with_bundle_size(3));
    let xs = p.apply("Create", Create::of((1i64..=20).collect()));
    let out = xs.apply("Lifecycle", ParDo::of(Lifecycle { phase: Phase::New, bundle_sum: 0 }));
    out.apply("Sum", Combine::per_key(combine::Sum::<i64>::new()))
        .apply("Check", PAssert::equal_in_any_order(vec![("bundle_sum".to_string(), 210i64), ("element".into(), 210)]));
    out.filter("Elements", |(k, _)| k == "element")
        .apply("Values", Values)
        .apply("CheckElements", PAssert::equal_in_any_order((1i64..=20).collect()));
    run_ok(&p);
}

/// `ParDo::from_fn` sees the element's context: its transform's unique name, its window, and
/// that it is not a retraction.
pub fn pardo_from_fn_sees_element_context(options: PipelineOptions) {
    let p = Pipeline::new(options);
    let xs = p.apply("Create", Create::of(vec![1u8, 2]));
    let out = xs.apply(
        "ReadContext",
        ParDo::from_fn(|x: u8, ctx: &mut DoFnContext<'_, '_, (u8, String, Window, bool)>| {
            let seen = (x, ctx.transform_name().to_string(), ctx.window(), ctx.is_retraction());
            ctx.emit(seen);
            Ok(())
        }),
    );
    out.apply(
        "Check",
        PAssert::equal_in_any_order(vec![
            (1u8, "ReadContext".to_string(), Window::Global, false),
            (2, "ReadContext".to_string(), Window::Global, false),
        ]),
    );
    run_ok(&p);
}

/// A ParDo with tagged outputs (`with_output`) routes `emit_to` to each tag's PCollection
/// (`ParDoOutputs::get`) and `emit` to the main output; tagged outputs may have other types.
pub fn pardo_tagged_outputs_route_to_their_pcollections(options: PipelineOptions) {
    let p = Pipeline::new(options);
    let evens = OutputTag::<i64>::new("evens");
    let names = OutputTag::<String>::new("names");
    let xs = p.apply("Create", Create::of((1i64..=6).collect()));
    let (e, n) = (evens.clone(), names.clone());
    let outs = xs.apply(
        "Split",
        ParDo::from_fn(move |x: i64, ctx: &mut DoFnContext<'_, '_, i64>| {
            if x % 2 == 0 {
                ctx.emit_to(&e, x);
            } else {
                ctx.emit(x);
            }
            if x <= 2 {
                ctx.emit_to(&n, format!("n{x}"));
            }
            Ok(())
        })
        .with_output(&evens)
        .with_output(&names),
    );
    outs.main().apply("CheckMain", PAssert::equal_in_any_order(vec![1i64, 3, 5]));
    outs.get(&evens).apply("CheckEvens", PAssert::equal_in_any_order(vec![2i64, 4, 6]));
    outs.get(&names).apply("CheckNames", PAssert::equal_in_any_order(vec!["n1".to_string(), "n2".into()]));
    run_ok(&p);
}

/// `WithTimestamps` sets each element's timestamp from the element.
pub fn with_timestamps_sets_timestamps(options: PipelineOptions) {
    let p = Pipeline::new(options);
    let xs = p.apply("Create", Create::of(vec![1i64, 2, 3]));
    let stamped = xs.apply("Stamp", WithTimestamps(|x: &i64| Timestamp(x * 100)));
    stamped.apply("CheckValues", PAssert::equal_in_any_order(vec![1i64, 2, 3]));
    stamped.apply("Reify", Reify).map("Project", |(x, w, _, ts)| (x, w, ts)).apply(
        "CheckTimestamps",
        PAssert::equal_in_any_order(vec![
            (1i64, Window::Global, Timestamp(100)),
            (2, Window::Global, Timestamp(200)),
            (3, Window::Global, Timestamp(300)),
        ]),
    );
    run_ok(&p);
}

fn pairs(p: &Pipeline) -> PCollection<(String, i64)> {
    p.apply("Create", Create::of(vec![("a".to_string(), 1i64), ("b".into(), 2), ("a".into(), 3)]))
}

/// `Keys` gives the key of each pair.
pub fn keys_extracts_keys(options: PipelineOptions) {
    let p = Pipeline::new(options);
    pairs(&p)
        .apply("Keys", Keys)
        .apply("Check", PAssert::equal_in_any_order(vec!["a".to_string(), "b".into(), "a".into()]));
    run_ok(&p);
}

/// `Values` gives the value of each pair.
pub fn values_extracts_values(options: PipelineOptions) {
    let p = Pipeline::new(options);
    pairs(&p).apply("Values", Values).apply("Check", PAssert::equal_in_any_order(vec![1i64, 2, 3]));
    run_ok(&p);
}

/// `KvSwap` turns `(k, v)` into `(v, k)`.
pub fn kv_swap_swaps_pairs(options: PipelineOptions) {
    let p = Pipeline::new(options);
    pairs(&p)
        .apply("Swap", KvSwap)
        .apply("Check", PAssert::equal_in_any_order(vec![(1i64, "a".to_string()), (2, "b".into()), (3, "a".into())]));
    run_ok(&p);
}

/// `WithKeys` pairs each element with the key its function computes.
pub fn with_keys_pairs_with_computed_key(options: PipelineOptions) {
    let p = Pipeline::new(options);
    let words = p.apply("Create", Create::of(vec!["apple".to_string(), "fig".into(), "kiwi".into()]));
    words.apply("WithKeys", WithKeys(|w: &String| w.len())).apply(
        "Check",
        PAssert::equal_in_any_order(vec![(5usize, "apple".to_string()), (3, "fig".into()), (4, "kiwi".into())]),
    );
    run_ok(&p);
}

/// Many elements (more than any batch or bundle of the runners) all arrive, through a ParDo that
/// emits several outputs per input.
pub fn many_elements_cross_batch_and_bundle_boundaries(options: PipelineOptions) {
    let p = Pipeline::new(options);
    let xs = p.apply("Create", Create::of((0u64..5000).collect()));
    let ys = xs.flat_map("Triple", |x| [x, x, x]).filter("NotMultipleOf7", |x| x % 7 != 0);
    let expected_count = 3 * (5000 - 5000u64.div_ceil(7));
    let expected_sum: u64 = 3 * (0u64..5000).filter(|x| x % 7 != 0).sum::<u64>();
    ys.apply("Count", Combine::globally(combine::Count::new()))
        .apply("CheckCount", PAssert::equal_in_any_order(vec![expected_count]));
    ys.apply("Sum", Combine::globally(combine::Sum::new()))
        .apply("CheckSum", PAssert::equal_in_any_order(vec![expected_sum]));
    ys.apply("Distinct", Distinct::new())
        .apply("CountDistinct", Combine::globally(combine::Count::new()))
        .apply("CheckDistinct", PAssert::equal_in_any_order(vec![expected_count / 3]));
    run_ok(&p);
}
