//! Assertions that run inside a pipeline, on every runner (Beam's `PAssert`).
//!
//! An assertion is a transform: it checks the contents of a PCollection when the pipeline runs, and a failed
//! assertion fails the job with a message naming the assertion's transform. Two ways to write one:
//!
//! ```
//! use runnel::prelude::*;
//! use runnel::testing::ExpectedPane;
//!
//! let p = Pipeline::new(PipelineOptions::default());
//! let scores = p
//!     .apply("Scores", Create::timestamped(vec![(("a".to_string(), 1), Timestamp(1)), (("a".to_string(), 2), Timestamp(12))]))
//!     .apply("Window", WindowInto::new(FixedWindows::of(10)))
//!     .combine_per_key("Sum", combine::Sum::<i64>::new());
//! // Bound to the PCollection, applied under a generated name (PAssert$0, PAssert$1, …):
//! PAssert::that(&scores).in_on_time_pane(Window::interval(0, 10)).equal_in_any_order(vec![("a".to_string(), 1)]);
//! PAssert::that(&scores).in_late_panes(Window::interval(0, 10)).is_empty();
//! PAssert::that(&scores).panes_in_window(
//!     Window::interval(10, 20),
//!     vec![ExpectedPane::on_time(0, vec![("a".to_string(), 2)]).last()],
//! );
//! // Or as a transform applied under a name of your choice:
//! scores.apply("AllScores", PAssert::equal_in_any_order(vec![("a".to_string(), 1), ("a".to_string(), 2)]));
//! scores.apply("SecondWindow", PAssert::in_window(Window::interval(10, 20)).equal_in_any_order(vec![("a".to_string(), 2)]));
//! p.run().unwrap();
//! ```
//!
//! # What an assertion sees
//!
//! Each element is *reified* where the assertion is applied: a ParDo records its value, timestamp, window, pane and
//! retraction flag ([`Observed`]), then the records are rewindowed into the global window and collected into one
//! list, which is checked. So the check sees every window and pane of the input, runs once even when the input is
//! empty, and works the same on every runner, in batch and in streaming.
//!
//! A [`Selection`] chooses the elements checked: all of them, those of one window, or those of one window's on-time,
//! early, late, non-late or final panes (`in_*` methods). Value assertions (`equal_in_any_order`, `satisfies`)
//! look at the values of the selected elements that are **not retractions**: in retracting mode a pane holds the
//! retraction of the previous value and the new value, and value assertions see the new values only, as in
//! accumulating mode. `is_empty` holds when no element at all is selected (retractions included). To check
//! retractions, pane metadata or timestamps exactly, use [`ExpectedPane::with_retractions`] in
//! [`PAssertThat::panes_in_window`], or [`PAssertThat::satisfies_elements`].

use crate::combine::ToList;
use crate::dofn::{DoFnContext, ParDo};
use crate::pipeline::{PCollection, PTransform};
use crate::transforms::Combine;
use crate::window::WindowInto;
use runnel_model::{PaneInfo, PaneTiming, Timestamp, Window, WindowFnSpec, WindowedValue};
use runnel_runner_core::Data;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::sync::Arc;

/// Entry point of the assertions; see the [module documentation](self).
pub struct PAssert;

/// One element of the asserted PCollection with its event-time metadata, as an assertion sees it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Observed<T> {
    /// The element.
    pub value: T,
    /// Its event timestamp.
    pub timestamp: Timestamp,
    /// Its window.
    pub window: Window,
    /// The pane that produced it.
    pub pane: PaneInfo,
    /// Whether it retracts an earlier value (retracting accumulation).
    pub retraction: bool,
}

/// Which elements an assertion checks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Selection {
    /// Every element, in every window and pane.
    All,
    /// The elements of one window, in any pane.
    InWindow(Window),
    /// The elements of a window's ON_TIME pane.
    OnTimePane(Window),
    /// The elements of a window's EARLY panes.
    EarlyPanes(Window),
    /// The elements of a window's LATE panes.
    LatePanes(Window),
    /// The elements of a window's EARLY and ON_TIME panes (Beam's `inCombinedNonLatePanes`).
    NonLatePanes(Window),
    /// The elements of a window's final pane (`is_last`).
    FinalPane(Window),
}

impl Selection {
    /// Whether the selection holds an element in `window` and `pane`.
    pub fn contains(&self, window: &Window, pane: &PaneInfo) -> bool {
        let timing = pane.timing;
        match self {
            Selection::All => true,
            Selection::InWindow(w) => w == window,
            Selection::OnTimePane(w) => w == window && timing == PaneTiming::OnTime,
            Selection::EarlyPanes(w) => w == window && timing == PaneTiming::Early,
            Selection::LatePanes(w) => w == window && timing == PaneTiming::Late,
            Selection::NonLatePanes(w) => w == window && matches!(timing, PaneTiming::Early | PaneTiming::OnTime),
            Selection::FinalPane(w) => w == window && pane.is_last,
        }
    }
}

impl fmt::Display for Selection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Selection::All => write!(f, "all elements"),
            Selection::InWindow(w) => write!(f, "window {}", WindowName(w)),
            Selection::OnTimePane(w) => write!(f, "the on-time pane of window {}", WindowName(w)),
            Selection::EarlyPanes(w) => write!(f, "the early panes of window {}", WindowName(w)),
            Selection::LatePanes(w) => write!(f, "the late panes of window {}", WindowName(w)),
            Selection::NonLatePanes(w) => write!(f, "the early and on-time panes of window {}", WindowName(w)),
            Selection::FinalPane(w) => write!(f, "the final pane of window {}", WindowName(w)),
        }
    }
}

