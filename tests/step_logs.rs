//! Step logs end to end: a script's stdout/stderr and progress lines are stored per execution
//! (sealed, secrets masked), served as JSON and live as server-sent events while the step runs,
//! hidden from requesters/watchers who do not see outputs, and pruned to the last executions.

use crate::common;

use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

const CANARY: &str = "hunter2-canary-5150";

fn setup(c: &mut mutask::config::Config) {
    let scripts = c.data_dir.join("scripts");
    std::fs::create_dir_all(&scripts).unwrap();
    let script = scripts.join("work.sh");
    std::fs::write(
        &script,
        "#!/bin/sh\necho \"starting with $1\"\necho 'MUTASK-PROGRESS: 50 halfway there'\necho 'to stderr' >&2\nsleep 2\necho 'MUTASK-PROGRESS: 100 done'\necho '{\"ok\": true}'\n",
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    c.scripts_dir = scripts;
    let dir = c.data_dir.join("templates");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("logged.yaml"),
        r#"
name: logged
description: A script that prints and reports progress
title_format: logged run
auto_runnable: true
allowed_resolver_usernames: [alice]
inputs:
  - name: token
    type: password
steps:
  work:
    action:
      type: script
      configuration:
        file_path: work.sh
        argv: ["{{.input.token}}"]
  later:
    dependencies: [work]
    action:
      type: script
      configuration:
        file_path: work.sh
        argv: ["{{.input.token}}"]
"#,
    )
    .unwrap();
    c.templates_dir = dir;
}

