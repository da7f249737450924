//! user_score: the total score of every user of the mobile game, over all input (Beam's UserScore).
//!
//! ```text
//! cargo run --release --example user_score -- --input='events/*.csv' --output=out/user_scores [--runner=…]
//! ```
//!
//! Input lines are CSV `user,team,score,timestamp_ms,readable_time`; lines that cannot be parsed are skipped and
//! counted in the counter `num_parse_errors`, printed on stderr at the end. Output lines:
//! `user: USER, total_score: TOTAL`.

use std::process::ExitCode;

use clap::Parser;
use runnel::prelude::*;
use runnel_examples::{ExtractAndSumScore, ParseGameEventFn, NUM_PARSE_ERRORS};
use runnel_io::text::{ReadFromText, WriteToText};

/// Sums the scores of every user.
#[derive(Debug, Parser)]
#[command(name = "user_score", about = "Total score per user of the mobile game (Beam's UserScore).")]
struct Args {
    #[command(flatten)]
    job: runnel_examples::TextJobArgs,
}

fn main() -> ExitCode {
    runnel_examples::run_main(|| {
        let args = Args::parse();
        let p = Pipeline::new(args.job.pipeline);
        p.apply("ReadInputText", ReadFromText::new(args.job.input))
            .apply("ParseGameEvent", ParDo::registered(ParseGameEventFn))
            .apply("ExtractUserScore", ExtractAndSumScore::per_user())
            .map("FormatUserScoreSums", |(user, total): (String, i64)| format!("user: {user}, total_score: {total}"))
            .apply(
                "WriteUserScoreSums",
                WriteToText::new(args.job.output).with_num_shards(args.job.num_shards.unwrap_or(0)),
            );
        let result = p.run()?;
        runnel_examples::print_counters(&result, &[NUM_PARSE_ERRORS]);
        Ok(())
    })
}
