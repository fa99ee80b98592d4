//! Several `mutask serve` processes on one PostgreSQL, with real faults: an instance killed
//! with SIGKILL mid-step, and one frozen with SIGSTOP past its lease. Steps record every
//! execution in a file: idempotent steps are re-run by the survivor (at most twice in all),
//! non-idempotent ones are never re-run silently (the task blocks for a human check), and a
//! frozen instance's late writes are rejected (fencing).

use crate::common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::proc::Inst;
use nix::sys::signal::Signal;
use serde_json::{Value, json};

async fn create(i: &Inst, template: &str, log: &Path, sleep: u64) -> String {
    let r = common::http()
        .post(i.url("/task"))
        .basic_auth("admin", Some("pw"))
        .json(&json!({"template_name": template, "input": {"log": log.to_str().unwrap(), "sleep": sleep.to_string()}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let t: Value = r.json().await.unwrap();
    t["id"].as_str().unwrap().to_string()
}

async fn task(i: &Inst, id: &str) -> Value {
    common::http()
        .get(i.url(&format!("/task/{id}")))
        .basic_auth("admin", Some("pw"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

fn runs(log: &Path, task: &str) -> usize {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter(|l| l.starts_with(task))
        .count()
}

fn key() -> String {
    mutask::crypto::KeyRing::generate_entry().unwrap()
}

async fn settle(i: &Inst, ids: &[String], limit: Duration) -> Vec<Value> {
    let deadline = Instant::now() + limit;
    loop {
        let mut all = Vec::new();
        for id in ids {
            all.push(task(i, id).await);
        }
        if all
            .iter()
            .all(|t| matches!(t["state"].as_str(), Some("DONE" | "BLOCKED")))
        {
            return all;
        }
        assert!(
            Instant::now() < deadline,
            "tasks did not settle: {all:#?}\n{}",
            i.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_instance_work_is_recovered_by_another() {
    let db = mutask::testing::test_db().await;
    let dir = tempfile::tempdir().unwrap();
    let key = key();
    let log = dir.path().join("executions.log");
    let mut a = Inst::start(&db.url, &key, dir.path(), "a");
    a.ready(Duration::from_secs(60)).await;
    let mut idem = Vec::new();
    let mut once = Vec::new();
    for _ in 0..4 {
        idem.push(create(&a, "record-idempotent", &log, 3).await);
        once.push(create(&a, "record-once", &log, 3).await);
    }
    // every step has started on A
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::fs::read_to_string(&log)
        .unwrap_or_default()
        .lines()
        .count()
        < 8
    {
        assert!(
            Instant::now() < deadline,
            "steps did not start:\n{}",
            a.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    a.signal(Signal::SIGKILL);
    let a_log = a.log();
    a.stop();

    let mut b = Inst::start(&db.url, &key, dir.path(), "b");
    b.ready(Duration::from_secs(60)).await;
    let all: Vec<String> = idem.iter().chain(once.iter()).cloned().collect();
    let done = settle(&b, &all, Duration::from_secs(40)).await;
    for (id, t) in all.iter().zip(done.iter()) {
        if idem.contains(id) {
            assert_eq!(t["state"], "DONE", "idempotent task re-run by B: {t}");
            assert_eq!(
                runs(&log, id),
                2,
                "idempotent step ran once on A, once on B"
            );
        } else {
            assert_eq!(t["state"], "BLOCKED", "{t}");
            assert_eq!(t["resolution_state"], "BLOCKED_TOCHECK");
            assert_eq!(
                runs(&log, id),
                1,
                "a non-idempotent step never re-runs silently"
            );
        }
    }
    assert!(!a_log.is_empty());
    b.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_instance_cannot_write_after_losing_its_lease() {
    let db = mutask::testing::test_db().await;
    let dir = tempfile::tempdir().unwrap();
    let key = key();
    let log = dir.path().join("executions.log");
    let mut a = Inst::start(&db.url, &key, dir.path(), "a");
    a.ready(Duration::from_secs(60)).await;
    let id = create(&a, "record-idempotent", &log, 4).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    while runs(&log, &id) < 1 {
        assert!(
            Instant::now() < deadline,
            "step did not start:\n{}",
            a.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    a.signal(Signal::SIGSTOP);
    let mut b = Inst::start(&db.url, &key, dir.path(), "b");
    b.ready(Duration::from_secs(60)).await;
    // B recovers the expired lease and re-runs the idempotent step
    let t = settle(&b, std::slice::from_ref(&id), Duration::from_secs(40)).await;
    assert_eq!(t[0]["state"], "DONE");
    assert_eq!(runs(&log, &id), 2);
    let before = task(&b, &id).await;
    a.signal(Signal::SIGCONT);
    // A wakes up, its step ends, and its write is refused
    let deadline = Instant::now() + Duration::from_secs(15);
    while !a.log().contains("lost ownership") {
        assert!(
            Instant::now() < deadline,
            "A never noticed it lost the resolution:\n{}",
            a.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let after = task(&b, &id).await;
    assert_eq!(
        before["last_activity"], after["last_activity"],
        "A's late write was rejected"
    );
    assert_eq!(after["state"], "DONE");
    a.stop();
    b.stop();
}

#[tokio::test]
async fn the_claim_query_uses_the_partial_index() {
    let (pool, _db) = mutask::testing::test_pool().await;
    mutask::store::db::migrate(&pool).await.unwrap();
    // with rows present and planner statistics, the claim's inner select uses the partial index
    sqlx::query("SET enable_seqscan = off")
        .execute(&pool)
        .await
        .unwrap();
    let plan: Vec<(String,)> = sqlx::query_as(
        "EXPLAIN SELECT id, state FROM resolution
          WHERE state IN ('TO_AUTORUN', 'TO_AUTORUN_DELAYED', 'RETRY', 'ERROR', 'WAITING', 'CRASHED')
            AND (state IN ('TO_AUTORUN', 'CRASHED') OR next_retry <= now())
          ORDER BY next_retry NULLS FIRST, id LIMIT 20 FOR UPDATE SKIP LOCKED",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    let text: String = plan.into_iter().map(|r| r.0).collect::<Vec<_>>().join("\n");
    assert!(text.contains("resolution_claimable_idx"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgresql_restart_mid_run_loses_nothing() {
    // a private cluster: restarting the shared test cluster would disturb other tests
    let dir = tempfile::tempdir().unwrap();
    let (opts, pg) = common::private_cluster(dir.path()).await;
    let url = pg.url("mutask");
    let key = key();
    let log = dir.path().join("executions.log");
    // the lease outlives the outage: the running cycles keep ownership and retry their writes
    let mut a = Inst::start_with_lease(&url, &key, dir.path(), "a", 30);
    a.ready(Duration::from_secs(60)).await;
    let mut ids = Vec::new();
    for _ in 0..3 {
        ids.push(create(&a, "record-once", &log, 3).await);
        ids.push(create(&a, "record-idempotent", &log, 3).await);
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::fs::read_to_string(&log)
        .unwrap_or_default()
        .lines()
        .count()
        < 6
    {
        assert!(
            Instant::now() < deadline,
            "steps did not start:\n{}",
            a.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // the database goes away while every step runs, and comes back
    pg.stop().await.unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let pg = mutask::store::embedded::EmbeddedPostgres::start_with(opts)
        .await
        .unwrap();
    let done = settle(&a, &ids, Duration::from_secs(60)).await;
    for (id, t) in ids.iter().zip(done.iter()) {
        assert_eq!(t["state"], "DONE", "{t}\n{}", a.log());
        assert_eq!(runs(&log, id), 1, "no step ran twice");
    }
    a.stop();
    pg.stop().await.unwrap();
}
