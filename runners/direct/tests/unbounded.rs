//! Unbounded sources on the direct runner: running until the watermark reaches +∞, cancelling
//! from the handle, processing time from the wall clock or a clock the test controls.

use runnel::prelude::*;
use runnel::{JobState, ManualClock};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Elements `(key, n)` at timestamp `10 n` for n in 1..=count, one per poll, the watermark
/// following; then the end.
fn counting(count: i64) -> ReadUnbounded<(String, i64)> {
    ReadUnbounded::from_fn(move || {
        let mut n = 0;
        move |_now| {
            n += 1;
            Ok(if n <= count {
                ReadPoll { elements: vec![(("k".to_string(), n), Timestamp(10 * n))], watermark: Timestamp(10 * n) }
            } else {
                ReadPoll::done()
            })
        }
    })
}

/// Waits until `f` holds, for at most 10 s.
fn eventually(what: &str, f: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(1));
    }
}

#[test]
fn unbounded_source_runs_until_its_watermark_reaches_infinity() {
    let p = Pipeline::new(PipelineOptions::default());
    let sums = p
        .apply("Read", counting(5))
        .apply("Window", WindowInto::new(FixedWindows::of(20)))
        .combine_per_key("Sum", combine::Sum::new());
    // 1@10 2@20 3@30 4@40 5@50 → [0,20): 1, [20,40): 2+3, [40,60): 4+5
    sums.apply("Check", PAssert::equal_in_any_order(vec![("k".to_string(), 1), ("k".into(), 5), ("k".into(), 9)]));
    assert_eq!(sums.boundedness(), runnel::model::Boundedness::Unbounded);
    let result = p.run().unwrap();
    assert_eq!(result.state(), JobState::Done);
}

/// Windows fire while the source is still running, as its watermark passes their end.
#[test]
fn windows_fire_while_the_source_runs() {
    let p = Pipeline::new(PipelineOptions::default());
    let fired: Arc<Mutex<Vec<(i64, Window)>>> = Arc::default();
    let sink = fired.clone();
    let release = Arc::new(AtomicBool::new(false));
    let gate = release.clone();
    p.apply(
        "Read",
        ReadUnbounded::from_fn(move || {
            let gate = gate.clone();
            let mut step = 0;
            move |_now| {
                step += 1;
                Ok(match step {
                    1 => ReadPoll { elements: vec![(1i64, Timestamp(5)), (2, Timestamp(7))], watermark: Timestamp(5) },
                    2 => ReadPoll::idle(Timestamp(12)),
                    _ if gate.load(Ordering::SeqCst) => ReadPoll::done(),
                    _ => ReadPoll::idle(Timestamp(12)),
                })
            }
        }),
    )
    .apply("Window", WindowInto::new(FixedWindows::of(10)))
    .apply("Sum", Combine::globally(combine::Sum::new()))
    .apply(
        "Sink",
        ParDo::from_fn(move |v: i64, ctx: &mut DoFnContext<'_, '_, ()>| {
            sink.lock().unwrap().push((v, ctx.window()));
            Ok(())
        }),
    );
    let mut handle = p.run_async().unwrap();
    eventually("the window [0, 10) to fire", || !fired.lock().unwrap().is_empty());
    assert_eq!(*fired.lock().unwrap(), vec![(3, Window::interval(0, 10))]);
    assert!(!handle.is_finished(), "the source has not ended");
    release.store(true, Ordering::SeqCst);
    assert!(handle.wait_until_finish_timeout(Duration::from_secs(10)));
    assert_eq!(handle.wait_until_finish().unwrap().state(), JobState::Done);
}

/// A source that never ends runs until it is cancelled from its handle; the job then ends in
/// state Cancelled, with the metrics reported so far.
#[test]
fn never_ending_source_is_cancelled_from_the_handle() {
    let p = Pipeline::new(PipelineOptions::default());
    let seen = Arc::new(AtomicUsize::new(0));
    let count = seen.clone();
    p.apply(
        "Forever",
        ReadUnbounded::from_fn(|| {
            let mut n = 0i64;
            move |_now| {
                n += 1;
                Ok(ReadPoll { elements: vec![(n, Timestamp(n))], watermark: Timestamp(n) })
            }
        }),
    )
    .apply("Window", WindowInto::new(FixedWindows::of(100)))
    .map("Key", |v| (0u8, v))
    .combine_per_key("Sum", combine::Sum::new())
    .apply(
        "Count",
        ParDo::from_fn(move |_: (u8, i64), ctx: &mut DoFnContext<'_, '_, ()>| {
            count.fetch_add(1, Ordering::SeqCst);
            ctx.inc_counter("windows", 1);
            Ok(())
        }),
    );
    let handle = p.run_async().unwrap();
    eventually("a few windows to fire", || seen.load(Ordering::SeqCst) >= 3);
    let started = Instant::now();
    let result = handle.cancel_and_wait().unwrap();
    assert!(started.elapsed() < Duration::from_secs(5), "cancelling took {:?}", started.elapsed());
    assert_eq!(result.state(), JobState::Cancelled);
    assert!(result.counter("windows") >= 3, "{:?}", result.metrics());
}

