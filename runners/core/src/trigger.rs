//! Trigger state machines: when a key-and-window fires a pane.
//!
//! A [`Trigger`] is plain data; [`TriggerState`] is the state one key-and-window keeps for it, a
//! tree mirroring the trigger's. The grouping calls [`on_element`] for each input, asks
//! [`should_fire`] after each bundle and whenever time advances, and calls [`on_fire`] after a
//! pane fired. A trigger that has *finished* closes its window: later input is dropped and
//! counted. The rules follow Beam's trigger state machines.

use runnel_model::{TimeTransform, Timestamp, Trigger};

/// Time as a trigger sees it, for one window.
#[derive(Clone, Copy, Debug)]
pub struct TriggerTime {
    /// Input watermark of the grouping.
    pub watermark: Timestamp,
    /// Current processing time.
    pub processing_time: Timestamp,
    /// Max timestamp of the window.
    pub window_max: Timestamp,
}

impl TriggerTime {
    fn past_end_of_window(&self) -> bool {
        self.watermark > self.window_max
    }
}

/// The state of one trigger (and its sub-triggers) for one key and window.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TriggerState {
    /// The trigger will never fire again.
    pub finished: bool,
    /// Elements counted (AfterCount, Always).
    count: u64,
    /// When a processing-time trigger fires.
    target: Option<Timestamp>,
    /// AfterWatermark: the end-of-window firing happened.
    end_of_window_fired: bool,
    /// AfterEach: the current sub-trigger.
    index: usize,
    /// Sub-trigger states, in the order of the trigger's children (AfterWatermark: early, late).
    subs: Vec<TriggerState>,
}

fn children(t: &Trigger) -> Vec<&Trigger> {
    match t {
        Trigger::AfterWatermark { early, late } => early.iter().chain(late.iter()).map(|b| b.as_ref()).collect(),
        Trigger::Repeatedly { trigger } => vec![trigger],
        Trigger::AfterEach { triggers } | Trigger::AfterAny { triggers } | Trigger::AfterAll { triggers } => {
            triggers.iter().collect()
        }
        Trigger::OrFinally { main, finally } => vec![main, finally],
        _ => Vec::new(),
    }
}

/// Fresh state for `trigger`.
pub fn new_state(trigger: &Trigger) -> TriggerState {
    TriggerState { subs: children(trigger).into_iter().map(new_state).collect(), ..TriggerState::default() }
}

fn early_late(trigger: &Trigger) -> (Option<&Trigger>, Option<&Trigger>) {
    match trigger {
        Trigger::AfterWatermark { early, late } => (early.as_deref(), late.as_deref()),
        _ => (None, None),
    }
}

/// Index of the late sub-trigger's state (after the early one, if any).
fn late_index(trigger: &Trigger) -> usize {
    usize::from(early_late(trigger).0.is_some())
}

fn apply_transforms(transforms: &[TimeTransform], t: Timestamp) -> Timestamp {
    transforms.iter().fold(t, |t, tr| match tr {
        TimeTransform::Delay { delay_ms } => t.plus(*delay_ms),
        TimeTransform::AlignTo { period_ms, offset_ms } => {
            let period = (*period_ms).max(1);
            let rem = (t.0 - offset_ms).rem_euclid(period);
            if rem == 0 {
                t
            } else {
                t.plus(period - rem)
            }
        }
    })
}

/// An element arrived in the window.
pub fn on_element(trigger: &Trigger, st: &mut TriggerState, time: &TriggerTime) {
    if st.finished {
        return;
    }
    match trigger {
        Trigger::AfterCount { .. } | Trigger::Always => st.count += 1,
        Trigger::AfterProcessingTime { transforms } => {
            if st.target.is_none() {
                st.target = Some(apply_transforms(transforms, time.processing_time));
            }
        }
        Trigger::AfterWatermark { early, late } => {
            if !st.end_of_window_fired {
                if let Some(e) = early {
                    on_element(e, &mut st.subs[0], time);
                }
            } else if let Some(l) = late {
                let i = late_index(trigger);
                on_element(l, &mut st.subs[i], time);
            }
        }
        Trigger::AfterEach { triggers } => {
            if let Some(t) = triggers.get(st.index) {
                on_element(t, &mut st.subs[st.index], time);
            }
        }
        _ => {
            for (t, s) in children(trigger).into_iter().zip(st.subs.iter_mut()) {
                on_element(t, s, time);
            }
        }
    }
}

