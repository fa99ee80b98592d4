//! The task list (types, filters, keyset pagination with `link` headers), batches, task edits
//! (PUT, WONTFIX, DELETE), `/meta`, `/` and `/unsecured/stats` over HTTP against a real
//! PostgreSQL.

use crate::common;

use std::collections::HashSet;

use mutask::config::parse_basic_auth;
use reqwest::header::HeaderMap;
use serde_json::{Value, json};

async fn start() -> common::Instance {
    common::start_with(|c| {
        c.basic_auth = Some(
            parse_basic_auth("admin:admin-pw,alice:alice-pw,bob:bob-pw,carol:carol-pw").unwrap(),
        )
    })
    .await
}

async fn call_h(
    m: &common::Instance,
    method: &str,
    user: Option<&str>,
    path: &str,
    body: Option<&Value>,
) -> (u16, HeaderMap, Value) {
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
    let headers = resp.headers().clone();
    let text = resp.text().await.unwrap();
    (
        status,
        headers,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

async fn call(
    m: &common::Instance,
    method: &str,
    user: Option<&str>,
    path: &str,
    body: Option<&Value>,
) -> (u16, Value) {
    let (s, _, v) = call_h(m, method, user, path, body).await;
    (s, v)
}

fn ids(list: &Value) -> Vec<String> {
    list.as_array()
        .unwrap_or_else(|| panic!("not a list: {list}"))
        .iter()
        .map(|t| t["id"].as_str().unwrap().to_string())
        .collect()
}

fn message(e: &Value) -> &str {
    e["error"]["message"].as_str().unwrap_or_default()
}

async fn deploy(m: &common::Instance, user: &str, service: &str, extra: Value) -> String {
    let mut body = json!({"template_name": "deploy-approval",
                          "input": {"service": service, "environment": "staging"}});
    if let (Value::Object(b), Value::Object(e)) = (&mut body, extra) {
        b.extend(e);
    }
    let (s, t) = m.post(user, "/task", &body).await;
    assert_eq!(s, 201, "{t}");
    t["id"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn pages_of_ten_walk_every_task_exactly_once() {
    let m = start().await;
    let mut created = HashSet::new();
    for i in 0..25 {
        created.insert(deploy(&m, "alice", &format!("svc-{i}"), json!({})).await);
    }
    let mut seen = Vec::new();
    let mut next = Some("/task?page_size=10".to_string());
    let mut pages = 0;
    let mut last_activity: Option<String> = None;
    while let Some(path) = next.take() {
        pages += 1;
        let (s, h, list) = call_h(&m, "GET", Some("alice"), &path, None).await;
        assert_eq!(s, 200, "{list}");
        assert_eq!(h["x-paging-pagesize"], "10");
        for t in list.as_array().unwrap() {
            let at = t["last_activity"].as_str().unwrap().to_string();
            if let Some(prev) = &last_activity {
                assert!(
                    chrono::DateTime::parse_from_rfc3339(&at).unwrap()
                        <= chrono::DateTime::parse_from_rfc3339(prev).unwrap(),
                    "newest activity first"
                );
            }
            last_activity = Some(at);
            assert!(t.get("input").is_none(), "the list carries no inputs");
            assert!(t["title"].as_str().unwrap().starts_with("Deploy svc-"));
        }
        seen.extend(ids(&list));
        if let Some(link) = h.get("link") {
            let link = link.to_str().unwrap();
            assert!(link.ends_with("; rel=\"next\""), "{link}");
            let url = &link[link.find('<').unwrap() + 1..link.find('>').unwrap()];
            assert!(
                url.contains("page_size=10") && url.contains("last="),
                "{url}"
            );
            next = Some(url.to_string());
        }
        assert!(pages <= 3, "too many pages");
    }
    assert_eq!(pages, 3);
    assert_eq!(seen.len(), 25, "every task exactly once");
    assert_eq!(seen.iter().cloned().collect::<HashSet<_>>(), created);

    // page sizes are clamped, bad ones named
    let (_, h, list) = call_h(&m, "GET", Some("alice"), "/task?page_size=3", None).await;
    assert_eq!(
        (h["x-paging-pagesize"].to_str().unwrap(), ids(&list).len()),
        ("10", 10)
    );
    let (_, h, list) = call_h(&m, "GET", Some("alice"), "/task?page_size=99999", None).await;
    assert_eq!(h["x-paging-pagesize"], "10000");
    assert_eq!(ids(&list).len(), 25);
    assert!(h.get("link").is_none(), "no next page");
    let (_, h, _) = call_h(&m, "GET", Some("alice"), "/task", None).await;
    assert_eq!(h["x-paging-pagesize"], "1000");
    let (s, e) = call(&m, "GET", Some("alice"), "/task?page_size=ten", None).await;
    assert_eq!(s, 400);
    assert!(message(&e).contains("page_size"), "{e}");
    let (s, e) = call(&m, "GET", Some("alice"), "/task?last=nope", None).await;
    assert_eq!(
        (s, message(&e).contains("not a valid task id")),
        (400, true),
        "{e}"
    );
    let (s, e) = call(
        &m,
        "GET",
        Some("alice"),
        &format!("/task?last={}", uuid::Uuid::now_v7()),
        None,
    )
    .await;
    assert_eq!((s, message(&e).contains("`last`")), (400, true), "{e}");
    assert_eq!(call(&m, "GET", None, "/task", None).await.0, 401);
    m.stop().await;
}

#[tokio::test]
async fn list_types_and_filters() {
    let m = start().await;
    let own = deploy(&m, "alice", "own", json!({"tags": {"team": "pay"}})).await;
    let watched = deploy(
        &m,
        "bob",
        "watched",
        json!({"watcher_usernames": ["alice"]}),
    )
    .await;
    let resolvable = deploy(
        &m,
        "admin",
        "resolvable",
        json!({"resolver_usernames": ["alice"]}),
    )
    .await;
    let (s, hello) = m
        .post("carol", "/task", &json!({"template_name": "hello-world", "input": {"name": "Carol"}, "tags": {"team": "pay"}}))
        .await;
    assert_eq!(s, 201);
    let hello = hello["id"].as_str().unwrap().to_string();
    let set = |v: Vec<String>| v.into_iter().collect::<HashSet<_>>();
    let hs = |v: &[&String]| v.iter().map(|s| s.to_string()).collect::<HashSet<_>>();

    let (s, l) = call(&m, "GET", Some("alice"), "/task", None).await;
    assert_eq!(s, 200);
    assert_eq!(
        set(ids(&l)),
        hs(&[&own, &watched]),
        "own = requested or watched"
    );
    let (_, l) = call(&m, "GET", Some("alice"), "/task?type=resolvable", None).await;
    assert_eq!(set(ids(&l)), hs(&[&resolvable]));
    let (_, l) = call(&m, "GET", Some("alice"), "/task?type=all", None).await;
    assert_eq!(
        set(ids(&l)),
        hs(&[&own, &watched, &resolvable]),
        "non-admin all = own or resolvable"
    );
    let (_, l) = call(&m, "GET", Some("admin"), "/task?type=all", None).await;
    assert_eq!(set(ids(&l)), hs(&[&own, &watched, &resolvable, &hello]));
    // admin owns deploy-approval (allowed_resolver_usernames); allow_all_resolver_usernames
    // (hello-world) does not list a task as resolvable (µTask)
    let (_, l) = call(&m, "GET", Some("bob"), "/task?type=resolvable", None).await;
    assert!(ids(&l).is_empty(), "{l}");
    let (_, l) = call(&m, "GET", Some("admin"), "/task?type=resolvable", None).await;
    assert_eq!(set(ids(&l)), hs(&[&own, &watched, &resolvable]));
    let (s, e) = call(&m, "GET", Some("alice"), "/task?type=mine", None).await;
    assert_eq!(
        (s, message(&e).contains("Unknown type for listing: 'mine'")),
        (400, true),
        "{e}"
    );

    // filters
    let (_, l) = call(
        &m,
        "GET",
        Some("admin"),
        "/task?type=all&template=Hello-World",
        None,
    )
    .await;
    assert_eq!(ids(&l), vec![hello.clone()]);
    let (_, l) = call(
        &m,
        "GET",
        Some("admin"),
        "/task?type=all&tag=team=pay",
        None,
    )
    .await;
    assert_eq!(set(ids(&l)), hs(&[&own, &hello]));
    let (_, l) = call(
        &m,
        "GET",
        Some("admin"),
        "/task?type=all&tag=team=pay&tag=other=x",
        None,
    )
    .await;
    assert!(ids(&l).is_empty(), "every tag must match");
    let (_, l) = call(&m, "GET", Some("admin"), "/task?type=all&state=TODO", None).await;
    assert_eq!(set(ids(&l)), hs(&[&own, &watched, &resolvable]));
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    let (_, l) = call(
        &m,
        "GET",
        Some("admin"),
        &format!("/task?type=all&state=TODO&before={}", urlencode(&now)),
        None,
    )
    .await;
    assert_eq!(ids(&l).len(), 3);
    let (_, l) = call(
        &m,
        "GET",
        Some("admin"),
        &format!("/task?type=all&state=TODO&after={}", urlencode(&now)),
        None,
    )
    .await;
    assert!(ids(&l).is_empty());
    for (q, needle) in [
        ("state=NOPE", "unknown task state `NOPE`"),
        ("tag=team", "invalid tag `team`"),
        ("after=yesterday", "`after` must be an RFC 3339 time"),
        ("before=1", "`before` must be an RFC 3339 time"),
        ("batch=12", "not a valid batch id"),
        ("template=a%00b", "NUL"),
    ] {
        let (s, e) = call(&m, "GET", Some("admin"), &format!("/task?{q}"), None).await;
        assert_eq!(s, 400, "{q}: {e}");
        assert!(message(&e).contains(needle), "{q}: {e}");
    }
    m.stop().await;
}

fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

#[tokio::test]
async fn batches_are_all_or_nothing() {
    let m = start().await;
    let store = m.running.state.store.clone();
    let body = json!({"template_name": "deploy-approval", "common_input": {"environment": "staging"},
                      "inputs": [{"service": "a"}, {"service": "b"}, {"service": "c"}],
                      "comment": "batch!", "watcher_usernames": ["bob"], "tags": {"wave": "1"}});
    assert_eq!(call(&m, "POST", None, "/batch", Some(&body)).await.0, 401);
    let (s, b) = call(&m, "POST", Some("alice"), "/batch", Some(&body)).await;
    assert_eq!(s, 201, "{b}");
    let bid = b["id"].as_str().unwrap().to_string();
    assert_eq!(b["tasks"].as_array().unwrap().len(), 3);
    let (_, l) = call(&m, "GET", Some("bob"), &format!("/task?batch={bid}"), None).await;
    assert_eq!(ids(&l).len(), 3, "{l}");
    for t in l.as_array().unwrap() {
        assert_eq!(t["batch"], bid.as_str());
        assert_eq!(t["tags"]["wave"], "1");
        assert_eq!(t["requester_username"], "alice");
    }
    let first = &ids(&l)[0];
    let (_, notes) = call(
        &m,
        "GET",
        Some("alice"),
        &format!("/task/{first}/comment"),
        None,
    )
    .await;
    assert_eq!(notes[0]["content"], "batch!");

    let before = mutask::store::task::count(&store).await.unwrap();
    let cases = [
        (
            json!({"template_name": "deploy-approval", "common_input": {"environment": "staging"},
                "inputs": [{"service": "ok"}, {"service": "Bad Name!"}, {"environment": "prod"}]}),
            422,
            vec![
                "inputs[1].service",
                "inputs[2].environment", // conflicting keys
                "inputs[2].service",
                "inputs[2].environment", // and not a legal value
            ],
        ),
        (
            json!({"template_name": "deploy-approval", "common_input": {"environment": "staging"},
                "inputs": [{"service": "x", "environment": "production"}]}),
            422,
            vec!["inputs[0].environment"],
        ),
        (
            json!({"template_name": "deploy-approval", "inputs": []}),
            422,
            vec!["inputs"],
        ),
        (
            json!({"template_name": "deploy-approval", "inputs": [{"service": "x", "environment": "staging"}],
                "tags": {"_utask_parent_task_id": "x"}}),
            422,
            vec!["tags._utask_parent_task_id"],
        ),
        (
            json!({"template_name": "nope", "inputs": [{}]}),
            404,
            vec![],
        ),
        (json!({"inputs": [{}]}), 400, vec![]),
    ];
    for (body, status, fields) in cases {
        let (s, e) = call(&m, "POST", Some("alice"), "/batch", Some(&body)).await;
        assert_eq!(s, status, "{body} -> {e}");
        let got: Vec<&str> = e["error"]["fields"]
            .as_array()
            .map(|f| f.iter().map(|f| f["field"].as_str().unwrap()).collect())
            .unwrap_or_default();
        assert_eq!(got, fields, "{e}");
    }
    assert_eq!(
        mutask::store::task::count(&store).await.unwrap(),
        before,
        "nothing stored"
    );
    m.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edit_wontfix_and_delete_tasks() {
    let m = start().await;
    let tid = deploy(
        &m,
        "alice",
        "svc",
        json!({"input": {"service": "svc", "environment": "staging", "api_token": "s3cret"},
               "watcher_usernames": ["bob"], "tags": {"team": "pay"}}),
    )
    .await;
    let path = format!("/task/{tid}");
    let edit = json!({"input": {"service": "svc2", "environment": "production", "api_token": "**__SECRET__**"}});
    assert_eq!(call(&m, "PUT", None, &path, Some(&edit)).await.0, 401);
    for user in ["carol", "bob"] {
        let (s, e) = call(&m, "PUT", Some(user), &path, Some(&edit)).await;
        assert_eq!((s, message(&e)), (403, "Can't update task"), "{user}");
    }
    let (s, t) = call(&m, "PUT", Some("alice"), &path, Some(&edit)).await;
    assert_eq!(s, 200, "{t}");
    assert_eq!(t["title"], "Deploy svc2 to production");
    assert_eq!(t["input"]["api_token"], "**__SECRET__**");
    assert_eq!(t["tags"]["team"], "pay", "tags kept when not given");
    let (_, t) = m.get("admin", &path).await;
    assert_eq!(
        t["input"]["api_token"], "s3cret",
        "a masked secret sent back keeps the stored one"
    );
    let (s, e) = call(
        &m,
        "PUT",
        Some("alice"),
        &path,
        Some(&json!({"input": {"service": "Bad Name"}})),
    )
    .await;
    assert_eq!(s, 422, "{e}");
    let fields: Vec<&str> = e["error"]["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["input.service", "input.environment"]);
    let (s, e) = call(
        &m,
        "PUT",
        Some("alice"),
        &path,
        Some(&json!({"tags": {"_utask_parent_task_id": "x"}})),
    )
    .await;
    assert_eq!((s, message(&e).contains("read-only")), (422, true), "{e}");
    let (s, e) = call(
        &m,
        "PUT",
        Some("alice"),
        &path,
        Some(&json!({"watcher_usernames": [""]})),
    )
    .await;
    assert_eq!(
        (s, e["error"]["fields"][0]["field"].as_str()),
        (422, Some("watcher_usernames[0]"))
    );
    assert_eq!(call(&m, "GET", Some("carol"), &path, None).await.0, 403);
    let (s, t) = call(
        &m,
        "PUT",
        Some("alice"),
        &path,
        Some(&json!({"watcher_usernames": ["carol"], "tags": {"team": "ops"}})),
    )
    .await;
    assert_eq!(s, 200, "{t}");
    assert_eq!(
        (t["watcher_usernames"].clone(), t["tags"].clone()),
        (json!(["carol"]), json!({"team": "ops"}))
    );
    assert_eq!(
        call(&m, "GET", Some("carol"), &path, None).await.0,
        200,
        "the new watcher reads it"
    );
    let (_, notes) = call(&m, "GET", Some("alice"), &format!("{path}/comment"), None).await;
    assert!(
        notes
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["content"] == "manually updated task")
    );

    // wontfix: admin, requester or manager; TODO tasks only
    let wf = format!("{path}/wontfix");
    let (s, e) = call(&m, "POST", Some("carol"), &wf, None).await;
    assert_eq!((s, message(&e)), (403, "Can't set task's state to WONTFIX"));
    assert_eq!(call(&m, "POST", Some("alice"), &wf, None).await.0, 204);
    let (_, t) = m.get("admin", &path).await;
    assert_eq!(t["state"], "WONTFIX");
    let (s, e) = call(&m, "POST", Some("alice"), &wf, None).await;
    assert_eq!(
        (s, message(&e)),
        (
            400,
            "Can't set task's state to WONTFIX: task is in state WONTFIX"
        )
    );

    // delete: admins only, not while RUNNING or BLOCKED
    let (s, e) = call(&m, "DELETE", Some("alice"), &path, None).await;
    assert_eq!(s, 403, "{e}");
    assert_eq!(call(&m, "DELETE", Some("admin"), &path, None).await.0, 204);
    assert_eq!(call(&m, "GET", Some("admin"), &path, None).await.0, 404);
    assert_eq!(call(&m, "DELETE", Some("admin"), &path, None).await.0, 404);
    assert_eq!(
        call(&m, "DELETE", Some("admin"), "/task/nope", None)
            .await
            .0,
        400
    );

    // a task whose resolution is not PAUSED cannot be edited; a BLOCKED one cannot be deleted
    let (s, t) = m
        .post(
            "alice",
            "/task",
            &json!({"template_name": "wait-for-callback", "input": {"system": "ci"}}),
        )
        .await;
    assert_eq!(s, 201, "{t}");
    let wid = t["id"].as_str().unwrap().to_string();
    let rid: mutask::domain::ResolutionId = t["resolution"].as_str().unwrap().parse().unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let (_, t) = m.get("admin", &format!("/task/{wid}")).await;
        if t["state"] == "WAITING" {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{t}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let wpath = format!("/task/{wid}");
    let (s, e) = call(
        &m,
        "PUT",
        Some("admin"),
        &wpath,
        Some(&json!({"tags": {"a": "b"}})),
    )
    .await;
    assert_eq!(
        (s, message(&e).contains("not in state 'PAUSED'")),
        (400, true),
        "{e}"
    );
    let (s, e) = call(
        &m,
        "PUT",
        Some("alice"),
        &wpath,
        Some(&json!({"tags": {"a": "b"}})),
    )
    .await;
    assert_eq!(
        s, 403,
        "a requester edits only before a resolution exists: {e}"
    );
    let (s, e) = call(&m, "POST", Some("alice"), &format!("{wpath}/wontfix"), None).await;
    assert_eq!(
        (s, message(&e).contains("task is in state WAITING")),
        (400, true),
        "{e}"
    );
    let store = m.running.state.store.clone();
    mutask::store::resolution::set_task_state_for(&store, rid, mutask::domain::TaskState::Blocked)
        .await
        .unwrap();
    let (s, e) = call(&m, "DELETE", Some("admin"), &wpath, None).await;
    assert_eq!(
        (s, message(&e)),
        (400, "Task can't be deleted while in state \"BLOCKED\"")
    );
    // once paused, an admin (or template owner) may edit it
    assert_eq!(
        call(
            &m,
            "POST",
            Some("admin"),
            &format!("/resolution/{rid}/pause"),
            None
        )
        .await
        .0,
        204
    );
    let (s, t) = call(
        &m,
        "PUT",
        Some("admin"),
        &wpath,
        Some(&json!({"tags": {"a": "b"}})),
    )
    .await;
    assert_eq!((s, t["tags"]["a"].as_str()), (200, Some("b")), "{t}");
    m.stop().await;
}

#[tokio::test]
async fn meta_root_and_stats() {
    let m = start().await;
    let (s, meta) = call(&m, "GET", Some("alice"), "/meta", None).await;
    assert_eq!(s, 200);
    assert_eq!(meta["application_name"], "mutask");
    assert_eq!(meta["username"], "alice");
    assert_eq!(meta["user_is_admin"], false);
    assert_eq!(meta["user_groups"], json!([]));
    assert!(meta["version"].is_string() && meta["commit"].is_string());
    let (_, meta) = call(&m, "GET", Some("admin"), "/meta", None).await;
    assert_eq!(meta["user_is_admin"], true);
    assert_eq!(call(&m, "GET", None, "/meta", None).await.0, 401);
    let no_redirect = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let r = no_redirect
        .get(m.url("/"))
        .basic_auth("alice", Some("alice-pw"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 301);
    assert_eq!(r.headers()["location"], "/meta");

    deploy(&m, "alice", "a", json!({"tags": {"team": "pay"}})).await;
    deploy(&m, "alice", "b", json!({})).await;
    let (s, stats) = call(&m, "GET", None, "/unsecured/stats", None).await;
    assert_eq!(s, 200, "unauthenticated");
    assert_eq!(stats["task_states"]["TODO"], 2);
    assert_eq!(stats["task_states"]["DONE"], 0, "every state is listed");
    let (_, stats) = call(&m, "GET", None, "/unsecured/stats?tag=team=pay", None).await;
    assert_eq!(stats["task_states"]["TODO"], 1);
    let (s, e) = call(&m, "GET", None, "/unsecured/stats?tag=team", None).await;
    assert_eq!((s, message(&e).contains("invalid tag")), (400, true), "{e}");
    m.stop().await;
}

#[tokio::test]
async fn title_search_and_counts_follow_the_callers_view() {
    let m = start().await;
    // 30 of alice's tasks, 3 of them with "Payments" in the title; bob has 2 of his own
    let mut pay = HashSet::new();
    for i in 0..30 {
        let service = if i % 10 == 3 {
            format!("payments-{i}")
        } else {
            format!("svc-{i}")
        };
        let id = deploy(&m, "alice", &service, json!({})).await;
        if service.starts_with("payments") {
            pay.insert(id);
        }
    }
    let bob_pay = deploy(&m, "bob", "payments-bob", json!({})).await;
    deploy(&m, "bob", "other-bob", json!({})).await;

    // case-insensitive substring, across pages (the matches are spread over 30 tasks)
    let mut seen = Vec::new();
    let mut next = Some("/task?title=PAYMENTS&page_size=10".to_string());
    while let Some(path) = next.take() {
        let (s, h, list) = call_h(&m, "GET", Some("alice"), &path, None).await;
        assert_eq!(s, 200, "{list}");
        seen.extend(ids(&list));
        if let Some(link) = h.get("link") {
            let link = link.to_str().unwrap();
            next = Some(link[link.find('<').unwrap() + 1..link.find('>').unwrap()].to_string());
        }
    }
    assert_eq!(
        seen.iter().cloned().collect::<HashSet<_>>(),
        pay,
        "alice sees her 3"
    );
    assert_eq!(seen.len(), 3);
    let (_, l) = call(
        &m,
        "GET",
        Some("admin"),
        "/task?type=all&title=payments",
        None,
    )
    .await;
    let all: HashSet<String> = ids(&l).into_iter().collect();
    assert_eq!(all.len(), 4, "admin sees bob's too: {l}");
    assert!(all.contains(&bob_pay));
    let (_, l) = call(&m, "GET", Some("alice"), "/task?title=no-such-title", None).await;
    assert!(ids(&l).is_empty());
    let (s, e) = call(
        &m,
        "GET",
        Some("alice"),
        &format!("/task?title={}", "x".repeat(201)),
        None,
    )
    .await;
    assert_eq!((s, message(&e).contains("`title`")), (400, true), "{e}");

    // counts by state: what the caller may list, with the same filters
    let (s, c) = call(&m, "GET", Some("alice"), "/task/count", None).await;
    assert_eq!(s, 200, "{c}");
    assert_eq!(c, json!({"states": {"TODO": 30}, "total": 30}));
    let (_, c) = call(&m, "GET", Some("bob"), "/task/count", None).await;
    assert_eq!(
        c,
        json!({"states": {"TODO": 2}, "total": 2}),
        "bob sees only his"
    );
    let (_, c) = call(&m, "GET", Some("carol"), "/task/count?type=all", None).await;
    assert_eq!(c, json!({"states": {}, "total": 0}));
    let (_, c) = call(&m, "GET", Some("admin"), "/task/count?type=all", None).await;
    assert_eq!(c["total"], 32, "{c}");
    let (_, c) = call(&m, "GET", Some("alice"), "/task/count?title=payments", None).await;
    assert_eq!(c, json!({"states": {"TODO": 3}, "total": 3}));
    let (_, c) = call(&m, "GET", Some("alice"), "/task/count?state=DONE", None).await;
    assert_eq!(c["total"], 0, "{c}");
    for (q, needle) in [
        ("state=NOPE", "unknown task state `NOPE`"),
        ("type=mine", "Unknown type for listing"),
        ("page_size=10", "`page_size`"),
    ] {
        let (s, e) = call(&m, "GET", Some("alice"), &format!("/task/count?{q}"), None).await;
        assert_eq!(s, 400, "{q}: {e}");
        assert!(message(&e).contains(needle), "{q}: {e}");
    }
    m.stop().await;
}
