//! GroupByKey and CoGroupByKey.

use crate::{run_ok, Reify};
use runnel::prelude::*;

/// `GroupByKey` gives one element per key holding all its values (sorted here: the order of
/// grouped values is unspecified).
pub fn group_by_key_groups_values_per_key(options: PipelineOptions) {
    let p = Pipeline::new(options);
    let kvs = p.apply(
        "Create",
        Create::of(vec![("a".to_string(), 3i64), ("b".into(), 1), ("a".into(), 1), ("c".into(), 7), ("a".into(), 2)]),
    );
    let grouped = kvs.group_by_key("Group").map("Sort", |(k, mut vs): (String, Vec<i64>)| {
        vs.sort();
        (k, vs)
    });
    grouped.apply(
        "Check",
        PAssert::equal_in_any_order(vec![
            ("a".to_string(), vec![1i64, 2, 3]),
            ("b".to_string(), vec![1]),
            ("c".to_string(), vec![7]),
        ]),
    );
    run_ok(&p);
}

/// `GroupByKey` of an empty input gives an empty output.
pub fn group_by_key_of_empty_input_is_empty(options: PipelineOptions) {
    let p = Pipeline::new(options);
    let kvs = p.apply("Create", Create::of(Vec::<(String, i64)>::new()));
    kvs.apply("Group", GroupByKey::new()).apply("Check", PAssert::is_empty());
    run_ok(&p);
}

/// `CoGroupByKey` gives, per key present in either input, the values of each input.
pub fn co_group_by_key_joins_two_inputs(options: PipelineOptions) {
    let p = Pipeline::new(options);
    let emails = p.apply(
        "Emails",
        Create::of(vec![
            ("amy".to_string(), "amy@x".to_string()),
            ("bob".into(), "bob@x".into()),
            ("amy".into(), "a@y".into()),
        ]),
    );
    let phones = p.apply("Phones", Create::of(vec![("amy".to_string(), 111u32), ("carl".into(), 333)]));
    let joined = p.apply_to("Join", (emails, phones), CoGroupByKey).map(
        "Sort",
        |(k, (mut es, mut ps)): (String, (Vec<String>, Vec<u32>))| {
            es.sort();
            ps.sort();
            (k, (es, ps))
        },
    );
    joined.apply(
        "Check",
        PAssert::equal_in_any_order(vec![
            ("amy".to_string(), (vec!["a@y".to_string(), "amy@x".to_string()], vec![111u32])),
            ("bob".to_string(), (vec!["bob@x".to_string()], vec![])),
            ("carl".to_string(), (vec![], vec![333u32])),
        ]),
    );
    run_ok(&p);
}

/// In the global window, GroupByKey fires one ON_TIME pane per key (index 0, first and last) at
/// the end of the global window, whatever the input timestamps, and bundles do not matter.
pub fn group_by_key_in_global_window_fires_one_on_time_pane(options: PipelineOptions) {
    let p = Pipeline::new(options.with_bundle_size(2));
    let kvs = p.apply(
        "Create",
        Create::timestamped(vec![
            (("k".to_string(), 1u8), Timestamp(100)),
            (("k".into(), 2), Timestamp(-5)),
            (("k".into(), 3), Timestamp(7)),
            (("j".into(), 4), Timestamp(0)),
            (("k".into(), 5), Timestamp(1)),
        ]),
    );
    let grouped = kvs
        .group_by_key("Group")
        .map("Sort", |(k, mut vs): (String, Vec<u8>)| {
            vs.sort();
            (k, vs)
        })
        .apply("Reify", Reify);
    let end = Timestamp::end_of_global_window();
    grouped.apply(
        "Check",
        PAssert::equal_in_any_order(vec![
            (("k".to_string(), vec![1u8, 2, 3, 5]), Window::Global, PaneInfo::ON_TIME_AND_ONLY_FIRING, end),
            (("j".to_string(), vec![4]), Window::Global, PaneInfo::ON_TIME_AND_ONLY_FIRING, end),
        ]),
    );
    run_ok(&p);
}
