//! The first HTTP surface against a real PostgreSQL: templates, task creation with input
//! validation, task reads with roles, and secrets never stored in clear.

use crate::common;

use serde_json::{Value, json};

#[tokio::test]
async fn ping_ready_and_authentication() {
    let m = common::start().await;
    let r = m
        .client
        .get(m.url("/unsecured/mon/ping"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.unwrap(), "pong");
    let r = m
        .client
        .get(m.url("/unsecured/mon/ready"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // no credentials, wrong password, untrusted proxy header: 401 with a JSON error
    let r = m.client.get(m.url("/template")).send().await.unwrap();
    assert_eq!(r.status(), 401);
    assert!(r.headers().contains_key("www-authenticate"));
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "unauthorized");
    let r = m
        .client
        .get(m.url("/template"))
        .basic_auth("alice", Some("nope"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let r = m
        .client
        .get(m.url("/template"))
        .header("x-remote-user", "admin")
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        401,
        "x-remote-user is only trusted from configured proxies"
    );
    let (s, body) = m.get("alice", "/no/such/route").await;
    assert_eq!(
        (s, body["error"]["code"].as_str()),
        (404, Some("not_found"))
    );
    m.stop().await;
}

#[tokio::test]
async fn lists_and_shows_the_shipped_templates() {
    let m = common::start().await;
    let (s, list) = m.get("alice", "/template").await;
    assert_eq!(s, 200);
    let names: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    for expected in ["deploy-approval", "hello-world", "retry-until-ready"] {
        assert!(
            names.contains(&expected),
            "{expected} missing from {names:?}"
        );
    }
    assert!(list[0].get("steps").is_none(), "the list omits steps");
    let (s, t) = m.get("alice", "/template/Hello-World").await;
    assert_eq!(s, 200);
    assert_eq!(t["name"], "hello-world");
    assert!(t["steps"]["sayHello"].is_object());
    assert_eq!(t["version"], 1);
    let (s, e) = m.get("alice", "/template/nope").await;
    assert_eq!(s, 404);
    assert!(e["error"]["message"].as_str().unwrap().contains("nope"));
    m.stop().await;
}

#[tokio::test]
async fn creates_a_task_and_controls_who_reads_it() {
    let m = common::start().await;
    let (s, task) = m
        .post(
            "alice",
            "/task",
            &json!({"template_name": "deploy-approval",
                    "input": {"service": "billing", "environment": "production", "api_token": "tok-123", "undeclared": 1},
                    "watcher_usernames": ["bob"], "comment": "please", "tags": {"team": "pay"}}),
        )
        .await;
    assert_eq!(s, 201, "{task}");
    assert_eq!(task["title"], "Deploy billing to production");
    assert_eq!(task["state"], "TODO");
    assert_eq!(task["requester_username"], "alice");
    assert_eq!(task["tags"]["team"], "pay");
    assert!(
        task["resolution"].is_null(),
        "not auto-runnable: waits for a resolver"
    );
    assert_eq!(
        task["input"]["api_token"], "**__SECRET__**",
        "masked for a non-admin"
    );
    assert!(task["input"].get("undeclared").is_none());
    let id = task["id"].as_str().unwrap().to_string();

    let (s, t) = m.get("admin", &format!("/task/{id}")).await;
    assert_eq!(s, 200);
    assert_eq!(t["input"]["api_token"], "tok-123", "admins see secrets");
    let (s, t) = m.get("bob", &format!("/task/{id}")).await;
    assert_eq!(s, 200, "watchers may read");
    assert_eq!(t["input"]["api_token"], "**__SECRET__**");

    // auto-runnable template: a resolution is created at once
    let (s, t) = m
        .post(
            "bob",
            "/task",
            &json!({"template_name": "hello-world", "input": {"name": "Ada"}}),
        )
        .await;
    assert_eq!(s, 201, "{t}");
    assert_eq!(t["title"], "Say hello to Ada");
    // the engine may already have picked it up
    assert!(
        ["TO_AUTORUN", "RUNNING", "DONE"].contains(&t["resolution_state"].as_str().unwrap()),
        "{t}"
    );
    assert_eq!(t["steps_total"], 1);
    let other = t["id"].as_str().unwrap().to_string();
    let (s, e) = m.get("alice", &format!("/task/{other}")).await;
    assert_eq!(s, 403, "{e}");
    let (s, _) = m.get("alice", "/task/not-a-uuid").await;
    assert_eq!(s, 400);
    let (s, _) = m
        .get("alice", &format!("/task/{}", uuid::Uuid::now_v7()))
        .await;
    assert_eq!(s, 404);

    // delayed creation
    let (s, t) = m
        .post(
            "bob",
            "/task",
            &json!({"template_name": "hello-world", "input": {"name": "Bo"}, "delay": "10m"}),
        )
        .await;
    assert_eq!(s, 201);
    assert_eq!(
        (t["state"].as_str(), t["resolution_state"].as_str()),
        (Some("DELAYED"), Some("TO_AUTORUN_DELAYED"))
    );
    m.stop().await;
}

#[tokio::test]
async fn yaml_bodies_are_accepted() {
    let m = common::start().await;
    let body = b"template_name: hello-world\ninput:\n  name: Yaml\n".to_vec();
    let (s, t) = m
        .post_raw("alice", "/task", "application/x-yaml", body)
        .await;
    assert_eq!(s, 201, "{t}");
    assert_eq!(t["title"], "Say hello to Yaml");
    m.stop().await;
}

#[tokio::test]
async fn rejected_requests_say_why_and_store_nothing() {
    let m = common::start_with(|c| c.max_body_bytes = 4096).await;
    let store = m.running.state.store.clone();
    let before = mutask::store::task::count(&store).await.unwrap();
    let cases: Vec<(Vec<u8>, &str, u16, &str)> = vec![
        (b"{\"template_name\": ".to_vec(), "application/json", 400, "malformed JSON"),
        (b"[1,2]".to_vec(), "application/json", 400, "invalid request body"),
        (b"".to_vec(), "application/json", 400, "empty"),
        (b"<xml/>".to_vec(), "application/xml", 415, "unsupported content type"),
        (
            serde_json::to_vec(&json!({"template_name": "nope"})).unwrap(),
            "application/json",
            404,
            "template `nope` not found",
        ),
        (
            serde_json::to_vec(&json!({"template_name": "deploy-approval", "input": {"service": 12, "environment": "production"}})).unwrap(),
            "application/json",
            422,
            "input.service: expected a string, got a number",
        ),
        (
            serde_json::to_vec(&json!({"template_name": "deploy-approval", "input": {"environment": "prod"}})).unwrap(),
            "application/json",
            422,
            "input.service: missing required input",
        ),
        (
            serde_json::to_vec(&json!({"template_name": "hello-world", "input": {"name": "x".repeat(5000)}})).unwrap(),
            "application/json",
            413,
            "larger than the limit of 4096 bytes",
        ),
        (
            serde_json::to_vec(&json!({"template_name": "hello-world", "input": {"name": "Ada"}, "delay": "soon"})).unwrap(),
            "application/json",
            422,
            "delay: invalid duration",
        ),
        (
            serde_json::to_vec(&json!({"template_name": "hello-world", "input": {"name": "Ada"}, "tags": {"_utask_parent_task_id": "x"}})).unwrap(),
            "application/json",
            422,
            "reserved",
        ),
        (
            serde_json::to_vec(&json!({"template_name": "hello-world", "input": {"name": "Ada"}, "resolver_usernames": ["bob"]})).unwrap(),
            "application/json",
            403,
            "resolver_usernames",
        ),
    ];
    for (body, ct, status, needle) in cases {
        let (s, e) = m.post_raw("alice", "/task", ct, body.clone()).await;
        assert_eq!(
            s,
            status,
            "{} -> {e}",
            String::from_utf8_lossy(&body[..body.len().min(80)])
        );
        let msg = e["error"]["message"].as_str().unwrap_or_default();
        assert!(msg.contains(needle), "expected {needle:?} in {msg:?}");
    }
    // every field error at once, each named
    let (s, e) = m
        .post("alice", "/task", &json!({"template_name": "deploy-approval", "input": {"service": "Bad Name!", "environment": "moon"}}))
        .await;
    assert_eq!(s, 422);
    let fields: Vec<&str> = e["error"]["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["input.service", "input.environment"]);
    assert_eq!(
        mutask::store::task::count(&store).await.unwrap(),
        before,
        "nothing stored"
    );
    m.stop().await;
}

#[tokio::test]
async fn a_canary_input_is_in_no_table_but_in_the_answer() {
    let m = common::start().await;
    let canary = format!("CANARY-{}", uuid::Uuid::new_v4().simple());
    let token = format!("TOKEN-{}", uuid::Uuid::new_v4().simple());
    let (s, t) = m
        .post(
            "admin",
            "/task",
            &json!({"template_name": "hello-world", "input": {"name": "Canary"}, "comment": format!("comment {canary}")}),
        )
        .await;
    assert_eq!(s, 201);
    let (s, t2) = m
        .post(
            "admin",
            "/task",
            &json!({"template_name": "retry-until-ready", "input": {"target": canary, "status": "ready"}}),
        )
        .await;
    assert_eq!(s, 201, "{t2}");
    // a password input referenced by nothing in clear, and masked in the title
    let (s, t3) = m
        .post(
            "alice",
            "/task",
            &json!({"template_name": "deploy-approval", "input": {"service": "svc", "environment": "staging", "api_token": token}}),
        )
        .await;
    assert_eq!(s, 201);
    let pool = &m.running.state.store.pool;
    let hits = common::find_in_all_tables(pool, &token).await;
    assert!(hits.is_empty(), "password input found in clear in {hits:?}");
    let hits = common::find_in_all_tables(pool, &canary).await;
    assert!(
        hits.is_empty(),
        "canary input found in clear in {hits:?} (the title prints it: titles are sealed too)"
    );
    // the answer to an entitled caller has them
    let (_, got) = m
        .get("admin", &format!("/task/{}", t3["id"].as_str().unwrap()))
        .await;
    assert_eq!(got["input"]["api_token"], token.as_str());
    let (_, got) = m
        .get("admin", &format!("/task/{}", t2["id"].as_str().unwrap()))
        .await;
    assert_eq!(got["input"]["target"], canary.as_str());
    let _ = t;
    m.stop().await;
}

async fn wait_for_state(m: &common::Instance, id: &str, states: &[&str]) -> Value {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let (_, t) = m.get("admin", &format!("/task/{id}")).await;
        if states.contains(&t["state"].as_str().unwrap_or_default()) {
            return t;
        }
        assert!(std::time::Instant::now() < deadline, "task {id} stuck: {t}");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn auto_runnable_tasks_run_to_done_through_the_api() {
    let m = common::start().await;
    let (s, t) = m
        .post(
            "alice",
            "/task",
            &json!({"template_name": "hello-world", "input": {"name": "Ada"}}),
        )
        .await;
    assert_eq!(s, 201);
    let done = wait_for_state(&m, t["id"].as_str().unwrap(), &["DONE"]).await;
    assert_eq!(done["result"]["greeting"], "Hello Ada!");
    assert_eq!(done["resolution_state"], "DONE");
    assert_eq!(done["steps_done"], 1);

    // a check condition sends the flow to the remediation branch
    let (_, t) = m
        .post("alice", "/task", &json!({"template_name": "retry-until-ready", "input": {"target": "db", "status": "broken"}}))
        .await;
    let done = wait_for_state(&m, t["id"].as_str().unwrap(), &["DONE", "BLOCKED"]).await;
    assert_eq!(done["state"], "DONE", "{done}");
    let rid: mutask::domain::ResolutionId = done["resolution"].as_str().unwrap().parse().unwrap();
    let steps = mutask::store::resolution::steps(&m.running.state.store, rid)
        .await
        .unwrap();
    let by: std::collections::HashMap<_, _> = steps
        .iter()
        .map(|s| (s.name.as_str(), s.state.as_str().to_string()))
        .collect();
    assert_eq!(by["check"], "NOT_READY");
    assert_eq!(by["remediate"], "DONE");
    assert_eq!(by["proceed"], "PRUNE");

    // not auto-runnable: waits for a resolver
    let (_, t) = m
        .post("alice", "/task", &json!({"template_name": "deploy-approval", "input": {"service": "svc", "environment": "staging"}}))
        .await;
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    let (_, got) = m
        .get("admin", &format!("/task/{}", t["id"].as_str().unwrap()))
        .await;
    assert_eq!(got["state"], "TODO");
    assert!(got["resolution"].is_null());
    m.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_callback_url_resumes_the_task() {
    let m = common::start().await;
    let (s, t) = m
        .post(
            "alice",
            "/task",
            &json!({"template_name": "wait-for-callback", "input": {"system": "ci"}}),
        )
        .await;
    assert_eq!(s, 201, "{t}");
    let id = t["id"].as_str().unwrap().to_string();
    let waiting = wait_for_state(&m, &id, &["WAITING"]).await;
    let rid: mutask::domain::ResolutionId =
        waiting["resolution"].as_str().unwrap().parse().unwrap();
    let steps = mutask::store::resolution::steps(&m.running.state.store, rid)
        .await
        .unwrap();
    let create = steps.iter().find(|s| s.name == "createCallback").unwrap();
    let url = create.output.as_ref().unwrap()["url"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(url.starts_with(&m.base), "{url}");
    let bad_token = url.split("?t=").next().unwrap().to_string() + "?t=wrong";
    let r = m
        .client
        .post(&bad_token)
        .json(&json!({"success": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let r = m
        .client
        .post(&url)
        .json(&json!({"success": "yes"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422, "schema violation");
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["fields"][0]["field"], "body/success");
    let r = m
        .client
        .post(&url)
        .json(&json!({"success": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = m
        .client
        .post(&url)
        .json(&json!({"success": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 409);
    let done = wait_for_state(&m, &id, &["DONE"]).await;
    // native (Jinja) templates print booleans the Jinja way
    assert_eq!(done["result"]["success"], "True");
    m.stop().await;
}

#[tokio::test]
async fn maintenance_mode_refuses_writes_and_runs_nothing() {
    let m = common::start_with(|c| c.maintenance_mode = true).await;
    let (s, e) = m
        .post(
            "alice",
            "/task",
            &json!({"template_name": "hello-world", "input": {"name": "Ada"}}),
        )
        .await;
    assert_eq!(s, 405);
    assert_eq!(e["error"]["message"], "Maintenance mode activated");
    let (s, _) = m.get("alice", "/template").await;
    assert_eq!(s, 200, "reads keep working");
    let r = m
        .client
        .post(m.url("/key-rotate"))
        .basic_auth("admin", Some("admin-pw"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "key rotation works in maintenance mode");
    assert_eq!(
        mutask::store::task::count(&m.running.state.store)
            .await
            .unwrap(),
        0
    );
    m.stop().await;
}

/// A connection listening to the claimers' channel (`mutask_resolution`), as other instances do.
async fn claim_listener(url: &str) -> sqlx::postgres::PgListener {
    let mut listener = sqlx::postgres::PgListener::connect(url).await.unwrap();
    listener
        .listen(mutask::store::task::RESOLUTION_CHANNEL)
        .await
        .unwrap();
    listener
}

/// With a free execution slot, the instance creates a task that runs at once already claimed by
/// itself and starts its cycle: no claim statement, and no NOTIFY wakes the other instances to
/// race it for the task. A task created delayed, or refused, takes no slot and leaves nothing
/// announced.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_created_where_the_claim_loop_has_room_is_claimed_here_without_a_notify() {
    let m = common::start().await;
    let hint = m
        .running
        .state
        .claim_hint
        .clone()
        .expect("an --role all instance claims");
    let (s, t) = m
        .post(
            "alice",
            "/task",
            &json!({"template_name": "hello-world", "input": {"name": "Ada"}, "delay": "1h"}),
        )
        .await;
    assert_eq!((s, t["state"].as_str()), (201, Some("DELAYED")), "{t}");
    assert_eq!(hint.announced(), 0, "no NOTIFY comes for a delayed task");
    let (s, t) = m
        .post(
            "alice",
            "/task",
            &json!({"template_name": "hello-world", "input": {"name": "4"}}),
        )
        .await;
    assert_eq!(s, 422, "{t}");
    assert_eq!(hint.announced(), 0, "nor for a refused one");
    assert!(hint.has_room(), "the slots taken for them were given back");

    let mut listener = claim_listener(&m.db.url).await;
    let (s, t) = m
        .post(
            "alice",
            "/task",
            &json!({"template_name": "hello-world", "input": {"name": "Ada"}}),
        )
        .await;
    assert_eq!(s, 201, "{t}");
    // created running: the answer is the row as the creating statement wrote it (a claim by
    // the claim loop comes after the answer is built, which then says TODO / TO_AUTORUN)
    assert_eq!(
        (t["state"].as_str(), t["resolution_state"].as_str()),
        (Some("RUNNING"), Some("RUNNING")),
        "{t}"
    );
    let id = t["id"].as_str().unwrap().to_string();
    let (s, done) = m.get("alice", &format!("/task/{id}?wait=30s")).await;
    assert_eq!((s, done["state"].as_str()), (200, Some("DONE")), "{done}");
    let (attempt, runs): (i64, i32) =
        sqlx::query_as("SELECT claim_attempt, run_count FROM resolution WHERE task_id = $1")
            .bind(uuid::Uuid::parse_str(&id).unwrap())
            .fetch_one(&m.running.state.store.pool)
            .await
            .unwrap();
    assert_eq!((attempt, runs), (1, 1), "claimed once");
    assert_eq!(hint.announced(), 0, "nothing to skip: no NOTIFY was sent");
    let heard = tokio::time::timeout(std::time::Duration::from_millis(500), listener.recv()).await;
    assert!(heard.is_err(), "a NOTIFY was sent: {heard:?}");
    m.stop().await;
}

/// An instance without room in its claim loop (every execution slot taken) still wakes the
/// other instances when it creates a task, and skips that NOTIFY itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_without_room_wakes_the_others_for_the_tasks_it_creates() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let (templates, scripts) = (dir.path().join("templates"), dir.path().join("scripts"));
    std::fs::create_dir_all(&templates).unwrap();
    std::fs::create_dir_all(&scripts).unwrap();
    std::fs::copy(
        common::shipped_templates().join("hello-world.yaml"),
        templates.join("hello-world.yaml"),
    )
    .unwrap();
    std::fs::write(
        templates.join("slow-step.yaml"),
        "name: slow-step\ndialect: jinja\ndescription: sleeps\ntitle_format: slow\n\
         auto_runnable: true\nallow_all_resolver_usernames: true\nsteps:\n  nap:\n    \
         action:\n      type: script\n      configuration:\n        file_path: nap.sh\n",
    )
    .unwrap();
    let nap = scripts.join("nap.sh");
    std::fs::write(&nap, "#!/bin/sh\nsleep 3\necho '{}'\n").unwrap();
    std::fs::set_permissions(&nap, std::fs::Permissions::from_mode(0o755)).unwrap();
    let m = common::start_with(|c| {
        c.max_concurrent_executions = 1;
        c.templates_dir = templates.clone();
        c.scripts_dir = scripts.clone();
    })
    .await;
    let hint = m.running.state.claim_hint.clone().unwrap();
    let mut listener = claim_listener(&m.db.url).await;
    // the one slot is taken by a task that runs for a while
    let (s, busy) = m
        .post(
            "alice",
            "/task",
            &json!({"template_name": "slow-step", "input": {}}),
        )
        .await;
    assert_eq!(s, 201, "{busy}");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while hint.has_room() {
        assert!(
            std::time::Instant::now() < deadline,
            "the slot never filled"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let (s, t) = m
        .post(
            "alice",
            "/task",
            &json!({"template_name": "hello-world", "input": {"name": "Ada"}}),
        )
        .await;
    assert_eq!(s, 201, "{t}");
    let n = tokio::time::timeout(std::time::Duration::from_secs(5), listener.recv())
        .await
        .expect("the creation NOTIFYs the claimers")
        .unwrap();
    assert_eq!(n.payload(), t["resolution"].as_str().unwrap(), "{t}");
    m.stop().await;
}

/// A task created claimed starts its cycle from what the creating statement wrote, without
/// reading it back: that in-memory copy is what the database holds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_created_claimed_starts_from_what_the_database_holds() {
    use mutask::domain::{InstanceId, ResolutionId, TaskId};
    use mutask::store::resolution::{self, NewClaim};
    let m = common::start().await;
    let state = &m.running.state;
    // claimed by an instance that is not running: nothing runs the task while it is compared
    let owner = InstanceId::new();
    let ids = (TaskId::new(), ResolutionId::new());
    let who = mutask::tasks::Requester {
        username: "alice".into(),
        groups: vec![],
        is_admin: false,
    };
    let req = mutask::tasks::CreateRequest {
        template_name: "hello-world".into(),
        input: json!({"name": "Ada"}).as_object().unwrap().clone(),
        comment: Some("first".into()),
        ids: Some(ids),
        claim: Some(NewClaim {
            owner,
            lease: std::time::Duration::from_secs(600),
        }),
        ..Default::default()
    };
    let created = mutask::tasks::create_claimed(&state.store, &state.renderer, &who, req)
        .await
        .unwrap();
    let (claim, loaded) = created.claimed.expect("created claimed");
    assert_eq!(
        (claim.resolution, claim.owner, claim.attempt),
        (ids.1, owner, 1)
    );
    let stored = resolution::load_many(&state.store, &[ids.1]).await.unwrap();
    assert_eq!(stored.len(), 1);
    assert_eq!(format!("{:?}", stored[0]), format!("{loaded:?}"));
    assert_eq!(
        format!("{:?}", loaded.1.state),
        "Running",
        "the task is created running"
    );
    // the lease is the one asked for: the claim loops leave the task alone, crash recovery takes
    // it when the lease expires
    let left: f64 = sqlx::query_scalar(
        "SELECT extract(epoch FROM lease_expires - last_start)::float8 FROM resolution WHERE id = $1",
    )
    .bind(ids.1)
    .fetch_one(&state.store.pool)
    .await
    .unwrap();
    assert!((left - 600.0).abs() < 1e-3, "{left}");
    m.stop().await;
}