/// An idle source (nothing new, watermark still) is polled without busy work and can be cancelled.
#[test]
fn idle_source_can_be_cancelled() {
    let p = Pipeline::new(PipelineOptions::default());
    let polls = Arc::new(AtomicUsize::new(0));
    let counter = polls.clone();
    p.apply(
        "Idle",
        ReadUnbounded::<i64>::from_fn(move || {
            let counter = counter.clone();
            move |_now| {
                counter.fetch_add(1, Ordering::SeqCst);
                Ok(ReadPoll::idle(Timestamp::MIN))
            }
        }),
    );
    let handle = p.run_async().unwrap();
    std::thread::sleep(Duration::from_millis(50));
    let result = handle.cancel_and_wait().unwrap();
    assert_eq!(result.state(), JobState::Cancelled);
    let n = polls.load(Ordering::SeqCst);
    assert!(n >= 2, "polled {n} times");
    assert!(n < 1000, "polled {n} times in 50 ms: the runner spins on an idle source");
}

/// Dropping the handle of a running job cancels it.
#[test]
fn dropping_the_handle_cancels_the_job() {
    let p = Pipeline::new(PipelineOptions::default());
    let polls = Arc::new(AtomicUsize::new(0));
    let counter = polls.clone();
    p.apply(
        "Idle",
        ReadUnbounded::<i64>::from_fn(move || {
            let counter = counter.clone();
            move |_now| {
                counter.fetch_add(1, Ordering::SeqCst);
                Ok(ReadPoll::idle(Timestamp::MIN))
            }
        }),
    );
    let handle = p.run_async().unwrap();
    eventually("the source to be polled", || polls.load(Ordering::SeqCst) > 0);
    drop(handle);
    std::thread::sleep(Duration::from_millis(30));
    let after_drop = polls.load(Ordering::SeqCst);
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(polls.load(Ordering::SeqCst), after_drop, "the job kept running after its handle was dropped");
}

/// A bounded pipeline can be cancelled between bundles too.
#[test]
fn long_bounded_pipeline_can_be_cancelled() {
    let p = Pipeline::new(PipelineOptions::default().with_bundle_size(1));
    p.apply("Many", Create::of((0..100_000i64).collect())).apply(
        "Slow",
        ParDo::from_fn(|x: i64, ctx: &mut DoFnContext<'_, '_, i64>| {
            std::thread::sleep(Duration::from_micros(200));
            ctx.emit(x);
            Ok(())
        }),
    );
    let handle = p.run_async().unwrap();
    std::thread::sleep(Duration::from_millis(30));
    let started = Instant::now();
    let result = handle.cancel_and_wait().unwrap();
    assert_eq!(result.state(), JobState::Cancelled);
    assert!(started.elapsed() < Duration::from_secs(2), "cancelling took {:?}", started.elapsed());
}

/// A job that failed reports its error through the handle.
#[test]
fn failure_is_reported_through_the_handle() {
    let p = Pipeline::new(PipelineOptions::default());
    p.apply("Broken", ReadUnbounded::<i64>::from_fn(|| |_now| Err("the source is broken".into())));
    let err = p.run_async().unwrap().wait_until_finish().unwrap_err().to_string();
    assert!(err.contains("'Broken'") && err.contains("the source is broken"), "{err}");
}

