//! The commit protocol of sharded file outputs: a lock per output prefix, a journal, and recovery.
//!
//! POSIX cannot rename several files at once, so a set of shards `PREFIX-SSSSS-of-NNNNN` cannot appear atomically.
//! This module makes sure that a reader of `PREFIX-*` never sees the shards of two runs mixed, whatever crashes:
//! at any moment the prefix holds the complete set of one run, or a *visibly incomplete* set of one run (fewer than
//! `NNNNN` shards named `-of-NNNNN`), or nothing. `docs/file-outputs.md` states what a reader may see after a crash
//! at each point; in short:
//!
//! 1. **Lock.** A job takes the lock of its prefix ([`PrefixLock::acquire`]) before it writes anything there: an
//!    advisory lock (`flock`) on the hidden file `.NAME.runnel-lock` next to the shards, which names the job (token,
//!    pid, host, start). A second job is refused with [`FileError::PrefixLocked`] naming the first. The kernel
//!    drops the lock of a process that dies, so a crashed holder never keeps it; the next job takes it over.
//! 2. **Recover.** Holding the lock, the job first finishes the commit of a run that died in the middle of one
//!    (from its journal, see below), then removes the hidden temporary files of dead runs.
//! 3. **Write** the shards to hidden temporary files ([`crate::files::ShardWriter`]).
//! 4. **Commit** ([`PrefixLock::commit`]): write and sync the journal `.NAME.runnel-journal`, naming the new set
//!    (temporary file → final name) and the old shards to delete (every shard of the prefix, whatever its shard
//!    count); delete **every** old shard; rename the new shards into place; remove the journal. Since no new shard
//!    appears before the last old one is gone, the two sets never mix.
//! 5. **Release** the lock ([`PrefixLock::release`]), which removes the lock file.
//!
//! A journal left by a dead run is *rolled forward* by the next run at the prefix when every shard of its new set
//! still exists (as a temporary file or already renamed), and *rolled back* (the new set's files removed) otherwise.

use std::collections::BTreeSet;
use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::files::{
    check_output_prefix, check_token, dir_or_current, fill_missing_shards, remove_if_exists, split_prefix, FileError,
    TempShard, TEMP_MARKER,
};

/// Ends the name of the lock file of a prefix: `.NAME` + `LOCK_SUFFIX`.
const LOCK_SUFFIX: &str = ".runnel-lock";

/// Ends the name of the commit journal of a prefix: `.NAME` + `JOURNAL_SUFFIX`.
const JOURNAL_SUFFIX: &str = ".runnel-journal";

/// The format tag of a journal, its first field.
const JOURNAL_FORMAT: &str = "runnel-commit-journal/1";

/// How many times [`PrefixLock::acquire`] retries when the lock file it locked was removed meanwhile by a holder
/// releasing it.
const LOCK_ATTEMPTS: usize = 100;

// ---------------------------------------------------------------------------------------------------------------------
// The files of a prefix
// ---------------------------------------------------------------------------------------------------------------------

/// The files that belong to an output prefix, in its directory.
#[derive(Clone, Debug)]
struct PrefixFiles {
    /// The prefix, as given.
    prefix: String,
    /// The directory of the shards, as spelled in the prefix (empty for the current directory).
    dir: PathBuf,
    /// `NAME` in `NAME-SSSSS-of-NNNNN`.
    name: String,
}

/// What [`PrefixFiles::list`] found in the directory of a prefix.
#[derive(Debug, Default)]
struct Listing {
    /// File names of the shards of the prefix, of any shard count, sorted.
    shards: Vec<String>,
    /// File names of the temporary shard files of the prefix, with the job token in each.
    temps: Vec<(String, String)>,
    /// File names of journals being written (`.NAME.runnel-journal.TOKEN.tmp`).
    journal_temps: Vec<String>,
}

impl PrefixFiles {
    fn new(prefix: &str) -> Result<Self, FileError> {
        check_output_prefix(prefix)?;
        let (dir, name) = split_prefix(prefix);
        Ok(PrefixFiles { prefix: prefix.to_owned(), dir, name })
    }

    /// The directory, usable with `fs` functions.
    fn dir(&self) -> &Path {
        dir_or_current(&self.dir)
    }

    fn path(&self, file_name: &str) -> PathBuf {
        self.dir.join(file_name)
    }

    fn lock_path(&self) -> PathBuf {
        self.path(&format!(".{}{LOCK_SUFFIX}", self.name))
    }

    fn journal_path(&self) -> PathBuf {
        self.path(&format!(".{}{JOURNAL_SUFFIX}", self.name))
    }

    fn journal_temp_path(&self, token: &str) -> PathBuf {
        self.path(&format!(".{}{JOURNAL_SUFFIX}.{token}.tmp", self.name))
    }

    /// Whether `file_name` is a shard of this prefix, `NAME-SSSSS-of-NNNNN` with any numbers of at least five digits.
    fn is_shard(&self, file_name: &str) -> bool {
        parse_shard_name(&self.name, file_name).is_some()
    }

