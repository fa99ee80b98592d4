//! The editor's API: `POST /template/validate` (every problem with line and column),
//! `POST /template/plan` (what would run, secrets masked, runaway templates stopped by the
//! sandbox), `PUT /template/{name}` (admins, versioned; tasks keep their version) and
//! `GET /template/{name}/version`; the dashboard's static files and the `/` redirect.

use crate::common;

use serde_json::{Value, json};

const PLANNED: &str = r#"
name: planned
description: Plan mode fixture
title_format: "Deploy {{.input.service}}"
inputs:
  - name: service
    regex: "^[a-z]+$"
  - name: token
    type: password
  - name: dry
    type: bool
    default: false
steps:
  build:
    action:
      type: echo
      configuration:
        output: {cmd: "build {{.input.service}} with {{.input.token}}"}
  deploy:
    dependencies: [build]
    custom_states: [UNHEALTHY]
    conditions:
      - type: skip
        if:
          - value: "{{.input.dry}}"
            operator: EQ
            expected: "true"
        then: {this: PRUNE}
    action:
      type: echo
      configuration:
        output: {msg: "deploy {{.input.service}}"}
  announce:
    dependencies: [deploy]
    action:
      type: echo
      configuration:
        output: {msg: "deployed {{.step.deploy.output.msg}}"}
  rollback:
    dependencies: ["deploy:UNHEALTHY"]
    action:
      type: echo
      configuration:
        output: {msg: rollback}
"#;

