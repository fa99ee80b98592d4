//! `GET /metrics`: Prometheus text exposition (unauthenticated, as µTask's).
//!
//! Two kinds of series: HTTP request counters and latency histograms recorded by a middleware
//! (labelled by the matched route, never the raw path, so ids do not explode cardinality), and
//! gauges read from the database at scrape time (tasks by state and template, resolutions by
//! state, the claimable queue depth, live instances). Nothing sealed is read: metrics carry no
//! secret. The registry lives in [`AppState`] (no global recorder).

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::Registry;
use tokio::sync::Mutex;

use super::{ApiError, AppState};
use crate::store;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    method: String,
    route: String,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    method: String,
    route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TaskLabels {
    state: String,
    template: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabels {
    state: String,
}

/// The metrics of one instance.
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    latency: Family<RouteLabels, Histogram>,
    tasks: Family<TaskLabels, Gauge>,
    resolutions: Family<StateLabels, Gauge>,
    claimable: Gauge,
    instances: Gauge,
    /// Serializes scrapes: the DB gauges are cleared and refilled before encoding.
    scrape: Mutex<()>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("mutask");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "http_requests",
            "HTTP requests answered, by method, matched route and status",
            requests.clone(),
        );
        let latency = Family::<RouteLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.001, 2.5, 12))
        });
        registry.register(
            "http_request_duration_seconds",
            "Time to answer an HTTP request, by method and matched route",
            latency.clone(),
        );
        let tasks = Family::<TaskLabels, Gauge>::default();
        registry.register(
            "tasks",
            "Tasks by state and template (read from the database at scrape time)",
            tasks.clone(),
        );
        let resolutions = Family::<StateLabels, Gauge>::default();
        registry.register(
            "resolutions",
            "Resolutions by state (read from the database at scrape time)",
            resolutions.clone(),
        );
        let claimable = Gauge::default();
        registry.register(
            "queue_claimable",
            "Resolutions a runner could claim now (queue depth)",
            claimable.clone(),
        );
        let instances = Gauge::default();
        registry.register(
            "instances_alive",
            "mutask instances with a heartbeat in the last minute",
            instances.clone(),
        );
        registry.register(
            "build",
            "Version of this mutask binary",
            Info::new(vec![("version", env!("CARGO_PKG_VERSION"))]),
        );
        Metrics {
            registry,
            requests,
            latency,
            tasks,
            resolutions,
            claimable,
            instances,
            scrape: Mutex::new(()),
        }
    }

    fn observe(&self, method: &str, route: &str, status: u16, seconds: f64) {
        self.requests
            .get_or_create(&RequestLabels {
                method: method.to_string(),
                route: route.to_string(),
                status,
            })
            .inc();
        self.latency
            .get_or_create(&RouteLabels {
                method: method.to_string(),
                route: route.to_string(),
            })
            .observe(seconds);
    }

    fn fill(&self, snap: &store::metrics::Snapshot) {
        self.tasks.clear();
        for (state, template, n) in &snap.tasks {
            self.tasks
                .get_or_create(&TaskLabels {
                    state: state.clone(),
                    template: template.clone(),
                })
                .set(*n);
        }
        self.resolutions.clear();
        for (state, n) in &snap.resolutions {
            self.resolutions
                .get_or_create(&StateLabels {
                    state: state.clone(),
                })
                .set(*n);
        }
        self.claimable.set(snap.claimable);
        self.instances.set(snap.instances_alive);
    }

    fn encode(&self) -> Result<String, std::fmt::Error> {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)?;
        Ok(out)
    }
}

/// Middleware: counts and times every request by its matched route (`unmatched` otherwise).
pub async fn record(State(metrics): State<Arc<Metrics>>, req: Request, next: Next) -> Response {
    let method = req.method().as_str().to_string();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "unmatched".into());
    let start = Instant::now();
    let response = next.run(req).await;
    metrics.observe(
        &method,
        &route,
        response.status().as_u16(),
        start.elapsed().as_secs_f64(),
    );
    response
}

/// Prometheus metrics of this instance and of the shared database.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "health",
    operation_id = "metrics",
    responses((status = 200, description = "Prometheus text exposition format 0.0.4.", body = String, content_type = "text/plain; version=0.0.4")),
)]
pub async fn metrics(State(state): State<AppState>) -> Result<Response, ApiError> {
    let m = &state.metrics;
    let _guard = m.scrape.lock().await;
    let snap = store::metrics::snapshot(&state.store).await?;
    m.fill(&snap);
    let body = m
        .encode()
        .map_err(|e| ApiError::internal(format!("encoding metrics: {e}")))?;
    Ok((
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        body,
    )
        .into_response())
}