/// Whether the trigger fires now.
pub fn should_fire(trigger: &Trigger, st: &TriggerState, time: &TriggerTime) -> bool {
    if st.finished {
        return false;
    }
    match trigger {
        Trigger::Default => time.past_end_of_window(),
        Trigger::AfterWatermark { early, late } => {
            if !st.end_of_window_fired {
                time.past_end_of_window() || early.as_ref().is_some_and(|e| should_fire(e, &st.subs[0], time))
            } else {
                late.as_ref().is_some_and(|l| should_fire(l, &st.subs[late_index(trigger)], time))
            }
        }
        Trigger::AfterProcessingTime { .. } => st.target.is_some_and(|t| time.processing_time >= t),
        Trigger::AfterCount { count } => st.count >= *count,
        Trigger::Always => st.count >= 1,
        Trigger::Never => false,
        Trigger::Repeatedly { trigger } => should_fire(trigger, &st.subs[0], time),
        Trigger::AfterEach { triggers } => {
            triggers.get(st.index).is_some_and(|t| should_fire(t, &st.subs[st.index], time))
        }
        Trigger::AfterAny { triggers } => triggers.iter().zip(&st.subs).any(|(t, s)| should_fire(t, s, time)),
        Trigger::AfterAll { triggers } => {
            triggers.iter().zip(&st.subs).all(|(t, s)| s.finished || should_fire(t, s, time))
                && triggers.iter().zip(&st.subs).any(|(t, s)| should_fire(t, s, time))
        }
        Trigger::OrFinally { main, finally } => {
            should_fire(main, &st.subs[0], time) || should_fire(finally, &st.subs[1], time)
        }
    }
}

/// The trigger fired a pane: advance its state (it may finish).
pub fn on_fire(trigger: &Trigger, st: &mut TriggerState, time: &TriggerTime) {
    match trigger {
        Trigger::Default | Trigger::Never => {}
        Trigger::Always => st.count = 0,
        Trigger::AfterCount { .. } | Trigger::AfterProcessingTime { .. } => st.finished = true,
        Trigger::AfterWatermark { early, late } => {
            if !st.end_of_window_fired {
                if time.past_end_of_window() {
                    st.end_of_window_fired = true;
                    st.finished = late.is_none();
                } else if let Some(e) = early {
                    // Early firings repeat until the end of the window.
                    on_fire(e, &mut st.subs[0], time);
                    if st.subs[0].finished {
                        st.subs[0] = new_state(e);
                    }
                }
            } else if let Some(l) = late {
                // Late firings repeat until the window expires.
                let i = late_index(trigger);
                on_fire(l, &mut st.subs[i], time);
                if st.subs[i].finished {
                    st.subs[i] = new_state(l);
                }
            }
        }
        Trigger::Repeatedly { trigger } => {
            on_fire(trigger, &mut st.subs[0], time);
            if st.subs[0].finished {
                st.subs[0] = new_state(trigger);
            }
        }
        Trigger::AfterEach { triggers } => {
            if let Some(t) = triggers.get(st.index) {
                on_fire(t, &mut st.subs[st.index], time);
                if st.subs[st.index].finished {
                    st.index += 1;
                }
            }
            st.finished = st.index >= triggers.len();
        }
        // AfterAny and AfterAll fire once (Beam's AfterFirst and AfterAll are OnceTriggers): with
        // one-shot sub-triggers their firing finishes them anyway; a tree with a repeating
        // sub-trigger (which only a continuation trigger can hold) finishes as in Beam.
        Trigger::AfterAny { triggers } | Trigger::AfterAll { triggers } => {
            for (t, s) in triggers.iter().zip(st.subs.iter_mut()) {
                if should_fire(t, s, time) {
                    on_fire(t, s, time);
                }
            }
            st.finished = true;
        }
        Trigger::OrFinally { main, finally } => {
            if should_fire(finally, &st.subs[1], time) {
                on_fire(finally, &mut st.subs[1], time);
                st.finished = true;
            } else {
                on_fire(main, &mut st.subs[0], time);
                st.finished = st.subs[0].finished;
            }
        }
    }
}

