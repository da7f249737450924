//! Transforms with several inputs or outputs: Flatten, Partition; and Reshuffle.

use crate::run_ok;
use runnel::prelude::*;

/// `Flatten` of two PCollections holds the elements of both.
pub fn flatten_two_inputs(options: PipelineOptions) {
    let p = Pipeline::new(options);
    let a = p.apply("A", Create::of(vec![1i64, 2]));
    let b = p.apply("B", Create::of(vec![2i64, 3]));
    p.apply_to("Flatten", vec![a, b], Flatten).apply("Check", PAssert::equal_in_any_order(vec![1i64, 2, 2, 3]));
    run_ok(&p);
}

/// `Flatten` of three PCollections, one of them empty and one computed, holds all elements.
pub fn flatten_three_inputs(options: PipelineOptions) {
    let p = Pipeline::new(options);
    let a = p.apply("A", Create::of(vec!["a".to_string()]));
    let b = p.apply("B", Create::of(Vec::<String>::new()));
    let c = p.apply("C", Create::of(vec![1u8, 2])).map("Name", |x| format!("c{x}"));
    p.apply_to("Flatten", vec![a, b, c], Flatten)
        .apply("Check", PAssert::equal_in_any_order(vec!["a".to_string(), "c1".into(), "c2".into()]));
    run_ok(&p);
}

/// `Flatten` of the same PCollection twice holds each element twice.
pub fn flatten_same_pcollection_twice_duplicates_elements(options: PipelineOptions) {
    let p = Pipeline::new(options);
    let a = p.apply("A", Create::of(vec![1i64, 2]));
    p.apply_to("Flatten", vec![a.clone(), a], Flatten).apply("Check", PAssert::equal_in_any_order(vec![1i64, 1, 2, 2]));
    run_ok(&p);
}

/// `Partition` sends each element to the PCollection its function names.
pub fn partition_splits_by_function(options: PipelineOptions) {
    let p = Pipeline::new(options);
    let xs = p.apply("Create", Create::of((0i64..10).collect()));
    let parts = xs.apply("ByMod3", Partition::new(3, |x: &i64, n| (*x as usize) % n));
    assert_eq!(parts.len(), 3, "Partition::new(3, ..) must give 3 PCollections");
    parts[0].apply("Check0", PAssert::equal_in_any_order(vec![0i64, 3, 6, 9]));
    parts[1].apply("Check1", PAssert::equal_in_any_order(vec![1i64, 4, 7]));
    parts[2].apply("Check2", PAssert::equal_in_any_order(vec![2i64, 5, 8]));
    run_ok(&p);
}

/// `Reshuffle` keeps the elements and their timestamps.
pub fn reshuffle_keeps_elements(options: PipelineOptions) {
    let p = Pipeline::new(options);
    let xs = p.apply("Create", Create::timestamped(vec![(1i64, Timestamp(1)), (2, Timestamp(2)), (2, Timestamp(2))]));
    xs.apply("Reshuffle", Reshuffle)
        .apply("Reify", crate::Reify)
        .map("Project", |(x, _, _, ts)| (x, ts))
        .apply("Check", PAssert::equal_in_any_order(vec![(1i64, Timestamp(1)), (2, Timestamp(2)), (2, Timestamp(2))]));
    run_ok(&p);
}
