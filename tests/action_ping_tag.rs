//! The `ping` action (TCP connects) against a real listener and a closed port on 127.0.0.1, with
//! the network policy; the `tag` action through the builtin registry, and through the engine:
//! a task whose tag step sets and deletes tags on the task.

use crate::common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use mutask::action::http::NetworkPolicy;
use mutask::action::ping::Ping;
use mutask::action::{ActionEnv, ActionError, ActionRequest, ActionResult, Registry};
use mutask::domain::{ResolutionId, TaskId};
use serde_json::{Value, json};

fn request(config: Value) -> ActionRequest {
    ActionRequest {
        step_name: "step".into(),
        task_id: TaskId::new(),
        resolution_id: ResolutionId::new(),
        requester_username: "alice".into(),
        config,
        previous_output: None,
        previous_metadata: None,
        env: Arc::new(ActionEnv::default()),
        log: Default::default(),
    }
}

async fn run_with(r: &Registry, action: &str, config: Value) -> ActionResult {
    r.get(action)
        .expect("a builtin action")
        .run(request(config))
        .await
}

fn allowing_loopback() -> Registry {
    let mut r = Registry::builtin();
    r.register(Arc::new(Ping::new(
        NetworkPolicy::with_allow_list(["127.0.0.1"]).unwrap(),
    )));
    r
}

#[tokio::test]
async fn ping_measures_tcp_connects() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((s, _)) = listener.accept().await {
            drop(s);
        }
    });
    let r = run_with(
        &allowing_loopback(),
        "ping",
        json!({"hostname": "127.0.0.1", "port": port.to_string(), "count": "3", "interval_second": "0.05"}),
    )
    .await;
    assert_eq!(r.error, None, "{r:?}");
    let out = r.output.unwrap();
    assert_eq!(out["packets_sent"], 3);
    assert_eq!(out["packets_received"], 3);
    assert_eq!(out["packet_loss"], 0.0);
    assert_eq!(out["ip_addr"], "127.0.0.1");
    assert_eq!(out["rtts"].as_array().unwrap().len(), 3);
    let (min, avg, max) = (
        out["min_rtt"].as_f64().unwrap(),
        out["avg_rtt"].as_f64().unwrap(),
        out["max_rtt"].as_f64().unwrap(),
    );
    assert!(min <= avg && avg <= max && max < 1000.0, "{out}");
    assert!(out["std_dev_rtt"].as_f64().unwrap() >= 0.0);
    assert_eq!(r.metadata.unwrap()["port"], port);

    // by name: `localhost` resolves to 127.0.0.1 (allowed) and maybe ::1 (refused, skipped)
    let r = run_with(
        &allowing_loopback(),
        "ping",
        json!({"hostname": "localhost", "port": port}),
    )
    .await;
    assert_eq!(r.error, None, "{r:?}");
    assert_eq!(r.output.unwrap()["packets_sent"], 1);
}

#[tokio::test]
async fn ping_of_a_closed_port_is_a_server_error() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let started = Instant::now();
    let r = run_with(
        &allowing_loopback(),
        "ping",
        json!({"hostname": "127.0.0.1", "port": port, "count": 2, "interval_second": 0}),
    )
    .await;
    match &r.error {
        Some(ActionError::Server(m)) => {
            assert!(
                m.contains(&format!("127.0.0.1:{port}")) && m.contains("2 of 2"),
                "{m}"
            )
        }
        other => panic!("{other:?}"),
    }
    let out = r.output.unwrap();
    assert_eq!(out["packets_received"], 0);
    assert_eq!(out["packet_loss"], 100.0);
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn ping_follows_the_network_policy_and_checks_its_configuration() {
    let default = Registry::builtin();
    for host in ["127.0.0.1", "localhost", "169.254.169.254", "::1"] {
        let r = run_with(&default, "ping", json!({"hostname": host, "port": 22})).await;
        match &r.error {
            Some(ActionError::Client(m)) => assert!(m.contains(&format!("`{host}`")), "{m}"),
            other => panic!("{host}: {other:?}"),
        }
    }
    for config in [
        json!({}),
        json!({"hostname": {"a": 1}}),
        json!({"hostname": "127.0.0.1", "port": "ssh"}),
        json!({"hostname": "127.0.0.1", "count": -1}),
        json!({"hostname": "127.0.0.1", "interval_second": "soon"}),
        json!({"hostname": "127.0.0.1", "timeout": "5 minutes"}),
        json!("ping"),
    ] {
        let r = run_with(&allowing_loopback(), "ping", config.clone()).await;
        assert!(
            matches!(r.error, Some(ActionError::Client(_))),
            "{config}: {r:?}"
        );
    }
}

#[tokio::test]
async fn tag_returns_the_tags_to_set() {
    let r = Registry::builtin();
    let res = run_with(
        &r,
        "tag",
        json!({"tags": {"customer": "42", "n": 7, "gone": ""}}),
    )
    .await;
    assert_eq!(res.error, None);
    assert_eq!(res.output, None);
    assert_eq!(
        Value::Object(res.tags.unwrap()),
        json!({"customer": "42", "n": "7", "gone": ""})
    );
    for config in [
        json!({}),
        json!({"tags": ["a"]}),
        json!({"tags": {"_utask_parent_task_id": "x"}}),
        json!({"tags": {"": "x"}}),
        json!({"tags": {"k": {"nested": true}}}),
    ] {
        let res = run_with(&r, "tag", config.clone()).await;
        assert!(
            matches!(res.error, Some(ActionError::Client(_))),
            "{config}: {res:?}"
        );
        assert_eq!(res.tags, None);
    }
}

