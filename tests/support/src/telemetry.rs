//! A `tracing` subscriber that writes down every span and event, and a `metrics`
//! recorder, for tests that assert on telemetry instead of reading logs.

use std::fmt::Write as _;
use std::sync::{Arc, Mutex, PoisonError};

use metrics_util::debugging::{DebugValue, DebuggingRecorder};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Subscriber};
use tracing_subscriber::Layer;
use tracing_subscriber::layer::{Context, SubscriberExt as _};
use tracing_subscriber::registry::LookupSpan;

/// Every span (when it closes, with all its fields, then `parent=<name>` if it has one)
/// and every event, one line each: `span <target> <name> field=value ...` or
/// `event <target> <LEVEL> field=value ...`.
#[derive(Debug, Clone, Default)]
pub struct TraceLog {
    lines: Arc<Mutex<Vec<String>>>,
}

/// The fields of a span, gathered as they are recorded.
struct Fields(String);

struct Writer<'a>(&'a mut String);

impl Visit for Writer<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        let _ = write!(self.0, " {}={value:?}", field.name());
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        let _ = write!(self.0, " {}={value}", field.name());
    }
}

impl TraceLog {
    /// A fresh log, and a subscriber that writes to it (use with
    /// `tracing::subscriber::with_default` or `set_default`).
    pub fn new() -> (Self, impl Subscriber + Send + Sync) {
        let log = Self::default();
        let subscriber = tracing_subscriber::registry().with(log.clone());
        (log, subscriber)
    }

    /// Every line so far.
    pub fn lines(&self) -> Vec<String> {
        self.lines.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// The lines that start with `prefix` (e.g. `span ezthrottle::client submit`).
    pub fn matching(&self, prefix: &str) -> Vec<String> {
        self.lines().into_iter().filter(|line| line.starts_with(prefix)).collect()
    }

    fn push(&self, line: String) {
        self.lines.lock().unwrap_or_else(PoisonError::into_inner).push(line);
    }
}

impl<S: Subscriber + for<'a> LookupSpan<'a>> Layer<S> for TraceLog {
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let mut fields = String::new();
        attrs.record(&mut Writer(&mut fields));
        if let Some(span) = ctx.span(id) {
            span.extensions_mut().insert(Fields(fields));
        }
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        if let Some(span) = ctx.span(id)
            && let Some(fields) = span.extensions_mut().get_mut::<Fields>()
        {
            values.record(&mut Writer(&mut fields.0));
        }
    }

    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let meta = event.metadata();
        let mut line = format!("event {} {}", meta.target(), meta.level());
        event.record(&mut Writer(&mut line));
        self.push(line);
    }

    fn on_close(&self, id: Id, ctx: Context<'_, S>) {
        if let Some(span) = ctx.span(&id) {
            let meta = span.metadata();
            let fields = span.extensions().get::<Fields>().map(|fields| fields.0.clone()).unwrap_or_default();
            let parent = span.parent().map(|parent| format!(" parent={}", parent.name())).unwrap_or_default();
            self.push(format!("span {} {}{fields}{parent}", meta.target(), meta.name()));
        }
    }
}

/// What [`observe`] saw: the spans and events, and the metrics recorded.
#[derive(Debug)]
pub struct Observed {
    /// Every span and event.
    pub log: TraceLog,
    metrics: Vec<(metrics_util::CompositeKey, DebugValue)>,
}

impl Observed {
    /// The counter `name` with the label `label` (`("reason", "status")`), or the sum of
    /// every series of `name` for `None`; `None` when nothing was counted.
    pub fn counter(&self, name: &str, label: Option<(&str, &str)>) -> Option<u64> {
        let counts: Vec<u64> = self
            .metrics
            .iter()
            .filter(|(key, _)| key.key().name() == name)
            .filter(|(key, _)| {
                label.is_none_or(|(k, v)| key.key().labels().any(|label| label.key() == k && label.value() == v))
            })
            .filter_map(|(_, value)| match value {
                DebugValue::Counter(count) => Some(*count),
                _ => None,
            })
            .collect();
        (!counts.is_empty()).then(|| counts.iter().sum())
    }

    /// How many samples the histogram `name` holds.
    pub fn samples(&self, name: &str) -> usize {
        self.metrics
            .iter()
            .filter(|(key, _)| key.key().name() == name)
            .map(|(_, value)| match value {
                DebugValue::Histogram(samples) => samples.len(),
                _ => 0,
            })
            .sum()
    }
}

/// Runs the future `make` builds on a fresh one-thread runtime, with a [`TraceLog`] as
/// the thread's subscriber and a recording `metrics` recorder: what it logged and counted.
///
/// Run it in a test binary of its own: `tracing` caches per call site whether anyone
/// listens, and other tests of the same process hitting the same call sites concurrently
/// can leave that cache stale.
///
/// # Panics
/// If the runtime cannot be built.
pub fn observe<F: std::future::Future<Output = ()>>(make: impl FnOnce() -> F) -> Observed {
    let (log, subscriber) = TraceLog::new();
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime");
    tracing::subscriber::with_default(subscriber, || {
        metrics::with_local_recorder(&recorder, || runtime.block_on(make()));
    });
    let metrics = snapshotter.snapshot().into_vec().into_iter().map(|(key, _, _, value)| (key, value)).collect();
    Observed { log, metrics }
}
