//! Runnel metrics as Beam monitoring infos, both ways.
//!
//! The harness reports each bundle's user metrics in its `ProcessBundleResponse` as Beam's user
//! metric monitoring infos (the runner aggregates them); the portable runner reads the job's
//! committed ones back with `GetJobMetrics`. A metric keeps its transform in the `PTRANSFORM`
//! label and its name in `NAME`, under the namespace [`NAMESPACE`].

use crate::coders::{read_varint, write_varint};
use crate::proto::pipeline as pb;
use runnel_model::metrics::{DistributionData, GaugeData, MetricKey, MetricsSnapshot};
use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

/// The namespace of every Runnel metric.
pub const NAMESPACE: &str = "runnel";

/// Beam's URNs and type URNs of user metrics.
pub mod urn {
    /// A user counter.
    pub const USER_SUM_INT64: &str = "beam:metric:user:sum_int64:v1";
    /// A user distribution.
    pub const USER_DISTRIBUTION_INT64: &str = "beam:metric:user:distribution_int64:v1";
    /// A user gauge.
    pub const USER_LATEST_INT64: &str = "beam:metric:user:latest_int64:v1";
    /// Type: one varint.
    pub const SUM_INT64_TYPE: &str = "beam:metrics:sum_int64:v1";
    /// Type: count, sum, min and max, each a varint.
    pub const DISTRIBUTION_INT64_TYPE: &str = "beam:metrics:distribution_int64:v1";
    /// Type: a timestamp (milliseconds) and a value, each a varint.
    pub const LATEST_INT64_TYPE: &str = "beam:metrics:latest_int64:v1";
}

/// The label keys Beam uses.
mod label {
    pub const PTRANSFORM: &str = "PTRANSFORM";
    pub const NAMESPACE: &str = "NAMESPACE";
    pub const NAME: &str = "NAME";
}

fn info(urn: &str, kind: &str, key: &MetricKey, values: &[i64]) -> pb::MonitoringInfo {
    let mut payload = Vec::new();
    for v in values {
        write_varint(*v as u64, &mut payload);
    }
    pb::MonitoringInfo {
        urn: urn.to_string(),
        r#type: kind.to_string(),
        payload,
        labels: [
            (label::PTRANSFORM.to_string(), key.step.clone()),
            (label::NAMESPACE.to_string(), NAMESPACE.to_string()),
            (label::NAME.to_string(), key.name.clone()),
        ]
        .into(),
        start_time: None,
    }
}

/// The monitoring infos of `metrics`.
pub fn to_monitoring_infos(metrics: &MetricsSnapshot) -> Vec<pb::MonitoringInfo> {
    let mut infos = Vec::new();
    for (key, n) in &metrics.counters {
        infos.push(info(urn::USER_SUM_INT64, urn::SUM_INT64_TYPE, key, &[*n]));
    }
    for (key, d) in &metrics.distributions {
        infos.push(info(
            urn::USER_DISTRIBUTION_INT64,
            urn::DISTRIBUTION_INT64_TYPE,
            key,
            &[d.count, d.sum, d.min, d.max],
        ));
    }
    for (key, g) in &metrics.gauges {
        infos.push(info(urn::USER_LATEST_INT64, urn::LATEST_INT64_TYPE, key, &[g.at, g.value]));
    }
    infos
}

/// Short ids of monitoring infos, for runners that take a bundle's metrics as `monitoring_data`
/// (payloads by short id) and ask for each id's metadata once (Prism does): one id per metric,
/// the same for the life of the worker process.
#[derive(Default)]
pub struct ShortIds {
    ids: Mutex<Assigned>,
}

/// A metric: its URN and labels.
type MetricId = (String, Vec<(String, String)>);

/// Short ids by metric, and each id's metadata (a monitoring info without payload).
type Assigned = (BTreeMap<MetricId, String>, HashMap<String, pb::MonitoringInfo>);

impl ShortIds {
    /// The payloads of `infos` by short id, giving new metrics new ids.
    pub fn payloads(&self, infos: &[pb::MonitoringInfo]) -> BTreeMap<String, Vec<u8>> {
        let mut guard = self.ids.lock().unwrap_or_else(|e| e.into_inner());
        let (by_key, metadata) = &mut *guard;
        let mut out = BTreeMap::new();
        for info in infos {
            let labels: Vec<(String, String)> = info.labels.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
            let next = by_key.len() + 1;
            let id = by_key
                .entry((info.urn.clone(), labels))
                .or_insert_with(|| {
                    let id = format!("runnel{next}");
                    metadata.insert(id.clone(), pb::MonitoringInfo { payload: Vec::new(), ..info.clone() });
                    id
                })
                .clone();
            out.insert(id, info.payload.clone());
        }
        out
    }

    /// The metadata of the given short ids (unknown ones are left out).
    pub fn metadata(&self, ids: &[String]) -> BTreeMap<String, pb::MonitoringInfo> {
        let guard = self.ids.lock().unwrap_or_else(|e| e.into_inner());
        ids.iter().filter_map(|id| guard.1.get(id).map(|m| (id.clone(), m.clone()))).collect()
    }
}