/// The state of a window merged from windows with states `states` (session windows).
pub fn merge(trigger: &Trigger, states: &[&TriggerState]) -> TriggerState {
    let mut out = new_state(trigger);
    out.finished = states.iter().any(|s| s.finished);
    out.count = states.iter().map(|s| s.count).sum();
    out.target = states.iter().filter_map(|s| s.target).min();
    out.end_of_window_fired = states.iter().any(|s| s.end_of_window_fired);
    out.index = states.iter().map(|s| s.index).max().unwrap_or(0);
    for (i, child) in children(trigger).into_iter().enumerate() {
        let subs: Vec<&TriggerState> = states.iter().filter_map(|s| s.subs.get(i)).collect();
        out.subs[i] = merge(child, &subs);
    }
    out
}

/// The earliest processing time at which the trigger could fire, if it waits for one.
pub fn next_processing_time(trigger: &Trigger, st: &TriggerState) -> Option<Timestamp> {
    if st.finished {
        return None;
    }
    let own = match trigger {
        Trigger::AfterProcessingTime { .. } => st.target,
        _ => None,
    };
    let subs = children(trigger).into_iter().zip(&st.subs).filter_map(|(t, s)| next_processing_time(t, s));
    own.into_iter().chain(subs).min()
}

/// Whether the trigger can finish, after which later data for its window is dropped (Beam's
/// safety check warns about such triggers).
pub fn may_finish(trigger: &Trigger) -> bool {
    match trigger {
        Trigger::Default | Trigger::Never | Trigger::Always | Trigger::Repeatedly { .. } => false,
        Trigger::AfterWatermark { late, .. } => late.is_none(),
        Trigger::AfterProcessingTime { .. } | Trigger::AfterCount { .. } | Trigger::OrFinally { .. } => true,
        Trigger::AfterAny { .. } | Trigger::AfterAll { .. } => true,
        Trigger::AfterEach { triggers } => triggers.iter().all(may_finish),
    }
}

/// Whether the trigger fires at most once: Beam Java's `OnceTrigger` (element count,
/// processing time, the watermark without early or late firings, Never, and AfterAny / AfterAll
/// of such triggers). Default, Always, Repeatedly, AfterEach, OrFinally and AfterWatermark with
/// early or late firings can fire again.
pub fn is_one_shot(trigger: &Trigger) -> bool {
    match trigger {
        Trigger::AfterWatermark { early, late } => early.is_none() && late.is_none(),
        Trigger::AfterProcessingTime { .. } | Trigger::AfterCount { .. } | Trigger::Never => true,
        Trigger::AfterAny { .. } | Trigger::AfterAll { .. } => true,
        Trigger::Default | Trigger::Always | Trigger::Repeatedly { .. } | Trigger::AfterEach { .. } => false,
        Trigger::OrFinally { .. } => false,
    }
}

/// A sub-trigger that can fire more than once where Beam Java only accepts a one-shot trigger
/// (see [`is_one_shot`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NotOneShot {
    /// Where it stands, e.g. "a sub-trigger of AfterAny".
    pub place: &'static str,
    /// The offending sub-trigger.
    pub trigger: Trigger,
}

impl std::fmt::Display for NotOneShot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} must fire at most once (a one-shot trigger, as Beam's OnceTrigger), but {:?} can fire again; \
             use a one-shot trigger there and wrap the whole trigger in Repeatedly to fire repeatedly",
            self.place, self.trigger
        )
    }
}

