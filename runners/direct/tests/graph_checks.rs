//! The validator's checks of TestStream and unbounded-source transforms, and the direct runner's
//! checks of what the bindings hold for them: errors name the transform.

use runnel::model::{Boundedness, GraphError, TestStreamEvent, TestStreamPayload};
use runnel::prelude::*;
use runnel::Timestamp;
use runnel_runner_core::{RunError, Runner, RunnerOptions};
use runnel_runner_direct::DirectRunner;

fn stream_pipeline() -> Pipeline {
    let p = Pipeline::new(PipelineOptions::default());
    p.apply("Events", TestStream::new().add_elements(vec![(1i64, 1), (2, 2)]).advance_watermark_to(5))
        .map("Double", |x| x * 2);
    p
}

fn with_payload(events: Vec<TestStreamEvent>) -> runnel::model::Graph {
    let mut g = stream_pipeline().graph();
    g.transforms.get_mut("Events").unwrap().payload = serde_json::to_value(TestStreamPayload { events }).unwrap();
    g
}

fn shape_error(g: &runnel::model::Graph) -> String {
    match g.validate() {
        Err(GraphError::BadShape { transform, message }) => {
            assert_eq!(transform, "Events");
            message
        }
        other => panic!("expected a shape error on 'Events', got {other:?}"),
    }
}

#[test]
fn a_valid_test_stream_graph_validates() {
    stream_pipeline().graph().validate().unwrap();
}

#[test]
fn watermark_going_back_is_refused() {
    let g = with_payload(vec![
        TestStreamEvent::AdvanceWatermark { watermark: Timestamp(5) },
        TestStreamEvent::AdvanceWatermark { watermark: Timestamp(5) },
    ]);
    assert!(shape_error(&g).contains("the watermark must advance"));
}

#[test]
fn non_positive_processing_time_advance_is_refused() {
    let g = with_payload(vec![TestStreamEvent::AdvanceProcessingTime { advance_ms: 0 }]);
    assert!(shape_error(&g).contains("positive"));
}

#[test]
fn events_after_the_end_are_refused() {
    let g = with_payload(vec![
        TestStreamEvent::AdvanceWatermark { watermark: Timestamp::MAX },
        TestStreamEvent::AddElements { count: 1 },
    ]);
    assert!(shape_error(&g).contains("no event may follow"));
}

#[test]
fn a_bounded_output_is_refused() {
    let mut g = stream_pipeline().graph();
    g.pcollections.get_mut("Events.out").unwrap().is_bounded = Boundedness::Bounded;
    assert!(shape_error(&g).contains("must be unbounded"));
}

#[test]
fn inputs_are_refused() {
    let p = stream_pipeline();
    p.apply("Other", Create::of(vec![0i64]));
    let mut g = p.graph();
    g.transforms.get_mut("Events").unwrap().inputs.insert("in".into(), "Other.out".into());
    assert_eq!(shape_error(&g), "a source has no inputs");
}

/// The payload and the bindings must agree on the element events.
#[test]
fn payload_and_bindings_disagreeing_is_an_error_naming_the_transform() {
    let p = stream_pipeline();
    let mut job = p.job().unwrap();
    job.graph.transforms.get_mut("Events").unwrap().payload = serde_json::to_value(TestStreamPayload {
        events: vec![TestStreamEvent::AddElements { count: 2 }, TestStreamEvent::AddElements { count: 1 }],
    })
    .unwrap();
    match DirectRunner::default().run(job, &RunnerOptions::default()) {
        Err(RunError::Binding { transform, message }) => {
            assert_eq!(transform, "Events");
            assert!(message.contains("2 element events") && message.contains("1 batches"), "{message}");
        }
        other => panic!("expected a binding error, got {other:?}"),
    }
    let mut job = p.job().unwrap();
    job.graph.transforms.get_mut("Events").unwrap().payload =
        serde_json::to_value(TestStreamPayload { events: vec![TestStreamEvent::AddElements { count: 3 }] }).unwrap();
    let err = DirectRunner::default().run(job, &RunnerOptions::default()).unwrap_err().to_string();
    assert!(err.contains("'Events'") && err.contains("of 3 elements holds 2"), "{err}");
}
