//! Schedules end to end: the API (validation, rights, next runs, pause/resume, a real firing by
//! the instance's own ticker), exactly-once firing by two tickers on one database under a
//! controllable clock, and the missed-run, overlap and suspend policies. Also idempotent and
//! timed task creation.

use crate::common;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use mutask::config::Role;
use mutask::domain::clock::{Clock, ManualClock};
use mutask::schedule::Ticker;
use mutask::store::{self, Store, schedule::ScheduleDef};
use serde_json::{Value, json};

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

/// An API-only instance: its own ticker does not run, the test's tickers do.
async fn api_only() -> common::Instance {
    let db = mutask::testing::test_db().await;
    let data = tempfile::tempdir().unwrap();
    let config = common::test_config(&db, data.path());
    let running = mutask::app::start(config, Role::Api, false).await.unwrap();
    common::Instance {
        base: format!("http://{}", running.addr),
        running,
        db,
        data,
        client: common::http(),
    }
}

async fn ticker(m: &common::Instance, clock: &ManualClock) -> Ticker {
    // its own pool, as another instance would have
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(4)
        .connect(&m.db.url)
        .await
        .unwrap();
    Ticker {
        store: Store::new(pool, m.running.state.store.keys.clone()),
        renderer: m.running.state.renderer.clone(),
        clock: Arc::new(clock.clone()),
        admins: Arc::new(HashSet::from(["admin".to_string()])),
    }
}

struct Def<'a> {
    name: &'a str,
    when: &'a str,
    missed: &'a str,
    overlap: &'a str,
    suspend: Vec<String>,
}

async fn schedule(m: &common::Instance, d: Def<'_>, anchor: DateTime<Utc>) -> uuid::Uuid {
    let store = &m.running.state.store;
    let next = mutask::schedule::next_fire(d.when, anchor, anchor).unwrap();
    store::schedule::create(
        store,
        &ScheduleDef {
            name: d.name,
            template_name: "hello-world",
            when: d.when,
            suspend: &d.suspend,
            missed: d.missed,
            overlap: d.overlap,
            paused: false,
            input: &json!({"name": "Cron"}),
            next_fire: next,
            anchor,
        },
        "admin",
    )
    .await
    .unwrap()
    .id
}

async fn outcomes(m: &common::Instance, id: uuid::Uuid) -> Vec<(DateTime<Utc>, String)> {
    let mut runs = store::schedule::runs(&m.running.state.store, id, 1000)
        .await
        .unwrap();
    runs.reverse();
    runs.into_iter()
        .map(|r| (r.occurrence, r.outcome))
        .collect()
}

async fn tasks_of(m: &common::Instance, name: &str) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM task WHERE tags->>'mutask_schedule' = $1")
        .bind(name)
        .fetch_one(&m.running.state.store.pool)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_tickers_fire_each_occurrence_exactly_once() {
    let m = api_only().await;
    let t0 = at("2026-03-02T00:00:00Z");
    let clock = ManualClock::new(t0);
    let id = schedule(
        &m,
        Def {
            name: "every-minute",
            when: "minutely",
            missed: "run_once",
            overlap: "allow",
            suspend: vec![],
        },
        t0,
    )
    .await;
    let (a, b) = (ticker(&m, &clock).await, ticker(&m, &clock).await);
    let (mut fired, mut races) = (0, 0);
    for _ in 0..40 {
        clock.advance(chrono::Duration::seconds(30));
        let (ra, rb) = tokio::join!(a.tick(), b.tick());
        let (ra, rb) = (ra.unwrap(), rb.unwrap());
        fired += ra.fired + rb.fired;
        races += ra.lost_races + rb.lost_races;
        // a second pass at the same instant finds nothing more to do
        let again = a.tick().await.unwrap();
        assert_eq!(again.fired + again.skipped, 0);
    }
    // 20 minutes of minutely: occurrences 00:01 … 00:20
    assert_eq!(fired, 20, "lost races: {races}");
    assert_eq!(tasks_of(&m, "every-minute").await, 20);
    let runs = outcomes(&m, id).await;
    assert_eq!(runs.len(), 20);
    for (i, (occ, outcome)) in runs.iter().enumerate() {
        assert_eq!(*occ, t0 + chrono::Duration::minutes(i as i64 + 1));
        assert_eq!(outcome, "fired");
    }
    // the tasks are real tasks: validated inputs, the schedule's creator as requester
    let (s, list) = m
        .get("admin", "/task?type=all&tag=mutask_schedule=every-minute")
        .await;
    assert_eq!(s, 200, "{list}");
    let first = &list.as_array().unwrap()[0];
    assert_eq!(first["requester_username"], "admin");
    assert_eq!(first["title"], "Say hello to Cron");
    m.stop().await;
}

