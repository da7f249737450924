//! Benchmark support: deterministic input generators and hand-written baselines that the
//! benchmarks compare Runnel against. Baselines use the same tokenisation as the examples.

/// The benchmarks and the hand-written baselines allocate with mimalloc, as the example programs they are compared
/// with do, so that the comparison is of the programs, not of allocators.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

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

/// The hand-written **rayon** word count the rayon runner is measured against: what a Rust programmer writes for
/// this job by hand. Reads the file, cuts it into pieces of about 4 MiB at line ends, counts the `[\w']+` words of
/// each piece in a per-task hash map of borrowed words (rayon's `fold`), merges the maps (`reduce`), writes
/// `word: count` lines. Returns the number of distinct words.
pub fn handwritten_rayon_wordcount(input: &Path, output: &Path) -> std::io::Result<usize> {
    use rayon::prelude::*;
    let bytes = std::fs::read(input)?;
    let text = std::str::from_utf8(&bytes).map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
    let mut pieces = Vec::new();
    let mut start = 0;
    while start < text.len() {
        let mut end = (start + (4 << 20)).min(text.len());
        end = text[end..].find('\n').map_or(text.len(), |i| end + i + 1);
        pieces.push(&text[start..end]);
        start = end;
    }
    let re = regex::Regex::new(WORD_PATTERN).expect("valid pattern");
    let counts = pieces
        .into_par_iter()
        .fold(ahash::AHashMap::<&str, u64>::new, |mut counts, piece| {
            for m in re.find_iter(piece) {
                *counts.entry(m.as_str()).or_insert(0) += 1;
            }
            counts
        })
        .reduce(ahash::AHashMap::new, |mut a, b| {
            let (mut big, small) = if a.len() >= b.len() { (std::mem::take(&mut a), b) } else { (b, a) };
            for (w, c) in small {
                *big.entry(w).or_insert(0) += c;
            }
            big
        });
    let mut out = std::io::BufWriter::new(std::fs::File::create(output)?);
    for (w, c) in &counts {
        writeln!(out, "{w}: {c}")?;
    }
    out.flush()?;
    Ok(counts.len())
}

/// The windowed-sum benchmark's input: event `i` of `n`, as `(key, timestamp_ms, score)`.
///
/// Keys are spread over `0..keys` by a hash of `i`; timestamps advance evenly over `span_ms` from
/// [`WINDOWED_SUM_START_MS`] with up to a minute of disorder (as a stream's would be); scores are `0..100`.
/// Deterministic, so Runnel and the baseline see the same events.
pub fn windowed_sum_event(i: u64, n: u64, keys: u32, span_ms: i64) -> (u32, i64, i64) {
    let h = splitmix64(i);
    let key = (h % u64::from(keys)) as u32;
    let jitter = ((h >> 32) % 60_000) as i64;
    let ts = WINDOWED_SUM_START_MS + (i as i128 * span_ms as i128 / n.max(1) as i128) as i64 - jitter;
    let score = ((h >> 16) % 100) as i64;
    (key, ts, score)
}

/// Where the windowed-sum benchmark's event time starts: 2015-11-02 00:00 UTC.
pub const WINDOWED_SUM_START_MS: i64 = 1_446_422_400_000;

/// SplitMix64: a fast, well-mixed hash of a counter.
pub fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// What a windowed sum gave: how many `(key, window)` sums, and the total of all sums.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WindowedSumResult {
    /// Number of `(key, window)` outputs.
    pub outputs: u64,
    /// Sum of every output.
    pub total: i64,
}

/// Hand-written single-threaded windowed sum of the benchmark's `n` events: a hash map from `(key, window start)`
/// to the running sum, with the hasher `S` (the std one, or a faster one such as ahash).
pub fn handwritten_windowed_sum<S: std::hash::BuildHasher + Default>(
    n: u64,
    keys: u32,
    span_ms: i64,
    window_ms: i64,
) -> WindowedSumResult {
    let mut sums: HashMap<(u32, i64), i64, S> = HashMap::default();
    for i in 0..n {
        let (key, ts, score) = windowed_sum_event(i, n, keys, span_ms);
        let start = ts - ts.rem_euclid(window_ms);
        *sums.entry((key, start)).or_insert(0) += score;
    }
    WindowedSumResult { outputs: sums.len() as u64, total: sums.values().sum() }
}

