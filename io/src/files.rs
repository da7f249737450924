//! Plain filesystem primitives for text input and sharded output.
//!
//! This module knows nothing of pipelines: it turns an input pattern into files ([`expand_pattern`]), reads a file
//! line by line ([`LineReader`], [`read_lines_batched`]) and writes output shards that become visible only when the
//! job commits ([`ShardWriter`], and the protocol of [`crate::commit`]). The text source and sink of this crate are built on it.
//!
//! # Text input
//!
//! Lines end at `\n`; one trailing `\r` is removed (so `\r\n` files read like `\n` files); a last line without `\n`
//! still counts; an empty file has no lines and a file ending with `\n` has no extra empty line at the end. A UTF-8
//! byte order mark at the very start of a file is skipped, as Beam's text source does. Input that is not valid UTF-8
//! is an error naming the file and the (1-based) line.
//!
//! # Sharded output
//!
//! Output is written to shards named `PREFIX-SSSSS-of-NNNNN` ([`shard_name`]). A [`ShardWriter`] writes a shard to a
//! hidden temporary file next to its final name, `.PREFIX-SSSSS-of-NNNNN.runnel-tmp-TOKEN.WRITER`, where `TOKEN` is
//! the job's token (given by the caller, see [`new_job_token`]) and `WRITER` is unique to the writer, so that two
//! attempts at the same shard (a retried task) never write the same file. [`ShardWriter::finish`] flushes and
//! syncs the file and returns a [`TempShard`], plain serialisable data that can travel through a pipeline to the
//! place where the job commits.
//!
//! Shards become visible through the commit protocol of [`crate::commit`]: a job takes the lock of its prefix
//! ([`crate::commit::PrefixLock`]) before it writes, and commits with [`crate::commit::PrefixLock::commit`], which
//! replaces every earlier shard of the prefix through a journal, so that a reader never sees shards of two runs
//! mixed. A failed job removes its temporary files ([`abort_shards`], [`remove_temp_files`]) and leaves no final
//! file.
//!
//! ```
//! use runnel_io::commit::PrefixLock;
//! use runnel_io::files::{expand_pattern, ShardWriter};
//!
//! # fn main() -> Result<(), runnel_io::files::FileError> {
//! # let dir = tempfile::tempdir().unwrap();
//! # let prefix_path = dir.path().join("out").join("counts");
//! # let prefix = prefix_path.to_str().unwrap();
//! let token = "job42";
//! let lock = PrefixLock::acquire(prefix, token)?;
//! let mut writer = ShardWriter::create(prefix, 0, 2, token)?;
//! writer.write_record("king: 2")?;
//! let shards = lock.commit(2, vec![writer.finish()?])?;
//! lock.release()?;
//! assert_eq!(shards.len(), 2);
//! assert_eq!(expand_pattern(&format!("{prefix}-*"))?.len(), 2);
//! # Ok(())
//! # }
//! ```

use std::collections::BTreeSet;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead, BufReader, BufWriter, Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// The number of lines per batch a bulk reader should ask for when it has no better idea.
pub const DEFAULT_BATCH_SIZE: usize = 1024;

/// Capacity of the read and write buffers: large enough that system calls do not dominate.
const BUFFER_CAPACITY: usize = 64 * 1024;

/// The UTF-8 byte order mark, skipped at the start of a file.
const UTF8_BOM: &[u8] = b"\xEF\xBB\xBF";

/// Marks a temporary shard file: `.NAME` + `TEMP_MARKER` + `TOKEN` + `.` + `WRITER`.
pub(crate) const TEMP_MARKER: &str = ".runnel-tmp-";

/// An error reading input files or writing output shards.
///
/// Every message names the file, directory, pattern or prefix concerned (and the line where there is one), and is
/// complete on its own: it already contains the text of the underlying I/O error, which is therefore kept in a field
/// (`error`) rather than reported again as [`std::error::Error::source`]. Print it with `{}` and the user knows what
/// failed and where.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FileError {
    /// No regular file matches an input pattern.
    #[error("no file matches the input pattern '{pattern}'")]
    NoMatch {
        /// The pattern, as given.
        pattern: String,
    },
    /// An input pattern is not a valid glob.
    #[error("invalid input pattern '{pattern}': {reason}")]
    InvalidPattern {
        /// The pattern, as given.
        pattern: String,
        /// Why the glob is invalid.
        reason: String,
    },
    /// A line of an input file is not valid UTF-8.
    #[error("invalid UTF-8 in {} at line {line}", path.display())]
    InvalidUtf8 {
        /// The file.
        path: PathBuf,
        /// The line, counted from 1.
        line: u64,
    },
    /// An I/O operation on a file or directory failed.
    #[error("cannot {action} {}: {error}", path.display())]
    Io {
        /// What was being done, e.g. `open`, `read`, `write`, `create directory`.
        action: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        error: io::Error,
    },
    /// Renaming a temporary shard to its final name failed.
    #[error("cannot rename {} to {}: {error}", from.display(), to.display())]
    Rename {
        /// The temporary file.
        from: PathBuf,
        /// The final name.
        to: PathBuf,
        /// The underlying error.
        error: io::Error,
    },
    /// A shard to commit has neither its temporary file nor its final file.
    #[error("cannot commit {}: its temporary file {} does not exist", final_path.display(), temp_path.display())]
    MissingTempFile {
        /// The temporary file that should exist.
        temp_path: PathBuf,
        /// The final name of the shard.
        final_path: PathBuf,
    },
    /// An output prefix, shard index or job token cannot name output files.
    #[error("invalid output for prefix '{prefix}': {reason}")]
    InvalidOutput {
        /// The output prefix, as given.
        prefix: String,
        /// What is wrong.
        reason: String,
    },
    /// An input given as a plain path is a directory.
    #[error("the input '{}' is a directory, not a file: to read the files in it, give a glob such as '{}'",
        path.display(), path.join("*").display())]
    InputIsDirectory {
        /// The directory, as given.
        path: PathBuf,
    },
    /// Another live job holds the lock of an output prefix: it is writing there.
    #[error(
        "output prefix '{prefix}' is being written by another job, {}; it holds the lock {} until it ends",
        holder.as_ref().map_or_else(|| "not yet identified".to_owned(), ToString::to_string),
        lock_path.display()
    )]
    PrefixLocked {
        /// The output prefix, as given.
        prefix: String,
        /// The lock file.
        lock_path: PathBuf,
        /// The job holding the lock, as its lock file names it (`None` while the holder has not written it yet).
        holder: Option<crate::commit::LockHolder>,
    },
    /// The commit journal of an output prefix cannot be understood.
    #[error("invalid commit journal {}: {reason}; remove it by hand once you have checked the output", path.display())]
    InvalidJournal {
        /// The journal file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

impl FileError {
    fn io(action: &'static str, path: impl Into<PathBuf>, error: io::Error) -> Self {
        FileError::Io { action, path: path.into(), error }
    }
}

// ---------------------------------------------------------------------------------------------------------------------
// Input patterns
// ---------------------------------------------------------------------------------------------------------------------

/// Expands an input pattern into the regular files it names, sorted and without duplicates.
///
/// A pattern without glob metacharacters (`*`, `?`, `[`) is a plain path. Otherwise it is a glob, with shell-like
/// rules: `*` and `?` do not match `/`, `**` as a whole path component matches any number of directories, `[abc]`
/// is a character class (`[*]` matches a literal `*`), and a name starting with `.` is matched only by a pattern
/// component that starts with `.` (so hidden files, among them the temporary files of [`ShardWriter`], are not read
/// by `out/*`). Relative patterns are relative to the current directory, and the paths returned are spelled as the
/// pattern spells them.
///
/// Symbolic links to regular files count as files; directories and other non-regular files are skipped.
///
/// # Errors
///
/// [`FileError::NoMatch`] if no regular file matches, [`FileError::InputIsDirectory`] if a plain path (not a glob)
/// names a directory, [`FileError::InvalidPattern`] if the glob is malformed, and [`FileError::Io`] if a matched path
/// or a directory to search cannot be read.
pub fn expand_pattern(pattern: &str) -> Result<Vec<PathBuf>, FileError> {
    let mut files = BTreeSet::new();
    if pattern.contains(['*', '?', '[']) {
        let options = glob::MatchOptions {
            case_sensitive: true,
            require_literal_separator: true,
            require_literal_leading_dot: true,
        };
        let paths = glob::glob_with(pattern, options)
            .map_err(|e| FileError::InvalidPattern { pattern: pattern.to_owned(), reason: e.to_string() })?;
        for entry in paths {
            let path = entry.map_err(|e| {
                let path = e.path().to_owned();
                FileError::io("search", path, e.into())
            })?;
            if is_regular_file(&path)? {
                files.insert(path);
            }
        }
    } else if is_regular_file(Path::new(pattern))? {
        files.insert(PathBuf::from(pattern));
    } else if Path::new(pattern).is_dir() {
        return Err(FileError::InputIsDirectory { path: PathBuf::from(pattern) });
    }
    if files.is_empty() {
        return Err(FileError::NoMatch { pattern: pattern.to_owned() });
    }
    Ok(files.into_iter().collect())
}

/// The size of the byte ranges [`split_files`] cuts files into when the caller has no better idea: small enough that
/// a 200 MB file keeps every core of a machine busy, large enough that the cost of a range (opening the file, one
/// partial line skipped) does not show.
pub const DEFAULT_SPLIT_BYTES: u64 = 8 << 20;

/// A byte range of a file whose lines one reader reads: the lines that start in `start..end` (see
/// [`LineReader::open_range`]).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct FileRange {
    /// The file.
    pub path: PathBuf,
    /// The first byte of the range.
    pub start: u64,
    /// The first byte after the range.
    pub end: u64,
}

