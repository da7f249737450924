//! Translation of Runnel graphs into Beam pipelines: a snapshot of a pipeline using every kind
//! of transform, the structure Beam runners rely on, and the refusals.

use prost::Message;
use runnel::prelude::*;
use runnel_runner_portable::proto::pipeline as pb;
use runnel_runner_portable::translate::{
    graph_fingerprint, translate, translate_job, EnvironmentSpec, FnPayload, TranslateError, TranslateOptions,
};
use std::fmt::Write as _;

fn options() -> TranslateOptions {
    TranslateOptions { environment: EnvironmentSpec::External { endpoint: "localhost:50000".into() }, batch_only: true }
}

/// Create → ParDo with a side input → fixed windows with early firings → Combine → GroupByKey.
fn example() -> Pipeline {
    let p = Pipeline::new(PipelineOptions::default());
    let side = p.apply("Side", Create::of(vec![1i64, 2]));
    let view = View::as_iterable(&side);
    let v = view.clone();
    p.apply("Words", Create::of(vec!["a".to_string(), "b".into(), "a".into()]))
        .apply(
            "Pair",
            ParDo::from_fn(move |w: String, ctx: &mut DoFnContext<'_, '_, (String, i64)>| {
                let n = ctx.side_input(&v)?.len() as i64;
                ctx.emit((w, n));
                Ok(())
            })
            .with_side_input(&view),
        )
        .apply(
            "Window",
            WindowInto::new(FixedWindows::of(60_000))
                .triggering(AfterWatermark::past_end_of_window().with_early_firings(AfterCount::of(2)))
                .accumulating_fired_panes()
                .with_allowed_lateness(5_000),
        )
        .apply("Sum", Combine::per_key(combine::Sum::new()))
        .group_by_key("Group");
    p
}

/// A readable, deterministic rendering of a Beam pipeline (payloads decoded where Runnel knows
/// them), for the snapshot.
fn render(pipeline: &pb::Pipeline) -> String {
    let c = pipeline.components.as_ref().unwrap();
    let mut s = String::new();
    let _ = writeln!(s, "roots: {:?}", pipeline.root_transform_ids);
    for (id, t) in &c.transforms {
        let spec = t.spec.as_ref();
        let urn = spec.map(|s| s.urn.as_str()).unwrap_or("(composite)");
        let _ = writeln!(s, "transform {id} [{urn}] env={:?}", t.environment_id);
        let _ = writeln!(s, "  in={:?} out={:?} sub={:?}", t.inputs, t.outputs, t.subtransforms);
        let payload = spec.map(|s| s.payload.as_slice()).unwrap_or_default();
        match urn {
            "beam:transform:pardo:v1" => {
                let p = pb::ParDoPayload::decode(payload).unwrap();
                let f = p.do_fn.unwrap();
                let fp: FnPayload = serde_json::from_slice(&f.payload).unwrap();
                let _ = writeln!(s, "  do_fn={} transform={}", f.urn, fp.transform);
                for (tag, si) in &p.side_inputs {
                    let view = String::from_utf8(si.view_fn.as_ref().unwrap().payload.clone()).unwrap();
                    let _ = writeln!(s, "  side {tag}: {} view={view}", si.access_pattern.as_ref().unwrap().urn);
                }
            }
            "beam:transform:combine_per_key:v1" | "beam:transform:combine_grouped_values:v1" => {
                let p = pb::CombinePayload::decode(payload).unwrap();
                let _ = writeln!(s, "  combine_fn={} acc={}", p.combine_fn.unwrap().urn, p.accumulator_coder_id);
            }
            "beam:transform:window_into:v1" => {
                let p = pb::WindowIntoPayload::decode(payload).unwrap();
                let w = p.window_fn.unwrap();
                let _ = writeln!(
                    s,
                    "  window_fn={} {:?}",
                    w.urn,
                    pb::FixedWindowsPayload::decode(w.payload.as_slice()).unwrap()
                );
            }
            _ => {}
        }
    }
    for (id, pc) in &c.pcollections {
        let _ = writeln!(
            s,
            "pcollection {id}: coder={} ws={} bounded={}",
            pc.coder_id, pc.windowing_strategy_id, pc.is_bounded
        );
    }
    for (id, coder) in &c.coders {
        let spec = coder.spec.as_ref().unwrap();
        let _ = writeln!(
            s,
            "coder {id}: {} {:?} {:?}",
            spec.urn,
            String::from_utf8_lossy(&spec.payload),
            coder.component_coder_ids
        );
    }
    for (id, ws) in &c.windowing_strategies {
        let _ = writeln!(s, "windowing {id}: {:?}", ws);
    }
    for (id, env) in &c.environments {
        let ext = pb::ExternalPayload::decode(env.payload.as_slice()).unwrap();
        let _ = writeln!(s, "environment {id}: {} {} caps={:?}", env.urn, ext.endpoint.unwrap().url, env.capabilities);
    }
    s
}

