//! Resolutions over HTTP against a real PostgreSQL and the in-process runner: a µTask client's
//! approve-and-run flow, who may do what (admin, manager, requester, watcher, stranger,
//! anonymous), state guards with µTask's messages, pause / step state / run / extend / cancel
//! / start over, and the automatic task comments.

use crate::common;

use std::time::{Duration, Instant};

use mutask::config::parse_basic_auth;
use serde_json::{Value, json};

/// An instance with a fourth user, `carol`, related to no task.
async fn start() -> common::Instance {
    common::start_with(|c| {
        c.basic_auth = Some(
            parse_basic_auth("admin:admin-pw,alice:alice-pw,bob:bob-pw,carol:carol-pw").unwrap(),
        )
    })
    .await
}

/// One request; `user` None = anonymous. Returns status and JSON (or text) body.
async fn call(
    m: &common::Instance,
    method: &str,
    user: Option<&str>,
    path: &str,
    body: Option<&Value>,
) -> (u16, Value) {
    let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let mut r = m.client.request(method, m.url(path));
    if let Some(u) = user {
        r = r.basic_auth(u, Some(format!("{u}-pw")));
    }
    if let Some(b) = body {
        r = r.json(b);
    }
    let resp = r.send().await.unwrap();
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

fn message(e: &Value) -> &str {
    e["error"]["message"].as_str().unwrap_or_default()
}

#[track_caller]
fn assert_refused(got: (u16, Value), status: u16, needle: &str) {
    assert_eq!(got.0, status, "{}", got.1);
    assert!(
        message(&got.1).contains(needle),
        "expected {needle:?} in {:?}",
        message(&got.1)
    );
}

async fn wait_resolution(m: &common::Instance, rid: &str, states: &[&str]) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (s, r) = call(m, "GET", Some("admin"), &format!("/resolution/{rid}"), None).await;
        assert_eq!(s, 200, "{r}");
        if states.contains(&r["state"].as_str().unwrap_or_default()) {
            return r;
        }
        assert!(Instant::now() < deadline, "resolution {rid} stuck: {r}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn comments(m: &common::Instance, task: &str) -> Vec<String> {
    let (s, list) = call(
        m,
        "GET",
        Some("admin"),
        &format!("/task/{task}/comment"),
        None,
    )
    .await;
    assert_eq!(s, 200, "{list}");
    list.as_array()
        .unwrap()
        .iter()
        .map(|c| c["content"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resolver_approves_and_the_runner_resolves_the_task() {
    let m = start().await;
    let (s, task) = call(
        &m,
        "POST",
        Some("alice"),
        "/task",
        Some(&json!({"template_name": "deploy-approval",
                     "input": {"service": "billing", "environment": "production", "api_token": "tok"},
                     "watcher_usernames": ["bob"]})),
    )
    .await;
    assert_eq!(s, 201, "{task}");
    let tid = task["id"].as_str().unwrap().to_string();
    let ok_body = json!({"task_id": tid, "resolver_inputs": {"version": "1.2.3"}});

    // who may resolve: admins and managers only
    assert_eq!(
        call(&m, "POST", None, "/resolution", Some(&ok_body))
            .await
            .0,
        401
    );
    for user in ["carol", "alice", "bob"] {
        let got = call(&m, "POST", Some(user), "/resolution", Some(&ok_body)).await;
        assert_refused(got, 403, "You are not allowed to resolve this task");
    }
    // bad input: every problem named
    let got = call(
        &m,
        "POST",
        Some("admin"),
        "/resolution",
        Some(&json!({"task_id": "nope"})),
    )
    .await;
    assert_refused(got, 400, "not a valid task id");
    let unknown = json!({"task_id": uuid::Uuid::now_v7().to_string()});
    assert_eq!(
        call(&m, "POST", Some("admin"), "/resolution", Some(&unknown))
            .await
            .0,
        404
    );
    let got = call(
        &m,
        "POST",
        Some("admin"),
        "/resolution",
        Some(&json!({"task_id": tid, "resolver_inputs": {"version": "latest"}})),
    )
    .await;
    assert_eq!(got.0, 422, "{}", got.1);
    assert_eq!(
        got.1["error"]["fields"][0]["field"],
        "resolver_inputs.version"
    );
    let got = call(
        &m,
        "POST",
        Some("admin"),
        "/resolution",
        Some(&json!({"task_id": tid})),
    )
    .await;
    assert_refused(got, 422, "resolver_inputs.version: missing required input");
    let got = call(
        &m,
        "POST",
        Some("admin"),
        "/resolution",
        Some(&json!({"task_id": tid, "resolver_inputs": {"version": "1.2.3"}, "start_over": true})),
    )
    .await;
    assert_refused(
        got,
        400,
        "can't start over a task that hasn't been resolved",
    );
    let got = call(
        &m,
        "POST",
        Some("admin"),
        "/resolution",
        Some(&json!({"resolver_inputs": {}})),
    )
    .await;
    assert_refused(got, 400, "task_id");

    // the resolver approves (a YAML body, as µTask clients may send)
    let yaml = format!("task_id: {tid}\nresolver_inputs:\n  version: 1.2.3\n");
    let (s, res) = m
        .post_raw(
            "admin",
            "/resolution",
            "application/x-yaml",
            yaml.into_bytes(),
        )
        .await;
    assert_eq!(s, 201, "{res}");
    assert_eq!(res["resolver_username"], "admin");
    assert_eq!(res["task_id"], tid.as_str());
    assert_eq!(res["steps"].as_object().unwrap().len(), 3);
    let rid = res["id"].as_str().unwrap().to_string();
    let got = call(&m, "POST", Some("admin"), "/resolution", Some(&ok_body)).await;
    assert_refused(got, 409, "already has resolution");

    // the runner picks it up: poll the task list until DONE
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (s, list) = call(&m, "GET", Some("alice"), "/task?type=own", None).await;
        assert_eq!(s, 200);
        let t = list
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["id"] == tid.as_str())
            .cloned()
            .unwrap();
        if t["state"] == "DONE" {
            assert_eq!(t["resolution"], rid.as_str());
            break;
        }
        assert!(Instant::now() < deadline, "task stuck: {t}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // the resolver sees every step DONE with its output
    let (s, r) = call(
        &m,
        "GET",
        Some("admin"),
        &format!("/resolution/{rid}"),
        None,
    )
    .await;
    assert_eq!(s, 200);
    assert_eq!(r["state"], "DONE");
    assert_eq!(r["task_title"], "Deploy billing to production");
    assert_eq!(r["resolver_inputs"]["version"], "1.2.3");
    for (name, step) in r["steps"].as_object().unwrap() {
        assert_eq!(step["state"], "DONE", "{name}: {step}");
        assert!(step["output"].is_object(), "{name}: {step}");
        assert_eq!(step["try_count"], 1);
    }
    assert_eq!(
        r["steps"]["plan"]["output"]["plan"],
        "deploy billing 1.2.3 to production"
    );
    assert_eq!(r["steps"]["deploy"]["output"]["deployed"], "billing@1.2.3");
    assert_eq!(r["steps"]["deploy"]["dependencies"], json!(["plan"]));
    assert_eq!(r["steps"]["deploy"]["action"]["type"], "echo");
    // requester and watcher: the steps without outputs, no resolver inputs
    for user in ["alice", "bob"] {
        let (s, r) = call(&m, "GET", Some(user), &format!("/resolution/{rid}"), None).await;
        assert_eq!(s, 200, "{r}");
        assert_eq!(r["steps"]["deploy"]["state"], "DONE");
        assert!(r["steps"]["deploy"]["output"].is_null(), "{r}");
        assert!(r["resolver_inputs"].is_null());
    }
    let got = call(
        &m,
        "GET",
        Some("carol"),
        &format!("/resolution/{rid}"),
        None,
    )
    .await;
    assert_refused(got, 403, "Can't display resolution details");
    assert_eq!(
        call(&m, "GET", None, &format!("/resolution/{rid}"), None)
            .await
            .0,
        401
    );
    assert_eq!(
        call(&m, "GET", Some("admin"), "/resolution/xyz", None)
            .await
            .0,
        400
    );
    let path = format!("/resolution/{}", uuid::Uuid::now_v7());
    assert_eq!(call(&m, "GET", Some("admin"), &path, None).await.0, 404);

    // one step
    let (s, st) = call(
        &m,
        "GET",
        Some("admin"),
        &format!("/resolution/{rid}/step/deploy"),
        None,
    )
    .await;
    assert_eq!(s, 200, "{st}");
    assert_eq!(st["output"]["deployed"], "billing@1.2.3");
    let (s, st) = call(
        &m,
        "GET",
        Some("bob"),
        &format!("/resolution/{rid}/step/deploy"),
        None,
    )
    .await;
    assert_eq!((s, st["output"].is_null()), (200, true), "{st}");
    let got = call(
        &m,
        "GET",
        Some("admin"),
        &format!("/resolution/{rid}/step/nope"),
        None,
    )
    .await;
    assert_refused(got, 404, "step `nope` not found");
    assert_eq!(
        call(
            &m,
            "GET",
            Some("carol"),
            &format!("/resolution/{rid}/step/deploy"),
            None
        )
        .await
        .0,
        403
    );

    // an admin resolving is recorded as a resolver of the task
    let (_, t) = m.get("admin", &format!("/task/{tid}")).await;
    assert_eq!(t["resolver_usernames"], json!(["admin"]));

    // state guards on a DONE resolution (µTask's messages)
    let p = |a: &str| format!("/resolution/{rid}/{a}");
    assert_refused(
        call(&m, "POST", Some("admin"), &p("run"), None).await,
        400,
        "Can't run resolution: already done",
    );
    assert_refused(
        call(&m, "POST", Some("admin"), &p("pause"), None).await,
        400,
        "Can't pause resolution while in state DONE",
    );
    assert_refused(
        call(&m, "POST", Some("admin"), &p("cancel"), None).await,
        400,
        "Can't cancel resolution: state DONE",
    );
    assert_refused(
        call(&m, "POST", Some("admin"), &p("extend"), None).await,
        400,
        "not in state 'BLOCKED_MAXRETRIES'",
    );
    let got = call(
        &m,
        "PUT",
        Some("admin"),
        &format!("/resolution/{rid}/step/plan/state"),
        Some(&json!({"state": "TODO"})),
    )
    .await;
    assert_refused(got, 400, "not in state 'PAUSED'");
    // and roles before states
    assert_refused(
        call(&m, "POST", Some("carol"), &p("run"), None).await,
        403,
        "not allowed",
    );
    assert_refused(
        call(&m, "POST", Some("alice"), &p("cancel"), None).await,
        403,
        "not allowed",
    );
    assert_eq!(call(&m, "POST", None, &p("pause"), None).await.0, 401);
    m.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_step_state_run_extend_cancel_and_start_over() {
    let m = start().await;
    // admin requests, bob is a task resolver (manager, not admin), alice watches, carol is a stranger
    let (s, task) = call(
        &m,
        "POST",
        Some("admin"),
        "/task",
        Some(
            &json!({"template_name": "wait-for-callback", "input": {"system": "ci"},
                     "resolver_usernames": ["bob"], "watcher_usernames": ["alice"]}),
        ),
    )
    .await;
    assert_eq!(s, 201, "{task}");
    let tid = task["id"].as_str().unwrap().to_string();
    let rid = task["resolution"].as_str().unwrap().to_string();
    wait_resolution(&m, &rid, &["WAITING"]).await;
    let p = |a: &str| format!("/resolution/{rid}/{a}");

    // pause: managers; force: admins only
    assert_refused(
        call(&m, "POST", Some("carol"), &p("pause"), None).await,
        403,
        "You are not allowed to pause this task",
    );
    assert_refused(
        call(&m, "POST", Some("alice"), &p("pause"), None).await,
        403,
        "You are not allowed to pause this task",
    );
    assert_eq!(call(&m, "POST", None, &p("pause"), None).await.0, 401);
    assert_refused(
        call(&m, "POST", Some("bob"), &p("pause?force=true"), None).await,
        403,
        "only admins",
    );
    assert_refused(
        call(&m, "POST", Some("bob"), &p("pause?force=maybe"), None).await,
        400,
        "force",
    );
    assert_eq!(
        call(&m, "POST", Some("bob"), &p("pause"), None).await.0,
        204
    );
    let r = wait_resolution(&m, &rid, &["PAUSED"]).await;
    assert_eq!(r["steps"]["waitCallback"]["state"], "WAITING");
    assert!(
        r["steps"]["createCallback"]["output"]["url"].is_string(),
        "managers see outputs"
    );

    // step state: admin or template owner, resolution PAUSED, a known state
    let sp = format!("/resolution/{rid}/step/waitCallback/state");
    let todo = json!({"state": "TODO"});
    assert_refused(
        call(&m, "PUT", Some("alice"), &sp, Some(&todo)).await,
        403,
        "Can't update resolution step state",
    );
    assert_refused(
        call(&m, "PUT", Some("bob"), &sp, Some(&todo)).await,
        403,
        "Can't update resolution step state",
    );
    let got = call(
        &m,
        "PUT",
        Some("admin"),
        &sp,
        Some(&json!({"state": "BOGUS"})),
    )
    .await;
    assert_refused(
        got.clone(),
        422,
        "invalid state provided: \"BOGUS\" is not allowed",
    );
    assert_eq!(got.1["error"]["fields"][0]["field"], "state");
    let got = call(
        &m,
        "PUT",
        Some("admin"),
        &sp,
        Some(&json!({"status": "TODO"})),
    )
    .await;
    assert_refused(got, 400, "state");
    let got = call(
        &m,
        "PUT",
        Some("admin"),
        &format!("/resolution/{rid}/step/nope/state"),
        Some(&todo),
    )
    .await;
    assert_refused(got, 404, "step `nope` not found");
    let (s, out) = call(&m, "PUT", Some("admin"), &sp, Some(&todo)).await;
    assert_eq!(s, 200, "{out}");
    assert_eq!(out["previous_state"], "WAITING");
    let (_, r) = call(
        &m,
        "GET",
        Some("admin"),
        &format!("/resolution/{rid}"),
        None,
    )
    .await;
    assert_eq!(r["steps"]["waitCallback"]["state"], "TODO");
    let notes = comments(&m, &tid).await;
    assert!(
        notes.contains(&"manually paused resolution".to_string()),
        "{notes:?}"
    );
    assert!(
        notes.contains(
            &"manually updated resolution step waitCallback state from WAITING to TODO".to_string()
        ),
        "{notes:?}"
    );

    // run: the runner claims it at once; the step waits again
    assert_refused(
        call(&m, "POST", Some("alice"), &p("run"), None).await,
        403,
        "You are not allowed to resolve this task",
    );
    assert_eq!(call(&m, "POST", Some("bob"), &p("run"), None).await.0, 204);
    let r = wait_resolution(&m, &rid, &["WAITING"]).await;
    assert_eq!(r["steps"]["waitCallback"]["state"], "WAITING");
    assert!(r["run_count"].as_i64().unwrap() >= 2, "{r}");
    assert!(
        comments(&m, &tid)
            .await
            .contains(&"manually ran resolution".to_string())
    );

    // extend: only from BLOCKED_MAXRETRIES; adds retry_max (100 by default) and retries now
    assert_refused(
        call(&m, "POST", Some("bob"), &p("extend"), None).await,
        400,
        "Cannot extend a resolution which is not in state 'BLOCKED_MAXRETRIES'",
    );
    let store = m.running.state.store.clone();
    let id: mutask::domain::ResolutionId = rid.parse().unwrap();
    mutask::store::resolution::force_state(
        &store,
        id,
        mutask::domain::ResolutionState::BlockedMaxRetries,
    )
    .await
    .unwrap();
    let run_max = r["run_max"].as_i64().unwrap();
    assert_refused(
        call(&m, "POST", Some("carol"), &p("extend"), None).await,
        403,
        "Not allowed to extend",
    );
    assert_eq!(
        call(&m, "POST", Some("bob"), &p("extend"), None).await.0,
        204
    );
    let r = wait_resolution(&m, &rid, &["WAITING"]).await;
    assert_eq!(r["run_max"].as_i64().unwrap(), run_max + 100);
    assert!(
        comments(&m, &tid)
            .await
            .contains(&"manually extended resolution".to_string())
    );

    // cancel: resolution and task CANCELLED; then nothing runs it any more
    assert_refused(
        call(&m, "POST", Some("alice"), &p("cancel"), None).await,
        403,
        "You are not allowed to cancel this task",
    );
    assert_eq!(
        call(&m, "POST", Some("bob"), &p("cancel"), None).await.0,
        204
    );
    let (_, t) = m.get("admin", &format!("/task/{tid}")).await;
    assert_eq!(
        (t["state"].as_str(), t["resolution_state"].as_str()),
        (Some("CANCELLED"), Some("CANCELLED"))
    );
    assert_refused(
        call(&m, "POST", Some("bob"), &p("cancel"), None).await,
        400,
        "Can't cancel resolution: state CANCELLED",
    );
    assert_refused(
        call(&m, "POST", Some("bob"), &p("run"), None).await,
        400,
        "Can't run resolution: cancelled",
    );
    assert!(
        comments(&m, &tid)
            .await
            .contains(&"cancelled resolution".to_string())
    );

    // start over: a non-admin manager needs allow_task_start_over; an admin may
    let again = json!({"task_id": tid, "start_over": true});
    assert_refused(
        call(&m, "POST", Some("bob"), "/resolution", Some(&again)).await,
        403,
        "You are not allowed to start over this task",
    );
    assert_refused(
        call(
            &m,
            "POST",
            Some("bob"),
            "/resolution",
            Some(&json!({"task_id": tid})),
        )
        .await,
        409,
        "use start_over",
    );
    let (s, fresh) = call(&m, "POST", Some("admin"), "/resolution", Some(&again)).await;
    assert_eq!(s, 201, "{fresh}");
    let new_rid = fresh["id"].as_str().unwrap().to_string();
    assert_ne!(new_rid, rid);
    assert_eq!(
        call(
            &m,
            "GET",
            Some("admin"),
            &format!("/resolution/{rid}"),
            None
        )
        .await
        .0,
        404
    );
    let r = wait_resolution(&m, &new_rid, &["WAITING"]).await;
    assert_eq!(r["run_count"], 1);
    let (_, t) = m.get("admin", &format!("/task/{tid}")).await;
    assert_eq!(t["state"], "WAITING");
    // a WAITING resolution cannot be started over
    let got = call(&m, "POST", Some("admin"), "/resolution", Some(&again)).await;
    assert_refused(got, 400, "can't start over a task that isn't in status");
    m.stop().await;
}

const RENDERED: &str = r#"
name: rendered
description: Step configurations rendered with the resolution's values
title_format: "Rendered for {{ input.who }}"
dialect: jinja
auto_runnable: true
allow_all_resolver_usernames: true
inputs:
  - name: who
  - name: token
    type: password
steps:
  first:
    action:
      type: echo
      configuration:
        output: {value: "from-first-{{ input.who }}"}
  second:
    dependencies: [first]
    action:
      type: echo
      configuration:
        output:
          msg: "{{ step.first.output.value }}"
          secret: "{{ input.token }}"
          cfg: "{{ config.anything }}"
          task: "{{ task.requester_username }}"
  each:
    dependencies: [second]
    foreach: '["a", "b"]'
    action:
      type: echo
      configuration:
        output: {item: "item-{{ iterator }}"}
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn step_configurations_are_rendered_with_secrets_masked() {
    let m = start().await;
    let r = m
        .client
        .put(m.url("/template/rendered"))
        .basic_auth("admin", Some("admin-pw"))
        .json(&json!({"source": RENDERED}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200, "{}", r.text().await.unwrap());
    let (s, t) = m
        .post(
            "alice",
            "/task",
            &json!({"template_name": "rendered", "watcher_usernames": ["bob"],
                    "input": {"who": "Ann", "token": "hunter2-plaintext"}}),
        )
        .await;
    assert_eq!(s, 201, "{t}");
    let task = t["id"].as_str().unwrap().to_string();
    let deadline = Instant::now() + Duration::from_secs(20);
    let rid = loop {
        let (_, t) = call(&m, "GET", Some("admin"), &format!("/task/{task}"), None).await;
        if let Some(r) = t["resolution"].as_str() {
            break r.to_string();
        }
        assert!(Instant::now() < deadline, "no resolution: {t}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let res = wait_resolution(&m, &rid, &["DONE"]).await;
    let conf = |user: &'static str, step: &str| {
        let path = format!("/resolution/{rid}/step/{step}/configuration");
        let m = &m;
        async move { call(m, "GET", Some(user), &path, None).await }
    };

    // a manager (admin): step outputs rendered, the password masked, instance config left
    let (s, c) = conf("admin", "second").await;
    assert_eq!(s, 200, "{c}");
    let out = &c["configuration"]["output"];
    assert_eq!(out["msg"], "from-first-Ann", "{c}");
    assert_eq!(out["secret"], "**__SECRET__**", "{c}");
    assert_eq!(out["cfg"], "{{ config.anything }}", "{c}");
    assert_eq!(out["task"], "alice", "{c}");
    assert_eq!(
        c["as_written"]["output"]["msg"],
        "{{ step.first.output.value }}"
    );
    assert_eq!(c["runtime_values"], true);
    assert_eq!(c["name"], "second");

    // the requester and a watcher do not see step outputs: left as written
    for reader in ["alice", "bob"] {
        let (s, c) = conf(reader, "second").await;
        assert_eq!(s, 200, "{c}");
        let out = &c["configuration"]["output"];
        assert_eq!(out["msg"], "{{ step.first.output.value }}", "{reader}: {c}");
        assert_eq!(out["secret"], "**__SECRET__**", "{reader}: {c}");
        assert_eq!(out["task"], "alice", "{reader}: {c}");
    }

    // foreach: the parent leaves the iterator as written and renders once per element
    let (_, c) = conf("admin", "each").await;
    assert_eq!(
        c["configuration"]["output"]["item"], "item-{{ iterator }}",
        "{c}"
    );
    let items: Vec<(&Value, &Value)> = c["children"]
        .as_array()
        .unwrap_or_else(|| panic!("no children: {c}"))
        .iter()
        .map(|x| (&x["item"], &x["configuration"]["output"]["item"]))
        .collect();
    assert_eq!(
        items,
        [
            (&json!("a"), &json!("item-a")),
            (&json!("b"), &json!("item-b"))
        ]
    );
    assert!(res["steps"]["each"]["children"].is_array(), "{res}");

    // nobody sees the password in plaintext; strangers and bad names are refused
    for user in ["admin", "alice", "bob"] {
        for step in ["first", "second", "each"] {
            let (_, c) = conf(user, step).await;
            assert!(!c.to_string().contains("hunter2"), "{user}/{step}: {c}");
        }
    }
    assert_refused(conf("carol", "second").await, 403, "Can't display");
    assert_refused(conf("admin", "nope").await, 404, "step `nope` not found");
    assert_refused(
        call(
            &m,
            "GET",
            Some("admin"),
            "/resolution/x/step/first/configuration",
            None,
        )
        .await,
        400,
        "not a valid resolution id",
    );
    assert_eq!(conf_anonymous(&m, &rid).await, 401);
    m.stop().await;
}

async fn conf_anonymous(m: &common::Instance, rid: &str) -> u16 {
    call(
        m,
        "GET",
        None,
        &format!("/resolution/{rid}/step/first/configuration"),
        None,
    )
    .await
    .0
}
