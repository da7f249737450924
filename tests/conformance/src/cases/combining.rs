//! Combine per key, globally and on grouped values, and the built-in CombineFns.

use crate::run_ok;
use runnel::combine::{Count, Max, Mean, Min, Sum, ToList, Top};
use runnel::prelude::*;
use serde::{Deserialize, Serialize};

fn scores(p: &Pipeline) -> PCollection<(String, i64)> {
    p.apply(
        "Create",
        Create::of(vec![("a".to_string(), 4i64), ("b".into(), 10), ("a".into(), -1), ("a".into(), 7), ("c".into(), 0)]),
    )
}

/// `Combine::per_key(Sum)` sums the values of each key.
pub fn combine_per_key_with_builtin_sum(options: PipelineOptions) {
    let p = Pipeline::new(options);
    scores(&p)
        .apply("Sum", Combine::per_key(Sum::new()))
        .apply("Check", PAssert::equal_in_any_order(vec![("a".to_string(), 10i64), ("b".into(), 10), ("c".into(), 0)]));
    run_ok(&p);
}

/// A user CombineFn with an accumulator of another type than its input and output.
#[derive(Clone)]
struct MinMaxSpread;

/// The accumulator of [`MinMaxSpread`].
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Range {
    lo: i64,
    hi: i64,
}

impl CombineFn for MinMaxSpread {
    type In = i64;
    type Acc = Option<Range>;
    type Out = String;
    fn create_accumulator(&self) -> Option<Range> {
        None
    }
    fn add_input(&self, acc: &mut Option<Range>, x: i64) {
        self.merge_accumulators(acc, Some(Range { lo: x, hi: x }));
    }
    fn merge_accumulators(&self, acc: &mut Option<Range>, other: Option<Range>) {
        *acc = match (acc.take(), other) {
            (Some(a), Some(b)) => Some(Range { lo: a.lo.min(b.lo), hi: a.hi.max(b.hi) }),
            (a, b) => a.or(b),
        };
    }
    fn extract_output(&self, acc: Option<Range>) -> String {
        match acc {
            Some(r) => format!("{}..={} ({})", r.lo, r.hi, r.hi - r.lo),
            None => "empty".to_string(),
        }
    }
}

/// `combine_per_key` with a user CombineFn whose accumulator differs from input and output.
pub fn combine_per_key_with_user_combine_fn(options: PipelineOptions) {
    let p = Pipeline::new(options);
    scores(&p).combine_per_key("Spread", MinMaxSpread).apply(
        "Check",
        PAssert::equal_in_any_order(vec![
            ("a".to_string(), "-1..=7 (8)".to_string()),
            ("b".into(), "10..=10 (0)".into()),
            ("c".into(), "0..=0 (0)".into()),
        ]),
    );
    run_ok(&p);
}

/// `Combine::globally(Sum)` gives one element: the sum of all.
pub fn combine_globally_sums_all_elements(options: PipelineOptions) {
    let p = Pipeline::new(options);
    let xs = p.apply("Create", Create::of((1u64..=100).collect()));
    xs.apply("Sum", Combine::globally(Sum::new())).apply("Check", PAssert::equal_in_any_order(vec![5050u64]));
    run_ok(&p);
}

/// In the global window, `Combine::globally` of an empty input gives exactly one output: the
/// result of an empty accumulator (Sum 0, Count 0, Max None, ToList []), as in Beam.
pub fn combine_globally_of_empty_input_gives_one_default(options: PipelineOptions) {
    let p = Pipeline::new(options);
    let xs = p.apply("Create", Create::of(Vec::<i64>::new()));
    xs.apply("Sum", Combine::globally(Sum::new())).apply("CheckSum", PAssert::equal_in_any_order(vec![0i64]));
    xs.apply("Count", Combine::globally(Count::new())).apply("CheckCount", PAssert::equal_in_any_order(vec![0u64]));
    xs.apply("Max", Combine::globally(Max::new())).apply("CheckMax", PAssert::equal_in_any_order(vec![None::<i64>]));
    xs.apply("ToList", Combine::globally(ToList::new()))
        .apply("CheckToList", PAssert::equal_in_any_order(vec![Vec::<i64>::new()]));
    xs.apply("Spread", Combine::globally(MinMaxSpread))
        .apply("CheckSpread", PAssert::equal_in_any_order(vec!["empty".to_string()]));
    run_ok(&p);
}

/// `Combine::grouped_values` combines the value lists that GroupByKey made.
pub fn combine_grouped_values_after_group_by_key(options: PipelineOptions) {
    let p = Pipeline::new(options);
    scores(&p)
        .group_by_key("Group")
        .apply("SumGroups", Combine::grouped_values(Sum::new()))
        .apply("Check", PAssert::equal_in_any_order(vec![("a".to_string(), 10i64), ("b".into(), 10), ("c".into(), 0)]));
    run_ok(&p);
}

/// `Count` counts the elements, globally and per key.
pub fn combine_count(options: PipelineOptions) {
    let p = Pipeline::new(options);
    let kvs = scores(&p);
    kvs.apply("CountAll", Combine::globally(Count::new())).apply("CheckAll", PAssert::equal_in_any_order(vec![5u64]));
    kvs.apply("CountPerKey", Combine::per_key(Count::new())).apply(
        "CheckPerKey",
        PAssert::equal_in_any_order(vec![("a".to_string(), 3u64), ("b".into(), 1), ("c".into(), 1)]),
    );
    run_ok(&p);
}

