//! taxon-auth over HTTP: `POST /token`, the bearer guard, the login rate limits and what
//! reaches the log, driven through small axum routers with `tower::ServiceExt::oneshot`.

mod common;
mod failures;
mod guard;
mod logs;
mod rate_limit;
mod token;
