//! leader_board: running team and user scores over a stream of game events (Beam's LeaderBoard),
//! replayed from a file so its output is deterministic.
//!
//! ```text
//! cargo run --release --example leader_board -- --input=REPLAY --output=PREFIX \
//!     [--team-window-duration=60] [--early-period=5] [--allowed-lateness=120] [--user-period=10]
//! ```
//!
//! Each line of the replay file is one of:
//! - a game event `user,team,score,timestamp_ms,readable_time`: it arrives at the current
//!   processing time, stamped with its `timestamp_ms`, on its own (one bundle per event, so a
//!   late-firing trigger fires once per late event);
//! - `@watermark MS`: the event-time watermark advances to MS (a watermark that does not move
//!   forward is ignored);
//! - `@processing-time +MS`: processing time advances by MS milliseconds.
//!
//! At the end of the file the watermark advances to infinity; no wall-clock time is used.
//! Unparsable lines, blank ones included (as Beam's `ParseEventFn` counts them), are skipped and
//! counted in `num_parse_errors`.
//!
//! - Team scores: fixed windows of `--team-window-duration` minutes; early firings
//!   `--early-period` minutes of processing time after the first element of a pane, the on-time
//!   firing when the watermark passes the end of the window, a late firing for every late event;
//!   `--allowed-lateness` minutes; accumulating. Lines:
//!   `team: TEAM, total_score: TOTAL, window_start: YYYY-MM-DD HH:MM:SS.000, timing: EARLY|ON_TIME|LATE, index: N`.
//! - User scores: the global window, fired every `--user-period` minutes of processing time after
//!   the first element of a pane, accumulating. Lines:
//!   `user: USER, total_score: TOTAL, timing: EARLY|ON_TIME|LATE, index: N`.
//!
//! On stderr at the end: `num_parse_errors: N` and `dropped_due_to_lateness: N`.

use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use runnel::prelude::*;
use runnel_examples::{
    parse_game_event, team_score_line, AddEventTimestampsFn, ExtractAndSumScore, ParseGameEventFn, NUM_PARSE_ERRORS,
};
use runnel_io::text::WriteToText;
use serde::{Deserialize, Serialize};

const MS_PER_MINUTE: i64 = 60_000;

/// Running team and user scores over a replayed stream of game events.
#[derive(Debug, Parser)]
#[command(name = "leader_board", about = "Running team and user scores over a replayed stream (Beam's LeaderBoard).")]
struct Args {
    /// Replay file: game events, `@watermark MS` and `@processing-time +MS` lines.
    #[arg(long, value_name = "REPLAY")]
    input: String,
    /// Output prefix: writes PREFIX-SSSSS-of-NNNNN.
    #[arg(long, value_name = "PREFIX", value_parser = runnel_examples::output_prefix)]
    output: String,
    /// Number of output shards (default: the runner chooses).
    #[arg(long, value_name = "N")]
    num_shards: Option<usize>,
    /// Team windows, in minutes.
    #[arg(long, value_name = "MINUTES", default_value_t = 60, value_parser = clap::value_parser!(i64).range(1..))]
    team_window_duration: i64,
    /// Early firings of team scores, in minutes of processing time after a pane's first element.
    #[arg(long, value_name = "MINUTES", default_value_t = 5, value_parser = clap::value_parser!(i64).range(0..))]
    early_period: i64,
    /// Allowed lateness of team windows, in minutes.
    #[arg(long, value_name = "MINUTES", default_value_t = 120, value_parser = clap::value_parser!(i64).range(0..))]
    allowed_lateness: i64,
    /// Firings of user scores, in minutes of processing time after a pane's first element.
    #[arg(long, value_name = "MINUTES", default_value_t = 10, value_parser = clap::value_parser!(i64).range(0..))]
    user_period: i64,
    #[command(flatten)]
    pipeline: PipelineOptions,
}

/// Builds the stream the replay file describes. Lines that are neither events nor well-formed
/// directives travel as elements too, so the parsing step counts them in `num_parse_errors`.
fn replay_stream(text: &str) -> TestStream<String> {
    let mut stream = TestStream::new();
    let mut watermark = Timestamp::MIN;
    // Lines end at '\n' (a final one ends the last line and starts none); a blank line is a line.
    for line in text.split_inclusive('\n') {
        let line = line.strip_suffix('\n').unwrap_or(line);
        let line = line.strip_suffix('\r').unwrap_or(line);
        if let Some(rest) = line.strip_prefix("@watermark ") {
            if let Ok(ms) = rest.trim().parse::<i64>() {
                let target = Timestamp(ms);
                if target >= Timestamp::end_of_global_window() {
                    // Everything after this is beyond the end of time; the end of the file does the rest.
                    watermark = Timestamp::end_of_global_window();
                    stream = stream.advance_watermark_to(watermark);
                } else if target > watermark {
                    watermark = target;
                    stream = stream.advance_watermark_to(target);
                }
                continue;
            }
        } else if let Some(rest) = line.strip_prefix("@processing-time +") {
            if let Ok(ms) = rest.trim().parse::<i64>() {
                if ms > 0 {
                    stream = stream.advance_processing_time(ms);
                }
                if ms >= 0 {
                    continue;
                }
            }
        }
        // An event arrives stamped with its own time; a line that does not parse keeps the
        // current watermark as its time, and is counted and dropped by the parsing step.
        let ts = parse_game_event(line)
            .ok()
            .map(|e| Timestamp(e.timestamp_ms))
            .filter(|t| *t >= Timestamp::MIN && *t < Timestamp::MAX)
            .unwrap_or(watermark);
        stream = stream.add_elements(vec![(line.to_string(), ts)]);
    }
    stream.advance_watermark_to_infinity()
}

