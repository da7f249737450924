//! Every case written in `src/cases` is listed in `conformance_suite!`, so none is silently left
//! out of the runners' suites (and no listed name is stale: that would not compile).

use std::collections::BTreeSet;
use std::path::Path;

fn case_functions() -> BTreeSet<String> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/cases");
    let mut names = BTreeSet::new();
    for entry in std::fs::read_dir(&dir).expect("src/cases is readable") {
        let path = entry.expect("directory entry").path();
        let text = std::fs::read_to_string(&path).expect("case file is readable");
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("pub fn ") {
                if let Some((name, args)) = rest.split_once('(') {
                    if args.starts_with("options: PipelineOptions)") {
                        names.insert(name.to_string());
                    }
                }
            }
        }
    }
    names
}

#[test]
fn every_case_is_listed_in_the_suite_macro() {
    let lib = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("src/lib.rs")).expect("lib.rs");
    let macro_body = &lib[lib.find("macro_rules! conformance_suite").expect("the suite macro")..];
    let listed: BTreeSet<String> = macro_body
        .lines()
        .map(|l| l.trim().trim_end_matches(','))
        // A case's needed capabilities follow its name in brackets.
        .map(|l| l.split(" [").next().unwrap_or(l))
        .filter(|l| !l.is_empty() && l.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'))
        .map(String::from)
        .collect();
    let cases = case_functions();
    assert!(cases.len() > 50, "found only {} cases: is the scan broken?", cases.len());
    let missing: Vec<&String> = cases.difference(&listed).collect();
    assert!(missing.is_empty(), "cases not listed in conformance_suite!: {missing:?}");
}
