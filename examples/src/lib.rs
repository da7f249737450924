//! Shared helpers of the example programs.
//!
//! - [`run_main`]: runs a program's body: installs logging (`--log-level`, `RUST_LOG`), asks for progress and the
//!   end-of-job summary on stderr, and turns an error into one `error: …` line on stderr and a non-zero exit.
//! - The mobile-gaming examples' input: [`parse_game_event`] parses one CSV line ([`parse_csv_line`], RFC 4180
//!   quoting) into a [`GameEvent`]; [`ParseGameEventFn`] does it in a pipeline, counting the lines it skips in the
//!   counter [`NUM_PARSE_ERRORS`]; [`AddEventTimestampsFn`] stamps events with their event time;
//!   [`ExtractAndSumScore`] sums the scores per user or per team (per window).
//! - Time in UTC without a calendar crate: [`format_utc_millis`] (`YYYY-MM-DD HH:MM:SS.mmm`) and
//!   [`parse_utc_minute`] (`yyyy-MM-dd-HH-mm`, the gaming examples' `--start-min`/`--stop-min`).
#![warn(missing_docs)]

/// The example programs allocate with mimalloc: a pipeline moves many small values (a `String` per word in
/// wordcount) between threads, where the system allocator spends a good part of the time.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::fmt;
use std::process::ExitCode;

use runnel::combine::Sum;
use runnel::{BoxError, DoFn, DoFnContext, PCollection, PTransform, ParDo, Timestamp, Window};
use serde::{Deserialize, Serialize};

// ---------------------------------------------------------------------------------------------------------------------
// Running a program
// ---------------------------------------------------------------------------------------------------------------------

/// The flags every text-in, text-out example takes: input pattern, output prefix, shard count,
/// and the pipeline options.
#[derive(Debug, clap::Args)]
pub struct TextJobArgs {
    /// Input files: a path or a glob such as 'data/*.txt'.
    #[arg(long, value_name = "PATTERN")]
    pub input: String,
    /// Output prefix: writes PREFIX-SSSSS-of-NNNNN.
    #[arg(long, value_name = "PREFIX", value_parser = output_prefix)]
    pub output: String,
    /// Number of output shards (default: the runner chooses).
    #[arg(long, value_name = "N")]
    pub num_shards: Option<usize>,
    /// Runner and runner flags.
    #[command(flatten)]
    pub pipeline: runnel::PipelineOptions,
}

/// Parses an `--output` prefix, refusing one that cannot name shards (empty, or naming a directory such as `out/`)
/// before anything is built or run; see [`runnel_io::files::check_output_prefix`]. For clap's `value_parser`.
///
/// # Errors
///
/// The [`runnel_io::files::FileError`] saying what is wrong with the prefix.
pub fn output_prefix(prefix: &str) -> Result<String, runnel_io::files::FileError> {
    runnel_io::files::check_output_prefix(prefix)?;
    Ok(prefix.to_owned())
}

/// Runs `body`, the whole of an example program, as a program's entry should:
///
/// - installs a `tracing` subscriber writing to stderr, filtered by `--log-level=FILTER` if the
///   command line has it, else by `RUST_LOG`, else `warn` (so the SDK's warnings, such as unsafe
///   triggers, show); see [`install_logging`];
/// - asks the SDK to report jobs on stderr ([`runnel::progress::report_to_stderr`]): progress on a
///   terminal and a summary of counters and distributions when a job ends (`--progress=off`:
///   neither);
/// - on success exits 0; on error prints one line `error: MESSAGE`, where MESSAGE is the error with
///   its chain of causes (see [`error_message`]), and exits 1.
///
/// ```no_run
/// fn main() -> std::process::ExitCode {
///     runnel_examples::run_main(|| {
///         // parse the arguments, build the pipeline, run it…
///         Ok(())
///     })
/// }
/// ```
pub fn run_main(body: impl FnOnce() -> anyhow::Result<()>) -> ExitCode {
    install_logging(log_filter_arg(std::env::args()).as_deref());
    runnel::progress::report_to_stderr();
    match body() {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {}", error_message(&error));
            ExitCode::FAILURE
        }
    }
}