/// Formats a team score with its window and pane.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct FormatTeamScoreFn;

impl DoFn for FormatTeamScoreFn {
    type In = (String, i64);
    type Out = String;

    fn process(&mut self, (team, total): (String, i64), ctx: &mut DoFnContext<'_, '_, String>) -> Result<(), BoxError> {
        let line = team_score_line(&team, total, &ctx.window())?;
        let pane = ctx.pane();
        ctx.emit(format!("{line}, timing: {}, index: {}", pane.timing.as_str(), pane.index));
        Ok(())
    }
}

runnel::register_dofn!(FormatTeamScoreFn, "leader_board.FormatTeamScore");

/// Formats a user score with its pane.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct FormatUserScoreFn;

impl DoFn for FormatUserScoreFn {
    type In = (String, i64);
    type Out = String;

    fn process(&mut self, (user, total): (String, i64), ctx: &mut DoFnContext<'_, '_, String>) -> Result<(), BoxError> {
        let pane = ctx.pane();
        ctx.emit(format!(
            "user: {user}, total_score: {total}, timing: {}, index: {}",
            pane.timing.as_str(),
            pane.index
        ));
        Ok(())
    }
}

runnel::register_dofn!(FormatUserScoreFn, "leader_board.FormatUserScore");

fn main() -> ExitCode {
    runnel_examples::run_main(|| {
        let args = Args::parse();
        let text =
            std::fs::read(&args.input).with_context(|| format!("cannot read the replay file '{}'", args.input))?;
        let text = String::from_utf8(text).map_err(|e| {
            let line = 1 + e.as_bytes()[..e.utf8_error().valid_up_to()].iter().filter(|b| **b == b'\n').count();
            anyhow::anyhow!("invalid UTF-8 in {} at line {line}", args.input)
        })?;
        let p = Pipeline::new(args.pipeline);
        let events = p
            .apply("ReadReplay", replay_stream(&text))
            .apply("ParseGameEvent", ParDo::registered(ParseGameEventFn))
            .apply("AddEventTimestamps", ParDo::registered(AddEventTimestampsFn));

        let team = events
            .apply(
                "LeaderboardTeamFixedWindows",
                WindowInto::new(FixedWindows::of(args.team_window_duration * MS_PER_MINUTE))
                    .triggering(
                        AfterWatermark::past_end_of_window()
                            .with_early_firings(
                                AfterProcessingTime::past_first_element_in_pane()
                                    .plus_delay_of(args.early_period * MS_PER_MINUTE),
                            )
                            .with_late_firings(AfterCount::of(1)),
                    )
                    .with_allowed_lateness(args.allowed_lateness * MS_PER_MINUTE)
                    .accumulating_fired_panes(),
            )
            .apply("ExtractTeamScore", ExtractAndSumScore::per_team())
            .apply("FormatTeamScores", ParDo::registered(FormatTeamScoreFn));

        let users = events
            .apply(
                "LeaderboardUserGlobalWindow",
                WindowInto::new(GlobalWindows::of())
                    .triggering(Triggers::repeatedly(
                        AfterProcessingTime::past_first_element_in_pane()
                            .plus_delay_of(args.user_period * MS_PER_MINUTE),
                    ))
                    .accumulating_fired_panes(),
            )
            .apply("ExtractUserScore", ExtractAndSumScore::per_user())
            .apply("FormatUserScores", ParDo::registered(FormatUserScoreFn));

        // The two streams are windowed differently; writing needs one windowing.
        let team = team.apply("TeamLinesGlobal", WindowInto::new(GlobalWindows::of()));
        let users = users.apply("UserLinesGlobal", WindowInto::new(GlobalWindows::of()));
        p.apply_to("AllScores", vec![team, users], Flatten)
            .apply("WriteScores", WriteToText::new(args.output).with_num_shards(args.num_shards.unwrap_or(0)));
        let result = p.run()?;
        runnel_examples::print_counters(&result, &[NUM_PARSE_ERRORS, "dropped_due_to_lateness"]);
        Ok(())
    })
}
