//! The Prometheus text exposition, written by `prometheus-client`: a [`Registry`] of
//! collectors, each reading its counters at scrape time (the answer path keeps its
//! per-thread atomics; nothing there looks up a registry, locks or allocates).
//!
//! The format is the Prometheus text format 0.0.4
//! (`prometheus_client::encoding::prometheus_text`), not OpenMetrics: it keeps every
//! name as it was, a counter's `_total` included on its `# HELP` and `# TYPE` lines,
//! and writes no `# EOF`. A counter is declared by its full name (see
//! [`super::names`]); [`family`] takes the `_total` off for the encoder, which puts it
//! back.

use std::collections::HashMap;
use std::fmt::Write as _;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::exemplar::Exemplar;
pub(crate) use prometheus_client::registry::Registry;

/// The `Content-Type` of `/metrics` (the Prometheus text format 0.0.4).
pub(crate) const CONTENT_TYPE: &str = "text/plain; version=0.0.4";

/// The text of every collector in `registry`, in the order they were registered.
pub(crate) fn encode(registry: &Registry) -> String {
    let mut out = String::with_capacity(16 * 1024);
    // Writing to a String does not fail, nor do the collectors here.
    let _ = prometheus_client::encoding::prometheus_text::encode(&mut out, registry);
    out
}

/// The text of one collector (a registry of its own): for counters read into a
/// value of their own at the time of the call.
pub(crate) fn encode_one(collector: impl Collector) -> String {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(collector));
    encode(&registry)
}

/// The type of a metric family.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    /// A counter, named with its `_total`.
    Counter,
    /// A gauge.
    Gauge,
    /// A histogram.
    Histogram,
    /// Untyped: a sum or count that is no counter by name (no `_total`).
    Untyped,
}

/// A family being written: its `# HELP` and `# TYPE` lines are out, samples follow.
#[derive(Debug)]
pub(crate) struct Family<'a> {
    encoder: MetricEncoder<'a>,
    kind: Kind,
}

/// Starts the family `name` (as exposed, see [`super::names`]) of type `kind`.
pub(crate) fn family<'a>(
    encoder: &'a mut DescriptorEncoder<'_>,
    name: &'a str,
    help: &str,
    kind: Kind,
) -> Result<Family<'a>, std::fmt::Error> {
    let (name, metric_type) = match kind {
        Kind::Counter => {
            debug_assert!(name.ends_with("_total"), "counter {name} without _total");
            (
                name.strip_suffix("_total").unwrap_or(name),
                MetricType::Counter,
            )
        }
        Kind::Gauge => (name, MetricType::Gauge),
        Kind::Histogram => (name, MetricType::Histogram),
        Kind::Untyped => (name, MetricType::Unknown),
    };
    let encoder = encoder.encode_descriptor(name, help, None, metric_type)?;
    Ok(Family { encoder, kind })
}

/// A sample's value: a count, or a measure (written as an integer when whole).
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Value {
    /// A count.
    Count(u64),
    /// A measure.
    Measure(f64),
}

impl From<u64> for Value {
    fn from(value: u64) -> Self {
        Self::Count(value)
    }
}

impl From<bool> for Value {
    fn from(value: bool) -> Self {
        Self::Count(u64::from(value))
    }
}

impl From<f64> for Value {
    fn from(value: f64) -> Self {
        Self::Measure(value)
    }
}

impl Family<'_> {
    /// One sample with `labels` (none: the family's only sample).
    pub(crate) fn sample(
        &mut self,
        labels: &[(&str, &str)],
        value: impl Into<Value>,
    ) -> Result<(), std::fmt::Error> {
        let mut encoder = self.encoder.encode_family(&labels)?;
        match (self.kind, value.into()) {
            (Kind::Counter, Value::Count(v)) => {
                encoder.encode_counter(&v, None::<&Exemplar<NoLabelSet, u64>>)
            }
            (Kind::Counter, Value::Measure(v)) => {
                encoder.encode_counter(&v, None::<&Exemplar<NoLabelSet, f64>>)
            }
            (_, Value::Count(v)) => encoder.encode_gauge(&v),
            // Whole measures as integers (`14400`, not `14400.0`), as before.
            (_, Value::Measure(v)) if v.fract() == 0.0 && v.abs() < 1e15 => {
                encoder.encode_gauge(&(v as i64))
            }
            (_, Value::Measure(v)) => encoder.encode_gauge(&v),
        }
    }

    /// A histogram's sample with `labels`: `(upper bound, count)` per bound (not
    /// cumulative; +Inf is `count`), the sum and the count (as
    /// [`Histogram::read`](super::metrics::Histogram::read) gives them).
    pub(crate) fn histogram(
        &mut self,
        labels: &[(&str, &str)],
        (buckets, sum, count): (Vec<(f64, u64)>, f64, u64),
    ) -> Result<(), std::fmt::Error> {
        debug_assert_eq!(self.kind, Kind::Histogram);
        let mut encoder = self.encoder.encode_family(&labels)?;
        encoder.encode_histogram(
            sum,
            count,
            &buckets,
            None::<&HashMap<usize, Exemplar<NoLabelSet, f64>>>,
        )
    }
}

