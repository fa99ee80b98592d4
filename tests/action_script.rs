//! The `script` action through `mutask serve`'s engine, with real executables in a temporary
//! scripts directory: `stdin` reaches the program, the action's own `timeout` ends the step as
//! a SERVER_ERROR and kills every process the script started (its process group), a non-zero
//! exit is a SERVER_ERROR and a code of `exit_codes_unrecoverable` a CLIENT_ERROR.

use crate::common;

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

const TEMPLATES: &[(&str, &str)] = &[
    (
        "stdin",
        r#"file_path: stdin.sh
        stdin: "{{ input.value }}""#,
    ),
    (
        "timeout",
        r#"file_path: spawn.sh
        argv: ["{{ input.value }}"]
        timeout: 1s"#,
    ),
    (
        "fails",
        r#"file_path: exit.sh
        argv: ["3"]"#,
    ),
    (
        "unrecoverable",
        r#"file_path: exit.sh
        argv: ["3"]
        exit_codes_unrecoverable: ["1", "2-4"]"#,
    ),
];

fn template(name: &str, config: &str) -> String {
    format!(
        r#"
name: script-{name}
dialect: jinja
description: runs a script
title_format: script {name}
auto_runnable: true
allow_all_resolver_usernames: true
inputs:
  - name: value
    optional: true
steps:
  run:
    action:
      type: script
      configuration:
        {config}
"#
    )
}

fn executable(path: &Path, text: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// Creates a task and waits until its step `run` has left TODO/RUNNING; the resolution.
async fn run(m: &common::Instance, which: &str, value: &str) -> Value {
    let (s, t) = m
        .post(
            "admin",
            "/task",
            &json!({"template_name": format!("script-{which}"), "input": {"value": value}}),
        )
        .await;
    assert_eq!(s, 201, "{t}");
    let rid = t["resolution"].as_str().unwrap().to_string();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (_, r) = m.get("admin", &format!("/resolution/{rid}")).await;
        let state = r["steps"]["run"]["state"].as_str().unwrap_or_default();
        if !["", "TODO", "RUNNING"].contains(&state) {
            return r;
        }
        assert!(Instant::now() < deadline, "{r}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn script_stdin_timeout_and_exit_codes() {
    let dir = tempfile::tempdir().unwrap();
    let templates = dir.path().join("templates");
    let scripts = dir.path().join("scripts");
    std::fs::create_dir_all(&templates).unwrap();
    std::fs::create_dir_all(&scripts).unwrap();
    for (name, config) in TEMPLATES {
        std::fs::write(
            templates.join(format!("{name}.yaml")),
            template(name, config),
        )
        .unwrap();
    }
    // echoes its standard input back as JSON (python: exact bytes)
    executable(
        &scripts.join("stdin.sh"),
        "#!/usr/bin/env python3\nimport json, sys\nprint(json.dumps({\"stdin\": sys.stdin.read()}))\n",
    );
    // prints (stderr without a newline), starts a grandchild that would outlive it, records its
    // pid, and waits
    executable(
        &scripts.join("spawn.sh"),
        "#!/bin/sh\necho started\nprintf 'still waiting' >&2\nsleep 300 &\necho $! > \"$1\"\nwait\n",
    );
    executable(
        &scripts.join("exit.sh"),
        "#!/bin/sh\necho failing >&2\nexit \"$1\"\n",
    );
    let m = common::start_with(|c| {
        c.templates_dir = templates.clone();
        c.scripts_dir = scripts.clone();
    })
    .await;

    let data = "line one; rm -rf / `id` $(id)\nline two";
    let r = run(&m, "stdin", data).await;
    let step = &r["steps"]["run"];
    assert_eq!(step["state"], "DONE", "{r}");
    assert_eq!(step["output"]["stdin"], data, "{step}");

    let pidfile = dir.path().join("grandchild.pid");
    let started = Instant::now();
    let r = run(&m, "timeout", pidfile.to_str().unwrap()).await;
    let step = &r["steps"]["run"];
    assert_eq!(step["state"], "SERVER_ERROR", "{r}");
    assert!(
        step["error"]
            .as_str()
            .unwrap_or_default()
            .contains("timed out after 1s"),
        "{step}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "the action's own timeout ended the step"
    );
    // what it printed before it was killed: in the metadata (stdout and stderr interleaved, as
    // µTask's combined output; two pipes, so their order is not fixed), and line by line in the
    // step log, the last line without its newline too
    let output = step["metadata"]["output"].as_str().unwrap_or_default();
    assert!(
        output.contains("started\n") && output.contains("still waiting"),
        "{step}"
    );
    assert_eq!(step["metadata"]["process_state"], "killed", "{step}");
    let mut lines = m.step_log_lines(&r, "run").await;
    lines.sort();
    assert_eq!(
        lines,
        [
            ("stderr".to_string(), "still waiting".to_string()),
            ("stdout".to_string(), "started".to_string())
        ],
    );
    common::wait_process_gone(&pidfile, "the script's background `sleep 300`").await;

    let r = run(&m, "fails", "").await;
    let step = &r["steps"]["run"];
    assert_eq!(step["state"], "SERVER_ERROR", "{r}");
    assert_eq!(step["metadata"]["exit_code"], "3", "{step}");
    assert!(
        step["metadata"]["output"]
            .as_str()
            .unwrap_or_default()
            .contains("failing"),
        "{step}"
    );

    let r = run(&m, "unrecoverable", "").await;
    let step = &r["steps"]["run"];
    assert_eq!(step["state"], "CLIENT_ERROR", "{r}");
    assert!(
        step["error"]
            .as_str()
            .unwrap_or_default()
            .contains("exit status 3"),
        "{step}"
    );
    m.stop().await;
}
