//! Routes beyond the task/resolution core: functions, YAML answers, Prometheus metrics.

mod common;

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
