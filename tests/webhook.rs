//! Inbound webhooks end to end: a GitHub-signed delivery creates a task that runs; forged,
//! unsigned, stale and replayed deliveries create nothing; secrets are never answered or stored
//! in clear.

use crate::common;

use mutask::schedule::webhook::hmac_sha256_hex;
use serde_json::{Value, json};

type Headers<'a> = Vec<(&'a str, String)>;

async fn task_count(m: &common::Instance, hook: &str) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM task WHERE tags->>'mutask_webhook' = $1")
        .bind(hook)
        .fetch_one(&m.running.state.store.pool)
        .await
        .unwrap()
}

async fn deliver(
    m: &common::Instance,
    hook: &str,
    headers: &[(&str, String)],
    ct: &str,
    body: &[u8],
) -> (u16, Value) {
    let mut r = m
        .client
        .post(m.url(&format!("/webhook/{hook}")))
        .header("content-type", ct)
        .body(body.to_vec());
    for (k, v) in headers {
        r = r.header(*k, v);
    }
    let r = r.send().await.unwrap();
    let s = r.status().as_u16();
    (s, r.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn github_signed_deliveries_create_tasks_and_forgeries_do_not() {
    let m = common::start().await;
    let secret = "gh-webhook-canary-9f3a";
    let def = json!({"name": "on-push", "template_name": "hello-world", "auth": "github",
                     "secret": secret, "input": {"name": "/pusher/name"}});
    let (s, e) = m.post("alice", "/webhook", &def).await;
    assert_eq!(s, 403, "{e}");
    let (s, e) = m
        .post(
            "admin",
            "/webhook",
            &json!({"name": "Bad", "template_name": "hello-world", "auth": "basic", "secret": "short",
                    "header": "bad header", "replay_window": 0, "input": {"nope": "/x"}}),
        )
        .await;
    assert_eq!(s, 422, "{e}");
    let fields: Vec<&str> = e["error"]["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["field"].as_str().unwrap())
        .collect();
    assert_eq!(
        fields,
        [
            "name",
            "auth",
            "secret",
            "header",
            "replay_window",
            "input.nope"
        ]
    );
    let (s, created) = m.post("admin", "/webhook", &def).await;
    assert_eq!(s, 201, "{created}");
    assert!(!created.to_string().contains(secret), "{created}");
    let (s, e) = m.post("admin", "/webhook", &def).await;
    assert_eq!(s, 409, "{e}");

    let body = br#"{"ref":"refs/heads/main","pusher":{"name":"Octo"}}"#;
    let sig = format!("sha256={}", hmac_sha256_hex(secret.as_bytes(), body));
    let headers = vec![
        ("X-Hub-Signature-256", sig.clone()),
        (
            "X-GitHub-Delivery",
            "72d3162e-cc78-11e3-81ab-4c9367dc0958".to_string(),
        ),
        ("X-GitHub-Event", "push".to_string()),
    ];
    let (s, ok) = deliver(&m, "on-push", &headers, "application/json", body).await;
    assert_eq!(s, 202, "{ok}");
    let task_id = ok["task_id"].as_str().unwrap().to_string();
    // the task runs as any task of the template
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let (_, t) = m.get("admin", &format!("/task/{task_id}")).await;
        if t["state"] == "DONE" {
            assert_eq!(t["title"], "Say hello to Octo");
            assert_eq!(t["requester_username"], "admin");
            assert_eq!(t["tags"]["mutask_webhook"], "on-push");
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{t}");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }

    // created claimed by this instance, which had room (as `POST /task`): started in the
    // creating transaction, without a claim statement
    let (started_at_creation, attempt): (bool, i64) = sqlx::query_as(
        "SELECT last_start = created, claim_attempt FROM resolution WHERE task_id = $1::uuid",
    )
    .bind(&task_id)
    .fetch_one(&m.running.state.store.pool)
    .await
    .unwrap();
    assert!(
        started_at_creation,
        "the task was claimed after its creation"
    );
    assert_eq!(attempt, 1);

    // replayed: same delivery id → 409, nothing created, no slot kept, nothing announced
    let (s, e) = deliver(&m, "on-push", &headers, "application/json", body).await;
    assert_eq!(s, 409, "{e}");
    let hint = m.running.state.claim_hint.clone().unwrap();
    assert!(hint.has_room(), "{hint:?}");
    assert_eq!(hint.announced(), 0, "{hint:?}");
    // forged: signed with another secret; tampered body; unsigned; sha1 with the wrong key
    let forged = format!("sha256={}", hmac_sha256_hex(b"not the secret", body));
    let cases: Vec<(Headers, &[u8])> = vec![
        (
            vec![
                ("X-Hub-Signature-256", forged),
                ("X-GitHub-Delivery", "d-2".into()),
            ],
            body,
        ),
        (
            vec![
                ("X-Hub-Signature-256", sig.clone()),
                ("X-GitHub-Delivery", "d-3".into()),
            ],
            br#"{"pusher":{"name":"Mallory"}}"#,
        ),
        (vec![("X-GitHub-Delivery", "d-4".into())], body),
        (
            vec![(
                "X-Hub-Signature",
                "sha1=0000000000000000000000000000000000000000".into(),
            )],
            body,
        ),
    ];
    for (h, b) in cases {
        let (s, e) = deliver(&m, "on-push", &h, "application/json", b).await;
        assert_eq!(s, 401, "{h:?}: {e}");
        assert!(
            e["error"]["message"].as_str().unwrap().contains("refused"),
            "{e}"
        );
    }
    assert_eq!(task_count(&m, "on-push").await, 1);
    assert_eq!(
        deliver(&m, "nope", &headers, "application/json", body)
            .await
            .0,
        404
    );

    // the secret is sealed, and never answered
    let (_, one) = m.get("admin", "/webhook/on-push").await;
    assert_eq!(one["auth"], "github");
    assert!(!one.to_string().contains(secret));
    let (_, list) = m.get("admin", "/webhook").await;
    assert!(!list.to_string().contains(secret));
    let hits = common::find_in_all_tables(&m.running.state.store.pool, secret).await;
    assert!(hits.is_empty(), "{hits:?}");
    m.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hmac_with_a_timestamp_refuses_stale_and_replayed_deliveries() {
    let m = common::start().await;
    let secret = "shared-secret-123";
    let (s, c) = m
        .post(
            "admin",
            "/webhook",
            &json!({"name": "ci", "template_name": "hello-world", "auth": "hmac-sha256",
                    "secret": secret, "timestamp_header": "X-Mutask-Timestamp", "replay_window": 60,
                    "input": {"name": "/who"}}),
        )
        .await;
    assert_eq!(s, 201, "{c}");
    let body = br#"{"who": "Robot"}"#;
    let now = chrono::Utc::now().timestamp();
    let sign = |ts: i64| {
        let mut payload = format!("{ts}.").into_bytes();
        payload.extend_from_slice(body);
        hmac_sha256_hex(secret.as_bytes(), &payload)
    };
    let fresh = vec![
        ("X-Mutask-Sign", sign(now)),
        ("X-Mutask-Timestamp", now.to_string()),
    ];
    let (s, ok) = deliver(&m, "ci", &fresh, "application/json", body).await;
    assert_eq!(s, 202, "{ok}");
    // the same request again: its signature is its identity
    assert_eq!(
        deliver(&m, "ci", &fresh, "application/json", body).await.0,
        409
    );
    // stale
    let old = now - 3600;
    let stale = vec![
        ("X-Mutask-Sign", sign(old)),
        ("X-Mutask-Timestamp", old.to_string()),
    ];
    assert_eq!(
        deliver(&m, "ci", &stale, "application/json", body).await.0,
        401
    );
    // a form body
    let form = b"who=Former";
    let mut payload = format!("{now}.").into_bytes();
    payload.extend_from_slice(form);
    let h = vec![
        (
            "X-Mutask-Sign",
            format!("sha256={}", hmac_sha256_hex(secret.as_bytes(), &payload)),
        ),
        ("X-Mutask-Timestamp", now.to_string()),
    ];
    let (s, ok) = deliver(&m, "ci", &h, "application/x-www-form-urlencoded", form).await;
    assert_eq!(s, 202, "{ok}");
    // inputs that the template refuses: 422, nothing created
    let bad = br#"{"who": "1nvalid name"}"#;
    let mut payload = format!("{now}.").into_bytes();
    payload.extend_from_slice(bad);
    let h = vec![
        (
            "X-Mutask-Sign",
            hmac_sha256_hex(secret.as_bytes(), &payload),
        ),
        ("X-Mutask-Timestamp", now.to_string()),
    ];
    let (s, e) = deliver(&m, "ci", &h, "application/json", bad).await;
    assert_eq!(s, 422, "{e}");
    assert_eq!(task_count(&m, "ci").await, 2);
    m.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sourcehut_signed_deliveries_create_tasks_and_forgeries_are_refused() {
    use base64::Engine as _;
    use ring::signature::KeyPair;
    let m = common::start().await;
    let rng = ring::rand::SystemRandom::new();
    let pkcs8 = ring::signature::Ed25519KeyPair::generate_pkcs8(&rng).unwrap();
    let pair = ring::signature::Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap();
    let b64 = base64::engine::general_purpose::STANDARD;
    let public = b64.encode(pair.public_key().as_ref());
    // timestamps and replay windows are hmac-sha256 settings: refused, named, for sourcehut
    for (extra, field) in [
        (json!({"timestamp_header": "X-Time"}), "timestamp_header"),
        (json!({"replay_window": 60}), "replay_window"),
    ] {
        let mut def = json!({"name": "srht", "template_name": "hello-world", "auth": "sourcehut",
                             "secret": public, "input": {"name": "/pusher"}});
        def.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        let (s, e) = m.post("admin", "/webhook", &def).await;
        assert_eq!(s, 400, "{e}");
        assert!(e.to_string().contains(field), "{e}");
        let mut gh = def.clone();
        gh["auth"] = json!("github");
        gh["secret"] = json!("a-github-secret");
        let (s, e) = m.post("admin", "/webhook", &gh).await;
        assert_eq!(s, 400, "{e}");
        assert!(e.to_string().contains(field), "{e}");
    }
    let (s, e) = m
        .post(
            "admin",
            "/webhook",
            &json!({"name": "srht", "template_name": "hello-world", "auth": "sourcehut",
                    "secret": public, "input": {"name": "/pusher"}}),
        )
        .await;
    assert_eq!(s, 201, "{e}");

    let body = br#"{"pusher":"Hut"}"#;
    let signed = |nonce: &str, body: &[u8]| {
        let mut message = body.to_vec();
        message.extend_from_slice(nonce.as_bytes());
        b64.encode(pair.sign(&message).as_ref())
    };
    let headers = vec![
        ("X-Payload-Signature", signed("nonce-1", body)),
        ("X-Payload-Nonce", "nonce-1".to_string()),
    ];
    let (s, ok) = deliver(&m, "srht", &headers, "application/json", body).await;
    assert_eq!(s, 202, "{ok}");
    let task_id = ok["task_id"].as_str().unwrap().to_string();
    let (_, t) = m.get("admin", &format!("/task/{task_id}")).await;
    assert_eq!(t["tags"]["mutask_webhook"], "srht", "{t}");
    assert_eq!(task_count(&m, "srht").await, 1);

    // forgeries: another key, a changed body, another nonce, no signature
    let other = {
        let pkcs8 = ring::signature::Ed25519KeyPair::generate_pkcs8(&rng).unwrap();
        ring::signature::Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap()
    };
    let mut message = body.to_vec();
    message.extend_from_slice(b"nonce-2");
    let forged: Vec<Headers> = vec![
        vec![
            (
                "X-Payload-Signature",
                b64.encode(other.sign(&message).as_ref()),
            ),
            ("X-Payload-Nonce", "nonce-2".to_string()),
        ],
        vec![
            (
                "X-Payload-Signature",
                signed("nonce-3", br#"{"pusher":"Eve"}"#),
            ),
            ("X-Payload-Nonce", "nonce-3".to_string()),
        ],
        vec![
            ("X-Payload-Signature", signed("nonce-4", body)),
            ("X-Payload-Nonce", "nonce-5".to_string()),
        ],
        vec![("X-Payload-Nonce", "nonce-6".to_string())],
    ];
    for headers in forged {
        let (s, e) = deliver(&m, "srht", &headers, "application/json", body).await;
        assert_eq!(s, 401, "{headers:?}: {e}");
    }
    assert_eq!(
        task_count(&m, "srht").await,
        1,
        "nothing created by forgeries"
    );
    m.stop().await;
}
