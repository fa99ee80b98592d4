//! Authentication beyond basic auth: API tokens and the failed-login limit.

use crate::common;

use serde_json::{Value, json};

async fn bearer(m: &common::Instance, token: &str, path: &str) -> (u16, Value) {
    let r = m
        .client
        .get(m.url(path))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn api_tokens_act_as_their_user_until_revoked() {
    let m = common::start().await;
    // only admins create tokens
    let (status, e) = m.post("alice", "/token", &json!({"name": "mine"})).await;
    assert_eq!(status, 403, "{e}");
    // every invalid field at once
    let (status, e) = m
        .post(
            "admin",
            "/token",
            &json!({"name": "", "groups": ["ok", ""], "expires": "2001-01-01T00:00:00Z"}),
        )
        .await;
    assert_eq!(status, 422, "{e}");
    let fields: Vec<&str> = e["error"]["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["name", "groups[1]", "expires"], "{e}");
    let (status, e) = m
        .post("admin", "/token", &json!({"name": "x", "colour": "red"}))
        .await;
    assert_eq!(status, 400, "{e}");
    assert!(
        e["error"]["message"].as_str().unwrap().contains("colour"),
        "{e}"
    );

    let (status, created) = m
        .post(
            "admin",
            "/token",
            &json!({"name": "ci", "username": "robot", "groups": ["deployers"]}),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let token = created["token"].as_str().unwrap().to_string();
    assert!(token.starts_with("mtk_"), "{token}");
    let id = created["id"].as_str().unwrap().to_string();

    let (status, me) = bearer(&m, &token, "/meta").await;
    assert_eq!(status, 200, "{me}");
    assert_eq!(me["username"], "robot");
    assert_eq!(me["user_groups"], json!(["deployers"]));
    assert_eq!(me["user_is_admin"], false);
    // it can do what its user can: create a task
    let r = m
        .client
        .post(m.url("/task"))
        .bearer_auth(&token)
        .json(&json!({"template_name": "deploy-approval",
            "input": {"service": "billing", "environment": "staging"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let task: Value = r.json().await.unwrap();
    assert_eq!(task["requester_username"], "robot", "{task}");

    // the token (and its secret part) is stored nowhere; the list never shows it
    // `mtk_<32 hex digits>_<secret>`: the secret is base64url, so it may hold `_` itself
    let secret = &token["mtk_".len() + 32 + 1..];
    assert!(secret.len() >= 40, "{token}");
    assert_eq!(
        common::find_in_all_tables(&m.running.state.store.pool, secret).await,
        Vec::<String>::new()
    );
    let (status, list) = m.get("admin", "/token").await;
    assert_eq!(status, 200);
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!(list[0]["name"], "ci");
    assert!(list[0]["last_used"].is_string(), "{list}");
    assert!(!list.to_string().contains(secret));
    assert!(list[0].get("secret_hash").is_none());

    // a wrong secret for a real id, garbage, and a token for no id: all 401
    let forged = format!("{}_{}", &token[..token.rfind('_').unwrap()], "A".repeat(43));
    for bad in [
        forged.as_str(),
        "mtk_nothex_x",
        "garbage",
        "mtk_00000000000000000000000000000000_x",
    ] {
        let (status, _) = bearer(&m, bad, "/meta").await;
        assert_eq!(status, 401, "{bad}");
    }

    // revocation: immediate, and only once
    let r = m
        .client
        .delete(m.url(&format!("/token/{id}")))
        .basic_auth("admin", Some("admin-pw"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let (status, _) = bearer(&m, &token, "/meta").await;
    assert_eq!(status, 401);
    let r = m
        .client
        .delete(m.url(&format!("/token/{id}")))
        .basic_auth("admin", Some("admin-pw"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);

    // expiry
    let (_, created) = m
        .post(
            "admin",
            "/token",
            &json!({"name": "short", "expires": "2999-01-01T00:00:00Z"}),
        )
        .await;
    let token = created["token"].as_str().unwrap();
    assert_eq!(bearer(&m, token, "/meta").await.0, 200);
    sqlx::query("UPDATE api_token SET expires = now() - interval '1 second' WHERE name = 'short'")
        .execute(&m.running.state.store.pool)
        .await
        .unwrap();
    assert_eq!(bearer(&m, token, "/meta").await.0, 401);
    // an admin's token is an admin
    let (_, me) = bearer(
        &m,
        m.post("admin", "/token", &json!({"name": "root"})).await.1["token"]
            .as_str()
            .unwrap(),
        "/meta",
    )
    .await;
    assert_eq!(me["user_is_admin"], true, "{me}");
    m.stop().await;
}

#[tokio::test]
async fn repeated_failed_logins_are_slowed_down() {
    let m = common::start_with(|c| c.login_failure_limit = 3).await;
    let get = |user: &'static str, pw: &'static str| {
        let req = m.client.get(m.url("/meta")).basic_auth(user, Some(pw));
        async move { req.send().await.unwrap() }
    };
    assert_eq!(get("alice", "alice-pw").await.status(), 200);
    for _ in 0..3 {
        assert_eq!(get("alice", "wrong").await.status(), 401);
    }
    // over the limit: refused without checking, even with the right password
    let r = get("alice", "alice-pw").await;
    assert_eq!(r.status(), 429);
    let retry: u64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "too_many_requests");
    // unauthenticated routes are not affected
    let r = m
        .client
        .get(m.url("/unsecured/mon/ping"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    m.stop().await;

    let m = common::start_with(|c| c.login_failure_limit = 0).await;
    for _ in 0..15 {
        let r = m
            .client
            .get(m.url("/meta"))
            .basic_auth("bob", Some("nope"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401);
    }
    let r = m
        .client
        .get(m.url("/meta"))
        .basic_auth("bob", Some("bob-pw"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    m.stop().await;
}
