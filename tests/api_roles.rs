//! The role × route matrix: every route of the OpenAPI document called as admin, template
//! owner, task resolver, requester, watcher, stranger and anonymous. Allowed callers get neither
//! 401 nor 403 (a refused state or a missing object is fine: the check is authorization);
//! others get exactly 403, anonymous callers 401. Write routes get a fresh task for each call.
//! The test fails when a route of `openapi.json` is missing from the matrix.

use crate::common;

use std::collections::BTreeSet;

use mutask::config::parse_basic_auth;
use serde_json::{Value, json};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Admin,
    Owner,
    Resolver,
    Requester,
    Watcher,
    Stranger,
    Anonymous,
}
use Role::*;

const ROLES: [Role; 7] = [
    Admin, Owner, Resolver, Requester, Watcher, Stranger, Anonymous,
];

impl Role {
    fn user(self) -> Option<&'static str> {
        Some(match self {
            Admin => "admin",
            Owner => "owner",
            Resolver => "resolver",
            Requester => "requester",
            Watcher => "watcher",
            Stranger => "stranger",
            Anonymous => return None,
        })
    }
}

/// Who may call a route.
#[derive(Debug, Clone, Copy)]
enum Who {
    /// No authentication at all.
    Public,
    /// Any authenticated caller.
    Anyone,
    /// These roles.
    Only(&'static [Role]),
    /// Nobody by user credentials: a signature is needed (401 for everyone without one).
    BySignature,
}

const READERS: &[Role] = &[Admin, Owner, Resolver, Requester, Watcher];
const MANAGERS: &[Role] = &[Admin, Owner, Resolver];

/// What a route needs in its fixture.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Needs {
    Nothing,
    Task,
    Resolution,
    Schedule,
}

struct Case {
    method: &'static str,
    path: &'static str,
    who: Who,
    needs: Needs,
    body: fn() -> Option<Value>,
}

fn none() -> Option<Value> {
    None
}

