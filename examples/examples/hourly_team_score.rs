//! hourly_team_score: the total score of every team in fixed windows of event time (Beam's HourlyTeamScore).
//!
//! ```text
//! cargo run --release --example hourly_team_score -- --input='events/*.csv' --output=out/team_scores \
//!     [--window-duration=60] [--start-min=2015-11-02-09-00] [--stop-min=2015-11-02-18-00] [--runner=…]
//! ```
//!
//! Input lines are CSV `user,team,score,timestamp_ms,readable_time`; lines that cannot be parsed are skipped and
//! counted in the counter `num_parse_errors`, printed on stderr at the end. Each event is stamped with its
//! `timestamp_ms` and kept only when `start < timestamp < stop` (strictly; `--start-min` and `--stop-min` are minutes
//! in UTC, `yyyy-MM-dd-HH-mm`, and default to no bound). Events go into fixed windows of `--window-duration` minutes
//! (aligned to the epoch) and their scores are summed per team and window. Output lines:
//! `team: TEAM, total_score: TOTAL, window_start: YYYY-MM-DD HH:MM:SS.000` (window start in UTC).

use std::process::ExitCode;

use clap::Parser;
use runnel::prelude::*;
use runnel_examples::{
    parse_utc_minute, team_score_line, AddEventTimestampsFn, ExtractAndSumScore, GameEvent, ParseGameEventFn,
    NUM_PARSE_ERRORS,
};
use runnel_io::text::{ReadFromText, WriteToText};
use serde::{Deserialize, Serialize};

const MS_PER_MINUTE: i64 = 60_000;

/// Sums the scores of every team per window of event time.
#[derive(Debug, Parser)]
#[command(
    name = "hourly_team_score",
    about = "Total score per team in fixed windows of event time (Beam's HourlyTeamScore)."
)]
struct Args {
    #[command(flatten)]
    job: runnel_examples::TextJobArgs,
    /// Length of the fixed windows, in minutes.
    #[arg(long, value_name = "MINUTES", default_value_t = 60, value_parser = clap::value_parser!(i64).range(1..=MAX_WINDOW_MINUTES))]
    window_duration: i64,
    /// Keep only events strictly after this minute (UTC, yyyy-MM-dd-HH-mm). Default: no lower bound.
    #[arg(long, value_name = "yyyy-MM-dd-HH-mm", value_parser = parse_utc_minute)]
    start_min: Option<i64>,
    /// Keep only events strictly before this minute (UTC, yyyy-MM-dd-HH-mm). Default: no upper bound.
    #[arg(long, value_name = "yyyy-MM-dd-HH-mm", value_parser = parse_utc_minute)]
    stop_min: Option<i64>,
}

/// The longest window accepted: about 10,000 years, far below where milliseconds would overflow.
const MAX_WINDOW_MINUTES: i64 = 10_000 * 366 * 24 * 60;

/// Keeps the events whose timestamp is strictly after `after_ms` (when set) and strictly before `before_ms` (when
/// set): Beam's `FilterStartTime` and `FilterEndTime`.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct FilterByTimeFn {
    after_ms: Option<i64>,
    before_ms: Option<i64>,
}

impl DoFn for FilterByTimeFn {
    type In = GameEvent;
    type Out = GameEvent;

    fn process(&mut self, event: GameEvent, ctx: &mut DoFnContext<'_, '_, GameEvent>) -> Result<(), BoxError> {
        let ts = event.timestamp_ms;
        if self.after_ms.is_none_or(|after| ts > after) && self.before_ms.is_none_or(|before| ts < before) {
            ctx.emit(event);
        }
        Ok(())
    }
}

runnel::register_dofn!(FilterByTimeFn, "hourly_team_score.FilterByTime");

/// `(team, total)` in its window → the output line, with the window's start in UTC.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct FormatTeamScoreFn;

impl DoFn for FormatTeamScoreFn {
    type In = (String, i64);
    type Out = String;

    fn process(&mut self, (team, total): (String, i64), ctx: &mut DoFnContext<'_, '_, String>) -> Result<(), BoxError> {
        let line = team_score_line(&team, total, &ctx.window())?;
        ctx.emit(line);
        Ok(())
    }
}

runnel::register_dofn!(FormatTeamScoreFn, "hourly_team_score.FormatTeamScore");

fn main() -> ExitCode {
    runnel_examples::run_main(|| {
        let args = Args::parse();
        let p = Pipeline::new(args.job.pipeline);
        p.apply("ReadInputText", ReadFromText::new(args.job.input))
            .apply("ParseGameEvent", ParDo::registered(ParseGameEventFn))
            .apply("FilterStartTime", ParDo::registered(FilterByTimeFn { after_ms: args.start_min, before_ms: None }))
            .apply("FilterEndTime", ParDo::registered(FilterByTimeFn { after_ms: None, before_ms: args.stop_min }))
            .apply("AddEventTimestamps", ParDo::registered(AddEventTimestampsFn))
            .apply("FixedWindowsTeam", WindowInto::new(FixedWindows::of(args.window_duration * MS_PER_MINUTE)))
            .apply("ExtractTeamScore", ExtractAndSumScore::per_team())
            .apply("FormatTeamScoreSums", ParDo::registered(FormatTeamScoreFn))
            .apply(
                "WriteTeamScoreSums",
                WriteToText::new(args.job.output).with_num_shards(args.job.num_shards.unwrap_or(0)),
            );
        let result = p.run()?;
        runnel_examples::print_counters(&result, &[NUM_PARSE_ERRORS]);
        Ok(())
    })
}
