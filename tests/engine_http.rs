//! The http action through `mutask serve`: a template calls a real HTTP server on 127.0.0.1
//! (allowed by `MUTASK_NETWORK_ALLOW`), branches on the status with a check condition, and the
//! SSRF guard refuses loopback when it is not allowed.

use crate::common;

use std::time::{Duration, Instant};

use axum::Json;
use axum::routing::get;
use serde_json::{Value, json};

const TEMPLATE: &str = r#"
name: http-check
dialect: jinja
description: call a service and branch on its answer
title_format: "check {{ input.path }}"
auto_runnable: true
allow_all_resolver_usernames: true
inputs:
  - name: base
  - name: path
steps:
  call:
    custom_states: [NOT_FOUND]
    action:
      type: http
      configuration:
        url: "{{ input.base }}{{ input.path }}"
        headers: [{name: X-Trace, value: "{{ task.task_id }}"}]
    conditions:
      - type: check
        if: [{value: "{{ step.this.metadata.HTTPStatus }}", operator: EQ, expected: "404"}]
        then: {this: NOT_FOUND}
  found:
    dependencies: [call]
    action: {type: echo, configuration: {output: {version: "{{ step.call.output.version }}"}}}
  missing:
    dependencies: ["call:NOT_FOUND"]
    action: {type: echo, configuration: {output: {missing: true}}}
"#;

async fn wait(m: &common::Instance, id: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (_, t) = m.get("admin", &format!("/task/{id}")).await;
        if matches!(t["state"].as_str(), Some("DONE" | "BLOCKED")) {
            return t;
        }
        assert!(Instant::now() < deadline, "{t}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn steps(
    m: &common::Instance,
    t: &Value,
) -> std::collections::HashMap<String, (String, Option<Value>, Option<String>)> {
    let rid: mutask::domain::ResolutionId = t["resolution"].as_str().unwrap().parse().unwrap();
    mutask::store::resolution::steps(&m.running.state.store, rid)
        .await
        .unwrap()
        .into_iter()
        .map(|s| {
            (
                s.name.clone(),
                (s.state.as_str().to_string(), s.output, s.error),
            )
        })
        .collect()
}

async fn server() -> String {
    let app = axum::Router::new()
        .route(
            "/version",
            get(|| async { Json(json!({"version": "1.2.3"})) }),
        )
        .route(
            "/boom",
            get(|| async {
                (
                    axum::http::StatusCode::SERVICE_UNAVAILABLE,
                    Json(json!({"error": "down for maintenance"})),
                )
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}")
}

async fn start(allow: bool) -> (common::Instance, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let templates = dir.path().join("templates");
    std::fs::create_dir_all(&templates).unwrap();
    std::fs::write(templates.join("http-check.yaml"), TEMPLATE).unwrap();
    let m = common::start_with(|c| {
        c.templates_dir = templates.clone();
        if allow {
            c.network_allow = vec!["127.0.0.1".into()];
        }
    })
    .await;
    (m, dir)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http_step_calls_a_local_service_and_branches_on_404() {
    let base = server().await;
    let (m, _dir) = start(true).await;
    let (_, t) = m
        .post(
            "admin",
            "/task",
            &json!({"template_name": "http-check", "input": {"base": base, "path": "/version"}}),
        )
        .await;
    let t = wait(&m, t["id"].as_str().unwrap()).await;
    assert_eq!(t["state"], "DONE", "{t}");
    let s = steps(&m, &t).await;
    assert_eq!(s["call"].0, "DONE");
    assert_eq!(s["found"].1, Some(json!({"version": "1.2.3"})));
    assert_eq!(s["missing"].0, "PRUNE");

    let (_, t) = m
        .post(
            "admin",
            "/task",
            &json!({"template_name": "http-check", "input": {"base": base, "path": "/nope"}}),
        )
        .await;
    let t = wait(&m, t["id"].as_str().unwrap()).await;
    assert_eq!(t["state"], "DONE", "{t}");
    let s = steps(&m, &t).await;
    assert_eq!(
        s["call"].0, "NOT_FOUND",
        "a 404 turned into a custom state by a check condition"
    );
    assert_eq!(s["missing"].0, "DONE");
    assert_eq!(s["found"].0, "PRUNE");
    m.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_5xx_answer_is_a_server_error() {
    let base = server().await;
    let (m, _dir) = start(true).await;
    let (_, t) = m
        .post(
            "admin",
            "/task",
            &json!({"template_name": "http-check", "input": {"base": base, "path": "/boom"}}),
        )
        .await;
    let deadline = Instant::now() + Duration::from_secs(20);
    let s = loop {
        let s = steps(&m, &t).await;
        if !["TODO", "RUNNING"].contains(&s["call"].0.as_str()) {
            break s;
        }
        assert!(Instant::now() < deadline, "{s:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(s["call"].0, "SERVER_ERROR", "{s:?}");
    assert_eq!(
        s["call"].1,
        Some(json!({"error": "down for maintenance"})),
        "the body is kept as output"
    );
    assert!(
        s["call"].2.as_deref().unwrap_or_default().contains("503"),
        "{s:?}"
    );
    assert_eq!(s["found"].0, "TODO", "nothing after it ran");
    assert_eq!(s["missing"].0, "TODO");
    let (_, r) = m
        .get(
            "admin",
            &format!("/resolution/{}", t["resolution"].as_str().unwrap()),
        )
        .await;
    assert_eq!(r["steps"]["call"]["metadata"]["HTTPStatus"], 503, "{r}");
    m.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loopback_is_refused_unless_allowed() {
    let base = server().await;
    let (m, _dir) = start(false).await;
    let (_, t) = m
        .post(
            "admin",
            "/task",
            &json!({"template_name": "http-check", "input": {"base": base, "path": "/version"}}),
        )
        .await;
    let t = wait(&m, t["id"].as_str().unwrap()).await;
    assert_eq!(t["state"], "BLOCKED");
    let s = steps(&m, &t).await;
    assert_eq!(s["call"].0, "CLIENT_ERROR");
    assert!(
        s["call"]
            .2
            .clone()
            .unwrap_or_default()
            .contains("127.0.0.1"),
        "{:?}",
        s["call"]
    );
    m.stop().await;
}
