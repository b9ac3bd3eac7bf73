//! The server's Prometheus metrics (prometheus-client, text exposition at `/metrics`).
//!
//! Per-request cost is a few atomic adds and one histogram observation: every route's
//! duration histogram and its counters for the usual status codes are resolved from their label
//! family once, on first use, so a request rarely hashes a label set; rarer status codes go
//! through the family.
//! Gauges that summarise state (queue depth, cache hit ratio) are computed when scraped.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// The routes the server reports on, plus one label for requests no route matched.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Route {
    Predict,
    PredictBatch,
    Models,
    Health,
    Ready,
    Metrics,
    OpenApi,
    Docs,
    AdminReload,
    /// `POST /token` (merged in when auth is on).
    Token,
    /// No route matched (404), or a route this enum does not name.
    Other,
}

impl Route {
    const ALL: [Route; 11] = [
        Route::Predict,
        Route::PredictBatch,
        Route::Models,
        Route::Health,
        Route::Ready,
        Route::Metrics,
        Route::OpenApi,
        Route::Docs,
        Route::AdminReload,
        Route::Token,
        Route::Other,
    ];

    /// The route's path template (the `route` label).
    pub fn label(self) -> &'static str {
        match self {
            Route::Predict => "/v1/predict",
            Route::PredictBatch => "/v1/predict/batch",
            Route::Models => "/v1/models",
            Route::Health => "/health",
            Route::Ready => "/ready",
            Route::Metrics => "/metrics",
            Route::OpenApi => "/openapi.json",
            Route::Docs => "/docs",
            Route::AdminReload => "/v1/admin/reload",
            Route::Token => "/token",
            Route::Other => "unmatched",
        }
    }

    /// The route whose path template is `path`.
    pub fn from_path(path: &str) -> Route {
        Route::ALL
            .into_iter()
            .find(|r| r.label() == path)
            .unwrap_or(Route::Other)
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// Status codes whose counters are kept at hand once used.
const COMMON_STATUSES: [u16; 9] = [200, 400, 404, 405, 413, 415, 422, 500, 503];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteStatus {
    route: &'static str,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabel {
    route: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct VersionLabel {
    model_version: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ModelLabels {
    name: String,
    version: String,
}

/// The kernel paths of `taxon_kernels::paths()` (the same for every model of the process).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KernelLabels {
    int8: String,
    fused: String,
    f32: String,
    level: String,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

fn duration_histogram() -> Histogram {
    // 50 us .. ~6.5 s.
    Histogram::new(exponential_buckets(50e-6, 2.0, 18))
}

/// Why the server closed a connection it had accepted (the `reason` label).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ConnClose {
    /// Idle longer than the idle timeout.
    IdleTimeout,
    /// Its request head took longer than the header-read timeout.
    HeaderTimeout,
    /// Closed to make room for a new connection at the cap.
    Evicted,
    /// Closed at once: the cap was reached and every connection was busy.
    Refused,
}

impl ConnClose {
    /// The `reason` label.
    pub fn label(self) -> &'static str {
        match self {
            ConnClose::IdleTimeout => "idle_timeout",
            ConnClose::HeaderTimeout => "header_timeout",
            ConnClose::Evicted => "evicted",
            ConnClose::Refused => "refused",
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LimitLabel {
    limit: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabel {
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabel {
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AlertLabels {
    rule: String,
    severity: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct NoticeLabels {
    channel: String,
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ChannelLabel {
    channel: String,
}

/// Running totals the embedded alerts read (prediction routes only).
#[derive(Default)]
struct Totals {
    predict_requests: AtomicU64,
    predict_5xx: AtomicU64,
    predict_503: AtomicU64,
    login_limited: AtomicU64,
    auth_failures: AtomicU64,
}

/// One route's series, resolved on first use (so unused ones are not exported as zeros).
#[derive(Default)]
struct RouteSeries {
    duration: OnceLock<Histogram>,
    by_status: [OnceLock<Counter>; COMMON_STATUSES.len()],
}

/// All metrics of one server, and the registry that renders them.
pub struct Metrics {
    registry: Registry,
    requests: Family<RouteStatus, Counter>,
    durations: HistogramFamily<RouteLabel>,
    routes: Vec<RouteSeries>,
    batch_size: Histogram,
    batch_tokens: Histogram,
    queue_depth: Gauge,
    queue_capacity: Gauge,
    queue_rejections: Counter,
    cache_hits: Counter,
    cache_misses: Counter,
    cache_hit_ratio: Gauge<f64, AtomicU64>,
    model_info: Family<ModelLabels, Gauge>,
    evaluated_accuracy: Family<VersionLabel, Gauge<f64, AtomicU64>>,
    model_swaps: Counter,
    model_load_failures: Counter,
    model_errors: Counter,
    inflight: Gauge,
    cache_bytes: Gauge,
    cache_max_bytes: Gauge,
    unreadable_texts: Family<OutcomeLabel, Counter>,
    login_limited: Family<LimitLabel, Counter>,
    auth_failures: Family<ReasonLabel, Counter>,
    alerts_firing: Family<AlertLabels, Gauge>,
    alert_notices: Family<NoticeLabels, Counter>,
    alert_notices_dropped: Family<ChannelLabel, Counter>,
    totals: Totals,
    connections_open: Gauge,
    connections_max: Gauge,
    connections_closed: Family<ReasonLabel, Counter>,
    accept_errors: Counter,
    batched_texts: AtomicU64,
    /// Tokens of the batched texts, as the model counts them.
    batched_tokens: AtomicU64,
    batch_count: AtomicU64,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A fresh registry with every metric at zero.
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let requests = Family::<RouteStatus, Counter>::default();
        let durations: HistogramFamily<RouteLabel> =
            Family::new_with_constructor(duration_histogram);
        let batch_size = Histogram::new(exponential_buckets(1.0, 2.0, 11));
        let batch_tokens = Histogram::new(exponential_buckets(1.0, 2.0, 18));
        let queue_depth = Gauge::default();
        let queue_capacity = Gauge::default();
        let queue_rejections = Counter::default();
        let cache_hits = Counter::default();
        let cache_misses = Counter::default();
        let cache_hit_ratio = Gauge::<f64, AtomicU64>::default();
        let model_info = Family::<ModelLabels, Gauge>::default();
        let evaluated_accuracy = Family::<VersionLabel, Gauge<f64, AtomicU64>>::default();
        let model_swaps = Counter::default();
        let model_load_failures = Counter::default();
        let model_errors = Counter::default();
        let inflight = Gauge::default();
        let unreadable_texts = Family::<OutcomeLabel, Counter>::default();
        let login_limited = Family::<LimitLabel, Counter>::default();
        let auth_failures = Family::<ReasonLabel, Counter>::default();
        let alerts_firing = Family::<AlertLabels, Gauge>::default();
        let alert_notices = Family::<NoticeLabels, Counter>::default();
        let alert_notices_dropped = Family::<ChannelLabel, Counter>::default();
        let cache_bytes = Gauge::default();
        let cache_max_bytes = Gauge::default();
        let connections_open = Gauge::default();
        let connections_max = Gauge::default();
        let connections_closed = Family::<ReasonLabel, Counter>::default();
        let accept_errors = Counter::default();

        registry.register(
            "taxon_requests",
            "HTTP requests answered, by route template and status code",
            requests.clone(),
        );
        registry.register(
            "taxon_request_duration_seconds",
            "Time from request to response head, by route template",
            durations.clone(),
        );
        registry.register(
            "taxon_batch_size",
            "Texts per model batch",
            batch_size.clone(),
        );
        registry.register(
            "taxon_batch_tokens",
            "Estimated tokens per model batch",
            batch_tokens.clone(),
        );
        registry.register(
            "taxon_queue_depth",
            "Texts admitted and not yet answered",
            queue_depth.clone(),
        );
        registry.register(
            "taxon_queue_capacity",
            "Texts the queue admits at most (--queue-size); beyond, requests are refused with 503",
            queue_capacity.clone(),
        );
        registry.register(
            "taxon_queue_rejections",
            "Requests refused with 503 because the queue was full",
            queue_rejections.clone(),
        );
        registry.register(
            "taxon_cache_hits",
            "Predictions answered from the cache",
            cache_hits.clone(),
        );
        registry.register(
            "taxon_cache_misses",
            "Cache look-ups that found nothing valid",
            cache_misses.clone(),
        );
        registry.register(
            "taxon_cache_hit_ratio",
            "Cache hits / (hits + misses) since start",
            cache_hit_ratio.clone(),
        );
        registry.register(
            "taxon_model_info",
            "The model being served (value 1)",
            model_info.clone(),
        );
        registry.register(
            "taxon_model_evaluated_accuracy",
            "The served model version's accuracy on its validation data when trained (metrics.json); absent when none was recorded",
            evaluated_accuracy.clone(),
        );
        registry.register(
            "taxon_model_swaps",
            "Times a new model version replaced the served one",
            model_swaps.clone(),
        );
        registry.register(
            "taxon_model_load_failures",
            "Model loads, warm-ups or self-tests that failed (the old model kept serving)",
            model_load_failures.clone(),
        );
        registry.register(
            "taxon_model_errors",
            "Prediction requests answered 500 model_error: the model failed on their texts",
            model_errors.clone(),
        );
        registry.register(
            "taxon_inflight_requests",
            "HTTP requests being handled",
            inflight.clone(),
        );
        registry.register(
            "taxon_login_limited",
            "POST /token attempts refused with 429 by a login rate limit: client, user_client, user_backoff, saturated",
            login_limited.clone(),
        );
        registry.register(
            "taxon_auth_failures",
            "Requests and logins refused by authentication: missing_token, bad_token, expired, revoked, missing_scope, bad_password, unknown_user",
            auth_failures.clone(),
        );
        registry.register(
            "taxon_alerts_firing",
            "Embedded alert rules (taxon serve --alerts) firing now (1) or not (0)",
            alerts_firing.clone(),
        );
        registry.register(
            "taxon_alert_notices",
            "Tries to send an alert notice, by channel and result (sent, failed)",
            alert_notices.clone(),
        );
        registry.register(
            "taxon_alert_notices_dropped",
            "Alert notices dropped because the channel's outbox was full",
            alert_notices_dropped.clone(),
        );
        registry.register(
            "taxon_unreadable_texts",
            "Texts the model knows no token of: answered with uniform scores and known_tokens 0, or refused with 422 (--refuse-unreadable)",
            unreadable_texts.clone(),
        );
        registry.register(
            "taxon_cache_bytes",
            "Bytes the prediction cache holds (hashed keys, probabilities, bookkeeping)",
            cache_bytes.clone(),
        );
        registry.register(
            "taxon_cache_max_bytes",
            "The prediction cache's byte budget (--cache-max-bytes; 0: cache off)",
            cache_max_bytes.clone(),
        );
        registry.register(
            "taxon_connections_open",
            "HTTP connections open now",
            connections_open.clone(),
        );
        registry.register(
            "taxon_connections_max",
            "The cap on open HTTP connections (--max-connections)",
            connections_max.clone(),
        );
        registry.register(
            "taxon_connections_closed",
            "Connections the server closed: idle_timeout, header_timeout, evicted (room for a new one at the cap), refused (at the cap, every connection busy)",
            connections_closed.clone(),
        );
        registry.register(
            "taxon_accept_errors",
            "Failed accepts of new connections (e.g. out of file descriptors), each followed by a back-off",
            accept_errors.clone(),
        );
        let kernel_info = Family::<KernelLabels, Gauge>::default();
        let paths = taxon_kernels::paths();
        kernel_info
            .get_or_create(&KernelLabels {
                int8: paths.int8.into(),
                fused: paths.fused.into(),
                f32: paths.f32.into(),
                level: paths.level.name().into(),
            })
            .set(1);
        registry.register(
            "taxon_kernel_info",
            "The CPU kernel paths models run on (TAXON_KERNELS or the best the CPU has; value 1)",
            kernel_info,
        );

        let routes = Route::ALL.iter().map(|_| RouteSeries::default()).collect();

        Self {
            registry,
            requests,
            durations,
            routes,
            batch_size,
            batch_tokens,
            queue_depth,
            queue_capacity,
            queue_rejections,
            cache_hits,
            cache_misses,
            cache_hit_ratio,
            model_info,
            evaluated_accuracy,
            model_swaps,
            model_load_failures,
            model_errors,
            inflight,
            cache_bytes,
            cache_max_bytes,
            unreadable_texts,
            login_limited,
            auth_failures,
            alerts_firing,
            alert_notices,
            alert_notices_dropped,
            totals: Totals::default(),
            connections_open,
            connections_max,
            connections_closed,
            accept_errors,
            batched_texts: AtomicU64::new(0),
            batched_tokens: AtomicU64::new(0),
            batch_count: AtomicU64::new(0),
        }
    }

    /// Records one answered request.
    pub fn observe_request(&self, route: Route, status: u16, elapsed: Duration) {
        if matches!(route, Route::Predict | Route::PredictBatch) {
            let t = &self.totals;
            t.predict_requests.fetch_add(1, Ordering::Relaxed);
            if status >= 500 {
                t.predict_5xx.fetch_add(1, Ordering::Relaxed);
            }
            if status == 503 {
                t.predict_503.fetch_add(1, Ordering::Relaxed);
            }
        }
        let series = &self.routes[route.index()];
        series
            .duration
            .get_or_init(|| {
                self.durations.get_or_create_owned(&RouteLabel {
                    route: route.label(),
                })
            })
            .observe(elapsed.as_secs_f64());
        let key = || RouteStatus {
            route: route.label(),
            status,
        };
        match COMMON_STATUSES.iter().position(|&s| s == status) {
            Some(i) => {
                series.by_status[i]
                    .get_or_init(|| self.requests.get_or_create_owned(&key()))
                    .inc();
            }
            None => {
                self.requests.get_or_create(&key()).inc();
            }
        }
    }

    /// One more request in flight, until the guard drops.
    pub fn inflight(&self) -> InflightGuard {
        self.inflight.inc();
        InflightGuard(self.inflight.clone())
    }

    /// Auth is on: every login limit's and every auth failure reason's series starts at 0, so
    /// the first refusal is an increase (a counter series born at 1 shows no `increase()` in
    /// Prometheus).
    pub fn auth_on(&self) {
        let zero = Duration::ZERO;
        for limited in [
            taxon_auth::Limited::Client(zero),
            taxon_auth::Limited::User(zero),
            taxon_auth::Limited::Backoff(zero),
            taxon_auth::Limited::Saturated,
        ] {
            self.login_limited.get_or_create_owned(&LimitLabel {
                limit: limited.label(),
            });
        }
        for failure in taxon_auth::AuthFailure::ALL {
            self.auth_failures.get_or_create_owned(&ReasonLabel {
                reason: failure.label(),
            });
        }
    }

    /// A login refused by the rate limit named `limit`.
    pub fn login_limited(&self, limit: &'static str) {
        self.login_limited
            .get_or_create(&LimitLabel { limit })
            .inc();
        self.totals.login_limited.fetch_add(1, Ordering::Relaxed);
    }

    /// A request or login refused by authentication, for `reason` (an `AuthFailure` label).
    pub fn auth_failure(&self, reason: &'static str) {
        self.auth_failures
            .get_or_create(&ReasonLabel { reason })
            .inc();
        self.totals.auth_failures.fetch_add(1, Ordering::Relaxed);
    }

    /// Whether the embedded alert `rule` fires.
    pub fn alert_firing(&self, rule: &str, severity: &str, firing: bool) {
        self.alerts_firing
            .get_or_create(&AlertLabels {
                rule: rule.to_string(),
                severity: severity.to_string(),
            })
            .set(i64::from(firing));
    }

    /// A try to send an alert notice to `channel`.
    pub fn alert_notice(&self, channel: &str, sent: bool) {
        self.alert_notices
            .get_or_create(&NoticeLabels {
                channel: channel.to_string(),
                result: if sent { "sent" } else { "failed" },
            })
            .inc();
    }

    /// An alert notice dropped: `channel`'s outbox was full.
    pub fn alert_notice_dropped(&self, channel: &str) {
        self.alert_notices_dropped
            .get_or_create(&ChannelLabel {
                channel: channel.to_string(),
            })
            .inc();
    }

    /// Running totals since start: prediction requests answered, of them 5xx and 503,
    /// authentication failures, rate-limited logins (what the embedded alerts read).
    pub fn alert_totals(&self) -> AlertTotals {
        let t = &self.totals;
        AlertTotals {
            predict_requests: t.predict_requests.load(Ordering::Relaxed),
            predict_5xx: t.predict_5xx.load(Ordering::Relaxed),
            predict_503: t.predict_503.load(Ordering::Relaxed),
            auth_failures: t.auth_failures.load(Ordering::Relaxed),
            login_limited: t.login_limited.load(Ordering::Relaxed),
        }
    }

    /// A text the model knows no token of, answered (uniform scores) or refused.
    pub fn unreadable_text(&self, refused: bool) {
        let outcome = if refused { "refused" } else { "answered" };
        self.unreadable_texts
            .get_or_create(&OutcomeLabel { outcome })
            .inc();
    }

    /// The prediction cache's size and budget, in bytes (set when scraped).
    pub fn observe_cache(&self, bytes: usize, max_bytes: usize) {
        self.cache_bytes
            .set(i64::try_from(bytes).unwrap_or(i64::MAX));
        self.cache_max_bytes
            .set(i64::try_from(max_bytes).unwrap_or(i64::MAX));
    }

    /// One more open connection, until the guard drops.
    pub fn open_guard(&self) -> InflightGuard {
        self.connections_open.inc();
        InflightGuard(self.connections_open.clone())
    }

    /// The queue's capacity in texts, as exported.
    pub fn set_queue_capacity(&self, capacity: usize) {
        self.queue_capacity
            .set(i64::try_from(capacity).unwrap_or(i64::MAX));
    }

    /// The connection cap, as exported.
    pub fn set_max_connections(&self, max: usize) {
        self.connections_max
            .set(i64::try_from(max).unwrap_or(i64::MAX));
    }

    /// The server closed a connection.
    pub fn connection_closed(&self, reason: ConnClose) {
        self.connections_closed
            .get_or_create(&ReasonLabel {
                reason: reason.label(),
            })
            .inc();
    }

    /// Connections the server closed for `reason` so far.
    pub fn connections_closed(&self, reason: ConnClose) -> u64 {
        self.connections_closed
            .get_or_create(&ReasonLabel {
                reason: reason.label(),
            })
            .get()
    }

    /// An accept failed.
    pub fn accept_error(&self) {
        self.accept_errors.inc();
    }

    /// Records a model batch.
    pub fn observe_batch(&self, texts: usize, tokens: usize) {
        self.batch_size.observe(texts as f64);
        self.batch_tokens.observe(tokens as f64);
        self.batched_texts
            .fetch_add(texts as u64, Ordering::Relaxed);
        self.batched_tokens
            .fetch_add(tokens as u64, Ordering::Relaxed);
        self.batch_count.fetch_add(1, Ordering::Relaxed);
    }

    /// A request refused because the queue was full.
    pub fn queue_rejected(&self) {
        self.queue_rejections.inc();
    }

    /// A cache look-up's outcome.
    pub fn cache_lookup(&self, hit: bool) {
        if hit {
            self.cache_hits.inc();
        } else {
            self.cache_misses.inc();
        }
    }

    /// A new model is served (also called for the first one, without counting a swap), with
    /// the accuracy recorded for it when trained, if any.
    pub fn model_served(
        &self,
        previous: Option<(&str, &str)>,
        name: &str,
        version: &str,
        evaluated_accuracy: Option<f64>,
    ) {
        if let Some((old_name, old_version)) = previous {
            self.model_info.remove(&ModelLabels {
                name: old_name.to_string(),
                version: old_version.to_string(),
            });
            self.model_swaps.inc();
        }
        // Only the served version's: the old one's goes with it, and a model with none
        // recorded exports none.
        self.evaluated_accuracy.clear();
        if let Some(accuracy) = evaluated_accuracy {
            self.evaluated_accuracy
                .get_or_create(&VersionLabel {
                    model_version: version.to_string(),
                })
                .set(accuracy);
        }
        self.model_info
            .get_or_create(&ModelLabels {
                name: name.to_string(),
                version: version.to_string(),
            })
            .set(1);
    }

    /// A model load, warm-up or self-test failed.
    pub fn load_failed(&self) {
        self.model_load_failures.inc();
    }

    /// A prediction request answered with a model error.
    pub fn model_error(&self) {
        self.model_errors.inc();
    }

    /// Prediction requests answered with a model error so far.
    pub fn model_errors(&self) -> u64 {
        self.model_errors.get()
    }

    /// Model swaps so far.
    pub fn swaps(&self) -> u64 {
        self.model_swaps.get()
    }

    /// Load failures so far.
    pub fn load_failures(&self) -> u64 {
        self.model_load_failures.get()
    }

    /// Tokens (as the model counts them) of the texts computed in model batches so far.
    pub fn batched_tokens(&self) -> u64 {
        self.batched_tokens.load(Ordering::Relaxed)
    }

    /// Texts computed in model batches so far, and the number of batches.
    pub fn batches(&self) -> (u64, u64) {
        (
            self.batched_texts.load(Ordering::Relaxed),
            self.batch_count.load(Ordering::Relaxed),
        )
    }

    /// The text exposition, with the scrape-time gauges set from `queue_depth`.
    pub fn render(&self, queue_depth: usize) -> String {
        self.queue_depth
            .set(i64::try_from(queue_depth).unwrap_or(i64::MAX));
        let hits = self.cache_hits.get();
        let total = hits + self.cache_misses.get();
        self.cache_hit_ratio.set(if total == 0 {
            0.0
        } else {
            hits as f64 / total as f64
        });
        let mut out = String::with_capacity(16 * 1024);
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

/// See [`Metrics::alert_totals`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AlertTotals {
    pub predict_requests: u64,
    pub predict_5xx: u64,
    pub predict_503: u64,
    pub auth_failures: u64,
    pub login_limited: u64,
}

/// Decrements a gauge (in-flight requests, open connections) on drop.
pub struct InflightGuard(Gauge);

impl Drop for InflightGuard {
    fn drop(&mut self) {
        self.0.dec();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposition_names_every_metric() {
        let m = Metrics::new();
        m.observe_request(Route::Predict, 200, Duration::from_millis(1));
        m.observe_request(Route::Predict, 418, Duration::from_millis(1));
        m.observe_batch(3, 12);
        m.cache_lookup(true);
        m.cache_lookup(false);
        m.model_served(None, "news", "abc", Some(0.75));
        m.model_served(Some(("news", "abc")), "news", "def", Some(0.875));
        m.model_error();
        m.set_max_connections(64);
        m.set_queue_capacity(1024);
        m.observe_cache(1234, 4096);
        m.unreadable_text(false);
        m.login_limited("user_backoff");
        for reason in taxon_auth::AuthFailure::ALL {
            m.auth_failure(reason.label());
        }
        m.auth_failure("bad_token");
        m.alert_firing("auth", "critical", true);
        m.alert_notice("hook", true);
        m.alert_notice("hook", false);
        m.alert_notice_dropped("hook");
        let open = m.open_guard();
        m.connection_closed(ConnClose::Evicted);
        let text = m.render(5);
        drop(open);
        for needle in [
            "taxon_requests_total{route=\"/v1/predict\",status=\"200\"} 1",
            "taxon_requests_total{route=\"/v1/predict\",status=\"418\"} 1",
            "taxon_request_duration_seconds_bucket{",
            "taxon_batch_size_sum 3",
            "taxon_batch_tokens_sum 12",
            "taxon_queue_depth 5",
            "taxon_queue_capacity 1024",
            "taxon_queue_rejections_total 0",
            "taxon_cache_hits_total 1",
            "taxon_cache_misses_total 1",
            "taxon_cache_hit_ratio 0.5",
            "taxon_model_info{name=\"news\",version=\"def\"} 1",
            "taxon_model_evaluated_accuracy{model_version=\"def\"} 0.875",
            "taxon_model_swaps_total 1",
            "taxon_model_load_failures_total 0",
            "taxon_model_errors_total 1",
            "taxon_inflight_requests 0",
            "taxon_unreadable_texts_total{outcome=\"answered\"} 1",
            "taxon_login_limited_total{limit=\"user_backoff\"} 1",
            "taxon_cache_bytes 1234",
            "taxon_cache_max_bytes 4096",
            "taxon_connections_open 1",
            "taxon_connections_max 64",
            "taxon_connections_closed_total{reason=\"evicted\"} 1",
            "taxon_accept_errors_total 0",
            "taxon_kernel_info{int8=\"",
            "taxon_auth_failures_total{reason=\"missing_token\"} 1",
            "taxon_auth_failures_total{reason=\"bad_token\"} 2",
            "taxon_auth_failures_total{reason=\"expired\"} 1",
            "taxon_auth_failures_total{reason=\"revoked\"} 1",
            "taxon_auth_failures_total{reason=\"missing_scope\"} 1",
            "taxon_auth_failures_total{reason=\"bad_password\"} 1",
            "taxon_auth_failures_total{reason=\"unknown_user\"} 1",
            "taxon_alerts_firing{rule=\"auth\",severity=\"critical\"} 1",
            "taxon_alert_notices_total{channel=\"hook\",result=\"sent\"} 1",
            "taxon_alert_notices_total{channel=\"hook\",result=\"failed\"} 1",
            "taxon_alert_notices_dropped_total{channel=\"hook\"} 1",
        ] {
            assert!(text.contains(needle), "{needle} missing from\n{text}");
        }
        assert!(!text.contains("version=\"abc\""), "{text}");
        let p = taxon_kernels::paths();
        let kernels = format!(
            "taxon_kernel_info{{int8=\"{}\",fused=\"{}\",f32=\"{}\",level=\"{}\"}} 1",
            p.int8, p.fused, p.f32, p.level
        );
        assert!(text.contains(&kernels), "{kernels} missing from\n{text}");
        assert_eq!(m.batches(), (3, 1));
        let t = m.alert_totals();
        assert_eq!(
            (t.predict_requests, t.predict_5xx, t.predict_503),
            (2, 0, 0)
        );
        assert_eq!((t.auth_failures, t.login_limited), (8, 1));
    }

    #[test]
    fn evaluated_accuracy_follows_the_served_version() {
        let m = Metrics::new();
        m.model_served(None, "news", "v1", Some(0.9));
        assert!(
            m.render(0)
                .contains("taxon_model_evaluated_accuracy{model_version=\"v1\"} 0.9")
        );
        // A version trained without validation data exports no accuracy, not the old one's.
        m.model_served(Some(("news", "v1")), "news", "v2", None);
        let text = m.render(0);
        assert!(!text.contains("taxon_model_evaluated_accuracy{"), "{text}");
        assert!(text.contains("taxon_model_info{name=\"news\",version=\"v2\"} 1"));
    }

    #[test]
    fn login_limits_start_at_zero_when_auth_is_on() {
        let m = Metrics::new();
        assert!(!m.render(0).contains("taxon_login_limited_total{"));
        m.auth_on();
        m.login_limited("user_client");
        let text = m.render(0);
        for (limit, n) in [
            ("client", 0),
            ("user_client", 1),
            ("user_backoff", 0),
            ("saturated", 0),
        ] {
            let line = format!("taxon_login_limited_total{{limit=\"{limit}\"}} {n}\n");
            assert!(text.contains(&line), "{line} missing from\n{text}");
        }
        for failure in taxon_auth::AuthFailure::ALL {
            let line = format!(
                "taxon_auth_failures_total{{reason=\"{}\"}} 0\n",
                failure.label()
            );
            assert!(text.contains(&line), "{line} missing from\n{text}");
        }
    }

    #[test]
    fn the_token_route_has_its_own_label() {
        assert_eq!(Route::from_path("/token"), Route::Token);
        let m = Metrics::new();
        m.observe_request(Route::Token, 429, Duration::from_millis(1));
        assert!(
            m.render(0)
                .contains("taxon_requests_total{route=\"/token\",status=\"429\"} 1")
        );
    }
}
