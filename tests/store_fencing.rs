//! The engine's fenced writes, statement by statement: a claim sets its task RUNNING; a write
//! with a stale claim (an older `claim_attempt`, or after the cycle ended) changes nothing and
//! reports the lost claim; the end of a cycle writes steps, resolution and task together and
//! wakes (and notifies) a parent waiting for the task.

use crate::common;

use mutask::domain::{InstanceId, ResolutionId, ResolutionState, StepState, TaskId, TaskState};
use mutask::store::resolution::{
    self as res, Claim, CycleEnd, LostClaim, NewResolution, NewStep, StepWrite,
};
use mutask::store::task::NewTask;
use mutask::store::{self, Store};
use serde_json::{Value, json};

fn task(id: TaskId, version: i32, parent: Option<TaskId>) -> NewTask {
    common::new_task(id, "fenced", version, parent)
}

fn resolution(id: ResolutionId, state: ResolutionState, steps: &[&str]) -> NewResolution {
    NewResolution {
        id,
        state,
        resolver_username: None,
        run_max: 10,
        next_retry: None,
        resolver_input: json!({}),
        steps: steps
            .iter()
            .map(|n| NewStep {
                name: n.to_string(),
                state: StepState::Todo,
                definition: json!({"step": {"action": {"type": "echo"}}}),
            })
            .collect(),
    }
}

fn write(name: &str, position: i32, state: StepState, output: Option<Value>) -> StepWrite {
    StepWrite {
        name: name.into(),
        position,
        state,
        try_count: 1,
        last_run: Some(chrono::Utc::now()),
        definition: json!({"step": {"action": {"type": "echo"}}}),
        output,
        metadata: None,
        error: None,
        children: None,
    }
}

async fn step_states(s: &Store, id: ResolutionId) -> Vec<(String, String)> {
    res::steps(s, id)
        .await
        .unwrap()
        .into_iter()
        .map(|r| (r.name, r.state.as_str().to_string()))
        .collect()
}

async fn task_row(s: &Store, id: TaskId) -> (String, i32) {
    sqlx::query_as("SELECT state, steps_done FROM task WHERE id = $1")
        .bind(id)
        .fetch_one(&s.pool)
        .await
        .unwrap()
}

/// Creates `t` with a resolution `r` in `state` holding `steps` (no comment).
async fn create(s: &Store, t: &NewTask, r: ResolutionId, state: ResolutionState, steps: &[&str]) {
    store::task::create(s, t, Some(&resolution(r, state, steps)), None)
        .await
        .unwrap();
}

/// A connection listening for claimable resolutions.
async fn listen(s: &Store) -> sqlx::postgres::PgListener {
    let mut listener = sqlx::postgres::PgListener::connect_with(&s.pool)
        .await
        .unwrap();
    listener
        .listen(store::task::RESOLUTION_CHANNEL)
        .await
        .unwrap();
    listener
}

