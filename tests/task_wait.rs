//! `?wait=` on `POST /task` and `GET /task/{id}`: the answer comes once the task has settled —
//! heard through PostgreSQL from whichever instance ran it — or when the wait ends.

use crate::common;

use std::time::{Duration, Instant};

use mutask::config::Role;
use serde_json::{Value, json};

/// A second instance on `m`'s database that serves the API only (it runs no task).
async fn api_only(m: &common::Instance, data: &std::path::Path) -> common::Instance {
    // the same key (each generated its own into its data directory otherwise)
    std::fs::copy(
        m.data.path().join("encryption.key"),
        data.join("encryption.key"),
    )
    .unwrap();
    let config = common::test_config(&m.db, data);
    let running = mutask::app::start(config, Role::Api, false).await.unwrap();
    common::Instance {
        base: format!("http://{}", running.addr),
        running,
        // the same database (a TestDb is only its name and address)
        db: mutask::testing::TestDb {
            name: m.db.name.clone(),
            options: m.db.options.clone(),
            url: m.db.url.clone(),
        },
        data: tempfile::tempdir().unwrap(),
        client: common::http(),
    }
}

/// Creates a `wait-for-callback` task on `m` and returns its id and its callback's path, once its
/// `waitCallback` step waits.
async fn waiting_task(m: &common::Instance) -> (String, String) {
    let (s, t) = m
        .post(
            "admin",
            "/task",
            &json!({"template_name": "wait-for-callback", "input": {"system": "ci"}}),
        )
        .await;
    assert_eq!(s, 201, "{t}");
    let (id, rid) = (
        t["id"].as_str().unwrap().to_string(),
        t["resolution"].as_str().unwrap().to_string(),
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (_, r) = m.get("admin", &format!("/resolution/{rid}")).await;
        if r["steps"]["waitCallback"]["state"] == "WAITING" {
            let out = &r["steps"]["createCallback"]["output"];
            let path = format!(
                "/unsecured/callback/{}?t={}",
                out["id"].as_str().unwrap(),
                out["token"].as_str().unwrap()
            );
            return (id, path);
        }
        assert!(
            Instant::now() < deadline,
            "the callback step never waited: {r}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `GET /task/{id}?wait=…` as admin on `m`, in the background: its status, body and when it
/// was answered.
fn spawn_wait(
    m: &common::Instance,
    id: &str,
    wait: &str,
) -> tokio::task::JoinHandle<(u16, Value, Instant)> {
    let (client, url) = (m.client.clone(), m.url(&format!("/task/{id}?wait={wait}")));
    tokio::spawn(async move {
        let r = client
            .get(url)
            .basic_auth("admin", Some("admin-pw"))
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        (status, r.json::<Value>().await.unwrap(), Instant::now())
    })
}

/// Waits until `m` has a request waiting for a task.
async fn until_watched(m: &common::Instance) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while m.running.state.task_waits.watched() == 0 {
        assert!(Instant::now() < deadline, "no request ever waited");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_create_that_waits_answers_the_finished_task() {
    let m = common::start().await;
    let (s, t) = m
        .post(
            "alice",
            "/task?wait=30s",
            &json!({"template_name": "hello-world", "input": {"name": "Ada"}}),
        )
        .await;
    assert_eq!(s, 201, "{t}");
    assert_eq!(t["state"], "DONE", "{t}");
    assert_eq!(t["result"]["greeting"], "Hello Ada!", "{t}");
    assert_eq!(m.running.state.task_waits.watched(), 0, "the watch ended");

    // a task nobody runs until a resolver does has settled at once
    let began = Instant::now();
    let (s, t) = m
        .post(
            "alice",
            "/task?wait=30s",
            &json!({"template_name": "deploy-approval",
                    "input": {"service": "api", "environment": "staging"}}),
        )
        .await;
    assert_eq!(s, 201, "{t}");
    assert_eq!(t["state"], "TODO", "{t}");
    assert!(
        began.elapsed() < Duration::from_secs(5),
        "{:?}",
        began.elapsed()
    );
    m.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wait_hears_a_task_settled_by_another_instance() {
    let runner = common::start().await;
    let dir = tempfile::tempdir().unwrap();
    let api = api_only(&runner, dir.path()).await;
    // created through the API-only instance: the other one runs it
    let (id, callback) = waiting_task(&api).await;

    let waiter = spawn_wait(&api, &id, "50s");
    until_watched(&api).await;
    let called = Instant::now();
    let (s, body) = runner
        .post("nobody", &callback, &json!({"success": true}))
        .await;
    assert_eq!(s, 200, "{body}");
    let (s, t, answered) = waiter.await.unwrap();
    assert_eq!(s, 200, "{t}");
    assert_eq!(t["state"], "DONE", "{t}");
    // heard, not found by the request's own timer (every 5 s)
    let took = answered - called;
    assert!(
        took < mutask::api::task_wait::RECHECK - Duration::from_secs(2),
        "answered {took:?} after the callback"
    );
    api.stop().await;
    runner.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wait_ends_at_its_deadline_or_when_the_instance_stops() {
    let m = common::start().await;
    let (id, _) = waiting_task(&m).await;
    let began = Instant::now();
    let (s, t) = m.get("admin", &format!("/task/{id}?wait=1500ms")).await;
    let took = began.elapsed();
    assert_eq!(s, 200, "{t}");
    assert_eq!(t["state"], "WAITING", "{t}");
    assert!(
        took >= Duration::from_millis(1500) && took < Duration::from_secs(5),
        "{took:?}"
    );

    // a wait in progress answers at once when the instance begins to stop
    let waiter = spawn_wait(&m, &id, "60s");
    until_watched(&m).await;
    let stopping = Instant::now();
    let stop = tokio::spawn(m.stop());
    let (s, t, _) = tokio::time::timeout(Duration::from_secs(20), waiter)
        .await
        .expect("the wait ended with the instance")
        .unwrap();
    assert_eq!(s, 200, "{t}");
    assert_eq!(t["state"], "WAITING", "{t}");
    assert!(stopping.elapsed() < Duration::from_secs(20));
    stop.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_wait_is_refused_naming_it_and_creates_nothing() {
    let m = common::start().await;
    for (wait, says) in [("soon", "wait"), ("2m", "at most 60s"), ("-1s", "wait")] {
        let (s, body) = m
            .post(
                "alice",
                &format!("/task?wait={wait}"),
                &json!({"template_name": "hello-world", "input": {"name": "Ada"}}),
            )
            .await;
        assert_eq!(s, 400, "{wait}: {body}");
        let text = body.to_string();
        assert!(
            text.contains("`wait`") && text.contains(says),
            "{wait}: {text}"
        );
    }
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM task")
        .fetch_one(&m.running.state.store.pool)
        .await
        .unwrap();
    assert_eq!(n, 0, "a refused create wrote nothing");

    let (_, t) = m
        .post(
            "alice",
            "/task",
            &json!({"template_name": "hello-world", "input": {"name": "Ada"}}),
        )
        .await;
    let (s, body) = m
        .get(
            "alice",
            &format!("/task/{}?wait=forever", t["id"].as_str().unwrap()),
        )
        .await;
    assert_eq!(s, 400, "{body}");
    assert!(body.to_string().contains("`wait`"), "{body}");
    // and a task the caller may not read is refused before any wait
    let began = Instant::now();
    let (s, body) = m
        .get(
            "bob",
            &format!("/task/{}?wait=30s", t["id"].as_str().unwrap()),
        )
        .await;
    assert_eq!(s, 403, "{body}");
    assert!(began.elapsed() < Duration::from_secs(5));
    m.stop().await;
}