const TAGGING: &str = r#"
name: tagging
dialect: jinja
description: Tags the task
title_format: tagging
auto_runnable: true
allow_all_resolver_usernames: true
inputs:
  - name: customer
steps:
  tag:
    action:
      type: tag
      configuration:
        tags:
          customer: "{{ input.customer }}"
          stage: deployed
          temp: ""
"#;

const BAD_TAG: &str = r#"
name: bad-tag
dialect: jinja
description: Tries to change a reserved tag
title_format: bad tag
auto_runnable: true
allow_all_resolver_usernames: true
steps:
  tag:
    action:
      type: tag
      configuration:
        tags: {_utask_parent_task_id: "forged"}
"#;

async fn wait(m: &common::Instance, id: &str, states: &[&str]) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (_, t) = m.get("admin", &format!("/task/{id}")).await;
        if states.contains(&t["state"].as_str().unwrap_or_default()) {
            return t;
        }
        assert!(
            Instant::now() < deadline,
            "task {id} not in {states:?} in time: {t}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tag_step_changes_the_task_tags() {
    let dir = tempfile::tempdir().unwrap();
    let templates = dir.path().join("templates");
    std::fs::create_dir_all(&templates).unwrap();
    std::fs::write(templates.join("tagging.yaml"), TAGGING).unwrap();
    std::fs::write(templates.join("bad-tag.yaml"), BAD_TAG).unwrap();
    let m = common::start_with(|c| c.templates_dir = templates.clone()).await;

    let (s, task) = m
        .post(
            "admin",
            "/task",
            &json!({
                "template_name": "tagging",
                "input": {"customer": "acme"},
                "tags": {"temp": "x", "keep": "y"},
            }),
        )
        .await;
    assert_eq!(s, 201, "{task}");
    let done = wait(&m, task["id"].as_str().unwrap(), &["DONE"]).await;
    assert_eq!(
        done["tags"],
        json!({"customer": "acme", "stage": "deployed", "keep": "y"}),
        "{done}"
    );

    let (s, task) = m
        .post("admin", "/task", &json!({"template_name": "bad-tag"}))
        .await;
    assert_eq!(s, 201, "{task}");
    let blocked = wait(&m, task["id"].as_str().unwrap(), &["BLOCKED"]).await;
    assert!(
        blocked["tags"].get("_utask_parent_task_id").is_none(),
        "{blocked}"
    );
    m.stop().await;
}

const PINGING: &str = r#"
name: pinging
dialect: jinja
description: checks that a service answers, then reports it
title_format: "ping {{ input.port }}"
auto_runnable: true
allow_all_resolver_usernames: true
inputs:
  - name: port
steps:
  ping:
    action:
      type: ping
      configuration:
        hostname: 127.0.0.1
        port: "{{ input.port }}"
        count: 2
        interval_second: 0.05
  report:
    dependencies: [ping]
    action:
      type: echo
      configuration:
        output: {received: "{{ step.ping.output.packets_received }}"}
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ping_step_runs_in_a_template() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((s, _)) = listener.accept().await {
            drop(s);
        }
    });
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let dir = tempfile::tempdir().unwrap();
    let templates = dir.path().join("templates");
    std::fs::create_dir_all(&templates).unwrap();
    std::fs::write(templates.join("pinging.yaml"), PINGING).unwrap();
    let m = common::start_with(|c| {
        c.templates_dir = templates.clone();
        c.network_allow = vec!["127.0.0.1".into()];
    })
    .await;

    let (s, task) = m
        .post(
            "admin",
            "/task",
            &json!({"template_name": "pinging", "input": {"port": port.to_string()}}),
        )
        .await;
    assert_eq!(s, 201, "{task}");
    let done = wait(&m, task["id"].as_str().unwrap(), &["DONE"]).await;
    let (_, r) = m
        .get(
            "admin",
            &format!("/resolution/{}", done["resolution"].as_str().unwrap()),
        )
        .await;
    assert_eq!(r["steps"]["ping"]["output"]["packets_sent"], 2, "{r}");
    assert_eq!(r["steps"]["ping"]["output"]["packets_received"], 2, "{r}");
    assert_eq!(r["steps"]["report"]["output"]["received"], "2", "{r}");

    // nobody listens: the step is a SERVER_ERROR and nothing after it runs
    let (_, task) = m
        .post(
            "admin",
            "/task",
            &json!({"template_name": "pinging", "input": {"port": closed.to_string()}}),
        )
        .await;
    let rid = task["resolution"].as_str().unwrap().to_string();
    let deadline = Instant::now() + Duration::from_secs(20);
    let r = loop {
        let (_, r) = m.get("admin", &format!("/resolution/{rid}")).await;
        if !["TODO", "RUNNING"].contains(&r["steps"]["ping"]["state"].as_str().unwrap_or("TODO")) {
            break r;
        }
        assert!(Instant::now() < deadline, "{r}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(r["steps"]["ping"]["state"], "SERVER_ERROR", "{r}");
    assert_eq!(r["steps"]["ping"]["output"]["packets_received"], 0, "{r}");
    assert_eq!(r["steps"]["report"]["state"], "TODO", "{r}");
    m.stop().await;
}
