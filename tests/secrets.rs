//! Secrets on every surface: canaries given as a password input, a resolver input (which also
//! reaches a step's configuration and output) and a comment never appear in PostgreSQL's files
//! (tables, WAL, its log), in mutask's log at the most verbose level, nor in answers to a
//! watcher; the admin does see them (so the canaries are real).

use crate::common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_mutask");

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Every file under `dir` whose bytes contain `needle`.
fn files_containing(dir: &Path, needle: &[u8]) -> Vec<String> {
    let mut hits = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if let Ok(bytes) = std::fs::read(&p)
                && bytes.windows(needle.len()).any(|w| w == needle)
            {
                hits.push(p.display().to_string());
            }
        }
    }
    hits
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn canaries_stay_out_of_files_logs_and_unentitled_answers() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let log = dir.path().join("mutask.log");
    let port = free_port();
    let mut child = Command::new(BIN)
        .arg("serve")
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("MUTASK_DATA_DIR", &data)
        .env("MUTASK_LISTEN", format!("127.0.0.1:{port}"))
        .env("MUTASK_TEMPLATES_DIR", common::shipped_templates())
        .env("MUTASK_FUNCTIONS_DIR", data.join("functions"))
        .env("MUTASK_BASIC_AUTH", "admin:admin-pw,alice:alice-pw")
        .env("MUTASK_ADMIN_USERNAMES", "admin")
        .env("RUST_LOG", "trace")
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&log).unwrap())
        .stderr(std::fs::File::options().append(true).open(&log).unwrap())
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let client = common::http();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        assert!(child.try_wait().unwrap().is_none(), "mutask exited early");
        if let Ok(r) = client
            .get(format!("{base}/unsecured/mon/ready"))
            .send()
            .await
            && r.status() == 200
        {
            break;
        }
        assert!(Instant::now() < deadline, "not ready");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let call = |user: &'static str, method: reqwest::Method, path: String, body: Option<Value>| {
        let mut r = client
            .request(method, format!("{base}{path}"))
            .basic_auth(user, Some(format!("{user}-pw")));
        if let Some(b) = body {
            r = r.json(&b);
        }
        async move {
            let r = r.send().await.unwrap();
            let s = r.status().as_u16();
            (s, r.text().await.unwrap())
        }
    };
    let password = "PwCanary7d1e44";
    let version = "v31337.4242.9001"; // a resolver input; it flows into step configs and outputs
    let comment = "CommentCanary55b0";
    let (s, t) = call(
        "alice",
        reqwest::Method::POST,
        "/task".into(),
        Some(json!({"template_name": "deploy-approval", "comment": comment,
                    "watcher_usernames": ["alice"],
                    "input": {"service": "billing", "environment": "staging", "api_token": password}})),
    )
    .await;
    assert_eq!(s, 201, "{t}");
    let task: Value = serde_json::from_str(&t).unwrap();
    let id = task["id"].as_str().unwrap().to_string();
    let (s, r) = call(
        "admin",
        reqwest::Method::POST,
        "/resolution".into(),
        Some(json!({"task_id": id, "resolver_inputs": {"version": version}})),
    )
    .await;
    assert_eq!(s, 201, "{r}");
    let rid = serde_json::from_str::<Value>(&r).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (_, r) = call(
            "admin",
            reqwest::Method::GET,
            format!("/resolution/{rid}"),
            None,
        )
        .await;
        if serde_json::from_str::<Value>(&r).unwrap()["state"] == "DONE" {
            // the admin sees everything: the canaries are real
            assert!(r.contains(version), "{r}");
            break;
        }
        assert!(Instant::now() < deadline, "{r}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (_, t) = call("admin", reqwest::Method::GET, format!("/task/{id}"), None).await;
    assert!(t.contains(password), "the admin sees the password input");

    // alice requested and watches the task: no password, no resolver input, no outputs
    for path in [
        format!("/task/{id}"),
        format!("/resolution/{rid}"),
        format!("/resolution/{rid}/step/deploy"),
        "/task?type=all".to_string(),
    ] {
        let (s, body) = call("alice", reqwest::Method::GET, path.clone(), None).await;
        assert_eq!(s, 200, "{path}: {body}");
        for canary in [password, version] {
            assert!(
                !body.contains(canary),
                "{path} shows {canary} to a watcher: {body}"
            );
        }
    }
    // stop: PostgreSQL checkpoints and stops, so every page and WAL record is on disk
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while child.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "mutask did not stop");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let log_text = std::fs::read_to_string(&log).unwrap();
    assert!(
        log_text.contains("TRACE") || log_text.contains("DEBUG"),
        "the log is verbose"
    );
    for canary in [password, version, comment] {
        let hits = files_containing(&data, canary.as_bytes());
        assert!(hits.is_empty(), "{canary} found in {hits:?}");
        let hits = files_containing(dir.path(), canary.as_bytes());
        assert!(hits.is_empty(), "{canary} found in {hits:?}");
    }
    // sanity: the scan does find what is there in clear (the service name is not secret)
    assert!(!files_containing(&data, b"deploy-approval").is_empty());
}
