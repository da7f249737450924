//! Reading and writing text files in a pipeline: [`ReadFromText`] and [`WriteToText`].
//!
//! Both are composite transforms built only on the SDK's public API and on the filesystem primitives of
//! [`crate::files`], so they run on every runner.
//!
//! # Reading
//!
//! `ReadFromText::new(pattern)` reads every file matching a path or a glob, one element per line, as the project's
//! text contract says (see [`crate::files`]: `\n` ends a line, a trailing `\r` is removed, a last line without `\n`
//! counts). It expands to
//!
//! ```text
//! Pattern (Create) ─▶ ExpandPattern (ParDo) ─▶ Reshuffle ─▶ ReadFiles (ParDo)
//! ```
//!
//! The glob is expanded when the job runs, not when the pipeline is built; the matched files are cut into byte
//! ranges of about 8 MiB, each read from its first whole line to the line that crosses its end, and the reshuffle
//! spreads the ranges over workers, so that one large file is read on every core. A pattern matching nothing fails the job with "no file matches the input pattern
//! '…'"; a line that is not valid UTF-8 fails it with an error naming the file and the line.
//!
//! # Writing
//!
//! `WriteToText::new(prefix)` writes one element per `\n`-terminated line to shards `PREFIX-SSSSS-of-NNNNN`, and
//! commits them with the protocol of [`crate::commit`]: the job takes the lock of the prefix when it starts (a second
//! job writing the same prefix meanwhile is refused, naming the first), shards are written to hidden temporary
//! files, and the commit replaces every earlier shard of the prefix through a journal, so that a reader never sees
//! shards of two runs mixed. A job that fails leaves the prefix as it was (its temporary files are removed, or, if
//! it died, removed by the next run at the prefix). It expands to
//!
//! ```text
//! lines ─▶ RewindowIntoGlobal ─▶ AssignShards ─▶ GroupByShard ─▶ WriteShards ─▶ CollectShards ─▶ Finalize
//! JobToken (Create) ─▶ MakeJobToken ──────────────────────────────────┴── side input ──────────────────┘
//! ```
//!
//! The job token, which names the temporary files of one run of the job, is made when the job runs (by
//! `MakeJobToken`, which also takes the lock of the prefix) and reaches the writers as a side input, so that
//! building the pipeline stays deterministic: two constructions of the same pipeline give the same graph, as the
//! grpc runner's workers require. `Finalize` commits and releases the lock; if the job fails, the teardown of
//! `MakeJobToken` releases it (and the kernel does, if the process dies).

use std::collections::hash_map::DefaultHasher;
use std::collections::BTreeMap;
use std::hash::{Hash, Hasher};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};

use runnel::combine::ToList;
use runnel::transforms::{Create, GroupByKey, RenderRetractions, Reshuffle};
use runnel::window::{GlobalWindows, WindowInto};
use runnel::Combine;
use runnel::{BoxError, DoFn, DoFnContext, PBegin, PCollection, PCollectionView, PTransform, ParDo, View};
use serde::{Deserialize, Serialize};

use crate::commit::PrefixLock;
use crate::files::{
    check_output_prefix, expand_pattern, new_job_token, split_files, FileRange, ShardWriter, TempShard,
    DEFAULT_SPLIT_BYTES,
};

/// The number of shards [`WriteToText`] writes when none is set (or 0 is set: "the runner chooses").
pub const DEFAULT_NUM_SHARDS: usize = 1;

// ---------------------------------------------------------------------------------------------------------------------
// Reading
// ---------------------------------------------------------------------------------------------------------------------

/// Reads the lines of every file matching a path or a glob: `PBegin` → `PCollection<String>`, one element per line
/// (without its line ending), in no particular order. See the [module documentation](self).
///
/// ```
/// # use runnel::prelude::*;
/// # use runnel_io::text::ReadFromText;
/// # let dir = tempfile::tempdir().unwrap();
/// # std::fs::write(dir.path().join("a.txt"), "to be\r\nor not").unwrap();
/// # let pattern = format!("{}/*.txt", dir.path().display());
/// let p = Pipeline::new(PipelineOptions::default());
/// let lines = p.apply("ReadLines", ReadFromText::new(pattern));
/// lines.apply("Check", PAssert::equal_in_any_order(vec!["to be".to_string(), "or not".to_string()]));
/// p.run().unwrap();
/// ```
#[derive(Clone, Debug)]
pub struct ReadFromText {
    pattern: String,
    split_bytes: u64,
}

