//! The OpenAPI document stays true: the committed `openapi.json` is what mutask generates and
//! serves, every route the router answers is documented (and nothing else), Swagger UI at
//! `/docs` loads only local assets, and the schemas describe what the handlers really answer.
//!
//! After changing the API: `UPDATE_OPENAPI=1 cargo test --test suite openapi::` rewrites
//! `openapi.json`.

use crate::common;

use std::collections::BTreeSet;
use std::path::PathBuf;

use serde_json::{Value, json};

/// Every route of `mutask::api::router`: (method, OpenAPI path). Keep in step with the router.
const ROUTES: &[(&str, &str)] = &[
    ("get", "/unsecured/mon/ping"),
    ("get", "/unsecured/mon/ready"),
    ("get", "/template"),
    ("get", "/template/{name}"),
    ("put", "/template/{name}"),
    ("get", "/template/schema"),
    ("get", "/template/{name}/version"),
    ("post", "/template/validate"),
    ("post", "/template/plan"),
    ("get", "/resolution/{id}/step/{name}/log"),
    ("get", "/function"),
    ("get", "/action"),
    ("get", "/function/{name}"),
    ("get", "/metrics"),
    ("put", "/resolution/{id}"),
    ("put", "/resolution/{id}/step/{name}"),
    ("post", "/schedule"),
    ("get", "/schedule"),
    ("get", "/schedule/{name}"),
    ("put", "/schedule/{name}"),
    ("delete", "/schedule/{name}"),
    ("post", "/schedule/{name}/pause"),
    ("post", "/schedule/{name}/resume"),
    ("post", "/webhook"),
    ("get", "/webhook"),
    ("get", "/webhook/{name}"),
    ("delete", "/webhook/{name}"),
    ("post", "/webhook/{name}"),
    ("post", "/token"),
    ("get", "/token"),
    ("delete", "/token/{id}"),
    ("get", "/notification"),
    ("post", "/notification/{id}/retry"),
    ("post", "/task"),
    ("get", "/task"),
    ("get", "/task/count"),
    ("get", "/task/{id}"),
    ("put", "/task/{id}"),
    ("delete", "/task/{id}"),
    ("post", "/task/{id}/wontfix"),
    ("post", "/task/{id}/comment"),
    ("get", "/task/{id}/comment"),
    ("get", "/task/{id}/comment/{commentid}"),
    ("put", "/task/{id}/comment/{commentid}"),
    ("delete", "/task/{id}/comment/{commentid}"),
    ("post", "/batch"),
    ("post", "/resolution"),
    ("get", "/resolution/{id}"),
    ("post", "/resolution/{id}/run"),
    ("post", "/resolution/{id}/pause"),
    ("post", "/resolution/{id}/extend"),
    ("post", "/resolution/{id}/cancel"),
    ("get", "/resolution/{id}/step/{name}"),
    ("get", "/resolution/{id}/step/{name}/configuration"),
    ("put", "/resolution/{id}/step/{name}/state"),
    ("get", "/"),
    ("get", "/meta"),
    ("post", "/key-rotate"),
    ("get", "/key-rotate"),
    ("get", "/unsecured/stats"),
    ("post", "/unsecured/callback/{id}"),
    ("get", "/unsecured/spec.json"),
    ("get", "/docs"),
    ("get", "/docs/"),
    ("get", "/docs/{file}"),
    ("get", "/ui"),
    ("get", "/ui/"),
    ("get", "/ui/{path}"),
];

const METHODS: &[&str] = &["get", "put", "post", "delete", "patch", "head", "options"];

fn snapshot_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("openapi.json")
}

fn generated() -> String {
    mutask::api::openapi::spec_json().expect("the spec serializes") + "\n"
}

fn committed() -> Value {
    let text = std::fs::read_to_string(snapshot_path()).expect("openapi.json is committed");
    serde_json::from_str(&text).expect("openapi.json is JSON")
}

#[test]
fn committed_snapshot_is_current() {
    let fresh = generated();
    if std::env::var_os("UPDATE_OPENAPI").is_some_and(|v| !v.is_empty() && v != "0") {
        std::fs::write(snapshot_path(), &fresh).unwrap();
        return;
    }
    let old = std::fs::read_to_string(snapshot_path()).unwrap_or_default();
    if old != fresh {
        let first = old
            .lines()
            .zip(fresh.lines())
            .position(|(a, b)| a != b)
            .map(|i| i + 1)
            .unwrap_or(old.lines().count().min(fresh.lines().count()) + 1);
        panic!(
            "openapi.json is out of date with the code (first difference at line {first}).\n\
             Review the API change, then update the snapshot with:\n\
             \n    UPDATE_OPENAPI=1 cargo test --test suite openapi::\n"
        );
    }
}

