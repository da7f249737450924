//! Failures every runner reports the same way: user errors and panics name the transform,
//! failed assertions fail the run, construction errors are caught before running.

use crate::{assert_contains_all, expect_run_failure};
use runnel::prelude::*;

/// A DoFn returning `Err` fails the run with an error naming the transform's unique name (here
/// nested in a composite) and the DoFn's message.
pub fn dofn_error_fails_run_naming_transform(options: PipelineOptions) {
    let message = expect_run_failure(options, |p| {
        let xs = p.apply("Create", Create::of(vec![1i64, 2, 3]));
        xs.apply("Outer", FailingComposite).apply("Check", PAssert::equal_in_any_order(vec![1i64, 2, 3]));
    });
    assert_contains_all(&message, &["'Outer/RejectTwo'", "element 2 is not allowed"]);
}

/// A composite whose inner ParDo fails on the element 2.
struct FailingComposite;

impl PTransform<PCollection<i64>> for FailingComposite {
    type Output = PCollection<i64>;
    fn expand(self, xs: PCollection<i64>) -> PCollection<i64> {
        xs.apply(
            "RejectTwo",
            ParDo::from_fn(|x: i64, ctx: &mut DoFnContext<'_, '_, i64>| {
                if x == 2 {
                    return Err(format!("element {x} is not allowed").into());
                }
                ctx.emit(x);
                Ok(())
            }),
        )
    }
}

/// A panicking DoFn fails the run (no hang, no abort) with an error naming the transform and the
/// panic message.
pub fn dofn_panic_fails_run_naming_transform(options: PipelineOptions) {
    let message = expect_run_failure(options, |p| {
        let xs = p.apply("Create", Create::of(vec![1i64, 2, 3]));
        xs.map("Explode", |x: i64| {
            if x == 3 {
                panic!("boom on {x}");
            }
            x
        })
        .apply("Check", PAssert::equal_in_any_order(vec![1i64, 2, 3]));
    });
    assert_contains_all(&message, &["'Explode'", "boom on 3"]);
}

/// A DoFn whose `finish_bundle` returns `Err` fails the run naming the transform.
pub fn dofn_error_in_finish_bundle_fails_run(options: PipelineOptions) {
    #[derive(Clone)]
    struct FailAtFinish;
    impl DoFn for FailAtFinish {
        type In = i64;
        type Out = i64;
        fn process(&mut self, x: i64, ctx: &mut DoFnContext<'_, '_, i64>) -> Result<(), BoxError> {
            ctx.emit(x);
            Ok(())
        }
        fn finish_bundle(&mut self, _: &mut DoFnContext<'_, '_, i64>) -> Result<(), BoxError> {
            Err("cannot flush the bundle".into())
        }
    }
    let message = expect_run_failure(options, |p| {
        p.apply("Create", Create::of(vec![1i64])).apply("FailAtFinish", ParDo::of(FailAtFinish));
    });
    assert_contains_all(&message, &["'FailAtFinish'", "cannot flush the bundle"]);
}

/// A DoFn whose `setup` returns `Err` fails the run naming the transform.
pub fn dofn_error_in_setup_fails_run(options: PipelineOptions) {
    #[derive(Clone)]
    struct FailAtSetup;
    impl DoFn for FailAtSetup {
        type In = i64;
        type Out = i64;
        fn setup(&mut self) -> Result<(), BoxError> {
            Err("no connection".into())
        }
        fn process(&mut self, x: i64, ctx: &mut DoFnContext<'_, '_, i64>) -> Result<(), BoxError> {
            ctx.emit(x);
            Ok(())
        }
    }
    let message = expect_run_failure(options, |p| {
        p.apply("Create", Create::of(vec![1i64])).apply("FailAtSetup", ParDo::of(FailAtSetup));
    });
    assert_contains_all(&message, &["'FailAtSetup'", "no connection"]);
}

/// A user CombineFn that panics fails the run naming the Combine transform and the panic.
pub fn combine_fn_panic_fails_run_naming_transform(options: PipelineOptions) {
    #[derive(Clone)]
    struct PanicOnTwo;
    impl CombineFn for PanicOnTwo {
        type In = i64;
        type Acc = i64;
        type Out = i64;
        fn create_accumulator(&self) -> i64 {
            0
        }
        fn add_input(&self, acc: &mut i64, x: i64) {
            assert!(x != 2, "cannot add {x}");
            *acc += x;
        }
        fn merge_accumulators(&self, acc: &mut i64, other: i64) {
            *acc += other;
        }
        fn extract_output(&self, acc: i64) -> i64 {
            acc
        }
    }
    let message = expect_run_failure(options, |p| {
        let kvs = p.apply("Create", Create::of(vec![("a".to_string(), 1i64), ("a".into(), 2)]));
        kvs.apply("Fold", Combine::per_key(PanicOnTwo)).apply("Check", PAssert::is_empty());
    });
    assert_contains_all(&message, &["'Fold'", "cannot add 2"]);
}

