//! Generates the Rust form of `proto/runnel/graph/v1/graph.proto` with prost.
//!
//! The `.proto` file is parsed by protox (pure Rust), so building needs no system `protoc`.

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?).join("proto");
    let file = root.join("runnel/graph/v1/graph.proto");
    println!("cargo:rerun-if-changed={}", root.display());
    println!("cargo:rerun-if-changed={}", file.display());

    let descriptors = protox::compile([&file], [&root])?;
    prost_build::Config::new()
        // Ordered maps, so that encoding a graph is deterministic.
        .btree_map(["."])
        .compile_fds(descriptors)?;
    Ok(())
}
