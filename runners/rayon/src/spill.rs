//! Groupings larger than memory: the shuffle into a grouping stage is written to disk in sorted
//! runs once the job's buffered shuffle data outgrows its memory budget, and the grouping reads
//! its partition back as a merge of the runs, key after key, in chunks that fit.
//!
//! A run is a file of records sorted by the key's deterministic encoding; a record is
//! `u32 LE key length, key bytes, u32 LE element length, element bytes` (the element as
//! [`ElementOps::encode`](runnel_model::exec::ElementOps::encode) writes it, so that the elements
//! of a chunk, concatenated, decode as one stream). Equal keys have equal bytes, so a merge of
//! sorted runs brings every element of a key together, and a chunk cut only between two keys
//! holds every element of its keys: a grouping can run on one chunk at a time.
//!
//! The files live in one temporary directory per job, removed when the job ends, whether it
//! succeeds or fails (the directory is dropped on every path out of the runner).

use runnel_model::exec::{Batch, ElementOps, KeyedEncoding};
use runnel_runner_core::RunError;
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

/// The bytes of shuffle data a job may hold in memory before it spills, and how many it holds.
#[derive(Debug)]
pub(crate) struct MemoryBudget {
    limit: u64,
    used: AtomicU64,
}

impl MemoryBudget {
    pub(crate) fn new(limit: u64) -> Self {
        MemoryBudget { limit: limit.max(1), used: AtomicU64::new(0) }
    }

    /// Counts `bytes` more in memory; whether the job is now over its budget.
    pub(crate) fn take(&self, bytes: u64) -> bool {
        self.used.fetch_add(bytes, Ordering::Relaxed).saturating_add(bytes) > self.limit
    }

    /// `bytes` left memory (spilled, or consumed by a grouping).
    pub(crate) fn release(&self, bytes: u64) {
        // Never below zero: estimates released are the estimates taken, but be safe against a race.
        let _ = self.used.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |u| Some(u.saturating_sub(bytes)));
    }

    /// Whether the job holds more than its budget.
    pub(crate) fn is_over(&self) -> bool {
        self.used.load(Ordering::Relaxed) > self.limit
    }

    /// The budget.
    pub(crate) fn limit(&self) -> u64 {
        self.limit
    }
}

/// The job's spill directory, created on the first spill (a job that never spills touches no
/// disk) and removed with everything in it when dropped.
#[derive(Debug)]
pub(crate) struct SpillDir {
    parent: Option<PathBuf>,
    dir: OnceLock<tempfile::TempDir>,
    next: AtomicU64,
}

impl SpillDir {
    /// Spill files will go in a new directory under `parent` (the system's temporary directory
    /// by default).
    pub(crate) fn new(parent: Option<PathBuf>) -> Self {
        SpillDir { parent, dir: OnceLock::new(), next: AtomicU64::new(0) }
    }

    fn path_of_new_run(&self) -> io::Result<PathBuf> {
        let dir = match self.dir.get() {
            Some(dir) => dir,
            None => {
                let mut builder = tempfile::Builder::new();
                builder.prefix("runnel-spill-");
                let made = match &self.parent {
                    Some(parent) => builder.tempdir_in(parent)?,
                    None => builder.tempdir()?,
                };
                // Another thread may have made one first: then ours is dropped (removed) here.
                let _ = self.dir.set(made);
                self.dir.get().expect("just set")
            }
        };
        Ok(dir.path().join(format!("run-{}", self.next.fetch_add(1, Ordering::Relaxed))))
    }

    /// Sorts `records` by key and writes them as a new run.
    pub(crate) fn write_run(&self, records: Vec<KeyedEncoding>) -> Result<Run, RunError> {
        self.try_write_run(records).map_err(|source| RunError::Io {
            context: format!("spilling a grouping's input to {}", self.location().display()),
            source,
        })
    }

    /// Where the spill files go.
    fn location(&self) -> PathBuf {
        match self.dir.get() {
            Some(dir) => dir.path().to_owned(),
            None => self.parent.clone().unwrap_or_else(std::env::temp_dir),
        }
    }