/// A built-in Sum over integers whose total does not fit fails the run naming the transform and
/// the key, instead of wrapping around (checked arithmetic, the same in every build profile).
pub fn sum_that_overflows_fails_run_naming_transform_and_key(options: PipelineOptions) {
    let message = expect_run_failure(options, |p| {
        let kvs = p.apply(
            "Create",
            Create::of(vec![
                ("alice".to_string(), i64::MAX - 1),
                ("alice".into(), 1),
                ("alice".into(), 1),
                ("bob".into(), 1),
            ]),
        );
        kvs.combine_per_key("SumScores", combine::Sum::<i64>::new()).apply("Check", PAssert::is_empty());
    });
    assert_contains_all(&message, &["'SumScores'", "key \"alice\"", "sum overflowed i64"]);
}

/// Two accumulators that each fit but whose sum does not: merging them fails the run too (one
/// element per bundle, so a lifted combine folds each alone and the overflow happens when the
/// partial sums merge), and so does a combine of a grouping's values (`Combine::grouped_values`).
pub fn sum_whose_partial_sums_overflow_when_merged_fails_run(options: PipelineOptions) {
    let half = i64::MAX / 2 + 1;
    let message = expect_run_failure(options.clone().with_bundle_size(1), move |p| {
        let xs = p.apply("Create", Create::of(vec![half; 4]));
        xs.apply("Total", Combine::globally(combine::Sum::<i64>::new())).apply("Check", PAssert::is_empty());
    });
    assert_contains_all(&message, &["'Total", "sum overflowed i64"]);
    let half = u32::MAX / 2 + 1;
    let message = expect_run_failure(options, move |p| {
        let groups = p.apply("Create", Create::of(vec![(7u8, vec![half, half])]));
        groups
            .apply("SumGroups", Combine::grouped_values(combine::Sum::<u32>::new()))
            .apply("Check", PAssert::is_empty());
    });
    assert_contains_all(&message, &["'SumGroups", "key 7", "sum overflowed u32"]);
}

/// A failing PAssert fails the run, naming the assertion and showing expected and actual.
pub fn failing_passert_fails_run(options: PipelineOptions) {
    let message = expect_run_failure(options.clone(), |p| {
        let xs = p.apply("Create", Create::of(vec![1i64, 2]));
        xs.apply("CheckWrong", PAssert::equal_in_any_order(vec![1i64, 2, 3]));
    });
    assert_contains_all(&message, &["CheckWrong", "assertion failed", "1, 2, 3", "[1, 2]"]);
    let message = expect_run_failure(options, |p| {
        p.apply("Create", Create::of(vec![7u8])).apply("CheckEmpty", PAssert::is_empty());
    });
    assert_contains_all(&message, &["CheckEmpty", "assertion failed", "7"]);
}

/// PAssert on a windowed PCollection that is empty fails when elements are expected: an
/// assertion never passes for lack of a window to check.
pub fn passert_on_windowed_input_fails_when_a_window_is_missing(options: PipelineOptions) {
    let message = expect_run_failure(options, |p| {
        let xs = p.apply("Create", Create::timestamped(vec![(1i64, Timestamp(1)), (2, Timestamp(15))]));
        let windowed = xs.apply("Window", WindowInto::new(FixedWindows::of(10))).filter("DropAll", |_| false);
        windowed.apply("CheckMissing", PAssert::equal_in_any_order(vec![1i64, 2]));
    });
    assert_contains_all(&message, &["CheckMissing", "assertion failed"]);
}

/// Two sibling transforms with one name make a construction error: `run` refuses the pipeline
/// and names the duplicate.
pub fn duplicate_transform_names_are_a_construction_error(options: PipelineOptions) {
    let p = Pipeline::new(options);
    let xs = p.apply("Create", Create::of(vec![1i64]));
    xs.map("Same", |x| x + 1);
    xs.map("Same", |x| x + 2);
    let errors = p.construction_errors();
    assert!(errors.iter().any(|e| e.contains("duplicate") && e.contains("'Same'")), "construction errors: {errors:?}");
    match p.run() {
        Ok(_) => panic!("a pipeline with duplicate names must not run"),
        Err(e) => assert_contains_all(&e.to_string(), &["construction", "duplicate", "'Same'"]),
    }
}