impl ReadFromText {
    /// Reads the files matching `pattern`: a path, or a glob such as `data/*.txt` (see
    /// [`crate::files::expand_pattern`]). The pattern is expanded when the job runs.
    pub fn new(pattern: impl Into<String>) -> Self {
        ReadFromText { pattern: pattern.into(), split_bytes: DEFAULT_SPLIT_BYTES }
    }

    /// Cuts the matched files into ranges of about `bytes` bytes (at least 1), each read by one worker; the default
    /// is [`DEFAULT_SPLIT_BYTES`]. Smaller ranges spread a file over more workers at a small cost per range.
    pub fn with_split_bytes(mut self, bytes: u64) -> Self {
        self.split_bytes = bytes.max(1);
        self
    }

    /// The input pattern.
    pub fn pattern(&self) -> &str {
        &self.pattern
    }
}

impl PTransform<PBegin> for ReadFromText {
    type Output = PCollection<String>;

    fn expand(self, input: PBegin) -> PCollection<String> {
        input
            .pipeline()
            .apply("Pattern", Create::of(vec![self.pattern]))
            .apply("ExpandPattern", ParDo::registered(ExpandPatternFn { split_bytes: self.split_bytes }))
            .apply("Reshuffle", Reshuffle)
            .apply("ReadFiles", ParDo::registered(ReadFileFn))
    }
}

/// Expands an input pattern into the files it matches, cut into byte ranges of about `split_bytes` (see
/// [`split_files`]), so that a large file is read by several workers at once; fails if the pattern matches no file.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ExpandPatternFn {
    /// The size of the ranges.
    pub split_bytes: u64,
}

impl DoFn for ExpandPatternFn {
    type In = String;
    type Out = FileRange;

    fn process(&mut self, pattern: String, ctx: &mut DoFnContext<'_, '_, FileRange>) -> Result<(), BoxError> {
        for range in split_files(&expand_pattern(&pattern)?, self.split_bytes)? {
            ctx.emit(range);
        }
        Ok(())
    }
}

runnel::register_dofn!(ExpandPatternFn, "runnel_io.text.ExpandPattern");

/// Reads the lines of a range of a file (see [`FileRange`]), emitting each line.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct ReadFileFn;

impl DoFn for ReadFileFn {
    type In = FileRange;
    type Out = String;

    fn process(&mut self, range: FileRange, ctx: &mut DoFnContext<'_, '_, String>) -> Result<(), BoxError> {
        let mut reader = range.open()?;
        while let Some(line) = reader.read_line()? {
            ctx.emit(line.to_owned());
        }
        Ok(())
    }
}

runnel::register_dofn!(ReadFileFn, "runnel_io.text.ReadFile");

// ---------------------------------------------------------------------------------------------------------------------
// Writing
// ---------------------------------------------------------------------------------------------------------------------

/// Writes each element as one `\n`-terminated line to sharded text files `PREFIX-SSSSS-of-NNNNN`, committed
/// atomically: `PCollection<String>` → `PCollection<PathBuf>`, the final paths of the shards once committed. See
/// the [module documentation](self).
///
/// Every shard `0..N` exists after a successful job, empty ones included. The input may be in any windowing: it is
/// written as a whole, once all of it has arrived.
///
/// ```
/// # use runnel::prelude::*;
/// # use runnel_io::text::WriteToText;
/// # let dir = tempfile::tempdir().unwrap();
/// # let prefix = format!("{}/counts", dir.path().display());
/// let p = Pipeline::new(PipelineOptions::default());
/// let lines = p.apply("Lines", Create::of(vec!["a: 1".to_string(), "b: 2".to_string()]));
/// lines.apply("Write", WriteToText::new(&prefix).with_num_shards(2));
/// p.run().unwrap();
/// # assert!(std::path::Path::new(&format!("{prefix}-00001-of-00002")).is_file());
/// ```
#[derive(Clone)]
pub struct WriteToText {
    prefix: String,
    num_shards: usize,
    /// How a retraction becomes a line, when the input carries retractions.
    render: Option<RenderLine>,
}

