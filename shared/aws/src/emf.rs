//! The measures of SPEC §11 on AWS: a `metrics` recorder that sums what one invocation
//! recorded and prints it, when the invocation ends, as CloudWatch embedded metric format
//! (EMF) lines on stdout — CloudWatch Logs turns them into metrics, no API call, no agent.
//!
//! A small writer of the EMF JSON specification rather than `metrics_cloudwatch_embedded`:
//! the lines must come out at the end of each of our own handlers (HTTP, SQS, the stream and
//! the tick share functions), which [`flush`] is called from; it adds no dependency to
//! bootstraps held to a size budget; and the names the dashboard reads are fixed here.
//!
//! One line per metric and label value, e.g.
//! `{"_aws":{"Timestamp":…,"CloudWatchMetrics":[{"Namespace":"Hookline","Dimensions":[["Outcome"]],
//! "Metrics":[{"Name":"Webhooks","Unit":"Count"}]}]},"Outcome":"accepted","Webhooks":2,"Function":"webhook-deliver"}`.
//! The label (`outcome`, `result`, `kind`, `status`) is the one dimension; a metric without a
//! label has none. Durations are in milliseconds, as arrays of values (at most 100 a line).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, OnceLock};

use metrics::{
    Counter, CounterFn, Gauge, GaugeFn, Histogram, HistogramFn, Key, KeyName, Metadata, Recorder,
    SharedString, Unit,
};
use serde_json::{Map, Value, json};

/// The CloudWatch namespace of every measure.
pub const NAMESPACE: &str = "Hookline";
/// Values of one metric in one line, at most (the EMF limit).
const MAX_VALUES: usize = 100;

/// A metric and its label (the dimension), as recorded.
type Series = (String, Option<(String, String)>);

#[derive(Default)]
struct Acc {
    counters: BTreeMap<Series, u64>,
    gauges: BTreeMap<Series, f64>,
    histograms: BTreeMap<Series, Vec<f64>>,
}

/// The recorder: what the current invocation recorded, until [`Emf::take_lines`].
#[derive(Clone, Default)]
pub struct Emf {
    acc: Arc<Mutex<Acc>>,
    function: Option<String>,
}

struct Handle {
    series: Series,
    acc: Arc<Mutex<Acc>>,
}

impl Handle {
    fn with(&self, f: impl FnOnce(&mut Acc, &Series)) {
        if let Ok(mut acc) = self.acc.lock() {
            f(&mut acc, &self.series);
        }
    }
}

impl CounterFn for Handle {
    fn increment(&self, value: u64) {
        if value > 0 {
            self.with(|acc, s| *acc.counters.entry(s.clone()).or_default() += value);
        }
    }
    fn absolute(&self, value: u64) {
        self.with(|acc, s| {
            acc.counters.insert(s.clone(), value);
        });
    }
}

impl GaugeFn for Handle {
    fn increment(&self, value: f64) {
        self.with(|acc, s| *acc.gauges.entry(s.clone()).or_default() += value);
    }
    fn decrement(&self, value: f64) {
        self.with(|acc, s| *acc.gauges.entry(s.clone()).or_default() -= value);
    }
    fn set(&self, value: f64) {
        self.with(|acc, s| {
            acc.gauges.insert(s.clone(), value);
        });
    }
}

impl HistogramFn for Handle {
    fn record(&self, value: f64) {
        self.with(|acc, s| acc.histograms.entry(s.clone()).or_default().push(value));
    }
}

impl Recorder for Emf {
    fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
        Counter::from_arc(self.handle(key))
    }
    fn register_gauge(&self, key: &Key, _: &Metadata<'_>) -> Gauge {
        Gauge::from_arc(self.handle(key))
    }
    fn register_histogram(&self, key: &Key, _: &Metadata<'_>) -> Histogram {
        Histogram::from_arc(self.handle(key))
    }
}

/// `hookline_attempt_duration_seconds` → (`AttemptDuration`, milliseconds, ×1000);
/// `hookline_webhooks_total` → (`Webhooks`, count, ×1).
fn emf_name(name: &str) -> (String, &'static str, f64) {
    let base = name.strip_prefix("hookline_").unwrap_or(name);
    let base = base.strip_suffix("_total").unwrap_or(base);
    let (base, unit, scale) = match base.strip_suffix("_seconds") {
        Some(b) => (b, "Milliseconds", 1000.0),
        None => (base, "Count", 1.0),
    };
    (camel(base), unit, scale)
}

fn camel(snake: &str) -> String {
    snake
        .split('_')
        .map(|w| {
            let mut c = w.chars();
            c.next()
                .map(|f| f.to_uppercase().chain(c).collect::<String>())
                .unwrap_or_default()
        })
        .collect()
}

impl Emf {
    /// A recorder whose lines name `function` (`AWS_LAMBDA_FUNCTION_NAME`) as a property.
    pub fn new(function: Option<String>) -> Emf {
        Emf {
            acc: Arc::default(),
            function,
        }
    }

    fn handle(&self, key: &Key) -> Arc<Handle> {
        let label = key
            .labels()
            .next()
            .map(|l| (l.key().to_string(), l.value().to_string()));
        Arc::new(Handle {
            series: (key.name().to_string(), label),
            acc: self.acc.clone(),
        })
    }

