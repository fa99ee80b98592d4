//! The run-control example (templates/deploy-with-remediation.yaml, docs/run-control.md): a
//! step's outcome — success, a failed check mapped to a custom state, a timeout — picks the path
//! that runs next; the paths not taken are pruned and the task still finishes.

mod common;

use std::time::{Duration, Instant};

use serde_json::{Value, json};

async fn run(m: &common::Instance, healthy: &str, smoke: u32) -> Value {
    let (s, t) = m
        .post(
            "admin",
            "/task",
            &json!({"template_name": "deploy-with-remediation",
                    "input": {"service": "billing", "healthy": healthy, "smoke_seconds": smoke}}),
        )
        .await;
    assert_eq!(s, 201, "{t}");
    let rid = t["resolution"].as_str().unwrap().to_string();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (_, r) = m.get("admin", &format!("/resolution/{rid}")).await;
        if r["state"] == "DONE" || r["state"].as_str().unwrap_or("").starts_with("BLOCKED") {
            return r;
        }
        assert!(Instant::now() < deadline, "{r}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn states(r: &Value) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = r["steps"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, s)| (k.clone(), s["state"].as_str().unwrap().to_string()))
        .collect();
    v.sort();
    v
}

fn expect(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outcomes_pick_the_path() {
    let m = common::start_with(|c| {
        c.scripts_dir = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scripts");
    })
    .await;
    // success: smoke test passes, announce runs, remediation and escalation are pruned
    let r = run(&m, "true", 0).await;
    assert_eq!(r["state"], "DONE", "{r}");
    assert_eq!(
        states(&r),
        expect(&[
            ("announce", "DONE"),
            ("deploy", "DONE"),
            ("escalate", "PRUNE"),
            ("remediate", "PRUNE"),
            ("smoke", "DONE")
        ])
    );
    assert_eq!(
        r["steps"]["announce"]["output"]["message"],
        "billing is live"
    );
    // failed health check: the custom state routes to remediation
    let r = run(&m, "false", 0).await;
    assert_eq!(r["state"], "DONE", "{r}");
    assert_eq!(
        states(&r),
        expect(&[
            ("announce", "PRUNE"),
            ("deploy", "UNHEALTHY"),
            ("escalate", "PRUNE"),
            ("remediate", "DONE"),
            ("smoke", "PRUNE")
        ])
    );
    assert_eq!(
        r["steps"]["remediate"]["output"]["action"],
        "rolled back billing"
    );
    // the smoke test runs out of time: the TIMEOUT path escalates
    let r = run(&m, "true", 5).await;
    assert_eq!(r["state"], "DONE", "{r}");
    assert_eq!(
        states(&r),
        expect(&[
            ("announce", "PRUNE"),
            ("deploy", "DONE"),
            ("escalate", "DONE"),
            ("remediate", "PRUNE"),
            ("smoke", "TIMEOUT")
        ])
    );
    m.stop().await;
}