/// Turns an element and whether it is a retraction into the line written.
type RenderLine = Arc<dyn Fn(String, bool) -> String + Send + Sync>;

impl std::fmt::Debug for WriteToText {
    // By hand: the rendering is code, shown only as whether there is one.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WriteToText")
            .field("prefix", &self.prefix)
            .field("num_shards", &self.num_shards)
            .field("renders_retractions", &self.render.is_some())
            .finish()
    }
}

impl WriteToText {
    /// Writes shards named `PREFIX-SSSSS-of-NNNNN`; `prefix` may contain directories (`out/counts`), which are
    /// created. [`DEFAULT_NUM_SHARDS`] shards unless [`WriteToText::with_num_shards`] says otherwise.
    pub fn new(prefix: impl Into<String>) -> Self {
        WriteToText { prefix: prefix.into(), num_shards: 0, render: None }
    }

    /// Writes input that carries retractions (the output of a grouping in retracting mode),
    /// each element as the line `render(line, is_retraction)`, e.g. `-` before a retracted
    /// line. A text file cannot take a value back, so without this such input is refused at
    /// construction, naming the transform.
    pub fn with_retractions_rendered(
        mut self,
        render: impl Fn(String, bool) -> String + Send + Sync + 'static,
    ) -> Self {
        self.render = Some(Arc::new(render));
        self
    }

    /// Writes exactly `n` shards; 0 lets the runner choose (as in Beam), which today means [`DEFAULT_NUM_SHARDS`].
    pub fn with_num_shards(mut self, n: usize) -> Self {
        self.num_shards = n;
        self
    }

    /// The output prefix.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The number of shards that will be written.
    pub fn num_shards(&self) -> usize {
        if self.num_shards == 0 {
            DEFAULT_NUM_SHARDS
        } else {
            self.num_shards
        }
    }
}

impl PTransform<PCollection<String>> for WriteToText {
    type Output = PCollection<PathBuf>;

    fn expand(self, input: PCollection<String>) -> PCollection<PathBuf> {
        let num_shards = self.num_shards();
        let pipeline = input.pipeline().clone();
        let token = pipeline
            .apply("JobToken", Create::of(vec![()]))
            .apply("MakeJobToken", ParDo::registered(MakeJobTokenFn::new(self.prefix.clone())));
        let token = View::as_singleton(&token);
        let input = match self.render {
            Some(render) if input.carries_retractions() => {
                input.apply("RenderRetractions", RenderRetractions(move |line, retraction| render(line, retraction)))
            }
            _ => {
                if input.refuse_retractions(
                    "a text file cannot take a line back: render retractions as lines with \
                     WriteToText::with_retractions_rendered",
                ) {
                    // The pipeline is refused already; rendering the lines as they are keeps the
                    // rewindowing below from reporting the same input a second time.
                    input.apply("RenderRetractions", RenderRetractions(|line, _| line))
                } else {
                    input
                }
            }
        };
        let temp_shards = input
            .apply("RewindowIntoGlobal", WindowInto::new(GlobalWindows::of()))
            .apply("AssignShards", ParDo::registered(AssignShardFn::new(num_shards)))
            .apply("GroupByShard", GroupByKey::new())
            .apply(
                "WriteShards",
                ParDo::of(WriteShardFn { prefix: self.prefix.clone(), num_shards, token: token.clone() })
                    .with_side_input(&token),
            );
        temp_shards.apply("CollectShards", Combine::globally(ToList::new())).apply(
            "Finalize",
            ParDo::of(FinalizeFn { prefix: self.prefix, num_shards, token: token.clone() }).with_side_input(&token),
        )
    }
}

/// The prefix locks this process holds, by job token: taken by [`MakeJobTokenFn`], released by the commit of
/// `Finalize` or, if the job fails, by the teardown of [`MakeJobTokenFn`].
fn held_locks() -> MutexGuard<'static, BTreeMap<String, PrefixLock>> {
    static HELD: Mutex<BTreeMap<String, PrefixLock>> = Mutex::new(BTreeMap::new());
    HELD.lock().unwrap_or_else(|e| e.into_inner())
}

