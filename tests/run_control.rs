//! The run-control example (templates/deploy-with-remediation.yaml, docs/run-control.md): a
//! step's outcome — success, a failed check mapped to a custom state, a timeout — picks the path
//! that runs next; the paths not taken are pruned and the task still finishes.

use crate::common;

use std::time::{Duration, Instant};

use serde_json::{Value, json};

async fn run(m: &common::Instance, healthy: &str, smoke: u32) -> Value {
    let (s, t) = m
        .post(
            "admin",
            "/task",
            &json!({"template_name": "deploy-with-remediation",
                    "input": {"service": "billing", "healthy": healthy, "smoke_seconds": smoke}}),
        )
        .await;
    assert_eq!(s, 201, "{t}");
    let rid = t["resolution"].as_str().unwrap().to_string();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (_, r) = m.get("admin", &format!("/resolution/{rid}")).await;
        if r["state"] == "DONE" || r["state"].as_str().unwrap_or("").starts_with("BLOCKED") {
            return r;
        }
        assert!(Instant::now() < deadline, "{r}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn states(r: &Value) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = r["steps"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, s)| (k.clone(), s["state"].as_str().unwrap().to_string()))
        .collect();
    v.sort();
    v
}

fn expect(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outcomes_pick_the_path() {
    let m = common::start_with(|c| {
        c.scripts_dir = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scripts");
    })
    .await;
    // success: smoke test passes, announce runs, remediation and escalation are pruned
    let r = run(&m, "true", 0).await;
    assert_eq!(r["state"], "DONE", "{r}");
    assert_eq!(
        states(&r),
        expect(&[
            ("announce", "DONE"),
            ("deploy", "DONE"),
            ("escalate", "PRUNE"),
            ("remediate", "PRUNE"),
            ("smoke", "DONE")
        ])
    );
    assert_eq!(
        r["steps"]["announce"]["output"]["message"],
        "billing is live"
    );
    // failed health check: the custom state routes to remediation
    let r = run(&m, "false", 0).await;
    assert_eq!(r["state"], "DONE", "{r}");
    assert_eq!(
        states(&r),
        expect(&[
            ("announce", "PRUNE"),
            ("deploy", "UNHEALTHY"),
            ("escalate", "PRUNE"),
            ("remediate", "DONE"),
            ("smoke", "PRUNE")
        ])
    );
    assert_eq!(
        r["steps"]["remediate"]["output"]["action"],
        "rolled back billing"
    );
    // the smoke test runs out of time: the TIMEOUT path escalates
    let r = run(&m, "true", 5).await;
    assert_eq!(r["state"], "DONE", "{r}");
    assert_eq!(
        states(&r),
        expect(&[
            ("announce", "PRUNE"),
            ("deploy", "DONE"),
            ("escalate", "DONE"),
            ("remediate", "PRUNE"),
            ("smoke", "TIMEOUT")
        ])
    );
    m.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_skips_a_failed_step_through_the_api_and_the_task_finishes() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("fragile.yaml"),
        r#"
name: fragile
description: A step that fails with a client error, then one that depends on it
title_format: "fragile"
auto_runnable: true
allow_all_resolver_usernames: true
steps:
  check:
    action:
      type: echo
      configuration:
        output: {ok: false}
        error_message: the input is wrong
        error_type: client
  after:
    dependencies: [check]
    action:
      type: echo
      configuration:
        output: {announced: true}
"#,
    )
    .unwrap();
    let tdir = dir.path().to_path_buf();
    let m = common::start_with(move |c| c.templates_dir = tdir).await;
    let (s, t) = m
        .post(
            "admin",
            "/task",
            &json!({"template_name": "fragile", "input": {}}),
        )
        .await;
    assert_eq!(s, 201, "{t}");
    let task = t["id"].as_str().unwrap().to_string();
    let rid = t["resolution"].as_str().unwrap().to_string();
    let wait = |want: &'static str| {
        let m = &m;
        let rid = rid.clone();
        async move {
            let deadline = Instant::now() + Duration::from_secs(30);
            loop {
                let (_, r) = m.get("admin", &format!("/resolution/{rid}")).await;
                if r["state"].as_str().unwrap_or("").starts_with(want) {
                    return r;
                }
                assert!(Instant::now() < deadline, "waiting for {want}: {r}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    };
    // the client error blocks the resolution; the dependent step never ran
    let r = wait("BLOCKED").await;
    assert_eq!(r["steps"]["check"]["state"], "CLIENT_ERROR", "{r}");
    assert_ne!(r["steps"]["after"]["state"], "DONE", "{r}");
    let (_, t) = m.get("admin", &format!("/task/{task}")).await;
    assert_eq!(t["state"], "BLOCKED", "{t}");

    // skip it: pause, mark the step DONE, run again
    let (s, e) = m
        .post("admin", &format!("/resolution/{rid}/pause"), &json!({}))
        .await;
    assert!(s < 300, "{s} {e}");
    wait("PAUSED").await;
    let put = |state: &str| {
        m.client
            .put(m.url(&format!("/resolution/{rid}/step/check/state")))
            .basic_auth("admin", Some("admin-pw"))
            .json(&json!({ "state": state }))
            .send()
    };
    // a state the step cannot take is refused, naming it
    let r = put("NOT_A_STATE").await.unwrap();
    assert_eq!(r.status(), 422);
    assert!(r.text().await.unwrap().contains("NOT_A_STATE"));
    let r = put("DONE").await.unwrap();
    assert_eq!(r.status(), 200);
    let changed: Value = r.json().await.unwrap();
    assert_eq!(changed["state"], "DONE", "{changed}");
    let (s, e) = m
        .post("admin", &format!("/resolution/{rid}/run"), &json!({}))
        .await;
    assert!(s < 300, "{s} {e}");
    let r = wait("DONE").await;
    assert_eq!(r["steps"]["after"]["state"], "DONE", "{r}");
    assert_eq!(r["steps"]["check"]["state"], "DONE", "{r}");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, t) = m.get("admin", &format!("/task/{task}")).await;
        if t["state"] == "DONE" {
            break;
        }
        assert!(Instant::now() < deadline, "{t}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    m.stop().await;
}
