//! The kill -9 campaign (issue: multi-instance execution): two `mutask serve` processes on one
//! PostgreSQL run 200 tasks whose step records every execution in a file; at a random moment one
//! instance is killed with SIGKILL and started again. Repeated `KILL_ITERATIONS` times (default
//! 20), each on a fresh database, from a fixed seed (`KILL_SEED`). Every task must end DONE, or
//! BLOCKED_TOCHECK for a non-idempotent step caught running by the kill; a non-idempotent step
//! never runs twice, an idempotent one at most twice. It prints the figures.

use crate::common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::proc::Inst;
use serde_json::{Value, json};

async fn create(client: &reqwest::Client, url: &str, template: &str, log: &Path) -> String {
    let r = client
        .post(url)
        .basic_auth("admin", Some("pw"))
        .json(&json!({"template_name": template, "input": {"log": log.to_str().unwrap(), "sleep": "1.5"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let t: Value = r.json().await.unwrap();
    t["id"].as_str().unwrap().to_string()
}

/// Task states straight from the database (faster than 200 API calls per poll).
async fn states(pool: &sqlx::PgPool) -> Vec<(String, String, Option<String>)> {
    sqlx::query_as(
        "SELECT t.id::text, t.state, r.state FROM task t LEFT JOIN resolution r ON r.task_id = t.id",
    )
    .fetch_all(pool)
    .await
    .unwrap()
}

#[derive(Default, Debug)]
struct Figures {
    iterations: usize,
    tasks: usize,
    kills: usize,
    idempotent_reruns: usize,
    blocked_to_check: usize,
    lost: usize,
    stuck: usize,
    duplicate_runs: usize,
    recovery_ms: Vec<u128>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_at_random_moments_loses_and_duplicates_nothing() {
    let iterations: usize = std::env::var("KILL_ITERATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    let tasks_per_run: usize = std::env::var("KILL_TASKS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    let seed: u64 = std::env::var("KILL_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20261202);
    let mut rng = fastrand::Rng::with_seed(seed);
    let client = common::http();
    let key = mutask::crypto::KeyRing::generate_entry().unwrap();
    let mut f = Figures::default();
    for it in 0..iterations {
        let db = mutask::testing::test_db().await;
        let pool = sqlx::PgPool::connect_with(db.options.clone())
            .await
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("executions.log");
        let mut insts = vec![
            Inst::start(&db.url, &key, dir.path(), "a"),
            Inst::start(&db.url, &key, dir.path(), "b"),
        ];
        for i in insts.iter_mut() {
            i.ready(Duration::from_secs(60)).await;
        }
        // tasks are created through the survivor while both instances claim them; the victim
        // dies at a random moment of that run
        let victim = rng.usize(0..2);
        let survivor_url = insts[1 - victim].url("/task");
        let creator = {
            let client = client.clone();
            let log = log.clone();
            tokio::spawn(async move {
                let mut ids = Vec::new();
                for n in 0..tasks_per_run {
                    let template = if n % 2 == 0 {
                        "record-idempotent"
                    } else {
                        "record-once"
                    };
                    let id = create(&client, &survivor_url, template, &log).await;
                    ids.push((id, template == "record-idempotent"));
                }
                ids
            })
        };
        tokio::time::sleep(Duration::from_millis(rng.u64(300..2500))).await;
        let killed_at = Instant::now();
        let name = if victim == 0 { "a" } else { "b" };
        insts.remove(victim).kill9();
        f.kills += 1;
        let ids = creator.await.unwrap();
        let mut again = Inst::start(&db.url, &key, dir.path(), name);
        again.ready(Duration::from_secs(60)).await;
        insts.push(again);
        // everything settles
        let deadline = Instant::now() + Duration::from_secs(120);
        let settled = loop {
            let s = states(&pool).await;
            let open = s
                .iter()
                .filter(|(_, t, _)| !matches!(t.as_str(), "DONE" | "BLOCKED"))
                .count();
            if open == 0 {
                break s;
            }
            if Instant::now() > deadline {
                f.stuck += open;
                break s;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        f.recovery_ms.push(killed_at.elapsed().as_millis());
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        let runs = |id: &str| text.lines().filter(|l| l.starts_with(id)).count();
        f.lost += ids.len().saturating_sub(settled.len());
        for (id, idempotent) in &ids {
            let (_, state, res_state) = settled
                .iter()
                .find(|(t, _, _)| t == id)
                .cloned()
                .unwrap_or_default();
            let n = runs(id);
            if *idempotent {
                assert_eq!(
                    state, "DONE",
                    "iteration {it}: idempotent task {id} ended {state}"
                );
                assert!(
                    (1..=2).contains(&n),
                    "iteration {it}: idempotent task {id} ran {n} times"
                );
                if n == 2 {
                    f.idempotent_reruns += 1;
                }
            } else {
                assert!(
                    n <= 1,
                    "iteration {it}: non-idempotent task {id} ran {n} times"
                );
                if n > 1 {
                    f.duplicate_runs += 1;
                }
                match state.as_str() {
                    "DONE" => assert_eq!(n, 1, "iteration {it}: {id} DONE without running"),
                    "BLOCKED" => {
                        assert_eq!(
                            res_state.as_deref(),
                            Some("BLOCKED_TOCHECK"),
                            "iteration {it}: {id}"
                        );
                        f.blocked_to_check += 1;
                    }
                    other => assert!(other.is_empty(), "iteration {it}: {id} ended {other}"),
                }
            }
        }
        f.tasks += ids.len();
        f.iterations += 1;
        for i in insts {
            i.kill9();
        }
        pool.close().await;
        assert_eq!(f.stuck, 0, "iteration {it}: tasks did not settle");
    }
    f.recovery_ms.sort_unstable();
    let pct = |p: usize| {
        f.recovery_ms
            .get((f.recovery_ms.len().saturating_sub(1)) * p / 100)
            .copied()
            .unwrap_or(0)
    };
    println!(
        "kill campaign (seed {seed}): {} iterations, {} tasks, {} kill -9, lost {}, stuck {}, \
         non-idempotent run twice {}, idempotent re-runs {}, blocked for a check {}, \
         kill → all settled p50 {} ms, max {} ms",
        f.iterations,
        f.tasks,
        f.kills,
        f.lost,
        f.stuck,
        f.duplicate_runs,
        f.idempotent_reruns,
        f.blocked_to_check,
        pct(50),
        pct(100)
    );
    assert_eq!((f.lost, f.stuck, f.duplicate_runs), (0, 0, 0));
}