/// The first place in `trigger` where Beam Java requires a one-shot trigger and finds one that can
/// fire again: the sub-triggers of AfterAny (Beam's `AfterFirst.of`) and AfterAll (`AfterAll.of`),
/// the early and late firings of AfterWatermark (`withEarlyFirings`, `withLateFirings`), and the
/// `finally` of OrFinally (`orFinally`). Beam refuses such trees when they are built; so do we.
pub fn check_one_shot(trigger: &Trigger) -> Result<(), NotOneShot> {
    let require = |place: &'static str, t: &Trigger| {
        if is_one_shot(t) {
            Ok(())
        } else {
            Err(NotOneShot { place, trigger: t.clone() })
        }
    };
    match trigger {
        Trigger::AfterAny { triggers } => triggers.iter().try_for_each(|t| require("a sub-trigger of AfterAny", t)),
        Trigger::AfterAll { triggers } => triggers.iter().try_for_each(|t| require("a sub-trigger of AfterAll", t)),
        Trigger::AfterWatermark { early, late } => {
            early.as_deref().map_or(Ok(()), |t| require("the early firings of AfterWatermark", t))?;
            late.as_deref().map_or(Ok(()), |t| require("the late firings of AfterWatermark", t))
        }
        Trigger::OrFinally { finally, .. } => require("the finally trigger of OrFinally", finally),
        _ => Ok(()),
    }?;
    children(trigger).into_iter().try_for_each(check_one_shot)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn time(wm: i64, pt: i64) -> TriggerTime {
        TriggerTime { watermark: Timestamp(wm), processing_time: Timestamp(pt), window_max: Timestamp(9) }
    }

    #[test]
    fn after_count_fires_once_and_finishes() {
        let t = Trigger::AfterCount { count: 2 };
        let mut s = new_state(&t);
        on_element(&t, &mut s, &time(0, 0));
        assert!(!should_fire(&t, &s, &time(0, 0)));
        on_element(&t, &mut s, &time(0, 0));
        assert!(should_fire(&t, &s, &time(0, 0)));
        on_fire(&t, &mut s, &time(0, 0));
        assert!(s.finished);
    }

    #[test]
    fn repeatedly_resets_its_subtrigger() {
        let t = Trigger::Repeatedly { trigger: Box::new(Trigger::AfterCount { count: 2 }) };
        let mut s = new_state(&t);
        for _ in 0..2 {
            on_element(&t, &mut s, &time(0, 0));
        }
        on_fire(&t, &mut s, &time(0, 0));
        assert!(!s.finished);
        on_element(&t, &mut s, &time(0, 0));
        assert!(!should_fire(&t, &s, &time(0, 0)));
    }

    #[test]
    fn processing_time_counts_from_the_first_element() {
        let t = Trigger::AfterProcessingTime { transforms: vec![TimeTransform::Delay { delay_ms: 5 }] };
        let mut s = new_state(&t);
        on_element(&t, &mut s, &time(0, 100));
        on_element(&t, &mut s, &time(0, 103));
        assert_eq!(next_processing_time(&t, &s), Some(Timestamp(105)));
        assert!(!should_fire(&t, &s, &time(0, 104)));
        assert!(should_fire(&t, &s, &time(0, 105)));
    }

    #[test]
    fn aligned_processing_time_rounds_up() {
        let t =
            Trigger::AfterProcessingTime { transforms: vec![TimeTransform::AlignTo { period_ms: 10, offset_ms: 0 }] };
        let mut s = new_state(&t);
        on_element(&t, &mut s, &time(0, 13));
        assert_eq!(next_processing_time(&t, &s), Some(Timestamp(20)));
    }

    #[test]
    fn after_watermark_with_early_and_late_firings() {
        let t = Trigger::AfterWatermark {
            early: Some(Box::new(Trigger::AfterCount { count: 1 })),
            late: Some(Box::new(Trigger::AfterCount { count: 1 })),
        };
        let mut s = new_state(&t);
        assert!(!should_fire(&t, &s, &time(0, 0)));
        on_element(&t, &mut s, &time(0, 0));
        assert!(should_fire(&t, &s, &time(0, 0)), "early firing");
        on_fire(&t, &mut s, &time(0, 0));
        assert!(!should_fire(&t, &s, &time(0, 0)), "early resets");
        assert!(should_fire(&t, &s, &time(10, 0)), "end of window");
        on_fire(&t, &mut s, &time(10, 0));
        assert!(!s.finished && !should_fire(&t, &s, &time(10, 0)));
        on_element(&t, &mut s, &time(10, 0));
        assert!(should_fire(&t, &s, &time(10, 0)), "late firing");
    }

    #[test]
    fn after_watermark_without_late_finishes_at_end_of_window() {
        let t = Trigger::AfterWatermark { early: None, late: None };
        let mut s = new_state(&t);
        on_fire(&t, &mut s, &time(10, 0));
        assert!(s.finished);
        assert!(may_finish(&t));
    }

    #[test]
    fn after_each_runs_its_subtriggers_in_turn() {
        let t =
            Trigger::AfterEach { triggers: vec![Trigger::AfterCount { count: 1 }, Trigger::AfterCount { count: 2 }] };
        let mut s = new_state(&t);
        on_element(&t, &mut s, &time(0, 0));
        assert!(should_fire(&t, &s, &time(0, 0)));
        on_fire(&t, &mut s, &time(0, 0));
        on_element(&t, &mut s, &time(0, 0));
        assert!(!should_fire(&t, &s, &time(0, 0)));
        on_element(&t, &mut s, &time(0, 0));
        assert!(should_fire(&t, &s, &time(0, 0)));
        on_fire(&t, &mut s, &time(0, 0));
        assert!(s.finished);
    }

    #[test]
    fn or_finally_stops_when_the_finally_trigger_fires() {
        let t = Trigger::OrFinally {
            main: Box::new(Trigger::Repeatedly { trigger: Box::new(Trigger::AfterCount { count: 1 }) }),
            finally: Box::new(Trigger::AfterCount { count: 3 }),
        };
        let mut s = new_state(&t);
        for i in 1..=3 {
            on_element(&t, &mut s, &time(0, 0));
            assert!(should_fire(&t, &s, &time(0, 0)));
            on_fire(&t, &mut s, &time(0, 0));
            assert_eq!(s.finished, i == 3);
        }
    }

    #[test]
    fn after_all_waits_for_every_subtrigger() {
        let t =
            Trigger::AfterAll { triggers: vec![Trigger::AfterCount { count: 2 }, Trigger::AfterCount { count: 1 }] };
        let mut s = new_state(&t);
        on_element(&t, &mut s, &time(0, 0));
        assert!(!should_fire(&t, &s, &time(0, 0)));
        on_element(&t, &mut s, &time(0, 0));
        assert!(should_fire(&t, &s, &time(0, 0)));
    }

    #[test]
    fn one_shot_places_refuse_triggers_that_fire_again() {
        let every = Trigger::Repeatedly { trigger: Box::new(Trigger::AfterCount { count: 1 }) };
        let any = Trigger::AfterAny { triggers: vec![Trigger::AfterCount { count: 2 }, every.clone()] };
        assert_eq!(
            check_one_shot(&any),
            Err(NotOneShot { place: "a sub-trigger of AfterAny", trigger: every.clone() })
        );
        let early = Trigger::AfterWatermark { early: Some(Box::new(every.clone())), late: None };
        assert_eq!(check_one_shot(&early).unwrap_err().place, "the early firings of AfterWatermark");
        let until = Trigger::OrFinally { main: Box::new(every.clone()), finally: Box::new(Trigger::Default) };
        assert_eq!(check_one_shot(&until).unwrap_err().place, "the finally trigger of OrFinally");
        // Nested: found below a Repeatedly.
        let nested = Trigger::Repeatedly {
            trigger: Box::new(Trigger::AfterAll { triggers: vec![Trigger::Always, Trigger::Never] }),
        };
        assert_eq!(check_one_shot(&nested).unwrap_err().trigger, Trigger::Always);
    }

    #[test]
    fn one_shot_trees_and_repeating_mains_are_accepted() {
        let ok = Trigger::OrFinally {
            main: Box::new(Trigger::Repeatedly {
                trigger: Box::new(Trigger::AfterAny {
                    triggers: vec![
                        Trigger::AfterCount { count: 3 },
                        Trigger::AfterProcessingTime { transforms: vec![] },
                        Trigger::AfterAll { triggers: vec![Trigger::AfterWatermark { early: None, late: None }] },
                    ],
                }),
            }),
            finally: Box::new(Trigger::AfterWatermark { early: None, late: None }),
        };
        assert_eq!(check_one_shot(&ok), Ok(()));
        let each = Trigger::AfterEach { triggers: vec![Trigger::Default, Trigger::Always] };
        assert_eq!(check_one_shot(&each), Ok(()), "AfterEach takes any trigger, as Beam's AfterEach.inOrder");
    }

    #[test]
    fn after_any_and_after_all_fire_once_whatever_their_sub_triggers() {
        // As Beam's AfterFirst / AfterAll (OnceTriggers); such trees reach a grouping only as
        // continuation triggers, since WindowInto refuses them.
        let every = Trigger::Repeatedly { trigger: Box::new(Trigger::AfterCount { count: 1 }) };
        for t in [Trigger::AfterAny { triggers: vec![every.clone()] }, Trigger::AfterAll { triggers: vec![every] }] {
            let mut s = new_state(&t);
            on_element(&t, &mut s, &time(0, 0));
            assert!(should_fire(&t, &s, &time(0, 0)));
            on_fire(&t, &mut s, &time(0, 0));
            assert!(s.finished, "{t:?}");
            assert!(may_finish(&t));
        }
    }

    #[test]
    fn merged_counts_add_up() {
        let t = Trigger::AfterCount { count: 3 };
        let mut a = new_state(&t);
        let mut b = new_state(&t);
        on_element(&t, &mut a, &time(0, 0));
        on_element(&t, &mut b, &time(0, 0));
        on_element(&t, &mut b, &time(0, 0));
        assert!(should_fire(&t, &merge(&t, &[&a, &b]), &time(0, 0)));
    }
}

