//! Notifications end to end: signed webhook and Slack deliveries reach real receivers on
//! 127.0.0.1, carry no secrets, and a notification that could not be delivered before a restart
//! is delivered by the next instance.

use crate::common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::HeaderMap;
use mutask::config::Role;
use mutask::notify::Backend;
use mutask::schedule::webhook::hmac_sha256_hex;
use serde_json::{Value, json};

/// (path, headers, body) of each accepted request.
type Received = Vec<(String, HeaderMap, Vec<u8>)>;

#[derive(Clone, Default)]
struct Receiver {
    got: Arc<Mutex<Received>>,
    failing: Arc<Mutex<bool>>,
}

async fn receiver() -> (Receiver, String) {
    receiver_on(tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap()).await
}

async fn receiver_on(listener: tokio::net::TcpListener) -> (Receiver, String) {
    let r = Receiver::default();
    let state = r.clone();
    let app = axum::Router::new().route(
        "/{which}",
        axum::routing::post(
            move |axum::extract::Path(which): axum::extract::Path<String>,
                  headers: HeaderMap,
                  body: axum::body::Bytes| {
                let state = state.clone();
                async move {
                    if *state.failing.lock().unwrap() {
                        return axum::http::StatusCode::SERVICE_UNAVAILABLE;
                    }
                    state
                        .got
                        .lock()
                        .unwrap()
                        .push((which, headers, body.to_vec()));
                    axum::http::StatusCode::OK
                }
            },
        ),
    );
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (r, format!("http://{addr}"))
}

const SECRET: &str = "notify-secret-42";

fn backends(base: &str) -> Vec<Backend> {
    vec![
        Backend::Webhook {
            url: format!("{base}/hook"),
            secret: Some(SECRET.into()),
        },
        Backend::Slack {
            url: format!("{base}/slack"),
        },
    ]
}

/// The verified webhook payloads received so far.
fn verified(r: &Receiver) -> Vec<Value> {
    r.got
        .lock()
        .unwrap()
        .iter()
        .filter(|(w, _, _)| w == "hook")
        .map(|(_, h, body)| {
            let sig = h["x-mutask-signature"].to_str().unwrap();
            assert_eq!(
                sig,
                format!("sha256={}", hmac_sha256_hex(SECRET.as_bytes(), body)),
                "a valid signature"
            );
            let v: Value = serde_json::from_slice(body).unwrap();
            assert_eq!(
                h["x-mutask-id"].to_str().unwrap(),
                v["id"].as_str().unwrap()
            );
            v
        })
        .collect()
}

async fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signed_notifications_reach_receivers_without_secrets() {
    let (rx, base) = receiver().await;
    let m = common::start_with(|c| c.notify_backends = backends(&base)).await;
    let canary = "pw-canary-7781";
    let (s, t) = m
        .post(
            "admin",
            "/task",
            &json!({"template_name": "hello-world", "input": {"name": "Notify"}}),
        )
        .await;
    assert_eq!(s, 201, "{t}");
    let id = t["id"].as_str().unwrap().to_string();
    let (s, _) = m
        .post(
            "alice",
            "/task",
            &json!({"template_name": "deploy-approval",
                    "input": {"service": "svc", "environment": "staging", "api_token": canary}}),
        )
        .await;
    assert_eq!(s, 201);
    wait_for("the DONE notification", || {
        verified(&rx)
            .iter()
            .any(|v| v["task"]["id"] == id.as_str() && v["task"]["state"] == "DONE")
    })
    .await;
    let all = verified(&rx);
    let mine: Vec<&Value> = all
        .iter()
        .filter(|v| v["task"]["id"] == id.as_str())
        .collect();
    let created = mine.iter().find(|v| v["action"] == "task_created").unwrap();
    assert_eq!(created["task"]["previous_state"], Value::Null);
    assert!(
        mine.iter()
            .any(|v| v["task"]["state"] == "RUNNING" && v["task"]["previous_state"] == "TODO"),
        "{mine:?}"
    );
    let done = mine.iter().find(|v| v["task"]["state"] == "DONE").unwrap();
    assert_eq!(done["action"], "task_state_update");
    assert_eq!(done["subject"], "Say hello to Notify is DONE");
    assert_eq!(done["task"]["template"], "hello-world");
    assert!(
        done["links"]["task"]
            .as_str()
            .unwrap()
            .ends_with(&format!("/task/{id}"))
    );
    let ids: std::collections::HashSet<&str> =
        all.iter().map(|v| v["id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), all.len(), "one id per notification");
    // Slack got the same events as text
    wait_for("slack", || {
        rx.got.lock().unwrap().iter().any(|(w, _, b)| {
            w == "slack" && String::from_utf8_lossy(b).contains("Say hello to Notify is DONE")
        })
    })
    .await;
    // no secret in any notification
    for (_, _, body) in rx.got.lock().unwrap().iter() {
        assert!(!String::from_utf8_lossy(body).contains(canary));
    }
    // titles are sealed in tasks, and so in the outbox
    let found =
        common::find_in_all_tables(&m.running.state.store.pool, "Say hello to Notify").await;
    assert!(found.is_empty(), "a task title in clear: {found:?}");
    m.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_undelivered_notification_survives_a_restart() {
    let (rx, base) = receiver().await;
    *rx.failing.lock().unwrap() = true;
    let db = mutask::testing::test_db().await;
    let data = tempfile::tempdir().unwrap();
    let config = || {
        let mut c = common::test_config(&db, data.path());
        c.notify_backends = backends(&base)[..1].to_vec();
        c.notify_strategy = mutask::notify::Strategy::FailureOrDone;
        c
    };
    let a = mutask::app::start(config(), Role::All, false)
        .await
        .unwrap();
    let client = common::http();
    let r = client
        .post(format!("http://{}/task", a.addr))
        .basic_auth("admin", Some("admin-pw"))
        .json(&json!({"template_name": "hello-world", "input": {"name": "Restart"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let id: Value = r.json().await.unwrap();
    let id = id["id"].as_str().unwrap().to_string();
    // the DONE notification is tried and refused by the receiver
    let pool = a.state.store.pool.clone();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        // payloads are sealed: find the notification through its event
        let row: Option<(i32, Option<String>)> = sqlx::query_as(
            "SELECT n.attempts, n.last_error FROM notification n JOIN task_event e ON e.id = n.event_id
              WHERE e.task_id::text = $1",
        )
        .bind(&id)
        .fetch_optional(&pool)
        .await
        .unwrap();
        // the claim counts the attempt before the call: wait for the call's outcome too
        if let Some((attempts, Some(err))) = row
            && attempts >= 1
        {
            assert!(err.contains("503"), "{err}");
            break;
        }
        assert!(Instant::now() < deadline, "no attempt");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    a.shutdown().await.unwrap();
    assert!(verified(&rx).is_empty());
    // only DONE is notified with failure_or_done; the receiver is back; a new instance delivers
    *rx.failing.lock().unwrap() = false;
    let b = mutask::app::start(config(), Role::All, false)
        .await
        .unwrap();
    wait_for("delivery after the restart", || !verified(&rx).is_empty()).await;
    let got = verified(&rx);
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0]["task"]["id"], id.as_str());
    assert_eq!(got[0]["task"]["state"], "DONE");
    b.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tasks_running_past_their_expected_duration_are_notified_once() {
    let (rx, base) = receiver().await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("slow.yaml"),
        r#"
name: slow-one
dialect: jinja
description: Waits for a callback, expected to take a second
title_format: "slow {{ input.x }}"
expected_duration: 1s
auto_runnable: true
allow_all_resolver_usernames: true
inputs:
  - name: x
steps:
  wait:
    action:
      type: callback
      configuration: {action: create}
  hold:
    dependencies: [wait]
    action:
      type: callback
      configuration: {action: wait, id: "{{ step.wait.output.id }}"}
"#,
    )
    .unwrap();
    let tdir = dir.path().to_path_buf();
    let m = common::start_with(move |c| {
        c.templates_dir = tdir;
        c.notify_backends = backends(&base)[..1].to_vec();
        c.notify_strategy = mutask::notify::Strategy::FailureOnly;
    })
    .await;
    let (s, t) = m
        .post(
            "admin",
            "/task",
            &json!({"template_name": "slow-one", "input": {"x": "1"}}),
        )
        .await;
    assert_eq!(s, 201, "{t}");
    let id = t["id"].as_str().unwrap().to_string();
    wait_for("the overdue notification", || {
        verified(&rx).iter().any(|v| v["action"] == "task_overdue")
    })
    .await;
    tokio::time::sleep(Duration::from_secs(6)).await;
    let got = verified(&rx);
    let overdue: Vec<&Value> = got
        .iter()
        .filter(|v| v["action"] == "task_overdue")
        .collect();
    assert_eq!(overdue.len(), 1, "once: {got:?}");
    assert_eq!(overdue[0]["task"]["id"], id.as_str());
    assert_eq!(overdue[0]["level"], "warning");
    assert_eq!(overdue[0]["subject"], "slow 1 runs longer than expected");
    // failure_only: the creation and RUNNING changes were not sent
    assert!(got.iter().all(|v| v["action"] == "task_overdue"), "{got:?}");
    m.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn email_notifications_reach_a_real_smtp_server() {
    let sink = common::smtp::start(common::smtp::Options {
        credentials: Some(("notifier".into(), "p@ss w0rd".into())),
        ..Default::default()
    })
    .await;
    let url = format!(
        "smtp://notifier:p%40ss%20w0rd@127.0.0.1:{}?tls=none&from=mutask@example.com&to=ops@example.com,lead@example.com",
        sink.addr.port()
    );
    let backend = Backend::email_from_url(&url).unwrap();
    assert_eq!(
        format!("{backend:?}"),
        "email",
        "credentials are never printed"
    );
    let m = common::start_with(move |c| c.notify_backends = vec![backend]).await;
    let (s, t) = m
        .post(
            "admin",
            "/task",
            &json!({"template_name": "hello-world", "input": {"name": "Mail"}}),
        )
        .await;
    assert_eq!(s, 201, "{t}");
    let id = t["id"].as_str().unwrap().to_string();
    wait_for("the DONE email", || {
        sink.mails().iter().any(|m| m.data.contains("State: DONE"))
    })
    .await;
    let mails = sink.mails();
    let done = mails
        .iter()
        .find(|m| m.data.contains("State: DONE"))
        .unwrap();
    assert_eq!(done.auth_user.as_deref(), Some("notifier"));
    assert_eq!(done.rcpt, ["ops@example.com", "lead@example.com"]);
    assert!(done.data.contains("Subject: [mutask] "), "{}", done.data);
    assert!(done.data.contains(&format!("/task/{id}")), "{}", done.data);
    assert!(!done.data.contains("Mail\""), "no inputs in notifications");
    m.stop().await;

    // bad URLs are refused at startup, naming the problem
    for (bad, needle) in [
        ("http://x?from=a@b.c&to=d@e.f", "smtp://"),
        ("smtp://host?to=d@e.f", "from="),
        ("smtp://host?from=a@b.c&to=nobody", "to"),
        ("smtp://host?from=a@b.c&to=d@e.f&color=red", "color"),
    ] {
        let e = Backend::email_from_url(bad).unwrap_err();
        assert!(e.contains(needle), "{bad}: {e}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_notify_action_sends_a_message_through_the_backends() {
    let (rx, base) = receiver().await;
    let m = common::start_with(|c| {
        c.notify_backends = backends(&base);
        // only the action's message, not the task's own state changes
        c.notify_strategy = mutask::notify::Strategy::FailureOnly;
        let dir = c.data_dir.join("templates");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("announce.yaml"),
            r#"
name: announce
description: Announce a deployment
title_format: "announce {{.input.service}}"
auto_runnable: true
allow_all_resolver_usernames: true
inputs:
  - name: service
  - name: channel
    optional: true
steps:
  tell:
    action:
      type: notify
      configuration:
        message: "{{.input.service}} is deployed"
        fields: {service: "{{.input.service}}", ticket: "CHG-7"}
        backends: ["{{.input.channel}}"]
        level: warning
"#,
        )
        .unwrap();
        c.templates_dir = dir;
    })
    .await;
    let (s, t) = m
        .post(
            "alice",
            "/task",
            &json!({"template_name": "announce", "input": {"service": "billing", "channel": "webhook"}}),
        )
        .await;
    assert_eq!(s, 201, "{t}");
    let id = t["id"].as_str().unwrap().to_string();
    wait_for("the message", || {
        verified(&rx).iter().any(|v| v["action"] == "notify_action")
    })
    .await;
    let got = verified(&rx);
    let msg = got.iter().find(|v| v["action"] == "notify_action").unwrap();
    assert_eq!(msg["subject"], "billing is deployed");
    assert_eq!(msg["level"], "warning");
    assert_eq!(msg["fields"]["ticket"], "CHG-7");
    assert_eq!(msg["task"]["id"], id.as_str());
    assert_eq!(msg["step"], "tell");
    // only the backend asked for: nothing on Slack
    assert!(!rx.got.lock().unwrap().iter().any(
        |(w, _, b)| w == "slack" && String::from_utf8_lossy(b).contains("billing is deployed")
    ));
    // sealed in the outbox
    let found =
        common::find_in_all_tables(&m.running.state.store.pool, "billing is deployed").await;
    assert!(found.is_empty(), "{found:?}");

    // an unknown backend blocks the step with a message naming it
    let (_, t) = m
        .post(
            "alice",
            "/task",
            &json!({"template_name": "announce", "input": {"service": "x", "channel": "pager"}}),
        )
        .await;
    let id = t["id"].as_str().unwrap().to_string();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (_, t) = m.get("alice", &format!("/task/{id}")).await;
        if t["state"] == "BLOCKED" {
            let r = t["resolution"].as_str().unwrap().to_string();
            let (_, step) = m.get("admin", &format!("/resolution/{r}/step/tell")).await;
            assert_eq!(step["state"], "CLIENT_ERROR");
            assert!(
                step["error"]
                    .as_str()
                    .unwrap()
                    .contains("`pager` is not configured"),
                "{step}"
            );
            break;
        }
        assert!(Instant::now() < deadline, "not blocked: {t}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    m.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_template_chooses_its_events_and_backends() {
    let (rx, base) = receiver().await;
    let m = common::start_with(|c| {
        c.notify_backends = backends(&base); // strategy: always
        let dir = c.data_dir.join("templates");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("quiet.yaml"),
            r#"
name: quiet
description: Only failures, only on Slack
title_format: "quiet {{.input.fail}}"
auto_runnable: true
allow_all_resolver_usernames: true
notify:
  events: failure_only
  backends: [slack]
inputs:
  - name: fail
steps:
  work:
    action:
      type: echo
      configuration:
        output: {}
        error_message: "{{ if eq .input.fail \"yes\" }}broken{{ end }}"
        error_type: client
"#,
        )
        .unwrap();
        std::fs::copy(
            common::shipped_templates().join("hello-world.yaml"),
            dir.join("hello-world.yaml"),
        )
        .unwrap();
        std::fs::write(
            dir.join("silent.yaml"),
            "name: silent\ndescription: Never notified\ntitle_format: silent run\nauto_runnable: true\nallow_all_resolver_usernames: true\nnotify: {events: none}\nsteps:\n  a:\n    action: {type: echo, configuration: {output: {}}}\n",
        )
        .unwrap();
        c.templates_dir = dir;
    })
    .await;
    let create = |input: Value, template: &'static str| {
        let m = &m;
        async move {
            let (s, t) = m
                .post(
                    "alice",
                    "/task",
                    &json!({"template_name": template, "input": input}),
                )
                .await;
            assert_eq!(s, 201, "{t}");
            t["id"].as_str().unwrap().to_string()
        }
    };
    let ok = create(json!({"fail": "no"}), "quiet").await;
    let silent = create(json!({}), "silent").await;
    let broken = create(json!({"fail": "yes"}), "quiet").await;
    // the failure reaches Slack…
    wait_for("the BLOCKED message on Slack", || {
        rx.got
            .lock()
            .unwrap()
            .iter()
            .any(|(w, _, b)| w == "slack" && String::from_utf8_lossy(b).contains(broken.as_str()))
    })
    .await;
    // …and a task of the instance's default template is notified everywhere meanwhile
    let (_, other) = m
        .post(
            "alice",
            "/task",
            &json!({"template_name": "hello-world", "input": {"name": "x"}}),
        )
        .await;
    let other = other["id"].as_str().unwrap().to_string();
    wait_for("hello-world on the webhook", || {
        verified(&rx)
            .iter()
            .any(|v| v["task"]["id"] == other.as_str() && v["task"]["state"] == "DONE")
    })
    .await;
    let got = rx.got.lock().unwrap().clone();
    for (which, _, body) in &got {
        let text = String::from_utf8_lossy(body);
        assert!(
            !text.contains(ok.as_str()),
            "the DONE quiet task was notified on {which}"
        );
        assert!(
            !text.contains(silent.as_str()),
            "the silent task was notified on {which}"
        );
        if text.contains(broken.as_str()) {
            assert_eq!(which, "slack", "quiet notifies on Slack only");
            assert!(text.contains("BLOCKED"), "{text}");
        }
    }
    m.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tasks_status_hook_receives_every_state_change() {
    let (rx, base) = receiver().await;
    // no notification backend at all: the hook works on its own
    let m = common::start_with(|c| c.network_allow = vec!["127.0.0.1".into()]).await;
    let (s, t) = m
        .post(
            "admin",
            "/task",
            &json!({"template_name": "hello-world", "input": {"name": "Hooked"},
                    "status_hook": {"url": format!("{base}/hook-a?token=t0k3n"), "secret": "hook-secret"}}),
        )
        .await;
    assert_eq!(s, 201, "{t}");
    let id = t["id"].as_str().unwrap().to_string();
    let states = || -> Vec<String> {
        rx.got
            .lock()
            .unwrap()
            .iter()
            .filter(|(w, _, _)| w == "hook-a")
            .map(|(_, h, body)| {
                assert_eq!(
                    h["x-mutask-signature"].to_str().unwrap(),
                    format!("sha256={}", hmac_sha256_hex(b"hook-secret", body))
                );
                let v: Value = serde_json::from_slice(body).unwrap();
                assert_eq!(v["task"]["id"], id.as_str());
                assert!(
                    v.get("status_hook").is_none(),
                    "the hook is not sent to itself"
                );
                v["task"]["state"].as_str().unwrap().to_string()
            })
            .collect()
    };
    wait_for("the DONE call", || states().contains(&"DONE".to_string())).await;
    // every change, in the order it happened (one pass often holds the task's whole life)
    assert_eq!(states(), ["TODO", "RUNNING", "DONE"]);
    // sealed: neither the URL's token nor the secret is stored in clear
    let pool = &m.running.state.store.pool;
    assert!(common::find_in_all_tables(pool, "t0k3n").await.is_empty());
    assert!(
        common::find_in_all_tables(pool, "hook-secret")
            .await
            .is_empty()
    );

    // without a backend, the changes of a task with no hook are only marked expanded: no
    // notification is built for them
    let (s, plain) = m
        .post(
            "admin",
            "/task",
            &json!({"template_name": "hello-world", "input": {"name": "Plain"}}),
        )
        .await;
    assert_eq!(s, 201, "{plain}");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (pending, plain_notes, hook_notes): (i64, i64, i64) = sqlx::query_as(
            "SELECT (SELECT count(*) FROM task_event WHERE NOT expanded),
                    (SELECT count(*) FROM notification n JOIN task_event e ON e.id = n.event_id
                      WHERE e.task_id = $1::uuid),
                    (SELECT count(*) FROM notification n JOIN task_event e ON e.id = n.event_id
                      WHERE e.task_id = $2::uuid)",
        )
        .bind(plain["id"].as_str().unwrap())
        .bind(&id)
        .fetch_one(pool)
        .await
        .unwrap();
        let plain_state = m
            .get("admin", &format!("/task/{}", plain["id"].as_str().unwrap()))
            .await
            .1["state"]
            .clone();
        if pending == 0 && plain_state == "DONE" {
            assert_eq!(plain_notes, 0, "nothing is built for a task without a hook");
            assert!(
                hook_notes >= 3,
                "one per change of the hooked task: {hook_notes}"
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "events still pending: {pending}, plain task {plain_state}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // refused hooks, named
    for (hook, needle) in [
        (json!({"url": "ftp://example.com/x"}), "http"),
        (json!({"url": "http://169.254.169.254/latest"}), "metadata"),
        (json!({"url": "not a url"}), "URL"),
        (
            json!({"url": "http://example.com", "color": "red"}),
            "color",
        ),
    ] {
        let (s, r) = m
            .post(
                "admin",
                "/task",
                &json!({"template_name": "hello-world", "input": {"name": "x"}, "status_hook": hook}),
            )
            .await;
        assert!(s == 422 || s == 400, "{hook}: {s} {r}");
        assert!(r.to_string().contains(needle), "{hook}: {r}");
    }
    m.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_outbox_is_listed_for_admins_and_a_given_up_delivery_is_retried() {
    // a port nothing listens on (yet)
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let base = format!("http://127.0.0.1:{port}");
    let m = common::start_with(|c| {
        c.notify_backends = backends(&base)[..1].to_vec();
        c.notify_strategy = mutask::notify::Strategy::FailureOrDone;
        c.notify_max_attempts = 1;
    })
    .await;
    let (s, t) = m
        .post(
            "admin",
            "/task",
            &json!({"template_name": "hello-world", "input": {"name": "Outbox"}}),
        )
        .await;
    assert_eq!(s, 201, "{t}");
    let task = t["id"].as_str().unwrap().to_string();
    // the one DONE notification fails once against the closed port and is given up
    let deadline = Instant::now() + Duration::from_secs(30);
    let entry = loop {
        let (s, list) = m.get("admin", "/notification?state=given_up").await;
        assert_eq!(s, 200, "{list}");
        if let Some(e) = list.as_array().unwrap().first() {
            break e.clone();
        }
        assert!(Instant::now() < deadline, "never given up");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(entry["state"], "given_up", "{entry}");
    assert_eq!(entry["backend"], "webhook");
    assert_eq!(entry["action"], "task_state_update");
    assert_eq!(entry["task_id"], task.as_str());
    assert_eq!(entry["task_state"], "DONE");
    assert_eq!(entry["template"], "hello-world");
    assert_eq!(entry["attempts"], 1);
    assert!(entry["given_up"].is_string() && entry["delivered"].is_null());
    assert!(entry["next_attempt"].is_null());
    let error = entry["last_error"].as_str().unwrap();
    assert!(error.contains("sending"), "{error}");
    // the payload is sealed and never answered
    assert!(entry.get("payload").is_none());
    assert!(!entry.to_string().contains("Outbox"), "{entry}");
    let id = entry["id"].as_str().unwrap().to_string();
    // the other filters and the unfiltered list
    let (_, delivered) = m.get("admin", "/notification?state=delivered").await;
    assert_eq!(delivered, json!([]));
    let (_, all) = m.get("admin", "/notification").await;
    assert_eq!(all.as_array().unwrap().len(), 1, "{all}");
    // admins only; bad parameters are named
    let (s, _) = m.get("alice", "/notification").await;
    assert_eq!(s, 403);
    let (s, _) = m
        .post("alice", &format!("/notification/{id}/retry"), &json!({}))
        .await;
    assert_eq!(s, 403);
    for (q, needle) in [
        ("state=lost", "`state`"),
        ("page_size=many", "`page_size`"),
        ("last=nope", "`last`"),
        ("color=red", "`color`"),
    ] {
        let (s, r) = m.get("admin", &format!("/notification?{q}")).await;
        assert_eq!(s, 400, "{q}: {r}");
        assert!(r.to_string().contains(needle), "{q}: {r}");
    }
    let (s, r) = m
        .post("admin", "/notification/nope/retry", &json!({}))
        .await;
    assert_eq!(s, 400, "{r}");
    let (s, r) = m
        .post(
            "admin",
            &format!("/notification/{}/retry", uuid::Uuid::now_v7()),
            &json!({}),
        )
        .await;
    assert_eq!(s, 404, "{r}");

    // the receiver comes up; a retry re-queues the delivery, which then arrives once
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .unwrap();
    let (rx, _) = receiver_on(listener).await;
    let (s, r) = m
        .post("admin", &format!("/notification/{id}/retry"), &json!({}))
        .await;
    assert_eq!(s, 200, "{r}");
    assert_eq!(r["id"], id.as_str());
    assert!(r["state"] == "pending" || r["state"] == "delivered", "{r}");
    wait_for("the retried delivery", || !verified(&rx).is_empty()).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (_, list) = m.get("admin", "/notification?state=delivered").await;
        if let Some(e) = list.as_array().unwrap().first() {
            assert_eq!(e["id"], id.as_str());
            assert!(e["delivered"].is_string() && e["given_up"].is_null(), "{e}");
            assert!(e["last_error"].is_null(), "{e}");
            break;
        }
        assert!(Instant::now() < deadline, "never marked delivered");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let got = verified(&rx);
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0]["id"], id.as_str());
    assert_eq!(got[0]["task"]["state"], "DONE");
    // a delivered one is not retried
    let (s, r) = m
        .post("admin", &format!("/notification/{id}/retry"), &json!({}))
        .await;
    assert_eq!(s, 409, "{r}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(verified(&rx).len(), 1, "delivered once");
    m.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_outbox_pages_newest_first() {
    let m = common::start_with(|c| {
        c.notify_backends = vec![Backend::Webhook {
            url: "http://127.0.0.1:9/closed".into(),
            secret: None,
        }];
        c.notify_max_attempts = 1;
    })
    .await;
    // hello-world: created, RUNNING, DONE each notified (strategy always)
    for i in 0..5 {
        let (s, t) = m
            .post(
                "admin",
                "/task",
                &json!({"template_name": "hello-world", "input": {"name": format!("P{}", "abcde".chars().nth(i).unwrap())}}),
            )
            .await;
        assert_eq!(s, 201, "{t}");
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (_, all) = m.get("admin", "/notification?state=given_up").await;
        if all.as_array().unwrap().len() >= 15 {
            break;
        }
        assert!(Instant::now() < deadline, "{all}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let first = m
        .client
        .get(m.url("/notification?page_size=10"))
        .basic_auth("admin", Some("admin-pw"))
        .send()
        .await
        .unwrap();
    assert_eq!(first.headers()["x-paging-pagesize"], "10");
    let link = first.headers()["link"].to_str().unwrap().to_string();
    let page1: Vec<Value> = first.json().await.unwrap();
    assert_eq!(page1.len(), 10);
    let next = link
        .strip_prefix('<')
        .and_then(|l| l.split_once('>'))
        .unwrap()
        .0
        .to_string();
    assert!(next.contains("last="), "{link}");
    let (s, page2) = m.get("admin", &next).await;
    assert_eq!(s, 200, "{page2}");
    let page2 = page2.as_array().unwrap();
    assert!(page2.len() >= 5, "{page2:?}");
    let ids: Vec<&str> = page1
        .iter()
        .chain(page2.iter())
        .map(|e| e["id"].as_str().unwrap())
        .collect();
    let mut sorted = ids.clone();
    sorted.sort_unstable_by(|a, b| b.cmp(a));
    sorted.dedup();
    assert_eq!(ids, sorted, "newest first, no repeats");
    m.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expected_duration_counts_from_the_first_run_and_reaches_a_status_hook_alone() {
    let (rx, base) = receiver().await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("slow.yaml"),
        r#"
name: slow-hooked
dialect: jinja
description: Waits for a callback, expected to take two seconds
title_format: "slow {{ input.x }}"
expected_duration: 2s
auto_runnable: true
allow_all_resolver_usernames: true
inputs:
  - name: x
steps:
  wait:
    action:
      type: callback
      configuration: {action: create}
  hold:
    dependencies: [wait]
    action:
      type: callback
      configuration: {action: wait, id: "{{ step.wait.output.id }}"}
"#,
    )
    .unwrap();
    let tdir = dir.path().to_path_buf();
    // no notification backend at all: only the task's status hook
    let m = common::start_with(move |c| {
        c.templates_dir = tdir;
        c.network_allow = vec!["127.0.0.1".into()];
    })
    .await;
    let created = Instant::now();
    let (s, t) = m
        .post(
            "admin",
            "/task",
            &json!({"template_name": "slow-hooked", "input": {"x": "1"}, "delay": "4s",
                    "status_hook": {"url": format!("{base}/hook")}}),
        )
        .await;
    assert_eq!(s, 201, "{t}");
    assert_eq!(t["state"], "DELAYED", "{t}");
    let id = t["id"].as_str().unwrap().to_string();
    let hooked = || -> Vec<Value> {
        rx.got
            .lock()
            .unwrap()
            .iter()
            .map(|(_, _, b)| serde_json::from_slice::<Value>(b).unwrap())
            .collect()
    };
    wait_for("the overdue call", || {
        hooked().iter().any(|v| v["action"] == "task_overdue")
    })
    .await;
    // delayed 4 s, then 2 s of running: never overdue before about 6 s after creation
    let elapsed = created.elapsed();
    assert!(elapsed >= Duration::from_millis(5500), "{elapsed:?}");
    let got = hooked();
    let overdue: Vec<&Value> = got
        .iter()
        .filter(|v| v["action"] == "task_overdue")
        .collect();
    assert_eq!(overdue.len(), 1, "{got:?}");
    assert_eq!(overdue[0]["task"]["id"], id.as_str());
    // waiting for its callback: running, neither DELAYED nor TODO
    assert_eq!(overdue[0]["task"]["state"], "WAITING");
    // the RUNNING change came before the overdue alert
    let running = got
        .iter()
        .position(|v| v["task"]["state"] == "RUNNING" && v["action"] == "task_state_update")
        .unwrap();
    let late = got
        .iter()
        .position(|v| v["action"] == "task_overdue")
        .unwrap();
    assert!(running < late, "{got:?}");
    // the deadline is done with once reported
    let left: i64 = sqlx::query_scalar("SELECT count(*) FROM task_deadline")
        .fetch_one(&m.running.state.store.pool)
        .await
        .unwrap();
    assert_eq!(left, 0);
    m.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_database_reads_go_durations_as_the_template_loader_does() {
    let db = mutask::testing::test_db().await;
    let data = tempfile::tempdir().unwrap();
    let a = mutask::app::start(common::test_config(&db, data.path()), Role::Api, false)
        .await
        .unwrap();
    let pool = &a.state.store.pool;
    for text in [
        "1s", "90s", "1h30m", "1.5h", "300ms", "2m0.5s", "0", "+5m", "10us", "10µs", ".5s", "5x",
        "10", "", "-1s", "1h-", "ms", "1e3s",
    ] {
        let secs: Option<f64> =
            sqlx::query_scalar("SELECT extract(epoch FROM mutask_go_duration($1))::float8")
                .bind(text)
                .fetch_one(pool)
                .await
                .unwrap();
        let rust = mutask::domain::duration::parse(text)
            .ok()
            .map(|d| d.as_secs_f64());
        match (secs, rust) {
            (Some(a), Some(b)) => assert!((a - b).abs() < 1e-6, "{text}: {a} vs {b}"),
            (None, None) => {}
            other => panic!("{text}: database {other:?}"),
        }
    }
    a.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overdue_candidates_come_earliest_deadline_first() {
    let dir = tempfile::tempdir().unwrap();
    for (name, expected) in [("slow-long", "1h"), ("slow-short", "1s")] {
        std::fs::write(
            dir.path().join(format!("{name}.yaml")),
            format!(
                r#"
name: {name}
description: Waits for a callback
title_format: "{name}"
expected_duration: {expected}
auto_runnable: true
allow_all_resolver_usernames: true
steps:
  wait:
    action:
      type: callback
      configuration: {{action: create}}
  hold:
    dependencies: [wait]
    action:
      type: callback
      configuration: {{action: wait, id: "{{{{ .step.wait.output.id }}}}"}}
"#
            ),
        )
        .unwrap();
    }
    let tdir = dir.path().to_path_buf();
    let m = common::start_with(move |c| c.templates_dir = tdir).await;
    let mut ids = Vec::new();
    // the long one first: ordering by creation would put it first
    for name in ["slow-long", "slow-short"] {
        let (s, t) = m
            .post(
                "admin",
                "/task",
                &json!({"template_name": name, "input": {}}),
            )
            .await;
        assert_eq!(s, 201, "{t}");
        ids.push(uuid::Uuid::parse_str(t["id"].as_str().unwrap()).unwrap());
    }
    let store = m.running.state.store.clone();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM task_deadline")
            .fetch_one(&store.pool)
            .await
            .unwrap();
        let marked: i64 = sqlx::query_scalar("SELECT count(*) FROM task_overdue")
            .fetch_one(&store.pool)
            .await
            .unwrap();
        if n + marked >= 2 {
            break;
        }
        assert!(Instant::now() < deadline, "deadlines not recorded");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // the short one is due first (or already reported); the long one is not due for an hour
    let candidates = mutask::store::notification::overdue_candidates(&store, 1)
        .await
        .unwrap();
    let reported: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM task_overdue WHERE task_id = $1)")
            .bind(ids[1])
            .fetch_one(&store.pool)
            .await
            .unwrap();
    if !reported {
        assert_eq!(candidates[0].0, ids[1], "{candidates:?}");
    }
    let all = mutask::store::notification::overdue_candidates(&store, 10)
        .await
        .unwrap();
    let long = all
        .iter()
        .find(|c| c.0 == ids[0])
        .expect("the long task waits");
    let started: chrono::DateTime<chrono::Utc> =
        sqlx::query_scalar("SELECT started FROM task_deadline WHERE task_id = $1")
            .bind(ids[0])
            .fetch_one(&store.pool)
            .await
            .unwrap();
    assert_eq!(long.3 - started, chrono::Duration::hours(1));
    assert!(all.windows(2).all(|w| w[0].3 <= w[1].3), "{all:?}");
    m.stop().await;
}

/// A notifier that cannot read what an event needs (here the task is sealed under a key it
/// lacks; in production, a read that fails for a moment) fails its pass and leaves the event
/// pending: it is never marked expanded with nothing sent. A notifier that can read it then
/// delivers it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_that_cannot_be_read_stays_pending_until_it_can() {
    use mutask::crypto::KeyRing;
    use mutask::domain::TaskId;
    use mutask::store::{self, Store};

    let (rx, base) = receiver().await;
    let (s, version, _db) = common::store_with_template("plain").await;
    let pool = s.pool.clone();
    // an instance that sends notifications is registered: task changes are recorded for it
    let instance = mutask::domain::InstanceId::new();
    store::instance::register(&s, instance, "all", true)
        .await
        .unwrap();
    let id = TaskId::new();
    let task = common::new_task(id, "plain", version, None);
    store::task::create(&s, &task, None, None).await.unwrap();
    let pending = || async {
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM task_event WHERE NOT expanded")
            .fetch_one(&pool)
            .await
            .unwrap()
    };
    assert_eq!(pending().await, 1, "the creation is an event");

    let notifier = |keys| {
        mutask::notify::Notifier::new(
            Store::new(pool.clone(), keys),
            backends(&base),
            mutask::notify::Strategy::Always,
            "http://mutask.test".into(),
        )
        .unwrap()
    };
    let blind = notifier(Arc::new(
        KeyRing::parse(&KeyRing::generate_entry().unwrap()).unwrap(),
    ));
    assert!(blind.tick().await.is_err(), "the task could not be opened");
    assert_eq!(pending().await, 1, "the event is still pending");
    let none: i64 = sqlx::query_scalar("SELECT count(*) FROM notification")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(none, 0);

    let (expanded, _) = notifier(s.keys.clone()).tick().await.unwrap();
    assert_eq!(expanded, 1);
    assert_eq!(pending().await, 0);
    wait_for("the creation notification", || {
        verified(&rx)
            .iter()
            .any(|v| v["task"]["id"] == id.to_string() && v["action"] == "task_created")
    })
    .await;
}

/// Notifications due together are claimed in the order of the changes they report, whatever
/// order their rows were written in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn due_notifications_come_in_the_order_of_their_events() {
    let (s, _db) = common::store().await;
    let pool = s.pool.clone();
    // written newest event first, all due at the same moment
    for event in [3i64, 1, 2] {
        for backend in ["webhook", "slack"] {
            sqlx::query(
                "INSERT INTO notification (id, event_id, backend, payload, next_attempt)
                 VALUES ($1, $2, $3, $4, '2026-01-01T00:00:00Z')",
            )
            .bind(uuid::Uuid::now_v7())
            .bind(event)
            .bind(backend)
            .bind(json!({"event": event}))
            .execute(&pool)
            .await
            .unwrap();
        }
    }
    let backends = ["webhook".to_string(), "slack".to_string()];
    let due = mutask::store::notification::claim_due(&s, &backends, 10, Duration::from_secs(60))
        .await
        .unwrap();
    let events: Vec<i64> = due
        .iter()
        .map(|d| d.payload["event"].as_i64().unwrap())
        .collect();
    assert_eq!(events, [1, 1, 2, 2, 3, 3]);
}

/// Task changes are recorded as events only when something will read them: the task has a
/// status hook, or an instance that sends notifications is registered. An instance without a
/// backend expands only hooked events, and only while no such instance is alive; it never claims
/// the deliveries of backends it does not have.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_are_recorded_for_their_readers_and_left_to_the_instances_that_can_send_them() {
    use mutask::domain::{InstanceId, TaskId};
    use mutask::notify::Notifier;
    use mutask::store;

    let (s, version, _db) = common::store_with_template("plain").await;
    let pool = s.pool.clone();
    let events_of = |id: TaskId| {
        let pool = pool.clone();
        async move {
            sqlx::query_as::<_, (String, bool, bool)>(
                "SELECT new_state, hooked, expanded FROM task_event WHERE task_id = $1 ORDER BY id",
            )
            .bind(id)
            .fetch_all(&pool)
            .await
            .unwrap()
        }
    };
    let create = |hook: bool| {
        let s = s.clone();
        async move {
            let id = TaskId::new();
            let mut task = common::new_task(id, "plain", version, None);
            if hook {
                task.status_hook = Some(json!({"url": "http://127.0.0.1:9/hook"}));
            }
            store::task::create(&s, &task, None, None).await.unwrap();
            id
        }
    };
    let quiet = Notifier::new(
        s.clone(),
        vec![],
        mutask::notify::Strategy::Always,
        "http://mutask.test".into(),
    )
    .unwrap();

    // Nobody sends notifications: a task without a hook leaves no event, one with a hook does.
    let plain = create(false).await;
    let hooked = create(true).await;
    assert_eq!(events_of(plain).await, []);
    assert_eq!(events_of(hooked).await, [("TODO".into(), true, false)]);
    // An instance that registers without a backend changes nothing.
    store::instance::register(&s, InstanceId::new(), "all", false)
        .await
        .unwrap();
    assert_eq!(events_of(create(false).await).await, []);

    // Once one that sends notifications is registered, every change is recorded for it...
    let (rx, base) = receiver().await;
    let sender_id = InstanceId::new();
    store::instance::register(&s, sender_id, "all", true)
        .await
        .unwrap();
    let plain = create(false).await;
    let hooked_too = create(true).await;
    assert_eq!(events_of(plain).await, [("TODO".into(), false, false)]);
    // ...and the instance without a backend leaves it all to that one, hooked events included.
    let (expanded, _) = quiet.tick().await.unwrap();
    assert_eq!(expanded, 0);
    assert_eq!(events_of(plain).await, [("TODO".into(), false, false)]);
    assert_eq!(events_of(hooked_too).await, [("TODO".into(), true, false)]);

    let sender = Notifier::new(
        s.clone(),
        backends(&base),
        mutask::notify::Strategy::Always,
        "http://mutask.test".into(),
    )
    .unwrap();
    sender.tick().await.unwrap();
    assert_eq!(events_of(plain).await, [("TODO".into(), false, true)]);
    wait_for("the plain task's creation", || {
        verified(&rx)
            .iter()
            .any(|v| v["task"]["id"] == plain.to_string() && v["action"] == "task_created")
    })
    .await;

    // A webhook delivery due now is not claimed by the instance without that backend, nor does
    // it count for that instance's next wake-up.
    *rx.failing.lock().unwrap() = true;
    let late = create(false).await;
    sender.tick().await.unwrap(); // expanded; its deliveries fail and wait for a retry
    sqlx::query(
        "UPDATE notification SET next_attempt = now() - interval '1 second'
          WHERE event_id IN (SELECT id FROM task_event WHERE task_id = $1)",
    )
    .bind(late)
    .execute(&pool)
    .await
    .unwrap();
    let attempts = || {
        let pool = pool.clone();
        async move {
            sqlx::query_as::<_, (String, i32, bool)>(
                "SELECT n.backend, n.attempts, n.given_up IS NOT NULL FROM notification n
                   JOIN task_event e ON e.id = n.event_id WHERE e.task_id = $1 ORDER BY n.backend",
            )
            .bind(late)
            .fetch_all(&pool)
            .await
            .unwrap()
        }
    };
    let before = attempts().await;
    assert_eq!(before.len(), 2, "{before:?}");
    assert!(
        before.iter().all(|(_, _, given_up)| !given_up),
        "{before:?}"
    );
    quiet.tick().await.unwrap();
    assert_eq!(
        attempts().await,
        before,
        "claimed by an instance without the backend"
    );
    let due_webhook = store::notification::next_attempt(&s, &["webhook".to_string()])
        .await
        .unwrap()
        .expect("the webhook delivery is pending");
    let own = [mutask::notify::STATUS_HOOK.to_string()];
    let own_next = store::notification::next_attempt(&s, &own).await.unwrap();
    assert!(
        own_next.is_none_or(|t| t > due_webhook),
        "{own_next:?} counts the webhook delivery due at {due_webhook}"
    );

    // When the sender is gone (no heartbeat for over a minute), the instance without a backend
    // expands the hooked events, for their hooks alone, and leaves the others for a sender.
    sqlx::query("UPDATE instance SET heartbeat = now() - interval '2 minutes' WHERE id = $1")
        .bind(sender_id)
        .execute(&pool)
        .await
        .unwrap();
    let hooked_late = create(true).await;
    let plain_late = create(false).await;
    let (expanded, _) = quiet.tick().await.unwrap();
    assert_eq!(expanded, 1, "only the hooked event");
    assert_eq!(events_of(hooked_late).await, [("TODO".into(), true, true)]);
    assert_eq!(events_of(plain_late).await, [("TODO".into(), false, false)]);
    let hook_rows: Vec<String> = sqlx::query_scalar(
        "SELECT n.backend FROM notification n JOIN task_event e ON e.id = n.event_id
          WHERE e.task_id = $1",
    )
    .bind(hooked_late)
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(hook_rows, [mutask::notify::STATUS_HOOK]);
}
