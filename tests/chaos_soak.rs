//! The chaos soak (issue: hardening): three `mutask serve` processes on a private PostgreSQL
//! under continuous load (tasks with an idempotent or a non-idempotent step that records each
//! execution), and faults at seeded random moments: kill -9 and restart of an instance, SIGSTOP
//! past the lease then SIGCONT, `pg_terminate_backend` of every mutask connection, a restart of
//! PostgreSQL. At the end every task created is DONE, or BLOCKED_TOCHECK for a non-idempotent
//! step a fault caught running; no non-idempotent step ran twice, no idempotent one more than
//! twice. Recovery time of a fault: from its injection until every task unfinished at that
//! moment has settled (DONE, or BLOCKED for a check). The instances' logs (JSON lines) are read
//! back: every ERROR must be explained by a fault (a lost or refused database connection), and a
//! panic never is. Prints the figures. `CHAOS_SECONDS` (default 60, CI; a full soak is 1800),
//! `CHAOS_SEED`.

use crate::common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::proc::{Inst, fixture};
use mutask::store::embedded::EmbeddedPostgres;
use nix::sys::signal::Signal;
use serde_json::{Value, json};

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

async fn connect(url: &str) -> Option<sqlx::PgPool> {
    sqlx::postgres::PgPoolOptions::new()
        .max_connections(2)
        .acquire_timeout(Duration::from_secs(3))
        .connect(url)
        .await
        .ok()
}

/// Ids of the tasks not settled yet, or None while the database does not answer.
async fn unsettled(url: &str, among: Option<&[String]>) -> Option<Vec<String>> {
    let pool = connect(url).await?;
    let ids: Result<Vec<(String,)>, _> = sqlx::query_as(
        "SELECT id::text FROM task
          WHERE state NOT IN ('DONE', 'BLOCKED', 'CANCELLED', 'WONTFIX')
            AND ($1::text[] IS NULL OR id::text = ANY($1))",
    )
    .bind(among)
    .fetch_all(&pool)
    .await;
    pool.close().await;
    ids.ok().map(|v| v.into_iter().map(|(i,)| i).collect())
}

/// Polls until every task of `ids` has settled; the time it took since `since`, or None after
/// `limit`.
async fn recovery(
    url: String,
    ids: Vec<String>,
    since: Instant,
    limit: Duration,
) -> Option<Duration> {
    loop {
        if let Some(left) = unsettled(&url, Some(&ids)).await
            && left.is_empty()
        {
            return Some(since.elapsed());
        }
        if since.elapsed() > limit {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// p-th percentile (0–100) of sorted durations, in seconds.
fn percentile(sorted: &[Duration], p: usize) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() * p).div_ceil(100)).clamp(1, sorted.len()) - 1;
    sorted[i].as_secs_f64()
}

