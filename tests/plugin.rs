//! Plugins end to end through `mutask serve`'s engine: the shipped Python example from a
//! template, a plugin's reported error classes, schema violations, timeouts, oversized output,
//! bad manifests, and template validation knowing plugin types.

use crate::common;

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

fn write(path: &Path, text: &str, exec: bool) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
    if exec {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
}

fn shell_plugin(dir: &Path, name: &str, extra: &str, script: &str) {
    write(
        &dir.join(name).join("manifest.yaml"),
        &format!("name: {name}\nversion: 0.1.0\nexecutable: run.sh\n{extra}"),
        false,
    );
    write(
        &dir.join(name).join("run.sh"),
        &format!("#!/bin/sh\n{script}\n"),
        true,
    );
}

fn template(plugin: &str) -> String {
    format!(
        r#"
name: use-{plugin}
dialect: jinja
description: Steps run by plugins
title_format: "plugins for {{{{ input.who }}}}"
auto_runnable: true
allow_all_resolver_usernames: true
inputs:
  - name: who
    optional: true
steps:
  greet:
    action:
      type: greet
      configuration:
        name: "{{{{ input.who }}}}"
        shout: true
  other:
    dependencies: [greet]
    action:
      type: {plugin}
"#
    )
}

async fn run(m: &common::Instance, who: &str, which: &str) -> Value {
    let (s, t) = m
        .post(
            "admin",
            "/task",
            &json!({"template_name": format!("use-{which}"), "input": {"who": who}}),
        )
        .await;
    assert_eq!(s, 201, "{t}");
    let rid = t["resolution"].as_str().unwrap().to_string();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (_, r) = m.get("admin", &format!("/resolution/{rid}")).await;
        let state = r["state"].as_str().unwrap_or_default().to_string();
        if !["TO_AUTORUN", "RUNNING", "RETRY", "ERROR"].contains(&state.as_str())
            || r["steps"]["other"]["state"] != "TODO" && r["steps"]["other"]["state"] != "RUNNING"
        {
            return r;
        }
        assert!(Instant::now() < deadline, "{r}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plugins_run_from_templates() {
    let dir = tempfile::tempdir().unwrap();
    let plugins = dir.path().join("plugins");
    let templates = dir.path().join("templates");
    // the shipped example, as is
    for f in ["manifest.yaml", "greet.py"] {
        let from = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("plugins/greet")
            .join(f);
        write(
            &plugins.join("greet").join(f),
            &std::fs::read_to_string(from).unwrap(),
            f.ends_with(".py"),
        );
    }
    shell_plugin(
        &plugins,
        "fails",
        "",
        r#"cat >/dev/null; echo '{"error": {"class": "fatal", "message": "disk on fire"}}'"#,
    );
    shell_plugin(
        &plugins,
        "waits",
        "",
        r#"cat >/dev/null; echo '{"error": {"class": "waiting", "message": "not yet"}}'"#,
    );
    shell_plugin(
        &plugins,
        "crashes",
        "",
        "cat >/dev/null; echo oops >&2; exit 3",
    );
    // prints, starts a process of its own that would outlive it, and hangs
    shell_plugin(
        &plugins,
        "sleeps",
        "timeout: 1s\n",
        concat!(
            "cat >/dev/null; echo working on it; printf 'almost there' >&2; ",
            "sleep 300 & echo $! > sleeper.pid; wait"
        ),
    );
    shell_plugin(
        &plugins,
        "floods",
        "max_output_bytes: 2048\n",
        "cat >/dev/null; yes flood | head -c 100000",
    );
    shell_plugin(
        &plugins,
        "echoes",
        "",
        // the request arrives on stdin: answer it back, with the environment
        r#"req=$(cat); printf 'a log line\n{"output": {"request": %s, "task": "%s", "plugin": "%s"}}\n' "$req" "$MUTASK_TASK_ID" "$MUTASK_PLUGIN""#,
    );
    write(
        &plugins.join("broken").join("manifest.yaml"),
        "name: broken\nversion: 1\nexecutable: ../../etc/passwd\n",
        false,
    );
    for p in ["echoes", "fails", "waits", "crashes", "sleeps", "floods"] {
        write(&templates.join(format!("{p}.yaml")), &template(p), false);
    }
    let (p, t) = (plugins.clone(), templates.clone());
    let m = common::start_with(move |c| {
        c.plugins_dir = p;
        c.templates_dir = t;
    })
    .await;

    // GET /action serves the plugins' configuration and metadata schemas
    let (s, actions) = m.get("admin", "/action").await;
    assert_eq!(s, 200, "{actions}");
    let greet = actions
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == "greet")
        .unwrap_or_else(|| panic!("{actions}"));
    assert_eq!(greet["kind"], "plugin");
    assert_eq!(greet["schema"]["required"], json!(["name"]), "{greet}");
    assert_eq!(
        greet["metadata_schema"]["properties"]["task"]["type"], "string",
        "{greet}"
    );
    let echo = actions
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == "echo")
        .unwrap();
    assert!(echo["metadata_schema"].is_null(), "{echo}");

    let r = run(&m, "Ada", "echoes").await;
    assert_eq!(r["state"], "DONE", "{r}");
    assert_eq!(r["steps"]["greet"]["output"]["greeting"], "HELLO ADA!");
    assert!(
        r["steps"]["greet"]["metadata"]["log"]
            .as_str()
            .unwrap()
            .contains("greeting Ada")
    );
    let echoed = &r["steps"]["other"]["output"];
    assert_eq!(echoed["plugin"], "echoes");
    assert_eq!(echoed["request"]["step"]["name"], "other");
    assert_eq!(echoed["task"], r["task_id"]);
    assert_eq!(r["steps"]["other"]["metadata"]["log"], "a log line");
    // stdout lines reach the step log too, never the result line
    assert_eq!(
        m.step_log_lines(&r, "other").await,
        [("stdout".to_string(), "a log line".to_string())]
    );

    let cases = [
        ("fails", "FATAL_ERROR", "disk on fire"),
        ("waits", "WAITING", "not yet"),
        ("crashes", "SERVER_ERROR", "oops"),
        ("sleeps", "SERVER_ERROR", "timed out after 1s"),
        ("floods", "SERVER_ERROR", "larger than max_output_bytes"),
    ];
    let mut ended = std::collections::HashMap::new();
    for (which, state, needle) in cases {
        let r = run(&m, "Bob", which).await;
        let step = &r["steps"]["other"];
        assert_eq!(step["state"], state, "{which}: {r}");
        assert!(
            step["error"].as_str().unwrap_or_default().contains(needle),
            "{which}: {step}"
        );
        ended.insert(which, r);
    }
    // killed at its deadline: what it printed until then is in its metadata and its step log
    // (the last stderr line without its newline too), and what it started is killed with it
    let r = &ended["sleeps"];
    let log = r["steps"]["other"]["metadata"]["log"].as_str().unwrap();
    assert_eq!(log, "working on it\nalmost there", "{r}");
    let mut lines = m.step_log_lines(r, "other").await;
    lines.sort();
    assert_eq!(
        lines,
        [
            ("stderr".to_string(), "almost there".to_string()),
            ("stdout".to_string(), "working on it".to_string())
        ],
    );
    common::wait_process_gone(
        &plugins.join("sleeps/sleeper.pid"),
        "the plugin's background `sleep 300`",
    )
    .await;
    // past its output limit: the log keeps what it printed
    let r = &ended["floods"];
    let log = r["steps"]["other"]["metadata"]["log"].as_str().unwrap();
    assert!(log.starts_with("flood\nflood"), "{r}");
    // the plugin reports a client error; a schema violation never reaches it
    let r = run(&m, "nobody", "echoes").await;
    assert_eq!(r["steps"]["greet"]["state"], "CLIENT_ERROR", "{r}");
    assert!(
        r["steps"]["greet"]["error"]
            .as_str()
            .unwrap()
            .contains("there is nobody to greet")
    );
    let r = run(&m, "", "echoes").await;
    assert_eq!(r["steps"]["greet"]["state"], "CLIENT_ERROR", "{r}");
    assert!(
        r["steps"]["greet"]["error"]
            .as_str()
            .unwrap()
            .contains("configuration/name"),
        "{r}"
    );
    m.stop().await;
}