/// The trigger of a grouping's output (Beam's continuation trigger): what a grouping downstream
/// should use so that it fires when the upstream panes arrive rather than wait again for the
/// same conditions. Counts become AfterCount(1); processing-time delays become "as soon as data
/// arrives" (AfterCount(1), in place of Beam's synchronized processing time).
pub fn continuation(trigger: &Trigger) -> Trigger {
    let boxed = |t: &Trigger| Box::new(continuation(t));
    let all = |ts: &[Trigger]| ts.iter().map(continuation).collect::<Vec<_>>();
    match trigger {
        Trigger::Default | Trigger::Never | Trigger::Always => trigger.clone(),
        Trigger::AfterWatermark { early, late } => {
            Trigger::AfterWatermark { early: early.as_deref().map(boxed), late: late.as_deref().map(boxed) }
        }
        Trigger::AfterProcessingTime { .. } | Trigger::AfterCount { .. } => Trigger::AfterCount { count: 1 },
        Trigger::Repeatedly { trigger } => Trigger::Repeatedly { trigger: boxed(trigger) },
        // As Beam: a sequence continues as "any of its continuations", repeatedly.
        Trigger::AfterEach { triggers } => {
            Trigger::Repeatedly { trigger: Box::new(Trigger::AfterAny { triggers: all(triggers) }) }
        }
        Trigger::AfterAny { triggers } => Trigger::AfterAny { triggers: all(triggers) },
        Trigger::AfterAll { triggers } => Trigger::AfterAll { triggers: all(triggers) },
        Trigger::OrFinally { main, finally } => Trigger::OrFinally { main: boxed(main), finally: boxed(finally) },
    }
}