#[test]
fn a_pipeline_of_every_transform_kind_translates_as_the_snapshot_shows() {
    let graph = example().graph();
    let beam = translate(&graph, &options()).unwrap();
    insta::assert_snapshot!(render(&beam));
}

#[test]
fn every_reference_resolves_and_no_root_is_an_unknown_leaf() {
    let graph = example().graph();
    let beam = translate(&graph, &options()).unwrap();
    let c = beam.components.as_ref().unwrap();
    for (id, t) in &c.transforms {
        for pc in t.inputs.values().chain(t.outputs.values()) {
            assert!(c.pcollections.contains_key(pc), "{id} refers to missing pcollection {pc}");
        }
        for sub in &t.subtransforms {
            assert!(c.transforms.contains_key(sub), "{id} refers to missing transform {sub}");
        }
        if !t.environment_id.is_empty() {
            assert!(c.environments.contains_key(&t.environment_id));
        }
    }
    for pc in c.pcollections.values() {
        assert!(c.coders.contains_key(&pc.coder_id), "missing coder {}", pc.coder_id);
        assert!(c.windowing_strategies.contains_key(&pc.windowing_strategy_id));
    }
    for coder in c.coders.values() {
        for comp in &coder.component_coder_ids {
            assert!(c.coders.contains_key(comp), "missing component coder {comp}");
        }
    }
    // Beam Python's job service replaces a root leaf with an unknown URN by an empty source:
    // every leaf without inputs must be an impulse.
    for t in c.transforms.values().filter(|t| t.subtransforms.is_empty() && t.inputs.is_empty()) {
        assert_eq!(t.spec.as_ref().unwrap().urn, "beam:transform:impulse:v1", "{}", t.unique_name);
    }
    // The functions name their transform and the graph.
    let fp = graph_fingerprint(&graph);
    let pardo = pb::ParDoPayload::decode(c.transforms["Pair"].spec.as_ref().unwrap().payload.as_slice()).unwrap();
    let payload: FnPayload = serde_json::from_slice(&pardo.do_fn.unwrap().payload).unwrap();
    assert_eq!(payload, FnPayload { transform: "Pair".into(), graph_fingerprint: fp });
}

#[test]
fn translation_is_deterministic() {
    let a = translate(&example().graph(), &options()).unwrap().encode_to_vec();
    let b = translate(&example().graph(), &options()).unwrap().encode_to_vec();
    assert_eq!(a, b);
}

