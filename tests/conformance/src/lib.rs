//! The conformance suite every Runnel runner passes, in the manner of Beam's ValidatesRunner.
//!
//! Each case is written **once**, as a plain function in [`cases`] that takes the
//! [`PipelineOptions`] selecting the runner under test and panics on failure. Cases check their
//! results inside the pipeline with [`runnel::testing::PAssert`] (exact expected contents), so they
//! hold on every runner, in-process or distributed; then `p.run()` must succeed.
//!
//! A runner's test file instantiates the whole suite with one line of
//! [`conformance_suite!`], which expands to one `#[test]` per case:
//!
//! ```
//! use runnel::PipelineOptions;
//!
//! runnel_conformance::conformance_suite!(direct, PipelineOptions::default());
//! runnel_conformance::conformance_suite!(direct_unchecked, PipelineOptions::default().with_direct_checks(false));
//! # fn main() {}
//! ```
//!
//! Rules for cases: small data (the whole suite runs in seconds), no dependence on bundle
//! boundaries or processing order, no process-global state (a distributed runner runs user code
//! in other processes), and one behaviour per case, named for it.
#![warn(missing_docs)]

pub mod cases;

pub use runnel;

use runnel::prelude::*;
use runnel::PipelineResult;
pub use runnel::{Capabilities, Capability};
use std::time::Duration;

/// How long an error-path case waits for the run to end before calling it a hang.
pub const RUN_TIMEOUT: Duration = Duration::from_secs(120);

/// Runs `p` and returns its result, panicking with the error's text if it failed.
pub fn run_ok(p: &Pipeline) -> PipelineResult {
    match p.run() {
        Ok(result) => {
            assert_eq!(format!("{:?}", result.state()), "Done", "the run ended but not in state Done");
            result
        }
        Err(e) => panic!("the pipeline failed: {e}"),
    }
}

/// Builds a pipeline with `build` on a thread of its own, runs it, and returns the Display text of
/// the error it must fail with. Panics if the run succeeds, if it panics instead of returning an
/// error, or if it does not end within [`RUN_TIMEOUT`] (a hang).
pub fn expect_run_failure(options: PipelineOptions, build: impl FnOnce(&Pipeline) + Send + 'static) -> String {
    let (tx, rx) = std::sync::mpsc::channel();
    let worker = std::thread::spawn(move || {
        let p = Pipeline::new(options);
        build(&p);
        let outcome = p.run().map(|_| ()).map_err(|e| e.to_string());
        let _ = tx.send(outcome);
    });
    match rx.recv_timeout(RUN_TIMEOUT) {
        Ok(Ok(())) => panic!("the pipeline succeeded but was expected to fail"),
        Ok(Err(message)) => {
            let _ = worker.join();
            message
        }
        Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
            panic!("the pipeline neither failed nor finished within {RUN_TIMEOUT:?} (hang)")
        }
        Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
            let why = worker.join().err().map(|p| panic_text(&*p)).unwrap_or_default();
            panic!("building or running the pipeline panicked instead of returning an error: {why}")
        }
    }
}

fn panic_text(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".to_string())
}

/// Runs a case on a runner that lacks one of the capabilities it needs, and asserts that the
/// runner refused it up front with a clear error naming a missing capability (the case itself
/// panics when its run fails, so the refusal arrives as that panic's message).
pub fn expect_refused(case: impl FnOnce() + std::panic::UnwindSafe, missing: &[Capability]) {
    let outcome = std::panic::catch_unwind(case);
    let message = match outcome {
        Ok(()) => panic!("the runner ran a case needing {missing:?}, which it does not declare; it must refuse it"),
        Err(payload) => panic_text(&*payload),
    };
    assert!(
        message.contains("cannot run this pipeline") && missing.iter().any(|c| message.contains(c.describe())),
        "expected a refusal naming one of {missing:?}, got: {message}"
    );
}