impl FileRange {
    /// A reader of the lines of this range.
    ///
    /// # Errors
    ///
    /// As [`LineReader::open_range`].
    pub fn open(&self) -> Result<LineReader, FileError> {
        LineReader::open_range(&self.path, self.start, self.end)
    }
}

/// Cuts each file into ranges of about `split_bytes` bytes (at least 1) that tile it, so that the ranges' lines are
/// the file's lines, each exactly once. An empty file has no range. The sizes are read now: lines appended to a
/// file later are not read past the end of its last range's line.
///
/// # Errors
///
/// [`FileError::Io`] naming a file whose size cannot be read.
pub fn split_files(paths: &[PathBuf], split_bytes: u64) -> Result<Vec<FileRange>, FileError> {
    let split_bytes = split_bytes.max(1);
    let mut ranges = Vec::new();
    for path in paths {
        let len = fs::metadata(path).map_err(|e| FileError::io("read metadata of", path, e))?.len();
        let mut start = 0;
        while start < len {
            // The last range takes a short tail rather than leaving a sliver of its own.
            let end = if len - start < split_bytes + split_bytes / 4 { len } else { start + split_bytes };
            ranges.push(FileRange { path: path.clone(), start, end });
            start = end;
        }
    }
    Ok(ranges)
}

/// Whether `path` is a regular file (following symbolic links); a path that does not exist is not.
fn is_regular_file(path: &Path) -> Result<bool, FileError> {
    match fs::metadata(path) {
        Ok(metadata) => Ok(metadata.is_file()),
        // A missing path or a dangling link: nothing there.
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(FileError::io("read metadata of", path, e)),
    }
}

// ---------------------------------------------------------------------------------------------------------------------
// Reading lines
// ---------------------------------------------------------------------------------------------------------------------

/// Reads the lines of one file, following the text input rules of the [module documentation](self).
///
/// The file is read through a buffer, one line at a time, never whole. Three ways to consume it, from the most
/// convenient to the fastest:
///
/// - as an [`Iterator`] of `Result<String, FileError>`;
/// - by batches of lines, [`LineReader::read_batch`] (or [`read_lines_batched`] for a whole file);
/// - line by line without any allocation, [`LineReader::read_line`], which lends a `&str` into the reader's buffer.
///
/// After the first error the reader is exhausted: it returns no more lines.
///
/// ```
/// # use std::io::Write;
/// use runnel_io::files::LineReader;
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let mut file = tempfile::NamedTempFile::new()?;
/// # file.write_all(b"to be\r\nor not")?;
/// # let path = file.path();
/// let lines = LineReader::open(path)?.collect::<Result<Vec<String>, _>>()?;
/// assert_eq!(lines, ["to be", "or not"]);
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct LineReader {
    path: PathBuf,
    reader: BufReader<File>,
    /// The current line, with its line ending; reused from line to line.
    buf: Vec<u8>,
    /// The number of lines read so far.
    line: u64,
    /// The byte offset of the next line.
    offset: u64,
    /// Where the lines of this reader's range start, and the offset from which no line is its own (`u64::MAX` for a
    /// whole file).
    range: (u64, u64),
    /// Set at the end of the file and after an error.
    done: bool,
}