fn refusal(p: &Pipeline, batch_only: bool) -> String {
    match translate(&p.graph(), &TranslateOptions { batch_only, ..options() }) {
        Err(e @ TranslateError::Unsupported { .. }) => e.to_string(),
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[test]
fn retracting_accumulation_is_refused() {
    let p = Pipeline::new(PipelineOptions::default());
    p.apply("Create", Create::of(vec![("a".to_string(), 1i64)]))
        .apply("Window", WindowInto::new(FixedWindows::of(10)).retracting_fired_panes())
        .apply("Sum", Combine::per_key(combine::Sum::new()));
    let e = refusal(&p, false);
    assert!(e.contains("retracting accumulation has no Beam wire form"), "{e}");
}

#[test]
fn a_test_stream_is_refused_on_a_batch_only_job_server() {
    let p = Pipeline::new(PipelineOptions::default());
    p.apply("Stream", TestStream::new().add_elements(vec![(1i64, 5)]).advance_watermark_to_infinity());
    let e = refusal(&p, true);
    assert!(e.starts_with("transform 'Stream': a TestStream needs a streaming job server"), "{e}");
    // Without the job's code, its elements are unknown: the graph alone is not enough.
    let e = refusal(&p, false);
    assert!(e.contains("translate the job, not its graph"), "{e}");
}

#[test]
fn a_test_stream_becomes_beams_test_stream_with_its_elements_encoded() {
    let p = Pipeline::new(PipelineOptions::default());
    let stream = TestStream::new()
        .add_elements(vec![(("a".to_string(), 1i64), 5), (("b".to_string(), 2), 7)])
        .advance_watermark_to(10)
        .advance_processing_time(60_000)
        .add_elements(vec![(("a".to_string(), 3), 12)])
        .advance_watermark_to_infinity();
    p.apply("Stream", stream).group_by_key("Group");
    let job = p.job().unwrap();
    let pipeline = translate_job(&job, &TranslateOptions { batch_only: false, ..options() }).unwrap();
    let c = pipeline.components.unwrap();
    let t = &c.transforms["Stream"];
    let spec = t.spec.as_ref().unwrap();
    assert_eq!(spec.urn, "beam:transform:teststream:v1");
    assert!(t.environment_id.is_empty(), "the runner replays a TestStream");
    assert!(pipeline.root_transform_ids.contains(&"Stream".to_string()));
    let payload = pb::TestStreamPayload::decode(spec.payload.as_slice()).unwrap();
    let out = t.outputs.values().next().unwrap();
    assert_eq!(payload.coder_id, c.pcollections[out].coder_id);
    use pb::test_stream_payload::event::Event;
    let events: Vec<String> = payload
        .events
        .iter()
        .map(|e| match e.event.as_ref().unwrap() {
            Event::ElementEvent(add) => {
                let elements: Vec<String> =
                    add.elements.iter().map(|e| format!("{:02x?}@{}", e.encoded_element, e.timestamp)).collect();
                format!("elements {}", elements.join(" "))
            }
            Event::WatermarkEvent(w) => format!("watermark {}", w.new_watermark),
            Event::ProcessingTimeEvent(p) => format!("processing time +{}", p.advance_duration),
        })
        .collect();
    // Grouped downstream, the pairs are KV(length_prefix(serde), length_prefix(serde)): each part
    // is bincode's bytes behind a varint length (a string: 8-byte length, then UTF-8; an i64: 8
    // bytes little-endian).
    let kv = |k: &str, v: i64, ts: i64| {
        let mut key = (k.len() as u64).to_le_bytes().to_vec();
        key.extend_from_slice(k.as_bytes());
        let mut bytes = vec![key.len() as u8];
        bytes.extend(key);
        bytes.push(8);
        bytes.extend_from_slice(&v.to_le_bytes());
        format!("{bytes:02x?}@{ts}")
    };
    assert_eq!(
        events,
        vec![
            format!("elements {} {}", kv("a", 1, 5), kv("b", 2, 7)),
            "watermark 10".to_string(),
            "processing time +60000".to_string(),
            format!("elements {}", kv("a", 3, 12)),
            format!("watermark {}", Timestamp::MAX.millis()),
        ]
    );
}

#[test]
fn a_user_window_fn_is_refused() {
    #[derive(Clone, serde::Serialize, serde::Deserialize)]
    struct Tens;
    impl WindowFn for Tens {
        fn assign(&self, t: Timestamp) -> Vec<Window> {
            let start = t.0.div_euclid(10) * 10;
            vec![Window::interval(start, start + 10)]
        }
    }
    let p = Pipeline::new(PipelineOptions::default());
    p.apply("Create", Create::of(vec![1i64])).apply("Window", WindowInto::custom("tens", Tens));
    let e = refusal(&p, false);
    assert!(e.contains("user window function 'tens'"), "{e}");
}