/// An ERROR a fault explains: the database went away, refused or dropped a connection.
fn explained_by_a_fault(line: &str) -> bool {
    const FAULTS: &[&str] = &[
        "connection",
        "terminating",
        "pool timed out",
        "PoolTimedOut",
        "shutting down",
        "starting up",
        "broken pipe",
        "end of file",
        "error communicating with database",
        "administrator command",
        "io error",
        // the API's answer while the database is unreachable (never a 500)
        "503 Service Unavailable",
    ];
    let l = line.to_ascii_lowercase();
    FAULTS.iter().any(|f| l.contains(&f.to_ascii_lowercase()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn chaos_soak_loses_and_duplicates_nothing() {
    let seconds = env_u64("CHAOS_SECONDS", 60);
    let seed = env_u64("CHAOS_SEED", 20261202);
    let mut rng = fastrand::Rng::with_seed(seed);
    let dir = tempfile::tempdir().unwrap();
    let (opts, pg) = common::private_cluster(dir.path()).await;
    let mut pg = Some(pg);
    let url = pg.as_ref().unwrap().url("mutask");
    let key = mutask::crypto::KeyRing::generate_entry().unwrap();
    let log = dir.path().join("executions.log");
    let mut insts: Vec<Inst> = ["a", "b", "c"]
        .iter()
        .map(|n| Inst::start(&url, &key, dir.path(), n))
        .collect();
    for i in insts.iter_mut() {
        i.ready(Duration::from_secs(60)).await;
    }
    assert!(fixture().join("templates/record-once.yaml").exists());

    // the load: tasks created continuously through whichever instance answers
    let created: Arc<Mutex<Vec<(String, bool)>>> = Arc::default();
    let create_failures = Arc::new(Mutex::new(0usize));
    let ports: Arc<Mutex<Vec<u16>>> = Arc::new(Mutex::new(insts.iter().map(|i| i.port).collect()));
    let stop = tokio_util::sync::CancellationToken::new();
    let load = {
        let (created, failures, ports, stop, log) = (
            created.clone(),
            create_failures.clone(),
            ports.clone(),
            stop.clone(),
            log.clone(),
        );
        tokio::spawn(async move {
            let client = reqwest::Client::builder()
                .timeout(Duration::from_secs(5))
                .build()
                .unwrap();
            let mut n = 0usize;
            let mut r = fastrand::Rng::with_seed(seed ^ 0x5eed);
            while !stop.is_cancelled() {
                let idem = n.is_multiple_of(2);
                let port = {
                    let p = ports.lock().unwrap();
                    p[r.usize(0..p.len())]
                };
                let sleep = format!("{:.1}", 0.2 + r.f64() * 1.3);
                let res = client
                    .post(format!("http://127.0.0.1:{port}/task"))
                    .basic_auth("admin", Some("pw"))
                    .json(&json!({"template_name": if idem { "record-idempotent" } else { "record-once" },
                                  "input": {"log": log.to_str().unwrap(), "sleep": sleep}}))
                    .send()
                    .await;
                match res {
                    Ok(resp) if resp.status() == 201 => {
                        let t: Value = resp.json().await.unwrap_or_default();
                        if let Some(id) = t["id"].as_str() {
                            created.lock().unwrap().push((id.to_string(), idem));
                        }
                    }
                    // an instance or the database down: the fault, not a lost task
                    _ => *failures.lock().unwrap() += 1,
                }
                n += 1;
                tokio::time::sleep(Duration::from_millis(150)).await;
            }
        })
    };

    let mut faults: HashMap<&str, usize> = HashMap::new();
    let mut recoveries = Vec::new();
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(seconds) {
        // faults at least 8 s apart: a step re-run after a fault finishes before the next one
        tokio::time::sleep(Duration::from_millis(8000 + rng.u64(0..4000))).await;
        let kind = rng.usize(0..4);
        let injected = Instant::now();
        if let Some(open) = unsettled(&url, None).await {
            let name = [
                "kill -9 + restart",
                "SIGSTOP past the lease",
                "pg_terminate_backend",
                "PostgreSQL restart",
            ][kind];
            recoveries.push((
                name,
                tokio::spawn(recovery(
                    url.clone(),
                    open,
                    injected,
                    Duration::from_secs(120),
                )),
            ));
        }
        match kind {
            0 => {
                let v = rng.usize(0..insts.len());
                let old = insts.remove(v);
                let name = old.name.clone();
                old.kill9();
                let mut again = Inst::start(&url, &key, dir.path(), &name);
                again.ready(Duration::from_secs(60)).await;
                insts.insert(v, again);
                *ports.lock().unwrap() = insts.iter().map(|i| i.port).collect();
                *faults.entry("kill -9 + restart").or_default() += 1;
            }
            1 => {
                let v = rng.usize(0..insts.len());
                insts[v].signal(Signal::SIGSTOP);
                tokio::time::sleep(Duration::from_secs(5)).await; // lease is 3 s
                insts[v].signal(Signal::SIGCONT);
                *faults.entry("SIGSTOP past the lease").or_default() += 1;
            }
            2 => {
                if let Some(pool) = connect(&url).await {
                    let _ = sqlx::query(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
                          WHERE datname = current_database() AND pid <> pg_backend_pid()",
                    )
                    .execute(&pool)
                    .await;
                    pool.close().await;
                }
                *faults.entry("pg_terminate_backend").or_default() += 1;
            }
            _ => {
                if let Some(p) = pg.take() {
                    p.stop().await.unwrap();
                }
                tokio::time::sleep(Duration::from_millis(1000 + rng.u64(0..2000))).await;
                pg = Some(EmbeddedPostgres::start_with(opts.clone()).await.unwrap());
                *faults.entry("PostgreSQL restart").or_default() += 1;
            }
        }
    }
    stop.cancel();
    load.await.unwrap();
    for i in &insts {
        i.signal(Signal::SIGCONT);
    }

    // every task settles
    let pool = connect(&url).await.expect("the database answers");
    let ids: Vec<(String, bool)> = created.lock().unwrap().clone();
    let deadline = Instant::now() + Duration::from_secs(180);
    let states: HashMap<String, (String, Option<String>)> = loop {
        let rows: Vec<(String, String, Option<String>)> = sqlx::query_as(
            "SELECT t.id::text, t.state, r.state FROM task t LEFT JOIN resolution r ON r.task_id = t.id",
        )
        .fetch_all(&pool)
        .await
        .unwrap();
        let open = rows
            .iter()
            .filter(|(_, s, _)| !matches!(s.as_str(), "DONE" | "BLOCKED"))
            .count();
        if open == 0 || Instant::now() > deadline {
            break rows.into_iter().map(|(i, s, r)| (i, (s, r))).collect();
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    let mut runs: HashMap<&str, usize> = HashMap::new();
    for l in text.lines() {
        if let Some(id) = l.split_whitespace().next() {
            *runs.entry(id).or_default() += 1;
        }
    }
    let (mut lost, mut stuck, mut twice, mut thrice, mut reruns, mut blocked) = (0, 0, 0, 0, 0, 0);
    let mut problems = Vec::new();
    for (id, idem) in &ids {
        let n = runs.get(id.as_str()).copied().unwrap_or(0);
        match states.get(id) {
            None => {
                lost += 1;
                problems.push(format!("{id} lost"));
            }
            Some((s, _)) if !matches!(s.as_str(), "DONE" | "BLOCKED") => {
                stuck += 1;
                problems.push(format!("{id} stuck in {s}"));
            }
            Some((s, r)) => {
                if *idem {
                    if s != "DONE" {
                        problems.push(format!("idempotent {id} ended {s}/{r:?}"));
                    }
                    if n > 2 {
                        thrice += 1;
                        problems.push(format!("idempotent {id} ran {n} times"));
                    } else if n == 2 {
                        reruns += 1;
                    }
                } else {
                    if n > 1 {
                        twice += 1;
                        problems.push(format!("non-idempotent {id} ran {n} times"));
                    }
                    if s == "BLOCKED" {
                        blocked += 1;
                        if r.as_deref() != Some("BLOCKED_TOCHECK") {
                            problems.push(format!("{id} blocked as {r:?}"));
                        }
                    }
                }
            }
        }
    }
    // recovery times, per kind of fault and overall
    let mut per_kind: HashMap<&str, Vec<Duration>> = HashMap::new();
    for (name, handle) in recoveries {
        match handle.await.unwrap() {
            Some(d) => per_kind.entry(name).or_default().push(d),
            None => problems.push(format!(
                "the tasks open at a {name} did not settle within 120 s"
            )),
        }
    }
    let mut all: Vec<Duration> = per_kind.values().flatten().copied().collect();
    all.sort();
    let mut recovery_lines: Vec<String> = per_kind
        .iter_mut()
        .map(|(k, v)| {
            v.sort();
            format!(
                "{k}: n {} p50 {:.1} s p99 {:.1} s max {:.1} s",
                v.len(),
                percentile(v, 50),
                percentile(v, 99),
                v.last().map_or(0.0, Duration::as_secs_f64)
            )
        })
        .collect();
    recovery_lines.sort();

    // the logs: every ERROR explained by a fault, no panic
    let (mut errors, mut explained, mut warnings) = (0usize, 0usize, 0usize);
    let mut log_files: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "log") && p != &log)
        .collect();
    log_files.sort();
    for f in &log_files {
        for line in std::fs::read_to_string(f).unwrap_or_default().lines() {
            if line.contains("panicked") {
                problems.push(format!("{}: {line}", f.display()));
                continue;
            }
            let Ok(v) = serde_json::from_str::<Value>(line) else {
                continue;
            };
            match v["level"].as_str() {
                Some("ERROR") => {
                    errors += 1;
                    if explained_by_a_fault(line) {
                        explained += 1;
                    } else {
                        problems.push(format!(
                            "an error no fault explains, {}: {line}",
                            f.display()
                        ));
                    }
                }
                Some("WARN") => warnings += 1,
                _ => {}
            }
        }
    }
    assert!(!log_files.is_empty(), "no instance log was read");

    let mut kinds: Vec<_> = faults.iter().map(|(k, v)| format!("{k} {v}")).collect();
    kinds.sort();
    println!(
        "chaos soak (seed {seed}, {seconds} s): faults [{}], tasks {}, creations refused during faults {}, \
         lost {lost}, stuck {stuck}, non-idempotent run twice {twice}, idempotent run 3+ times {thrice}, \
         idempotent re-runs {reruns}, blocked for a check {blocked}; recovery p50 {:.1} s p99 {:.1} s \
         max {:.1} s [{}]; logs of {} instance runs: {errors} errors ({explained} explained by a fault), \
         {warnings} warnings",
        kinds.join(", "),
        ids.len(),
        create_failures.lock().unwrap(),
        percentile(&all, 50),
        percentile(&all, 99),
        all.last().map_or(0.0, Duration::as_secs_f64),
        recovery_lines.join("; "),
        log_files.len(),
    );
    for i in insts {
        i.kill9();
    }
    pool.close().await;
    if let Some(p) = pg {
        p.stop().await.unwrap();
    }
    assert!(!ids.is_empty(), "the load created no task");
    assert!(
        problems.is_empty(),
        "{} problems:\n{}",
        problems.len(),
        problems.join("\n")
    );
}
