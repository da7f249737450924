//! Writes generated English-like text for the benchmarks: `gen_text PATH MB [--one-line]`.
//!
//! The text is `runnel_bench::generate_text`'s (Zipf-like words, a long tail, Unicode words,
//! CRLF on every tenth line); with `--one-line` every line break becomes a space, so the whole
//! file is one line (the worst case for a reader that holds a line at a time).

use std::io::{Read, Write};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let (Some(path), Some(mb)) = (args.get(1), args.get(2)) else {
        return Err("usage: gen_text PATH MB [--one-line]".into());
    };
    let mb: usize = mb.parse().map_err(|e| format!("MB must be a whole number: {e}"))?;
    let path = std::path::Path::new(path);
    runnel_bench::generate_text(path, mb << 20, 42)?;
    if args.iter().any(|a| a == "--one-line") {
        let mut text = Vec::new();
        std::fs::File::open(path)?.read_to_end(&mut text)?;
        for b in &mut text {
            if *b == b'\n' || *b == b'\r' {
                *b = b' ';
            }
        }
        text.push(b'\n');
        std::fs::File::create(path)?.write_all(&text)?;
    }
    Ok(())
}