const CASES: &[Case] = &[
    Case {
        method: "GET",
        path: "/",
        who: Who::Anyone,
        needs: Needs::Nothing,
        body: none,
    },
    Case {
        method: "GET",
        path: "/meta",
        who: Who::Anyone,
        needs: Needs::Nothing,
        body: none,
    },
    Case {
        method: "GET",
        path: "/metrics",
        who: Who::Public,
        needs: Needs::Nothing,
        body: none,
    },
    Case {
        method: "GET",
        path: "/docs",
        who: Who::Public,
        needs: Needs::Nothing,
        body: none,
    },
    Case {
        method: "GET",
        path: "/docs/",
        who: Who::Public,
        needs: Needs::Nothing,
        body: none,
    },
    Case {
        method: "GET",
        path: "/docs/{file}",
        who: Who::Public,
        needs: Needs::Nothing,
        body: none,
    },
    Case {
        method: "GET",
        path: "/ui",
        who: Who::Public,
        needs: Needs::Nothing,
        body: none,
    },
    Case {
        method: "GET",
        path: "/ui/",
        who: Who::Public,
        needs: Needs::Nothing,
        body: none,
    },
    Case {
        method: "GET",
        path: "/ui/{path}",
        who: Who::Public,
        needs: Needs::Nothing,
        body: none,
    },
    Case {
        method: "GET",
        path: "/unsecured/mon/ping",
        who: Who::Public,
        needs: Needs::Nothing,
        body: none,
    },
    Case {
        method: "GET",
        path: "/unsecured/mon/ready",
        who: Who::Public,
        needs: Needs::Nothing,
        body: none,
    },
    Case {
        method: "GET",
        path: "/unsecured/spec.json",
        who: Who::Public,
        needs: Needs::Nothing,
        body: none,
    },
    Case {
        method: "GET",
        path: "/unsecured/stats",
        who: Who::Public,
        needs: Needs::Nothing,
        body: none,
    },
    Case {
        method: "POST",
        path: "/unsecured/callback/{id}",
        who: Who::Public,
        needs: Needs::Nothing,
        body: || Some(json!({"success": true})),
    },
    Case {
        method: "GET",
        path: "/template",
        who: Who::Anyone,
        needs: Needs::Nothing,
        body: none,
    },
    Case {
        method: "GET",
        path: "/template/{name}",
        who: Who::Anyone,
        needs: Needs::Nothing,
        body: none,
    },
    Case {
        method: "PUT",
        path: "/template/{name}",
        who: Who::Only(&[Admin]),
        needs: Needs::Nothing,
        body: || Some(json!({"source": TEMPLATE})),
    },
    Case {
        method: "GET",
        path: "/template/{name}/version",
        who: Who::Anyone,
        needs: Needs::Nothing,
        body: none,
    },
    Case {
        method: "POST",
        path: "/template/validate",
        who: Who::Anyone,
        needs: Needs::Nothing,
        body: || Some(json!({"source": TEMPLATE})),
    },
    Case {
        method: "POST",
        path: "/template/plan",
        who: Who::Anyone,
        needs: Needs::Nothing,
        body: || Some(json!({"template": "matrix", "input": {"x": "1"}})),
    },
    Case {
        method: "GET",
        path: "/resolution/{id}/step/{name}/log",
        who: Who::Only(MANAGERS),
        needs: Needs::Resolution,
        body: none,
    },
    Case {
        method: "GET",
        path: "/action",
        who: Who::Anyone,
        needs: Needs::Nothing,
        body: none,
    },
    Case {
        method: "GET",
        path: "/function",
        who: Who::Anyone,
        needs: Needs::Nothing,
        body: none,
    },
    Case {
        method: "GET",
        path: "/function/{name}",
        who: Who::Anyone,
        needs: Needs::Nothing,
        body: none,
    },
    Case {
        method: "GET",
        path: "/key-rotate",
        who: Who::Only(&[Admin]),
        needs: Needs::Nothing,
        body: none,
    },
    Case {
        method: "POST",
        path: "/key-rotate",
        who: Who::Only(&[Admin]),
        needs: Needs::Nothing,
        body: none,
    },
    Case {
        method: "GET",
        path: "/token",
        who: Who::Only(&[Admin]),
        needs: Needs::Nothing,
        body: none,
    },
    Case {
        method: "POST",
        path: "/token",
        who: Who::Only(&[Admin]),
        needs: Needs::Nothing,
        body: || Some(json!({"name": "matrix"})),
    },
    Case {
        method: "DELETE",
        path: "/token/{id}",
        who: Who::Only(&[Admin]),
        needs: Needs::Nothing,
        body: none,
    },
    Case {
        method: "GET",
        path: "/notification",
        who: Who::Only(&[Admin]),
        needs: Needs::Nothing,
        body: none,
    },
    Case {
        method: "POST",
        path: "/notification/{id}/retry",
        who: Who::Only(&[Admin]),
        needs: Needs::Nothing,
        body: none,
    },
    Case {
        method: "POST",
        path: "/batch",
        who: Who::Anyone,
        needs: Needs::Nothing,
        body: || Some(json!({"template_name": "matrix", "inputs": [{"x": "1"}]})),
    },
    Case {
        method: "POST",
        path: "/task",
        who: Who::Anyone,
        needs: Needs::Nothing,
        body: || Some(json!({"template_name": "matrix", "input": {"x": "1"}})),
    },
    Case {
        method: "GET",
        path: "/task",
        who: Who::Anyone,
        needs: Needs::Nothing,
        body: none,
    },
    Case {
        method: "GET",
        path: "/template/schema",
        who: Who::Anyone,
        needs: Needs::Nothing,
        body: none,
    },
    Case {
        method: "GET",
        path: "/task/count",
        who: Who::Anyone,
        needs: Needs::Nothing,
        body: none,
    },
    Case {
        method: "GET",
        path: "/task/{id}",
        who: Who::Only(READERS),
        needs: Needs::Task,
        body: none,
    },
    Case {
        method: "PUT",
        path: "/task/{id}",
        who: Who::Only(&[Admin, Owner, Requester]),
        needs: Needs::Task,
        body: || Some(json!({"input": {"x": "2"}})),
    },
    Case {
        method: "DELETE",
        path: "/task/{id}",
        who: Who::Only(&[Admin]),
        needs: Needs::Task,
        body: none,
    },
    Case {
        method: "POST",
        path: "/task/{id}/wontfix",
        who: Who::Only(&[Admin, Owner, Resolver, Requester]),
        needs: Needs::Task,
        body: none,
    },
    Case {
        method: "GET",
        path: "/task/{id}/comment",
        who: Who::Only(READERS),
        needs: Needs::Task,
        body: none,
    },
    Case {
        method: "POST",
        path: "/task/{id}/comment",
        who: Who::Only(READERS),
        needs: Needs::Task,
        body: || Some(json!({"content": "hello"})),
    },
    Case {
        method: "GET",
        path: "/task/{id}/comment/{commentid}",
        who: Who::Only(READERS),
        needs: Needs::Task,
        body: none,
    },
    // the fixture's comment is the watcher's: its author and admins may change it
    Case {
        method: "PUT",
        path: "/task/{id}/comment/{commentid}",
        who: Who::Only(&[Admin, Watcher]),
        needs: Needs::Task,
        body: || Some(json!({"content": "edited"})),
    },
    Case {
        method: "DELETE",
        path: "/task/{id}/comment/{commentid}",
        who: Who::Only(&[Admin, Watcher]),
        needs: Needs::Task,
        body: none,
    },
    Case {
        method: "POST",
        path: "/resolution",
        who: Who::Only(MANAGERS),
        needs: Needs::Task,
        body: || None, /* filled with the fixture's task id */
    },
    Case {
        method: "GET",
        path: "/resolution/{id}",
        who: Who::Only(READERS),
        needs: Needs::Resolution,
        body: none,
    },
    Case {
        method: "PUT",
        path: "/resolution/{id}",
        who: Who::Only(&[Admin]),
        needs: Needs::Resolution,
        body: || Some(json!({"resolver_inputs": {}})),
    },
    Case {
        method: "POST",
        path: "/resolution/{id}/run",
        who: Who::Only(MANAGERS),
        needs: Needs::Resolution,
        body: none,
    },
    Case {
        method: "POST",
        path: "/resolution/{id}/pause",
        who: Who::Only(MANAGERS),
        needs: Needs::Resolution,
        body: none,
    },
    Case {
        method: "POST",
        path: "/resolution/{id}/extend",
        who: Who::Only(MANAGERS),
        needs: Needs::Resolution,
        body: none,
    },
    Case {
        method: "POST",
        path: "/resolution/{id}/cancel",
        who: Who::Only(MANAGERS),
        needs: Needs::Resolution,
        body: none,
    },
    Case {
        method: "GET",
        path: "/resolution/{id}/step/{name}",
        who: Who::Only(READERS),
        needs: Needs::Resolution,
        body: none,
    },
    Case {
        method: "GET",
        path: "/resolution/{id}/step/{name}/configuration",
        who: Who::Only(READERS),
        needs: Needs::Resolution,
        body: none,
    },
    Case {
        method: "PUT",
        path: "/resolution/{id}/step/{name}",
        who: Who::Only(&[Admin]),
        needs: Needs::Resolution,
        body: || Some(json!({"action": {"type": "echo", "configuration": {"output": {}}}})),
    },
    Case {
        method: "PUT",
        path: "/resolution/{id}/step/{name}/state",
        who: Who::Only(&[Admin, Owner]),
        needs: Needs::Resolution,
        body: || Some(json!({"state": "DONE"})),
    },
    Case {
        method: "POST",
        path: "/schedule",
        who: Who::Only(&[Admin, Owner]),
        needs: Needs::Nothing,
        body: || {
            Some(
                json!({"name": format!("s-{}", uuid::Uuid::new_v4().simple()),
            "template_name": "matrix", "when": "daily", "input": {"x": "1"}}),
            )
        },
    },
    Case {
        method: "GET",
        path: "/schedule",
        who: Who::Anyone,
        needs: Needs::Nothing,
        body: none,
    },
    Case {
        method: "GET",
        path: "/schedule/{name}",
        who: Who::Only(&[Admin, Owner]),
        needs: Needs::Schedule,
        body: none,
    },
    Case {
        method: "PUT",
        path: "/schedule/{name}",
        who: Who::Only(&[Admin, Owner]),
        needs: Needs::Schedule,
        body: || Some(json!({"template_name": "matrix", "when": "hourly", "input": {"x": "2"}})),
    },
    Case {
        method: "DELETE",
        path: "/schedule/{name}",
        who: Who::Only(&[Admin, Owner]),
        needs: Needs::Schedule,
        body: none,
    },
    Case {
        method: "POST",
        path: "/schedule/{name}/pause",
        who: Who::Only(&[Admin, Owner]),
        needs: Needs::Schedule,
        body: none,
    },
    Case {
        method: "POST",
        path: "/schedule/{name}/resume",
        who: Who::Only(&[Admin, Owner]),
        needs: Needs::Schedule,
        body: none,
    },
    Case {
        method: "POST",
        path: "/webhook",
        who: Who::Only(&[Admin, Owner]),
        needs: Needs::Nothing,
        body: || {
            Some(
                json!({"name": format!("w-{}", uuid::Uuid::new_v4().simple()),
            "template_name": "matrix", "auth": "hmac-sha256", "secret": "0123456789"}),
            )
        },
    },
    Case {
        method: "GET",
        path: "/webhook",
        who: Who::Anyone,
        needs: Needs::Nothing,
        body: none,
    },
    Case {
        method: "GET",
        path: "/webhook/{name}",
        who: Who::Only(&[Admin, Owner]),
        needs: Needs::Schedule,
        body: none,
    },
    Case {
        method: "DELETE",
        path: "/webhook/{name}",
        who: Who::Only(&[Admin, Owner]),
        needs: Needs::Schedule,
        body: none,
    },
    // a delivery is authenticated by its signature (401 without one, for everybody)
    Case {
        method: "POST",
        path: "/webhook/{name}",
        who: Who::BySignature,
        needs: Needs::Schedule,
        body: || Some(json!({"x": "1"})),
    },
];

