//! Task comments over HTTP against a real PostgreSQL: add, list, read, edit and delete, with
//! µTask's roles (readers add and read, authors or admins edit and delete), bad input named,
//! and bodies never stored in clear.

use crate::common;

use mutask::config::parse_basic_auth;
use serde_json::{Value, json};

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
    let text = resp.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

#[tokio::test]
async fn comments_follow_the_task_roles_and_authorship() {
    let m = common::start_with(|c| {
        c.basic_auth = Some(
            parse_basic_auth("admin:admin-pw,alice:alice-pw,bob:bob-pw,carol:carol-pw").unwrap(),
        )
    })
    .await;
    let (s, task) = m
        .post(
            "alice",
            "/task",
            &json!({"template_name": "deploy-approval", "input": {"service": "svc", "environment": "staging"},
                    "watcher_usernames": ["bob"], "comment": "first"}),
        )
        .await;
    assert_eq!(s, 201, "{task}");
    let tid = task["id"].as_str().unwrap().to_string();
    let (_, other) = m
        .post(
            "carol",
            "/task",
            &json!({"template_name": "hello-world", "input": {"name": "Carol"}}),
        )
        .await;
    let other = other["id"].as_str().unwrap().to_string();
    let path = format!("/task/{tid}/comment");
    let canary = format!("CANARY-{}", uuid::Uuid::new_v4().simple());

    // add: requester, watcher, admin; not a stranger nor anonymous
    let (s, a) = call(
        &m,
        "POST",
        Some("alice"),
        &path,
        Some(&json!({"content": format!("from alice {canary}")})),
    )
    .await;
    assert_eq!(s, 201, "{a}");
    assert_eq!(a["username"], "alice");
    assert_eq!(a["task_id"], tid.as_str());
    let (s, b) = call(
        &m,
        "POST",
        Some("bob"),
        &path,
        Some(&json!({"content": "from bob"})),
    )
    .await;
    assert_eq!(s, 201, "{b}");
    let (s, c) = m
        .post_raw(
            "admin",
            &path,
            "application/x-yaml",
            b"content: from admin\n".to_vec(),
        )
        .await;
    assert_eq!(s, 201, "{c}");
    let (s, e) = call(
        &m,
        "POST",
        Some("carol"),
        &path,
        Some(&json!({"content": "hi"})),
    )
    .await;
    assert_eq!(s, 403, "{e}");
    assert_eq!(
        call(&m, "POST", None, &path, Some(&json!({"content": "hi"})))
            .await
            .0,
        401
    );
    // bad input, named
    for (body, needle) in [
        (json!({"content": "  "}), "non-empty"),
        (json!({}), "non-empty"),
        (json!({"content": "x".repeat(10_001)}), "longer than 10000"),
    ] {
        let (s, e) = call(&m, "POST", Some("alice"), &path, Some(&body)).await;
        assert_eq!(s, 422, "{e}");
        assert_eq!(e["error"]["fields"][0]["field"], "content");
        assert!(
            e["error"]["message"].as_str().unwrap().contains(needle),
            "{e}"
        );
    }
    assert_eq!(
        call(
            &m,
            "POST",
            Some("alice"),
            &path,
            Some(&json!({"content": 3}))
        )
        .await
        .0,
        400
    );
    assert_eq!(
        call(
            &m,
            "POST",
            Some("alice"),
            "/task/nope/comment",
            Some(&json!({"content": "x"}))
        )
        .await
        .0,
        400
    );
    let missing = format!("/task/{}/comment", uuid::Uuid::now_v7());
    assert_eq!(
        call(
            &m,
            "POST",
            Some("admin"),
            &missing,
            Some(&json!({"content": "x"}))
        )
        .await
        .0,
        404
    );

    // list: in order, the creation comment first
    let (s, list) = call(&m, "GET", Some("bob"), &path, None).await;
    assert_eq!(s, 200, "{list}");
    let contents: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["content"].as_str().unwrap())
        .collect();
    assert_eq!(
        contents,
        [
            "first",
            format!("from alice {canary}").as_str(),
            "from bob",
            "from admin"
        ]
    );
    assert_eq!(call(&m, "GET", Some("carol"), &path, None).await.0, 403);
    assert_eq!(call(&m, "GET", None, &path, None).await.0, 401);

    // one comment, always through its own task
    let aid = a["id"].as_str().unwrap().to_string();
    let bid = b["id"].as_str().unwrap().to_string();
    let one = |id: &str| format!("/task/{tid}/comment/{id}");
    let (s, got) = call(&m, "GET", Some("bob"), &one(&aid), None).await;
    assert_eq!((s, got["username"].as_str()), (200, Some("alice")), "{got}");
    assert_eq!(
        call(&m, "GET", Some("carol"), &one(&aid), None).await.0,
        403
    );
    assert_eq!(
        call(&m, "GET", Some("alice"), &one("xyz"), None).await.0,
        400
    );
    assert_eq!(
        call(
            &m,
            "GET",
            Some("alice"),
            &one(&uuid::Uuid::now_v7().to_string()),
            None
        )
        .await
        .0,
        404
    );
    let (s, _) = call(
        &m,
        "GET",
        Some("admin"),
        &format!("/task/{other}/comment/{aid}"),
        None,
    )
    .await;
    assert_eq!(s, 404, "a comment is only reachable through its task");

    // edit: author or admin
    let edit = json!({"content": "edited"});
    let (s, e) = call(&m, "PUT", Some("bob"), &one(&aid), Some(&edit)).await;
    assert_eq!(s, 403, "{e}");
    let (s, e) = call(
        &m,
        "PUT",
        Some("alice"),
        &one(&aid),
        Some(&json!({"content": ""})),
    )
    .await;
    assert_eq!(
        (s, e["error"]["fields"][0]["field"].as_str()),
        (422, Some("content"))
    );
    let (s, got) = call(&m, "PUT", Some("alice"), &one(&aid), Some(&edit)).await;
    assert_eq!(s, 200, "{got}");
    assert_eq!(got["content"], "edited");
    assert!(got["updated"].as_str().unwrap() >= got["created"].as_str().unwrap());
    let (s, got) = call(
        &m,
        "PUT",
        Some("admin"),
        &one(&bid),
        Some(&json!({"content": "moderated"})),
    )
    .await;
    assert_eq!(
        (s, got["content"].as_str(), got["username"].as_str()),
        (200, Some("moderated"), Some("bob"))
    );
    assert_eq!(call(&m, "PUT", None, &one(&aid), Some(&edit)).await.0, 401);

    // delete: author or admin
    assert_eq!(
        call(&m, "DELETE", Some("bob"), &one(&aid), None).await.0,
        403
    );
    assert_eq!(
        call(&m, "DELETE", Some("alice"), &one(&aid), None).await.0,
        204
    );
    assert_eq!(
        call(&m, "GET", Some("alice"), &one(&aid), None).await.0,
        404
    );
    assert_eq!(
        call(&m, "DELETE", Some("alice"), &one(&aid), None).await.0,
        404
    );
    assert_eq!(
        call(&m, "DELETE", Some("admin"), &one(&bid), None).await.0,
        204
    );
    let (_, list) = call(&m, "GET", Some("alice"), &path, None).await;
    assert_eq!(list.as_array().unwrap().len(), 2);

    // comment bodies are sealed: the canary of a (later edited) comment is nowhere in clear
    let (s, _) = call(
        &m,
        "POST",
        Some("alice"),
        &path,
        Some(&json!({"content": format!("kept {canary}")})),
    )
    .await;
    assert_eq!(s, 201);
    let hits = common::find_in_all_tables(&m.running.state.store.pool, &canary).await;
    assert!(hits.is_empty(), "comment found in clear in {hits:?}");
    m.stop().await;
}