async fn put(m: &common::Instance, user: &str, path: &str, body: &Value) -> (u16, Value) {
    let r = m
        .client
        .put(m.url(path))
        .basic_auth(user, Some(format!("{user}-pw")))
        .json(body)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

fn step<'a>(plan: &'a Value, name: &str) -> &'a Value {
    plan["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == name)
        .unwrap_or_else(|| panic!("no step {name} in {plan}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validate_reports_problems_with_lines_and_the_graph() {
    let m = common::start().await;
    let (s, ok) = m
        .post("alice", "/template/validate", &json!({"source": PLANNED}))
        .await;
    assert_eq!(s, 200, "{ok}");
    assert_eq!(ok["valid"], true, "{ok}");
    assert_eq!(ok["name"], "planned");
    let names: Vec<&str> = ok["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["build", "deploy", "announce", "rollback"]);
    assert_eq!(ok["steps"][1]["dependencies"], json!(["build"]));

    // an unknown dependency on line 7 and a YAML syntax error elsewhere are located
    let bad = "name: bad-one\ndescription: a bad template\ntitle_format: bad run\nsteps:\n  a:\n    action: {type: echo, configuration: {output: {}}}\n    dependencies: [nowhere]\n";
    let (s, r) = m
        .post("alice", "/template/validate", &json!({"source": bad}))
        .await;
    assert_eq!(s, 200);
    assert_eq!(r["valid"], false);
    let p = &r["problems"][0];
    assert_eq!(p["severity"], "error");
    assert_eq!(p["line"], 7, "{r}");
    assert!(p["message"].as_str().unwrap().contains("nowhere"), "{r}");

    let (_, r) = m
        .post(
            "alice",
            "/template/validate",
            &json!({"source": "name: x\nsteps: [\n"}),
        )
        .await;
    assert_eq!(r["valid"], false);
    assert!(r["problems"][0]["line"].as_u64().is_some(), "{r}");

    // a missing source is a 4xx naming the field, not a 500
    let (s, r) = m.post("alice", "/template/validate", &json!({})).await;
    assert!(s == 400 || s == 422, "{s} {r}");
    assert!(r.to_string().contains("source"), "{r}");
    m.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plan_renders_masks_secrets_and_predicts_skips() {
    let m = common::start().await;
    let canary = "s3cr3t-canary-77";
    let (s, plan) = m
        .post(
            "alice",
            "/template/plan",
            &json!({"source": PLANNED, "input": {"service": "web", "token": canary, "dry": true}}),
        )
        .await;
    assert_eq!(s, 200, "{plan}");
    assert!(!plan.to_string().contains(canary), "secret leaked: {plan}");
    assert_eq!(plan["title"], "Deploy web");
    assert_eq!(plan["input_errors"], json!([]));
    let build = step(&plan, "build");
    assert_eq!(build["outcome"], "run");
    assert_eq!(
        build["configuration"]["output"]["cmd"],
        "build web with **__SECRET__**"
    );
    let deploy = step(&plan, "deploy");
    assert_eq!(deploy["outcome"], "skip", "{plan}");
    assert_eq!(deploy["state"], "PRUNE");
    // announce waits for deploy DONE: pruned when deploy is pruned; it reads a step output
    let announce = step(&plan, "announce");
    assert_eq!(announce["outcome"], "prune", "{plan}");
    assert_eq!(announce["runtime_values"], true);
    assert_eq!(
        announce["configuration"]["output"]["msg"],
        "deployed {{.step.deploy.output.msg}}"
    );
    assert_eq!(announce["level"], 2);

    // not dry: deploy runs, the rollback path is decided at run time
    let (_, plan) = m
        .post(
            "alice",
            "/template/plan",
            &json!({"source": PLANNED, "input": {"service": "web", "token": "t"}}),
        )
        .await;
    assert_eq!(step(&plan, "deploy")["outcome"], "run", "{plan}");
    assert_eq!(step(&plan, "announce")["outcome"], "run");
    assert_eq!(step(&plan, "rollback")["outcome"], "runtime", "{plan}");

    // bad sample inputs are reported, the plan still shows the steps
    let (s, plan) = m
        .post(
            "alice",
            "/template/plan",
            &json!({"source": PLANNED, "input": {"service": "Not Valid"}}),
        )
        .await;
    assert_eq!(s, 200);
    let errors = plan["input_errors"].to_string();
    assert!(
        errors.contains("input.service") && errors.contains("input.token"),
        "{plan}"
    );
    assert_eq!(plan["steps"].as_array().unwrap().len(), 4);

    // a stored template by name
    let (s, plan) = m
        .post(
            "alice",
            "/template/plan",
            &json!({"template": "hello-world", "input": {"name": "plan"}}),
        )
        .await;
    assert_eq!(s, 200, "{plan}");
    assert!(plan.to_string().contains("plan"), "{plan}");

    // neither / both / an invalid template / an unknown template
    let (s, _) = m.post("alice", "/template/plan", &json!({})).await;
    assert_eq!(s, 400);
    let (s, r) = m
        .post(
            "alice",
            "/template/plan",
            &json!({"source": "name: x\ndescription: bad one\ntitle_format: xyz\nsteps:\n  a:\n    dependencies: [zz]\n    action: {type: echo}\n"}),
        )
        .await;
    assert_eq!(s, 422, "{r}");
    assert!(
        r["error"]["fields"][0]["field"]
            .as_str()
            .unwrap()
            .starts_with("template.yaml:"),
        "{r}"
    );
    let (s, _) = m
        .post("alice", "/template/plan", &json!({"template": "nope"}))
        .await;
    assert_eq!(s, 404);
    m.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_runaway_template_in_plan_mode_is_stopped_and_the_instance_keeps_serving() {
    let m = common::start().await;
    // exponential string growth through a variable evaluated as JavaScript
    let runaway = r#"
name: runaway
description: Runaway plan
title_format: runaway
variables:
  - name: boom
    expression: "var s = 'x'; while (true) { s = s + s; }"
steps:
  a:
    action:
      type: echo
      configuration:
        output: {v: "{{ eval `boom` }}"}
"#;
    let started = std::time::Instant::now();
    let (s, r) = m
        .post("alice", "/template/plan", &json!({"source": runaway}))
        .await;
    assert!(started.elapsed() < std::time::Duration::from_secs(30));
    // either the step shows the evaluation error or the whole plan is refused: never a 5xx
    assert!(s == 200 || s == 400, "{s} {r}");
    if s == 200 {
        assert!(
            step(&r, "a")["errors"]
                .as_array()
                .is_some_and(|e| !e.is_empty()),
            "{r}"
        );
    }
    let (s, _) = m.get("alice", "/meta").await;
    assert_eq!(s, 200);
    m.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn saving_is_admin_only_and_versioned() {
    let m = common::start().await;
    let v1 = PLANNED;
    let (s, r) = put(&m, "alice", "/template/planned", &json!({"source": v1})).await;
    assert_eq!(s, 403, "{r}");
    let (s, r) = put(&m, "admin", "/template/planned", &json!({"source": v1})).await;
    assert_eq!(s, 200, "{r}");
    assert_eq!(r["outcome"], "created");
    assert_eq!(r["version"], 1);
    let (s, r) = put(&m, "admin", "/template/planned", &json!({"source": v1})).await;
    assert_eq!((s, r["outcome"].as_str()), (200, Some("unchanged")));

    // a task created from version 1 keeps it after version 2 is saved
    let (s, task) = m
        .post(
            "alice",
            "/task",
            &json!({"template_name": "planned", "input": {"service": "web", "token": "t"}}),
        )
        .await;
    assert_eq!(s, 201, "{task}");
    let v2 = v1.replace("Plan mode fixture", "Plan mode fixture, second version");
    let (s, r) = put(&m, "admin", "/template/planned", &json!({"source": v2})).await;
    assert_eq!((s, r["version"].as_i64()), (200, Some(2)), "{r}");
    let (_, t) = m
        .get("alice", &format!("/task/{}", task["id"].as_str().unwrap()))
        .await;
    assert_eq!(t["template_version"], 1);
    let (_, tpl) = m.get("alice", "/template/planned").await;
    assert_eq!(tpl["version"], 2);
    assert_eq!(tpl["source"], v2, "the source is served for the editor");
    let (s, versions) = m.get("alice", "/template/planned/version").await;
    assert_eq!(s, 200);
    let listed: Vec<i64> = versions
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["version"].as_i64().unwrap())
        .collect();
    assert_eq!(listed, [2, 1]);

    // the name in the source must be the one in the path; invalid sources change nothing
    let (s, r) = put(&m, "admin", "/template/other", &json!({"source": v1})).await;
    assert_eq!(s, 422, "{r}");
    let (s, r) = put(
        &m,
        "admin",
        "/template/planned",
        &json!({"source": "name: planned\nsteps: {a: {dependencies: [b]}}\n"}),
    )
    .await;
    assert_eq!(s, 422, "{r}");
    let (_, tpl) = m.get("alice", "/template/planned").await;
    assert_eq!(tpl["version"], 2);
    let (s, _) = m.get("alice", "/template/nope/version").await;
    assert_eq!(s, 404);

    // a file-backed template saved through the API: the answer warns that the file wins
    let hello =
        std::fs::read_to_string(common::shipped_templates().join("hello-world.yaml")).unwrap();
    let (s, r) = put(
        &m,
        "admin",
        "/template/hello-world",
        &json!({"source": hello.replace("Say hello", "Say hello again")}),
    )
    .await;
    assert_eq!(s, 200, "{r}");
    assert!(
        r["warning"]
            .as_str()
            .unwrap_or("")
            .contains("hello-world.yaml"),
        "{r}"
    );
    m.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_is_served_and_browsers_are_sent_to_it() {
    let m = common::start().await;
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let r = client
        .get(m.url("/"))
        .header("accept", "text/html,application/xhtml+xml")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 302);
    assert_eq!(r.headers()["location"], "/ui/");
    // API clients: µTask's 301 to /meta once authenticated, 401 before
    let r = client.get(m.url("/")).send().await.unwrap();
    assert_eq!(r.status(), 401);
    let r = client
        .get(m.url("/"))
        .basic_auth("alice", Some("alice-pw"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 301);
    assert_eq!(r.headers()["location"], "/meta");
    // the app's own 401s carry no Basic challenge (no browser dialog over the sign-in form)
    let r = client.get(m.url("/meta")).send().await.unwrap();
    assert!(r.headers().contains_key("www-authenticate"));
    let r = client
        .get(m.url("/meta"))
        .header("x-mutask-client", "ui")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert!(!r.headers().contains_key("www-authenticate"));
    let r = client.get(m.url("/ui")).send().await.unwrap();
    assert_eq!(r.headers()["location"], "/ui/");
    // a missing asset is a 404, an app route is the app
    let r = client
        .get(m.url("/ui/assets/missing.js"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    if std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/ui/dist/index.html")).is_file() {
        let r = client.get(m.url("/ui/task/123")).send().await.unwrap();
        assert_eq!(r.status(), 200);
        assert!(
            r.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/html")
        );
        assert_eq!(r.headers()["cache-control"], "no-cache");
    }
    m.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn action_schemas_are_served_and_flag_unknown_and_mistyped_fields() {
    let m = common::start_with(|c| {
        c.plugins_dir = std::path::PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/plugins"));
    })
    .await;
    let (s, actions) = m.get("alice", "/action").await;
    assert_eq!(s, 200);
    let find = |n: &str| {
        actions
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["name"] == n)
            .cloned()
            .unwrap_or_else(|| panic!("no action {n} in {actions}"))
    };
    assert_eq!(find("email")["kind"], "builtin");
    assert!(find("email")["schema"]["properties"]["smtp_hostname"].is_object());
    assert!(
        find("ssh")["schema"]["required"]
            .to_string()
            .contains("target")
    );
    assert_eq!(find("greet")["kind"], "plugin");
    assert!(
        find("greet")["schema"].is_object(),
        "the plugin's config_schema"
    );

    let source = "name: mailer\ndescription: sends a mail\ntitle_format: mail run\nsteps:\n  m:\n    action:\n      type: email\n      configuration:\n        smtp_hostname: mail.example.com\n        from_address: a@example.com\n        to: 42\n        subjekt: hello\n        body: hi\n";
    let (s, r) = m
        .post("alice", "/template/validate", &json!({"source": source}))
        .await;
    assert_eq!(s, 200);
    assert_eq!(r["valid"], true, "warnings only: {r}");
    let problems = r["problems"].as_array().unwrap();
    let to = problems
        .iter()
        .find(|p| p["path"] == "steps.m.action.configuration.to")
        .unwrap_or_else(|| panic!("{r}"));
    assert_eq!(to["severity"], "warning");
    assert_eq!(to["line"], 11);
    let unknown = problems
        .iter()
        .find(|p| p["path"] == "steps.m.action.configuration.subjekt")
        .unwrap_or_else(|| panic!("{r}"));
    assert_eq!(unknown["line"], 12);
    assert!(
        unknown["message"].as_str().unwrap().contains("subject"),
        "{unknown}"
    );
    m.stop().await;
}

#[tokio::test]
async fn the_template_schema_is_served_and_its_name_reserved() {
    let m = common::start().await;
    let (s, schema) = m.get("admin", "/template/schema").await;
    assert_eq!(s, 200, "{schema}");
    let committed: Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/template.schema.json"))
            .unwrap(),
    )
    .unwrap();
    assert_eq!(schema, committed, "the served schema is the committed one");
    assert!(schema["$defs"]["step"]["properties"]["foreach"].is_object());
    // `schema` cannot be saved as a template name: a clear 422, not a 405
    let source = "name: schema\ndescription: d\ntitle_format: t\nsteps:\n  a:\n    action:\n      type: echo\n      configuration: {output: {}}\n";
    let (s, e) = put(&m, "admin", "/template/schema", &json!({"source": source})).await;
    assert_eq!(s, 422, "{e}");
    assert!(
        e["error"]["message"].as_str().unwrap().contains("reserved"),
        "{e}"
    );
    m.stop().await;
}