/// The value of `--log-level=FILTER` or `--log-level FILTER` among `args`, if any (the pipeline
/// options declare the flag, so clap accepts it and `--help` lists it).
pub fn log_filter_arg(args: impl IntoIterator<Item = String>) -> Option<String> {
    let mut args = args.into_iter();
    let mut found = None;
    while let Some(arg) = args.next() {
        if arg == "--" {
            break;
        }
        if let Some(value) = arg.strip_prefix("--log-level=") {
            found = Some(value.to_owned());
        } else if arg == "--log-level" {
            found = args.next();
        }
    }
    found
}

/// Installs the program's `tracing` subscriber: formatted events on stderr (colours only on a
/// terminal), filtered by `filter` (`--log-level`), else `RUST_LOG`, else `warn`. A filter that
/// does not parse is reported on stderr and `warn` used instead. Does nothing if the process
/// already has a subscriber.
pub fn install_logging(filter: Option<&str>) {
    use std::io::IsTerminal;
    use tracing_subscriber::EnvFilter;
    let requested =
        filter.map(str::to_owned).or_else(|| std::env::var("RUST_LOG").ok()).filter(|f| !f.trim().is_empty());
    let filter = match requested.as_deref().map(EnvFilter::try_new) {
        None => EnvFilter::new("warn"),
        Some(Ok(filter)) => filter,
        Some(Err(e)) => {
            eprintln!("warning: ignoring the log filter {:?} ({e}); logging warnings", requested.unwrap_or_default());
            EnvFilter::new("warn")
        }
    };
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(true)
        .without_time()
        .try_init();
}

/// Prints the named counters of a finished job to standard error, one `name: value` line each;
/// nothing when the job did not run (`--explain`, `--dump-graph`).
pub fn print_counters(result: &runnel::PipelineResult, names: &[&str]) {
    if result.state() == runnel::JobState::NotRun {
        return;
    }
    for name in names {
        eprintln!("{name}: {}", result.counter(name));
    }
}

/// The error and its causes on one line, `outer: inner: innermost`. A cause whose text the message already holds
/// (errors that repeat their source's text in their own) is not repeated, and line breaks become spaces.
pub fn error_message(error: &anyhow::Error) -> String {
    let mut message = String::new();
    for cause in error.chain() {
        let text = cause.to_string().split_whitespace().collect::<Vec<_>>().join(" ");
        if text.is_empty() || message.contains(&text) {
            continue;
        }
        if !message.is_empty() {
            message.push_str(": ");
        }
        message.push_str(&text);
    }
    message
}

// ---------------------------------------------------------------------------------------------------------------------
// Gaming events
// ---------------------------------------------------------------------------------------------------------------------

/// The counter of input lines the gaming examples skip because they cannot be parsed.
pub const NUM_PARSE_ERRORS: &str = "num_parse_errors";

/// One event of the mobile game: a user of a team scored points at a time.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct GameEvent {
    /// The user.
    pub user: String,
    /// The user's team.
    pub team: String,
    /// The points scored.
    pub score: i64,
    /// When, in milliseconds since the Unix epoch.
    pub timestamp_ms: i64,
}

/// Why a line is not a game event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ParseError {
    /// A quoted field has no closing quote.
    UnterminatedQuote,
    /// A closing quote is followed by something other than a comma or the end of the line.
    TextAfterQuote,
    /// Fewer than the four fields `user,team,score,timestamp_ms`.
    TooFewFields {
        /// How many fields the line has.
        found: usize,
    },
    /// The score or the timestamp is not an integer.
    NotAnInteger {
        /// `score` or `timestamp_ms`.
        field: &'static str,
        /// The field as found.
        value: String,
    },
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParseError::UnterminatedQuote => write!(f, "a quoted field has no closing quote"),
            ParseError::TextAfterQuote => write!(f, "a closing quote is followed by text instead of a comma"),
            ParseError::TooFewFields { found } => {
                write!(f, "expected at least 4 fields (user,team,score,timestamp_ms) but found {found}")
            }
            ParseError::NotAnInteger { field, value } => write!(f, "{field} '{value}' is not an integer"),
        }
    }
}

impl std::error::Error for ParseError {}