/// Makes the token that names the temporary files of one run of a job (see [`new_job_token`]) and takes the lock
/// of the output prefix for it ([`PrefixLock::acquire`]), which also recovers what dead runs left at the prefix.
/// If the job fails before its commit, `teardown` releases the lock and removes the job's temporary files.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct MakeJobTokenFn {
    prefix: String,
    /// The token this instance made, while its lock may still be held.
    #[serde(skip)]
    token: Option<String>,
}

impl MakeJobTokenFn {
    /// Makes tokens for, and locks, the output `prefix`.
    pub fn new(prefix: String) -> Self {
        MakeJobTokenFn { prefix, token: None }
    }
}

impl DoFn for MakeJobTokenFn {
    type In = ();
    type Out = String;

    fn process(&mut self, (): (), ctx: &mut DoFnContext<'_, '_, String>) -> Result<(), BoxError> {
        check_output_prefix(&self.prefix)?;
        let token = new_job_token();
        let lock = PrefixLock::acquire(&self.prefix, &token)?;
        held_locks().insert(token.clone(), lock);
        self.token = Some(token.clone());
        ctx.emit(token);
        Ok(())
    }

    fn teardown(&mut self) -> Result<(), BoxError> {
        // After a successful commit `Finalize` has released the lock already; otherwise the job failed.
        if let Some(lock) = self.token.take().and_then(|token| held_locks().remove(&token)) {
            lock.abort()?;
        }
        Ok(())
    }
}

runnel::register_dofn!(MakeJobTokenFn, "runnel_io.text.MakeJobToken");

/// Gives each line a shard index, round-robin within a bundle, starting from an index that depends on the bundle's
/// first line (so that many small bundles do not all favour shard 0, and a run is reproducible).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct AssignShardFn {
    num_shards: usize,
    #[serde(skip)]
    next: Option<usize>,
}

impl AssignShardFn {
    /// Assigns shards `0..num_shards` (at least one).
    pub fn new(num_shards: usize) -> Self {
        AssignShardFn { num_shards: num_shards.max(1), next: None }
    }
}

impl DoFn for AssignShardFn {
    type In = String;
    type Out = (usize, String);

    fn start_bundle(&mut self) -> Result<(), BoxError> {
        self.next = None;
        Ok(())
    }

    fn process(&mut self, line: String, ctx: &mut DoFnContext<'_, '_, (usize, String)>) -> Result<(), BoxError> {
        let n = self.num_shards.max(1);
        let shard = *self.next.get_or_insert_with(|| {
            let mut hasher = DefaultHasher::new();
            line.hash(&mut hasher);
            (hasher.finish() % n as u64) as usize
        });
        self.next = Some((shard + 1) % n);
        ctx.emit((shard, line));
        Ok(())
    }
}

runnel::register_dofn!(AssignShardFn, "runnel_io.text.AssignShard");

/// Writes the lines of one shard to its temporary file. Not registered: it reads the job token as a side input,
/// and a side input view cannot be serialised into a registered DoFn's fields.
#[derive(Clone)]
struct WriteShardFn {
    prefix: String,
    num_shards: usize,
    token: PCollectionView<String>,
}

impl DoFn for WriteShardFn {
    type In = (usize, Vec<String>);
    type Out = TempShard;

    fn process(
        &mut self,
        (shard, lines): (usize, Vec<String>),
        ctx: &mut DoFnContext<'_, '_, TempShard>,
    ) -> Result<(), BoxError> {
        let token = ctx.side_input(&self.token)?.clone();
        let mut writer = ShardWriter::create(&self.prefix, shard, self.num_shards, &token)?;
        for line in &lines {
            writer.write_record(line)?;
        }
        ctx.emit(writer.finish()?);
        Ok(())
    }
}

/// Commits the job's output ([`PrefixLock::commit`]): completes the shards with empty ones and replaces every
/// earlier shard of the prefix with them, then releases the lock. Emits the final paths.
#[derive(Clone)]
struct FinalizeFn {
    prefix: String,
    num_shards: usize,
    token: PCollectionView<String>,
}

impl DoFn for FinalizeFn {
    type In = Vec<TempShard>;
    type Out = PathBuf;