/// `Mean` averages the elements, globally and per key.
pub fn combine_mean(options: PipelineOptions) {
    let p = Pipeline::new(options);
    let xs = p.apply("Create", Create::of(vec![1i32, 2, 3, 4]));
    xs.apply("Mean", Combine::globally(Mean::new())).apply("Check", PAssert::equal_in_any_order(vec![2.5f64]));
    let kvs = p.apply("Pairs", Create::of(vec![("x".to_string(), 1.0f64), ("x".into(), 2.0), ("y".into(), -4.0)]));
    kvs.apply("MeanPerKey", Combine::per_key(Mean::new()))
        .apply("CheckPerKey", PAssert::equal_in_any_order(vec![("x".to_string(), 1.5f64), ("y".into(), -4.0)]));
    run_ok(&p);
}

/// `Min` and `Max` give the smallest and largest element.
pub fn combine_min_and_max(options: PipelineOptions) {
    let p = Pipeline::new(options);
    let kvs = scores(&p);
    let values = kvs.apply("Values", Values);
    values
        .apply("Min", Combine::globally(Min::new()))
        .apply("CheckMin", PAssert::equal_in_any_order(vec![Some(-1i64)]));
    values
        .apply("Max", Combine::globally(Max::new()))
        .apply("CheckMax", PAssert::equal_in_any_order(vec![Some(10i64)]));
    kvs.apply("MaxPerKey", Combine::per_key(Max::new())).apply(
        "CheckMaxPerKey",
        PAssert::equal_in_any_order(vec![("a".to_string(), Some(7i64)), ("b".into(), Some(10)), ("c".into(), Some(0))]),
    );
    run_ok(&p);
}

/// `Top::largest(n)` gives the n largest, largest first.
pub fn combine_top_largest(options: PipelineOptions) {
    let p = Pipeline::new(options);
    let xs = p.apply("Numbers", Create::of(vec![5i64, 1, 9, 3, 9, 7, 2, 8, 6, 4, 0, 11, -3, 10, 12, 13, 14]));
    xs.apply("Top3", Combine::globally(Top::largest(3)))
        .apply("Check", PAssert::equal_in_any_order(vec![vec![14i64, 13, 12]]));
    xs.apply("Top0", Combine::globally(Top::largest(0)))
        .apply("CheckZero", PAssert::equal_in_any_order(vec![Vec::<i64>::new()]));
    scores(&p).apply("Top2PerKey", Combine::per_key(Top::largest(2))).apply(
        "CheckPerKey",
        PAssert::equal_in_any_order(vec![
            ("a".to_string(), vec![7i64, 4]),
            ("b".into(), vec![10]),
            ("c".into(), vec![0]),
        ]),
    );
    run_ok(&p);
}

/// `Top::smallest(n)` gives the n smallest, smallest first (all of them if fewer than n).
pub fn combine_top_smallest(options: PipelineOptions) {
    let p = Pipeline::new(options);
    let xs = p.apply("Create", Create::of(vec![5i64, 1, 9, 3, 9, 7, 2, 8, 6, 4, 0, 11, -3, 10, 12, 13, 14, 1]));
    xs.apply("Bottom4", Combine::globally(Top::smallest(4)))
        .apply("Check", PAssert::equal_in_any_order(vec![vec![-3i64, 0, 1, 1]]));
    let few = p.apply("Few", Create::of(vec!["b".to_string(), "a".into()]));
    few.apply("Bottom5", Combine::globally(Top::smallest(5)))
        .apply("CheckFew", PAssert::equal_in_any_order(vec![vec!["a".to_string(), "b".into()]]));
    run_ok(&p);
}

/// `ToList` gives all elements in one list (sorted here: its order is unspecified).
pub fn combine_to_list(options: PipelineOptions) {
    let p = Pipeline::new(options);
    let xs = p.apply("Create", Create::of(vec![3i64, 1, 2, 1]));
    xs.apply("ToList", Combine::globally(ToList::new()))
        .map("Sort", |mut v: Vec<i64>| {
            v.sort();
            v
        })
        .apply("Check", PAssert::equal_in_any_order(vec![vec![1i64, 1, 2, 3]]));
    run_ok(&p);
}

/// `CountPerElement` counts each distinct element.
pub fn count_per_element_counts_duplicates(options: PipelineOptions) {
    let p = Pipeline::new(options);
    let words = p.apply("Create", Create::of(["x", "y", "x", "z", "x", "y"].map(String::from).to_vec()));
    words
        .apply("Count", CountPerElement::new())
        .apply("Check", PAssert::equal_in_any_order(vec![("x".to_string(), 3u64), ("y".into(), 2), ("z".into(), 1)]));
    run_ok(&p);
}

/// `Distinct` keeps one of each element.
pub fn distinct_removes_duplicates(options: PipelineOptions) {
    let p = Pipeline::new(options);
    let xs = p.apply("Create", Create::of(vec![4i64, 1, 4, 4, 2, 1]));
    xs.apply("Distinct", Distinct::new()).apply("Check", PAssert::equal_in_any_order(vec![1i64, 2, 4]));
    run_ok(&p);
}