/// Splits one CSV line into its fields, with RFC 4180 quoting: a field that starts with `"` is quoted, runs to the
/// next lone `"`, may contain commas, and writes a quote as `""`. A quote inside an unquoted field is kept as it is.
/// Fields are not trimmed. An empty line has one empty field.
///
/// ```
/// use runnel_examples::parse_csv_line;
/// assert_eq!(parse_csv_line(r#"a,"b,c","say ""hi""""#).unwrap(), ["a", "b,c", r#"say "hi""#]);
/// ```
///
/// # Errors
///
/// [`ParseError::UnterminatedQuote`], or [`ParseError::TextAfterQuote`] for `"a"b`.
pub fn parse_csv_line(line: &str) -> Result<Vec<String>, ParseError> {
    let mut fields = Vec::new();
    let mut chars = line.chars().peekable();
    loop {
        let mut field = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            loop {
                match chars.next() {
                    None => return Err(ParseError::UnterminatedQuote),
                    Some('"') if chars.peek() == Some(&'"') => {
                        chars.next();
                        field.push('"');
                    }
                    Some('"') => break,
                    Some(c) => field.push(c),
                }
            }
            fields.push(field);
            match chars.next() {
                None => return Ok(fields),
                Some(',') => {}
                Some(_) => return Err(ParseError::TextAfterQuote),
            }
        } else {
            loop {
                match chars.next() {
                    None => {
                        fields.push(field);
                        return Ok(fields);
                    }
                    Some(',') => break,
                    Some(c) => field.push(c),
                }
            }
            fields.push(field);
        }
    }
}

fn parse_integer(field: &'static str, value: &str) -> Result<i64, ParseError> {
    value.trim().parse().map_err(|_| ParseError::NotAnInteger { field, value: value.to_owned() })
}

/// Parses one input line of the gaming examples, `user,team,score,timestamp_ms[,readable_time…]` (CSV, see
/// [`parse_csv_line`]). Only the first four fields are used; score and timestamp_ms are integers (surrounding
/// spaces allowed), user and team are kept as they are.
///
/// ```
/// use runnel_examples::{parse_game_event, GameEvent};
/// let event = parse_game_event("user2_AsparagusPig,AsparagusPig,10,1445230923951,2015-11-02 09:09:28.224").unwrap();
/// assert_eq!(event.user, "user2_AsparagusPig");
/// assert_eq!((event.score, event.timestamp_ms), (10, 1445230923951));
/// ```
///
/// # Errors
///
/// A [`ParseError`] saying why the line is not an event.
pub fn parse_game_event(line: &str) -> Result<GameEvent, ParseError> {
    let mut fields = parse_csv_line(line)?;
    if fields.len() < 4 {
        return Err(ParseError::TooFewFields { found: fields.len() });
    }
    fields.truncate(4);
    let score = parse_integer("score", &fields[2])?;
    let timestamp_ms = parse_integer("timestamp_ms", &fields[3])?;
    fields.truncate(2);
    let team = fields.pop().unwrap_or_default();
    let user = fields.pop().unwrap_or_default();
    Ok(GameEvent { user, team, score, timestamp_ms })
}

/// Parses input lines into [`GameEvent`]s; a line that cannot be parsed is skipped and counted in
/// [`NUM_PARSE_ERRORS`]. Elements keep their timestamp.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct ParseGameEventFn;

impl DoFn for ParseGameEventFn {
    type In = String;
    type Out = GameEvent;

    fn process(&mut self, line: String, ctx: &mut DoFnContext<'_, '_, GameEvent>) -> Result<(), BoxError> {
        match parse_game_event(&line) {
            Ok(event) => ctx.emit(event),
            Err(_) => ctx.inc_counter(NUM_PARSE_ERRORS, 1),
        }
        Ok(())
    }
}

runnel::register_dofn!(ParseGameEventFn, "gaming.ParseGameEvent");

/// Which field of a [`GameEvent`] scores are summed by.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ScoreKey {
    /// Per user.
    User,
    /// Per team.
    Team,
}

/// `GameEvent` → `(user or team, score)`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct KeyScoreFn {
    /// The field to key by.
    pub key: ScoreKey,
}

impl DoFn for KeyScoreFn {
    type In = GameEvent;
    type Out = (String, i64);

    fn process(&mut self, event: GameEvent, ctx: &mut DoFnContext<'_, '_, (String, i64)>) -> Result<(), BoxError> {
        let key = match self.key {
            ScoreKey::User => event.user,
            ScoreKey::Team => event.team,
        };
        ctx.emit((key, event.score));
        Ok(())
    }
}

runnel::register_dofn!(KeyScoreFn, "gaming.KeyScore");

/// Sums the scores per user or per team (per window): `GameEvent` → `(key, total score)`. Beam's
/// `ExtractAndSumScore`.
#[derive(Clone, Copy, Debug)]
pub struct ExtractAndSumScore {
    key: ScoreKey,
}