impl LineReader {
    /// Opens `path` for reading.
    ///
    /// # Errors
    ///
    /// [`FileError::Io`] naming the path if the file cannot be opened.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, FileError> {
        Self::open_range(path, 0, u64::MAX)
    }

    /// Opens `path` to read the lines that **start** in the byte range `start..end`: the line in progress at `start`
    /// belongs to the range before, and the line in progress at `end` is read whole. Ranges that tile a file
    /// (`0..a`, `a..b`, …, `z..len`) therefore read every line exactly once, wherever the cuts fall, which is how a
    /// large file is read in parallel. Error messages still give the line's number in the whole file.
    ///
    /// # Errors
    ///
    /// [`FileError::Io`] naming the path if the file cannot be opened or read up to the first line of the range.
    pub fn open_range(path: impl AsRef<Path>, start: u64, end: u64) -> Result<Self, FileError> {
        let path = path.as_ref();
        let file = File::open(path).map_err(|e| FileError::io("open", path, e))?;
        let mut reader = BufReader::with_capacity(BUFFER_CAPACITY, file);
        let mut buf = Vec::new();
        let mut offset = 0;
        if start > 0 {
            // The first line of the range is the first one starting at or after `start`: skip to just after the
            // first `\n` at or after `start - 1`.
            reader.seek(io::SeekFrom::Start(start - 1)).map_err(|e| FileError::io("seek in", path, e))?;
            let skipped = reader.read_until(b'\n', &mut buf).map_err(|e| FileError::io("read", path, e))?;
            offset = start - 1 + skipped as u64;
        }
        Ok(LineReader { path: path.to_owned(), reader, buf, line: 0, offset, range: (offset, end), done: false })
    }

    /// The path of the file being read.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The number of lines read so far, which is also the (1-based) number of the last line returned when the reader
    /// started at the beginning of the file (for a range, it counts from the range's first line).
    pub fn line_number(&self) -> u64 {
        self.line
    }

    /// Reads the next line and lends it, without its line ending, until the next call; `None` at the end of the file.
    ///
    /// This is the fastest way to read: nothing is allocated once the buffer has grown to the longest line.
    ///
    /// # Errors
    ///
    /// [`FileError::InvalidUtf8`] naming the file and line, or [`FileError::Io`] naming the file. The reader is
    /// exhausted afterwards.
    pub fn read_line(&mut self) -> Result<Option<&str>, FileError> {
        if self.done {
            return Ok(None);
        }
        if self.offset >= self.range.1 {
            self.done = true;
            return Ok(None);
        }
        let at_file_start = self.offset == 0;
        self.buf.clear();
        match self.reader.read_until(b'\n', &mut self.buf) {
            Ok(0) => {
                self.done = true;
                return Ok(None);
            }
            Ok(read) => self.offset += read as u64,
            Err(e) => {
                self.done = true;
                return Err(FileError::io("read", &self.path, e));
            }
        }
        let mut bytes = &self.buf[..];
        if at_file_start {
            if let Some(rest) = bytes.strip_prefix(UTF8_BOM) {
                if rest.is_empty() {
                    // The file is a byte order mark and nothing else: it has no lines.
                    self.done = true;
                    return Ok(None);
                }
                bytes = rest;
            }
        }
        self.line += 1;
        if let Some(rest) = bytes.strip_suffix(b"\n") {
            bytes = rest;
        }
        if let Some(rest) = bytes.strip_suffix(b"\r") {
            bytes = rest;
        }
        match std::str::from_utf8(bytes) {
            Ok(line) => Ok(Some(line)),
            Err(_) => {
                self.done = true;
                Err(match self.lines_before_range() {
                    Ok(before) => FileError::InvalidUtf8 { path: self.path.clone(), line: before + self.line },
                    Err(e) => e,
                })
            }
        }
    }

    /// How many lines of the file precede this reader's range: counted only when an error needs a line number, so
    /// that reading a range never pays for it.
    fn lines_before_range(&self) -> Result<u64, FileError> {
        let start = self.range.0;
        if start == 0 {
            return Ok(0);
        }
        let file = File::open(&self.path).map_err(|e| FileError::io("open", &self.path, e))?;
        let mut prefix = BufReader::with_capacity(BUFFER_CAPACITY, file).take(start);
        let mut chunk = vec![0u8; BUFFER_CAPACITY];
        let mut lines = 0u64;
        loop {
            let n = prefix.read(&mut chunk).map_err(|e| FileError::io("read", &self.path, e))?;
            if n == 0 {
                return Ok(lines);
            }
            lines += chunk[..n].iter().filter(|b| **b == b'\n').count() as u64;
        }
    }

    /// Appends up to `max_lines` lines to `out` and returns how many it appended: fewer than `max_lines` (possibly
    /// zero) only at the end of the file.
    ///
    /// # Errors
    ///
    /// As [`LineReader::read_line`]; the lines read before the error are in `out`.
    pub fn read_batch(&mut self, max_lines: usize, out: &mut Vec<String>) -> Result<usize, FileError> {
        out.reserve(max_lines);
        let mut count = 0;
        while count < max_lines {
            match self.read_line()? {
                Some(line) => out.push(line.to_owned()),
                None => break,
            }
            count += 1;
        }
        Ok(count)
    }
}

impl Iterator for LineReader {
    type Item = Result<String, FileError>;

    fn next(&mut self) -> Option<Self::Item> {
        self.read_line().map(|line| line.map(str::to_owned)).transpose()
    }
}

impl std::iter::FusedIterator for LineReader {}

/// Reads the whole file at `path` in batches of `batch_size` lines (at least one; see [`DEFAULT_BATCH_SIZE`]),
/// calling `f` with each batch in file order. Only the last batch may be shorter; an empty file makes no call.
///
/// The error type is the caller's, so that `f` can fail with its own errors and stop the reading.
///
/// # Errors
///
/// The [`FileError`] of opening or reading the file (converted into `E`), or the first error of `f`.
///
/// ```
/// # use std::io::Write;
/// use runnel_io::files::{read_lines_batched, FileError};
///
/// # fn main() -> Result<(), FileError> {
/// # let mut file = tempfile::NamedTempFile::new().unwrap();
/// # file.write_all(b"a\nb\nc\n").unwrap();
/// # let path = file.path();
/// let mut sizes = Vec::new();
/// read_lines_batched(path, 2, |batch| {
///     sizes.push(batch.len());
///     Ok::<(), FileError>(())
/// })?;
/// assert_eq!(sizes, [2, 1]);
/// # Ok(())
/// # }
/// ```
pub fn read_lines_batched<E, F>(path: impl AsRef<Path>, batch_size: usize, mut f: F) -> Result<(), E>
where
    E: From<FileError>,
    F: FnMut(Vec<String>) -> Result<(), E>,
{
    let batch_size = batch_size.max(1);
    let mut reader = LineReader::open(path)?;
    loop {
        let mut batch = Vec::with_capacity(batch_size);
        let count = reader.read_batch(batch_size, &mut batch)?;
        if count > 0 {
            f(batch)?;
        }
        if count < batch_size {
            return Ok(());
        }
    }
}

// ---------------------------------------------------------------------------------------------------------------------
// Sharded output
// ---------------------------------------------------------------------------------------------------------------------

/// The name of shard `index` of `num_shards` for an output `prefix`: `PREFIX-SSSSS-of-NNNNN`, both numbers zero-padded
/// to five digits (wider if they need more), e.g. `counts-00000-of-00002`.
///
/// The prefix may contain directories (`out/counts`); a bare prefix (`counts`) names a file in the current directory.
pub fn shard_name(prefix: &str, index: usize, num_shards: usize) -> String {
    format!("{prefix}-{index:05}-of-{num_shards:05}")
}

/// A unique job token for the temporary file names of [`ShardWriter`]: distinct across processes and calls.
///
/// Every writer of one job's output must be given the same token (a distributed job creates it once and ships it to
/// its workers), so that [`remove_temp_files`] finds all of the job's temporary files.
pub fn new_job_token() -> String {
    unique_id()
}

/// A string unique to this call among all calls in all processes on this machine: process id, a process-wide
/// counter, and the time.
fn unique_id() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let count = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    format!("{:x}-{count:x}-{nanos:x}", std::process::id())
}

/// Checks that a job token can be part of a file name and cannot be confused with another token.
pub(crate) fn check_token(prefix: &str, token: &str) -> Result<(), FileError> {
    if token.is_empty() || !token.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
        return Err(FileError::InvalidOutput {
            prefix: prefix.to_owned(),
            reason: format!(
                "the job token '{token}' must be non-empty and contain only ASCII letters, digits, '-' and '_'"
            ),
        });
    }
    Ok(())
}