    /// The job token of a temporary shard file of this prefix, `.NAME-SSSSS-of-NNNNN.runnel-tmp-TOKEN.WRITER`.
    fn temp_token<'a>(&self, file_name: &'a str) -> Option<&'a str> {
        let rest = file_name.strip_prefix('.')?;
        let marker = rest.find(TEMP_MARKER)?;
        if !self.is_shard(&rest[..marker]) {
            return None;
        }
        let after = &rest[marker + TEMP_MARKER.len()..];
        let (token, _writer) = after.split_once('.')?;
        Some(token)
    }

    /// Lists the shards, temporary files and journal temporaries of the prefix. A missing directory has none.
    fn list(&self) -> Result<Listing, FileError> {
        let dir = self.dir();
        let entries = match fs::read_dir(dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Listing::default()),
            Err(e) => return Err(FileError::Io { action: "list directory", path: dir.to_owned(), error: e }),
        };
        let journal_temp_start = format!(".{}{JOURNAL_SUFFIX}.", self.name);
        let mut listing = Listing::default();
        for entry in entries {
            let entry =
                entry.map_err(|e| FileError::Io { action: "list directory", path: dir.to_owned(), error: e })?;
            let Ok(file_name) = entry.file_name().into_string() else { continue };
            if self.is_shard(&file_name) {
                listing.shards.push(file_name);
            } else if let Some(token) = self.temp_token(&file_name) {
                let token = token.to_owned();
                listing.temps.push((file_name, token));
            } else if file_name.starts_with(&journal_temp_start) && file_name.ends_with(".tmp") {
                listing.journal_temps.push(file_name);
            }
        }
        listing.shards.sort();
        listing.temps.sort();
        Ok(listing)
    }
}

/// `(index, num_shards)` if `file_name` is `NAME-SSSSS-of-NNNNN` (each number of at least five ASCII digits).
fn parse_shard_name(name: &str, file_name: &str) -> Option<(usize, usize)> {
    let rest = file_name.strip_prefix(name)?.strip_prefix('-')?;
    let (index, count) = rest.split_once("-of-")?;
    let number = |s: &str| {
        if s.len() >= 5 && s.bytes().all(|b| b.is_ascii_digit()) {
            s.parse::<usize>().ok()
        } else {
            None
        }
    };
    Some((number(index)?, number(count)?))
}

/// Syncs a directory, making the creations, renames and removals in it durable; best effort, as some filesystems
/// cannot sync a directory.
fn sync_dir(dir: &Path) {
    #[cfg(unix)]
    if let Ok(dir) = File::open(dir) {
        let _ = dir.sync_all();
    }
    #[cfg(not(unix))]
    let _ = dir;
}

// ---------------------------------------------------------------------------------------------------------------------
// Fault injection (tests only)
// ---------------------------------------------------------------------------------------------------------------------

/// A point of the protocol, reported to the hook of [`set_commit_hook`]; for tests that kill a writer at each point.
#[doc(hidden)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CommitStep {
    /// The lock is taken, recovery and the cleanup of dead runs are done; nothing of this run is written yet.
    LockAcquired,
    /// The new set's temporary files are all written; the journal is not.
    ShardsWritten,
    /// The journal is written and synced; nothing is deleted or renamed yet.
    JournalWritten,
    /// An old shard is deleted: the one at this position (from 0, in name order) among the old shards to delete.
    OldShardDeleted(usize),
    /// The new shard of this index is renamed into place.
    ShardRenamed(usize),
    /// Every new shard is in place; the journal is still there.
    ShardsRenamed,
    /// The journal is removed; the run's leftover temporary files and the lock are not yet.
    JournalRemoved,
}

impl fmt::Display for CommitStep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CommitStep::LockAcquired => write!(f, "lock-acquired"),
            CommitStep::ShardsWritten => write!(f, "shards-written"),
            CommitStep::JournalWritten => write!(f, "journal-written"),
            CommitStep::OldShardDeleted(i) => write!(f, "old-shard-deleted:{i}"),
            CommitStep::ShardRenamed(i) => write!(f, "shard-renamed:{i}"),
            CommitStep::ShardsRenamed => write!(f, "shards-renamed"),
            CommitStep::JournalRemoved => write!(f, "journal-removed"),
        }
    }
}

static COMMIT_HOOK: OnceLock<fn(CommitStep)> = OnceLock::new();

/// Installs a function called at every [`CommitStep`] of this process (once per process; later calls are ignored).
/// For fault-injection tests only: a test helper blocks in it and is killed there.
#[doc(hidden)]
pub fn set_commit_hook(hook: fn(CommitStep)) {
    let _ = COMMIT_HOOK.set(hook);
}

fn step(step: CommitStep) {
    if let Some(hook) = COMMIT_HOOK.get() {
        hook(step);
    }
}

// ---------------------------------------------------------------------------------------------------------------------
// The lock
// ---------------------------------------------------------------------------------------------------------------------

/// The job holding the lock of an output prefix, as its lock file names it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockHolder {
    /// The job's token (see [`crate::files::new_job_token`]).
    pub token: String,
    /// The id of the process that took the lock.
    pub pid: u32,
    /// The host it runs on.
    pub host: String,
    /// When it took the lock, in milliseconds since the Unix epoch.
    pub since_unix_ms: u64,
}