/// Runs a case on a runner known to deviate from the model in it (a fault of the runner, written
/// down where the runner is instantiated), and asserts that it still fails, with a message
/// containing `why`: the day the runner is fixed, this fails and the deviation is struck off.
pub fn expect_deviation(case: impl FnOnce() + std::panic::UnwindSafe, why: &str) {
    match std::panic::catch_unwind(case) {
        Ok(()) => panic!("the case passes: the runner no longer deviates ({why}); remove the deviation"),
        Err(payload) => {
            let message = panic_text(&*payload);
            assert!(message.contains(why), "the case fails, but not with the known deviation {why:?}: {message}");
        }
    }
}

/// Asserts that `text` contains every one of `needles`, showing `text` when it does not.
pub fn assert_contains_all(text: &str, needles: &[&str]) {
    for needle in needles {
        assert!(text.contains(needle), "expected {needle:?} in:\n{text}");
    }
}

/// An element with the metadata the runner attached to it, as [`Reify`] exposes it.
pub type Reified<T> = (T, Window, PaneInfo, Timestamp);

/// Exposes each element's window, pane and timestamp as data: `T` → `(T, window, pane, timestamp)`.
pub struct Reify;

impl<T: Element> PTransform<PCollection<T>> for Reify {
    type Output = PCollection<Reified<T>>;
    fn expand(self, input: PCollection<T>) -> Self::Output {
        input.apply(
            "Reify",
            ParDo::from_fn(|x: T, ctx: &mut DoFnContext<'_, '_, Reified<T>>| {
                let meta = (x, ctx.window(), ctx.pane(), ctx.timestamp());
                ctx.emit(meta);
                Ok(())
            }),
        )
    }
}