impl ExtractAndSumScore {
    /// Sums per `key`.
    pub fn new(key: ScoreKey) -> Self {
        ExtractAndSumScore { key }
    }

    /// Sums per user.
    pub fn per_user() -> Self {
        Self::new(ScoreKey::User)
    }

    /// Sums per team.
    pub fn per_team() -> Self {
        Self::new(ScoreKey::Team)
    }
}

impl PTransform<PCollection<GameEvent>> for ExtractAndSumScore {
    type Output = PCollection<(String, i64)>;

    fn expand(self, events: PCollection<GameEvent>) -> PCollection<(String, i64)> {
        events
            .apply("KeyScore", ParDo::registered(KeyScoreFn { key: self.key }))
            .combine_per_key("SumScores", Sum::<i64>::new())
    }
}

/// Stamps each [`GameEvent`] with its `timestamp_ms` as event time (Beam's `WithTimestamps` on the event's
/// timestamp). A timestamp outside the range of event time (before [`Timestamp::MIN`] or after the end of the global
/// window) cannot be placed in any window: such an event is skipped and counted in [`NUM_PARSE_ERRORS`], never
/// silently dropped.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct AddEventTimestampsFn;

impl DoFn for AddEventTimestampsFn {
    type In = GameEvent;
    type Out = GameEvent;

    fn process(&mut self, event: GameEvent, ctx: &mut DoFnContext<'_, '_, GameEvent>) -> Result<(), BoxError> {
        let ts = event.timestamp_ms;
        if (Timestamp::MIN.millis()..=Timestamp::end_of_global_window().millis()).contains(&ts) {
            ctx.emit_at(event, Timestamp(ts));
        } else {
            ctx.inc_counter(NUM_PARSE_ERRORS, 1);
        }
        Ok(())
    }
}

runnel::register_dofn!(AddEventTimestampsFn, "gaming.AddEventTimestamps");

/// `team: TEAM, total_score: TOTAL, window_start: YYYY-MM-DD HH:MM:SS.000`, the team line of the
/// windowed gaming examples; an error in the global window.
pub fn team_score_line(team: &str, total: i64, window: &Window) -> Result<String, BoxError> {
    let start = window_start_ms(window).ok_or("team scores must be in fixed windows, not the global one")?;
    Ok(format!("team: {team}, total_score: {total}, window_start: {}", format_utc_millis(start)))
}

/// The start of an element's window in milliseconds since the epoch, or `None` in the global window.
pub fn window_start_ms(window: &Window) -> Option<i64> {
    window.as_interval().map(|w| w.start.millis())
}

// ---------------------------------------------------------------------------------------------------------------------
// Time in UTC
// ---------------------------------------------------------------------------------------------------------------------

const MS_PER_DAY: i64 = 86_400_000;

/// Days since 1970-01-01 of a date of the proleptic Gregorian calendar (H. Hinnant's `days_from_civil`).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (month + if month > 2 { -3 } else { 9 }) + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The date of a day counted from 1970-01-01 (H. Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

