//! Runs Runnel pipelines on Apache Beam's portable runners.
//!
//! - [`proto`]: the subset of Beam's Runner, Fn, provisioning and Job API protos Runnel uses,
//!   with Beam's package names, message names and field numbers (generated with protox and
//!   tonic, no `protoc`).
//! - [`coders`]: Beam's standard coders, byte-compatible with Beam (tested against Beam's
//!   published test vectors).
//! - [`translate`]: a Runnel [`Graph`](runnel_model::Graph) as a Beam `Pipeline`, refusing up
//!   front what a Beam runner could not run faithfully.
//! - [`job`]: the Job API client (prepare, run, follow, cancel, metrics).
//! - [`harness`] and [`bundle`]: the SDK harness, executing bundle descriptors with the job's
//!   code through `runners/core`'s stage executor; [`monitoring`] and [`logging`]: metrics and
//!   logs back to the runner.
//! - [`runner`]: [`PortableRunner`], `--runner=portable`; [`local_job_service`]: Beam Python's
//!   job service and Prism as child processes, for tests.
//!
//! This crate is the only one in the workspace that knows gRPC.
#![warn(missing_docs)]

pub mod bundle;
pub mod coders;
pub mod harness;
pub mod job;
pub mod local_job_service;
pub mod logging;
pub mod monitoring;
pub mod proto;
pub mod runner;
pub mod translate;

pub use runner::{PortableRunner, WorkerEnvironment};