    fn try_write_run(&self, mut records: Vec<KeyedEncoding>) -> io::Result<Run> {
        records.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        let path = self.path_of_new_run()?;
        let mut out = BufWriter::with_capacity(1 << 16, File::create(&path)?);
        let mut bytes = 0u64;
        for (key, element) in &records {
            for part in [key, element] {
                let len = u32::try_from(part.len())
                    .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "a spilled key or element over 4 GiB"))?;
                out.write_all(&len.to_le_bytes())?;
                out.write_all(part)?;
                bytes += 4 + part.len() as u64;
            }
        }
        out.into_inner().map_err(|e| e.into_error())?.sync_data()?;
        Ok(Run { path, bytes })
    }
}

/// A sorted run on disk.
#[derive(Debug)]
pub(crate) struct Run {
    pub(crate) path: PathBuf,
    pub(crate) bytes: u64,
}

/// Reads a run's records in order.
struct RunReader {
    path: PathBuf,
    input: BufReader<File>,
}

impl RunReader {
    fn open(path: &Path) -> io::Result<Self> {
        Ok(RunReader { path: path.to_owned(), input: BufReader::with_capacity(1 << 16, File::open(path)?) })
    }

    fn part(&mut self) -> io::Result<Option<Vec<u8>>> {
        let mut len = [0u8; 4];
        match self.input.read_exact(&mut len) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
            Err(e) => return Err(e),
        }
        let mut bytes = vec![0u8; u32::from_le_bytes(len) as usize];
        self.input.read_exact(&mut bytes)?;
        Ok(Some(bytes))
    }

    fn next(&mut self) -> io::Result<Option<KeyedEncoding>> {
        let Some(key) = self.part()? else { return Ok(None) };
        let element = self.part()?.ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("spill run {} ends inside a record", self.path.display()),
            )
        })?;
        Ok(Some((key, element)))
    }
}

/// One input of a merge: a run on disk, or records sorted in memory.
enum Source {
    Disk(RunReader),
    Memory(std::vec::IntoIter<KeyedEncoding>),
}

impl Source {
    fn next(&mut self) -> io::Result<Option<KeyedEncoding>> {
        match self {
            Source::Disk(reader) => reader.next(),
            Source::Memory(records) => Ok(records.next()),
        }
    }
}

/// Merges `runs` and the in-memory `records` by key and hands `chunk` the concatenated element
/// encodings of about `chunk_bytes` (at least one key's worth), every key whole in one chunk,
/// keys in ascending byte order.
pub(crate) fn merge_by_key(
    runs: &[Run],
    mut records: Vec<KeyedEncoding>,
    chunk_bytes: usize,
    mut chunk: impl FnMut(Vec<u8>) -> Result<(), RunError>,
) -> Result<(), RunError> {
    records.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    let mut sources: Vec<Source> = Vec::with_capacity(runs.len() + 1);
    for run in runs {
        let reader = RunReader::open(&run.path).map_err(|e| read_error(&run.path, e))?;
        sources.push(Source::Disk(reader));
    }
    let next = |sources: &mut Vec<Source>, i: usize| -> Result<Option<KeyedEncoding>, RunError> {
        sources[i].next().map_err(|e| match &sources[i] {
            Source::Disk(reader) => read_error(&reader.path, e),
            Source::Memory(_) => unreachable!("records in memory cannot fail"),
        })
    };
    sources.push(Source::Memory(records.into_iter()));
    // The heap holds each source's next record: (key, source index), smallest key first; the
    // element waits beside it.
    let mut heads: Vec<Option<Vec<u8>>> = Vec::with_capacity(sources.len());
    let mut heap = BinaryHeap::new();
    for i in 0..sources.len() {
        match next(&mut sources, i)? {
            Some((key, element)) => {
                heap.push(Reverse((key, i)));
                heads.push(Some(element));
            }
            None => heads.push(None),
        }
    }
    let mut current: Vec<u8> = Vec::new();
    let mut last_key: Option<Vec<u8>> = None;
    while let Some(Reverse((key, i))) = heap.pop() {
        let element = heads[i].take().expect("a source in the heap has a head");
        if last_key.as_ref() != Some(&key) {
            if current.len() >= chunk_bytes {
                chunk(std::mem::take(&mut current))?;
            }
            last_key = Some(key);
        }
        current.extend_from_slice(&element);
        if let Some((next_key, next_element)) = next(&mut sources, i)? {
            heads[i] = Some(next_element);
            heap.push(Reverse((next_key, i)));
        }
    }
    if !current.is_empty() {
        chunk(current)?;
    }
    Ok(())
}