/// A window as assertion messages show it: `[0ms, 10ms)` or `global`.
struct WindowName<'a>(&'a Window);

impl fmt::Display for WindowName<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Window::Global => write!(f, "global"),
            Window::Interval(w) => write!(f, "[{}, {})", w.start, w.end),
        }
    }
}

/// One pane that [`PAssertThat::panes_in_window`] expects: its timing, index, whether it is the last, the values
/// it holds (any order), and the values it retracts.
///
/// Also built from a tuple `(timing, index, is_last, values)`.
#[derive(Clone, Debug, PartialEq)]
pub struct ExpectedPane<T> {
    /// EARLY, ON_TIME or LATE.
    pub timing: PaneTiming,
    /// 0, 1, 2, … per key and window.
    pub index: i64,
    /// Whether it is the last pane of its key and window.
    pub is_last: bool,
    /// The values it holds that are not retractions, in any order.
    pub values: Vec<T>,
    /// The values it retracts (retracting accumulation), in any order.
    pub retractions: Vec<T>,
}

impl<T> ExpectedPane<T> {
    /// A pane that is not the last and retracts nothing.
    pub fn new(timing: PaneTiming, index: i64, values: Vec<T>) -> Self {
        ExpectedPane { timing, index, is_last: false, values, retractions: Vec::new() }
    }

    /// An EARLY pane.
    pub fn early(index: i64, values: Vec<T>) -> Self {
        Self::new(PaneTiming::Early, index, values)
    }

    /// The ON_TIME pane.
    pub fn on_time(index: i64, values: Vec<T>) -> Self {
        Self::new(PaneTiming::OnTime, index, values)
    }

    /// A LATE pane.
    pub fn late(index: i64, values: Vec<T>) -> Self {
        Self::new(PaneTiming::Late, index, values)
    }

    /// Marks the pane as the last of its key and window.
    pub fn last(mut self) -> Self {
        self.is_last = true;
        self
    }

    /// The values the pane retracts before its new values (retracting accumulation).
    pub fn with_retractions(mut self, retractions: Vec<T>) -> Self {
        self.retractions = retractions;
        self
    }
}

impl<T> From<(PaneTiming, i64, bool, Vec<T>)> for ExpectedPane<T> {
    fn from((timing, index, is_last, values): (PaneTiming, i64, bool, Vec<T>)) -> Self {
        ExpectedPane { timing, index, is_last, values, retractions: Vec::new() }
    }
}

type Check<T> = Arc<dyn Fn(&[Observed<T>]) -> Result<(), String> + Send + Sync>;

/// An assertion, ready to be applied to a PCollection of `T` under a name of your choice (it is a
/// [`PTransform`]). Made by [`PAssert`]'s and [`Selected`]'s constructors.
pub struct Assert<T> {
    check: Check<T>,
}

impl<T: Data> Assert<T> {
    /// An assertion running `check` on every element of the input with its metadata.
    pub fn on_elements(check: impl Fn(&[Observed<T>]) -> Result<(), String> + Send + Sync + 'static) -> Self {
        Assert { check: Arc::new(check) }
    }
}

/// The assertions on a [`Selection`], as transforms to apply under a name of your choice. Made by
/// [`PAssert::in_window`] and its siblings.
#[derive(Clone, Copy, Debug)]
pub struct Selected {
    selection: Selection,
}

impl Selected {
    /// The selected values are exactly `expected`, in any order (duplicates count).
    pub fn equal_in_any_order<T: Data>(self, expected: Vec<T>) -> Assert<T> {
        let selection = self.selection;
        let want = sorted_encodings(&expected);
        Assert::on_elements(move |all| {
            let actual = selected_values(all, selection);
            if sorted_encodings(&actual) == want {
                Ok(())
            } else {
                Err(format!(
                    "{selection}: expected (any order) [{}] but got [{}]",
                    sorted_debug(&expected),
                    sorted_debug(&actual)
                ))
            }
        })
    }

    /// No element is selected (retractions included).
    pub fn is_empty<T: Data>(self) -> Assert<T> {
        let selection = self.selection;
        Assert::on_elements(move |all| {
            let selected: Vec<&Observed<T>> = all.iter().filter(|o| selection.contains(&o.window, &o.pane)).collect();
            if selected.is_empty() {
                Ok(())
            } else {
                let values: Vec<String> =
                    selected
                        .iter()
                        .map(|o| {
                            if o.retraction {
                                format!("retraction of {:?}", o.value)
                            } else {
                                format!("{:?}", o.value)
                            }
                        })
                        .collect();
                Err(format!("{selection}: expected no elements but got {}: [{}]", values.len(), values.join(", ")))
            }
        })
    }

    /// `f` accepts the selected values.
    pub fn satisfies<T: Data>(self, f: impl Fn(&[T]) -> Result<(), String> + Send + Sync + 'static) -> Assert<T> {
        let selection = self.selection;
        Assert::on_elements(move |all| f(&selected_values(all, selection)).map_err(|e| format!("{selection}: {e}")))
    }

    /// `f` accepts the selected elements with their metadata (retractions included).
    pub fn satisfies_elements<T: Data>(
        self,
        f: impl Fn(&[Observed<T>]) -> Result<(), String> + Send + Sync + 'static,
    ) -> Assert<T> {
        let selection = self.selection;
        Assert::on_elements(move |all| {
            let selected: Vec<Observed<T>> =
                all.iter().filter(|o| selection.contains(&o.window, &o.pane)).cloned().collect();
            f(&selected).map_err(|e| format!("{selection}: {e}"))
        })
    }
}