/// Checks that `prefix` can name output shards `PREFIX-SSSSS-of-NNNNN`: it is not empty, and its last part names
/// files, not a directory (`out/`, `.` or `out/..` would give shards named `-00000-of-00001`, `.-00000-of-00001`,
/// …). Programs should call it on their `--output` before they build or run anything.
///
/// ```
/// use runnel_io::files::check_output_prefix;
/// assert!(check_output_prefix("out/counts").is_ok());
/// assert!(check_output_prefix("out/").is_err());
/// assert!(check_output_prefix("").is_err());
/// ```
///
/// # Errors
///
/// [`FileError::InvalidOutput`] naming the prefix and saying what is wrong.
pub fn check_output_prefix(prefix: &str) -> Result<(), FileError> {
    let invalid = |reason: String| Err(FileError::InvalidOutput { prefix: prefix.to_owned(), reason });
    if prefix.is_empty() {
        return invalid("the prefix is empty; give a path prefix such as 'out/counts'".to_owned());
    }
    if prefix.contains('\0') {
        return invalid("the prefix contains a NUL character".to_owned());
    }
    let last = prefix.rsplit(std::path::is_separator).next().unwrap_or(prefix);
    if last.is_empty() || last == "." || last == ".." {
        let dir = prefix.trim_end_matches(std::path::is_separator);
        let dir = if dir.is_empty() { prefix } else { dir };
        return invalid(format!(
            "it names a directory, not a file name prefix, so the shards would be named '{last}-00000-of-00001'; \
             give a name inside it, such as '{dir}/part'"
        ));
    }
    Ok(())
}

/// Checks an output prefix and a shard index.
fn check_shard(prefix: &str, index: usize, num_shards: usize) -> Result<(), FileError> {
    check_output_prefix(prefix)?;
    let reason = if num_shards == 0 {
        "the number of shards is 0".to_owned()
    } else if index >= num_shards {
        format!("shard index {index} is out of range for {num_shards} shards")
    } else {
        return Ok(());
    };
    Err(FileError::InvalidOutput { prefix: prefix.to_owned(), reason })
}

/// The directory of an output prefix (`""` for a bare prefix) and the file name part of its shards, `NAME` in
/// `NAME-SSSSS-of-NNNNN` (possibly empty, for a prefix such as `out/`).
pub(crate) fn split_prefix(prefix: &str) -> (PathBuf, String) {
    let probe = PathBuf::from(format!("{prefix}-"));
    let dir = probe.parent().map(Path::to_path_buf).unwrap_or_default();
    let name = probe.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let name = name.strip_suffix('-').unwrap_or(&name).to_owned();
    (dir, name)
}

/// The final path of a shard and the path of its temporary file for one writer.
pub(crate) fn shard_paths(
    prefix: &str,
    index: usize,
    num_shards: usize,
    token: &str,
    writer_id: &str,
) -> (PathBuf, PathBuf) {
    let (dir, name) = split_prefix(prefix);
    let shard = shard_name(&name, index, num_shards);
    let temp = dir.join(format!(".{shard}{TEMP_MARKER}{token}.{writer_id}"));
    (dir.join(shard), temp)
}

/// A directory path usable with `fs` functions: a bare prefix lives in the current directory.
pub(crate) fn dir_or_current(dir: &Path) -> &Path {
    if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    }
}

/// Writes one output shard, one `\n`-terminated record per line, to a temporary file; see the
/// [module documentation](self) for the commit protocol.
///
/// A writer dropped without [`ShardWriter::finish`] (a failed task) removes its temporary file.
#[derive(Debug)]
pub struct ShardWriter {
    /// `None` once finished.
    writer: Option<BufWriter<File>>,
    temp_path: PathBuf,
    final_path: PathBuf,
    records: u64,
}

impl ShardWriter {
    /// Creates the temporary file of shard `index` of `num_shards` for the output `prefix`, in the directory of the
    /// final shard, creating that directory if needed. `token` identifies the job (see [`new_job_token`]): ASCII
    /// letters, digits, `-` and `_`.
    ///
    /// # Errors
    ///
    /// [`FileError::InvalidOutput`] for an empty prefix, an index not below `num_shards`, or an invalid token;
    /// [`FileError::Io`] naming the directory or file that cannot be created.
    pub fn create(prefix: &str, index: usize, num_shards: usize, token: &str) -> Result<Self, FileError> {
        check_shard(prefix, index, num_shards)?;
        check_token(prefix, token)?;
        let (final_path, temp_path) = shard_paths(prefix, index, num_shards, token, &unique_id());
        if let Some(dir) = final_path.parent().filter(|dir| !dir.as_os_str().is_empty()) {
            fs::create_dir_all(dir).map_err(|e| FileError::io("create output directory", dir, e))?;
        }
        let file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&temp_path)
            .map_err(|e| FileError::io("create", &temp_path, e))?;
        Ok(ShardWriter {
            writer: Some(BufWriter::with_capacity(BUFFER_CAPACITY, file)),
            temp_path,
            final_path,
            records: 0,
        })
    }

    /// Writes `record` followed by `\n`. The record is written as it is: a record containing `\n` becomes several
    /// lines.
    ///
    /// # Errors
    ///
    /// [`FileError::Io`] naming the temporary file.
    pub fn write_record(&mut self, record: &str) -> Result<(), FileError> {
        let Some(writer) = self.writer.as_mut() else {
            unreachable!("a ShardWriter is only finished by `finish`, which consumes it")
        };
        writer
            .write_all(record.as_bytes())
            .and_then(|()| writer.write_all(b"\n"))
            .map_err(|e| FileError::io("write", &self.temp_path, e))?;
        self.records += 1;
        Ok(())
    }

    /// The number of records written so far.
    pub fn records_written(&self) -> u64 {
        self.records
    }

    /// The temporary file being written.
    pub fn temp_path(&self) -> &Path {
        &self.temp_path
    }

    /// The name the shard takes when committed.
    pub fn final_path(&self) -> &Path {
        &self.final_path
    }

    /// Flushes the records and syncs the temporary file to disk, making the shard ready to commit. A writer that
    /// wrote no record leaves an empty file, which commits to an empty shard.
    ///
    /// # Errors
    ///
    /// [`FileError::Io`] naming the temporary file; the file is then removed.
    pub fn finish(mut self) -> Result<TempShard, FileError> {
        let Some(writer) = self.writer.take() else {
            unreachable!("a ShardWriter is only finished by `finish`, which consumes it")
        };
        let result = writer.into_inner().map_err(io::IntoInnerError::into_error).and_then(|file| file.sync_all());
        match result {
            Ok(()) => Ok(TempShard {
                temp_path: std::mem::take(&mut self.temp_path),
                final_path: std::mem::take(&mut self.final_path),
            }),
            Err(e) => {
                let _ = fs::remove_file(&self.temp_path);
                Err(FileError::io("write", &self.temp_path, e))
            }
        }
    }
}

impl Drop for ShardWriter {
    fn drop(&mut self) {
        if let Some(writer) = self.writer.take() {
            // Not finished: the shard is abandoned. Close the file first (dropping the buffer flushes it; an error
            // there does not matter), then remove it; best effort.
            drop(writer);
            let _ = fs::remove_file(&self.temp_path);
        }
    }
}