impl LockHolder {
    fn current(token: &str) -> Self {
        let since_unix_ms =
            SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or_default();
        LockHolder { token: token.to_owned(), pid: std::process::id(), host: host_name(), since_unix_ms }
    }
}

impl fmt::Display for LockHolder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "job {} (pid {} on host {}, since {})",
            self.token,
            self.pid,
            self.host,
            format_utc_millis(self.since_unix_ms)
        )
    }
}

/// The name of this host, for lock files: read from the kernel where it says, else from `HOSTNAME`.
fn host_name() -> String {
    fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|name| name.trim().to_owned())
        .filter(|name| !name.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok().filter(|name| !name.is_empty()))
        .unwrap_or_else(|| "unknown".to_owned())
}

/// `YYYY-MM-DD HH:MM:SS UTC`.
fn format_utc_millis(ms: u64) -> String {
    let secs = ms / 1000;
    let (days, rem) = ((secs / 86_400) as i64, secs % 86_400);
    // Days since the epoch to a civil date (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02} UTC", rem / 3600, rem % 3600 / 60, rem % 60)
}

/// Whether the open `file` is still the file at `path` (a holder releasing the lock removes the file: a lock taken on
/// the removed file locks nothing).
fn is_same_file(file: &File, path: &Path) -> Result<bool, FileError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        let open =
            file.metadata().map_err(|e| FileError::Io { action: "read metadata of", path: path.into(), error: e })?;
        match fs::metadata(path) {
            Ok(named) => Ok(open.dev() == named.dev() && open.ino() == named.ino()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(FileError::Io { action: "read metadata of", path: path.into(), error: e }),
        }
    }
    #[cfg(not(unix))]
    {
        let _ = file;
        Ok(path.exists())
    }
}

/// Reads the holder named by a lock file; `None` if it names none (yet) or cannot be read.
fn read_holder(file: &mut File) -> Option<LockHolder> {
    let mut text = String::new();
    file.rewind().ok()?;
    file.read_to_string(&mut text).ok()?;
    serde_json::from_str(&text).ok()
}

/// The lock of an output prefix, held by one job while it writes and commits there (see the
/// [module documentation](self)).
///
/// The lock is an advisory lock (`flock`) on the hidden file `.NAME.runnel-lock` in the directory of the shards,
/// which names the job holding it ([`LockHolder`]). It is released by [`PrefixLock::release`] (or
/// [`PrefixLock::abort`], or dropping the value), which removes the lock file, and by the death of the process
/// holding it, as the kernel then drops the `flock`: a crashed job never keeps it.
///
/// The filesystem of the output must support `flock` between every process that writes the prefix: local
/// filesystems do, and so does NFSv4 between hosts.
#[derive(Debug)]
pub struct PrefixLock {
    files: PrefixFiles,
    token: String,
    /// The locked lock file; `None` for a lock joined from another process of the same job ([`PrefixLock::join`]).
    file: Option<File>,
}

impl PrefixLock {
    /// Takes the lock of the output `prefix` for the job `token`, creating the output directory if needed; then
    /// completes or rolls back the commit a dead run left unfinished at the prefix (from its journal) and removes
    /// the temporary files of dead runs there, so that the prefix holds the complete set of one run, or nothing.
    ///
    /// # Errors
    ///
    /// [`FileError::PrefixLocked`] naming the job that holds the lock if it is alive; [`FileError::InvalidOutput`]
    /// for an invalid prefix or token; [`FileError::Io`] or [`FileError::Rename`] naming the file that cannot be
    /// created, locked, renamed or removed; [`FileError::InvalidJournal`] for a journal that cannot be read. The lock
    /// is not held after an error.
    pub fn acquire(prefix: &str, token: &str) -> Result<PrefixLock, FileError> {
        Self::take(prefix, token, false)
    }

    /// As [`PrefixLock::acquire`], but a lock already held by another process *of the same job* (whose lock file
    /// names `token`) is joined instead of refused: for the step that commits, which a distributed runner may run in
    /// another process than the step that took the lock. A joined lock is released by its holder, not by this value.
    ///
    /// # Errors
    ///
    /// As [`PrefixLock::acquire`].
    pub fn join(prefix: &str, token: &str) -> Result<PrefixLock, FileError> {
        Self::take(prefix, token, true)
    }