impl PAssert {
    /// Assertions on `pc`, applied as soon as they are complete under a generated name (`PAssert$0`, `PAssert$1`,
    /// …; see [`PAssertThat::named`] to choose one).
    pub fn that<T: Data>(pc: &PCollection<T>) -> PAssertThat<T> {
        PAssertThat { pc: pc.clone(), selection: Selection::All, name: None }
    }

    /// The whole PCollection holds exactly `expected`, in any order (duplicates count).
    pub fn equal_in_any_order<T: Data>(expected: Vec<T>) -> Assert<T> {
        Selected { selection: Selection::All }.equal_in_any_order(expected)
    }

    /// The PCollection is empty.
    pub fn is_empty<T: Data>() -> Assert<T> {
        Selected { selection: Selection::All }.is_empty()
    }

    /// `f` accepts the whole contents.
    pub fn satisfies<T: Data>(f: impl Fn(&[T]) -> Result<(), String> + Send + Sync + 'static) -> Assert<T> {
        Selected { selection: Selection::All }.satisfies(f)
    }

    /// Assertions on the elements of `window`, in any pane.
    pub fn in_window(window: Window) -> Selected {
        Selected { selection: Selection::InWindow(window) }
    }

    /// Assertions on the ON_TIME pane of `window`.
    pub fn in_on_time_pane(window: Window) -> Selected {
        Selected { selection: Selection::OnTimePane(window) }
    }

    /// Assertions on the EARLY panes of `window`.
    pub fn in_early_panes(window: Window) -> Selected {
        Selected { selection: Selection::EarlyPanes(window) }
    }

    /// Assertions on the LATE panes of `window`.
    pub fn in_late_panes(window: Window) -> Selected {
        Selected { selection: Selection::LatePanes(window) }
    }

    /// Assertions on the EARLY and ON_TIME panes of `window`.
    pub fn in_non_late_panes(window: Window) -> Selected {
        Selected { selection: Selection::NonLatePanes(window) }
    }

    /// Assertions on the final pane of `window`.
    pub fn in_final_pane(window: Window) -> Selected {
        Selected { selection: Selection::FinalPane(window) }
    }

    /// Exactly these panes in `window`, as a transform to apply under a name of your choice; see
    /// [`PAssertThat::panes_in_window`].
    pub fn panes_in_window<T: Data, P: Into<ExpectedPane<T>>>(window: Window, expected: Vec<P>) -> Assert<T> {
        let expected: Vec<ExpectedPane<T>> = expected.into_iter().map(Into::into).collect();
        Assert::on_elements(move |all| check_panes(all, &window, &expected))
    }
}

/// Assertions bound to a PCollection: choose the elements with an `in_*` method (default: all), then state what
/// they hold; the assertion is applied at once. Made by [`PAssert::that`].
#[must_use = "an assertion is applied only by a method such as equal_in_any_order or is_empty"]
pub struct PAssertThat<T> {
    pc: PCollection<T>,
    selection: Selection,
    name: Option<String>,
}

