//! `subtask` and `batch` through `mutask serve`'s in-process app: a parent task creates a child
//! task and a batch of two from another template, waits for them, and finishes with their
//! results.

use crate::common;

use std::time::{Duration, Instant};

use serde_json::{Value, json};

const CHILD: &str = r#"
name: child
dialect: jinja
description: says hello
title_format: "child {{ input.who }}"
auto_runnable: true
allow_all_resolver_usernames: true
inputs:
  - name: who
steps:
  hello:
    action: {type: echo, configuration: {output: {greeting: "hello {{ input.who }}"}}}
result_format:
  greeting: "{{ step.hello.output.greeting }}"
"#;

const PARENT: &str = r#"
name: parent
dialect: jinja
description: runs children
title_format: parent
auto_runnable: true
allow_all_resolver_usernames: true
steps:
  one:
    action:
      type: subtask
      configuration:
        template: child
        input: {who: Ada}
  many:
    action:
      type: batch
      configuration:
        template_name: child
        inputs: [{who: Bob}, {who: Cy}]
        resolver_usernames: [rita]
        resolver_groups: '["ops"]'
"#;

async fn task_in(m: &common::Instance, id: &str, states: &[&str]) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (_, t) = m.get("admin", &format!("/task/{id}")).await;
        if states.contains(&t["state"].as_str().unwrap_or_default()) {
            return t;
        }
        assert!(
            Instant::now() < deadline,
            "task {id} not in {states:?}: {t}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_parent_waits_for_its_subtask_and_batch() {
    let dir = tempfile::tempdir().unwrap();
    let templates = dir.path().join("templates");
    std::fs::create_dir_all(&templates).unwrap();
    std::fs::write(templates.join("child.yaml"), CHILD).unwrap();
    std::fs::write(templates.join("parent.yaml"), PARENT).unwrap();
    let m = common::start_with(|c| c.templates_dir = templates.clone()).await;
    let (s, t) = m
        .post("admin", "/task", &json!({"template_name": "parent"}))
        .await;
    assert_eq!(s, 201, "{t}");
    let parent = task_in(&m, t["id"].as_str().unwrap(), &["DONE", "BLOCKED"]).await;
    assert_eq!(parent["state"], "DONE", "{parent}");
    let (_, r) = m
        .get(
            "admin",
            &format!("/resolution/{}", parent["resolution"].as_str().unwrap()),
        )
        .await;
    let one = &r["steps"]["one"];
    assert_eq!(one["state"], "DONE", "{r}");
    assert_eq!(one["output"]["state"], "DONE", "{one}");
    let child = one["output"]["id"].as_str().unwrap();
    let child = task_in(&m, child, &["DONE"]).await;
    assert_eq!(
        child["tags"]["_utask_parent_task_id"], parent["id"],
        "{child}"
    );
    // its result (`result_format`), sealed when its cycle ended and woke the parent
    assert_eq!(child["result"], json!({"greeting": "hello Ada"}), "{child}");
    assert_eq!(r["steps"]["many"]["state"], "DONE", "{r}");
    // the batch's two tasks exist, done, tagged with the parent
    let (_, list) = m.get("admin", "/task?template=child&page_size=100").await;
    let children: Vec<&Value> = list
        .as_array()
        .unwrap_or_else(|| panic!("{list}"))
        .iter()
        .filter(|t| t["tags"]["_utask_parent_task_id"] == parent["id"])
        .collect();
    assert_eq!(children.len(), 3, "{list}");
    assert!(children.iter().all(|t| t["state"] == "DONE"), "{list}");
    // the batch's resolvers (a list, or µTask's JSON string) reach its children, not the subtask
    let with_resolvers = children
        .iter()
        .filter(|t| {
            t["resolver_usernames"] == json!(["rita"]) && t["resolver_groups"] == json!(["ops"])
        })
        .count();
    assert_eq!(with_resolvers, 2, "{list}");
    m.stop().await;
}