    /// What was recorded since the last call, as EMF lines at `timestamp_ms`; the recorder
    /// starts again from nothing.
    pub fn take_lines(&self, timestamp_ms: i64) -> Vec<String> {
        let acc = match self.acc.lock() {
            Ok(mut acc) => std::mem::take(&mut *acc),
            Err(_) => return Vec::new(),
        };
        let mut lines = Vec::new();
        let counters = acc.counters.into_iter().map(|(s, v)| (s, vec![v as f64]));
        let gauges = acc.gauges.into_iter().map(|(s, v)| (s, vec![v]));
        for ((name, label), values) in counters.chain(gauges).chain(acc.histograms) {
            let (metric, unit, scale) = emf_name(&name);
            for chunk in values.chunks(MAX_VALUES) {
                let dimension = label.as_ref().map(|(k, v)| (camel(k), v.clone()));
                let dimensions: Vec<&str> = dimension.iter().map(|(k, _)| k.as_str()).collect();
                let mut line = Map::new();
                line.insert(
                    "_aws".into(),
                    json!({"Timestamp": timestamp_ms, "CloudWatchMetrics": [{
                        "Namespace": NAMESPACE, "Dimensions": [dimensions],
                        "Metrics": [{"Name": metric, "Unit": unit}]}]}),
                );
                if let Some((k, v)) = &dimension {
                    line.insert(k.clone(), Value::String(v.clone()));
                }
                let value = match chunk {
                    [one] => json!(one * scale),
                    many => Value::Array(many.iter().map(|v| json!(v * scale)).collect()),
                };
                line.insert(metric.clone(), value);
                if let Some(f) = &self.function {
                    line.insert("Function".into(), Value::String(f.clone()));
                }
                lines.push(Value::Object(line).to_string());
            }
        }
        lines
    }
}

static RECORDER: OnceLock<Emf> = OnceLock::new();

/// Installs the process's recorder (once; later calls answer the same one).
pub fn install(function: Option<String>) -> &'static Emf {
    RECORDER.get_or_init(|| {
        let emf = Emf::new(function);
        if metrics::set_global_recorder(emf.clone()).is_err() {
            tracing::warn!("a metrics recorder was installed already: no EMF lines");
        }
        emf
    })
}

/// Runs one invocation, then prints what it recorded, whatever its result.
pub async fn flushed<T>(invocation: impl std::future::Future<Output = T>) -> T {
    let result = invocation.await;
    flush();
    result
}

/// Prints what the invocation recorded (at the end of each invocation).
pub fn flush() {
    if let Some(emf) = RECORDER.get() {
        let now = jiff::Timestamp::now().as_millisecond();
        let lines = emf.take_lines(now);
        if !lines.is_empty() {
            use std::io::Write;
            let mut out = std::io::stdout().lock();
            for line in lines {
                let _ = writeln!(out, "{line}");
            }
            let _ = out.flush();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_follow_the_emf_specification() {
        let emf = Emf::new(Some("webhook-deliver".into()));
        metrics::with_local_recorder(&emf, || {
            metrics::counter!("hookline_webhooks_total", "outcome" => "accepted").increment(2);
            metrics::counter!("hookline_webhooks_total", "outcome" => "failed").increment(0);
            metrics::counter!("hookline_events_taken_total").increment(1);
            for ms in 0..150 {
                metrics::histogram!("hookline_attempt_duration_seconds").record(ms as f64 / 1000.0);
            }
            metrics::gauge!("hookline_timers_due", "kind" => "retry").set(3.0);
        });
        let lines: Vec<Value> = emf
            .take_lines(1_700_000_000_000)
            .iter()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        let find = |name: &str| -> Vec<&Value> {
            lines.iter().filter(|l| l.get(name).is_some()).collect()
        };
        let webhooks = find("Webhooks");
        assert_eq!(webhooks.len(), 1, "a counter at zero writes nothing");
        assert_eq!(
            webhooks[0],
            &json!({"_aws": {"Timestamp": 1_700_000_000_000_i64, "CloudWatchMetrics": [{
                        "Namespace": "Hookline", "Dimensions": [["Outcome"]],
                        "Metrics": [{"Name": "Webhooks", "Unit": "Count"}]}]},
                    "Outcome": "accepted", "Webhooks": 2.0, "Function": "webhook-deliver"})
        );
        let events = find("EventsTaken");
        assert_eq!(
            events[0]["_aws"]["CloudWatchMetrics"][0]["Dimensions"],
            json!([[]])
        );
        let durations = find("AttemptDuration");
        assert_eq!(
            durations.len(),
            2,
            "150 values: 100 in one line, 50 in the next"
        );
        assert_eq!(
            durations[0]["AttemptDuration"].as_array().unwrap().len(),
            100
        );
        assert_eq!(durations[1]["AttemptDuration"][49], json!(149.0));
        assert_eq!(
            durations[0]["_aws"]["CloudWatchMetrics"][0]["Metrics"][0]["Unit"],
            "Milliseconds"
        );
        assert_eq!(find("TimersDue")[0]["Kind"], "retry");
        assert!(
            emf.take_lines(0).is_empty(),
            "taken: the next invocation starts empty"
        );
    }
}
