//! Side inputs: every view kind, defaults on empty input, and windowed side inputs.

use crate::run_ok;
use runnel::prelude::*;
use std::collections::HashMap;

/// `View::as_singleton` gives the single element of the side input to every main element.
pub fn side_input_as_singleton(options: PipelineOptions) {
    let p = Pipeline::new(options);
    let total = p.apply("Side", Create::of(vec![1i64, 2, 3])).apply("Total", Combine::globally(combine::Sum::new()));
    let view = View::as_singleton(&total);
    let v = view.clone();
    let out = p.apply("Main", Create::of(vec![10i64, 20])).apply(
        "AddTotal",
        ParDo::from_fn(move |x: i64, ctx: &mut DoFnContext<'_, '_, i64>| {
            let t = *ctx.side_input(&v)?;
            ctx.emit(x + t);
            Ok(())
        })
        .with_side_input(&view),
    );
    out.apply("Check", PAssert::equal_in_any_order(vec![16i64, 26]));
    run_ok(&p);
}

/// `View::as_singleton_with_default` gives the default when the side input is empty.
pub fn side_input_as_singleton_with_default_on_empty_input(options: PipelineOptions) {
    let p = Pipeline::new(options);
    let empty = p.apply("Side", Create::of(Vec::<String>::new()));
    let view = View::as_singleton_with_default(&empty, "default".to_string());
    let v = view.clone();
    let out = p.apply("Main", Create::of(vec![1u32, 2])).apply(
        "Label",
        ParDo::from_fn(move |x: u32, ctx: &mut DoFnContext<'_, '_, String>| {
            let label = ctx.side_input(&v)?.clone();
            ctx.emit(format!("{label}{x}"));
            Ok(())
        })
        .with_side_input(&view),
    );
    out.apply("Check", PAssert::equal_in_any_order(vec!["default1".to_string(), "default2".into()]));
    run_ok(&p);
}

/// `View::as_iterable` gives all elements of the side input (empty stays empty).
pub fn side_input_as_iterable(options: PipelineOptions) {
    let p = Pipeline::new(options);
    let side = p.apply("Side", Create::of(vec![3i64, 1, 2, 1]));
    let none = p.apply("EmptySide", Create::of(Vec::<i64>::new()));
    let (view, empty_view) = (View::as_iterable(&side), View::as_iterable(&none));
    let (v, ev) = (view.clone(), empty_view.clone());
    let out = p.apply("Main", Create::of(vec!["x".to_string()])).apply(
        "Read",
        ParDo::from_fn(move |x: String, ctx: &mut DoFnContext<'_, '_, (String, Vec<i64>, usize)>| {
            let mut all = ctx.side_input(&v)?.clone();
            all.sort();
            let empty_len = ctx.side_input(&ev)?.len();
            ctx.emit((x, all, empty_len));
            Ok(())
        })
        .with_side_input(&view)
        .with_side_input(&empty_view),
    );
    out.apply("Check", PAssert::equal_in_any_order(vec![("x".to_string(), vec![1i64, 1, 2, 3], 0usize)]));
    run_ok(&p);
}

/// `View::as_list` gives all elements of the side input as a list.
pub fn side_input_as_list(options: PipelineOptions) {
    let p = Pipeline::new(options);
    let side = p.apply("Side", Create::of(vec!["b".to_string(), "a".into(), "c".into()]));
    let view = View::as_list(&side);
    let v = view.clone();
    let out = p.apply("Main", Create::of(vec![0usize, 2])).apply(
        "Index",
        ParDo::from_fn(move |i: usize, ctx: &mut DoFnContext<'_, '_, (usize, String, usize)>| {
            let mut list = ctx.side_input(&v)?.clone();
            list.sort();
            let len = list.len();
            ctx.emit((i, list[i].clone(), len));
            Ok(())
        })
        .with_side_input(&view),
    );
    out.apply("Check", PAssert::equal_in_any_order(vec![(0usize, "a".to_string(), 3usize), (2, "c".into(), 3)]));
    run_ok(&p);
}

