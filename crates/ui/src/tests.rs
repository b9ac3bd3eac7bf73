//! The router through `oneshot`: every page answers on an empty project and on a run store
//! holding hostile text, which comes out escaped; unknown ids get the 404 page.

use std::collections::BTreeMap;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use taxon_track::{MetricPoint, NewRun, RunEnd, RunStore, StageRecord};
use tower::ServiceExt;

use crate::{AppState, app};

async fn get(project: &std::path::Path, uri: &str) -> (StatusCode, String) {
    let res = app(AppState::new(project.to_path_buf()))
        .oneshot(Request::get(uri).body(Body::empty()).unwrap())
        .await
        .unwrap();
    let csp = res.headers()["content-security-policy"].to_str().unwrap();
    assert!(csp.starts_with("default-src 'none'"), "{uri}: {csp}");
    assert!(!csp.contains("script-src"), "{uri}: scripts allowed");
    let status = res.status();
    let body = res.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8(body.to_vec()).unwrap())
}

const HOSTILE: &str = "<script>alert('x')</script>";

/// A run store at `dir/.taxon/runs.db` with one finished run whose name and params are hostile.
fn store_with_hostile_run(dir: &std::path::Path) -> String {
    let mut store = RunStore::open(&dir.join(".taxon/runs.db")).unwrap();
    let id = store
        .create_run(&NewRun {
            name: HOSTILE.into(),
            kind: "train".into(),
            model_type: Some("linear".into()),
            params: BTreeMap::from([("note".to_string(), HOSTILE.to_string())]),
            ..Default::default()
        })
        .unwrap();
    let t = chrono::Utc::now();
    let points: Vec<MetricPoint> = (1..=3)
        .flat_map(|step| {
            [
                MetricPoint {
                    key: "loss".into(),
                    step,
                    value: 1.0 / step as f64,
                    timestamp: t,
                },
                MetricPoint {
                    key: "val_accuracy".into(),
                    step,
                    value: 0.5 + 0.1 * step as f64,
                    timestamp: t,
                },
            ]
        })
        .collect();
    store.log_metrics(&id, &points).unwrap();
    store
        .finish(
            &id,
            &RunEnd {
                metrics: BTreeMap::from([("accuracy".to_string(), 0.875)]),
                stages: vec![StageRecord {
                    name: "fit".into(),
                    seconds: 1.5,
                    peak_rss_bytes: 3 << 20,
                }],
                ..Default::default()
            },
        )
        .unwrap();
    id
}

#[tokio::test]
async fn every_page_answers_on_an_empty_project_without_creating_stores() {
    let tmp = tempfile::tempdir().unwrap();
    for uri in [
        "/",
        "/runs",
        "/registry",
        "/data",
        "/runs?sort=accuracy&page=9",
    ] {
        let (status, body) = get(tmp.path(), uri).await;
        assert_eq!(status, StatusCode::OK, "{uri}: {body}");
        assert!(
            body.starts_with("<!DOCTYPE html>") && body.contains("<title>"),
            "{uri}"
        );
    }
    assert!(
        !tmp.path().join(".taxon").exists(),
        "browsing created a store"
    );
}

#[tokio::test]
async fn unknown_ids_and_paths_get_the_404_page() {
    let tmp = tempfile::tempdir().unwrap();
    store_with_hostile_run(tmp.path());
    for uri in [
        "/runs/ffffffff",
        "/registry/nope",
        "/nowhere",
        "/runs/%3Cb%3E",
    ] {
        let (status, body) = get(tmp.path(), uri).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{uri}");
        assert!(body.contains("<title>Not found · taxon</title>"), "{uri}");
        assert!(!body.contains("<b>"), "{uri}: unescaped id");
    }
}

#[tokio::test]
async fn store_values_are_escaped_and_curves_drawn() {
    let tmp = tempfile::tempdir().unwrap();
    let id = store_with_hostile_run(tmp.path());
    let escaped = "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;";

    let (status, list) = get(tmp.path(), "/runs?model_type=linear&sort=accuracy").await;
    assert_eq!(status, StatusCode::OK);
    assert!(list.contains(escaped) && !list.contains("<script>"));
    assert!(list.contains(&format!("href=\"/runs/{id}\"")));
    assert!(list.contains("data-metric=\"accuracy\">0.8750</td>"));
    let (_, none) = get(tmp.path(), "/runs?model_type=bert").await;
    assert!(none.contains("0 of 1 runs") && !none.contains(&id));

    let (status, run) = get(tmp.path(), &format!("/runs/{}", &id[..8])).await;
    assert_eq!(status, StatusCode::OK);
    assert!(run.contains(escaped) && !run.contains("<script>"));
    assert_eq!(run.matches("<svg").count(), 2, "one chart per history key");
    assert!(run.contains("data-curve=\"loss\"") && run.contains("data-curve=\"val_accuracy\""));
    assert!(run.contains("<td>0.8750</td>"));
    assert!(run.contains("3.0 MiB"));

    let (_, overview) = get(tmp.path(), "/").await;
    assert!(overview.contains("data-count=\"runs\">1</td>"));
    assert!(overview.contains(escaped) && !overview.contains("<script>"));
}

