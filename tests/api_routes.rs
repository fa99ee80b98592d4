//! Routes beyond the task/resolution core: functions, YAML answers, Prometheus metrics.

use crate::common;

use serde_json::Value;

#[tokio::test]
async fn functions_are_listed_and_read_by_name() {
    let m = common::start_with(|c| {
        std::fs::create_dir_all(&c.functions_dir).unwrap();
        std::fs::write(
            c.functions_dir.join("say.yaml"),
            "name: say::hello\ndescription: greets\naction:\n  type: echo\n  configuration:\n    output: {greeting: hello}\ncustom_states: [GREETED]\n",
        )
        .unwrap();
    })
    .await;
    let (status, list) = m.get("alice", "/function").await;
    assert_eq!(status, 200, "{list}");
    let names: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["say::hello"]);
    let (status, f) = m.get("bob", "/function/say::hello").await;
    assert_eq!(status, 200, "{f}");
    assert_eq!(f["description"], "greets");
    assert_eq!(f["action"]["type"], "echo");
    assert_eq!(f["custom_states"][0], "GREETED");
    let (status, e) = m.get("bob", "/function/nope").await;
    assert_eq!(status, 404);
    assert!(
        e["error"]["message"].as_str().unwrap().contains("nope"),
        "{e}"
    );
    let r = m.client.get(m.url("/function")).send().await.unwrap();
    assert_eq!(r.status(), 401);
    m.stop().await;
}

#[tokio::test]
async fn answers_in_yaml_when_asked() {
    let m = common::start().await;
    let r = m
        .client
        .get(m.url("/template/hello-world"))
        .basic_auth("alice", Some("alice-pw"))
        .header("accept", "application/x-yaml")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "application/x-yaml");
    let text = r.text().await.unwrap();
    assert!(text.contains("name: hello-world"), "{text}");
    let v: Value = serde_yaml::from_str(&text).unwrap();
    assert_eq!(v["name"], "hello-world");
    // errors too
    let r = m
        .client
        .get(m.url("/task/not-an-id"))
        .basic_auth("alice", Some("alice-pw"))
        .header("accept", "application/x-yaml")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let v: Value = serde_yaml::from_str(&r.text().await.unwrap()).unwrap();
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("not-an-id")
    );
    // JSON stays the default
    let r = m
        .client
        .get(m.url("/template/hello-world"))
        .basic_auth("alice", Some("alice-pw"))
        .send()
        .await
        .unwrap();
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json")
    );
    m.stop().await;
}

