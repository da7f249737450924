//! wordcount: counts the words of text files, like Beam's WordCount.
//!
//! ```text
//! cargo run --release --example wordcount -- --input='data/*.txt' --output=out/counts [--num-shards=N] [--runner=…]
//! ```
//!
//! Words are the maximal runs of characters matching `[\w']+` (Unicode word characters and the apostrophe),
//! case-sensitive. The output has one line `WORD: COUNT` per distinct word, in shards `PREFIX-SSSSS-of-NNNNN`.

use std::process::ExitCode;

use clap::Parser;
use regex::Regex;
use runnel::prelude::*;
use runnel_io::text::{ReadFromText, WriteToText};
use serde::{Deserialize, Serialize};

/// Counts the words of text files.
#[derive(Debug, Parser)]
#[command(name = "wordcount", about = "Counts the words of text files (Beam's WordCount).")]
struct Args {
    #[command(flatten)]
    job: runnel_examples::TextJobArgs,
}

/// Splits a line into words. A registered DoFn: its (empty) fields are serialised into the graph, and the pattern is
/// compiled once per instance, in `setup`.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct ExtractWords {
    #[serde(skip)]
    word: Option<Regex>,
}

impl DoFn for ExtractWords {
    type In = String;
    type Out = String;

    fn setup(&mut self) -> Result<(), BoxError> {
        self.word = Some(Regex::new(r"[\w']+")?);
        Ok(())
    }

    fn process(&mut self, line: String, ctx: &mut DoFnContext<'_, '_, String>) -> Result<(), BoxError> {
        let word = self.word.as_ref().ok_or("ExtractWords used before setup")?;
        for m in word.find_iter(&line) {
            ctx.emit(m.as_str().to_owned());
        }
        Ok(())
    }
}

runnel::register_dofn!(ExtractWords, "wordcount.ExtractWords");

/// Lines of text → `(word, count)`.
struct CountWords;

impl PTransform<PCollection<String>> for CountWords {
    type Output = PCollection<(String, u64)>;

    fn expand(self, lines: PCollection<String>) -> PCollection<(String, u64)> {
        lines
            .apply("ExtractWords", ParDo::registered(ExtractWords::default()))
            .apply("CountPerElement", CountPerElement::new())
    }
}

fn main() -> ExitCode {
    runnel_examples::run_main(|| {
        let args = Args::parse();
        let p = Pipeline::new(args.job.pipeline);
        p.apply("ReadLines", ReadFromText::new(args.job.input))
            .apply("CountWords", CountWords)
            .map("FormatAsText", |(word, count): (String, u64)| format!("{word}: {count}"))
            .apply("WriteCounts", WriteToText::new(args.job.output).with_num_shards(args.job.num_shards.unwrap_or(0)));
        p.run()?;
        Ok(())
    })
}