/// A singleton side input with two elements fails the run, naming the reading transform.
pub fn singleton_side_input_with_two_elements_fails_run(options: PipelineOptions) {
    let message = expect_run_failure(options, |p| {
        let side = p.apply("Side", Create::of(vec![1i64, 2]));
        let view = View::as_singleton(&side);
        let v = view.clone();
        p.apply("Main", Create::of(vec![10i64])).apply(
            "Read",
            ParDo::from_fn(move |x: i64, ctx: &mut DoFnContext<'_, '_, i64>| {
                let s = *ctx.side_input(&v)?;
                ctx.emit(x + s);
                Ok(())
            })
            .with_side_input(&view),
        );
    });
    assert_contains_all(&message, &["Read", "singleton", "2 elements"]);
}

/// A map lookup of a key with several values fails the run, naming the transform and the key.
pub fn map_lookup_of_a_key_with_two_values_fails_run(options: PipelineOptions) {
    let message = expect_run_failure(options, |p| {
        let side = p.apply("Side", Create::of(vec![("k".to_string(), 1i64), ("k".into(), 2)]));
        let view = View::as_map_lookup(&side);
        let v = view.clone();
        p.apply("Main", Create::of(vec!["k".to_string()])).apply(
            "Read",
            ParDo::from_fn(move |k: String, ctx: &mut DoFnContext<'_, '_, i64>| {
                let found = ctx.side_input(&v)?.get(&k)?;
                ctx.emit(found.unwrap_or_default());
                Ok(())
            })
            .with_side_input(&view),
        );
    });
    assert_contains_all(&message, &["Read", "2 values for key \"k\""]);
}

/// A Partition function returning an index out of range fails the run.
pub fn partition_index_out_of_range_fails_run(options: PipelineOptions) {
    let message = expect_run_failure(options, |p| {
        let xs = p.apply("Create", Create::of(vec![1usize, 5]));
        let parts = xs.apply("Split", Partition::new(2, |x: &usize, _| *x));
        parts[0].apply("Check", PAssert::equal_in_any_order(vec![0usize]));
    });
    assert_contains_all(&message, &["'Split'", "partition function returned 5 for 2 partitions"]);
}

/// A Flatten of no PCollections is a construction error naming the transform, not a panic.
pub fn flatten_of_no_inputs_is_a_construction_error(options: PipelineOptions) {
    let p = Pipeline::new(options);
    let nothing: Vec<PCollection<i64>> = Vec::new();
    p.apply_to("Nothing", nothing, Flatten).map("AfterIt", |x| x + 1);
    match p.run() {
        Ok(_) => panic!("a Flatten of nothing must not run"),
        Err(e) => assert_contains_all(&e.to_string(), &["construction", "'Nothing'", "at least one input"]),
    }
}

/// The error of a failed run keeps the user's error as its source, with the user's own chain, so
/// a program can show every cause or downcast to its own error type.
pub fn run_error_keeps_the_user_error_as_its_source(options: PipelineOptions) {
    #[derive(Debug)]
    struct Root;
    impl std::fmt::Display for Root {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("the disk is full")
        }
    }
    impl std::error::Error for Root {}
    #[derive(Debug)]
    struct Outer(Root);
    impl std::fmt::Display for Outer {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("cannot write the record")
        }
    }
    impl std::error::Error for Outer {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.0)
        }
    }
    let p = Pipeline::new(options);
    p.apply("Create", Create::of(vec![1i64])).apply(
        "Write",
        ParDo::from_fn(|_: i64, _: &mut DoFnContext<'_, '_, i64>| Err(Box::new(Outer(Root)) as BoxError)),
    );
    let error = match p.run() {
        Ok(_) => panic!("the run must fail"),
        Err(e) => e,
    };
    let mut chain: Vec<String> = Vec::new();
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(&error);
    while let Some(c) = cause {
        chain.push(c.to_string());
        cause = c.source();
    }
    assert!(chain[0].contains("'Write'"), "{chain:?}");
    assert_eq!(chain.last().map(String::as_str), Some("the disk is full"), "{chain:?}");
    assert!(chain.iter().any(|c| c == "cannot write the record"), "{chain:?}");
}
