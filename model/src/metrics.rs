//! User metrics: counters, distributions and gauges, keyed by transform and name.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Where a metric was reported: the transform's unique name and the metric's name.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct MetricKey {
    /// Unique name of the reporting transform.
    pub step: String,
    /// The metric's name.
    pub name: String,
}

/// Summary of the values reported to a distribution.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DistributionData {
    /// Number of values.
    pub count: i64,
    /// Their sum.
    pub sum: i64,
    /// The smallest.
    pub min: i64,
    /// The largest.
    pub max: i64,
}

impl DistributionData {
    /// A distribution of one value.
    pub fn single(v: i64) -> Self {
        DistributionData { count: 1, sum: v, min: v, max: v }
    }

    /// Adds one value.
    pub fn update(&mut self, v: i64) {
        self.count += 1;
        self.sum += v;
        self.min = self.min.min(v);
        self.max = self.max.max(v);
    }

    /// Folds another summary in.
    pub fn merge(&mut self, o: &DistributionData) {
        self.count += o.count;
        self.sum += o.sum;
        self.min = self.min.min(o.min);
        self.max = self.max.max(o.max);
    }

    /// The mean, if any value was reported.
    pub fn mean(&self) -> Option<f64> {
        (self.count > 0).then(|| self.sum as f64 / self.count as f64)
    }
}

/// The latest value set on a gauge, with a sequence number ordering the updates.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GaugeData {
    /// The value.
    pub value: i64,
    /// Larger is later (processing-time milliseconds where a clock exists).
    pub at: i64,
}

/// All metrics of a job (or of one bundle, before they are merged).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct MetricsSnapshot {
    /// Counters.
    pub counters: BTreeMap<MetricKey, i64>,
    /// Distributions.
    pub distributions: BTreeMap<MetricKey, DistributionData>,
    /// Gauges.
    pub gauges: BTreeMap<MetricKey, GaugeData>,
}

impl MetricsSnapshot {
    /// Adds `n` to a counter.
    pub fn inc_counter(&mut self, step: &str, name: &str, n: i64) {
        *self.counters.entry(MetricKey { step: step.into(), name: name.into() }).or_insert(0) += n;
    }

    /// Folds another snapshot in: counters add, distributions merge, the later gauge wins.
    pub fn merge(&mut self, other: &MetricsSnapshot) {
        for (k, v) in &other.counters {
            *self.counters.entry(k.clone()).or_insert(0) += v;
        }
        for (k, v) in &other.distributions {
            self.distributions.entry(k.clone()).and_modify(|d| d.merge(v)).or_insert(*v);
        }
        for (k, v) in &other.gauges {
            let e = self.gauges.entry(k.clone()).or_insert(*v);
            if v.at >= e.at {
                *e = *v;
            }
        }
    }

    /// The sum of a counter over all transforms reporting it (0 if none did).
    pub fn counter(&self, name: &str) -> i64 {
        self.counters.iter().filter(|(k, _)| k.name == name).map(|(_, v)| v).sum()
    }

    /// A counter of one transform.
    pub fn counter_at(&self, step: &str, name: &str) -> Option<i64> {
        self.counters.get(&MetricKey { step: step.into(), name: name.into() }).copied()
    }

    /// A distribution merged over all transforms reporting it.
    pub fn distribution(&self, name: &str) -> Option<DistributionData> {
        let mut out: Option<DistributionData> = None;
        for (_, d) in self.distributions.iter().filter(|(k, _)| k.name == name) {
            match &mut out {
                Some(o) => o.merge(d),
                None => out = Some(*d),
            }
        }
        out
    }

    /// The latest value of a gauge over all transforms reporting it.
    pub fn gauge(&self, name: &str) -> Option<i64> {
        self.gauges.iter().filter(|(k, _)| k.name == name).max_by_key(|(_, g)| g.at).map(|(_, g)| g.value)
    }
}

/// Metrics reported by one transform, looked up by name without allocating on the hot path.
#[derive(Clone, Debug, Default)]
pub struct StepMetrics {
    counters: std::collections::HashMap<String, i64>,
    distributions: std::collections::HashMap<String, DistributionData>,
    gauges: std::collections::HashMap<String, GaugeData>,
    gauge_seq: i64,
}

impl StepMetrics {
    /// Adds `n` to counter `name`.
    pub fn inc_counter(&mut self, name: &str, n: i64) {
        match self.counters.get_mut(name) {
            Some(c) => *c += n,
            None => {
                self.counters.insert(name.to_string(), n);
            }
        }
    }

    /// Reports `v` to distribution `name`.
    pub fn update_distribution(&mut self, name: &str, v: i64) {
        match self.distributions.get_mut(name) {
            Some(d) => d.update(v),
            None => {
                self.distributions.insert(name.to_string(), DistributionData::single(v));
            }
        }
    }

    /// Sets gauge `name` to `v`.
    pub fn set_gauge(&mut self, name: &str, v: i64) {
        self.gauge_seq += 1;
        self.gauges.insert(name.to_string(), GaugeData { value: v, at: self.gauge_seq });
    }

    /// Whether nothing was reported.
    pub fn is_empty(&self) -> bool {
        self.counters.is_empty() && self.distributions.is_empty() && self.gauges.is_empty()
    }

    /// Moves everything into `snapshot` under `step`, leaving this empty.
    pub fn drain_into(&mut self, step: &str, snapshot: &mut MetricsSnapshot) {
        let key = |name: String| MetricKey { step: step.to_string(), name };
        let mut part = MetricsSnapshot::default();
        part.counters.extend(self.counters.drain().map(|(n, v)| (key(n), v)));
        part.distributions.extend(self.distributions.drain().map(|(n, v)| (key(n), v)));
        part.gauges.extend(self.gauges.drain().map(|(n, v)| (key(n), v)));
        snapshot.merge(&part);
    }
}