/// One family with one unlabelled sample.
pub(crate) fn single(
    encoder: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    kind: Kind,
    value: impl Into<Value>,
) -> Result<(), std::fmt::Error> {
    family(encoder, name, help, kind)?.sample(&[], value)
}

/// One family with a sample per `(label value, value)` under label `label`.
pub(crate) fn labelled<'v, V: Into<Value>>(
    encoder: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    kind: Kind,
    label: &str,
    samples: impl IntoIterator<Item = (&'v str, V)>,
) -> Result<(), std::fmt::Error> {
    let mut family = family(encoder, name, help, kind)?;
    for (value, sample) in samples {
        family.sample(&[(label, value)], sample)?;
    }
    Ok(())
}

/// Appends a summary family to `out`: `prometheus-client` has no summary type, so
/// this one family is written here, in the same text format (`quantiles` as
/// `(q, seconds)`; none yet: only the sum and count).
pub(crate) fn write_summary(
    out: &mut String,
    name: &str,
    help: &str,
    quantiles: &[(f64, f64)],
    sum: f64,
    count: u64,
) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} summary");
    for (q, value) in quantiles {
        let _ = writeln!(out, "{name}{{quantile=\"{q}\"}} {value:.6}");
    }
    let _ = writeln!(out, "{name}_sum {sum:.6}\n{name}_count {count}");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::telemetry::metrics::Histogram;

    #[derive(Debug)]
    struct Sample;

    impl Collector for Sample {
        fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
            single(&mut encoder, "x_total", "Xs.", Kind::Counter, 3u64)?;
            labelled(
                &mut encoder,
                "y",
                "Ys, by z.",
                Kind::Gauge,
                "z",
                [("a\"b", 1.5), ("c", 2.0)],
            )?;
            let histogram = Histogram::new(&[0.01, 0.1]);
            for ms in [5, 50, 50, 500] {
                histogram.observe(std::time::Duration::from_millis(ms));
            }
            family(&mut encoder, "h_seconds", "Hs.", Kind::Histogram)?
                .histogram(&[("a", "b")], histogram.read())?;
            single(&mut encoder, "s_sum", "A sum.", Kind::Untyped, 0.5)
        }
    }

    #[test]
    fn writes_the_prometheus_text_format_with_names_as_declared() {
        let mut registry = Registry::default();
        registry.register_collector(Box::new(Sample));
        let text = encode(&registry);
        assert_eq!(
            text,
            "# HELP x_total Xs.\n# TYPE x_total counter\nx_total 3\n\
             # HELP y Ys, by z.\n# TYPE y gauge\ny{z=\"a\\\"b\"} 1.5\ny{z=\"c\"} 2\n\
             # HELP h_seconds Hs.\n# TYPE h_seconds histogram\n\
             h_seconds_bucket{a=\"b\",le=\"0.01\"} 1\n\
             h_seconds_bucket{a=\"b\",le=\"0.1\"} 3\n\
             h_seconds_bucket{a=\"b\",le=\"+Inf\"} 4\n\
             h_seconds_sum{a=\"b\"} 0.605\nh_seconds_count{a=\"b\"} 4\n\
             # HELP s_sum A sum.\n# TYPE s_sum untyped\ns_sum 0.5\n"
        );
    }

    #[test]
    fn a_summary_has_its_quantiles_sum_and_count() {
        let mut out = String::new();
        write_summary(&mut out, "l_seconds", "Ls.", &[(0.5, 0.25)], 1.0, 4);
        assert_eq!(
            out,
            "# HELP l_seconds Ls.\n# TYPE l_seconds summary\n\
             l_seconds{quantile=\"0.5\"} 0.250000\nl_seconds_sum 1.000000\nl_seconds_count 4\n"
        );
    }
}
