//! Sources and sinks of Runnel: reading pipeline input from files and writing pipeline output to them.
//!
//! - [`files`]: the plain filesystem primitives the text source and sink are built on: expanding an input pattern
//!   (a path or a glob) into files, reading a file line by line as the project's text contract says, and writing
//!   sharded output (`PREFIX-SSSSS-of-NNNNN`) to temporary files that are renamed into place only on commit.
//! - [`commit`]: the commit protocol of sharded outputs: a lock per output prefix (a second job writing the same
//!   prefix is refused), a journal written before the first rename, and recovery by the next run, so that a reader
//!   never sees shards of two runs mixed (see `docs/file-outputs.md`).
//! - [`text`]: the pipeline transforms: [`text::ReadFromText`] (lines of the files matching a pattern) and
//!   [`text::WriteToText`] (sharded text output, committed atomically).
#![warn(missing_docs)]

pub mod commit;
pub mod files;
pub mod text;