async fn resolution_of(m: &common::Instance, task: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (_, t) = m.get("alice", &format!("/task/{task}")).await;
        if let Some(r) = t["resolution"].as_str() {
            return r.to_string();
        }
        assert!(Instant::now() < deadline, "no resolution: {t}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Reads server-sent events until `end`: (event, data) pairs.
async fn follow(m: &common::Instance, path: &str) -> Vec<(String, Value)> {
    let mut r = m
        .client
        .get(m.url(path))
        .basic_auth("alice", Some("alice-pw"))
        .header("accept", "text/event-stream")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    let mut text = String::new();
    let mut events = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while let Ok(Some(chunk)) = tokio::time::timeout(Duration::from_secs(30), r.chunk())
        .await
        .unwrap_or(Ok(None))
    {
        text.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = text.find("\n\n") {
            let block: String = text.drain(..end + 2).collect();
            let mut event = "message".to_string();
            let mut data = String::new();
            for line in block.lines() {
                if let Some(e) = line.strip_prefix("event:") {
                    event = e.trim().to_string();
                } else if let Some(d) = line.strip_prefix("data:") {
                    data.push_str(d.trim());
                }
            }
            if data.is_empty() {
                continue; // keep-alive comment
            }
            let done = event == "end";
            events.push((event, serde_json::from_str(&data).unwrap_or(Value::Null)));
            if done {
                return events;
            }
        }
        assert!(Instant::now() < deadline, "no end event: {events:?}");
    }
    events
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_scripts_log_is_followed_live_masked_and_sealed() {
    let m = common::start_with(setup).await;
    let (s, task) = m
        .post(
            "alice",
            "/task",
            &json!({"template_name": "logged", "input": {"token": CANARY}, "watcher_usernames": ["bob"]}),
        )
        .await;
    assert_eq!(s, 201, "{task}");
    let task = task["id"].as_str().unwrap().to_string();
    let res = resolution_of(&m, &task).await;
    let path = format!("/resolution/{res}/step/work/log");

    // live, followed before the step started (it waits for `work`): lines arrive while the
    // script sleeps, then `end`
    let events = follow(&m, &format!("/resolution/{res}/step/later/log")).await;
    let texts: Vec<String> = events
        .iter()
        .filter_map(|(_, d)| d["text"].as_str().map(str::to_string))
        .collect();
    assert!(
        texts.iter().any(|t| t == "starting with **__SECRET__**"),
        "{events:?}"
    );
    assert!(
        events
            .iter()
            .any(|(e, d)| e == "progress" && d["text"] == "50 halfway there"),
        "{events:?}"
    );
    assert!(
        events
            .iter()
            .any(|(_, d)| d["stream"] == "stderr" && d["text"] == "to stderr")
    );
    assert_eq!(events.last().unwrap().0, "end");
    assert!(!format!("{events:?}").contains(CANARY));

    // JSON: every line of the latest execution, the last progress
    let (s, log) = m.get("alice", &path).await;
    assert_eq!(s, 200, "{log}");
    assert_eq!(log["execution"], 1);
    assert_eq!(log["executions"], json!([1]));
    assert_eq!(log["progress"]["percent"], 100);
    assert_eq!(log["progress"]["message"], "done");
    let lines = log["lines"].as_array().unwrap();
    assert!(
        lines
            .iter()
            .any(|l| l["text"] == "{\"ok\": true}" && l["stream"] == "stdout"),
        "{log}"
    );
    assert!(!log.to_string().contains(CANARY));
    // paging: nothing after the last chunk
    let (_, rest) = m
        .get("alice", &format!("{path}?after={}", log["next"]))
        .await;
    assert_eq!(rest["lines"], json!([]));
    assert_eq!(rest["next"], log["next"]);

    // a watcher does not see outputs, so no logs either; unknown steps are 404
    let (s, _) = m.get("bob", &path).await;
    assert_eq!(s, 403);
    let (s, _) = m
        .get("alice", &format!("/resolution/{res}/step/nope/log"))
        .await;
    assert_eq!(s, 404);

    // sealed at rest: neither the line nor the secret is readable in any table
    let pool = &m.running.state.store.pool;
    assert!(
        common::find_in_all_tables(pool, "halfway there")
            .await
            .is_empty()
    );
    assert!(common::find_in_all_tables(pool, CANARY).await.is_empty());

    // only the last 5 executions of a step keep their log
    let store = m.running.state.store.clone();
    let rid: mutask::domain::ResolutionId = res.parse().unwrap();
    for execution in 1..=7 {
        let (log, writer) = mutask::engine::logs::start(
            store.clone(),
            rid,
            "other".into(),
            execution,
            mutask::engine::logs::KEEP_EXECUTIONS,
            std::sync::Arc::new(Vec::new()),
        );
        log.line(
            mutask::action::log::Stream::Stdout,
            &format!("run {execution}"),
        );
        drop(log);
        writer.await.unwrap();
    }
    let kept = mutask::store::step_log::executions(&store, rid, "other")
        .await
        .unwrap();
    assert_eq!(kept, [3, 4, 5, 6, 7]);
    m.stop().await;
}

async fn write_log(
    store: &mutask::store::Store,
    rid: mutask::domain::ResolutionId,
    step: &str,
    execution: i32,
    keep: i32,
) {
    let (log, writer) = mutask::engine::logs::start(
        store.clone(),
        rid,
        step.into(),
        execution,
        keep,
        std::sync::Arc::new(Vec::new()),
    );
    log.line(
        mutask::action::log::Stream::Stdout,
        &format!("run {execution}"),
    );
    drop(log);
    writer.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_by_count_is_a_setting_and_the_collector_drops_old_logs_only() {
    let m = common::start_with(|c| {
        setup(c);
        c.log_keep_executions = 2;
    })
    .await;
    let (s, t) = m
        .post(
            "alice",
            "/task",
            &json!({"template_name": "logged", "input": {"token": CANARY}}),
        )
        .await;
    assert_eq!(s, 201, "{t}");
    let res = resolution_of(&m, t["id"].as_str().unwrap()).await;
    let store = m.running.state.store.clone();
    let rid: mutask::domain::ResolutionId = res.parse().unwrap();
    assert_eq!(m.running.state.config.log_keep_executions, 2);
    for execution in 1..=4 {
        write_log(&store, rid, "other", execution, 2).await;
    }
    let kept = mutask::store::step_log::executions(&store, rid, "other")
        .await
        .unwrap();
    assert_eq!(kept, [3, 4]);

    // age: backdate one step's log past a 1 h retention, keep another's recent
    write_log(&store, rid, "fresh", 1, 2).await;
    write_log(&store, rid, "stale", 1, 2).await;
    sqlx::query(
        "UPDATE step_log SET created = now() - interval '2 hours'
          WHERE resolution_id = $1 AND step_name = 'stale'",
    )
    .bind(uuid::Uuid::parse_str(&res).unwrap())
    .execute(&store.pool)
    .await
    .unwrap();
    let dropped = mutask::store::step_log::collect(&store, Duration::from_secs(3600), 10_000)
        .await
        .unwrap();
    assert!(dropped >= 1, "{dropped}");
    let stale = mutask::store::step_log::executions(&store, rid, "stale")
        .await
        .unwrap();
    assert!(stale.is_empty(), "{stale:?}");
    let fresh = mutask::store::step_log::executions(&store, rid, "fresh")
        .await
        .unwrap();
    assert_eq!(fresh, [1]);
    let other = mutask::store::step_log::executions(&store, rid, "other")
        .await
        .unwrap();
    assert_eq!(other, [3, 4], "newer logs stay");
    m.stop().await;
}