impl<T: Data> PAssertThat<T> {
    /// Applies the assertion under `name` instead of a generated one.
    pub fn named(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    fn select(mut self, selection: Selection) -> Self {
        self.selection = selection;
        self
    }

    /// Checks the elements of `window`, in any pane.
    pub fn in_window(self, window: Window) -> Self {
        self.select(Selection::InWindow(window))
    }

    /// Checks the ON_TIME pane of `window`.
    pub fn in_on_time_pane(self, window: Window) -> Self {
        self.select(Selection::OnTimePane(window))
    }

    /// Checks the EARLY panes of `window`.
    pub fn in_early_panes(self, window: Window) -> Self {
        self.select(Selection::EarlyPanes(window))
    }

    /// Checks the LATE panes of `window`.
    pub fn in_late_panes(self, window: Window) -> Self {
        self.select(Selection::LatePanes(window))
    }

    /// Checks the EARLY and ON_TIME panes of `window` (Beam's `inCombinedNonLatePanes`).
    pub fn in_non_late_panes(self, window: Window) -> Self {
        self.select(Selection::NonLatePanes(window))
    }

    /// Checks the final pane (`is_last`) of `window`.
    pub fn in_final_pane(self, window: Window) -> Self {
        self.select(Selection::FinalPane(window))
    }

    /// Checks the elements of the global window.
    pub fn in_global_window(self) -> Self {
        self.select(Selection::InWindow(Window::Global))
    }

    fn apply(self, assert: Assert<T>) -> PCollection<()> {
        let name = self.name.unwrap_or_else(|| generated_name(&self.pc));
        self.pc.apply(&name, assert)
    }

    fn selected(&self) -> Selected {
        Selected { selection: self.selection }
    }

    /// The selected values are exactly `expected`, in any order (duplicates count).
    pub fn equal_in_any_order(self, expected: Vec<T>) -> PCollection<()> {
        let assert = self.selected().equal_in_any_order(expected);
        self.apply(assert)
    }

    /// No element is selected (retractions included).
    pub fn is_empty(self) -> PCollection<()> {
        let assert = self.selected().is_empty();
        self.apply(assert)
    }

    /// `f` accepts the selected values.
    pub fn satisfies(self, f: impl Fn(&[T]) -> Result<(), String> + Send + Sync + 'static) -> PCollection<()> {
        let assert = self.selected().satisfies(f);
        self.apply(assert)
    }

    /// `f` accepts the selected elements with their metadata (timestamps, windows, panes, retractions).
    pub fn satisfies_elements(
        self,
        f: impl Fn(&[Observed<T>]) -> Result<(), String> + Send + Sync + 'static,
    ) -> PCollection<()> {
        let assert = self.selected().satisfies_elements(f);
        self.apply(assert)
    }

    /// `window` holds exactly the `expected` panes (the selection is ignored).
    ///
    /// The elements of the window are grouped by pane (timing, index, is_last); the groups must be the expected
    /// panes, each with its values and retractions in any order. Every element must also carry consistent pane
    /// metadata: `is_first` exactly when the index is 0, a non-speculative index of −1 for EARLY panes and between
    /// 0 and the index otherwise. Panes of different keys with equal timing, index and `is_last` form one group, so
    /// list their values together, or filter to one key first.
    pub fn panes_in_window<P: Into<ExpectedPane<T>>>(self, window: Window, expected: Vec<P>) -> PCollection<()> {
        let assert = PAssert::panes_in_window(window, expected);
        self.apply(assert)
    }
}

/// `PAssert$N` for the first N that no transform of the pipeline uses yet, at any depth.
fn generated_name<T: Data>(pc: &PCollection<T>) -> String {
    let graph = pc.pipeline().graph();
    let taken = |name: &str| graph.transforms.keys().any(|t| t.split('/').any(|part| part == name));
    (0..).map(|n| format!("PAssert${n}")).find(|name| !taken(name)).expect("some name is free")
}

impl<T: Data> PTransform<PCollection<T>> for Assert<T> {
    type Output = PCollection<()>;
    fn expand(self, input: PCollection<T>) -> PCollection<()> {
        // Record each element's metadata, then check the whole contents at once, across windows and panes (as
        // Beam's PAssert does): otherwise each window would be checked on its own, and an empty input not at all.
        // The records are plain elements (never retractions themselves), so groupings treat them as any other.
        let reified = input.apply(
            "Reify",
            ParDo::from_fn(|value: T, ctx: &mut DoFnContext<'_, '_, Observed<T>>| {
                let (timestamp, window, pane) = (ctx.timestamp(), ctx.window(), ctx.pane());
                let observed = Observed { value, timestamp, window, pane, retraction: ctx.is_retraction() };
                ctx.emit_windowed(WindowedValue { value: observed, timestamp, window, pane, retraction: false });
                Ok(())
            }),
        );
        // Always rewindow: elements may lie in windows other than their PCollection's strategy assigns (a DoFn
        // may emit into any window), and the check must see them all at once.
        reified.pipeline().lock().mark_plain(reified.id());
        let reified = reified.apply("IntoGlobalWindow", WindowInto::new(WindowFnSpec::Global));
        let all = reified.apply("Collect", Combine::globally(ToList::new()));
        let check = self.check;
        all.apply(
            "Check",
            ParDo::from_fn(move |observed: Vec<Observed<T>>, ctx: &mut DoFnContext<'_, '_, ()>| {
                check(&observed).map_err(|e| format!("assertion failed in {}: {e}", ctx.transform_name()))?;
                ctx.emit(());
                Ok(())
            }),
        )
    }
}

/// The values of the selected elements that are not retractions.
fn selected_values<T: Clone>(all: &[Observed<T>], selection: Selection) -> Vec<T> {
    all.iter().filter(|o| !o.retraction && selection.contains(&o.window, &o.pane)).map(|o| o.value.clone()).collect()
}

fn sorted_encodings<T: Serialize>(xs: &[T]) -> Vec<Vec<u8>> {
    let mut v: Vec<Vec<u8>> = xs.iter().map(|x| bincode::serialize(x).unwrap_or_default()).collect();
    v.sort();
    v
}

fn sorted_debug<T: fmt::Debug>(xs: &[T]) -> String {
    let mut v: Vec<String> = xs.iter().map(|x| format!("{x:?}")).collect();
    v.sort();
    v.join(", ")
}

/// Orders panes by index, then timing, then `is_last`.
type PaneKey = (i64, PaneTiming, bool);

/// What one pane holds, as encodings (for comparison) and as text (for messages).
struct PaneContents {
    key: PaneKey,
    values: Vec<Vec<u8>>,
    retractions: Vec<Vec<u8>>,
    text: String,
}

/// Panes compare by key and encodings; the text is only for messages.
impl PartialEq for PaneContents {
    fn eq(&self, other: &Self) -> bool {
        (self.key, &self.values, &self.retractions) == (other.key, &other.values, &other.retractions)
    }
}

impl PaneContents {
    fn new<T: Serialize + fmt::Debug>(key: PaneKey, values: &[T], retractions: &[T]) -> Self {
        let (index, timing, is_last) = key;
        let mut text =
            format!("{} {index}{}: [{}]", timing.as_str(), if is_last { " (last)" } else { "" }, sorted_debug(values));
        if !retractions.is_empty() {
            text.push_str(&format!(" retracting [{}]", sorted_debug(retractions)));
        }
        PaneContents { key, values: sorted_encodings(values), retractions: sorted_encodings(retractions), text }
    }
}

fn check_panes<T: Data>(all: &[Observed<T>], window: &Window, expected: &[ExpectedPane<T>]) -> Result<(), String> {
    let in_window: Vec<&Observed<T>> = all.iter().filter(|o| o.window == *window).collect();
    for o in &in_window {
        let p = &o.pane;
        let consistent = p.is_first == (p.index == 0)
            && if p.timing == PaneTiming::Early {
                p.nonspeculative_index == -1
            } else {
                (0..=p.index).contains(&p.nonspeculative_index)
            };
        if !consistent {
            return Err(format!("window {}: {:?} has inconsistent pane metadata {p:?}", WindowName(window), o.value));
        }
    }
    let mut actual: std::collections::BTreeMap<PaneKey, (Vec<T>, Vec<T>)> = Default::default();
    for o in in_window {
        let entry = actual.entry((o.pane.index, o.pane.timing, o.pane.is_last)).or_default();
        if o.retraction { &mut entry.1 } else { &mut entry.0 }.push(o.value.clone());
    }
    let actual: Vec<PaneContents> = actual.iter().map(|(k, (v, r))| PaneContents::new(*k, v, r)).collect();
    let mut wanted: Vec<(PaneKey, &ExpectedPane<T>)> =
        expected.iter().map(|e| ((e.index, e.timing, e.is_last), e)).collect();
    wanted.sort_by_key(|(k, _)| *k);
    let wanted: Vec<PaneContents> =
        wanted.into_iter().map(|(k, e)| PaneContents::new(k, &e.values, &e.retractions)).collect();
    if actual == wanted {
        Ok(())
    } else {
        let list = |panes: &[PaneContents]| {
            if panes.is_empty() {
                "no panes".to_string()
            } else {
                panes.iter().map(|p| p.text.as_str()).collect::<Vec<_>>().join("; ")
            }
        };
        Err(format!("window {}: expected panes {} but got {}", WindowName(window), list(&wanted), list(&actual)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::combine::Sum;
    use crate::prelude::*;

    fn kv(k: &str, v: i64) -> (String, i64) {
        (k.to_string(), v)
    }

    /// Scores of two keys at timestamps 1, 5, 12, 25 and 29 in fixed windows of 10: sums per key and window.
    fn windowed_sums(p: &Pipeline) -> PCollection<(String, i64)> {
        p.apply(
            "Scores",
            Create::timestamped(vec![
                (kv("a", 1), Timestamp(1)),
                (kv("a", 2), Timestamp(5)),
                (kv("b", 4), Timestamp(5)),
                (kv("a", 8), Timestamp(12)),
                (kv("b", 16), Timestamp(25)),
                (kv("b", 32), Timestamp(29)),
            ]),
        )
        .apply("Window", WindowInto::new(FixedWindows::of(10)))
        .combine_per_key("Sum", Sum::<i64>::new())
    }

    fn w(start: i64, end: i64) -> Window {
        Window::interval(start, end)
    }

    fn run_err(p: &Pipeline) -> String {
        match p.run() {
            Ok(_) => panic!("the pipeline should fail"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn per_window_and_per_pane_assertions_hold_in_batch() {
        let p = Pipeline::new(PipelineOptions::default());
        let sums = windowed_sums(&p);
        PAssert::that(&sums).equal_in_any_order(vec![kv("a", 3), kv("b", 4), kv("a", 8), kv("b", 48)]);
        PAssert::that(&sums).in_window(w(0, 10)).equal_in_any_order(vec![kv("a", 3), kv("b", 4)]);
        PAssert::that(&sums).in_on_time_pane(w(0, 10)).equal_in_any_order(vec![kv("b", 4), kv("a", 3)]);
        PAssert::that(&sums).in_final_pane(w(10, 20)).equal_in_any_order(vec![kv("a", 8)]);
        PAssert::that(&sums).in_non_late_panes(w(20, 30)).equal_in_any_order(vec![kv("b", 48)]);
        // Batch is streaming with a perfect watermark: no early or late panes, and nothing in other windows.
        PAssert::that(&sums).in_early_panes(w(0, 10)).is_empty();
        PAssert::that(&sums).in_late_panes(w(20, 30)).is_empty();
        PAssert::that(&sums).in_window(w(30, 40)).is_empty();
        PAssert::that(&sums).in_global_window().is_empty();
        PAssert::that(&sums).in_window(w(0, 10)).satisfies(|xs| {
            (xs.iter().map(|(_, v)| v).sum::<i64>() == 7).then_some(()).ok_or_else(|| format!("sum of {xs:?}"))
        });
        PAssert::that(&sums)
            .panes_in_window(w(0, 10), vec![ExpectedPane::on_time(0, vec![kv("a", 3), kv("b", 4)]).last()]);
        PAssert::that(&sums).panes_in_window(w(20, 30), vec![(PaneTiming::OnTime, 0, true, vec![kv("b", 48)])]);
        PAssert::that(&sums).panes_in_window::<ExpectedPane<_>>(w(30, 40), vec![]);
        // The output of a grouping is stamped with the end of its window (the default timestamp combiner).
        PAssert::that(&sums).satisfies_elements(|xs| {
            for o in xs {
                let end = o.window.max_timestamp();
                if o.timestamp != end || o.pane != PaneInfo::ON_TIME_AND_ONLY_FIRING || o.retraction {
                    return Err(format!("{o:?}"));
                }
            }
            Ok(())
        });
        p.run().unwrap();
    }

    #[test]
    fn assertions_as_named_transforms() {
        let p = Pipeline::new(PipelineOptions::default());
        let sums = windowed_sums(&p);
        sums.apply("All", PAssert::equal_in_any_order(vec![kv("a", 3), kv("b", 4), kv("a", 8), kv("b", 48)]));
        sums.apply("First", PAssert::in_window(w(0, 10)).equal_in_any_order(vec![kv("a", 3), kv("b", 4)]));
        sums.apply("OnTime", PAssert::in_on_time_pane(w(10, 20)).equal_in_any_order(vec![kv("a", 8)]));
        sums.apply("Early", PAssert::in_early_panes(w(10, 20)).is_empty::<(String, i64)>());
        sums.apply("Late", PAssert::in_late_panes(w(10, 20)).is_empty::<(String, i64)>());
        sums.apply(
            "Final",
            PAssert::in_final_pane(w(20, 30))
                .satisfies(|xs: &[(String, i64)]| (xs.len() == 1).then_some(()).ok_or_else(|| format!("{xs:?}"))),
        );
        sums.apply("NonLate", PAssert::in_non_late_panes(w(20, 30)).equal_in_any_order(vec![kv("b", 48)]));
        sums.apply(
            "Panes",
            PAssert::panes_in_window(w(10, 20), vec![ExpectedPane::on_time(0, vec![kv("a", 8)]).last()]),
        );
        sums.apply(
            "Elements",
            Assert::on_elements(|xs: &[Observed<(String, i64)>]| {
                (xs.len() == 4).then_some(()).ok_or_else(|| format!("{xs:?}"))
            }),
        );
        let graph = p.graph();
        assert!(graph.transforms.contains_key("OnTime/Reify") && graph.transforms.contains_key("OnTime/Check"));
        p.run().unwrap();
    }

    #[test]
    fn generated_names_are_unique_and_deterministic() {
        let names = || {
            let p = Pipeline::new(PipelineOptions::default());
            let sums = windowed_sums(&p);
            PAssert::that(&sums).in_window(w(0, 10)).is_empty();
            PAssert::that(&sums).is_empty();
            PAssert::that(&sums).named("Mine").is_empty();
            let mut roots = p.graph().root_transforms;
            roots.retain(|r| r.starts_with("PAssert") || r == "Mine");
            (roots, p.construction_errors())
        };
        let (roots, errors) = names();
        assert_eq!(roots, ["PAssert$0", "PAssert$1", "Mine"]);
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(names(), (roots, errors));
    }

    #[test]
    fn the_legacy_api_still_checks_whole_contents() {
        let p = Pipeline::new(PipelineOptions::default());
        let sums = windowed_sums(&p);
        sums.apply("Check", PAssert::equal_in_any_order(vec![kv("b", 48), kv("a", 3), kv("b", 4), kv("a", 8)]));
        sums.apply(
            "Sizes",
            PAssert::satisfies(|xs: &[(String, i64)]| {
                (xs.len() == 4).then_some(()).ok_or_else(|| "four sums".to_string())
            }),
        );
        let none = p.apply("None", Create::<i64>::of(vec![]));
        none.apply("Empty", PAssert::is_empty());
        none.apply("NoValues", PAssert::equal_in_any_order(vec![]));
        p.run().unwrap();
    }

    #[test]
    fn elements_that_were_never_grouped_have_no_timing() {
        let p = Pipeline::new(PipelineOptions::default());
        let xs = p
            .apply("Xs", Create::timestamped(vec![(1i64, Timestamp(1)), (2, Timestamp(12)), (3, Timestamp(13))]))
            .apply("Window", WindowInto::new(FixedWindows::of(10)));
        PAssert::that(&xs).in_window(w(10, 20)).equal_in_any_order(vec![3, 2]);
        // Never grouped: one pane of UNKNOWN timing, which is also the final pane.
        PAssert::that(&xs).in_on_time_pane(w(10, 20)).is_empty();
        PAssert::that(&xs).in_final_pane(w(10, 20)).equal_in_any_order(vec![2, 3]);
        PAssert::that(&xs).satisfies_elements(|os| {
            let ok = os
                .iter()
                .all(|o| o.pane == PaneInfo::NO_FIRING && o.timestamp.millis() == [0, 1, 12, 13][o.value as usize]);
            ok.then_some(()).ok_or_else(|| format!("{os:?}"))
        });
        // Sliding windows: one element in two windows.
        let sliding = xs.apply("Sliding", WindowInto::new(SlidingWindows::of(10, 5)));
        PAssert::that(&sliding).in_window(w(5, 15)).equal_in_any_order(vec![2, 3]);
        PAssert::that(&sliding).in_window(w(10, 20)).equal_in_any_order(vec![2, 3]);
        PAssert::that(&sliding).in_window(w(-5, 5)).equal_in_any_order(vec![1]);
        PAssert::that(&sliding).equal_in_any_order(vec![1, 1, 2, 2, 3, 3]);
        p.run().unwrap();
    }

    fn pane(timing: PaneTiming, index: i64, nonspeculative_index: i64, is_last: bool) -> PaneInfo {
        PaneInfo { is_first: index == 0, is_last, timing, index, nonspeculative_index }
    }

    /// What a retracting, early- and late-firing sum of one key could emit for window [0, 10): EARLY 0 [1],
    /// EARLY 1 [3] retracting 1, ON_TIME 2 [6] retracting 3, LATE 3 (last) [10] retracting 6; and ON_TIME 0 [7]
    /// (last) in [10, 20). Emitted by a ParDo, so the assertions are tested independently of any trigger.
    fn synthetic_panes(p: &Pipeline) -> PCollection<i64> {
        p.apply("Seed", Create::of(vec![()])).apply(
            "Panes",
            ParDo::from_fn(|_: (), ctx: &mut DoFnContext<'_, '_, i64>| {
                let (first, second) = (w(0, 10), w(10, 20));
                let emits = [
                    (1, first, pane(PaneTiming::Early, 0, -1, false), false),
                    (1, first, pane(PaneTiming::Early, 1, -1, false), true),
                    (3, first, pane(PaneTiming::Early, 1, -1, false), false),
                    (3, first, pane(PaneTiming::OnTime, 2, 0, false), true),
                    (6, first, pane(PaneTiming::OnTime, 2, 0, false), false),
                    (6, first, pane(PaneTiming::Late, 3, 1, true), true),
                    (10, first, pane(PaneTiming::Late, 3, 1, true), false),
                    (7, second, pane(PaneTiming::OnTime, 0, 0, true), false),
                ];
                for (value, window, pane, retraction) in emits {
                    let timestamp = window.max_timestamp();
                    ctx.emit_windowed(WindowedValue { value, timestamp, window, pane, retraction });
                }
                Ok(())
            }),
        )
    }

    #[test]
    fn pane_selections_and_retractions() {
        let p = Pipeline::new(PipelineOptions::default());
        let xs = synthetic_panes(&p);
        let first = w(0, 10);
        PAssert::that(&xs).in_early_panes(first).equal_in_any_order(vec![1, 3]);
        PAssert::that(&xs).in_on_time_pane(first).equal_in_any_order(vec![6]);
        PAssert::that(&xs).in_late_panes(first).equal_in_any_order(vec![10]);
        PAssert::that(&xs).in_final_pane(first).equal_in_any_order(vec![10]);
        PAssert::that(&xs).in_non_late_panes(first).equal_in_any_order(vec![1, 3, 6]);
        PAssert::that(&xs).in_window(first).equal_in_any_order(vec![1, 3, 6, 10]);
        PAssert::that(&xs).in_final_pane(w(10, 20)).equal_in_any_order(vec![7]);
        PAssert::that(&xs).equal_in_any_order(vec![1, 3, 6, 10, 7]);
        PAssert::that(&xs).in_late_panes(first).satisfies_elements(|os| {
            let retracted: Vec<i64> = os.iter().filter(|o| o.retraction).map(|o| o.value).collect();
            (retracted == [6]).then_some(()).ok_or_else(|| format!("{os:?}"))
        });
        PAssert::that(&xs).panes_in_window(
            first,
            vec![
                ExpectedPane::late(3, vec![10]).last().with_retractions(vec![6]),
                ExpectedPane::early(0, vec![1]),
                ExpectedPane::early(1, vec![3]).with_retractions(vec![1]),
                ExpectedPane::on_time(2, vec![6]).with_retractions(vec![3]),
            ],
        );
        PAssert::that(&xs).panes_in_window(w(10, 20), vec![ExpectedPane::on_time(0, vec![7]).last()]);
        p.run().unwrap();
    }

    /// Runs a pipeline of the synthetic panes with one assertion made by `assert`, expects it to fail, and returns
    /// the error message.
    fn failure(assert: impl FnOnce(&PCollection<i64>)) -> String {
        let p = Pipeline::new(PipelineOptions::default());
        assert(&synthetic_panes(&p));
        run_err(&p)
    }

    #[test]
    fn failures_name_the_assertion_the_selection_and_the_difference() {
        let e = failure(|xs| {
            PAssert::that(xs).in_on_time_pane(w(0, 10)).equal_in_any_order(vec![7]);
        });
        assert!(e.contains("assertion failed in PAssert$0/Check"), "{e}");
        assert!(e.contains("the on-time pane of window [0ms, 10ms): expected (any order) [7] but got [6]"), "{e}");

        let e = failure(|xs| {
            PAssert::that(xs).in_late_panes(w(0, 10)).named("NoLateData").is_empty();
        });
        assert!(e.contains("assertion failed in NoLateData/Check"), "{e}");
        assert!(e.contains("the late panes of window [0ms, 10ms): expected no elements but got 2"), "{e}");
        assert!(e.contains("retraction of 6") && e.contains("10"), "{e}");

        let e = failure(|xs| {
            xs.apply("Everything", PAssert::equal_in_any_order(vec![1, 3, 6, 10]));
        });
        assert!(
            e.contains("assertion failed in Everything/Check: all elements: expected (any order) [1, 10, 3, 6]"),
            "{e}"
        );

        let e = failure(|xs| {
            PAssert::that(xs).in_window(w(10, 20)).satisfies(|v| Err(format!("saw {v:?}")));
        });
        assert!(e.contains("window [10ms, 20ms): saw [7]"), "{e}");

        let e = failure(|xs| {
            PAssert::that(xs).panes_in_window(
                w(0, 10),
                vec![
                    ExpectedPane::early(0, vec![1]),
                    ExpectedPane::early(1, vec![3]),
                    ExpectedPane::on_time(2, vec![6]).with_retractions(vec![3]),
                    ExpectedPane::late(3, vec![10]).last().with_retractions(vec![6]),
                ],
            );
        });
        assert!(
            e.contains(
                "window [0ms, 10ms): expected panes EARLY 0: [1]; EARLY 1: [3]; ON_TIME 2: [6] retracting [3]; \
                 LATE 3 (last): [10] retracting [6] but got EARLY 0: [1]; EARLY 1: [3] retracting [1]; "
            ),
            "{e}"
        );

        let e = failure(|xs| {
            PAssert::that(xs).panes_in_window(w(10, 20), vec![ExpectedPane::on_time(0, vec![7])]);
        });
        assert!(e.contains("expected panes ON_TIME 0: [7] but got ON_TIME 0 (last): [7]"), "{e}");
        let e = failure(|xs| {
            PAssert::that(xs).panes_in_window::<ExpectedPane<i64>>(w(10, 20), vec![]);
        });
        assert!(e.contains("expected panes no panes but got ON_TIME 0 (last): [7]"), "{e}");
    }

    #[test]
    fn inconsistent_pane_metadata_fails_the_pane_check() {
        for bad in [
            PaneInfo { is_first: false, ..pane(PaneTiming::OnTime, 0, 0, true) },
            pane(PaneTiming::Early, 1, 0, false),
            pane(PaneTiming::Late, 1, 2, true),
        ] {
            let p = Pipeline::new(PipelineOptions::default());
            let xs = p.apply("Seed", Create::of(vec![()])).apply(
                "Bad",
                ParDo::from_fn(move |_: (), ctx: &mut DoFnContext<'_, '_, i64>| {
                    let window = w(0, 10);
                    ctx.emit_windowed(WindowedValue {
                        value: 1,
                        timestamp: Timestamp(9),
                        window,
                        pane: bad,
                        retraction: false,
                    });
                    Ok(())
                }),
            );
            let expected = ExpectedPane::new(bad.timing, bad.index, vec![1]);
            PAssert::that(&xs).panes_in_window(w(0, 10), vec![if bad.is_last { expected.last() } else { expected }]);
            let e = run_err(&p);
            assert!(e.contains("window [0ms, 10ms): 1 has inconsistent pane metadata"), "{e}");
        }
    }

    /// One key in window [0, 10), early firings after every element, late firings after every late element,
    /// allowed lateness 100 ms: EARLY 0 [1], EARLY 1 [1+2], ON_TIME 2 when the watermark passes 10, LATE 3 for the
    /// late 4; nothing new when the window expires, so no further pane.
    fn streamed_sums(p: &Pipeline, window: WindowInto) -> PCollection<(String, i64)> {
        p.apply(
            "Scores",
            TestStream::new()
                .add_elements(vec![(kv("a", 1), 1)])
                .add_elements(vec![(kv("a", 2), 2)])
                .advance_watermark_to(10)
                .add_elements(vec![(kv("a", 4), 3)])
                .advance_watermark_to(200)
                .add_elements(vec![(kv("a", 8), 4)])
                .advance_watermark_to_infinity(),
        )
        .apply(
            "Window",
            window
                .triggering(
                    AfterWatermark::past_end_of_window()
                        .with_early_firings(AfterCount::of(1))
                        .with_late_firings(AfterCount::of(1)),
                )
                .with_allowed_lateness(100),
        )
        .combine_per_key("Sum", Sum::<i64>::new())
    }

    #[test]
    fn streaming_panes_with_test_stream_accumulating() {
        let p = Pipeline::new(PipelineOptions::default());
        let sums = streamed_sums(&p, WindowInto::new(FixedWindows::of(10)).accumulating_fired_panes());
        let first = w(0, 10);
        PAssert::that(&sums).in_early_panes(first).equal_in_any_order(vec![kv("a", 1), kv("a", 3)]);
        PAssert::that(&sums).in_on_time_pane(first).equal_in_any_order(vec![kv("a", 3)]);
        PAssert::that(&sums).in_late_panes(first).equal_in_any_order(vec![kv("a", 7)]);
        PAssert::that(&sums).in_non_late_panes(first).equal_in_any_order(vec![kv("a", 1), kv("a", 3), kv("a", 3)]);
        PAssert::that(&sums).panes_in_window(
            first,
            vec![
                ExpectedPane::early(0, vec![kv("a", 1)]),
                ExpectedPane::early(1, vec![kv("a", 3)]),
                ExpectedPane::on_time(2, vec![kv("a", 3)]),
                ExpectedPane::late(3, vec![kv("a", 7)]),
            ],
        );
        // The 8 arrived after the window expired: dropped (and counted), in no pane.
        PAssert::that(&sums)
            .in_window(first)
            .satisfies(|xs| xs.iter().all(|(_, v)| *v < 8).then_some(()).ok_or_else(|| format!("{xs:?}")));
        let result = p.run().unwrap();
        assert_eq!(result.counter("dropped_due_to_lateness"), 1);
    }

    #[test]
    fn streaming_panes_with_test_stream_discarding_and_retracting() {
        let p = Pipeline::new(PipelineOptions::default());
        let sums = streamed_sums(&p, WindowInto::new(FixedWindows::of(10)).discarding_fired_panes());
        PAssert::that(&sums).panes_in_window(
            w(0, 10),
            vec![
                ExpectedPane::early(0, vec![kv("a", 1)]),
                ExpectedPane::early(1, vec![kv("a", 2)]),
                // The on-time pane fires even with nothing new (FIRE_ALWAYS): a sum of nothing.
                ExpectedPane::on_time(2, vec![kv("a", 0)]),
                ExpectedPane::late(3, vec![kv("a", 4)]),
            ],
        );
        p.run().unwrap();
        let p = Pipeline::new(PipelineOptions::default());
        let retracting = streamed_sums(&p, WindowInto::new(FixedWindows::of(10)).retracting_fired_panes());
        PAssert::that(&retracting).panes_in_window(
            w(0, 10),
            vec![
                ExpectedPane::early(0, vec![kv("a", 1)]),
                ExpectedPane::early(1, vec![kv("a", 3)]).with_retractions(vec![kv("a", 1)]),
                ExpectedPane::on_time(2, vec![kv("a", 3)]).with_retractions(vec![kv("a", 3)]),
                ExpectedPane::late(3, vec![kv("a", 7)]).with_retractions(vec![kv("a", 3)]),
            ],
        );
        // Value assertions see the new values only, as in accumulating mode.
        PAssert::that(&retracting).in_late_panes(w(0, 10)).equal_in_any_order(vec![kv("a", 7)]);
        p.run().unwrap();
    }
}
