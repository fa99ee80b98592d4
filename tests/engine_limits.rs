//! Runaway template code ends as a step error within its budget, through `mutask serve`'s
//! engine, while other tasks keep running: a JavaScript infinite loop in a variable, and a
//! template render that exhausts its fuel.

use crate::common;

use std::time::{Duration, Instant};

use serde_json::{Value, json};

const RUNAWAY: &str = r#"
name: runaway
dialect: jinja
description: JavaScript and template limits
title_format: runaway
auto_runnable: true
allow_all_resolver_usernames: true
variables:
  - name: spin
    expression: "while(true){}"
    expression_timeout: 2s
steps:
  js:
    action: {type: echo, configuration: {output: "{{ eval('spin') }}"}}
  fuel:
    action:
      type: echo
      configuration:
        output: "{% for i in range(100000) %}{% for j in range(100000) %}x{% endfor %}{% endfor %}"
  fine:
    action: {type: echo, configuration: {output: ok}}
"#;

async fn wait(m: &common::Instance, id: &str, states: &[&str], limit: Duration) -> Value {
    let deadline = Instant::now() + limit;
    loop {
        let (_, t) = m.get("admin", &format!("/task/{id}")).await;
        if states.contains(&t["state"].as_str().unwrap_or_default()) {
            return t;
        }
        assert!(
            Instant::now() < deadline,
            "task {id} not in {states:?} in time: {t}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runaway_javascript_and_templates_end_as_step_errors() {
    let dir = tempfile::tempdir().unwrap();
    let templates = dir.path().join("templates");
    std::fs::create_dir_all(&templates).unwrap();
    std::fs::write(templates.join("runaway.yaml"), RUNAWAY).unwrap();
    std::fs::copy(
        common::shipped_templates().join("hello-world.yaml"),
        templates.join("hello-world.yaml"),
    )
    .unwrap();
    let m = common::start_with(|c| c.templates_dir = templates.clone()).await;

    let started = Instant::now();
    let (s, runaway) = m
        .post("admin", "/task", &json!({"template_name": "runaway"}))
        .await;
    assert_eq!(s, 201, "{runaway}");
    // another task created meanwhile finishes while the runaway one is still busy
    let (_, hello) = m
        .post(
            "admin",
            "/task",
            &json!({"template_name": "hello-world", "input": {"name": "Ada"}}),
        )
        .await;
    wait(
        &m,
        hello["id"].as_str().unwrap(),
        &["DONE"],
        Duration::from_secs(10),
    )
    .await;

    let t = wait(
        &m,
        runaway["id"].as_str().unwrap(),
        &["BLOCKED"],
        Duration::from_secs(20),
    )
    .await;
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "budgets respected: {:?}",
        started.elapsed()
    );
    let rid: mutask::domain::ResolutionId = t["resolution"].as_str().unwrap().parse().unwrap();
    let steps = mutask::store::resolution::steps(&m.running.state.store, rid)
        .await
        .unwrap();
    let get = |n: &str| steps.iter().find(|s| s.name == n).unwrap().clone();
    assert_eq!(get("fine").state.as_str(), "DONE");
    let js = get("js");
    assert_eq!(js.state.as_str(), "FATAL_ERROR");
    let err = js.error.unwrap_or_default();
    assert!(
        // the VM's loop limit, or the 2 s deadline on a loaded machine
        err.contains("spin") && (err.contains("loop") || err.contains("within 2s")),
        "{err}"
    );
    let fuel = get("fuel");
    assert_eq!(fuel.state.as_str(), "FATAL_ERROR");
    assert!(
        fuel.error
            .unwrap_or_default()
            .to_lowercase()
            .contains("fuel")
    );
    assert_eq!(t["resolution_state"], "BLOCKED_FATAL");
    m.stop().await;
}

const LIMITED: &str = r#"
name: limited
dialect: jinja
description: a step holding the `db` resource
title_format: limited
auto_runnable: true
allow_all_resolver_usernames: true
inputs:
  - name: log
steps:
  work:
    resources: [db]
    action:
      type: script
      configuration: {file_path: span.sh, argv: ["{{ input.log }}"]}
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resource_limits_serialize_steps_and_a_disabled_template_waits() {
    let dir = tempfile::tempdir().unwrap();
    let templates = dir.path().join("templates");
    let scripts = dir.path().join("scripts");
    std::fs::create_dir_all(&templates).unwrap();
    std::fs::create_dir_all(&scripts).unwrap();
    std::fs::write(templates.join("limited.yaml"), LIMITED).unwrap();
    std::fs::copy(
        common::shipped_templates().join("hello-world.yaml"),
        templates.join("hello-world.yaml"),
    )
    .unwrap();
    let span = scripts.join("span.sh");
    std::fs::write(
        &span,
        "#!/bin/sh\necho S >> \"$1\"\nsleep 0.3\necho E >> \"$1\"\n",
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&span, std::fs::Permissions::from_mode(0o755)).unwrap();
    let m = common::start_with(|c| {
        c.templates_dir = templates.clone();
        c.scripts_dir = scripts.clone();
        c.resource_limits = [
            ("db".to_string(), 1),
            ("template:hello-world".to_string(), 0),
        ]
        .into();
    })
    .await;
    let log = dir.path().join("spans.log");
    let mut ids = Vec::new();
    for _ in 0..3 {
        let (s, t) = m
            .post(
                "admin",
                "/task",
                &json!({"template_name": "limited", "input": {"log": log.to_str().unwrap()}}),
            )
            .await;
        assert_eq!(s, 201, "{t}");
        ids.push(t["id"].as_str().unwrap().to_string());
    }
    for id in &ids {
        wait(&m, id, &["DONE"], Duration::from_secs(20)).await;
    }
    let spans: Vec<String> = std::fs::read_to_string(&log)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    assert_eq!(
        spans,
        ["S", "E", "S", "E", "S", "E"],
        "the `db` resource (limit 1) never had two holders"
    );

    let (_, t) = m
        .post(
            "admin",
            "/task",
            &json!({"template_name": "hello-world", "input": {"name": "Ada"}}),
        )
        .await;
    let t = wait(
        &m,
        t["id"].as_str().unwrap(),
        &["BLOCKED"],
        Duration::from_secs(10),
    )
    .await;
    assert_eq!(
        t["resolution_state"], "TO_AUTORUN_DELAYED",
        "template:hello-world has limit 0"
    );
    m.stop().await;
}

const SLOW: &str = r#"
name: slow
dialect: jinja
description: a step that outlives its timeout, and the paths that follow
title_format: slow
auto_runnable: true
allow_all_resolver_usernames: true
steps:
  slow:
    timeout: 1s
    action:
      type: script
      configuration: {file_path: sleep.sh, argv: ["30"]}
  onTimeout:
    dependencies: ["slow:TIMEOUT"]
    action: {type: echo, configuration: {output: {remediated: true}}}
  onSuccess:
    dependencies: [slow]
    action: {type: echo, configuration: {output: {fine: true}}}
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_step_past_its_timeout_ends_in_timeout_and_dependencies_can_use_it() {
    let dir = tempfile::tempdir().unwrap();
    let templates = dir.path().join("templates");
    let scripts = dir.path().join("scripts");
    std::fs::create_dir_all(&templates).unwrap();
    std::fs::create_dir_all(&scripts).unwrap();
    std::fs::write(templates.join("slow.yaml"), SLOW).unwrap();
    let sleep = scripts.join("sleep.sh");
    std::fs::write(&sleep, "#!/bin/sh\nsleep \"$1\"\n").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&sleep, std::fs::Permissions::from_mode(0o755)).unwrap();
    let m = common::start_with(|c| {
        c.templates_dir = templates.clone();
        c.scripts_dir = scripts.clone();
    })
    .await;
    let started = Instant::now();
    let (s, t) = m
        .post("admin", "/task", &json!({"template_name": "slow"}))
        .await;
    assert_eq!(s, 201, "{t}");
    let t = wait(
        &m,
        t["id"].as_str().unwrap(),
        &["DONE", "BLOCKED"],
        Duration::from_secs(20),
    )
    .await;
    assert_eq!(t["state"], "DONE", "{t}");
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "the step was cut at its timeout"
    );
    let rid: mutask::domain::ResolutionId = t["resolution"].as_str().unwrap().parse().unwrap();
    let steps = mutask::store::resolution::steps(&m.running.state.store, rid)
        .await
        .unwrap();
    let state = |n: &str| {
        steps
            .iter()
            .find(|s| s.name == n)
            .unwrap()
            .state
            .as_str()
            .to_string()
    };
    assert_eq!(state("slow"), "TIMEOUT");
    assert_eq!(state("onTimeout"), "DONE");
    assert_eq!(state("onSuccess"), "PRUNE");
    m.stop().await;
}