/// A migrated database, its store, and the version of the `fenced` template.
async fn setup() -> (Store, i32, mutask::testing::TestDb) {
    common::store_with_template("fenced").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_claims_write_nothing_and_the_end_of_a_cycle_wakes_the_parent() {
    let (s, version, _db) = setup().await;

    // a parent waiting for its child, and the child ready to run
    let (parent, parent_res) = (TaskId::new(), ResolutionId::new());
    let mut p = task(parent, version, None);
    p.state = TaskState::Waiting;
    create(&s, &p, parent_res, ResolutionState::Waiting, &[]).await;
    let (child, child_res) = (TaskId::new(), ResolutionId::new());
    create(
        &s,
        &task(child, version, Some(parent)),
        child_res,
        ResolutionState::ToAutorun,
        &["a", "b"],
    )
    .await;

    let mut listener = listen(&s).await;

    // the claim takes the child only (the parent is not due) and sets its task RUNNING
    let me = InstanceId::new();
    let lease = std::time::Duration::from_secs(60);
    let claims = res::claim_due(&s, me, 10, lease).await.unwrap();
    assert_eq!(claims.len(), 1, "{claims:?}");
    let (claim, previous) = claims[0];
    assert_eq!(claim.resolution, child_res);
    assert_eq!(previous, ResolutionState::ToAutorun);
    assert_eq!(task_row(&s, child).await.0, "RUNNING");
    assert_eq!(task_row(&s, parent).await.0, "WAITING");

    // an older attempt and another owner are both refused, and nothing changes
    let stale = Claim {
        attempt: claim.attempt - 1,
        ..claim
    };
    let other = Claim {
        owner: InstanceId::new(),
        ..claim
    };
    for bad in [stale, other] {
        let r = res::write_steps(
            &s,
            &bad,
            &[write("a", 0, StepState::Done, Some(json!("late")))],
            &["b".to_string()],
            Some(2),
        )
        .await
        .unwrap();
        assert_eq!(r, Err(LostClaim(child_res)));
    }
    assert_eq!(
        step_states(&s, child_res).await,
        [("a".into(), "TODO".into()), ("b".into(), "TODO".into())]
    );
    assert_eq!(task_row(&s, child).await, ("RUNNING".into(), 0));

    // the owner's write lands: `a` RUNNING, `b` removed, a new step added, steps_done set
    res::write_steps(
        &s,
        &claim,
        &[
            write("a", 0, StepState::Running, None),
            write("c", 2, StepState::Todo, None),
        ],
        &["b".to_string()],
        Some(0),
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(
        step_states(&s, child_res).await,
        [("a".into(), "RUNNING".into()), ("c".into(), "TODO".into())]
    );
    assert_eq!(task_row(&s, child).await, ("RUNNING".into(), 0));

    // the end of the cycle, stale first: refused, the resolution stays RUNNING
    let end = CycleEnd {
        state: ResolutionState::Done,
        next_retry: None,
        task_state: TaskState::Done,
        task_result: Some(json!({"answer": 42})),
        steps_done: 2,
        task_tags: Some(json!({"env": "test"})),
        has_parent: true,
    };
    let steps = [
        write("a", 0, StepState::Done, Some(json!({"ok": true}))),
        write("c", 2, StepState::Done, None),
    ];
    // (without the task id: the result's sealing reads it)
    let r = res::end_cycle(&s, &stale, None, &steps, &[], &end)
        .await
        .unwrap();
    assert_eq!(r, Err(LostClaim(child_res)));
    assert_eq!(
        res::get(&s, child_res).await.unwrap().unwrap().state,
        ResolutionState::Running
    );
    assert!(
        res::get(&s, parent_res)
            .await
            .unwrap()
            .unwrap()
            .next_retry
            .is_none()
    );

    res::end_cycle(&s, &claim, Some(child), &steps, &[], &end)
        .await
        .unwrap()
        .unwrap();
    let r = res::get(&s, child_res).await.unwrap().unwrap();
    assert_eq!(r.state, ResolutionState::Done);
    let owner: Option<uuid::Uuid> =
        sqlx::query_scalar("SELECT owner_instance FROM resolution WHERE id = $1")
            .bind(child_res)
            .fetch_one(&s.pool)
            .await
            .unwrap();
    assert_eq!(owner, None);
    assert_eq!(task_row(&s, child).await, ("DONE".into(), 2));
    let t = store::task::get(&s, child).await.unwrap().unwrap();
    assert_eq!(t.result, Some(json!({"answer": 42})));
    assert_eq!(t.tags, json!({"env": "test"}));
    let stored = res::steps(&s, child_res).await.unwrap();
    assert_eq!(stored[0].output, Some(json!({"ok": true})));
    assert_eq!(stored[1].state, StepState::Done);

    // the parent was woken (next_retry now) and the claimers told so
    assert!(
        res::get(&s, parent_res)
            .await
            .unwrap()
            .unwrap()
            .next_retry
            .is_some()
    );
    let n = tokio::time::timeout(std::time::Duration::from_secs(5), async {
        loop {
            let n = listener.recv().await.unwrap();
            if n.payload() == parent_res.to_string() {
                return n;
            }
        }
    })
    .await
    .expect("a notification naming the parent's resolution");
    assert_eq!(n.channel(), store::task::RESOLUTION_CHANNEL);

    // the same claim after the end: refused
    let r = res::end_cycle(&s, &claim, Some(child), &steps, &[], &end)
        .await
        .unwrap();
    assert_eq!(r, Err(LostClaim(child_res)));
}

/// Two children of one batch finishing at the same time: each checks its siblings before the
/// other has committed. The parent must still be woken, by whichever finishes last.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_last_of_two_batch_children_finishing_together_wakes_the_parent() {
    let (s, version, _db) = setup().await;
    let (parent, parent_res) = (TaskId::new(), ResolutionId::new());
    let mut p = task(parent, version, None);
    p.state = TaskState::Waiting;
    create(&s, &p, parent_res, ResolutionState::Waiting, &[]).await;
    let batch = store::task::create_batch(&s).await.unwrap();
    let (mut children, mut resolutions) = (Vec::new(), Vec::new());
    for _ in 0..2 {
        let (c, r) = (TaskId::new(), ResolutionId::new());
        let mut t = task(c, version, Some(parent));
        t.batch_id = Some(batch);
        create(&s, &t, r, ResolutionState::ToAutorun, &["a"]).await;
        children.push(c);
        resolutions.push(r);
    }
    let me = InstanceId::new();
    let claims = res::claim_due(&s, me, 10, std::time::Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(claims.len(), 2);

    // the first child finishes in a transaction that is not committed yet: its sibling is
    // still running, so it does not wake the parent
    let mut first = s.pool.begin().await.unwrap();
    sqlx::query("UPDATE task SET state = 'DONE' WHERE id = $1")
        .bind(children[0])
        .execute(&mut *first)
        .await
        .unwrap();
    let woken = res::wake_parent(&mut first, children[0]).await.unwrap();
    assert!(woken.is_empty());

    // meanwhile the second child's cycle ends; it waits for the first to commit
    let second = claims
        .iter()
        .map(|(c, _)| *c)
        .find(|c| c.resolution == resolutions[1])
        .unwrap();
    let end = CycleEnd {
        state: ResolutionState::Done,
        next_retry: None,
        task_state: TaskState::Done,
        task_result: None,
        steps_done: 1,
        task_tags: None,
        has_parent: true,
    };
    let store2 = s.clone();
    let ending = tokio::spawn(async move {
        res::end_cycle(
            &store2,
            &second,
            None,
            &[write("a", 0, StepState::Done, None)],
            &[],
            &end,
        )
        .await
    });
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(
        !ending.is_finished(),
        "the second child must wait for the parent's lock"
    );
    first.commit().await.unwrap();
    ending.await.unwrap().unwrap().unwrap();

    let parent_now = res::get(&s, parent_res).await.unwrap().unwrap();
    assert!(parent_now.next_retry.is_some(), "the parent was not woken");
    assert_eq!(task_row(&s, children[1]).await.0, "DONE");
}

/// Several ends in one statement: each is fenced by its own claim, a stale one writes nothing
/// and the others land whole (steps, resolution, task, result).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batched_ends_are_fenced_one_by_one() {
    let (s, version, _db) = setup().await;
    let mut tasks = Vec::new();
    for _ in 0..3 {
        let (t, r) = (TaskId::new(), ResolutionId::new());
        create(
            &s,
            &task(t, version, None),
            r,
            ResolutionState::ToAutorun,
            &["a", "b"],
        )
        .await;
        tasks.push((t, r));
    }
    let claims = res::claim_due(
        &s,
        InstanceId::new(),
        10,
        std::time::Duration::from_secs(60),
    )
    .await
    .unwrap();
    assert_eq!(claims.len(), 3);
    let claim_of = |r: ResolutionId| claims.iter().find(|(c, _)| c.resolution == r).unwrap().0;
    let ends: Vec<res::EndOfCycle> = tasks
        .iter()
        .enumerate()
        .map(|(i, (t, r))| {
            let mut claim = claim_of(*r);
            if i == 1 {
                claim.attempt += 7; // not the current attempt
            }
            res::EndOfCycle {
                claim,
                task: *t,
                steps: vec![write("a", 0, StepState::Done, Some(json!({"n": i})))],
                removed: vec!["b".into()],
                end: CycleEnd {
                    state: ResolutionState::Done,
                    next_retry: None,
                    task_state: TaskState::Done,
                    task_result: Some(json!({"result": i})),
                    steps_done: 1,
                    task_tags: None,
                    has_parent: false,
                },
            }
        })
        .collect();
    let mut fenced = res::end_cycles(&s, &ends).await.unwrap();
    fenced.sort();
    let mut expected = vec![tasks[0].1, tasks[2].1];
    expected.sort();
    assert_eq!(fenced, expected);
    for (i, (t, r)) in tasks.iter().enumerate() {
        let rec = store::task::get(&s, *t).await.unwrap().unwrap();
        let steps = res::steps(&s, *r).await.unwrap();
        if i == 1 {
            assert_eq!(rec.state, TaskState::Running);
            assert_eq!(rec.result, None);
            assert_eq!(steps.len(), 2, "nothing removed");
            assert_eq!(steps[0].state, StepState::Todo);
            assert_eq!(
                res::get(&s, *r).await.unwrap().unwrap().state,
                ResolutionState::Running
            );
        } else {
            assert_eq!(rec.state, TaskState::Done);
            assert_eq!(rec.steps_done, 1);
            assert_eq!(rec.result, Some(json!({"result": i})));
            assert_eq!(steps.len(), 1, "b removed");
            assert_eq!(steps[0].output, Some(json!({"n": i})));
            assert_eq!(
                res::get(&s, *r).await.unwrap().unwrap().state,
                ResolutionState::Done
            );
        }
    }
}

/// The end of a cycle that leaves a resolution WAITING (`next_retry` none), fenced by `claim`.
fn waiting(claim: Claim, task: TaskId) -> res::EndOfCycle {
    res::EndOfCycle {
        claim,
        task,
        steps: vec![],
        removed: vec![],
        end: CycleEnd {
            state: ResolutionState::Waiting,
            next_retry: None,
            task_state: TaskState::Waiting,
            task_result: None,
            steps_done: 0,
            task_tags: None,
            has_parent: false,
        },
    }
}

/// A child that finishes, or a callback that is called, while its parent's cycle still runs
/// (after the step looked and found nothing done) must not be lost when that cycle ends
/// WAITING: the parent is claimable again at once. Each round uses a different path: a first
/// wake-up, a later one (the parent's `next_retry` already holds the one that started the
/// run), and a callback; then a WAITING end with no wake-up stays unclaimable.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wake_up_that_comes_while_the_parent_runs_is_kept_when_it_ends_waiting() {
    let (s, version, _db) = setup().await;
    let me = InstanceId::new();
    let lease = std::time::Duration::from_secs(60);
    let (parent, parent_res) = (TaskId::new(), ResolutionId::new());
    create(
        &s,
        &task(parent, version, None),
        parent_res,
        ResolutionState::ToAutorun,
        &[],
    )
    .await;
    let claims = res::claim_due(&s, me, 10, lease).await.unwrap();
    assert_eq!(claims.len(), 1);
    let mut parent_claim = claims[0].0;

    let done = CycleEnd {
        state: ResolutionState::Done,
        next_retry: None,
        task_state: TaskState::Done,
        task_result: None,
        steps_done: 0,
        task_tags: None,
        has_parent: true,
    };
    for round in 0..3 {
        if round < 2 {
            // a child runs and ends while the parent's cycle is in flight
            let (child, child_res) = (TaskId::new(), ResolutionId::new());
            create(
                &s,
                &task(child, version, Some(parent)),
                child_res,
                ResolutionState::ToAutorun,
                &[],
            )
            .await;
            let claims = res::claim_due(&s, me, 10, lease).await.unwrap();
            assert_eq!(claims.len(), 1, "round {round}: only the child is due");
            res::end_cycle(&s, &claims[0].0, None, &[], &[], &done)
                .await
                .unwrap()
                .unwrap();
        } else {
            let id = uuid::Uuid::now_v7();
            store::callback::create(&s, id, parent, parent_res, "wait", "secret", None)
                .await
                .unwrap();
            assert!(
                store::callback::record_call(&s, id, &json!({"ok": true}))
                    .await
                    .unwrap()
            );
        }
        // then the parent's cycle ends WAITING, through the batched end or the single one
        if round == 1 {
            let end = waiting(parent_claim, parent).end;
            res::end_cycle(&s, &parent_claim, None, &[], &[], &end)
                .await
                .unwrap()
                .unwrap();
        } else {
            let fenced = res::end_cycles(&s, &[waiting(parent_claim, parent)])
                .await
                .unwrap();
            assert_eq!(fenced, [parent_res]);
        }
        let claims = res::claim_due(&s, me, 10, lease).await.unwrap();
        assert_eq!(
            claims.len(),
            1,
            "round {round}: the wake-up was lost: {:?}",
            res::get(&s, parent_res).await.unwrap()
        );
        assert_eq!(claims[0].0.resolution, parent_res);
        assert_eq!(claims[0].1, ResolutionState::Waiting);
        parent_claim = claims[0].0;
    }

    // nothing woke it during this run: WAITING, and not claimable
    let fenced = res::end_cycles(&s, &[waiting(parent_claim, parent)])
        .await
        .unwrap();
    assert_eq!(fenced, [parent_res]);
    assert!(res::claim_due(&s, me, 10, lease).await.unwrap().is_empty());
    assert_eq!(
        res::get(&s, parent_res).await.unwrap().unwrap().state,
        ResolutionState::Waiting
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claim_handed_back_mid_cycle_is_recovered_like_a_crash() {
    let (s, version, _db) = setup().await;
    let (t, r) = (TaskId::new(), ResolutionId::new());
    create(
        &s,
        &task(t, version, None),
        r,
        ResolutionState::ToAutorun,
        &["a"],
    )
    .await;
    let mut listener = listen(&s).await;
    let me = InstanceId::new();
    let lease = std::time::Duration::from_secs(60);
    let (claim, _) = res::claim_due(&s, me, 10, lease).await.unwrap()[0];
    // a stale claim (an older attempt) hands nothing back
    let stale = Claim {
        attempt: claim.attempt - 1,
        ..claim
    };
    assert!(!res::hand_back_claim(&s, &stale).await.unwrap());
    assert_eq!(
        res::get(&s, r).await.unwrap().unwrap().state,
        ResolutionState::Running
    );
    // the owner's hand-back makes it CRASHED and claimable at once, and wakes the instances
    assert!(res::hand_back_claim(&s, &claim).await.unwrap());
    let after = res::get(&s, r).await.unwrap().unwrap();
    assert_eq!(after.state, ResolutionState::Crashed);
    let n = tokio::time::timeout(std::time::Duration::from_secs(5), listener.recv())
        .await
        .expect("a wake-up")
        .unwrap();
    assert_eq!(n.payload(), "handback");
    // the claim is spent: a second hand-back changes nothing, and the next claim takes it
    assert!(!res::hand_back_claim(&s, &claim).await.unwrap());
    let again = res::claim_due(&s, InstanceId::new(), 10, lease)
        .await
        .unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].0.resolution, r);
    assert_eq!(again[0].1, ResolutionState::Crashed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_is_created_whole_in_one_statement_and_claimers_are_notified() {
    let (s, version, _db) = setup().await;
    let mut listener = listen(&s).await;

    // not claimable: created without a notification
    let (quiet, quiet_res) = (TaskId::new(), ResolutionId::new());
    create(
        &s,
        &task(quiet, version, None),
        quiet_res,
        ResolutionState::Todo,
        &["a"],
    )
    .await;

    // claimable, with steps, a comment and an expected duration
    let (id, res_id) = (TaskId::new(), ResolutionId::new());
    let mut t = task(id, version, None);
    t.expected_duration = Some("1h30m".into());
    let comment = mutask::store::comment::NewComment {
        id: mutask::domain::CommentId::new(),
        task_id: id,
        username: "alice".into(),
        body: "first words".into(),
    };
    let at = store::task::create(
        &s,
        &t,
        Some(&resolution(res_id, ResolutionState::ToAutorun, &["a", "b"])),
        Some(&comment),
    )
    .await
    .unwrap();
    let n = tokio::time::timeout(std::time::Duration::from_secs(10), listener.recv())
        .await
        .expect("no notification within 10 s")
        .unwrap();
    assert_eq!(
        n.payload(),
        res_id.to_string(),
        "the first notification names the claimable resolution"
    );

    let row: (i32, Option<f64>, chrono::DateTime<chrono::Utc>, String) = sqlx::query_as(
        "SELECT steps_total, extract(epoch FROM expected_duration)::float8, created, state
           FROM task WHERE id = $1",
    )
    .bind(id)
    .fetch_one(&s.pool)
    .await
    .unwrap();
    assert_eq!(row.0, 2, "steps_total is written with the task");
    assert_eq!(row.1, Some(5400.0), "expected_duration as an interval");
    assert_eq!(
        row.2, at.created,
        "the answered timestamps are the stored ones"
    );
    assert_eq!(row.3, "TODO");
    assert_eq!(
        step_states(&s, res_id).await,
        vec![("a".into(), "TODO".into()), ("b".into(), "TODO".into())]
    );
    let comments = store::comment::list(&s, id).await.unwrap();
    assert_eq!(comments.len(), 1);
    assert_eq!(comments[0].body, "first words");
    // the record built from what was written is the one read back
    let rec = store::task::get(&s, id).await.unwrap().unwrap();
    let built = t.record(
        at,
        Some(&resolution(res_id, ResolutionState::ToAutorun, &["a", "b"])),
    );
    assert_eq!(
        (
            built.steps_total,
            built.resolution_id,
            built.created,
            built.title
        ),
        (rec.steps_total, rec.resolution_id, rec.created, rec.title)
    );

    // a failing part (a resolution id already taken) leaves nothing behind
    let orphan = TaskId::new();
    let err = store::task::create(
        &s,
        &task(orphan, version, None),
        Some(&resolution(res_id, ResolutionState::ToAutorun, &["a"])),
        None,
    )
    .await;
    assert!(err.is_err(), "a duplicate resolution id is refused");
    assert!(store::task::get(&s, orphan).await.unwrap().is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cycle_reads_its_resolution_task_and_steps_in_one_statement() {
    let (s, version, _db) = setup().await;
    let (id, res_id) = (TaskId::new(), ResolutionId::new());
    let mut t = task(id, version, None);
    t.input = json!({"secret": "kept sealed"});
    create(&s, &t, res_id, ResolutionState::ToAutorun, &["b", "a", "c"]).await;
    let (empty, empty_res) = (TaskId::new(), ResolutionId::new());
    create(
        &s,
        &task(empty, version, None),
        empty_res,
        ResolutionState::Todo,
        &[],
    )
    .await;
    // one step with an output and an error, the others with none (NULLs inside the arrays)
    let me = InstanceId::new();
    let claims = res::claim_due(&s, me, 10, std::time::Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(claims.len(), 1);
    let mut w = write("a", 1, StepState::ServerError, Some(json!({"out": 1})));
    w.error = Some("boom".into());
    res::write_steps(&s, &claims[0].0, &[w], &[], None)
        .await
        .unwrap()
        .unwrap();

    let mut loaded = res::load_many(&s, &[res_id, empty_res, ResolutionId::new()])
        .await
        .unwrap();
    assert_eq!(loaded.len(), 2, "a missing resolution is left out");
    loaded.sort_by_key(|(r, _, _)| r.id != res_id);
    let (r, tk, steps) = &loaded[0];
    assert_eq!(
        (r.id, r.task_id, r.state),
        (res_id, id, ResolutionState::Running)
    );
    assert_eq!(r.owner_instance, Some(me));
    assert_eq!(r.claim_attempt, claims[0].0.attempt);
    assert_eq!(tk.id, id);
    assert_eq!(tk.input, json!({"secret": "kept sealed"}));
    assert_eq!(tk.resolution_id, Some(res_id));
    // the same as the statement-per-kind reads
    let by_steps = res::steps(&s, res_id).await.unwrap();
    let names: Vec<&str> = steps.iter().map(|x| x.name.as_str()).collect();
    assert_eq!(names, ["b", "a", "c"], "position order");
    assert_eq!(
        names,
        by_steps.iter().map(|x| x.name.as_str()).collect::<Vec<_>>()
    );
    assert_eq!(steps[1].state, StepState::ServerError);
    assert_eq!(steps[1].output, Some(json!({"out": 1})));
    assert_eq!(steps[1].error.as_deref(), Some("boom"));
    assert_eq!(
        (steps[0].output.clone(), steps[2].error.clone()),
        (None, None)
    );
    assert_eq!(steps[0].definition, by_steps[0].definition);
    let (r, tk, steps) = &loaded[1];
    assert_eq!((r.id, tk.id, steps.len()), (empty_res, empty, 0));
}

/// The claim that also reads (what the claim loop uses) gives each cycle exactly what reading
/// after the claim gives: the resolution as claimed, the task as the claim left it (RUNNING,
/// its last activity moved only when it was not RUNNING yet), the steps in order.
#[tokio::test]
async fn the_claim_reads_what_a_read_after_it_would() {
    let (s, version, _db) = setup().await;
    let (fresh, fresh_res) = (TaskId::new(), ResolutionId::new());
    create(
        &s,
        &task(fresh, version, None),
        fresh_res,
        ResolutionState::ToAutorun,
        &["b", "a", "c"],
    )
    .await;
    // a crashed run: its task is still RUNNING, so the claim leaves the task row alone
    let (crashed, crashed_res) = (TaskId::new(), ResolutionId::new());
    let mut t = task(crashed, version, None);
    t.state = TaskState::Running;
    create(&s, &t, crashed_res, ResolutionState::Crashed, &[]).await;
    let before: chrono::DateTime<chrono::Utc> =
        sqlx::query_scalar("SELECT last_activity FROM task WHERE id = $1")
            .bind(crashed)
            .fetch_one(&s.pool)
            .await
            .unwrap();
    // not due: never claimed, never read
    create(
        &s,
        &task(TaskId::new(), version, None),
        ResolutionId::new(),
        ResolutionState::Waiting,
        &[],
    )
    .await;

    let me = InstanceId::new();
    let claims = res::claim_due_loaded(&s, me, 10, std::time::Duration::from_secs(60))
        .await
        .unwrap();
    let mut seen: Vec<ResolutionId> = claims.iter().map(|c| c.0.resolution).collect();
    seen.sort();
    let mut want = vec![fresh_res, crashed_res];
    want.sort();
    assert_eq!(seen, want);
    for (claim, previous, loaded) in claims {
        let (r, t, steps) = loaded.unwrap();
        let after = res::load_many(&s, &[claim.resolution])
            .await
            .unwrap()
            .remove(0);
        assert_eq!(format!("{r:?}"), format!("{:?}", after.0));
        assert_eq!(format!("{t:?}"), format!("{:?}", after.1));
        assert_eq!(format!("{steps:?}"), format!("{:?}", after.2));
        assert_eq!(
            (r.owner_instance, r.claim_attempt),
            (Some(me), claim.attempt)
        );
        assert_eq!(t.state, TaskState::Running);
        if claim.resolution == fresh_res {
            assert_eq!(previous, ResolutionState::ToAutorun);
            let names: Vec<&str> = steps.iter().map(|s| s.name.as_str()).collect();
            assert_eq!(names.len(), 3);
        } else {
            assert_eq!(previous, ResolutionState::Crashed);
            assert_eq!(
                t.last_activity, before,
                "a RUNNING task keeps its last activity"
            );
        }
    }
}

/// A claim statement is planned once per connection, not at every execution: its limit is part
/// of its text. With `LIMIT $2` bound, PostgreSQL judged the plan made without the value
/// costlier than one made for it and planned every claim again (0.6 ms each under load).
#[tokio::test]
async fn a_claim_statement_is_planned_once_per_connection() {
    let (s, version, _db) = setup().await;
    // a queue large enough that planner statistics show it
    let t = task(TaskId::new(), version, None);
    create(
        &s,
        &t,
        ResolutionId::new(),
        ResolutionState::ToAutorun,
        &["a"],
    )
    .await;
    sqlx::query(
        "WITH n AS (SELECT t.*, gen_random_uuid() AS new_id, gen_random_uuid() AS new_res
                      FROM task t, generate_series(1, 2000)),
              t AS (INSERT INTO task (id, template_name, template_version, state, requester_username,
                                      title_enc, input_enc)
                    SELECT new_id, template_name, template_version, state, requester_username,
                           title_enc, input_enc FROM n)
         INSERT INTO resolution (id, task_id, state, run_max, resolver_input_enc)
         SELECT n.new_res, n.new_id, r.state, r.run_max, r.resolver_input_enc
           FROM n JOIN resolution r ON r.task_id = n.id",
    )
    .execute(&s.pool)
    .await
    .unwrap();
    sqlx::query("ANALYZE").execute(&s.pool).await.unwrap();
    // one connection: every claim below runs the same prepared statement
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .connect_with((*s.pool.connect_options()).clone())
        .await
        .unwrap();
    let one = Store::new(pool.clone(), s.keys.clone());
    let (me, lease) = (InstanceId::new(), std::time::Duration::from_secs(60));
    for _ in 0..10 {
        let claims = res::claim_due_loaded(&one, me, 2, lease).await.unwrap();
        assert_eq!(claims.len(), 2);
    }
    let (generic, custom): (i64, i64) = sqlx::query_as(
        "SELECT generic_plans, custom_plans FROM pg_prepared_statements
          WHERE statement LIKE 'WITH claimed AS%'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    // PostgreSQL tries 5 plans made for the values, then keeps the one made without them
    assert_eq!((generic, custom), (5, 5), "plans of 10 claims");
}
