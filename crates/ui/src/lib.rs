//! taxon's read-only web UI: server-rendered HTML with inline SVG charts over the project's
//! stores (runs from taxon-track, versions and aliases from taxon-registry, data versions from
//! taxon-version). No JavaScript and nothing fetched from elsewhere: every page is one
//! self-contained document, and every value read from a store is HTML-escaped ([`html::Esc`]).
//!
//! ```text
//! GET /                 overview: counts, links, latest runs
//! GET /runs             runs table (?model_type, status, data_version, sort=start|METRIC,
//!                       order, page)
//! GET /runs/{id}        params, final metrics, per-epoch curves, stages, artifacts, lineage
//! GET /compare?run=A&run=B  runs side by side: curves overlaid, metrics and params, differences marked
//! GET /registry         models, versions, metrics, aliases
//! GET /registry/{name}  versions and the alias history (?page=N, 100 to a page, newest
//!                       first; ?alias=A&at=TIME: what A pointed at then)
//! GET /data             data versions with row counts and label distribution
//! GET /data/diff?a=ID&b=ID  content diff of two data versions: rows added, removed,
//!                       relabelled, label shift, examples
//! GET /login, POST /login, POST /logout   signing in, when auth is on ([`session`])
//! GET /monitor?window=SECONDS  the served model over time, from its prediction log and the
//!                       alert history: predictions by label, latency, live accuracy, drift
//!                       per feature against the reference, alerts fired and resolved
//! ```
//!
//! The stores are synchronous: each request reads them on a blocking thread.

pub mod data;
pub mod error;
pub mod evaluation;
pub mod html;
pub mod monitor;
pub mod overview;
pub mod registry;
pub mod runs;
pub mod session;
pub mod stores;
pub mod svg;

use std::future::Future;
use std::path::PathBuf;

use axum::Router;
use axum::extract::{Path, Query, RawQuery, State};
use axum::http::{HeaderValue, header};
use axum::response::{Html, Response};
use axum::routing::{get, post};

pub use error::UiError;

/// What every handler reads: the project folder whose stores are shown, and the
/// authentication every page needs when it is on.
#[derive(Clone, Debug)]
pub struct AppState {
    pub project: PathBuf,
    /// `Some`: every page needs a signed-in user ([`session`]).
    pub auth: Option<taxon_auth::Auth>,
    /// What `/monitor` reads: the prediction log, the reference model, the alert history
    /// ([`AppState::with_monitor`]).
    pub monitor: monitor::Sources,
}

impl AppState {
    /// The UI over `project`, open to anyone who can reach it, with no monitoring source.
    pub fn new(project: PathBuf) -> Self {
        Self {
            project,
            auth: None,
            monitor: monitor::Sources::default(),
        }
    }

    /// The same with a login required.
    pub fn with_auth(mut self, auth: taxon_auth::Auth) -> Self {
        self.auth = Some(auth);
        self
    }
}

/// The UI's routes; unknown paths get the 404 page. With auth on, everything but the login
/// routes needs a session.
pub fn app(state: AppState) -> Router {
    let login = Router::new()
        .route("/login", get(session::login_form).post(session::login))
        .route("/logout", post(session::logout))
        .layer(axum::extract::DefaultBodyLimit::max(
            taxon_auth::TOKEN_BODY_LIMIT,
        ));
    Router::new()
        .route("/", get(overview_h))
        .route("/runs", get(runs_h))
        .route("/runs/{id}", get(run_h))
        .route("/compare", get(compare_h))
        .route("/registry", get(registry_h))
        .route("/registry/{name}", get(model_h))
        .route("/data", get(data_h))
        .route("/data/diff", get(data_diff_h))
        .route("/monitor", get(monitor_h))
        .fallback(|| async { UiError::not_found("page") })
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            session::require,
        ))
        .merge(login)
        .layer(axum::middleware::map_response(lock_down))
        .with_state(state)
}

/// What every answer tells the browser: load nothing from anywhere (styles are inline, charts
/// are inline SVG), run no script, and do not guess content types. A value that escaped
/// escaping still could not run.
const CSP: &str = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; \
                   form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

async fn lock_down(mut res: Response) -> Response {
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    res
}

/// Serves [`app`] on `listener` until `shutdown` completes, letting open requests finish.
pub async fn run(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    // With the peer address, logins are rate limited per client as `POST /token` is.
    axum::serve(
        listener,
        app(state).into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await
}

/// Renders on a blocking thread (the stores are synchronous), for the signed-in user.
async fn render(
    f: impl FnOnce() -> Result<String, UiError> + Send + 'static,
) -> Result<Html<String>, UiError> {
    let viewer = session::current_viewer();
    tokio::task::spawn_blocking(move || session::render_as(viewer, f))
        .await
        .map_err(|e| UiError::Store {
            store: "the page renderer",
            message: e.to_string(),
        })?
        .map(Html)
}

async fn overview_h(State(s): State<AppState>) -> Result<Html<String>, UiError> {
    render(move || overview::page_html(&s.project)).await
}

async fn runs_h(
    State(s): State<AppState>,
    Query(q): Query<runs::RunsQuery>,
) -> Result<Html<String>, UiError> {
    render(move || runs::list_page(&s.project, &q)).await
}

async fn run_h(State(s): State<AppState>, Path(id): Path<String>) -> Result<Html<String>, UiError> {
    render(move || runs::run_page(&s.project, &id)).await
}

async fn compare_h(
    State(s): State<AppState>,
    RawQuery(q): RawQuery,
) -> Result<Html<String>, UiError> {
    let ids = runs::compare_ids(q.as_deref());
    render(move || runs::compare_page(&s.project, &ids)).await
}

async fn registry_h(State(s): State<AppState>) -> Result<Html<String>, UiError> {
    render(move || registry::list_page(&s.project)).await
}

async fn model_h(
    State(s): State<AppState>,
    Path(name): Path<String>,
    Query(q): Query<registry::ModelQuery>,
) -> Result<Html<String>, UiError> {
    render(move || registry::model_page(&s.project, &name, &q)).await
}

async fn data_h(State(s): State<AppState>) -> Result<Html<String>, UiError> {
    render(move || data::list_page(&s.project)).await
}

async fn data_diff_h(
    State(s): State<AppState>,
    Query(q): Query<data::DiffQuery>,
) -> Result<Html<String>, UiError> {
    render(move || data::diff_page(&s.project, &q)).await
}

async fn monitor_h(
    State(s): State<AppState>,
    Query(q): Query<monitor::MonitorQuery>,
) -> Result<Html<String>, UiError> {
    render(move || monitor::page_html(&s.project, &s.monitor, &q)).await
}

#[cfg(test)]
mod tests;