/// A finished shard waiting for its commit: its temporary file and the name it will take.
///
/// Plain data (serialisable with serde) so that it can travel through a pipeline, or between processes, to the
/// place where the job commits.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct TempShard {
    /// The temporary file holding the shard's records.
    pub temp_path: PathBuf,
    /// The final name of the shard, `PREFIX-SSSSS-of-NNNNN`.
    pub final_path: PathBuf,
}

/// Writes an empty shard `index` of `num_shards` for `prefix`, ready to commit: for a shard that got no records.
///
/// # Errors
///
/// As [`ShardWriter::create`] and [`ShardWriter::finish`].
pub fn write_empty_shard(prefix: &str, index: usize, num_shards: usize, token: &str) -> Result<TempShard, FileError> {
    ShardWriter::create(prefix, index, num_shards, token)?.finish()
}

/// Completes `shards` (finished shards of the output `prefix`) with an empty shard for every index of
/// `0..num_shards` that has none, and returns them all sorted by final name, so that after [`crate::commit::PrefixLock::commit`] every
/// shard of the output exists.
///
/// # Errors
///
/// As [`write_empty_shard`].
pub fn fill_missing_shards(
    prefix: &str,
    num_shards: usize,
    token: &str,
    mut shards: Vec<TempShard>,
) -> Result<Vec<TempShard>, FileError> {
    let present: BTreeSet<PathBuf> = shards.iter().map(|s| s.final_path.clone()).collect();
    for index in 0..num_shards {
        let (final_path, _) = shard_paths(prefix, index, num_shards, token, "");
        if !present.contains(&final_path) {
            shards.push(write_empty_shard(prefix, index, num_shards, token)?);
        }
    }
    shards.sort_by(|a, b| a.final_path.cmp(&b.final_path));
    Ok(shards)
}

/// Removes the temporary files of `shards` (a failed job's finished shards); files already gone are fine.
///
/// # Errors
///
/// [`FileError::Io`] naming a file that exists but cannot be removed.
pub fn abort_shards(shards: &[TempShard]) -> Result<(), FileError> {
    for shard in shards {
        remove_if_exists(&shard.temp_path)?;
    }
    Ok(())
}

/// Removes every temporary shard file of the output `prefix` written with the job `token`, finished or not, by any
/// writer: after a failed job, or after a commit to clear what retried attempts left. Returns how many files it
/// removed. Final shards and other jobs' temporary files are left alone.
///
/// # Errors
///
/// [`FileError::InvalidOutput`] for an invalid token; [`FileError::Io`] naming the directory or file that cannot be
/// listed or removed. A missing directory is not an error: there is nothing to remove.
pub fn remove_temp_files(prefix: &str, token: &str) -> Result<usize, FileError> {
    check_token(prefix, token)?;
    let (dir, name) = split_prefix(prefix);
    let dir = dir_or_current(&dir);
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(FileError::io("list directory", dir, e)),
    };
    let start = format!(".{name}-");
    let marker = format!("{TEMP_MARKER}{token}.");
    let mut removed = 0;
    for entry in entries {
        let entry = entry.map_err(|e| FileError::io("list directory", dir, e))?;
        let file_name = entry.file_name();
        let Some(file_name) = file_name.to_str() else {
            continue;
        };
        if file_name.starts_with(&start) && file_name.contains(&marker) && remove_if_exists(&entry.path())? {
            removed += 1;
        }
    }
    Ok(removed)
}