    fn take(prefix: &str, token: &str, join: bool) -> Result<PrefixLock, FileError> {
        let files = PrefixFiles::new(prefix)?;
        check_token(prefix, token)?;
        if !files.dir.as_os_str().is_empty() {
            fs::create_dir_all(&files.dir).map_err(|e| FileError::Io {
                action: "create output directory",
                path: files.dir.clone(),
                error: e,
            })?;
        }
        let lock_path = files.lock_path();
        for _ in 0..LOCK_ATTEMPTS {
            let mut file = OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(&lock_path)
                .map_err(|e| FileError::Io { action: "open lock file", path: lock_path.clone(), error: e })?;
            match fs4::FileExt::try_lock(&file) {
                Ok(()) => {}
                Err(fs4::TryLockError::WouldBlock) => {
                    let holder = read_holder(&mut file);
                    if join && holder.as_ref().is_some_and(|h| h.token == token) {
                        return Ok(PrefixLock { files, token: token.to_owned(), file: None });
                    }
                    return Err(FileError::PrefixLocked { prefix: prefix.to_owned(), lock_path, holder });
                }
                Err(fs4::TryLockError::Error(e)) => {
                    return Err(FileError::Io { action: "lock", path: lock_path, error: e });
                }
            }
            if !is_same_file(&file, &lock_path)? {
                // The holder released the lock (removing the file) between our open and our lock: try again.
                continue;
            }
            let holder = serde_json::to_string(&LockHolder::current(token)).unwrap_or_default();
            file.set_len(0)
                .and_then(|()| file.rewind())
                .and_then(|()| file.write_all(holder.as_bytes()))
                .and_then(|()| file.sync_all())
                .map_err(|e| FileError::Io { action: "write lock file", path: lock_path.clone(), error: e })?;
            let lock = PrefixLock { files, token: token.to_owned(), file: Some(file) };
            lock.recover()?;
            step(CommitStep::LockAcquired);
            return Ok(lock);
        }
        Err(FileError::Io {
            action: "lock",
            path: lock_path,
            error: io::Error::other(format!("the lock file was replaced {LOCK_ATTEMPTS} times while being locked")),
        })
    }

    /// The output prefix.
    pub fn prefix(&self) -> &str {
        &self.files.prefix
    }

    /// The token of the job holding the lock.
    pub fn token(&self) -> &str {
        &self.token
    }

    /// The lock file.
    pub fn lock_path(&self) -> PathBuf {
        self.files.lock_path()
    }

    /// Finishes the commit that a dead run left (from its journal), then removes the temporary files of dead runs.
    fn recover(&self) -> Result<(), FileError> {
        if let Some(journal) = Journal::read(&self.files)? {
            journal.apply(&self.files)?;
        }
        let files = &self.files;
        let listing = files.list()?;
        for (file_name, token) in &listing.temps {
            if *token != self.token {
                remove_if_exists(&files.path(file_name))?;
            }
        }
        for file_name in &listing.journal_temps {
            remove_if_exists(&files.path(file_name))?;
        }
        Ok(())
    }

    /// Commits this job's output: completes `shards` (this job's finished shards, see
    /// [`crate::files::ShardWriter::finish`]) with empty ones up to `num_shards`, then replaces every shard of the
    /// prefix (of any shard count) with them, through the journal, and removes this job's leftover temporary files
    /// (of retried attempts). Returns the final paths of the shards, sorted.
    ///
    /// A reader sees the old complete set until the journal is written, then a visibly incomplete set (fewer than
    /// `NNNNN` shards of `-of-NNNNN`) of the old run and then of the new one, and at last the new complete set;
    /// never shards of both runs together.
    ///
    /// # Errors
    ///
    /// [`FileError::InvalidOutput`] for a shard that does not belong to the prefix or to `num_shards`;
    /// [`FileError::MissingTempFile`] if a shard's temporary file is gone (nothing is changed then); [`FileError::Io`]
    /// or [`FileError::Rename`] naming the file. After an error in the middle of the commit the journal stays, and
    /// the next run at the prefix completes the commit.
    pub fn commit(&self, num_shards: usize, shards: Vec<TempShard>) -> Result<Vec<PathBuf>, FileError> {
        let files = &self.files;
        let mut seen = BTreeSet::new();
        let mut unique = Vec::with_capacity(shards.len());
        for shard in shards {
            let file_name = shard.final_path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
            let belongs = shard.final_path.parent() == Some(files.dir.as_path())
                && parse_shard_name(&files.name, file_name).is_some_and(|(i, n)| n == num_shards && i < n);
            if !belongs {
                return Err(FileError::InvalidOutput {
                    prefix: files.prefix.clone(),
                    reason: format!("{} is not one of its {num_shards} shards", shard.final_path.display()),
                });
            }
            // Two attempts at one shard (a retried task) may both have finished: keep one; the other's temporary
            // file is removed at the end.
            if seen.insert(shard.final_path.clone()) {
                unique.push(shard);
            }
        }
        let shards = fill_missing_shards(&files.prefix, num_shards, &self.token, unique)?;
        for shard in &shards {
            if !shard.temp_path.is_file() {
                return Err(FileError::MissingTempFile {
                    temp_path: shard.temp_path.clone(),
                    final_path: shard.final_path.clone(),
                });
            }
        }
        step(CommitStep::ShardsWritten);
        let name_of = |path: &Path| path.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_owned();
        let journal = Journal {
            format: JOURNAL_FORMAT.to_owned(),
            prefix: files.prefix.clone(),
            token: self.token.clone(),
            num_shards,
            new: shards
                .iter()
                .map(|s| JournalShard { temp: name_of(&s.temp_path), final_name: name_of(&s.final_path) })
                .collect(),
            old: files.list()?.shards,
        };
        journal.write(files)?;
        step(CommitStep::JournalWritten);
        journal.apply(files)?;
        crate::files::remove_temp_files(&files.prefix, &self.token)?;
        Ok(shards.into_iter().map(|s| s.final_path).collect())
    }

