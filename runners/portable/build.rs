//! Generates Rust for the Beam protos under `proto/` (written for Runnel) with prost and tonic.
//!
//! protox parses the `.proto` files in pure Rust, so building needs no system `protoc`.

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?).join("proto");
    let beam = root.join("org/apache/beam/model");
    let files = [
        beam.join("pipeline/v1/runner_api.proto"),
        beam.join("fn_execution/v1/fn_api.proto"),
        beam.join("job_management/v1/job_api.proto"),
    ];
    println!("cargo:rerun-if-changed={}", root.display());
    for f in &files {
        println!("cargo:rerun-if-changed={}", f.display());
    }
    let descriptors = protox::compile(&files, [&root])?;
    tonic_prost_build::configure()
        // Ordered maps: a translated pipeline encodes the same bytes every time.
        .btree_map(".")
        .compile_fds(descriptors)?;
    Ok(())
}