#[tokio::test]
async fn runs_come_fifty_to_a_page_with_links_that_keep_the_view() {
    let tmp = tempfile::tempdir().unwrap();
    let mut store = RunStore::open(&tmp.path().join(".taxon/runs.db")).unwrap();
    for i in 0..60 {
        let id = store
            .create_run(&NewRun {
                name: format!("run {i}"),
                kind: "train".into(),
                model_type: Some("linear".into()),
                ..Default::default()
            })
            .unwrap();
        let end = RunEnd {
            metrics: BTreeMap::from([("accuracy".to_string(), i as f64 / 100.0)]),
            ..Default::default()
        };
        store.finish(&id, &end).unwrap();
    }
    let rows = |html: &str| html.matches("<tr data-run=").count();

    let (_, first) = get(tmp.path(), "/runs?sort=accuracy&status=finished").await;
    assert_eq!(rows(&first), crate::runs::PAGE_SIZE);
    assert!(first.contains("60 of 60 runs; page 1 of 2"));
    assert!(first.contains("href=\"/runs?status=finished&amp;sort=accuracy&amp;page=2\""));
    assert!(!first.contains("rel=\"prev\""));
    // Best first: the top row holds accuracy 0.59.
    let top = first.find("data-metric=\"accuracy\">").unwrap();
    assert!(first[top..].starts_with("data-metric=\"accuracy\">0.5900<"));

    let (_, second) = get(tmp.path(), "/runs?sort=accuracy&status=finished&page=2").await;
    assert_eq!(rows(&second), 10);
    assert!(second.contains("page 2 of 2") && second.contains("rel=\"prev\""));
    assert!(!second.contains("rel=\"next\""));
    // A page past the end shows the last one.
    let (_, past) = get(tmp.path(), "/runs?page=99").await;
    assert!(past.contains("page 2 of 2"));
}