/// (method, path) of every operation in a spec.
fn operations(spec: &Value) -> BTreeSet<(String, String)> {
    let mut ops = BTreeSet::new();
    for (path, item) in spec["paths"].as_object().expect("paths") {
        for m in METHODS {
            if item.get(*m).is_some() {
                ops.insert((m.to_string(), path.clone()));
            }
        }
    }
    ops
}

#[test]
fn spec_is_openapi_31_and_documents_every_route() {
    let spec: Value = serde_json::from_str(&generated()).unwrap();
    assert!(
        spec["openapi"].as_str().unwrap().starts_with("3.1"),
        "{}",
        spec["openapi"]
    );
    assert!(ROUTES.len() >= 30, "only {} routes listed", ROUTES.len());
    let listed: BTreeSet<(String, String)> = ROUTES
        .iter()
        .map(|(m, p)| (m.to_string(), p.to_string()))
        .collect();
    assert_eq!(listed.len(), ROUTES.len(), "a route is listed twice");
    let documented = operations(&spec);
    let missing: Vec<_> = listed.difference(&documented).collect();
    let unknown: Vec<_> = documented.difference(&listed).collect();
    assert!(
        missing.is_empty(),
        "routes missing from the spec: {missing:?}"
    );
    assert!(unknown.is_empty(), "documented but not routed: {unknown:?}");

    let mut ids = BTreeSet::new();
    for (method, path) in &documented {
        let op = &spec["paths"][path][method];
        let id = op["operationId"].as_str().expect("operationId");
        assert!(ids.insert(id.to_string()), "operationId {id} used twice");
        assert!(
            op["tags"].as_array().is_some_and(|t| !t.is_empty()),
            "{method} {path}: no tag"
        );
        assert!(
            op["summary"].as_str().is_some(),
            "{method} {path}: no summary"
        );
        let responses = op["responses"].as_object().unwrap();
        assert!(
            responses
                .keys()
                .any(|s| s.starts_with('2') || s.starts_with('3')),
            "{method} {path}: no success response"
        );
        let secured = !path.starts_with("/unsecured/")
            && !path.starts_with("/docs")
            && !path.starts_with("/ui")
            && path != "/metrics"
            && (method.as_str(), path.as_str()) != ("post", "/webhook/{name}");
        assert_eq!(
            op["security"].is_array(),
            secured,
            "{method} {path}: security"
        );
        if secured {
            assert!(responses.contains_key("401"), "{method} {path}: no 401");
        }
        // a route that can fail inside (the database) can also find the database away: the
        // shared 503, or its own that says more (`POST /template/plan`: the sandbox too)
        if responses.contains_key("500") {
            assert!(responses.contains_key("503"), "{method} {path}: no 503");
        }
        if op.get("requestBody").is_some() {
            let content = op["requestBody"]["content"].as_object().unwrap();
            assert!(
                content.contains_key("application/json")
                    && content.contains_key("application/x-yaml")
            );
            assert!(responses.contains_key("413") && responses.contains_key("415"));
        }
        // every path parameter is declared
        for name in path.split('{').skip(1).filter_map(|s| s.split('}').next()) {
            let declared = op["parameters"]
                .as_array()
                .is_some_and(|ps| ps.iter().any(|p| p["name"] == name && p["in"] == "path"));
            assert!(
                declared,
                "{method} {path}: path parameter {name} undeclared"
            );
        }
    }
    // every reference resolves
    let text = spec.to_string();
    for r in text.split("\"$ref\":\"").skip(1) {
        let r = &r[..r.find('"').unwrap()];
        let pointer = r.strip_prefix('#').expect("local reference");
        assert!(spec.pointer(pointer).is_some(), "dangling reference {r}");
    }
    let unavailable = &spec["components"]["responses"]["Unavailable"];
    assert!(
        unavailable["headers"]["Retry-After"].is_object(),
        "{unavailable}"
    );
    for scheme in ["basic_auth", "proxy_user"] {
        assert!(spec["components"]["securitySchemes"][scheme].is_object());
    }
}

