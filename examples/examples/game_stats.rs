//! game_stats: team scores without spammers, and how long users play, with session windows
//! (after Beam's GameStats, over batch input).
//!
//! ```text
//! cargo run --release --example game_stats -- --input='events/*.csv' --output=out/stats \
//!     [--fixed-window-duration=60] [--session-gap=5] [--user-activity-window=30]
//! ```
//!
//! Input lines are the gaming CSV of the other examples; unparsable lines are skipped and counted
//! in `num_parse_errors`. Events are stamped with their `timestamp_ms`.
//!
//! - **Spammers**: per fixed window of `--fixed-window-duration` minutes, a user whose total score
//!   is more than 2.5 times the mean of all users' totals in that window is a spammer there
//!   (counted in `num_spammers`). Team scores per window leave spammers' events out. Lines:
//!   `team: TEAM, total_score: TOTAL, window_start: YYYY-MM-DD HH:MM:SS.000`.
//! - **Sessions**: each user's events form sessions, closed by `--session-gap` minutes without
//!   events (session windows, which merge). A session's length is its window's length in whole
//!   minutes (last event + gap − first event). Sessions are grouped by the fixed window of
//!   `--user-activity-window` minutes in which they end, and averaged. Lines:
//!   `mean_session_minutes: MEAN, sessions: N, window_start: YYYY-MM-DD HH:MM:SS.000` (MEAN with
//!   two decimals).

use std::collections::HashMap;
use std::process::ExitCode;

use clap::Parser;
use runnel::combine::Mean;
use runnel::prelude::*;
use runnel_examples::{
    format_utc_millis, window_start_ms, AddEventTimestampsFn, ExtractAndSumScore, GameEvent, ParseGameEventFn,
    NUM_PARSE_ERRORS,
};
use runnel_io::text::{ReadFromText, WriteToText};

const MS_PER_MINUTE: i64 = 60_000;
/// A user scoring more than this many times the mean is a spammer (Beam's SCORE_WEIGHT).
const SCORE_WEIGHT: f64 = 2.5;

/// Team scores without spammers, and mean session lengths.
#[derive(Debug, Parser)]
#[command(name = "game_stats", about = "Team scores without spammers, and mean session lengths (Beam's GameStats).")]
struct Args {
    #[command(flatten)]
    job: runnel_examples::TextJobArgs,
    /// Fixed windows for team scores and spammer detection, in minutes.
    #[arg(long, value_name = "MINUTES", default_value_t = 60, value_parser = clap::value_parser!(i64).range(1..))]
    fixed_window_duration: i64,
    /// Inactivity that closes a user's session, in minutes.
    #[arg(long, value_name = "MINUTES", default_value_t = 5, value_parser = clap::value_parser!(i64).range(1..))]
    session_gap: i64,
    /// Fixed windows over which session lengths are averaged, in minutes.
    #[arg(long, value_name = "MINUTES", default_value_t = 30, value_parser = clap::value_parser!(i64).range(1..))]
    user_activity_window: i64,
}

fn window_start(ctx: &DoFnContext<'_, '_, String>) -> Result<String, BoxError> {
    let start = window_start_ms(&ctx.window()).ok_or("expected an interval window")?;
    Ok(format_utc_millis(start))
}