#[test]
fn manifests_are_checked_and_plugin_types_validate_templates() {
    let dir = tempfile::tempdir().unwrap();
    shell_plugin(
        dir.path(),
        "good",
        "config_schema: {type: object}\n",
        "true",
    );
    shell_plugin(dir.path(), "echo", "", "true"); // a builtin name
    shell_plugin(
        dir.path(),
        "badschema",
        "config_schema: {type: 12}\n",
        "true",
    );
    write(
        &dir.path().join("typo").join("manifest.yaml"),
        "name: typo\nversion: 1\nexecutable: x\nexecutible: y\n",
        false,
    );
    write(
        &dir.path().join("notexec").join("manifest.yaml"),
        "name: notexec\nversion: 1\nexecutable: run.sh\n",
        false,
    );
    write(
        &dir.path().join("notexec").join("run.sh"),
        "#!/bin/sh\n",
        false,
    );
    let (plugins, problems) = mutask::action::plugin::load_dir(dir.path());
    let names: Vec<&str> = plugins.iter().map(|p| p.manifest.name.as_str()).collect();
    assert_eq!(names, ["good"]);
    let all = problems.join("\n");
    for needle in [
        "builtin action type",
        "config_schema",
        "executible",
        "not executable",
    ] {
        assert!(all.contains(needle), "{needle} in {all}");
    }
    // a template using an unknown type fails to load; with the plugin known it loads
    let tdir = tempfile::tempdir().unwrap();
    write(
        &tdir.path().join("t.yaml"),
        "name: tpl\ndescription: uses good\ntitle_format: title\nsteps:\n  s:\n    action:\n      type: good\n",
        false,
    );
    let functions = mutask::template::model::FunctionSet::new();
    let without = mutask::template::load::load_templates_dir(tdir.path(), &functions);
    assert!(without.has_errors(), "unknown type refused");
    let known: mutask::template::validate::PluginTypes = [("good".to_string(), None)].into();
    let with = mutask::template::load::load_templates_dir_with_plugins(
        tdir.path(),
        &functions,
        Some(&known),
    );
    assert!(!with.has_errors(), "{:?}", with.problems);
}