/// A request to `path` (OpenAPI form) with made-up parameters; true when the router answered it
/// (anything but its fallback 404 or a 405).
async fn router_answers(m: &common::Instance, method: &str, path: &str) -> bool {
    let concrete = path
        .replace("{id}", "0190c3a4-7d1e-7c6a-9a51-3c2d1e0f4b5a")
        .replace("{commentid}", "0190c3a4-7d1e-7c6a-9a51-3c2d1e0f4b5b")
        .replace("{name}", "no-such-name")
        .replace("{file}", "index.css");
    let method = reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
    let no_redirect = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let mut req = no_redirect
        .request(method.clone(), m.url(&concrete))
        .basic_auth("admin", Some("admin-pw"));
    if method == reqwest::Method::POST || method == reqwest::Method::PUT {
        req = req.header("content-type", "application/json").body("{}");
    }
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    let body: Value = r.json().await.unwrap_or(Value::Null);
    let fallback = status == 404 && body["error"]["message"] == "no such route";
    !(fallback || status == 405)
}

/// Checks that `value` has every required key of `schema` and no key it does not describe,
/// recursively through references, `allOf`, objects, maps and arrays.
fn check(spec: &Value, schema: &Value, value: &Value, at: &str) {
    if let Some(r) = schema["$ref"].as_str() {
        let target = spec.pointer(r.strip_prefix('#').unwrap()).unwrap();
        return check(spec, target, value, at);
    }
    if value.is_null() {
        return;
    }
    if let Some(alternatives) = schema["oneOf"].as_array() {
        // Option<T>: null or T
        let not_null: Vec<&Value> = alternatives
            .iter()
            .filter(|a| a["type"] != "null")
            .collect();
        assert_eq!(not_null.len(), 1, "{at}: unexpected oneOf {schema}");
        return check(spec, not_null[0], value, at);
    }
    if let Some(all) = schema["allOf"].as_array() {
        // flattened structs: the union of the parts' properties
        let mut merged = json!({"type": "object", "properties": {}, "required": []});
        for part in all {
            let part = match part["$ref"].as_str() {
                Some(r) => spec.pointer(r.strip_prefix('#').unwrap()).unwrap().clone(),
                None => part.clone(),
            };
            if let Some(p) = part["properties"].as_object() {
                merged["properties"]
                    .as_object_mut()
                    .unwrap()
                    .extend(p.clone());
            }
            if let Some(r) = part["required"].as_array() {
                merged["required"].as_array_mut().unwrap().extend(r.clone());
            }
            if !part["additionalProperties"].is_null() {
                merged["additionalProperties"] = part["additionalProperties"].clone();
            }
        }
        return check(spec, &merged, value, at);
    }
    if let (Some(items), Some(values)) = (schema.get("items"), value.as_array()) {
        for (i, v) in values.iter().enumerate() {
            check(spec, items, v, &format!("{at}[{i}]"));
        }
        return;
    }
    let Some(object) = value.as_object() else {
        return;
    };
    let properties = schema["properties"].as_object();
    for key in schema["required"].as_array().into_iter().flatten() {
        let key = key.as_str().unwrap();
        assert!(
            object.contains_key(key),
            "{at}: required `{key}` missing in {value}"
        );
    }
    for (k, v) in object {
        match properties.and_then(|p| p.get(k)) {
            Some(s) => check(spec, s, v, &format!("{at}.{k}")),
            None => match schema.get("additionalProperties") {
                Some(extra) if extra.is_object() => check(spec, extra, v, &format!("{at}.{k}")),
                Some(Value::Bool(true)) => {}
                _ if properties.is_none() => {}
                _ => panic!("{at}: `{k}` is not in the schema"),
            },
        }
    }
}

/// The 200/201 body schema of an operation.
fn answer_schema<'a>(spec: &'a Value, method: &str, path: &str, status: &str) -> &'a Value {
    &spec["paths"][path][method]["responses"][status]["content"]["application/json"]["schema"]
}

