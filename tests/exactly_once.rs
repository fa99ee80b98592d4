//! 10,000 tasks created by 50 concurrent clients through two instances sharing one database,
//! no faults: every task ends DONE and its step ran exactly once (each run calls a counter
//! server on 127.0.0.1 with the task id). `EXACTLY_ONCE_TASKS` changes the count.

use crate::common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mutask::config::Role;
use serde_json::json;

const TEMPLATE: &str = r#"
name: count-once
dialect: jinja
description: One http step that reports its task id
title_format: "count {{ input.n }}"
auto_runnable: true
allow_all_resolver_usernames: true
inputs:
  - name: n
  - name: url
steps:
  hit:
    action:
      type: http
      configuration:
        url: "{{ input.url }}/{{ task.task_id }}"
        method: POST
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_step_runs_exactly_once_across_two_instances() {
    let total: usize = std::env::var("EXACTLY_ONCE_TASKS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    // the counter
    let hits: Arc<Mutex<HashMap<String, u32>>> = Default::default();
    let sink = hits.clone();
    let app = axum::Router::new().route(
        "/hit/{id}",
        axum::routing::post(
            move |axum::extract::Path(id): axum::extract::Path<String>| {
                let sink = sink.clone();
                async move {
                    *sink.lock().unwrap().entry(id).or_default() += 1;
                    "ok"
                }
            },
        ),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let counter = format!("http://{}/hit", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let db = mutask::testing::test_db().await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("count-once.yaml"), TEMPLATE).unwrap();
    let start = |data: &std::path::Path| {
        let mut c = common::test_config(&db, data);
        c.templates_dir = dir.path().to_path_buf();
        c.network_allow = vec!["127.0.0.1".into()];
        c.encryption_keys = Some(format!(
            "k1:{}",
            base64::Engine::encode(&base64::engine::general_purpose::STANDARD, [7u8; 32])
        ));
        mutask::app::start(c, Role::All, false)
    };
    let (d1, d2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = start(d1.path()).await.unwrap();
    let b = start(d2.path()).await.unwrap();
    let bases = [format!("http://{}", a.addr), format!("http://{}", b.addr)];

    let began = Instant::now();
    let client = common::http();
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut clients = Vec::new();
    for c in 0..50 {
        let (client, next, base, counter) = (
            client.clone(),
            next.clone(),
            bases[c % 2].clone(),
            counter.clone(),
        );
        clients.push(tokio::spawn(async move {
            let mut ids = Vec::new();
            loop {
                let n = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if n >= total {
                    return ids;
                }
                let r = client
                    .post(format!("{base}/task"))
                    .basic_auth("alice", Some("alice-pw"))
                    .json(&json!({"template_name": "count-once", "input": {"n": n.to_string(), "url": counter}}))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status(), 201);
                let v: serde_json::Value = r.json().await.unwrap();
                ids.push(v["id"].as_str().unwrap().to_string());
            }
        }));
    }
    let mut ids = Vec::with_capacity(total);
    for c in clients {
        ids.extend(c.await.unwrap());
    }
    let created = began.elapsed();
    assert_eq!(ids.len(), total);
    let pool = a.state.store.pool.clone();
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let done: i64 = sqlx::query_scalar("SELECT count(*) FROM task WHERE state = 'DONE'")
            .fetch_one(&pool)
            .await
            .unwrap();
        if done as usize == total {
            break;
        }
        assert!(Instant::now() < deadline, "only {done}/{total} DONE");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let finished = began.elapsed();
    let hits = hits.lock().unwrap().clone();
    let twice: Vec<_> = hits.iter().filter(|(_, n)| **n != 1).collect();
    assert!(
        twice.is_empty(),
        "steps not run exactly once: {:?}",
        &twice[..twice.len().min(5)]
    );
    for id in &ids {
        assert_eq!(hits.get(id), Some(&1), "task {id}");
    }
    assert_eq!(hits.len(), total);
    println!("RESULT exactly-once: tasks={total} created_in={created:?} all_done_in={finished:?}");
    a.shutdown().await.unwrap();
    b.shutdown().await.unwrap();
}