/// A template step of a plugin type is checked against the plugin's `config_schema` at load
/// time: missing required fields, unknown fields and mistyped literals are reported with their
/// line and column (as warnings, like builtin configuration problems); templated values pass.
#[test]
fn plugin_config_schemas_are_checked_at_load() {
    let dir = tempfile::tempdir().unwrap();
    let plugins = dir.path().join("plugins");
    shell_plugin(
        &plugins,
        "strict",
        "config_schema:\n  type: object\n  required: [name]\n  additionalProperties: false\n  \
         properties:\n    name: {type: string}\n    count: {type: integer}\n    \
         opts:\n      type: object\n      additionalProperties: false\n      \
         properties: {loud: {type: boolean}}\n",
        "true",
    );
    let templates = dir.path().join("templates");
    write(
        &templates.join("t.yaml"),
        "name: tpl\n\
         description: uses strict\n\
         title_format: title\n\
         inputs: [{name: who}, {name: n}]\n\
         steps:\n\
         \x20 bad:\n\
         \x20   action:\n\
         \x20     type: strict\n\
         \x20     configuration:\n\
         \x20       count: \"3\"\n\
         \x20       opts: {loud: 1, quiet: true}\n\
         \x20 good:\n\
         \x20   action:\n\
         \x20     type: strict\n\
         \x20     configuration:\n\
         \x20       name: \"{{ .input.who }}\"\n\
         \x20       count: \"{{ .input.n }}\"\n",
        false,
    );
    let (loaded, problems) = mutask::action::plugin::load_dir(&plugins);
    assert!(problems.is_empty(), "{problems:?}");
    let types = mutask::action::plugin::validation_types(&loaded);
    let functions = mutask::template::model::FunctionSet::new();
    let report = mutask::template::load::load_templates_dir_with_plugins(
        &templates,
        &functions,
        Some(&types),
    );
    let lines: Vec<String> = report.problems.iter().map(|p| p.to_string()).collect();
    assert!(!report.has_errors(), "{lines:#?}");
    let expect = [
        (
            "t.yaml:9:",
            "steps.bad.action.configuration.name",
            "missing required field `name`",
        ),
        (
            "t.yaml:10:",
            "steps.bad.action.configuration.count",
            "takes integer, not string",
        ),
        (
            "t.yaml:11:",
            "steps.bad.action.configuration.opts.loud",
            "takes boolean, not number",
        ),
        (
            "t.yaml:11:",
            "steps.bad.action.configuration.opts.quiet",
            "unknown field `quiet`",
        ),
    ];
    for (at, path, message) in expect {
        assert!(
            lines
                .iter()
                .any(|l| l.contains(at) && l.contains(path) && l.contains(message)),
            "{at} {path} {message} in {lines:#?}"
        );
    }
    assert_eq!(
        lines.len(),
        expect.len(),
        "the templated step passes: {lines:#?}"
    );

    // the same through `mutask template validate`, which loads MUTASK_PLUGINS_DIR
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_mutask"))
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("MUTASK_DATA_DIR", dir.path())
        .env("MUTASK_PLUGINS_DIR", &plugins)
        .env("MUTASK_FUNCTIONS_DIR", dir.path().join("functions"))
        .args(["template", "validate"])
        .arg(&templates)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "warnings only: {stdout}");
    for (at, path, message) in expect {
        assert!(
            stdout
                .lines()
                .any(|l| l.contains(at) && l.contains(path) && l.contains(message)),
            "{at} {path} {message} in {stdout}"
        );
    }
    assert!(stdout.contains("4 warning(s)"), "{stdout}");
}