/// Every element of `batches` as `(key bytes, element bytes)`, for a run; `transform` is the
/// grouping they go to (named if a key cannot be encoded).
pub(crate) fn encode_keyed(
    ops: &dyn ElementOps,
    batches: impl IntoIterator<Item = Batch>,
    transform: &str,
) -> Result<Vec<KeyedEncoding>, RunError> {
    let mut records = Vec::new();
    for batch in batches {
        let encoded = ops.encode_keyed(&batch).map_err(|e| RunError::user_code(transform, e))?;
        records.extend(encoded.ok_or_else(|| RunError::Binding {
            transform: transform.to_string(),
            message: "a grouping's input is not key-value pairs".into(),
        })?);
    }
    Ok(records)
}

fn read_error(path: &Path, source: io::Error) -> RunError {
    RunError::Io { context: format!("reading the spilled run {}", path.display()), source }
}

/// The budget when the machine's memory cannot be read.
const FALLBACK_BUDGET: u64 = 1 << 30;

/// The default memory budget: half the memory available when the job starts (at least 64 MiB; 1 GiB where the
/// machine's memory cannot be read).
pub(crate) fn default_budget() -> u64 {
    match sysinfo::System::new() {
        Ok(mut system) => {
            system.refresh_memory();
            (system.available_memory() / 2).max(64 << 20)
        }
        Err(_) => FALLBACK_BUDGET,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(key: &str, element: &str) -> KeyedEncoding {
        (key.as_bytes().to_vec(), element.as_bytes().to_vec())
    }

    #[test]
    fn a_merge_of_runs_gives_every_key_whole_in_one_chunk_in_key_order() {
        let spill = SpillDir::new(None);
        let run1 = spill.write_run(vec![record("b", "b1;"), record("a", "a1;"), record("c", "c1;")]).unwrap();
        let run2 = spill.write_run(vec![record("c", "c2;"), record("a", "a2;")]).unwrap();
        assert_eq!(run1.bytes, 3 * (4 + 1 + 4 + 3));
        let memory = vec![record("b", "b2;"), record("d", "d1;")];
        let mut chunks: Vec<String> = Vec::new();
        merge_by_key(&[run1, run2], memory, 4, |c| {
            chunks.push(String::from_utf8(c).unwrap());
            Ok(())
        })
        .unwrap();
        // Chunks close at the first key boundary at or past 4 bytes, never inside a key.
        let sorted: Vec<String> = chunks
            .iter()
            .map(|c| {
                let mut parts: Vec<&str> = c.split_terminator(';').collect();
                parts.sort();
                parts.join(";")
            })
            .collect();
        assert_eq!(sorted, ["a1;a2", "b1;b2", "c1;c2", "d1"]);
    }

    #[test]
    fn the_spill_directory_is_removed_when_dropped() {
        let parent = tempfile::tempdir().unwrap();
        let spill = SpillDir::new(Some(parent.path().to_owned()));
        let run = spill.write_run(vec![record("k", "v")]).unwrap();
        assert!(run.path.exists());
        drop(spill);
        assert!(!run.path.exists());
        assert_eq!(std::fs::read_dir(parent.path()).unwrap().count(), 0);
    }

    #[test]
    fn the_budget_says_when_it_is_exceeded() {
        let budget = MemoryBudget::new(100);
        assert!(!budget.take(60));
        assert!(budget.take(60));
        budget.release(60);
        assert!(!budget.is_over());
        budget.release(1000);
        assert!(!budget.take(100));
    }
}