#[tokio::test]
async fn served_spec_routes_docs_and_answers() {
    let m = common::start().await;
    let committed = committed();

    // the served document is the committed one, without credentials
    let r = m
        .client
        .get(m.url("/unsecured/spec.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json")
    );
    let served: Value = r.json().await.unwrap();
    assert!(served["openapi"].as_str().unwrap().starts_with("3.1"));
    assert_eq!(
        served, committed,
        "the served spec differs from openapi.json: UPDATE_OPENAPI=1 cargo test --test suite openapi::"
    );

    // every listed route is answered by the router; an unlisted one is not
    for (method, path) in ROUTES {
        assert!(
            router_answers(&m, method, path).await,
            "the router does not answer {method} {path}"
        );
    }
    assert!(!router_answers(&m, "get", "/no/such/route").await);
    assert!(!router_answers(&m, "patch", "/task/{id}").await);

    // Swagger UI: /docs → /docs/, an HTML page whose assets are all local
    let no_redirect = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let r = no_redirect.get(m.url("/docs")).send().await.unwrap();
    assert!(r.status().is_redirection(), "{}", r.status());
    assert_eq!(r.headers()["location"], "/docs/");
    let r = m.client.get(m.url("/docs")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let html = r.text().await.unwrap();
    assert!(html.contains("swagger-ui"), "{html}");
    assert!(
        !html.contains("http://") && !html.contains("https://") && !html.contains("src=\"//"),
        "the page refers to another host: {html}"
    );
    let assets = regex::Regex::new(r#"(?:src|href)="([^"]+)""#).unwrap();
    let mut seen = 0;
    for c in assets.captures_iter(&html) {
        let asset = c[1].trim_start_matches("./");
        assert!(!asset.contains(':') && !asset.starts_with('/'), "{asset}");
        let r = m
            .client
            .get(m.url(&format!("/docs/{asset}")))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "/docs/{asset}");
        let body = r.text().await.unwrap();
        if asset == "swagger-initializer.js" {
            assert!(body.contains("/unsecured/spec.json"), "{body}");
            assert!(
                !body.contains("http://") && !body.contains("https://"),
                "{body}"
            );
        }
        seen += 1;
    }
    assert!(
        seen >= 3,
        "expected the page's scripts and styles, found {seen}"
    );

    // the schemas describe what the handlers answer
    let (s, created) = m
        .post(
            "admin",
            "/task",
            &json!({"template_name": "hello-world", "input": {"name": "world"}}),
        )
        .await;
    assert_eq!(s, 201, "{created}");
    check(
        &served,
        answer_schema(&served, "post", "/task", "201"),
        &created,
        "POST /task",
    );
    // (the check itself catches an undocumented or a missing key)
    let task_schema = answer_schema(&served, "post", "/task", "201");
    let mut extra = created.clone();
    extra["undocumented"] = json!(1);
    let mut missing = created.clone();
    missing.as_object_mut().unwrap().remove("title");
    for wrong in [extra, missing] {
        let caught = std::panic::catch_unwind(|| check(&served, task_schema, &wrong, "wrong"));
        assert!(caught.is_err(), "the schema check let {wrong} through");
    }
    let id = created["id"].as_str().unwrap().to_string();
    let (s, body) = m.get("admin", &format!("/task/{id}")).await;
    assert_eq!(s, 200);
    check(
        &served,
        answer_schema(&served, "get", "/task/{id}", "200"),
        &body,
        "GET /task/{id}",
    );
    let (s, body) = m.get("admin", "/task?type=all").await;
    assert_eq!(s, 200);
    assert!(!body.as_array().unwrap().is_empty());
    check(
        &served,
        answer_schema(&served, "get", "/task", "200"),
        &body,
        "GET /task",
    );
    let (s, comment) = m
        .post(
            "admin",
            &format!("/task/{id}/comment"),
            &json!({"content": "hi"}),
        )
        .await;
    assert_eq!(s, 201);
    check(
        &served,
        answer_schema(&served, "post", "/task/{id}/comment", "201"),
        &comment,
        "POST /task/{id}/comment",
    );
    for (path, op) in [
        ("/template", "/template"),
        ("/template/hello-world", "/template/{name}"),
        ("/meta", "/meta"),
        ("/unsecured/stats", "/unsecured/stats"),
        ("/key-rotate", "/key-rotate"),
        (&format!("/task/{id}/comment") as &str, "/task/{id}/comment"),
    ] {
        let (s, body) = m.get("admin", path).await;
        assert_eq!(s, 200, "{path}: {body}");
        check(
            &served,
            answer_schema(&served, "get", op, "200"),
            &body,
            path,
        );
    }
    // the resolution of the auto-run task, once it has one
    let mut resolution = Value::Null;
    for _ in 0..100 {
        let (_, task) = m.get("admin", &format!("/task/{id}")).await;
        if let Some(rid) = task["resolution"].as_str() {
            let (s, body) = m.get("admin", &format!("/resolution/{rid}")).await;
            assert_eq!(s, 200, "{body}");
            resolution = body;
            if resolution["state"] == "DONE" {
                break;
            }
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(
        resolution["steps"]["sayHello"].is_object(),
        "hello-world never got a resolution: {resolution}"
    );
    check(
        &served,
        answer_schema(&served, "get", "/resolution/{id}", "200"),
        &resolution,
        "GET /resolution/{id}",
    );
    // and an error body
    let (s, body) = m.get("alice", "/task/not-a-uuid").await;
    assert_eq!(s, 400);
    check(
        &served,
        answer_schema(&served, "get", "/task/{id}", "400"),
        &body,
        "error body",
    );
    m.stop().await;
}