/// Greetings by language (the side input) and the languages looked up (the main input).
fn greetings(p: &Pipeline) -> (PCollection<(String, String)>, PCollection<String>) {
    let side =
        p.apply("Side", Create::of(vec![("fr".to_string(), "bonjour".to_string()), ("de".into(), "hallo".into())]));
    (side, p.apply("Main", Create::of(vec!["fr".to_string(), "de".into(), "it".into()])))
}

/// Checks the greeting found for each language looked up.
fn check_greetings(found: &PCollection<(String, Option<String>)>) {
    found.apply(
        "Check",
        PAssert::equal_in_any_order(vec![
            ("fr".to_string(), Some("bonjour".to_string())),
            ("de".into(), Some("hallo".into())),
            ("it".into(), None),
        ]),
    );
}

/// `View::as_map` gives a map from each key to its single value.
pub fn side_input_as_map(options: PipelineOptions) {
    let p = Pipeline::new(options);
    let (side, main) = greetings(&p);
    let view: PCollectionView<HashMap<String, String>> = View::as_map(&side);
    let v = view.clone();
    let out = main.apply(
        "Lookup",
        ParDo::from_fn(move |lang: String, ctx: &mut DoFnContext<'_, '_, (String, Option<String>)>| {
            let found = ctx.side_input(&v)?.get(&lang).cloned();
            ctx.emit((lang, found));
            Ok(())
        })
        .with_side_input(&view),
    );
    check_greetings(&out);
    run_ok(&p);
}

/// `View::as_multimap` gives a map from each key to all its values.
pub fn side_input_as_multimap(options: PipelineOptions) {
    let p = Pipeline::new(options);
    let side = p.apply("Side", Create::of(vec![("a".to_string(), 1i64), ("b".into(), 2), ("a".into(), 3)]));
    let view = View::as_multimap(&side);
    let v = view.clone();
    let out = p.apply("Main", Create::of(vec!["a".to_string(), "b".into(), "z".into()])).apply(
        "Lookup",
        ParDo::from_fn(move |k: String, ctx: &mut DoFnContext<'_, '_, (String, Vec<i64>)>| {
            let mut values = ctx.side_input(&v)?.get(&k).cloned().unwrap_or_default();
            values.sort();
            ctx.emit((k, values));
            Ok(())
        })
        .with_side_input(&view),
    );
    out.apply(
        "Check",
        PAssert::equal_in_any_order(vec![
            ("a".to_string(), vec![1i64, 3]),
            ("b".into(), vec![2]),
            ("z".into(), vec![]),
        ]),
    );
    run_ok(&p);
}

/// A windowed side input gives each main element the value of the matching window.
pub fn side_input_windowed_singleton_matches_main_window(options: PipelineOptions) {
    let p = Pipeline::new(options);
    let side = p
        .apply("Side", Create::timestamped(vec![(1i64, Timestamp(1)), (2, Timestamp(3)), (10, Timestamp(12))]))
        .apply("SideWindows", WindowInto::new(FixedWindows::of(10)))
        .apply("SumPerWindow", Combine::globally(combine::Sum::new()));
    let view = View::as_singleton(&side);
    let v = view.clone();
    let out = p
        .apply("Main", Create::timestamped(vec![("early".to_string(), Timestamp(5)), ("late".into(), Timestamp(15))]))
        .apply("MainWindows", WindowInto::new(FixedWindows::of(10)))
        .apply(
            "Join",
            ParDo::from_fn(move |x: String, ctx: &mut DoFnContext<'_, '_, (String, i64)>| {
                let s = *ctx.side_input(&v)?;
                ctx.emit((x, s));
                Ok(())
            })
            .with_side_input(&view),
        );
    out.apply("Check", PAssert::equal_in_any_order(vec![("early".to_string(), 3i64), ("late".into(), 10)]));
    run_ok(&p);
}