#[tokio::test]
async fn missed_overlap_and_suspend_policies() {
    let m = api_only().await;
    let t0 = at("2026-03-02T00:00:00Z");
    let clock = ManualClock::new(t0);
    let t = ticker(&m, &clock).await;
    let skip = schedule(
        &m,
        Def {
            name: "skip",
            when: "hourly",
            missed: "skip",
            overlap: "allow",
            suspend: vec![],
        },
        t0,
    )
    .await;
    let once = schedule(
        &m,
        Def {
            name: "once",
            when: "hourly",
            missed: "run_once",
            overlap: "allow",
            suspend: vec![],
        },
        t0,
    )
    .await;
    // ten hours of downtime
    clock.set(at("2026-03-02T10:30:00Z"));
    let r = t.tick().await.unwrap();
    assert_eq!((r.fired, r.skipped), (1, 1), "{r:?}");
    assert_eq!(tasks_of(&m, "skip").await, 0);
    assert_eq!(tasks_of(&m, "once").await, 1);
    assert_eq!(outcomes(&m, skip).await[0].1, "skipped_missed");
    assert_eq!(outcomes(&m, once).await[0].1, "fired");
    for name in ["skip", "once"] {
        let s = store::schedule::get(&m.running.state.store, name)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            s.next_fire,
            Some(at("2026-03-02T11:00:00Z")),
            "{name} jumps past the gap"
        );
    }
    assert_eq!(t.tick().await.unwrap().fired, 0, "nothing more is due");

    // overlap: skip while the previous task is unfinished
    let ov = schedule(
        &m,
        Def {
            name: "ov",
            when: "minutely",
            missed: "skip",
            overlap: "skip",
            suspend: vec![],
        },
        clock.now(),
    )
    .await;
    clock.advance(chrono::Duration::seconds(61));
    assert_eq!(t.tick().await.unwrap().fired, 1);
    clock.advance(chrono::Duration::seconds(60));
    t.tick().await.unwrap();
    assert_eq!(outcomes(&m, ov).await.last().unwrap().1, "skipped_overlap");
    sqlx::query("UPDATE task SET state = 'DONE' WHERE tags->>'mutask_schedule' = 'ov'")
        .execute(&m.running.state.store.pool)
        .await
        .unwrap();
    clock.advance(chrono::Duration::seconds(60));
    t.tick().await.unwrap();
    assert_eq!(outcomes(&m, ov).await.last().unwrap().1, "fired");
    assert_eq!(tasks_of(&m, "ov").await, 2);

    // suspend: a daily window covering 11:00
    let now = clock.now();
    let sus = schedule(
        &m,
        Def {
            name: "sus",
            when: "hourly@0,30",
            missed: "skip",
            overlap: "allow",
            suspend: vec!["10:45-11:15".into()],
        },
        now,
    )
    .await;
    for hhmm in ["11:00:10", "11:30:10", "12:00:10"] {
        clock.set(at(&format!("2026-03-02T{hhmm}Z")));
        t.tick().await.unwrap();
    }
    let got: Vec<(String, String)> = outcomes(&m, sus)
        .await
        .into_iter()
        .map(|(o, r)| (o.format("%H:%M").to_string(), r))
        .collect();
    assert_eq!(
        got,
        [
            ("11:00".into(), "skipped_suspended".into()),
            ("11:30".into(), "fired".into()),
            ("12:00".into(), "fired".into())
        ]
        .to_vec() as Vec<(String, String)>,
    );
    m.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schedules_through_the_api() {
    let m = common::start().await;
    let body = json!({"name": "greet", "template_name": "hello-world", "when": "every 1s",
                      "input": {"name": "Timer"}, "overlap": "allow"});
    // only admins and template owners
    let (s, e) = m.post("alice", "/schedule", &body).await;
    assert_eq!(s, 403, "{e}");
    // every problem at once
    let (s, e) = m
        .post(
            "admin",
            "/schedule",
            &json!({"name": "bad", "template_name": "hello-world", "when": "hourly@75",
                    "input": {"name": "1nvalid"}, "suspend": ["nope"], "missed": "always", "overlap": "x"}),
        )
        .await;
    assert_eq!(s, 422, "{e}");
    let fields: HashSet<&str> = e["error"]["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["field"].as_str().unwrap())
        .collect();
    for f in ["when", "suspend[0]", "missed", "overlap", "input.name"] {
        assert!(fields.contains(f), "{f} in {e}");
    }
    let (s, e) = m
        .post(
            "admin",
            "/schedule",
            &json!({"name": "Bad Name", "template_name": "hello-world", "when": "daily"}),
        )
        .await;
    assert_eq!(s, 422, "{e}");
    let (s, e) = m
        .post(
            "admin",
            "/schedule",
            &json!({"name": "x", "template_name": "nope", "when": "daily"}),
        )
        .await;
    assert_eq!(s, 404, "{e}");

    let (s, created) = m.post("admin", "/schedule", &body).await;
    assert_eq!(s, 201, "{created}");
    assert_eq!(created["next_runs"].as_array().unwrap().len(), 5);
    let (s, e) = m.post("admin", "/schedule", &body).await;
    assert_eq!(s, 409, "{e}");

    // the instance's own ticker fires it; the task runs to DONE
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let (_, list) = m
            .get(
                "admin",
                "/task?type=all&tag=mutask_schedule=greet&state=DONE",
            )
            .await;
        if list.as_array().is_some_and(|l| !l.is_empty()) {
            assert_eq!(list[0]["title"], "Say hello to Timer");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no scheduled task ran"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (s, one) = m.get("admin", "/schedule/greet").await;
    assert_eq!(s, 200);
    assert!(
        one["recent_runs"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["outcome"] == "fired"),
        "{one}"
    );
    let (s, _) = m.get("alice", "/schedule/greet").await;
    assert_eq!(s, 403);
    let (s, list) = m.get("alice", "/schedule").await;
    assert_eq!((s, list), (200, json!([])));

    // pause: no more runs; resume: next runs again
    let (s, p) = m.post("admin", "/schedule/greet/pause", &json!({})).await;
    assert_eq!(s, 200, "{p}");
    assert_eq!(p["paused"], true);
    assert_eq!(p["next_runs"], json!([]));
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let count = |v: &Value| v.as_array().map(|a| a.len()).unwrap_or(0);
    let (_, before) = m
        .get("admin", "/task?type=all&tag=mutask_schedule=greet")
        .await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let (_, after) = m
        .get("admin", "/task?type=all&tag=mutask_schedule=greet")
        .await;
    assert_eq!(
        count(&before),
        count(&after),
        "a paused schedule does not fire"
    );
    let (s, r) = m.post("admin", "/schedule/greet/resume", &json!({})).await;
    assert_eq!(s, 200, "{r}");
    assert_eq!(r["next_runs"].as_array().unwrap().len(), 5);

    // update and delete
    let r = m
        .client
        .put(m.url("/schedule/greet"))
        .basic_auth("admin", Some("admin-pw"))
        .json(&json!({"template_name": "hello-world", "when": "weekly@Monday@09:00", "input": {"name": "Monday"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["when"], "weekly@Monday@09:00");
    let r = m
        .client
        .delete(m.url("/schedule/greet"))
        .basic_auth("admin", Some("admin-pw"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(m.get("admin", "/schedule/greet").await.0, 404);
    m.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idempotency_keys_and_run_at() {
    let m = api_only().await;
    let body = json!({"template_name": "hello-world", "input": {"name": "Once"}});
    // ten concurrent creates with one key: one task
    let mut handles = Vec::new();
    for _ in 0..10 {
        let (client, url, body) = (m.client.clone(), m.url("/task"), body.clone());
        handles.push(tokio::spawn(async move {
            let r = client
                .post(url)
                .basic_auth("alice", Some("alice-pw"))
                .header("idempotency-key", "deploy-42")
                .json(&body)
                .send()
                .await
                .unwrap();
            let status = r.status().as_u16();
            let replayed = r.headers().get("idempotent-replayed").is_some();
            let v: Value = r.json().await.unwrap();
            (status, replayed, v["id"].as_str().unwrap().to_string())
        }));
    }
    let mut ids = HashSet::new();
    let mut created = 0;
    for h in handles {
        let (status, replayed, id) = h.await.unwrap();
        match status {
            201 => created += 1,
            200 => assert!(replayed),
            other => panic!("status {other}"),
        }
        ids.insert(id);
    }
    assert_eq!((created, ids.len()), (1, 1));
    // another user's same key is another task; a body key works too
    let (s, other) = m
        .post("bob", "/task", &json!({"template_name": "hello-world", "input": {"name": "Once"}, "idempotency_key": "deploy-42"}))
        .await;
    assert_eq!(s, 201, "{other}");
    assert!(!ids.contains(other["id"].as_str().unwrap()));
    // an expired key is free again
    sqlx::query("UPDATE task_idempotency SET expires = now() - interval '1 second'")
        .execute(&m.running.state.store.pool)
        .await
        .unwrap();
    let (s, again) = m
        .post("alice", "/task", &json!({"template_name": "hello-world", "input": {"name": "Once"}, "idempotency_key": "deploy-42"}))
        .await;
    assert_eq!(s, 201, "{again}");
    // bad keys and ttls, run_at with delay
    let (s, e) = m
        .post("alice", "/task", &json!({"template_name": "hello-world", "input": {"name": "X"},
            "idempotency_key": "", "idempotency_ttl": "forever", "run_at": "2030-01-01T00:00:00Z", "delay": "1m"}))
        .await;
    assert_eq!(s, 422, "{e}");
    let fields: Vec<&str> = e["error"]["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["idempotency_key", "idempotency_ttl", "run_at"]);
    // run_at: a delayed task that becomes claimable then
    let (s, t) = m
        .post("admin", "/task", &json!({"template_name": "hello-world", "input": {"name": "Later"}, "run_at": "2030-01-01T00:00:00Z"}))
        .await;
    assert_eq!(s, 201, "{t}");
    assert_eq!(t["state"], "DELAYED");
    let next: DateTime<Utc> =
        sqlx::query_scalar("SELECT next_retry FROM resolution WHERE task_id = $1::uuid")
            .bind(t["id"].as_str().unwrap())
            .fetch_one(&m.running.state.store.pool)
            .await
            .unwrap();
    assert!(
        (next - at("2030-01-01T00:00:00Z")).num_seconds().abs() <= 2,
        "{next}"
    );
    m.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_signed_heartbeat_example_signs_its_body() {
    use axum::http::HeaderMap;
    type Received = std::sync::Mutex<Vec<(String, Vec<u8>)>>;
    let got: Arc<Received> = Default::default();
    let sink = got.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |h: HeaderMap, body: axum::body::Bytes| {
            let sink = sink.clone();
            async move {
                let sig = h
                    .get("x-mutask-sign")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("")
                    .to_string();
                sink.lock().unwrap().push((sig, body.to_vec()));
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let m = common::start_with(|c| c.network_allow = vec!["127.0.0.1".into()]).await;
    let secret = "heartbeat-key";
    let (s, t) = m
        .post(
            "admin",
            "/task",
            &json!({"template_name": "signed-heartbeat",
                    "input": {"url": format!("http://{addr}/hook"), "secret": secret}}),
        )
        .await;
    assert_eq!(s, 201, "{t}");
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while got.lock().unwrap().is_empty() {
        assert!(std::time::Instant::now() < deadline, "nothing received");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (sig, body) = got.lock().unwrap()[0].clone();
    assert_eq!(
        sig,
        format!(
            "sha256={}",
            mutask::schedule::webhook::hmac_sha256_hex(secret.as_bytes(), &body)
        )
    );
    let v: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["task"], t["id"]);
    m.stop().await;
}