const TEMPLATE: &str = r#"
name: matrix
dialect: jinja
description: Role matrix fixture
title_format: "matrix {{ input.x }}"
allowed_resolver_usernames: [owner]
inputs:
  - name: x
resolver_inputs:
  - name: y
    optional: true
steps:
  only:
    action:
      type: echo
      configuration:
        output: {x: "{{ input.x }}"}
"#;

struct Fixture {
    task: String,
    comment: String,
    resolution: Option<String>,
    schedule: String,
}

async fn call(
    m: &common::Instance,
    method: &str,
    user: Option<&str>,
    path: &str,
    body: Option<&Value>,
) -> (u16, Value) {
    let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let mut r = m.client.request(method, m.url(path));
    if let Some(u) = user {
        r = r.basic_auth(u, Some(format!("{u}-pw")));
    }
    if let Some(b) = body {
        r = r.json(b);
    }
    let resp = r.send().await.unwrap();
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap_or_default();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

async fn fixture(m: &common::Instance, needs: Needs) -> Fixture {
    let (s, task) = call(
        m,
        "POST",
        Some("requester"),
        "/task",
        Some(&json!({"template_name": "matrix", "input": {"x": "1"}, "watcher_usernames": ["watcher"]})),
    )
    .await;
    assert_eq!(s, 201, "{task}");
    let task = task["id"].as_str().unwrap().to_string();
    // a task resolver is set by admins or template owners; set it directly
    sqlx::query("UPDATE task SET resolver_usernames = '{resolver}' WHERE id = $1::uuid")
        .bind(&task)
        .execute(&m.running.state.store.pool)
        .await
        .unwrap();
    let (s, c) = call(
        m,
        "POST",
        Some("watcher"),
        &format!("/task/{task}/comment"),
        Some(&json!({"content": "watching"})),
    )
    .await;
    assert_eq!(s, 201, "{c}");
    let comment = c["id"].as_str().unwrap().to_string();
    let resolution = if needs == Needs::Resolution {
        let (s, r) = call(
            m,
            "POST",
            Some("admin"),
            "/resolution",
            Some(&json!({"task_id": task})),
        )
        .await;
        assert_eq!(s, 201, "{r}");
        Some(r["id"].as_str().unwrap().to_string())
    } else {
        None
    };
    let schedule = format!("m-{}", uuid::Uuid::new_v4().simple());
    {
        let (s, r) = call(
            m,
            "POST",
            Some("admin"),
            "/schedule",
            Some(&json!({"name": schedule, "template_name": "matrix", "when": "daily", "input": {"x": "1"}})),
        )
        .await;
        assert_eq!(s, 201, "{r}");
    }
    let (s, r) = call(
        m,
        "POST",
        Some("admin"),
        "/webhook",
        Some(&json!({"name": schedule, "template_name": "matrix", "auth": "hmac-sha256", "secret": "0123456789"})),
    )
    .await;
    assert_eq!(s, 201, "{r}");
    Fixture {
        task,
        comment,
        resolution,
        schedule,
    }
}

fn concrete(path: &str, f: Option<&Fixture>, token: &str) -> String {
    let step_or_template = if path.starts_with("/template") {
        "matrix".to_string()
    } else if path.starts_with("/schedule") || path.starts_with("/webhook") {
        f.map(|f| f.schedule.clone()).unwrap_or_default()
    } else {
        "only".to_string()
    };
    let mut p = path
        .replace("{name}", &step_or_template)
        .replace("{file}", "index.html")
        .replace("{path}", "index.html")
        .replace("{commentid}", f.map_or("x", |f| f.comment.as_str()));
    let id = if path.starts_with("/resolution") {
        f.and_then(|f| f.resolution.clone()).unwrap_or_default()
    } else if path.starts_with("/task") {
        f.map(|f| f.task.clone()).unwrap_or_default()
    } else if path.starts_with("/token") {
        token.to_string()
    } else {
        "00000000-0000-0000-0000-000000000000".into()
    };
    p = p.replace("{id}", &id);
    if path == "/function/{name}" {
        p = "/function/say::hello".into();
    }
    p
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_answers_each_role_as_specified() {
    let m = common::start_with(|c| {
        c.basic_auth = Some(
            parse_basic_auth(
                "admin:admin-pw,owner:owner-pw,resolver:resolver-pw,requester:requester-pw,\
                 watcher:watcher-pw,stranger:stranger-pw",
            )
            .unwrap(),
        );
        let dir = c.data_dir.join("templates");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("matrix.yaml"), TEMPLATE).unwrap();
        c.templates_dir = dir;
        std::fs::create_dir_all(&c.functions_dir).unwrap();
        std::fs::write(
            c.functions_dir.join("say.yaml"),
            "name: say::hello\naction:\n  type: echo\n  configuration:\n    output: {}\n",
        )
        .unwrap();
    })
    .await;

    // the matrix covers every documented route
    let spec: Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/openapi.json")).unwrap(),
    )
    .unwrap();
    let documented: BTreeSet<(String, String)> = spec["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(p, item)| {
            item.as_object()
                .unwrap()
                .keys()
                .map(move |method| (method.to_uppercase(), p.clone()))
        })
        .collect();
    let covered: BTreeSet<(String, String)> = CASES
        .iter()
        .map(|c| (c.method.to_string(), c.path.to_string()))
        .collect();
    let missing: Vec<_> = documented.difference(&covered).collect();
    assert!(
        missing.is_empty(),
        "routes missing from the role matrix: {missing:?}"
    );

    let shared = fixture(&m, Needs::Resolution).await;
    let mut failures = Vec::new();
    let mut calls = 0;
    for case in CASES {
        for role in ROLES {
            let writes = case.method != "GET";
            let fresh;
            let f = match (case.needs, writes) {
                (Needs::Nothing, _) => None,
                (_, false) => Some(&shared),
                (needs, true) => {
                    fresh = fixture(&m, needs).await;
                    Some(&fresh)
                }
            };
            // a token to revoke, per call
            let token = if case.path == "/token/{id}" {
                let (_, t) = call(
                    &m,
                    "POST",
                    Some("admin"),
                    "/token",
                    Some(&json!({"name": "t"})),
                )
                .await;
                t["id"].as_str().unwrap().to_string()
            } else {
                String::new()
            };
            let path = concrete(case.path, f, &token);
            let body = if case.path == "/resolution" {
                Some(json!({"task_id": f.unwrap().task}))
            } else {
                (case.body)()
            };
            let (status, answer) = call(&m, case.method, role.user(), &path, body.as_ref()).await;
            calls += 1;
            let expected_ok = match case.who {
                Who::Public => true,
                Who::Anyone => role != Anonymous,
                Who::Only(roles) => roles.contains(&role),
                Who::BySignature => false,
            };
            let ok = if matches!(case.who, Who::BySignature) {
                status == 401
            } else if expected_ok {
                status != 401 && status != 403 && status < 500
            } else if role == Anonymous {
                status == 401
            } else {
                status == 403
            };
            if !ok {
                failures.push(format!(
                    "{} {} as {role:?}: {status} (expected {}) {answer}",
                    case.method,
                    case.path,
                    if expected_ok {
                        "allowed".to_string()
                    } else if role == Anonymous {
                        "401".into()
                    } else {
                        "403".into()
                    }
                ));
            }
        }
    }
    assert!(calls >= CASES.len() * ROLES.len());
    assert!(
        failures.is_empty(),
        "{} wrong answers:\n{}",
        failures.len(),
        failures.join("\n")
    );
    m.stop().await;
}

