//! Black-box tests of the example programs (see tests/): helpers to find the compiled example programs, run them
//! and read their output.
//!
//! # How the tests find the example programs
//!
//! The programs are the examples of another package (`runnel-examples`), and Cargo gives integration tests the paths
//! of their own package's binaries only (`CARGO_BIN_EXE_…`), not of examples. So [`example`] asks Cargo itself:
//! once per test process it runs
//!
//! ```text
//! $CARGO build --examples -p runnel-examples --message-format=json-render-diagnostics [--release | --profile P]
//! ```
//!
//! in the workspace, with the profile and target directory of the running test (read from the test executable's
//! path, `TARGET/PROFILE/deps/…`), and takes each example's `executable` from Cargo's `compiler-artifact` messages.
//! That builds exactly what `cargo run --example` would run, rebuilds it when its sources changed (a stale binary
//! under `target/` is never tested by mistake), and costs well under a second when everything is fresh. Cargo
//! releases its build lock before it runs the tests, so the nested build does not wait for the outer one.
//!
//! To test prebuilt programs instead (e.g. release binaries in CI), set `RUNNEL_EXAMPLES_DIR` to the directory that
//! holds them: nothing is built then.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

/// The environment variable naming a directory of prebuilt example programs.
pub const EXAMPLES_DIR_VAR: &str = "RUNNEL_EXAMPLES_DIR";

/// The path of the compiled example program `name` (e.g. `wordcount`); see the [crate documentation](crate).
///
/// # Panics
///
/// If the examples cannot be built, or there is no example of that name.
pub fn example(name: &str) -> PathBuf {
    if let Some(dir) = std::env::var_os(EXAMPLES_DIR_VAR) {
        let path = Path::new(&dir).join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
        assert!(path.is_file(), "{EXAMPLES_DIR_VAR} is set but {} does not exist", path.display());
        return path;
    }
    static BUILT: OnceLock<Result<BTreeMap<String, PathBuf>, String>> = OnceLock::new();
    match BUILT.get_or_init(build_examples) {
        Ok(examples) => examples
            .get(name)
            .cloned()
            .unwrap_or_else(|| panic!("no example '{name}' in runnel-examples (found: {:?})", examples.keys())),
        Err(error) => panic!("cannot build the examples: {error}"),
    }
}

/// Builds the examples of `runnel-examples` and returns their executables by name.
fn build_examples() -> Result<BTreeMap<String, PathBuf>, String> {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| env!("CARGO").into());
    let mut command = Command::new(cargo);
    command.current_dir(&workspace).args([
        "build",
        "--examples",
        "-p",
        "runnel-examples",
        "--message-format=json-render-diagnostics",
    ]);
    // The test executable is TARGET/PROFILE/deps/NAME-HASH: build with the same profile, into the same target
    // directory (when it is one: Cargo marks its target directories with CACHEDIR.TAG).
    let exe = std::env::current_exe().map_err(|e| format!("cannot locate the test executable: {e}"))?;
    let profile_dir = exe.parent().and_then(Path::parent);
    match profile_dir.and_then(Path::file_name).and_then(OsStr::to_str) {
        Some("debug") | None => {}
        Some("release") => {
            command.arg("--release");
        }
        Some(profile) => {
            command.args(["--profile", profile]);
        }
    }
    if let Some(target_dir) = profile_dir.and_then(Path::parent).filter(|d| d.join("CACHEDIR.TAG").is_file()) {
        command.arg("--target-dir").arg(target_dir);
    }
    let output = command.output().map_err(|e| format!("cannot run cargo: {e}"))?;
    if !output.status.success() {
        return Err(format!("{:?} failed ({}):\n{}", command, output.status, String::from_utf8_lossy(&output.stderr)));
    }
    let mut examples = BTreeMap::new();
    for line in String::from_utf8_lossy(&output.stdout).lines() {
        let Ok(message) = serde_json::from_str::<serde_json::Value>(line) else { continue };
        let is_example = message["target"]["kind"].as_array().is_some_and(|k| k.iter().any(|k| k == "example"));
        if message["reason"] == "compiler-artifact" && is_example {
            if let (Some(name), Some(exe)) = (message["target"]["name"].as_str(), message["executable"].as_str()) {
                examples.insert(name.to_owned(), PathBuf::from(exe));
            }
        }
    }
    Ok(examples)
}

/// What a finished run of an example program gave.
#[derive(Debug)]
pub struct Run {
    /// Whether it exited with status 0.
    pub success: bool,
    /// Its exit code, if it exited.
    pub code: Option<i32>,
    /// Its standard output.
    pub stdout: String,
    /// Its standard error.
    pub stderr: String,
}

impl From<Output> for Run {
    fn from(output: Output) -> Self {
        Run {
            success: output.status.success(),
            code: output.status.code(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }
}

/// Runs the example program `name` with `args` in the directory `dir`.
pub fn run_example(name: &str, dir: &Path, args: &[&str]) -> Run {
    let program = example(name);
    let output = Command::new(&program)
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", program.display()));
    output.into()
}

/// The names of the files in `dir` (none if it does not exist), sorted.
pub fn file_names(dir: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    let mut names: Vec<String> = entries.map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    names.sort();
    names
}

/// The output of a run with `--output=dir/name`: the names of the shards `name-SSSSS-of-NNNNN` in `dir`, and all
/// their lines, sorted.
///
/// # Panics
///
/// Unless the files of `dir` starting with `name` are exactly a complete set of shards `0..N` of one `N`, each
/// empty or ending with `\n`.
pub fn read_shards(dir: &Path, name: &str) -> (Vec<String>, Vec<String>) {
    let names: Vec<String> = file_names(dir).into_iter().filter(|n| n.starts_with(name)).collect();
    assert!(!names.is_empty(), "no output file {name}-* in {}: {:?}", dir.display(), file_names(dir));
    let num_shards = names.len();
    let expected: Vec<String> = (0..num_shards).map(|i| format!("{name}-{i:05}-of-{num_shards:05}")).collect();
    assert_eq!(names, expected, "the output files are not a complete set of shards");
    let mut lines = Vec::new();
    for shard in &names {
        let text = std::fs::read_to_string(dir.join(shard)).unwrap();
        assert!(text.is_empty() || text.ends_with('\n'), "{shard} does not end with a newline: {text:?}");
        lines.extend(text.lines().map(str::to_owned));
    }
    lines.sort();
    (names, lines)
}

/// `xs` as sorted owned strings.
pub fn sorted(xs: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = xs.iter().map(|s| s.to_string()).collect();
    v.sort();
    v
}
