//! The `callback` action through `mutask serve`: a created callback's URL answers 422 with every
//! violation to a body that does not match its schema (nothing recorded), then accepts a
//! matching body once and wakes the waiting step.

use crate::common;

use std::time::{Duration, Instant};

use serde_json::{Value, json};

const TEMPLATE: &str = r#"
name: called-back
dialect: jinja
description: waits for a call
title_format: called back
auto_runnable: true
allow_all_resolver_usernames: true
steps:
  cb:
    action:
      type: callback
      configuration:
        action: create
        schema:
          type: object
          required: [success]
          properties: {success: {type: boolean}}
  wait:
    dependencies: [cb]
    action:
      type: callback
      configuration:
        action: wait
        id: "{{ step.cb.output.id }}"
"#;

async fn step_in(m: &common::Instance, rid: &str, step: &str, states: &[&str]) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (_, r) = m.get("admin", &format!("/resolution/{rid}")).await;
        if states.contains(&r["steps"][step]["state"].as_str().unwrap_or_default()) {
            return r;
        }
        assert!(Instant::now() < deadline, "{step} not in {states:?}: {r}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_off_the_schema_answers_422_and_a_matching_one_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let templates = dir.path().join("templates");
    std::fs::create_dir_all(&templates).unwrap();
    std::fs::write(templates.join("called-back.yaml"), TEMPLATE).unwrap();
    let m = common::start_with(|c| c.templates_dir = templates.clone()).await;
    let (s, t) = m
        .post("admin", "/task", &json!({"template_name": "called-back"}))
        .await;
    assert_eq!(s, 201, "{t}");
    let rid = t["resolution"].as_str().unwrap().to_string();
    let r = step_in(&m, &rid, "wait", &["WAITING"]).await;
    let out = &r["steps"]["cb"]["output"];
    let (id, token) = (out["id"].as_str().unwrap(), out["token"].as_str().unwrap());
    let path = format!("/unsecured/callback/{id}?t={token}");

    let (s, body) = m.post("nobody", &path, &json!({"success": "yes"})).await;
    assert_eq!(s, 422, "{body}");
    assert!(body.to_string().contains("success"), "{body}");
    let r = step_in(&m, &rid, "wait", &["WAITING"]).await;
    assert_eq!(r["steps"]["wait"]["state"], "WAITING", "nothing recorded");

    let (s, body) = m.post("nobody", &path, &json!({"success": true})).await;
    assert_eq!(s, 200, "{body}");
    let r = step_in(&m, &rid, "wait", &["DONE"]).await;
    assert_eq!(
        r["steps"]["wait"]["output"]["body"],
        json!({"success": true}),
        "{r}"
    );
    m.stop().await;
}