fn main() -> ExitCode {
    runnel_examples::run_main(|| {
        let args = Args::parse();
        let p = Pipeline::new(args.job.pipeline);
        let events: PCollection<GameEvent> = p
            .apply("ReadInputText", ReadFromText::new(args.job.input))
            .apply("ParseGameEvent", ParDo::registered(ParseGameEventFn))
            .apply("AddEventTimestamps", ParDo::registered(AddEventTimestampsFn));

        // Spammers per fixed window: totals above SCORE_WEIGHT × the mean total.
        let windowed =
            events.apply("FixedWindows", WindowInto::new(FixedWindows::of(args.fixed_window_duration * MS_PER_MINUTE)));
        let user_totals = windowed.apply("SumUserScores", ExtractAndSumScore::per_user());
        let mean_total = user_totals
            .map("Totals", |(_, total): (String, i64)| total as f64)
            .apply("MeanTotal", Combine::globally(Mean::<f64>::new()));
        let mean_view = View::as_singleton(&mean_total);
        let mean_for_check = mean_view.clone();
        let spammers = user_totals.apply(
            "FindSpammers",
            ParDo::from_fn(move |(user, total): (String, i64), ctx: &mut DoFnContext<'_, '_, (String, ())>| {
                let mean = *ctx.side_input(&mean_for_check)?;
                if total as f64 > mean * SCORE_WEIGHT {
                    ctx.inc_counter("num_spammers", 1);
                    ctx.emit((user, ()));
                }
                Ok(())
            })
            .with_side_input(&mean_view),
        );
        let spammer_view = View::as_map(&spammers);
        let spammer_check = spammer_view.clone();
        let team_lines = windowed
            .apply(
                "FilterOutSpammers",
                ParDo::from_fn(move |event: GameEvent, ctx: &mut DoFnContext<'_, '_, GameEvent>| {
                    let spammers: &HashMap<String, ()> = ctx.side_input(&spammer_check)?;
                    if !spammers.contains_key(&event.user) {
                        ctx.emit(event);
                    }
                    Ok(())
                })
                .with_side_input(&spammer_view),
            )
            .apply("SumTeamScores", ExtractAndSumScore::per_team())
            .apply(
                "FormatTeamScores",
                ParDo::from_fn(|(team, total): (String, i64), ctx: &mut DoFnContext<'_, '_, String>| {
                    let start = window_start(ctx)?;
                    ctx.emit(format!("team: {team}, total_score: {total}, window_start: {start}"));
                    Ok(())
                }),
            )
            .apply("TeamLinesGlobal", WindowInto::new(GlobalWindows::of()));

        // Sessions per user, their lengths averaged per activity window.
        let session_lines = events
            .map("KeyByUser", |e: GameEvent| (e.user, ()))
            .apply("Sessions", WindowInto::new(Sessions::with_gap(args.session_gap * MS_PER_MINUTE)))
            .apply("SessionEvents", CountPerElementOfKey)
            .apply(
                "SessionMinutes",
                ParDo::from_fn(|_: (String, u64), ctx: &mut DoFnContext<'_, '_, i64>| {
                    let w = ctx.window();
                    let w = w.as_interval().ok_or("expected a session window")?;
                    ctx.emit((w.end.millis() - w.start.millis()) / MS_PER_MINUTE);
                    Ok(())
                }),
            )
            .apply("ActivityWindows", WindowInto::new(FixedWindows::of(args.user_activity_window * MS_PER_MINUTE)))
            .apply("MeanAndCount", Combine::globally(MeanAndCount))
            .apply(
                "FormatSessions",
                ParDo::from_fn(|(sum, n): (i64, u64), ctx: &mut DoFnContext<'_, '_, String>| {
                    let start = window_start(ctx)?;
                    let mean = sum as f64 / n.max(1) as f64;
                    ctx.emit(format!("mean_session_minutes: {mean:.2}, sessions: {n}, window_start: {start}"));
                    Ok(())
                }),
            )
            .apply("SessionLinesGlobal", WindowInto::new(GlobalWindows::of()));

        p.apply_to("AllLines", vec![team_lines, session_lines], Flatten)
            .apply("WriteStats", WriteToText::new(args.job.output).with_num_shards(args.job.num_shards.unwrap_or(0)));
        let result = p.run()?;
        runnel_examples::print_counters(&result, &[NUM_PARSE_ERRORS, "num_spammers"]);
        Ok(())
    })
}

/// Counts each user's events per session window: `(user, ())` → `(user, count)`.
struct CountPerElementOfKey;

impl PTransform<PCollection<(String, ())>> for CountPerElementOfKey {
    type Output = PCollection<(String, u64)>;
    fn expand(self, input: PCollection<(String, ())>) -> Self::Output {
        input.combine_per_key("Count", runnel::combine::Count::<()>::new())
    }
}

/// Sum and count of session lengths, for the mean and the number of sessions.
#[derive(Clone)]
struct MeanAndCount;

impl CombineFn for MeanAndCount {
    type In = i64;
    type Acc = (i64, u64);
    type Out = (i64, u64);
    fn create_accumulator(&self) -> (i64, u64) {
        (0, 0)
    }
    fn add_input(&self, acc: &mut (i64, u64), x: i64) {
        acc.0 += x;
        acc.1 += 1;
    }
    fn merge_accumulators(&self, acc: &mut (i64, u64), o: (i64, u64)) {
        acc.0 += o.0;
        acc.1 += o.1;
    }
    fn extract_output(&self, acc: (i64, u64)) -> (i64, u64) {
        acc
    }
}