fn is_leap_year(year: i64) -> bool {
    year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if is_leap_year(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Formats milliseconds since the Unix epoch as `YYYY-MM-DD HH:MM:SS.mmm` in UTC, e.g.
/// `2015-11-02 09:09:28.224`: the gaming examples' `window_start` (their window starts end in `.000`).
///
/// ```
/// assert_eq!(runnel_examples::format_utc_millis(1446455368224), "2015-11-02 09:09:28.224");
/// ```
pub fn format_utc_millis(ms: i64) -> String {
    let days = ms.div_euclid(MS_PER_DAY);
    let in_day = ms.rem_euclid(MS_PER_DAY);
    let (year, month, day) = civil_from_days(days);
    let (hours, minutes) = (in_day / 3_600_000, in_day / 60_000 % 60);
    let (seconds, millis) = (in_day / 1000 % 60, in_day % 1000);
    format!("{year:04}-{month:02}-{day:02} {hours:02}:{minutes:02}:{seconds:02}.{millis:03}")
}

/// Parses a minute in UTC written `yyyy-MM-dd-HH-mm` (the gaming examples' `--start-min` and `--stop-min`, e.g.
/// `2015-11-02-09-00`) into milliseconds since the Unix epoch.
///
/// ```
/// assert_eq!(runnel_examples::parse_utc_minute("1970-01-02-00-01"), Ok(86_460_000));
/// ```
///
/// # Errors
///
/// A message naming the text when it is not such a minute (wrong shape, or a month, day, hour or minute out of
/// range).
pub fn parse_utc_minute(text: &str) -> Result<i64, String> {
    let invalid = || format!("invalid minute '{text}': expected yyyy-MM-dd-HH-mm in UTC, e.g. 2015-11-02-09-00");
    let parts: Vec<&str> = text.split('-').collect();
    let widths = [4, 2, 2, 2, 2];
    if parts.len() != widths.len()
        || parts.iter().zip(widths).any(|(p, w)| p.len() != w || !p.bytes().all(|b| b.is_ascii_digit()))
    {
        return Err(invalid());
    }
    let n: Vec<i64> = parts.iter().map(|p| p.parse().map_err(|_| invalid())).collect::<Result<_, _>>()?;
    let (year, month, day, hour, minute) = (n[0], n[1], n[2], n[3], n[4]);
    if !(1..=12).contains(&month) || !(1..=days_in_month(year, month)).contains(&day) || hour > 23 || minute > 59 {
        return Err(invalid());
    }
    Ok(days_from_civil(year, month, day) * MS_PER_DAY + hour * 3_600_000 + minute * 60_000)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(user: &str, team: &str, score: i64, timestamp_ms: i64) -> GameEvent {
        GameEvent { user: user.into(), team: team.into(), score, timestamp_ms }
    }

    #[test]
    fn parses_a_game_event() {
        assert_eq!(
            parse_game_event("user2_AsparagusPig,AsparagusPig,10,1445230923951,2015-11-02 09:09:28.224"),
            Ok(event("user2_AsparagusPig", "AsparagusPig", 10, 1445230923951))
        );
        assert_eq!(parse_game_event("u,t,-3,0"), Ok(event("u", "t", -3, 0)));
        assert_eq!(parse_game_event("u,t, 7 ,12\t"), Ok(event("u", "t", 7, 12)));
        assert_eq!(parse_game_event("u,t,7,12,a,b,c"), Ok(event("u", "t", 7, 12)));
        assert_eq!(parse_game_event(",,1,2"), Ok(event("", "", 1, 2)));
        assert_eq!(parse_game_event("ü ser,日本,1,2"), Ok(event("ü ser", "日本", 1, 2)));
    }

    #[test]
    fn parses_quoted_fields() {
        assert_eq!(
            parse_game_event(r#""Smith, Jo","Red ""A""",5,100,"x,y""#),
            Ok(event("Smith, Jo", r#"Red "A""#, 5, 100))
        );
        assert_eq!(parse_game_event(r#""u","t","5","100""#), Ok(event("u", "t", 5, 100)));
        assert_eq!(parse_game_event(r#""",t,5,100"#), Ok(event("", "t", 5, 100)));
    }

    #[test]
    fn rejects_lines_that_are_not_events() {
        assert_eq!(parse_game_event(""), Err(ParseError::TooFewFields { found: 1 }));
        assert_eq!(parse_game_event("u,t,5"), Err(ParseError::TooFewFields { found: 3 }));
        assert_eq!(parse_game_event(r#""u,t,5,100""#), Err(ParseError::TooFewFields { found: 1 }));
        assert_eq!(
            parse_game_event("u,t,ten,100"),
            Err(ParseError::NotAnInteger { field: "score", value: "ten".into() })
        );
        assert_eq!(
            parse_game_event("u,t,5,1.5"),
            Err(ParseError::NotAnInteger { field: "timestamp_ms", value: "1.5".into() })
        );
        assert!(matches!(parse_game_event("u,t,,100"), Err(ParseError::NotAnInteger { field: "score", .. })));
        assert!(matches!(
            parse_game_event("u,t,99999999999999999999,1"),
            Err(ParseError::NotAnInteger { field: "score", .. })
        ));
        assert_eq!(parse_game_event(r#""u,t,5,100"#), Err(ParseError::UnterminatedQuote));
        assert_eq!(parse_game_event(r#""u"x,t,5,100"#), Err(ParseError::TextAfterQuote));
        assert_eq!(
            parse_game_event("user,team,score,timestamp").unwrap_err().to_string(),
            "score 'score' is not an integer"
        );
    }

    #[test]
    fn splits_csv_lines() {
        assert_eq!(parse_csv_line("").unwrap(), [""]);
        assert_eq!(parse_csv_line(",").unwrap(), ["", ""]);
        assert_eq!(parse_csv_line("a,b,").unwrap(), ["a", "b", ""]);
        assert_eq!(parse_csv_line(r#"a"b,c"#).unwrap(), [r#"a"b"#, "c"]);
        assert_eq!(parse_csv_line(r#""""""#).unwrap(), [r#"""#]);
        assert_eq!(parse_csv_line(r#""a","#).unwrap(), ["a", ""]);
        assert_eq!(parse_csv_line(r#""a",""#), Err(ParseError::UnterminatedQuote));
        assert_eq!(parse_csv_line(r#"" spaced ", x "#).unwrap(), [" spaced ", " x "]);
    }

    #[test]
    fn formats_utc_times() {
        assert_eq!(format_utc_millis(0), "1970-01-01 00:00:00.000");
        assert_eq!(format_utc_millis(1446455368224), "2015-11-02 09:09:28.224");
        assert_eq!(format_utc_millis(1445230923951), "2015-10-19 05:02:03.951");
        assert_eq!(format_utc_millis(951_782_400_000), "2000-02-29 00:00:00.000");
        assert_eq!(format_utc_millis(-1), "1969-12-31 23:59:59.999");
        assert_eq!(format_utc_millis(253_402_300_799_999), "9999-12-31 23:59:59.999");
    }

    #[test]
    fn parses_utc_minutes() {
        assert_eq!(parse_utc_minute("1970-01-01-00-00"), Ok(0));
        assert_eq!(parse_utc_minute("2015-11-02-09-09"), Ok(1446455340000));
        assert_eq!(parse_utc_minute("2000-02-29-23-59"), Ok(951_868_740_000));
        assert_eq!(parse_utc_minute("1969-12-31-23-59"), Ok(-60_000));
        for bad in [
            "2015-11-02",
            "2015-11-02-09-9",
            "2015-13-01-00-00",
            "2015-02-29-00-00",
            "2015-11-02-24-00",
            "2015-11-02-09-60",
            "2015-11-0a-09-00",
            "+015-11-02-09-00",
            "2015-11-02-09-00-00",
        ] {
            let error = parse_utc_minute(bad).unwrap_err();
            assert!(error.contains(bad), "{error}");
        }
    }

    #[test]
    fn time_helpers_agree() {
        for ms in [-86_400_001i64, -1, 0, 59_999, 1446455340000, 4_102_444_800_000] {
            let minute = ms.div_euclid(60_000) * 60_000;
            let text = format_utc_millis(minute);
            let spec = format!("{}-{}-{}", &text[..10], &text[11..13], &text[14..16]);
            assert_eq!(parse_utc_minute(&spec), Ok(minute), "{text}");
        }
    }

    #[test]
    fn error_messages_hold_the_chain_once() {
        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "no such file");
        let error = anyhow::Error::new(io).context("cannot read input.txt");
        assert_eq!(error_message(&error), "cannot read input.txt: no such file");
        let error = anyhow::anyhow!("cannot open x: no such file").context("job failed");
        assert_eq!(error_message(&error), "job failed: cannot open x: no such file");
        #[derive(Debug)]
        struct Repeats(std::io::Error);
        impl fmt::Display for Repeats {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "cannot write out: {}", self.0)
            }
        }
        impl std::error::Error for Repeats {
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                Some(&self.0)
            }
        }
        let error = anyhow::Error::new(Repeats(std::io::Error::other("disk full")));
        assert_eq!(error_message(&error), "cannot write out: disk full");
        assert_eq!(error_message(&anyhow::anyhow!("two\nlines")), "two lines");
    }

    #[test]
    fn game_event_pipeline_counts_parse_errors() {
        use runnel::prelude::*;
        let p = Pipeline::new(PipelineOptions::default());
        let lines = p.apply(
            "Lines",
            Create::of(["a,red,5,1", "b,blue,3,2", "oops", "a,red,x,3", "a,red,2,4"].map(String::from).to_vec()),
        );
        let totals =
            lines.apply("Parse", ParDo::registered(ParseGameEventFn)).apply("Sum", ExtractAndSumScore::per_user());
        totals.apply("Check", PAssert::equal_in_any_order(vec![("a".to_string(), 7), ("b".to_string(), 3)]));
        let result = p.run().unwrap();
        assert_eq!(result.counter(NUM_PARSE_ERRORS), 2);
    }
}