#[cfg(test)]
mod continuation_tests {
    use super::*;

    #[test]
    fn continuations_fire_as_upstream_panes_arrive() {
        let t = Trigger::AfterWatermark {
            early: Some(Box::new(Trigger::AfterProcessingTime {
                transforms: vec![TimeTransform::Delay { delay_ms: 60_000 }],
            })),
            late: Some(Box::new(Trigger::AfterCount { count: 5 })),
        };
        assert_eq!(
            continuation(&t),
            Trigger::AfterWatermark {
                early: Some(Box::new(Trigger::AfterCount { count: 1 })),
                late: Some(Box::new(Trigger::AfterCount { count: 1 })),
            }
        );
        assert_eq!(continuation(&Trigger::Default), Trigger::Default);
    }
}

/// Whether a trigger has processing-time parts (otherwise a grouping never sets a timer, and a
/// runner need not ask for one).
pub fn uses_processing_time(t: &Trigger) -> bool {
    match t {
        Trigger::AfterProcessingTime { .. } => true,
        Trigger::Default | Trigger::AfterCount { .. } | Trigger::Never | Trigger::Always => false,
        Trigger::AfterWatermark { early, late } => {
            early.as_deref().is_some_and(uses_processing_time) || late.as_deref().is_some_and(uses_processing_time)
        }
        Trigger::Repeatedly { trigger } => uses_processing_time(trigger),
        Trigger::AfterEach { triggers } | Trigger::AfterAny { triggers } | Trigger::AfterAll { triggers } => {
            triggers.iter().any(uses_processing_time)
        }
        Trigger::OrFinally { main, finally } => uses_processing_time(main) || uses_processing_time(finally),
    }
}