/// The word count benchmarks' input of `mb` MiB of generated text, made once and kept in a
/// directory of the system's temporary directory: `(that directory, the file)`.
pub fn wordcount_input(mb: usize) -> (std::path::PathBuf, std::path::PathBuf) {
    let dir = std::env::temp_dir().join(format!("runnel-bench-wordcount-{mb}"));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let input = dir.join("input.txt");
    if !input.exists() {
        generate_text(&input, mb << 20, 42).expect("generate text");
    }
    (dir, input)
}

/// The workspace's root directory.
pub fn workspace_root() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("bench/ is in the workspace").to_path_buf()
}

/// Builds the example program `name` in release mode and returns its path.
pub fn example_binary(name: &str) -> std::path::PathBuf {
    let root = workspace_root();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = std::process::Command::new(cargo)
        .args(["build", "--release", "-q", "-p", "runnel-examples", "--example", name])
        .current_dir(&root)
        .status()
        .expect("cargo runs");
    assert!(status.success(), "building the {name} example failed");
    let target =
        std::env::var("CARGO_TARGET_DIR").map(std::path::PathBuf::from).unwrap_or_else(|_| root.join("target"));
    target.join("release/examples").join(name)
}

/// Every line of the files at `paths`, sorted (outputs compared whatever their sharding and order).
pub fn sorted_lines(paths: &[std::path::PathBuf]) -> Vec<String> {
    let mut lines: Vec<String> = paths
        .iter()
        .flat_map(|p| {
            std::fs::read_to_string(p).expect("output readable").lines().map(String::from).collect::<Vec<_>>()
        })
        .collect();
    lines.sort();
    lines
}

/// The shards `NAME-*` written in `dir` for the output prefix `dir/NAME`.
pub fn shards_of(dir: &Path, name: &str) -> Vec<std::path::PathBuf> {
    std::fs::read_dir(dir)
        .expect("output directory readable")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            // `NAME-SSSSS-of-NNNNN` exactly: not the shards of another prefix that starts with NAME.
            p.file_name().and_then(|n| n.to_str()).and_then(|n| n.strip_prefix(name)).is_some_and(|rest| {
                let parts: Vec<&str> = rest.split('-').collect();
                parts.len() == 4
                    && parts[0].is_empty()
                    && parts[2] == "of"
                    && [parts[1], parts[3]].iter().all(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()))
            })
        })
        .collect()
}

/// The shortest wall time of `runs` runs of `f`, in seconds.
pub fn best_of<F: FnMut()>(runs: usize, mut f: F) -> f64 {
    (0..runs)
        .map(|_| {
            let t = std::time::Instant::now();
            f();
            t.elapsed().as_secs_f64()
        })
        .fold(f64::INFINITY, f64::min)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windowed_sum_events_are_deterministic_and_spread() {
        let n = 100_000;
        let events: Vec<_> = (0..n).map(|i| windowed_sum_event(i, n, 10_000, 3_600_000)).collect();
        assert_eq!(events, (0..n).map(|i| windowed_sum_event(i, n, 10_000, 3_600_000)).collect::<Vec<_>>());
        let keys: std::collections::HashSet<u32> = events.iter().map(|e| e.0).collect();
        assert_eq!(keys.len(), 10_000);
        let (min, max) = events.iter().fold((i64::MAX, i64::MIN), |(a, b), e| (a.min(e.1), b.max(e.1)));
        assert!(min >= WINDOWED_SUM_START_MS - 60_000 && max < WINDOWED_SUM_START_MS + 3_600_000, "{min} {max}");
        assert!(events.iter().all(|e| (0..100).contains(&e.2)));
        let std = handwritten_windowed_sum::<std::collections::hash_map::RandomState>(n, 10_000, 3_600_000, 60_000);
        let fast = handwritten_windowed_sum::<ahash::RandomState>(n, 10_000, 3_600_000, 60_000);
        assert_eq!(std, fast);
        assert_eq!(std.total, events.iter().map(|e| e.2).sum::<i64>());
    }
}