/// Row counts of the tables a write route may change.
async fn counts(m: &common::Instance) -> Vec<i64> {
    let mut out = Vec::new();
    for t in [
        "task",
        "resolution",
        "step",
        "task_comment",
        "batch",
        "api_token",
        "template",
    ] {
        let n: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT count(*) FROM {t}")))
            .fetch_one(&m.running.state.store.pool)
            .await
            .unwrap();
        out.push(n);
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_bodies_on_every_write_route_get_4xx_and_change_nothing() {
    let m = common::start_with(|c| {
        c.max_body_bytes = 4096;
        c.basic_auth = Some(
            parse_basic_auth(
                "admin:admin-pw,owner:owner-pw,resolver:resolver-pw,requester:requester-pw,\
                 watcher:watcher-pw,stranger:stranger-pw",
            )
            .unwrap(),
        );
        let dir = c.data_dir.join("templates");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("matrix.yaml"), TEMPLATE).unwrap();
        c.templates_dir = dir;
    })
    .await;
    let f = fixture(&m, Needs::Resolution).await;
    let bodies: Vec<(&str, &str, Vec<u8>)> = vec![
        ("malformed JSON", "application/json", b"{\"task_id\": ".to_vec()),
        ("malformed YAML", "application/x-yaml", b"a: [1, 2\nb: {".to_vec()),
        ("an array", "application/json", b"[1, 2, 3]".to_vec()),
        ("a string", "application/json", b"\"hello\"".to_vec()),
        ("wrong field types", "application/json",
            br#"{"template_name": 42, "input": "x", "task_id": [], "content": {}, "name": 1, "state": [], "steps": 7, "resolver_inputs": "y"}"#.to_vec()),
        ("deep nesting", "application/json",
            format!("{}{}", "[".repeat(5000), "]".repeat(5000)).into_bytes()),
        ("an oversized body", "application/json",
            format!("{{\"content\": \"{}\"}}", "x".repeat(10_000)).into_bytes()),
        ("XML", "application/xml", b"<task/>".to_vec()),
        ("invalid UTF-8", "application/json", vec![b'{', b'"', 0xff, 0xfe, b'"', b'}']),
    ];
    let before = counts(&m).await;
    let mut failures = Vec::new();
    for case in CASES.iter().filter(|c| matches!(c.method, "POST" | "PUT")) {
        if case.path == "/key-rotate"
            || case.path.contains("/run")
            || case.path.contains("/pause")
            || case.path.contains("/extend")
            || case.path.contains("/cancel")
            || case.path.contains("/wontfix")
            || case.path.contains("/resume")
        {
            continue; // no body
        }
        let path = concrete(case.path, Some(&f), "");
        for (what, ct, body) in &bodies {
            let r = m
                .client
                .request(
                    reqwest::Method::from_bytes(case.method.as_bytes()).unwrap(),
                    m.url(&path),
                )
                .basic_auth("admin", Some("admin-pw"))
                .header("content-type", *ct)
                .body(body.clone())
                .send()
                .await
                .unwrap();
            let status = r.status().as_u16();
            let text = r.text().await.unwrap_or_default();
            let message_ok = serde_json::from_str::<Value>(&text)
                .ok()
                .and_then(|v| v["error"]["message"].as_str().map(|s| !s.is_empty()))
                .unwrap_or(false);
            if !(400..500).contains(&status) || !message_ok {
                failures.push(format!(
                    "{} {} with {what}: {status} {text}",
                    case.method, case.path
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert_eq!(
        counts(&m).await,
        before,
        "a rejected request changed the database"
    );
    m.stop().await;
}