    /// Releases the lock after a successful commit (or when nothing was written): removes the lock file and drops
    /// the `flock`. A joined lock ([`PrefixLock::join`]) is left to its holder.
    ///
    /// # Errors
    ///
    /// [`FileError::Io`] naming the lock file if it cannot be removed; the `flock` is dropped all the same.
    pub fn release(mut self) -> Result<(), FileError> {
        self.unlock()
    }

    /// Releases the lock of a job that failed: removes the job's temporary files, unless its commit had begun (its
    /// journal exists, and the next run at the prefix will complete it from them), then releases the lock.
    ///
    /// # Errors
    ///
    /// [`FileError::Io`] naming a file that cannot be removed; the `flock` is dropped all the same.
    pub fn abort(mut self) -> Result<(), FileError> {
        let result = if self.file.is_some() {
            match Journal::read(&self.files) {
                Ok(Some(journal)) if journal.token == self.token => Ok(()),
                Ok(_) => crate::files::remove_temp_files(&self.files.prefix, &self.token).map(drop),
                Err(error) => Err(error),
            }
        } else {
            Ok(())
        };
        let unlocked = self.unlock();
        result.and(unlocked)
    }

    fn unlock(&mut self) -> Result<(), FileError> {
        let Some(file) = self.file.take() else { return Ok(()) };
        let lock_path = self.files.lock_path();
        // Remove the file while still holding the lock, so that no other job locks it in between and then finds
        // it gone; a job that opened it before is told by `is_same_file` and tries again.
        let result = match is_same_file(&file, &lock_path) {
            Ok(true) => remove_if_exists(&lock_path).map(drop),
            Ok(false) => Ok(()),
            Err(error) => Err(error),
        };
        sync_dir(self.files.dir());
        drop(file);
        result
    }
}

impl Drop for PrefixLock {
    fn drop(&mut self) {
        let _ = self.unlock();
    }
}

// ---------------------------------------------------------------------------------------------------------------------
// The journal
// ---------------------------------------------------------------------------------------------------------------------

/// One shard of the new set in a journal: file names in the directory of the prefix.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct JournalShard {
    temp: String,
    final_name: String,
}

/// The commit journal `.NAME.runnel-journal`, written (and synced) before the first old shard is deleted.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Journal {
    format: String,
    prefix: String,
    token: String,
    num_shards: usize,
    /// The new set.
    new: Vec<JournalShard>,
    /// The shards of the prefix when the journal was written, all to be deleted (some are replaced by name).
    old: Vec<String>,
}