/// Processing time from a clock the test controls: a processing-time trigger fires when the test
/// advances the clock, not before.
#[test]
fn manual_clock_drives_processing_time_triggers() {
    let p = Pipeline::new(PipelineOptions::default());
    let clock = Arc::new(ManualClock::new(Timestamp(1_000)));
    let fired: Arc<Mutex<Vec<(i64, PaneTiming)>>> = Arc::default();
    let sink = fired.clone();
    let stop = Arc::new(AtomicBool::new(false));
    let gate = stop.clone();
    p.apply(
        "Read",
        ReadUnbounded::from_fn(move || {
            let gate = gate.clone();
            let mut first = true;
            move |_now| {
                Ok(if std::mem::take(&mut first) {
                    ReadPoll { elements: vec![(5i64, Timestamp(1))], watermark: Timestamp(1) }
                } else if gate.load(Ordering::SeqCst) {
                    ReadPoll::done()
                } else {
                    ReadPoll::idle(Timestamp(1))
                })
            }
        }),
    )
    .apply(
        "Window",
        WindowInto::new(GlobalWindows::of())
            .triggering(Triggers::repeatedly(AfterProcessingTime::past_first_element_in_pane().plus_delay_of(100)))
            .discarding_fired_panes(),
    )
    .apply("Sum", Combine::globally(combine::Sum::new()))
    .apply(
        "Sink",
        ParDo::from_fn(move |v: i64, ctx: &mut DoFnContext<'_, '_, ()>| {
            sink.lock().unwrap().push((v, ctx.pane().timing));
            Ok(())
        }),
    );
    let mut handle = p.run_async_with_clock(clock.clone()).unwrap();
    std::thread::sleep(Duration::from_millis(30));
    assert!(fired.lock().unwrap().is_empty(), "fired before the clock moved");
    clock.advance(99);
    std::thread::sleep(Duration::from_millis(30));
    assert!(fired.lock().unwrap().is_empty(), "fired before the delay passed");
    clock.advance(1);
    eventually("the processing-time pane", || !fired.lock().unwrap().is_empty());
    assert_eq!(*fired.lock().unwrap(), vec![(5, PaneTiming::Early)]);
    stop.store(true, Ordering::SeqCst);
    assert!(handle.wait_until_finish_timeout(Duration::from_secs(10)));
    assert_eq!(handle.wait_until_finish().unwrap().state(), JobState::Done);
}

/// Without a TestStream or a clock, processing time is the wall clock.
#[test]
fn wall_clock_fires_processing_time_triggers_in_real_time() {
    let p = Pipeline::new(PipelineOptions::default());
    let fired: Arc<Mutex<Vec<i64>>> = Arc::default();
    let sink = fired.clone();
    let done = fired.clone();
    p.apply(
        "Read",
        ReadUnbounded::from_fn(move || {
            let done = done.clone();
            let mut first = true;
            move |_now| {
                Ok(if std::mem::take(&mut first) {
                    ReadPoll { elements: vec![(7i64, Timestamp(1))], watermark: Timestamp(1) }
                } else if !done.lock().unwrap().is_empty() {
                    ReadPoll::done()
                } else {
                    ReadPoll::idle(Timestamp(1))
                })
            }
        }),
    )
    .apply(
        "Window",
        WindowInto::new(GlobalWindows::of())
            .triggering(Triggers::repeatedly(AfterProcessingTime::past_first_element_in_pane().plus_delay_of(20)))
            .discarding_fired_panes(),
    )
    .apply("Sum", Combine::globally(combine::Sum::new()))
    .apply(
        "Sink",
        ParDo::from_fn(move |v: i64, _ctx: &mut DoFnContext<'_, '_, ()>| {
            sink.lock().unwrap().push(v);
            Ok(())
        }),
    );
    let started = Instant::now();
    let result = p.run().unwrap();
    assert_eq!(result.state(), JobState::Done);
    assert!(started.elapsed() >= Duration::from_millis(20), "fired after {:?}", started.elapsed());
    // The early pane, then the (empty) on-time pane of the global window at +inf.
    assert_eq!(*fired.lock().unwrap(), vec![7, 0]);
}

/// A TestStream owns processing time: giving the pipeline a clock as well is refused.
#[test]
fn test_stream_with_a_clock_is_refused() {
    let p = Pipeline::new(PipelineOptions::default());
    p.apply("Stream", TestStream::new().add_elements(vec![(1i64, 1)]));
    let err = p
        .run_async_with_clock(Arc::new(ManualClock::new(Timestamp(0))))
        .unwrap()
        .wait_until_finish()
        .unwrap_err()
        .to_string();
    assert!(err.contains("'Stream'") && err.contains("clock"), "{err}");
}