/// Folds the Runnel user metrics among `infos` into `into` (others are skipped: a runner adds
/// its own system metrics). A malformed payload is an error naming the metric.
pub fn merge_monitoring_infos(infos: &[pb::MonitoringInfo], into: &mut MetricsSnapshot) -> Result<(), String> {
    for i in infos {
        if i.labels.get(label::NAMESPACE).map(String::as_str) != Some(NAMESPACE) {
            continue;
        }
        let key = MetricKey {
            step: i.labels.get(label::PTRANSFORM).cloned().unwrap_or_default(),
            name: i.labels.get(label::NAME).cloned().unwrap_or_default(),
        };
        let mut input = i.payload.as_slice();
        let mut next = || -> Result<i64, String> {
            read_varint(&mut input)
                .map(|v| v as i64)
                .map_err(|e| format!("metric '{}' of '{}': bad payload: {}", key.name, key.step, e.0))
        };
        let mut one = MetricsSnapshot::default();
        match i.urn.as_str() {
            urn::USER_SUM_INT64 => {
                one.counters.insert(key.clone(), next()?);
            }
            urn::USER_DISTRIBUTION_INT64 => {
                let d = DistributionData { count: next()?, sum: next()?, min: next()?, max: next()? };
                one.distributions.insert(key.clone(), d);
            }
            urn::USER_LATEST_INT64 => {
                let g = GaugeData { at: next()?, value: next()? };
                one.gauges.insert(key.clone(), g);
            }
            _ => continue,
        }
        into.merge(&one);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_survive_the_round_trip_through_monitoring_infos() {
        let mut m = MetricsSnapshot::default();
        m.inc_counter("Parse", "bad_lines", 3);
        m.inc_counter("Parse", "negative", -7);
        let key = MetricKey { step: "Score".into(), name: "points".into() };
        m.distributions.insert(key.clone(), DistributionData { count: 4, sum: 10, min: -2, max: 9 });
        m.gauges.insert(key, GaugeData { value: 42, at: 1_700_000_000_000 });
        let infos = to_monitoring_infos(&m);
        assert_eq!(infos.len(), 4);
        assert!(infos.iter().all(|i| i.labels["NAMESPACE"] == NAMESPACE));
        let mut back = MetricsSnapshot::default();
        merge_monitoring_infos(&infos, &mut back).unwrap();
        assert_eq!(back, m);
        // Reported twice (two bundles): counters and distributions add up.
        merge_monitoring_infos(&infos, &mut back).unwrap();
        assert_eq!(back.counter_at("Parse", "bad_lines"), Some(6));
        assert_eq!(back.distribution("points").unwrap().count, 8);
    }

    #[test]
    fn short_ids_are_stable_per_metric_and_give_their_metadata() {
        let mut m = MetricsSnapshot::default();
        m.inc_counter("Parse", "bad_lines", 3);
        m.inc_counter("Score", "points", 5);
        let ids = ShortIds::default();
        let first = ids.payloads(&to_monitoring_infos(&m));
        m.inc_counter("Parse", "bad_lines", 1);
        let second = ids.payloads(&to_monitoring_infos(&m));
        assert_eq!(first.len(), 2);
        let mut keys: Vec<&String> = first.keys().collect();
        keys.sort();
        let mut again: Vec<&String> = second.keys().collect();
        again.sort();
        assert_eq!(keys, again, "the same metrics keep their ids");
        let metadata = ids.metadata(&first.keys().cloned().collect::<Vec<_>>());
        let mut back = MetricsSnapshot::default();
        let infos: Vec<pb::MonitoringInfo> = second
            .iter()
            .map(|(id, payload)| pb::MonitoringInfo { payload: payload.clone(), ..metadata[id].clone() })
            .collect();
        merge_monitoring_infos(&infos, &mut back).unwrap();
        assert_eq!(back.counter_at("Parse", "bad_lines"), Some(4));
        assert_eq!(back.counter_at("Score", "points"), Some(5));
        assert!(ids.metadata(&["unknown".to_string()]).is_empty());
    }

    #[test]
    fn other_namespaces_are_skipped_and_bad_payloads_named() {
        let mut m = MetricsSnapshot::default();
        m.inc_counter("Parse", "lines", 1);
        let mut infos = to_monitoring_infos(&m);
        infos[0].labels.insert("NAMESPACE".into(), "someone_else".into());
        let mut back = MetricsSnapshot::default();
        merge_monitoring_infos(&infos, &mut back).unwrap();
        assert_eq!(back, MetricsSnapshot::default());
        let mut bad = to_monitoring_infos(&m);
        bad[0].payload = vec![0x80];
        let err = merge_monitoring_infos(&bad, &mut back).unwrap_err();
        assert!(err.contains("'lines' of 'Parse'"), "{err}");
    }
}