impl Journal {
    fn read(files: &PrefixFiles) -> Result<Option<Journal>, FileError> {
        let path = files.journal_path();
        let text = match fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(FileError::Io { action: "read", path, error: e }),
        };
        let journal: Journal = serde_json::from_str(&text)
            .map_err(|e| FileError::InvalidJournal { path: path.clone(), reason: e.to_string() })?;
        if journal.format != JOURNAL_FORMAT {
            return Err(FileError::InvalidJournal {
                path,
                reason: format!("unknown format '{}', expected '{JOURNAL_FORMAT}'", journal.format),
            });
        }
        let foreign = journal
            .new
            .iter()
            .map(|s| &s.final_name)
            .chain(&journal.old)
            .find(|name| !files.is_shard(name))
            .or_else(|| journal.new.iter().map(|s| &s.temp).find(|t| files.temp_token(t) != Some(&journal.token)));
        if let Some(name) = foreign {
            return Err(FileError::InvalidJournal { path, reason: format!("'{name}' is not a file of this output") });
        }
        Ok(Some(journal))
    }

    /// Writes the journal atomically (temporary file, sync, rename, directory sync).
    fn write(&self, files: &PrefixFiles) -> Result<(), FileError> {
        let temp = files.journal_temp_path(&self.token);
        let path = files.journal_path();
        let text = serde_json::to_string_pretty(self).map_err(|e| FileError::Io {
            action: "write",
            path: temp.clone(),
            error: io::Error::other(e),
        })?;
        let written = File::create(&temp).and_then(|mut file| {
            file.write_all(text.as_bytes())?;
            file.sync_all()
        });
        if let Err(e) = written {
            let _ = fs::remove_file(&temp);
            return Err(FileError::Io { action: "write", path: temp, error: e });
        }
        fs::rename(&temp, &path).map_err(|error| FileError::Rename { from: temp.clone(), to: path.clone(), error })?;
        sync_dir(files.dir());
        Ok(())
    }

    /// Carries the journal out: rolls forward when every shard of the new set exists (as its temporary file, or
    /// already renamed), rolls back otherwise; then removes the journal. Idempotent, so that a crash in the middle
    /// of it is recovered by doing it again.
    fn apply(&self, files: &PrefixFiles) -> Result<(), FileError> {
        let mut pending = Vec::new();
        let mut in_place = BTreeSet::new();
        let mut lost = false;
        for shard in &self.new {
            if files.path(&shard.temp).is_file() {
                pending.push(shard);
            } else if files.path(&shard.final_name).is_file() {
                in_place.insert(shard.final_name.as_str());
            } else {
                lost = true;
            }
        }
        if lost {
            // Roll back: the new set cannot be completed, so none of it may stay.
            for shard in &self.new {
                remove_if_exists(&files.path(&shard.temp))?;
                if in_place.contains(shard.final_name.as_str()) {
                    remove_if_exists(&files.path(&shard.final_name))?;
                }
            }
            sync_dir(files.dir());
        } else {
            // Roll forward. First every old shard goes (the journal's list, and any other shard of the prefix),
            // so that no new shard appears beside an old one.
            let mut old: BTreeSet<String> = self.old.iter().cloned().collect();
            old.extend(files.list()?.shards);
            for (i, file_name) in old.iter().filter(|name| !in_place.contains(name.as_str())).enumerate() {
                if remove_if_exists(&files.path(file_name))? {
                    step(CommitStep::OldShardDeleted(i));
                }
            }
            sync_dir(files.dir());
            for shard in pending {
                let (from, to) = (files.path(&shard.temp), files.path(&shard.final_name));
                fs::rename(&from, &to).map_err(|error| FileError::Rename { from, to, error })?;
                let index = parse_shard_name(&files.name, &shard.final_name).map_or(0, |(i, _)| i);
                step(CommitStep::ShardRenamed(index));
            }
            sync_dir(files.dir());
            step(CommitStep::ShardsRenamed);
        }
        remove_if_exists(&files.journal_path())?;
        sync_dir(files.dir());
        step(CommitStep::JournalRemoved);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::files::{write_empty_shard, ShardWriter};
    use tempfile::TempDir;

    fn prefix_in(dir: &TempDir, prefix: &str) -> String {
        dir.path().join(prefix).to_str().unwrap().to_owned()
    }

    fn file_names(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> =
            fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
        names.sort();
        names
    }

    fn put(dir: &Path, name: &str, contents: &str) {
        fs::write(dir.join(name), contents).unwrap();
    }

    fn shard(prefix: &str, index: usize, num_shards: usize, token: &str, line: &str) -> TempShard {
        let mut writer = ShardWriter::create(prefix, index, num_shards, token).unwrap();
        writer.write_record(line).unwrap();
        writer.finish().unwrap()
    }

    #[test]
    fn shard_names_of_a_prefix_are_recognised_exactly() {
        assert_eq!(parse_shard_name("counts", "counts-00001-of-00003"), Some((1, 3)));
        assert_eq!(parse_shard_name("counts", "counts-123456-of-200000"), Some((123_456, 200_000)));
        assert_eq!(parse_shard_name("counts", "counts-x-00000-of-00001"), None, "another prefix's shard");
        assert_eq!(parse_shard_name("counts", "counts-0001-of-00003"), None);
        assert_eq!(parse_shard_name("counts", "counts-00001-of-00003.bak"), None);
        assert_eq!(parse_shard_name("counts", "count-00001-of-00003"), None);
        assert_eq!(parse_shard_name("", "-00000-of-00001"), Some((0, 1)));
    }

    #[test]
    fn holders_and_times_are_written_for_people() {
        assert_eq!(format_utc_millis(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(format_utc_millis(1_445_230_923_951), "2015-10-19 05:02:03 UTC");
        assert_eq!(format_utc_millis(951_782_400_000), "2000-02-29 00:00:00 UTC");
        let holder = LockHolder { token: "t1".into(), pid: 42, host: "h".into(), since_unix_ms: 0 };
        assert_eq!(holder.to_string(), "job t1 (pid 42 on host h, since 1970-01-01 00:00:00 UTC)");
    }

    #[test]
    fn a_second_job_is_refused_while_the_first_holds_the_lock_and_admitted_after() {
        let dir = TempDir::new().unwrap();
        let prefix = prefix_in(&dir, "out/counts");
        let first = PrefixLock::acquire(&prefix, "first").unwrap();
        assert_eq!(file_names(&dir.path().join("out")), [".counts.runnel-lock"]);

        let error = PrefixLock::acquire(&prefix, "second").unwrap_err();
        let FileError::PrefixLocked { holder: Some(holder), lock_path, .. } = &error else { panic!("{error:?}") };
        assert_eq!((holder.token.as_str(), holder.pid), ("first", std::process::id()));
        assert_eq!(*lock_path, dir.path().join("out/.counts.runnel-lock"));
        let message = error.to_string();
        assert!(
            message.starts_with(&format!("output prefix '{prefix}' is being written by another job, job first (pid ")),
            "{message}"
        );
        assert!(message.contains(&lock_path.display().to_string()), "{message}");

        first.release().unwrap();
        assert!(file_names(&dir.path().join("out")).is_empty(), "releasing removes the lock file");
        let second = PrefixLock::acquire(&prefix, "second").unwrap();
        assert_eq!(second.token(), "second");
        drop(second);
        assert!(file_names(&dir.path().join("out")).is_empty(), "dropping releases too");
    }

    #[test]
    fn a_lock_file_left_by_a_dead_holder_does_not_keep_the_lock() {
        let dir = TempDir::new().unwrap();
        let prefix = prefix_in(&dir, "counts");
        // A crashed job leaves its lock file, but no process holds its flock any more.
        let dead = LockHolder { token: "dead".into(), pid: 1, host: host_name(), since_unix_ms: 0 };
        put(dir.path(), ".counts.runnel-lock", &serde_json::to_string(&dead).unwrap());
        let lock = PrefixLock::acquire(&prefix, "alive").unwrap();
        let text = fs::read_to_string(lock.lock_path()).unwrap();
        assert_eq!(serde_json::from_str::<LockHolder>(&text).unwrap().token, "alive");
    }

    #[test]
    fn the_committing_step_of_the_same_job_joins_the_lock_and_other_jobs_cannot() {
        let dir = TempDir::new().unwrap();
        let prefix = prefix_in(&dir, "counts");
        let holder = PrefixLock::acquire(&prefix, "job").unwrap();
        let joined = PrefixLock::join(&prefix, "job").unwrap();
        assert!(matches!(PrefixLock::join(&prefix, "other"), Err(FileError::PrefixLocked { .. })));
        let paths = joined.commit(1, vec![shard(&prefix, 0, 1, "job", "x")]).unwrap();
        assert_eq!(paths, [dir.path().join("counts-00000-of-00001")]);
        joined.release().unwrap();
        assert!(dir.path().join(".counts.runnel-lock").exists(), "a joined lock is released by its holder");
        holder.release().unwrap();
        assert_eq!(file_names(dir.path()), ["counts-00000-of-00001"]);
    }

    #[test]
    fn commit_replaces_every_shard_of_the_prefix_whatever_its_count_and_nothing_else() {
        let dir = TempDir::new().unwrap();
        let prefix = prefix_in(&dir, "counts");
        for name in ["counts-00000-of-00003", "counts-00001-of-00003", "counts-00002-of-00003", "counts-00000-of-00001"]
        {
            put(dir.path(), name, "old\n");
        }
        put(dir.path(), "counts-x-00000-of-00001", "another prefix\n");
        put(dir.path(), "counts.txt", "not a shard\n");
        let lock = PrefixLock::acquire(&prefix, "new").unwrap();
        let paths = lock.commit(2, vec![shard(&prefix, 1, 2, "new", "b")]).unwrap();
        lock.release().unwrap();
        assert_eq!(paths, [dir.path().join("counts-00000-of-00002"), dir.path().join("counts-00001-of-00002")]);
        assert_eq!(
            file_names(dir.path()),
            ["counts-00000-of-00002", "counts-00001-of-00002", "counts-x-00000-of-00001", "counts.txt"]
        );
        assert_eq!(fs::read_to_string(dir.path().join("counts-00000-of-00002")).unwrap(), "");
        assert_eq!(fs::read_to_string(dir.path().join("counts-00001-of-00002")).unwrap(), "b\n");
    }

    #[test]
    fn taking_the_lock_removes_temporary_files_of_dead_runs_of_this_prefix_only() {
        let dir = TempDir::new().unwrap();
        let prefix = prefix_in(&dir, "counts");
        let dead = write_empty_shard(&prefix, 0, 2, "dead").unwrap();
        let other_prefix = write_empty_shard(&prefix_in(&dir, "counts-x"), 0, 1, "dead").unwrap();
        put(dir.path(), ".counts.runnel-journal.dead.tmp", "{");
        put(dir.path(), "counts-00000-of-00001", "kept until the next commit\n");
        let lock = PrefixLock::acquire(&prefix, "alive").unwrap();
        assert!(!dead.temp_path.exists());
        assert!(other_prefix.temp_path.exists());
        let mut expected = vec![
            ".counts.runnel-lock".to_owned(),
            other_prefix.temp_path.file_name().unwrap().to_str().unwrap().to_owned(),
            "counts-00000-of-00001".to_owned(),
        ];
        expected.sort();
        assert_eq!(file_names(dir.path()), expected);
        drop(lock);
    }

    #[test]
    fn commit_with_a_missing_temporary_file_changes_nothing() {
        let dir = TempDir::new().unwrap();
        let prefix = prefix_in(&dir, "counts");
        put(dir.path(), "counts-00000-of-00001", "old\n");
        let lock = PrefixLock::acquire(&prefix, "job").unwrap();
        let good = shard(&prefix, 0, 2, "job", "a");
        let lost = shard(&prefix, 1, 2, "job", "b");
        fs::remove_file(&lost.temp_path).unwrap();
        let error = lock.commit(2, vec![good.clone(), lost.clone()]).unwrap_err();
        assert!(matches!(error, FileError::MissingTempFile { .. }), "{error:?}");
        assert!(error.to_string().contains(&lost.temp_path.display().to_string()), "{error}");
        lock.abort().unwrap();
        assert_eq!(file_names(dir.path()), ["counts-00000-of-00001"], "the old output stays, temporaries go");
        assert_eq!(fs::read_to_string(dir.path().join("counts-00000-of-00001")).unwrap(), "old\n");
    }

    #[test]
    fn commit_refuses_shards_of_another_prefix_or_count() {
        let dir = TempDir::new().unwrap();
        let prefix = prefix_in(&dir, "counts");
        let lock = PrefixLock::acquire(&prefix, "job").unwrap();
        let wrong_count = shard(&prefix, 0, 3, "job", "a");
        let error = lock.commit(2, vec![wrong_count]).unwrap_err();
        assert!(matches!(error, FileError::InvalidOutput { .. }), "{error:?}");
        assert!(error.to_string().contains("is not one of its 2 shards"), "{error}");
        let elsewhere = shard(&prefix_in(&dir, "other"), 0, 2, "job", "a");
        assert!(matches!(lock.commit(2, vec![elsewhere]), Err(FileError::InvalidOutput { .. })));
    }

    /// Writes the journal of a commit of `new` (temporary files of `token`) over the shards now at the prefix, as
    /// a run that dies right after writing it would.
    fn journal_of(prefix: &str, token: &str, num_shards: usize, new: &[TempShard]) -> Journal {
        let files = PrefixFiles::new(prefix).unwrap();
        let name = |p: &Path| p.file_name().unwrap().to_str().unwrap().to_owned();
        let journal = Journal {
            format: JOURNAL_FORMAT.to_owned(),
            prefix: prefix.to_owned(),
            token: token.to_owned(),
            num_shards,
            new: new
                .iter()
                .map(|s| JournalShard { temp: name(&s.temp_path), final_name: name(&s.final_path) })
                .collect(),
            old: files.list().unwrap().shards,
        };
        journal.write(&files).unwrap();
        journal
    }

    #[test]
    fn the_next_run_rolls_a_journal_forward_when_the_new_set_is_whole() {
        let dir = TempDir::new().unwrap();
        let prefix = prefix_in(&dir, "counts");
        for i in 0..3 {
            put(dir.path(), &format!("counts-0000{i}-of-00003"), "old\n");
        }
        let new = [shard(&prefix, 0, 2, "dead", "new 0"), shard(&prefix, 1, 2, "dead", "new 1")];
        journal_of(&prefix, "dead", 2, &new);
        // The dead run deleted one old shard and renamed nothing: a visibly incomplete old set.
        fs::remove_file(dir.path().join("counts-00000-of-00003")).unwrap();
        drop(PrefixLock::acquire(&prefix, "next").unwrap());
        assert_eq!(file_names(dir.path()), ["counts-00000-of-00002", "counts-00001-of-00002"]);
        assert_eq!(fs::read_to_string(dir.path().join("counts-00001-of-00002")).unwrap(), "new 1\n");
    }

    #[test]
    fn the_next_run_rolls_a_journal_back_when_a_shard_of_the_new_set_is_lost() {
        let dir = TempDir::new().unwrap();
        let prefix = prefix_in(&dir, "counts");
        put(dir.path(), "counts-00000-of-00001", "old\n");
        let new = [shard(&prefix, 0, 2, "dead", "new 0"), shard(&prefix, 1, 2, "dead", "new 1")];
        journal_of(&prefix, "dead", 2, &new);
        fs::remove_file(&new[1].temp_path).unwrap();
        drop(PrefixLock::acquire(&prefix, "next").unwrap());
        assert_eq!(file_names(dir.path()), ["counts-00000-of-00001"], "the old set, untouched before the crash");
    }

    #[test]
    fn an_unreadable_journal_is_an_error_naming_it_and_the_lock_is_not_kept() {
        let dir = TempDir::new().unwrap();
        let prefix = prefix_in(&dir, "counts");
        put(dir.path(), ".counts.runnel-journal", "not json");
        let error = PrefixLock::acquire(&prefix, "job").unwrap_err();
        assert!(matches!(error, FileError::InvalidJournal { .. }), "{error:?}");
        let journal = dir.path().join(".counts.runnel-journal");
        assert!(error.to_string().starts_with(&format!("invalid commit journal {}: ", journal.display())), "{error}");
        assert!(!dir.path().join(".counts.runnel-lock").exists());
    }

    #[test]
    fn a_journal_naming_files_of_another_output_is_refused() {
        let dir = TempDir::new().unwrap();
        let prefix = prefix_in(&dir, "counts");
        let new = [shard(&prefix, 0, 1, "dead", "x")];
        let mut journal = journal_of(&prefix, "dead", 1, &new);
        journal.old.push("../precious.txt".to_owned());
        journal.write(&PrefixFiles::new(&prefix).unwrap()).unwrap();
        let error = PrefixLock::acquire(&prefix, "job").unwrap_err();
        assert!(error.to_string().contains("'../precious.txt' is not a file of this output"), "{error}");
    }

    #[test]
    fn abort_removes_this_jobs_temporary_files_and_leaves_the_prefix_as_it_was() {
        let dir = TempDir::new().unwrap();
        let prefix = prefix_in(&dir, "counts");
        put(dir.path(), "counts-00000-of-00001", "old\n");
        let lock = PrefixLock::acquire(&prefix, "job").unwrap();
        shard(&prefix, 0, 2, "job", "a");
        lock.abort().unwrap();
        assert_eq!(file_names(dir.path()), ["counts-00000-of-00001"]);
    }

    #[test]
    fn an_invalid_prefix_or_token_takes_no_lock() {
        let dir = TempDir::new().unwrap();
        assert!(matches!(PrefixLock::acquire(&prefix_in(&dir, "out/"), "job"), Err(FileError::InvalidOutput { .. })));
        assert!(matches!(PrefixLock::acquire(&prefix_in(&dir, "x"), "a.b"), Err(FileError::InvalidOutput { .. })));
        assert!(file_names(dir.path()).is_empty());
    }
}
