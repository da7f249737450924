//! Benchmark support: deterministic input generators and hand-written baselines that the
//! benchmarks compare Runnel against. Baselines use the same tokenisation as the examples.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::HashMap;
use std::io::{BufRead, Write};
use std::path::Path;

/// The word pattern of the wordcount contract.
pub const WORD_PATTERN: &str = r"[\w']+";

/// Writes about `bytes` bytes of English-like text with a Zipf-like word distribution, some
/// Unicode words, apostrophes, punctuation, and CRLF line ends on every tenth line.
pub fn generate_text(path: &Path, bytes: usize, seed: u64) -> std::io::Result<()> {
    let mut rng = StdRng::seed_from_u64(seed);
    let base = [
        "the",
        "of",
        "and",
        "to",
        "in",
        "a",
        "is",
        "that",
        "for",
        "it",
        "as",
        "was",
        "with",
        "be",
        "by",
        "on",
        "not",
        "he",
        "I",
        "this",
        "are",
        "or",
        "his",
        "from",
        "at",
        "which",
        "but",
        "have",
        "an",
        "had",
        "they",
        "you",
        "were",
        "their",
        "one",
        "all",
        "we",
        "can",
        "her",
        "has",
        "there",
        "been",
        "if",
        "more",
        "when",
        "will",
        "would",
        "who",
        "so",
        "no",
        "king",
        "don't",
        "o'er",
        "naïve",
        "café",
        "Straße",
        "日本語",
        "ελληνικά",
    ];
    // A long tail of made-up words gives the hash map realistic variety.
    let tail: Vec<String> = (0..20_000).map(|i| format!("w{i:x}")).collect();
    let mut out = std::io::BufWriter::new(std::fs::File::create(path)?);
    let mut written = 0usize;
    let mut line = String::new();
    let mut line_no = 0u64;
    while written < bytes {
        line.clear();
        let words = rng.gen_range(4..16);
        for i in 0..words {
            if i > 0 {
                line.push(if rng.gen_ratio(1, 12) { ',' } else { ' ' });
                if line.ends_with(',') {
                    line.push(' ');
                }
            }
            let r: f64 = rng.gen();
            if r < 0.8 {
                // Zipf-like: low indices far more often.
                let idx = ((base.len() as f64) * r.powi(3) / 0.512) as usize;
                line.push_str(base[idx.min(base.len() - 1)]);
            } else {
                line.push_str(&tail[rng.gen_range(0..tail.len())]);
            }
        }
        line.push(if rng.gen_ratio(1, 3) { '.' } else { ';' });
        line_no += 1;
        line.push_str(if line_no.is_multiple_of(10) { "\r\n" } else { "\n" });
        out.write_all(line.as_bytes())?;
        written += line.len();
    }
    out.flush()
}

/// Hand-written single-threaded word count: read lines, tokenise with the same regex, count in
/// a hash map, write `WORD: COUNT` lines. Returns the number of distinct words.
pub fn handwritten_wordcount(input: &Path, output: &Path) -> std::io::Result<usize> {
    let re = regex::Regex::new(WORD_PATTERN).expect("valid pattern");
    let mut counts: HashMap<String, u64> = HashMap::new();
    let reader = std::io::BufReader::new(std::fs::File::open(input)?);
    for line in reader.lines() {
        let line = line?;
        let line = line.strip_suffix('\r').unwrap_or(&line);
        for m in re.find_iter(line) {
            match counts.get_mut(m.as_str()) {
                Some(c) => *c += 1,
                None => {
                    counts.insert(m.as_str().to_string(), 1);
                }
            }
        }
    }
    let mut out = std::io::BufWriter::new(std::fs::File::create(output)?);
    for (w, c) in &counts {
        writeln!(out, "{w}: {c}")?;
    }
    out.flush()?;
    Ok(counts.len())
}