const ARGS: &str = r#"
name: args
dialect: jinja
description: hands a requester's value to a script
title_format: args
auto_runnable: true
allow_all_resolver_usernames: true
inputs:
  - name: value
steps:
  run:
    action:
      type: script
      configuration:
        file_path: args.sh
        argv: ["{{ input.value }}", "second"]
        environment: {FROM_INPUT: "{{ input.value }}"}
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shell_metacharacters_reach_a_script_as_literal_data() {
    let dir = tempfile::tempdir().unwrap();
    let templates = dir.path().join("templates");
    let scripts = dir.path().join("scripts");
    std::fs::create_dir_all(&templates).unwrap();
    std::fs::create_dir_all(&scripts).unwrap();
    std::fs::write(templates.join("args.yaml"), ARGS).unwrap();
    // prints its argument count, each argument and the variable, as JSON (python: exact bytes)
    let script = scripts.join("args.sh");
    std::fs::write(
        &script,
        "#!/usr/bin/env python3\nimport json, os, sys\nprint(json.dumps({\"argc\": len(sys.argv) - 1, \"argv\": sys.argv[1:], \"env\": os.environ.get(\"FROM_INPUT\")}))\n",
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let canary = dir.path().join("pwned");
    let m = common::start_with(|c| {
        c.templates_dir = templates.clone();
        c.scripts_dir = scripts.clone();
    })
    .await;
    let hostile = format!(
        "x; touch {p} `touch {p}` $(touch {p}) | touch {p} && touch {p} \n'\"",
        p = canary.display()
    );
    let (s, t) = m
        .post(
            "admin",
            "/task",
            &json!({"template_name": "args", "input": {"value": hostile}}),
        )
        .await;
    assert_eq!(s, 201, "{t}");
    let t = wait(
        &m,
        t["id"].as_str().unwrap(),
        &["DONE", "BLOCKED"],
        Duration::from_secs(20),
    )
    .await;
    assert_eq!(t["state"], "DONE", "{t}");
    let rid: mutask::domain::ResolutionId = t["resolution"].as_str().unwrap().parse().unwrap();
    let steps = mutask::store::resolution::steps(&m.running.state.store, rid)
        .await
        .unwrap();
    let out = steps[0].output.clone().unwrap();
    assert_eq!(out["argc"], 2);
    assert_eq!(out["argv"][0], hostile.as_str());
    assert_eq!(out["argv"][1], "second");
    assert_eq!(out["env"], hostile.as_str());
    assert!(!canary.exists(), "nothing was executed by a shell");
    m.stop().await;
}