/// Instantiates the conformance suite for one runner: a module `$runner` with one `#[test]` per
/// case, each calling the case with the options `$options` (an expression evaluated per test, in
/// a module that sees the caller's imports). `$capabilities` (a [`Capabilities`]) is what the
/// runner declares it supports: a case needing more is asserted to be **refused up front** with
/// a clear error ([`expect_refused`]), never skipped.
///
/// The list below is the single registry of cases, each with the capabilities it needs beyond
/// bounded batch execution in brackets; a case that a known bug breaks carries
/// `#[ignore = "reason"]` here, for every runner.
#[macro_export]
macro_rules! conformance_suite {
    ($runner:ident, $options:expr) => {
        $crate::conformance_suite!($runner, $options, $crate::Capabilities::all());
    };
    ($runner:ident, $options:expr, $capabilities:expr) => {
        $crate::conformance_suite!($runner, $options, $capabilities, deviations: {});
    };
    ($runner:ident, $options:expr, $capabilities:expr, deviations: { $($deviating:ident: $why:expr),* $(,)? }) => {
        mod $runner {
            // `$options` is written at the call site: let it name what is in scope there.
            #[allow(unused_imports)]
            use super::*;

            fn options() -> $crate::runnel::PipelineOptions {
                $options
            }

            fn capabilities() -> $crate::Capabilities {
                $capabilities
            }

            /// What the case's failure must say, for a case where the runner under test is known
            /// to differ from the model.
            #[allow(unreachable_code, unused_variables)]
            fn deviation(case: &str) -> Option<&'static str> {
                $(if case == stringify!($deviating) { return Some($why); })*
                None
            }
            $crate::conformance_suite!(@cases
                // Create and element-wise transforms.
                create_of_gives_elements_in_global_window_at_min_timestamp,
                create_of_empty_gives_empty_pcollection,
                create_timestamped_keeps_timestamps,
                map_applies_function_to_each_element,
                flat_map_emits_zero_or_more_per_element,
                filter_keeps_matching_elements,
                element_wise_transforms_keep_timestamps,
                pardo_struct_dofn_follows_lifecycle_and_emits_in_finish_bundle,
                pardo_from_fn_sees_element_context,
                pardo_tagged_outputs_route_to_their_pcollections,
                many_elements_cross_batch_and_bundle_boundaries,
                with_timestamps_sets_timestamps,
                // Key-value helpers.
                keys_extracts_keys,
                values_extracts_values,
                kv_swap_swaps_pairs,
                with_keys_pairs_with_computed_key,
                // Side inputs.
                side_input_as_singleton,
                side_input_as_singleton_with_default_on_empty_input,
                side_input_as_iterable,
                side_input_as_list,
                side_input_as_map,
                side_input_as_multimap,
                side_input_windowed_singleton_matches_main_window,
                side_input_from_the_main_input,
                side_input_as_multimap_lookup_gives_the_values_of_each_key_asked,
                side_input_as_map_lookup_gives_the_value_of_each_key_asked,
                // Grouping.
                group_by_key_groups_values_per_key,
                group_by_key_of_empty_input_is_empty,
                group_by_key_in_global_window_fires_one_on_time_pane,
                co_group_by_key_joins_two_inputs,
                // Combining.
                combine_per_key_with_builtin_sum,
                combine_per_key_with_user_combine_fn,
                combine_globally_sums_all_elements,
                combine_globally_of_empty_input_gives_one_default,
                combine_grouped_values_after_group_by_key,
                combine_count,
                combine_mean,
                combine_min_and_max,
                combine_top_largest,
                combine_top_smallest,
                combine_to_list,
                count_per_element_counts_duplicates,
                distinct_removes_duplicates,
                // Several inputs or outputs.
                flatten_two_inputs,
                flatten_three_inputs,
                flatten_same_pcollection_twice_duplicates_elements,
                partition_splits_by_function,
                reshuffle_keeps_elements,
                // Structure, registered code, metrics.
                composite_transform_nests_names_in_graph,
                registered_dofn_is_serialised_in_graph_and_runs,
                registered_dofn_reads_side_input_through_its_view,
                registered_combine_fn_is_serialised_in_graph_and_runs,
                sessions_merge_per_key_in_batch,
                user_window_fn_assigns_windows [UserWindowFns],
                merging_user_window_fn_merges_windows_and_state [UserWindowFns],
                repeated_count_trigger_accumulating_ends_with_the_full_sum,
                retracting_panes_keep_a_downstream_sum_correct [Retractions],
                trigger_that_may_finish_is_warned_or_refused,
                repeated_count_discarding_then_empty_on_time_pane [TestStream],
                on_time_behaviour_fire_if_non_empty_skips_the_empty_pane [TestStream],
                after_each_fires_its_triggers_in_turn_then_closes_the_window [TestStream],
                or_finally_stops_the_main_trigger [TestStream],
                never_fires_only_the_final_pane_at_expiry [TestStream],
                always_fires_for_every_bundle [TestStream],
                after_any_fires_on_the_first_of_its_triggers [TestStream, ProcessingTime],
                after_all_waits_for_all_of_its_triggers [TestStream, ProcessingTime],
                aligned_processing_time_fires_at_the_period_boundary [TestStream, ProcessingTime],
                closing_behaviour_fire_always_emits_the_final_pane [TestStream],
                retracting_group_by_key_sum_equals_accumulating_in_every_pane [TestStream, Retractions],
                sessions_merge_in_streaming [TestStream],
                combine_globally_with_a_trigger_in_the_global_window [TestStream],
                metrics_counter_distribution_and_gauge,
                // Event time exactly as Beam Java.
                earliest_stamps_panes_only_with_holds_not_behind_the_output_watermark [TestStream],
                latest_stamps_on_time_panes_by_their_holds_and_late_panes_at_the_end_of_the_window [TestStream],
                merged_sessions_start_fresh_unless_the_result_already_existed [TestStream],
                a_session_closed_by_its_trigger_stays_closed [TestStream],
                the_empty_on_time_pane_fires_only_while_not_late_for_the_output_watermark [TestStream],
                triggers_that_fire_again_where_beam_needs_one_shot_are_refused,
                a_second_grouping_over_consumed_sessions_is_refused,
                remerge_merges_consumed_windows_again_at_the_next_grouping,
                // Retractions applied end to end.
                retracting_user_sums_give_team_totals_in_every_pane_over_fixed_windows [TestStream, Retractions],
                retracting_session_sums_give_team_totals_in_every_pane_when_sessions_merge [TestStream, Retractions],
                retracting_user_sums_give_team_totals_in_batch_over_fixed_windows [Retractions],
                retracting_session_sums_give_team_totals_in_batch [Retractions],
                mean_and_a_user_combine_fn_apply_retractions [Retractions],
                min_over_retracting_input_keeps_a_multiset_of_inputs [Retractions],
                group_by_key_of_retracting_input_removes_retracted_values [Retractions],
                filter_and_flatten_carry_retractions [Retractions],
                retractions_reach_the_next_grouping_in_order [TestStream, Retractions],
                side_input_of_retracting_input_holds_the_latest_values [Retractions],
                combine_without_an_inverse_over_retracting_input_is_refused,
                window_into_a_non_retracting_strategy_after_retractions_is_refused [Retractions],
                text_sink_refuses_retracting_input_unless_it_renders_retractions [Retractions],
                // Windowing in batch.
                fixed_windows_group_by_key_fires_one_on_time_pane_per_window,
                fixed_windows_combine_per_key,
                fixed_windows_combine_globally_gives_no_default_for_empty_windows,
                sliding_windows_assign_size_over_period_windows,
                sliding_windows_combine_counts_per_window,
                fixed_windows_timestamp_combiners_earliest_and_latest,
                fixed_windows_survive_a_second_grouping,
                fixed_windows_with_offset_shift_boundaries,
                combine_globally_in_global_window_with_non_default_strategy,
                passert_checks_contents_across_all_windows,
                // Streaming: TestStream, lateness, watermark holds, unbounded sources.
                test_stream_default_trigger_fires_on_time_panes_as_the_watermark_passes [TestStream],
                test_stream_ends_with_the_watermark_at_infinity [TestStream],
                test_stream_late_data_within_allowed_lateness_fires_a_late_pane [TestStream],
                test_stream_data_beyond_allowed_lateness_is_dropped_and_counted [TestStream],
                test_stream_reordered_input_gives_the_same_panes [TestStream],
                test_stream_watermark_hold_keeps_a_downstream_grouping_on_time [TestStream],
                test_stream_processing_time_advance_fires_early_pane [TestStream, ProcessingTime],
                unbounded_source_runs_until_its_watermark_reaches_infinity [UnboundedSources],
                unbounded_source_is_cancelled_from_the_pipeline_handle [UnboundedSources, RunAsync],
                // Failures.
                dofn_error_fails_run_naming_transform,
                dofn_panic_fails_run_naming_transform,
                dofn_error_in_finish_bundle_fails_run,
                dofn_error_in_setup_fails_run,
                combine_fn_panic_fails_run_naming_transform,
                sum_that_overflows_fails_run_naming_transform_and_key,
                sum_whose_partial_sums_overflow_when_merged_fails_run,
                failing_passert_fails_run,
                passert_on_windowed_input_fails_when_a_window_is_missing,
                duplicate_transform_names_are_a_construction_error,
                singleton_side_input_with_two_elements_fails_run,
                map_lookup_of_a_key_with_two_values_fails_run,
                partition_index_out_of_range_fails_run,
                flatten_of_no_inputs_is_a_construction_error,
                run_error_keeps_the_user_error_as_its_source,
            );
        }
    };
    (@cases $($(#[$attr:meta])* $case:ident $([$($need:ident),*])?),* $(,)?) => {
        $(
            #[test]
            $(#[$attr])*
            fn $case() {
                let needs: &[$crate::Capability] = &[$($($crate::Capability::$need),*)?];
                let capabilities = capabilities();
                let missing: Vec<$crate::Capability> =
                    needs.iter().copied().filter(|c| !capabilities.supports(*c)).collect();
                if let Some(why) = deviation(stringify!($case)) {
                    $crate::expect_deviation(|| $crate::cases::$case(options()), why);
                } else if missing.is_empty() {
                    $crate::cases::$case(options());
                } else {
                    $crate::expect_refused(|| $crate::cases::$case(options()), &missing);
                }
            }
        )*
    };
}

/// The README's Rust examples, compiled (and run unless marked `no_run`) as doctests, so the
/// "pipeline in 15 lines" a user pastes into their own crate keeps compiling.
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
pub struct ReadmeExamples;
