//! Garbage collection of finished tasks (`MUTASK_COMPLETED_TASK_EXPIRATION`): expired DONE,
//! CANCELLED and WONTFIX tasks go, with what hangs off them; nothing else does.

use crate::common;

use std::time::{Duration, Instant};

use mutask::domain::{ResolutionId, ResolutionState, StepState, TaskId};
use mutask::store::{
    self,
    resolution::{NewResolution, NewStep},
};
use serde_json::json;
use tokio_util::sync::CancellationToken;

/// Creates a task of `gc` with a resolution (one step) and a comment, then puts it in `state`
/// with its last activity `age` ago.
async fn task_aged(s: &store::Store, version: i32, state: &str, age: Duration) -> TaskId {
    let id = TaskId::new();
    let resolution = NewResolution {
        id: ResolutionId::new(),
        state: ResolutionState::Paused,
        resolver_username: None,
        run_max: 1,
        next_retry: None,
        resolver_input: json!({}),
        steps: vec![NewStep {
            name: "a".into(),
            state: StepState::Todo,
            definition: json!({"step": {"action": {"type": "echo"}}}),
        }],
    };
    let comment = store::comment::NewComment {
        id: mutask::domain::CommentId::new(),
        task_id: id,
        username: "alice".into(),
        body: "kept with the task".into(),
    };
    store::task::create(
        s,
        &common::new_task(id, "gc", version, None),
        Some(&resolution),
        Some(&comment),
    )
    .await
    .unwrap();
    sqlx::query(
        "UPDATE task SET state = $2, last_activity = now() - make_interval(secs => $3)
          WHERE id = $1",
    )
    .bind(id)
    .bind(state)
    .bind(age.as_secs_f64())
    .execute(&s.pool)
    .await
    .unwrap();
    id
}

/// Rows of each table that belong to `ids`.
async fn rows_of(s: &store::Store, ids: &[TaskId]) -> [i64; 4] {
    let ids: Vec<uuid::Uuid> = ids.iter().map(|i| i.0).collect();
    let mut n = [0; 4];
    for (i, sql) in [
        "SELECT count(*) FROM task WHERE id = ANY($1)",
        "SELECT count(*) FROM resolution WHERE task_id = ANY($1)",
        "SELECT count(*) FROM step s JOIN resolution r ON r.id = s.resolution_id
          WHERE r.task_id = ANY($1)",
        "SELECT count(*) FROM task_comment WHERE task_id = ANY($1)",
    ]
    .into_iter()
    .enumerate()
    {
        n[i] = sqlx::query_scalar(sql)
            .bind(&ids)
            .fetch_one(&s.pool)
            .await
            .unwrap();
    }
    n
}

#[tokio::test]
async fn the_collector_deletes_every_expired_finished_task_in_batches_and_nothing_else() {
    let (s, version, _db) = common::store_with_template("gc").await;
    let hour = Duration::from_secs(3600);
    let mut expired = Vec::new();
    for state in ["DONE", "CANCELLED", "WONTFIX"].iter().cycle().take(7) {
        expired.push(task_aged(&s, version, state, 2 * hour).await);
    }
    let mut kept = Vec::new();
    for (state, age) in [
        ("DONE", Duration::from_secs(60)),
        ("WONTFIX", Duration::from_secs(600)),
        ("TODO", 2 * hour),
        ("BLOCKED", 2 * hour),
        ("RUNNING", 2 * hour),
    ] {
        kept.push(task_aged(&s, version, state, age).await);
    }
    assert_eq!(rows_of(&s, &expired).await, [7, 7, 7, 7]);

    // A cancelled pass deletes nothing.
    let stopped = CancellationToken::new();
    stopped.cancel();
    let n = store::task::collect_garbage(&s, hour, 3, &stopped)
        .await
        .unwrap();
    assert_eq!(n, 0);
    assert_eq!(rows_of(&s, &expired).await, [7, 7, 7, 7]);

    // Batches of 3: one pass goes on until the 7 are gone (3 + 3 + 1).
    let n = store::task::collect_garbage(&s, hour, 3, &CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(n, 7);
    assert_eq!(rows_of(&s, &expired).await, [0, 0, 0, 0]);
    assert_eq!(rows_of(&s, &kept).await, [5, 5, 5, 5]);

    // Nothing more is expired.
    let n = store::task::collect_garbage(&s, hour, 3, &CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(n, 0);
    assert_eq!(rows_of(&s, &kept).await, [5, 5, 5, 5]);
}

#[tokio::test]
async fn an_instance_deletes_finished_tasks_once_the_configured_expiration_has_passed() {
    let m = common::start_with(|c| c.completed_task_expiration = Duration::from_secs(3)).await;
    let (st, done) = m
        .post(
            "alice",
            "/task?wait=20s",
            &json!({"template_name": "hello-world", "input": {"name": "Ada"}}),
        )
        .await;
    assert_eq!(st, 201, "{done}");
    assert_eq!(done["state"], "DONE", "{done}");
    let done_at = Instant::now();
    let done_id = done["id"].as_str().unwrap().to_string();
    // Waiting for a resolver: not finished, never collected.
    let (st, waiting) = m
        .post(
            "alice",
            "/task",
            &json!({"template_name": "deploy-approval",
                    "input": {"service": "web", "environment": "staging"}}),
        )
        .await;
    assert_eq!(st, 201, "{waiting}");
    assert_eq!(waiting["state"], "TODO", "{waiting}");
    let waiting_id = waiting["id"].as_str().unwrap().to_string();

    // Still there before its expiration.
    let (st, _) = m.get("alice", &format!("/task/{done_id}")).await;
    assert_eq!(st, 200);

    // Gone soon after it (the collector looks every second with a 3 s expiration).
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (st, body) = m.get("alice", &format!("/task/{done_id}")).await;
        if st == 404 {
            break;
        }
        assert_eq!(st, 200, "{body}");
        assert!(
            Instant::now() < deadline,
            "the DONE task was never collected"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        done_at.elapsed() >= Duration::from_millis(2500),
        "deleted {:?} after it finished, before its 3 s expiration",
        done_at.elapsed()
    );
    let pool = sqlx::PgPool::connect(&m.db.url).await.unwrap();
    let left: i64 = sqlx::query_scalar("SELECT count(*) FROM resolution WHERE task_id = $1::uuid")
        .bind(&done_id)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(left, 0, "its resolution went with it");
    pool.close().await;

    let (st, body) = m.get("alice", &format!("/task/{waiting_id}")).await;
    assert_eq!(st, 200, "{body}");
    assert_eq!(body["state"], "TODO");
    m.stop().await;
}