    fn process(&mut self, shards: Vec<TempShard>, ctx: &mut DoFnContext<'_, '_, PathBuf>) -> Result<(), BoxError> {
        let token = ctx.side_input(&self.token)?.clone();
        // The lock taken by `MakeJobToken` in this process, or (on a runner that ran it in another process) that
        // lock joined, or taken anew if that process released it.
        let held = held_locks().remove(&token);
        let lock = match held {
            Some(lock) => lock,
            None => PrefixLock::join(&self.prefix, &token)?,
        };
        match lock.commit(self.num_shards, shards) {
            Ok(paths) => {
                lock.release()?;
                for path in paths {
                    ctx.emit(path);
                }
                Ok(())
            }
            Err(error) => {
                let _ = lock.abort();
                Err(error.into())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use runnel::prelude::*;
    use std::fs;
    use std::path::Path;
    use tempfile::TempDir;

    fn options() -> PipelineOptions {
        PipelineOptions::default()
    }

    fn write(dir: &Path, name: &str, contents: &[u8]) -> PathBuf {
        let path = dir.join(name);
        fs::write(&path, contents).unwrap();
        path
    }

    fn names_in(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> =
            fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        names.sort();
        names
    }

    fn strings(xs: &[&str]) -> Vec<String> {
        xs.iter().map(|s| s.to_string()).collect()
    }

    /// Lines of every `PREFIX-*` shard, sorted.
    fn output_lines(prefix: &str) -> Vec<String> {
        let mut lines = Vec::new();
        for path in expand_pattern(&format!("{prefix}-*")).unwrap() {
            let text = fs::read_to_string(&path).unwrap();
            assert!(text.is_empty() || text.ends_with('\n'), "{text:?}");
            lines.extend(text.lines().map(str::to_owned));
        }
        lines.sort();
        lines
    }

    #[test]
    fn reads_every_line_of_every_matching_file() {
        let dir = TempDir::new().unwrap();
        write(dir.path(), "a.txt", b"one\r\ntwo\n");
        write(dir.path(), "b.txt", b"three\n\nfour");
        write(dir.path(), "empty.txt", b"");
        write(dir.path(), "skipped.csv", b"not read\n");
        for checks in [true, false] {
            let p = Pipeline::new(options().with_direct_checks(checks).with_bundle_size(1));
            let lines = p.apply("Read", ReadFromText::new(format!("{}/*.txt", dir.path().display())));
            lines.apply("Check", PAssert::equal_in_any_order(strings(&["one", "two", "three", "", "four"])));
            p.run().unwrap();
        }
    }

    #[test]
    fn reads_a_plain_path() {
        let dir = TempDir::new().unwrap();
        let path = write(dir.path(), "words.txt", "naïve café\n日本語\n".as_bytes());
        let p = Pipeline::new(options());
        let lines = p.apply("Read", ReadFromText::new(path.to_str().unwrap()));
        lines.apply("Check", PAssert::equal_in_any_order(strings(&["naïve café", "日本語"])));
        p.run().unwrap();
    }

    #[test]
    fn many_lines_are_read_in_batches() {
        let dir = TempDir::new().unwrap();
        let contents: String = (0..5000).map(|i| format!("{i}\n")).collect();
        write(dir.path(), "big.txt", contents.as_bytes());
        let p = Pipeline::new(options());
        let lines = p.apply("Read", ReadFromText::new(format!("{}/big.txt", dir.path().display())));
        lines.apply("Check", PAssert::equal_in_any_order((0..5000).map(|i| i.to_string()).collect()));
        p.run().unwrap();
    }

    #[test]
    fn files_cut_into_small_ranges_read_every_line_once() {
        let dir = TempDir::new().unwrap();
        let contents: String = (0..300).map(|i| format!("line {i}{}\n", "x".repeat(i % 17))).collect();
        write(dir.path(), "a.txt", contents.as_bytes());
        write(dir.path(), "b.txt", "\u{feff}first\r\nsecond".as_bytes());
        let mut expected: Vec<String> = contents.lines().map(str::to_owned).collect();
        expected.extend(strings(&["first", "second"]));
        for split_bytes in [1, 7, 64, 1000, 1 << 20] {
            let p = Pipeline::new(options().with_bundle_size(3));
            let pattern = format!("{}/*.txt", dir.path().display());
            let lines = p.apply("Read", ReadFromText::new(pattern).with_split_bytes(split_bytes));
            lines.apply("Check", PAssert::equal_in_any_order(expected.clone()));
            p.run().unwrap_or_else(|e| panic!("split {split_bytes}: {e}"));
        }
    }

    #[test]
    fn invalid_utf8_in_a_later_range_names_the_line_of_the_whole_file() {
        let dir = TempDir::new().unwrap();
        let mut contents: Vec<u8> = (0..40).flat_map(|i| format!("line {i}\n").into_bytes()).collect();
        contents.extend_from_slice(b"bad \xFF\nafter\n");
        let bad = write(dir.path(), "bad.txt", &contents);
        let p = Pipeline::new(options());
        p.apply("Read", ReadFromText::new(bad.to_str().unwrap()).with_split_bytes(50))
            .apply("Count", Combine::globally(runnel::combine::Count::new()));
        let error = p.run().unwrap_err().to_string();
        assert!(error.contains(&format!("invalid UTF-8 in {} at line 41", bad.display())), "{error}");
    }

    #[test]
    fn a_pattern_matching_nothing_fails_the_job_naming_it() {
        let dir = TempDir::new().unwrap();
        let pattern = format!("{}/*.nothing", dir.path().display());
        let p = Pipeline::new(options());
        p.apply("Read", ReadFromText::new(&pattern)).apply("Write", WriteToText::new(format!("{pattern}-out")));
        let error = p.run().unwrap_err().to_string();
        assert!(error.contains(&format!("no file matches the input pattern '{pattern}'")), "{error}");
        assert!(error.contains("Read/ExpandPattern"), "{error}");
        assert!(names_in(dir.path()).is_empty());
    }

    #[test]
    fn invalid_utf8_fails_the_job_naming_file_and_line_and_writes_nothing() {
        let dir = TempDir::new().unwrap();
        write(dir.path(), "good.txt", b"fine\n");
        let bad = write(dir.path(), "bad.txt", b"fine\nstill fine\nnot \xFF fine\n");
        let prefix = format!("{}/out/counts", dir.path().display());
        let p = Pipeline::new(options());
        p.apply("Read", ReadFromText::new(format!("{}/*.txt", dir.path().display())))
            .apply("Write", WriteToText::new(&prefix));
        let error = p.run().unwrap_err().to_string();
        assert!(error.contains(&format!("invalid UTF-8 in {} at line 3", bad.display())), "{error}");
        let out = dir.path().join("out");
        assert!(
            !out.exists() || names_in(&out).is_empty(),
            "no shard, no temporary file, no lock: {:?}",
            names_in(&out)
        );
    }

    #[test]
    fn a_failed_job_leaves_the_previous_output_and_releases_the_prefix() {
        let dir = TempDir::new().unwrap();
        let prefix = format!("{}/counts", dir.path().display());
        write(dir.path(), "counts-00000-of-00001", b"previous\n");
        let p = Pipeline::new(options());
        p.apply("Lines", Create::of(strings(&["a", "b"])))
            .map("Fail", |line: String| -> String {
                assert!(line != "b", "boom");
                line
            })
            .apply("Write", WriteToText::new(&prefix).with_num_shards(2));
        assert!(p.run().is_err());
        assert_eq!(names_in(dir.path()), ["counts-00000-of-00001"]);
        assert_eq!(output_lines(&prefix), ["previous"]);

        let p = Pipeline::new(options());
        p.apply("Lines", Create::of(strings(&["again"]))).apply("Write", WriteToText::new(&prefix));
        p.run().unwrap();
        assert_eq!(output_lines(&prefix), ["again"]);
    }

    #[test]
    fn a_job_replaces_stale_shards_of_another_count_and_leftovers_of_dead_runs() {
        let dir = TempDir::new().unwrap();
        let prefix = format!("{}/counts", dir.path().display());
        for name in ["counts-00000-of-00003", "counts-00001-of-00003", "counts-00002-of-00003", "counts-00000-of-00001"]
        {
            write(dir.path(), name, b"stale\n");
        }
        write(dir.path(), ".counts-00000-of-00002.runnel-tmp-deadjob.w1", b"dead run\n");
        write(dir.path(), ".counts.runnel-lock", b"{}");
        let p = Pipeline::new(options());
        p.apply("Lines", Create::of(strings(&["x", "y", "z"])))
            .apply("Write", WriteToText::new(&prefix).with_num_shards(2));
        p.run().unwrap();
        assert_eq!(names_in(dir.path()), ["counts-00000-of-00002", "counts-00001-of-00002"]);
        assert_eq!(output_lines(&prefix), strings(&["x", "y", "z"]));
    }

    #[test]
    fn an_invalid_prefix_fails_the_job_at_its_start_naming_it() {
        let dir = TempDir::new().unwrap();
        let prefix = format!("{}/out/", dir.path().display());
        let p = Pipeline::new(options());
        p.apply("Lines", Create::of(strings(&["a"]))).apply("Write", WriteToText::new(&prefix));
        let error = p.run().unwrap_err().to_string();
        assert!(error.contains("Write/MakeJobToken"), "{error}");
        assert!(error.contains(&format!("invalid output for prefix '{prefix}'")), "{error}");
        assert!(names_in(dir.path()).is_empty());
    }

    #[test]
    fn writes_one_shard_by_default_with_every_line() {
        let dir = TempDir::new().unwrap();
        let prefix = format!("{}/out/counts", dir.path().display());
        let p = Pipeline::new(options());
        let lines = p.apply("Lines", Create::of(strings(&["a: 1", "b: 2", "ü: 3"])));
        let written = lines.apply("Write", WriteToText::new(&prefix));
        written
            .apply("CheckPaths", PAssert::equal_in_any_order(vec![PathBuf::from(format!("{prefix}-00000-of-00001"))]));
        p.run().unwrap();
        assert_eq!(names_in(&dir.path().join("out")), ["counts-00000-of-00001"]);
        assert_eq!(output_lines(&prefix), strings(&["a: 1", "b: 2", "ü: 3"]));
    }

    #[test]
    fn writes_the_requested_number_of_shards_spreading_the_lines() {
        let dir = TempDir::new().unwrap();
        let prefix = format!("{}/counts", dir.path().display());
        let all: Vec<String> = (0..100).map(|i| format!("line {i}")).collect();
        for checks in [true, false] {
            let p = Pipeline::new(options().with_direct_checks(checks).with_bundle_size(7));
            p.apply("Lines", Create::of(all.clone())).apply("Write", WriteToText::new(&prefix).with_num_shards(3));
            p.run().unwrap();
            assert_eq!(
                names_in(dir.path()),
                ["counts-00000-of-00003", "counts-00001-of-00003", "counts-00002-of-00003"]
            );
            let mut expected = all.clone();
            expected.sort();
            assert_eq!(output_lines(&prefix), expected);
            for name in names_in(dir.path()) {
                let n = fs::read_to_string(dir.path().join(name)).unwrap().lines().count();
                assert!(n > 10, "round-robin spreads the lines: {n} in a shard");
            }
        }
    }

    #[test]
    fn empty_input_writes_every_shard_empty() {
        let dir = TempDir::new().unwrap();
        let prefix = format!("{}/empty", dir.path().display());
        let p = Pipeline::new(options());
        p.apply("Lines", Create::of(Vec::<String>::new())).apply("Write", WriteToText::new(&prefix).with_num_shards(2));
        p.run().unwrap();
        assert_eq!(names_in(dir.path()), ["empty-00000-of-00002", "empty-00001-of-00002"]);
        assert_eq!(fs::read(dir.path().join("empty-00000-of-00002")).unwrap(), b"");
        assert_eq!(fs::read(dir.path().join("empty-00001-of-00002")).unwrap(), b"");
    }

    #[test]
    fn more_shards_than_lines_leaves_empty_shards() {
        let dir = TempDir::new().unwrap();
        let prefix = format!("{}/few", dir.path().display());
        let p = Pipeline::new(options());
        p.apply("Lines", Create::of(strings(&["only"]))).apply("Write", WriteToText::new(&prefix).with_num_shards(4));
        p.run().unwrap();
        assert_eq!(names_in(dir.path()).len(), 4);
        assert_eq!(output_lines(&prefix), ["only"]);
    }

    #[test]
    fn windowed_input_is_written_as_a_whole() {
        let dir = TempDir::new().unwrap();
        let prefix = format!("{}/windowed", dir.path().display());
        let p = Pipeline::new(options());
        let lines = p.apply(
            "Lines",
            Create::timestamped(vec![
                ("a".to_string(), Timestamp(0)),
                ("b".to_string(), Timestamp(10_000)),
                ("c".to_string(), Timestamp(20_000)),
            ]),
        );
        lines.apply("Window", WindowInto::new(FixedWindows::of(5_000))).apply("Write", WriteToText::new(&prefix));
        p.run().unwrap();
        assert_eq!(names_in(dir.path()), ["windowed-00000-of-00001"]);
        assert_eq!(output_lines(&prefix), ["a", "b", "c"]);
    }

    #[test]
    fn an_unusable_output_directory_fails_the_job_naming_it() {
        let dir = TempDir::new().unwrap();
        let blocker = write(dir.path(), "out", b"a file, not a directory\n");
        let p = Pipeline::new(options());
        p.apply("Lines", Create::of(strings(&["a"])))
            .apply("Write", WriteToText::new(format!("{}/counts", blocker.display())));
        let error = p.run().unwrap_err().to_string();
        assert!(error.contains("Write/MakeJobToken"), "{error}");
        assert!(error.contains(&format!("cannot create output directory {}", blocker.display())), "{error}");
    }

    #[test]
    fn output_replaces_an_older_one_and_leaves_no_temporary_file() {
        let dir = TempDir::new().unwrap();
        let prefix = format!("{}/counts", dir.path().display());
        write(dir.path(), "counts-00000-of-00001", b"old\n");
        let p = Pipeline::new(options());
        p.apply("Lines", Create::of(strings(&["new"]))).apply("Write", WriteToText::new(&prefix));
        p.run().unwrap();
        assert_eq!(names_in(dir.path()), ["counts-00000-of-00001"]);
        assert_eq!(fs::read_to_string(dir.path().join("counts-00000-of-00001")).unwrap(), "new\n");
    }

    #[test]
    fn read_and_write_round_trip() {
        let dir = TempDir::new().unwrap();
        let input: Vec<String> = (0..3000).map(|i| format!("record {i} — ünïcödé")).collect();
        write(dir.path(), "in.txt", (input.join("\n") + "\n").as_bytes());
        let prefix = format!("{}/out/copy", dir.path().display());
        let p = Pipeline::new(options());
        p.apply("Read", ReadFromText::new(format!("{}/in.txt", dir.path().display())))
            .apply("Write", WriteToText::new(&prefix).with_num_shards(5));
        p.run().unwrap();
        let mut expected = input;
        expected.sort();
        assert_eq!(output_lines(&prefix), expected);
    }

    #[test]
    fn construction_is_deterministic() {
        let build = || {
            let p = Pipeline::new(options());
            p.apply("Read", ReadFromText::new("in/*.txt")).apply("Write", WriteToText::new("out/x").with_num_shards(2));
            p.graph().to_json()
        };
        assert_eq!(build(), build());
    }

    #[test]
    fn graph_names_the_steps_and_registered_functions() {
        let p = Pipeline::new(options());
        p.apply("Read", ReadFromText::new("in/*.txt")).apply("Write", WriteToText::new("out/x"));
        let graph = p.graph();
        for name in [
            "Read/Pattern",
            "Read/ExpandPattern",
            "Read/Reshuffle",
            "Read/ReadFiles",
            "Write/JobToken",
            "Write/MakeJobToken",
            "Write/RewindowIntoGlobal",
            "Write/AssignShards",
            "Write/GroupByShard",
            "Write/WriteShards",
            "Write/CollectShards",
            "Write/Finalize",
        ] {
            assert!(graph.transforms.contains_key(name), "{name} missing");
        }
        let json = graph.to_json();
        for registered in ["runnel_io.text.ExpandPattern", "runnel_io.text.ReadFile", "runnel_io.text.AssignShard"] {
            assert!(json.contains(registered), "{registered} missing");
        }
        assert!(p.job().is_ok());
    }

    #[test]
    fn num_shards_zero_means_the_default() {
        assert_eq!(WriteToText::new("x").num_shards(), DEFAULT_NUM_SHARDS);
        assert_eq!(WriteToText::new("x").with_num_shards(0).num_shards(), DEFAULT_NUM_SHARDS);
        assert_eq!(WriteToText::new("x").with_num_shards(7).num_shards(), 7);
        assert_eq!(WriteToText::new("x").prefix(), "x");
        assert_eq!(ReadFromText::new("p*").pattern(), "p*");
    }
}