/// `View::as_multimap_lookup` gives the values of the keys a DoFn asks for, per window (keys of a
/// tuple type; a key the window lacks has none).
pub fn side_input_as_multimap_lookup_gives_the_values_of_each_key_asked(options: PipelineOptions) {
    let p = Pipeline::new(options);
    let side = p
        .apply(
            "Side",
            Create::timestamped(vec![
                ((("a".to_string(), 1u8), 1i64), Timestamp(1)),
                ((("a".to_string(), 1), 3), Timestamp(2)),
                ((("b".to_string(), 2), 2), Timestamp(3)),
                ((("a".to_string(), 1), 30), Timestamp(12)),
            ]),
        )
        .apply("SideWindows", WindowInto::new(FixedWindows::of(10)));
    let view = View::as_multimap_lookup(&side);
    let v = view.clone();
    let out = p
        .apply(
            "Main",
            Create::timestamped(vec![
                (("a".to_string(), 1u8), Timestamp(5)),
                (("b".to_string(), 2), Timestamp(6)),
                (("b".to_string(), 3), Timestamp(7)),
                (("a".to_string(), 1), Timestamp(15)),
                (("b".to_string(), 2), Timestamp(16)),
            ]),
        )
        .apply("MainWindows", WindowInto::new(FixedWindows::of(10)))
        .apply(
            "Lookup",
            ParDo::from_fn(move |k: (String, u8), ctx: &mut DoFnContext<'_, '_, ((String, u8), i64, Vec<i64>)>| {
                let lookup = ctx.side_input(&v)?;
                let mut values = lookup.get(&k)?;
                // Asked again: the same values (kept, not fetched twice).
                assert_eq!(lookup.get(&k)?.len(), values.len());
                values.sort();
                let start = ctx.window().as_interval().map(|w| w.start.0).unwrap_or(-1);
                ctx.emit((k, start, values));
                Ok(())
            })
            .with_side_input(&view),
        );
    out.apply(
        "Check",
        PAssert::equal_in_any_order(vec![
            (("a".to_string(), 1u8), 0i64, vec![1i64, 3]),
            (("b".to_string(), 2), 0, vec![2]),
            (("b".to_string(), 3), 0, vec![]),
            (("a".to_string(), 1), 10, vec![30]),
            (("b".to_string(), 2), 10, vec![]),
        ]),
    );
    run_ok(&p);
}

/// `View::as_map_lookup` gives the value of each key asked for, `None` for a key not there.
pub fn side_input_as_map_lookup_gives_the_value_of_each_key_asked(options: PipelineOptions) {
    let p = Pipeline::new(options);
    let (side, main) = greetings(&p);
    let view: PCollectionView<MapLookup<String, String>> = View::as_map_lookup(&side);
    let v = view.clone();
    let out = main.apply(
        "Lookup",
        ParDo::from_fn(move |lang: String, ctx: &mut DoFnContext<'_, '_, (String, Option<String>)>| {
            let found = ctx.side_input(&v)?.get(&lang)?;
            ctx.emit((lang, found));
            Ok(())
        })
        .with_side_input(&view),
    );
    check_greetings(&out);
    run_ok(&p);
}

/// One PCollection can be both the main input and a side input of the same ParDo.
pub fn side_input_from_the_main_input(options: PipelineOptions) {
    let p = Pipeline::new(options);
    let xs = p.apply("Create", Create::of(vec![1i64, 2, 3, 4]));
    let all = View::as_iterable(&xs);
    let v = all.clone();
    let out = xs.apply(
        "RankAmongAll",
        ParDo::from_fn(move |x: i64, ctx: &mut DoFnContext<'_, '_, (i64, usize)>| {
            let smaller = ctx.side_input(&v)?.iter().filter(|y| **y < x).count();
            ctx.emit((x, smaller));
            Ok(())
        })
        .with_side_input(&all),
    );
    out.apply("Check", PAssert::equal_in_any_order(vec![(1i64, 0usize), (2, 1), (3, 2), (4, 3)]));
    run_ok(&p);
}