/// Removes a file; returns whether it existed.
pub(crate) fn remove_if_exists(path: &Path) -> Result<bool, FileError> {
    match fs::remove_file(path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(FileError::io("remove", path, e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tempfile::TempDir;

    fn write(dir: &Path, name: &str, contents: &[u8]) -> PathBuf {
        let path = dir.join(name);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).unwrap();
        }
        fs::write(&path, contents).unwrap();
        path
    }

    fn lines_of(contents: &[u8]) -> Vec<String> {
        let dir = TempDir::new().unwrap();
        let path = write(dir.path(), "input.txt", contents);
        LineReader::open(&path).unwrap().collect::<Result<_, _>>().unwrap()
    }

    /// The lines of `contents` read as the ranges cut at `cuts` (sorted offsets inside the file).
    fn lines_by_ranges(path: &Path, len: u64, cuts: &[u64]) -> Vec<String> {
        let mut bounds = vec![0];
        bounds.extend_from_slice(cuts);
        bounds.push(len);
        bounds
            .windows(2)
            .flat_map(|w| LineReader::open_range(path, w[0], w[1]).unwrap().collect::<Result<Vec<_>, _>>().unwrap())
            .collect()
    }

    #[test]
    fn ranges_cut_anywhere_read_every_line_once() {
        let dir = TempDir::new().unwrap();
        for contents in [
            &b"alpha\nbe\n\ngamma delta\r\nx\n"[..],
            b"\xEF\xBB\xBFbom first\nsecond\nno newline at end",
            b"\n\n\n",
            b"one line only",
            "ünïcödé\nzwei\n".as_bytes(),
        ] {
            let path = write(dir.path(), "input.txt", contents);
            let whole = lines_of(contents);
            let len = contents.len() as u64;
            for a in 1..len {
                assert_eq!(lines_by_ranges(&path, len, &[a]), whole, "one cut at {a} of {contents:?}");
                for b in a + 1..len {
                    assert_eq!(lines_by_ranges(&path, len, &[a, b]), whole, "cuts at {a}, {b} of {contents:?}");
                }
            }
        }
    }

    #[test]
    fn split_files_tiles_each_file_and_skips_empty_ones() {
        let dir = TempDir::new().unwrap();
        let text: String = (0..500).map(|i| format!("line {i}\n")).collect();
        let big = write(dir.path(), "big.txt", text.as_bytes());
        let empty = write(dir.path(), "empty.txt", b"");
        let ranges = split_files(&[big.clone(), empty], 1000).unwrap();
        assert!(ranges.len() > 3, "{ranges:?}");
        assert!(ranges.iter().all(|r| r.path == big));
        assert_eq!(ranges[0].start, 0);
        assert_eq!(ranges.last().unwrap().end, text.len() as u64);
        assert!(ranges.windows(2).all(|w| w[0].end == w[1].start));
        let lines: Vec<String> = ranges.iter().flat_map(|r| r.open().unwrap().map(Result::unwrap)).collect();
        assert_eq!(lines, lines_of(text.as_bytes()));
    }

    #[test]
    fn an_error_in_a_range_names_the_line_in_the_whole_file() {
        let dir = TempDir::new().unwrap();
        let path = write(dir.path(), "bad.txt", b"one\ntwo\nthree\nf\xFFour\nfive\n");
        let mut reader = LineReader::open_range(&path, 8, 30).unwrap();
        assert_eq!(reader.read_line().unwrap(), Some("three"));
        let err = reader.read_line().unwrap_err();
        assert!(matches!(err, FileError::InvalidUtf8 { line: 4, .. }), "{err}");
        assert!(err.to_string().contains("bad.txt at line 4"), "{err}");
    }

    fn pattern_in(dir: &TempDir, pattern: &str) -> String {
        format!("{}/{pattern}", dir.path().display())
    }

    fn prefix_in(dir: &TempDir, prefix: &str) -> String {
        dir.path().join(prefix).to_str().unwrap().to_owned()
    }

    /// Commits `shards` through the protocol of [`crate::commit`].
    fn commit_all(prefix: &str, token: &str, num_shards: usize, shards: Vec<TempShard>) {
        let lock = crate::commit::PrefixLock::acquire(prefix, token).unwrap();
        lock.commit(num_shards, shards).unwrap();
        lock.release().unwrap();
    }

    fn file_names(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> =
            fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
        names.sort();
        names
    }

    // --- expand_pattern ---

    #[test]
    fn glob_matches_several_files_in_sorted_order() {
        let dir = TempDir::new().unwrap();
        for name in ["c.txt", "a.txt", "b.txt", "notes.md"] {
            write(dir.path(), name, b"x\n");
        }
        let files = expand_pattern(&pattern_in(&dir, "*.txt")).unwrap();
        assert_eq!(files, ["a.txt", "b.txt", "c.txt"].map(|n| dir.path().join(n)));
    }

    #[test]
    fn plain_path_names_one_file() {
        let dir = TempDir::new().unwrap();
        let path = write(dir.path(), "input.txt", b"x\n");
        assert_eq!(expand_pattern(path.to_str().unwrap()).unwrap(), [path]);
    }

    #[test]
    fn pattern_matching_nothing_is_an_error_naming_it() {
        let dir = TempDir::new().unwrap();
        let pattern = pattern_in(&dir, "*.txt");
        let error = expand_pattern(&pattern).unwrap_err();
        assert!(matches!(&error, FileError::NoMatch { pattern: p } if *p == pattern));
        assert_eq!(error.to_string(), format!("no file matches the input pattern '{pattern}'"));
    }

    #[test]
    fn missing_plain_path_is_no_match() {
        let dir = TempDir::new().unwrap();
        let pattern = pattern_in(&dir, "missing.txt");
        assert!(matches!(expand_pattern(&pattern), Err(FileError::NoMatch { .. })));
    }

    #[test]
    fn directories_are_not_files() {
        let dir = TempDir::new().unwrap();
        fs::create_dir(dir.path().join("a.txt")).unwrap();
        write(dir.path(), "b.txt", b"x\n");
        assert_eq!(expand_pattern(&pattern_in(&dir, "*.txt")).unwrap(), [dir.path().join("b.txt")]);
    }

    #[test]
    fn pattern_matching_only_directories_is_no_match() {
        let dir = TempDir::new().unwrap();
        fs::create_dir(dir.path().join("sub")).unwrap();
        assert!(matches!(expand_pattern(&pattern_in(&dir, "*")), Err(FileError::NoMatch { .. })));
    }

    #[test]
    fn a_directory_given_as_a_plain_path_is_an_error_saying_so() {
        let dir = TempDir::new().unwrap();
        write(dir.path(), "sub/a.txt", b"x\n");
        let plain = dir.path().join("sub");
        let error = expand_pattern(plain.to_str().unwrap()).unwrap_err();
        assert!(matches!(&error, FileError::InputIsDirectory { path } if *path == plain), "{error:?}");
        assert_eq!(
            error.to_string(),
            format!(
                "the input '{}' is a directory, not a file: to read the files in it, give a glob such as '{}/*'",
                plain.display(),
                plain.display()
            )
        );
    }

    #[test]
    fn output_prefixes_that_name_a_directory_or_nothing_are_refused() {
        for prefix in ["", "out/", "dir/sub/", ".", "..", "out/.", "out/..", "/"] {
            let error = check_output_prefix(prefix).unwrap_err();
            assert!(matches!(&error, FileError::InvalidOutput { prefix: p, .. } if p == prefix), "{error:?}");
            assert!(error.to_string().starts_with(&format!("invalid output for prefix '{prefix}': ")), "{error}");
        }
        let error = check_output_prefix("out/").unwrap_err().to_string();
        assert!(error.contains("names a directory") && error.contains("'out/part'"), "{error}");
        for prefix in ["counts", "out/counts", "./counts", "/tmp/x/counts", "out/.hidden", "a b/c d"] {
            check_output_prefix(prefix).unwrap();
        }
    }

    #[test]
    fn invalid_glob_is_an_error_naming_the_pattern() {
        let dir = TempDir::new().unwrap();
        let pattern = pattern_in(&dir, "[a.txt");
        let error = expand_pattern(&pattern).unwrap_err();
        assert!(matches!(error, FileError::InvalidPattern { .. }));
        let message = error.to_string();
        assert!(message.starts_with(&format!("invalid input pattern '{pattern}': ")), "{message}");
        assert!(message.len() > format!("invalid input pattern '{pattern}': ").len(), "{message}");
    }

    #[test]
    fn star_stays_in_one_directory_and_double_star_recurses() {
        let dir = TempDir::new().unwrap();
        write(dir.path(), "a.txt", b"x\n");
        write(dir.path(), "sub/b.txt", b"x\n");
        write(dir.path(), "sub/deeper/c.txt", b"x\n");
        assert_eq!(expand_pattern(&pattern_in(&dir, "*.txt")).unwrap(), [dir.path().join("a.txt")]);
        assert_eq!(
            expand_pattern(&pattern_in(&dir, "**/*.txt")).unwrap(),
            ["a.txt", "sub/b.txt", "sub/deeper/c.txt"].map(|n| dir.path().join(n))
        );
    }

    #[test]
    fn star_skips_hidden_files() {
        let dir = TempDir::new().unwrap();
        write(dir.path(), ".hidden", b"x\n");
        write(dir.path(), "shown", b"x\n");
        assert_eq!(expand_pattern(&pattern_in(&dir, "*")).unwrap(), [dir.path().join("shown")]);
    }

    // --- LineReader ---

    #[test]
    fn lines_end_at_newline() {
        assert_eq!(lines_of(b"one\ntwo\nthree\n"), ["one", "two", "three"]);
    }

    #[test]
    fn crlf_line_endings_are_removed() {
        assert_eq!(lines_of(b"one\r\ntwo\r\n"), ["one", "two"]);
    }

    #[test]
    fn only_one_trailing_carriage_return_is_removed() {
        assert_eq!(lines_of(b"one\r\r\ntwo\r\r"), ["one\r", "two\r"]);
    }

    #[test]
    fn carriage_return_inside_a_line_is_kept() {
        assert_eq!(lines_of(b"a\rb\n"), ["a\rb"]);
    }

    #[test]
    fn final_line_without_newline_counts() {
        assert_eq!(lines_of(b"one\ntwo"), ["one", "two"]);
        assert_eq!(lines_of(b"one\r\ntwo\r"), ["one", "two"]);
    }

    #[test]
    fn empty_file_has_no_lines() {
        assert!(lines_of(b"").is_empty());
    }

    #[test]
    fn file_ending_with_newline_has_no_extra_empty_line() {
        assert_eq!(lines_of(b"one\n"), ["one"]);
    }

    #[test]
    fn empty_lines_are_lines() {
        assert_eq!(lines_of(b"\n"), [""]);
        assert_eq!(lines_of(b"a\n\n\r\nb\n\n"), ["a", "", "", "b", ""]);
    }

    #[test]
    fn unicode_text_is_read() {
        let text = "héllo wörld\n日本語のテキスト\nemoji 🦀\r\nΣίσυφος";
        assert_eq!(lines_of(text.as_bytes()), ["héllo wörld", "日本語のテキスト", "emoji 🦀", "Σίσυφος"]);
    }

    #[test]
    fn byte_order_mark_at_start_is_skipped() {
        assert_eq!(lines_of(b"\xEF\xBB\xBFfirst\n\xEF\xBB\xBFsecond\n"), ["first", "\u{FEFF}second"]);
        assert!(lines_of(b"\xEF\xBB\xBF").is_empty());
        assert_eq!(lines_of(b"\xEF\xBB\xBF\n"), [""]);
    }

    #[test]
    fn invalid_utf8_is_an_error_naming_file_and_line() {
        let dir = TempDir::new().unwrap();
        let path = write(dir.path(), "bad.txt", b"fine\nalso fine\nnot \xFF fine\nnever read\n");
        let mut reader = LineReader::open(&path).unwrap();
        assert_eq!(reader.next().unwrap().unwrap(), "fine");
        assert_eq!(reader.next().unwrap().unwrap(), "also fine");
        let error = reader.next().unwrap().unwrap_err();
        assert!(matches!(&error, FileError::InvalidUtf8 { path: p, line: 3 } if *p == path));
        assert_eq!(error.to_string(), format!("invalid UTF-8 in {} at line 3", path.display()));
        assert!(reader.next().is_none(), "the reader stops at the first error");
    }

    #[test]
    fn invalid_utf8_in_a_last_line_without_newline_is_reported() {
        let dir = TempDir::new().unwrap();
        let path = write(dir.path(), "bad.txt", b"a\n\xC3");
        let error = LineReader::open(&path).unwrap().collect::<Result<Vec<_>, _>>().unwrap_err();
        assert!(matches!(error, FileError::InvalidUtf8 { line: 2, .. }));
    }

    #[test]
    fn opening_a_missing_file_names_it() {
        let dir = TempDir::new().unwrap();
        let path = dir.path().join("missing.txt");
        let error = LineReader::open(&path).unwrap_err();
        assert!(matches!(error, FileError::Io { action: "open", .. }));
        assert!(error.to_string().starts_with(&format!("cannot open {}: ", path.display())), "{error}");
    }

    #[test]
    fn line_number_counts_lines_read() {
        let dir = TempDir::new().unwrap();
        let path = write(dir.path(), "input.txt", b"a\nb\n");
        let mut reader = LineReader::open(&path).unwrap();
        assert_eq!(reader.line_number(), 0);
        assert_eq!(reader.read_line().unwrap(), Some("a"));
        assert_eq!(reader.line_number(), 1);
        assert_eq!(reader.read_line().unwrap(), Some("b"));
        assert_eq!(reader.read_line().unwrap(), None);
        assert_eq!(reader.line_number(), 2);
        assert_eq!(reader.path(), path);
    }

    #[test]
    fn lines_longer_than_the_buffer_are_read_whole() {
        let long = "x".repeat(3 * BUFFER_CAPACITY + 17);
        let contents = format!("{long}\r\nshort\n{long}");
        assert_eq!(lines_of(contents.as_bytes()), [long.as_str(), "short", long.as_str()]);
    }

    #[test]
    fn batches_hold_the_lines_in_order() {
        let dir = TempDir::new().unwrap();
        let contents: String = (0..10).map(|i| format!("line {i}\n")).collect();
        let path = write(dir.path(), "input.txt", contents.as_bytes());
        let mut batches = Vec::new();
        read_lines_batched(&path, 4, |batch| {
            batches.push(batch);
            Ok::<_, FileError>(())
        })
        .unwrap();
        assert_eq!(batches.iter().map(Vec::len).collect::<Vec<_>>(), [4, 4, 2]);
        let expected: Vec<String> = (0..10).map(|i| format!("line {i}")).collect();
        assert_eq!(batches.concat(), expected);
    }

    #[test]
    fn batches_of_an_exact_multiple_make_no_empty_call() {
        let dir = TempDir::new().unwrap();
        let path = write(dir.path(), "input.txt", b"a\nb\nc\nd\n");
        let mut sizes = Vec::new();
        read_lines_batched(&path, 2, |batch| {
            sizes.push(batch.len());
            Ok::<_, FileError>(())
        })
        .unwrap();
        assert_eq!(sizes, [2, 2]);
        let empty = write(dir.path(), "empty.txt", b"");
        read_lines_batched(&empty, 2, |_| -> Result<(), FileError> { panic!("no batch expected") }).unwrap();
    }

    #[test]
    fn batched_reading_reports_errors_of_the_file_and_of_the_callback() {
        let dir = TempDir::new().unwrap();
        let bad = write(dir.path(), "bad.txt", b"a\nb\n\xFF\n");
        let error = read_lines_batched(&bad, 1024, |_| Ok::<_, FileError>(())).unwrap_err();
        assert!(matches!(error, FileError::InvalidUtf8 { line: 3, .. }));

        #[derive(Debug)]
        enum MyError {
            File,
            Stop,
        }
        impl From<FileError> for MyError {
            fn from(_: FileError) -> Self {
                MyError::File
            }
        }
        let good = write(dir.path(), "good.txt", b"a\nb\nc\n");
        let mut calls = 0;
        let result = read_lines_batched(&good, 1, |_| {
            calls += 1;
            Err(MyError::Stop)
        });
        assert!(matches!(result, Err(MyError::Stop)));
        assert_eq!(calls, 1);
        let missing = dir.path().join("missing.txt");
        assert!(matches!(read_lines_batched(&missing, 1, |_| Ok(())), Err(MyError::File)));
    }

    // --- sharded output ---

    #[test]
    fn shard_names_are_zero_padded_to_five_digits() {
        assert_eq!(shard_name("counts", 0, 2), "counts-00000-of-00002");
        assert_eq!(shard_name("out/counts", 41, 100), "out/counts-00041-of-00100");
        assert_eq!(shard_name("big", 123_456, 200_000), "big-123456-of-200000");
    }

    #[test]
    fn temporary_files_are_hidden_next_to_the_final_shard() {
        let (final_path, temp_path) = shard_paths("counts", 0, 2, "job", "w1");
        assert_eq!(final_path, Path::new("counts-00000-of-00002"));
        assert_eq!(temp_path, Path::new(".counts-00000-of-00002.runnel-tmp-job.w1"));
        let (final_path, temp_path) = shard_paths("out/counts", 1, 2, "job", "w1");
        assert_eq!(final_path, Path::new("out/counts-00001-of-00002"));
        assert_eq!(temp_path, Path::new("out/.counts-00001-of-00002.runnel-tmp-job.w1"));
        let (final_path, temp_path) = shard_paths("out/", 0, 1, "job", "w1");
        assert_eq!(final_path, Path::new("out/-00000-of-00001"));
        assert_eq!(temp_path, Path::new("out/.-00000-of-00001.runnel-tmp-job.w1"));
    }

    #[test]
    fn shards_are_invisible_until_commit_and_present_after() {
        let dir = TempDir::new().unwrap();
        let prefix = prefix_in(&dir, "out/counts");
        let mut shards = Vec::new();
        for index in 0..2 {
            let mut writer = ShardWriter::create(&prefix, index, 2, "job1").unwrap();
            writer.write_record(&format!("record {index}a")).unwrap();
            writer.write_record(&format!("record {index}b")).unwrap();
            assert_eq!(writer.records_written(), 2);
            shards.push(writer.finish().unwrap());
        }
        let out = dir.path().join("out");
        assert!(file_names(&out).iter().all(|name| name.starts_with('.')), "{:?}", file_names(&out));
        let pattern = format!("{prefix}-*");
        assert!(matches!(expand_pattern(&pattern), Err(FileError::NoMatch { .. })));

        commit_all(&prefix, "job1", 2, shards);
        assert_eq!(file_names(&out), ["counts-00000-of-00002", "counts-00001-of-00002"]);
        assert_eq!(fs::read_to_string(out.join("counts-00000-of-00002")).unwrap(), "record 0a\nrecord 0b\n");
        assert_eq!(fs::read_to_string(out.join("counts-00001-of-00002")).unwrap(), "record 1a\nrecord 1b\n");
        assert_eq!(expand_pattern(&pattern).unwrap().len(), 2);
    }

    #[test]
    fn abort_removes_temporary_files() {
        let dir = TempDir::new().unwrap();
        let prefix = prefix_in(&dir, "counts");
        let shards: Vec<TempShard> = (0..3).map(|i| write_empty_shard(&prefix, i, 3, "job").unwrap()).collect();
        assert_eq!(file_names(dir.path()).len(), 3);
        abort_shards(&shards).unwrap();
        assert!(file_names(dir.path()).is_empty());
        abort_shards(&shards).unwrap();
    }

    #[test]
    fn remove_temp_files_removes_only_this_jobs_temporary_files_of_this_prefix() {
        let dir = TempDir::new().unwrap();
        let prefix = prefix_in(&dir, "counts");
        write(dir.path(), "counts-00000-of-00003", b"");
        let _finished = write_empty_shard(&prefix, 1, 3, "job").unwrap();
        let mut unfinished = ShardWriter::create(&prefix, 2, 3, "job").unwrap();
        unfinished.write_record("x").unwrap();
        let other_job = write_empty_shard(&prefix, 1, 3, "job-2").unwrap();
        let other_prefix = write_empty_shard(&prefix_in(&dir, "other"), 0, 1, "job").unwrap();

        assert_eq!(remove_temp_files(&prefix, "job").unwrap(), 2);
        drop(unfinished);
        let mut expected = vec![
            "counts-00000-of-00003".to_owned(),
            other_job.temp_path.file_name().unwrap().to_str().unwrap().to_owned(),
            other_prefix.temp_path.file_name().unwrap().to_str().unwrap().to_owned(),
        ];
        expected.sort();
        assert_eq!(file_names(dir.path()), expected);
        assert_eq!(remove_temp_files(&prefix_in(&dir, "missing/counts"), "job").unwrap(), 0);
    }

    #[test]
    fn dropping_an_unfinished_writer_removes_its_temporary_file() {
        let dir = TempDir::new().unwrap();
        let mut writer = ShardWriter::create(&prefix_in(&dir, "counts"), 0, 1, "job").unwrap();
        writer.write_record("x").unwrap();
        assert!(writer.temp_path().exists());
        drop(writer);
        assert!(file_names(dir.path()).is_empty());
    }

    #[test]
    fn retried_attempts_write_distinct_temporary_files() {
        let dir = TempDir::new().unwrap();
        let prefix = prefix_in(&dir, "counts");
        let first = ShardWriter::create(&prefix, 0, 1, "job").unwrap();
        let second = ShardWriter::create(&prefix, 0, 1, "job").unwrap();
        assert_ne!(first.temp_path(), second.temp_path());
        assert_eq!(first.final_path(), second.final_path());
    }

    #[test]
    fn empty_shard_is_committed_as_an_empty_file() {
        let dir = TempDir::new().unwrap();
        let prefix = prefix_in(&dir, "counts");
        let writer = ShardWriter::create(&prefix, 0, 1, "job").unwrap();
        commit_all(&prefix, "job", 1, vec![writer.finish().unwrap()]);
        assert_eq!(fs::read(dir.path().join("counts-00000-of-00001")).unwrap(), b"");
    }

    #[test]
    fn missing_shards_are_filled_with_empty_ones() {
        let dir = TempDir::new().unwrap();
        let prefix = prefix_in(&dir, "counts");
        let mut writer = ShardWriter::create(&prefix, 1, 3, "job").unwrap();
        writer.write_record("only").unwrap();
        let shards = fill_missing_shards(&prefix, 3, "job", vec![writer.finish().unwrap()]).unwrap();
        assert_eq!(shards.len(), 3);
        commit_all(&prefix, "job", 3, shards);
        assert_eq!(file_names(dir.path()), ["counts-00000-of-00003", "counts-00001-of-00003", "counts-00002-of-00003"]);
        assert_eq!(fs::read_to_string(dir.path().join("counts-00000-of-00003")).unwrap(), "");
        assert_eq!(fs::read_to_string(dir.path().join("counts-00001-of-00003")).unwrap(), "only\n");
        assert_eq!(fs::read_to_string(dir.path().join("counts-00002-of-00003")).unwrap(), "");
    }

    #[test]
    fn writer_creates_the_output_directory() {
        let dir = TempDir::new().unwrap();
        let prefix = prefix_in(&dir, "a/b/c/counts");
        let shard = write_empty_shard(&prefix, 0, 1, "job").unwrap();
        commit_all(&prefix, "job", 1, vec![shard]);
        assert!(dir.path().join("a/b/c/counts-00000-of-00001").is_file());
    }

    #[test]
    fn unusable_output_directory_is_an_error_naming_it() {
        let dir = TempDir::new().unwrap();
        let blocker = write(dir.path(), "out", b"a file, not a directory\n");
        let prefix = prefix_in(&dir, "out/counts");
        let error = ShardWriter::create(&prefix, 0, 1, "job").unwrap_err();
        assert!(matches!(error, FileError::Io { action: "create output directory", .. }), "{error:?}");
        let expected = format!("cannot create output directory {}: ", blocker.display());
        assert!(error.to_string().starts_with(&expected), "{error}");
    }

    #[test]
    fn invalid_shards_and_tokens_are_rejected() {
        let dir = TempDir::new().unwrap();
        let prefix = prefix_in(&dir, "counts");
        for (index, num_shards, token) in [(2, 2, "job"), (0, 0, "job"), (0, 1, ""), (0, 1, "a/b"), (0, 1, "a.b")] {
            let error = ShardWriter::create(&prefix, index, num_shards, token).unwrap_err();
            assert!(matches!(error, FileError::InvalidOutput { .. }), "{error:?}");
            assert!(error.to_string().contains(&prefix), "{error}");
        }
        assert!(matches!(ShardWriter::create("", 0, 1, "job"), Err(FileError::InvalidOutput { .. })));
        assert!(file_names(dir.path()).is_empty());
    }

    #[test]
    fn job_tokens_are_unique_and_valid() {
        let a = new_job_token();
        let b = new_job_token();
        assert_ne!(a, b);
        check_token("p", &a).unwrap();
    }

    #[test]
    fn temp_shard_round_trips_through_serde() {
        let shard = TempShard {
            temp_path: PathBuf::from("out/.counts-00000-of-00001.runnel-tmp-job.w"),
            final_path: PathBuf::from("out/counts-00000-of-00001"),
        };
        let json = serde_json::to_string(&shard).unwrap();
        assert_eq!(serde_json::from_str::<TempShard>(&json).unwrap(), shard);
    }
}