fn sample(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find(|l| {
            l.starts_with(&format!("{name}{{"))
                && labels
                    .iter()
                    .all(|(k, v)| l.contains(&format!("{k}=\"{v}\"")))
                || (labels.is_empty() && l.starts_with(&format!("{name} ")))
        })
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

#[tokio::test]
async fn metrics_count_tasks_and_requests() {
    let m = common::start().await;
    for _ in 0..2 {
        let (status, t) = m
            .post(
                "alice",
                "/task",
                &serde_json::json!({"template_name": "deploy-approval",
                    "input": {"service": "billing", "environment": "staging"}}),
            )
            .await;
        assert_eq!(status, 201, "{t}");
    }
    // unauthenticated, as µTask's
    let r = m.client.get(m.url("/metrics")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    let text = r.text().await.unwrap();
    assert_eq!(
        sample(
            &text,
            "mutask_tasks",
            &[("state", "TODO"), ("template", "deploy-approval")]
        ),
        Some(2.0),
        "{text}"
    );
    assert_eq!(
        sample(&text, "mutask_instances_alive", &[]),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        sample(
            &text,
            "mutask_http_requests_total",
            &[("method", "POST"), ("route", "/task"), ("status", "201")]
        ),
        Some(2.0),
        "{text}"
    );
    assert!(
        text.contains("mutask_http_request_duration_seconds_bucket"),
        "{text}"
    );
    assert!(text.contains("mutask_build_info{version=\""), "{text}");
    // ids do not become labels
    let _ = m
        .get("alice", "/task/00000000-0000-0000-0000-000000000001")
        .await;
    let text = m
        .client
        .get(m.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(text.contains("route=\"/task/{id}\""), "{text}");
    assert!(
        !text.contains("00000000-0000-0000-0000-000000000001"),
        "{text}"
    );
    m.stop().await;
}

async fn call(
    m: &common::Instance,
    method: &str,
    user: &str,
    path: &str,
    body: Option<&Value>,
) -> (u16, Value) {
    let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let mut r = m
        .client
        .request(method, m.url(path))
        .basic_auth(user, Some(format!("{user}-pw")));
    if let Some(b) = body {
        r = r.json(b);
    }
    let resp = r.send().await.unwrap();
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

async fn wait_state(m: &common::Instance, rid: &str, states: &[&str]) -> Value {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let (s, r) = call(m, "GET", "admin", &format!("/resolution/{rid}"), None).await;
        assert_eq!(s, 200, "{r}");
        if states.contains(&r["state"].as_str().unwrap_or_default()) {
            return r;
        }
        assert!(std::time::Instant::now() < deadline, "stuck: {r}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

fn fields(e: &Value) -> Vec<String> {
    e["error"]["fields"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|f| f["field"].as_str().unwrap().to_string())
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_edits_a_paused_resolution_and_it_runs_the_new_steps() {
    let m = common::start().await;
    let (s, task) = call(
        &m,
        "POST",
        "admin",
        "/task",
        Some(
            &serde_json::json!({"template_name": "wait-for-callback", "input": {"system": "ci"},
            "resolver_usernames": ["bob"]}),
        ),
    )
    .await;
    assert_eq!(s, 201, "{task}");
    let tid = task["id"].as_str().unwrap().to_string();
    let rid = task["resolution"].as_str().unwrap().to_string();
    wait_state(&m, &rid, &["WAITING"]).await;
    let step_path = format!("/resolution/{rid}/step/report");
    let res_path = format!("/resolution/{rid}");
    let new_report = serde_json::json!({
        "description": "edited",
        "dependencies": ["createCallback"],
        "action": {"type": "echo", "configuration": {"output": {"summary": "edited {{ input.system }}"}}}
    });

    // only while PAUSED
    let (s, e) = call(&m, "PUT", "admin", &step_path, Some(&new_report)).await;
    assert_eq!(s, 400, "{e}");
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap()
            .contains("not in state 'PAUSED' (it is WAITING)"),
        "{e}"
    );
    assert_eq!(
        call(&m, "POST", "bob", &format!("{res_path}/pause"), None)
            .await
            .0,
        204
    );
    wait_state(&m, &rid, &["PAUSED"]).await;

    // admins only (bob manages the task but is no admin)
    let (s, _) = call(&m, "PUT", "bob", &step_path, Some(&new_report)).await;
    assert_eq!(s, 403);
    // a bad definition: every problem named, nothing stored
    let bad = serde_json::json!({"dependencies": ["nope"], "action": {"type": "no-such-action"}});
    let (s, e) = call(&m, "PUT", "admin", &step_path, Some(&bad)).await;
    assert_eq!(s, 422, "{e}");
    let f = fields(&e);
    assert!(
        f.iter().any(|f| f.starts_with("steps.report.dependencies")),
        "{e}"
    );
    assert!(
        f.iter().any(|f| f.starts_with("steps.report.action")),
        "{e}"
    );
    let (s, e) = call(
        &m,
        "PUT",
        "admin",
        &format!("/resolution/{rid}/step/ghost"),
        Some(&new_report),
    )
    .await;
    assert_eq!(s, 404, "{e}");

    // one step
    let (s, step) = call(&m, "PUT", "admin", &step_path, Some(&new_report)).await;
    assert_eq!(s, 200, "{step}");
    assert_eq!(step["description"], "edited");
    assert_eq!(step["dependencies"], serde_json::json!(["createCallback"]));
    assert_eq!(step["state"], "TODO");

    // the whole set: drop waitCallback, keep createCallback (DONE) and report, add a step
    let (_, current) = call(&m, "GET", "admin", &res_path, None).await;
    assert_eq!(current["steps"]["createCallback"]["state"], "DONE");
    let mut create_def = current["steps"]["createCallback"].clone();
    for k in [
        "name",
        "state",
        "try_count",
        "last_run",
        "error",
        "parent",
        "output",
        "metadata",
        "children",
        "item",
    ] {
        create_def.as_object_mut().unwrap().remove(k);
    }
    let cyclic = serde_json::json!({"steps": {
        "a": {"dependencies": ["b"], "action": {"type": "echo", "configuration": {"output": {}}}},
        "b": {"dependencies": ["a"], "action": {"type": "echo", "configuration": {"output": {}}}},
    }});
    let (s, e) = call(&m, "PUT", "admin", &res_path, Some(&cyclic)).await;
    assert_eq!(s, 422, "{e}");
    let (s, e) = call(&m, "PUT", "admin", &res_path, Some(&serde_json::json!({}))).await;
    assert_eq!(s, 400, "{e}");
    let (s, e) = call(
        &m,
        "PUT",
        "admin",
        &res_path,
        Some(&serde_json::json!({"resolver_inputs": {}})),
    )
    .await;
    assert_eq!(s, 200, "{e}");
    let echo = |output: Value| serde_json::json!({"action": {"type": "echo", "configuration": {"output": output}}});
    let mut wait_def = echo(serde_json::json!({"body": {"success": true}}));
    wait_def["dependencies"] = serde_json::json!(["createCallback"]);
    let mut added = echo(serde_json::json!({"after": "{{ step.report.output.summary }}"}));
    added["dependencies"] = serde_json::json!(["report"]);
    let mut body = serde_json::json!({"steps": {
        "createCallback": create_def,
        "waitCallback": wait_def,
        "report": new_report,
        "added": added,
        "scratch": echo(serde_json::json!({})),
    }});
    let (s, r) = call(&m, "PUT", "admin", &res_path, Some(&body)).await;
    assert_eq!(s, 200, "{r}");
    assert_eq!(r["steps"].as_object().unwrap().len(), 5, "{r}");
    body["steps"].as_object_mut().unwrap().remove("scratch");
    let (s, r) = call(&m, "PUT", "admin", &res_path, Some(&body)).await;
    assert_eq!(s, 200, "{r}");
    let mut names: Vec<&String> = r["steps"].as_object().unwrap().keys().collect();
    names.sort();
    assert_eq!(names, ["added", "createCallback", "report", "waitCallback"]);
    assert_eq!(
        r["steps"]["createCallback"]["state"], "DONE",
        "kept steps keep their state"
    );
    assert!(r["steps"]["createCallback"]["output"]["url"].is_string());
    assert_eq!(r["steps"]["waitCallback"]["state"], "WAITING");
    assert_eq!(r["steps"]["added"]["state"], "TODO");
    let (s, e) = call(
        &m,
        "PUT",
        "admin",
        &format!("{res_path}/step/waitCallback/state"),
        Some(&serde_json::json!({"state": "TODO"})),
    )
    .await;
    assert_eq!(s, 200, "{e}");

    // run it: the edited steps run
    assert_eq!(
        call(&m, "POST", "admin", &format!("{res_path}/run"), None)
            .await
            .0,
        204
    );
    let done = wait_state(&m, &rid, &["DONE"]).await;
    assert_eq!(done["steps"]["report"]["output"]["summary"], "edited ci");
    assert_eq!(done["steps"]["added"]["output"]["after"], "edited ci");
    let (_, t) = call(&m, "GET", "admin", &format!("/task/{tid}"), None).await;
    assert_eq!(t["state"], "DONE", "{t}");
    assert!(
        t["result"]["success"]
            .as_str()
            .unwrap()
            .eq_ignore_ascii_case("true"),
        "{t}"
    );
    let (_, comments) = call(&m, "GET", "admin", &format!("/task/{tid}/comment"), None).await;
    let text = comments.to_string();
    assert!(
        text.contains("manually updated resolution step report"),
        "{text}"
    );
    assert!(
        text.contains("manually updated resolution: steps (4 replaced, 0 added, 1 removed)"),
        "{text}"
    );
    m.stop().await;
}

#[tokio::test]
async fn cors_is_off_unless_configured() {
    let preflight = |m: &common::Instance, origin: &'static str| {
        m.client
            .request(reqwest::Method::OPTIONS, m.url("/task"))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header(
                "access-control-request-headers",
                "authorization,content-type",
            )
            .send()
    };
    let m = common::start().await;
    let r = preflight(&m, "https://ui.example.com").await.unwrap();
    assert!(r.headers().get("access-control-allow-origin").is_none());
    let r = m
        .client
        .get(m.url("/meta"))
        .basic_auth("alice", Some("alice-pw"))
        .header("origin", "https://ui.example.com")
        .send()
        .await
        .unwrap();
    assert!(r.headers().get("access-control-allow-origin").is_none());
    m.stop().await;

    let m = common::start_with(|c| c.cors_origins = vec!["https://ui.example.com".into()]).await;
    let r = preflight(&m, "https://ui.example.com").await.unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    assert_eq!(
        r.headers()["access-control-allow-origin"],
        "https://ui.example.com"
    );
    assert_eq!(r.headers()["access-control-allow-credentials"], "true");
    let methods = r.headers()["access-control-allow-methods"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(methods.contains("POST"), "{methods}");
    let r = preflight(&m, "https://evil.example.net").await.unwrap();
    assert!(r.headers().get("access-control-allow-origin").is_none());
    let r = m
        .client
        .get(m.url("/meta"))
        .basic_auth("alice", Some("alice-pw"))
        .header("origin", "https://ui.example.com")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.headers()["access-control-allow-origin"],
        "https://ui.example.com"
    );
    m.stop().await;
}

#[tokio::test]
async fn nul_characters_in_names_are_client_errors() {
    let m = common::start().await;
    for path in [
        "/template/a%00b",
        "/schedule/a%00b",
        "/task?template=a%00b&type=all",
    ] {
        let (status, e) = m.get("admin", path).await;
        assert!((400..500).contains(&status), "{path}: {status} {e}");
    }
    m.stop().await;
}