#[tokio::test]
async fn compare_overlays_the_runs_curves_and_marks_the_params_that_differ() {
    let dir = tempfile::tempdir().unwrap();
    let a = store_with_hostile_run(dir.path());
    let b = store_with_hostile_run(dir.path());
    let (status, html) = get(dir.path(), &format!("/compare?run={a}&run={b}&run=%3Cx%3E")).await;
    assert_eq!(status, StatusCode::OK, "{html}");
    // One overlaid chart per per-epoch key, one line per run.
    assert!(html.contains("data-chart=\"loss\"") && html.contains("data-chart=\"val_accuracy\""));
    assert_eq!(html.matches("<polyline").count(), 4, "2 keys x 2 runs");
    // The same params and metrics: no row marked as differing; the hostile values escaped.
    // Identical runs differ at most in their timing (recorded by the clock, a few ms apart).
    for (at, _) in html.match_indices("<tr class=\"diff\"><th scope=\"row\">") {
        let label = &html[at + 33..];
        let label = &label[..label.find(" <span").unwrap()];
        assert!(
            ["started (UTC)", "ended (UTC)", "duration (s)"].contains(&label),
            "identical runs differ in {label}"
        );
    }
    assert!(!html.contains(HOSTILE));
    assert!(html.contains("0.875"));
    let (status, html) = get(dir.path(), &format!("/compare?run={a}")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("Select two or more runs"));
    let (status, _) = get(dir.path(), &format!("/compare?run={a}&run=ffffffff")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

/// Sends `req` to the UI of `project` with `auth`; the status, the headers and the body.
async fn send(
    project: &std::path::Path,
    auth: &taxon_auth::Auth,
    req: Request<Body>,
) -> (StatusCode, axum::http::HeaderMap, String) {
    let res = app(AppState::new(project.to_path_buf()).with_auth(auth.clone()))
        .oneshot(req)
        .await
        .unwrap();
    let (status, headers) = (res.status(), res.headers().clone());
    let body = res.into_body().collect().await.unwrap().to_bytes();
    (status, headers, String::from_utf8(body.to_vec()).unwrap())
}

fn login_request(form: &str) -> Request<Body> {
    Request::post("/login")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(Body::from(form.to_string()))
        .unwrap()
}

#[tokio::test]
async fn with_auth_on_pages_need_a_login_that_a_removed_user_loses() {
    use taxon_auth::{Auth, AuthConfig, Scope, UserStore};
    let tmp = tempfile::tempdir().unwrap();
    store_with_hostile_run(tmp.path());
    let users_db = tmp.path().join("users.db");
    let users = UserStore::open(&users_db).unwrap();
    users
        .add("alice", "alice-password-1", &[Scope::Predict])
        .unwrap();
    let auth = Auth::new(
        AuthConfig::new("0123456789abcdef0123456789abcdef").unwrap(),
        UserStore::open(&users_db).unwrap(),
    )
    .unwrap();
    let get = |uri: &str, cookie: Option<&str>| {
        let mut r = Request::get(uri);
        if let Some(c) = cookie {
            r = r.header("cookie", c);
        }
        r.body(Body::empty()).unwrap()
    };

    // No session: every page sends the browser to the form, which comes back to it.
    for uri in ["/", "/runs?sort=accuracy", "/registry", "/data", "/nowhere"] {
        let (status, headers, _) = send(tmp.path(), &auth, get(uri, None)).await;
        assert_eq!(status, StatusCode::SEE_OTHER, "{uri}");
        let to = headers["location"].to_str().unwrap();
        assert!(to.starts_with("/login?next=%2F"), "{uri}: {to}");
    }
    let (status, _, form) = send(tmp.path(), &auth, get("/login?next=%2Fruns", None)).await;
    assert_eq!(status, StatusCode::OK);
    assert!(form.contains("<label for=\"password\">") && form.contains("value=\"/runs\""));

    // A wrong password: refused on the form, no cookie.
    let (status, headers, page) = send(
        tmp.path(),
        &auth,
        login_request("username=alice&password=wrong-password&next=%2Fruns"),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(page.contains("invalid username or password"));
    assert!(!headers.contains_key("set-cookie"));

    // The right one: a strict, script-proof cookie and back to /runs; an off-site `next` is
    // not followed.
    let (status, headers, _) = send(
        tmp.path(),
        &auth,
        login_request("username=alice&password=alice-password-1&next=%2Fruns"),
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(headers["location"], "/runs");
    let set = headers["set-cookie"].to_str().unwrap();
    assert!(
        set.contains("HttpOnly") && set.contains("SameSite=Strict") && set.contains("Max-Age=1800")
    );
    let cookie = set.split(';').next().unwrap().to_string();
    let (_, headers, _) = send(
        tmp.path(),
        &auth,
        login_request("username=alice&password=alice-password-1&next=%2F%2Fevil.example"),
    )
    .await;
    assert_eq!(headers["location"], "/");

    let (status, _, runs) = send(tmp.path(), &auth, get("/runs", Some(&cookie))).await;
    assert_eq!(status, StatusCode::OK);
    assert!(runs.contains("1 of 1 runs"));
    assert!(runs.contains("<span>alice</span> <button type=\"submit\">Sign out</button>"));

    // A forged cookie is refused.
    let (status, headers, _) = send(
        tmp.path(),
        &auth,
        get("/runs", Some("taxon_ui_session=x.y.z")),
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert!(
        headers["location"]
            .to_str()
            .unwrap()
            .contains("why=your%20session%20is%20not%20valid")
    );

    // Removing the user ends the session at the next revocation refresh.
    users.remove("alice").unwrap();
    tokio::task::spawn_blocking({
        let auth = auth.clone();
        move || auth.refresh_revocations().unwrap()
    })
    .await
    .unwrap();
    let (status, headers, _) = send(tmp.path(), &auth, get("/runs", Some(&cookie))).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert!(headers["location"].to_str().unwrap().contains("revoked"));

    // Signing out expires the cookie.
    let (status, headers, _) = send(
        tmp.path(),
        &auth,
        Request::post("/logout").body(Body::empty()).unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert!(
        headers["set-cookie"]
            .to_str()
            .unwrap()
            .contains("Max-Age=0")
    );
}

#[tokio::test]
async fn without_auth_the_login_page_leads_to_the_overview() {
    let tmp = tempfile::tempdir().unwrap();
    let res = app(AppState::new(tmp.path().to_path_buf()))
        .oneshot(Request::get("/login").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(res.headers()["location"], "/");
}
