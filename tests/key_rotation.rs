//! Key rotation while tasks run: values sealed with an old key are re-sealed with the newest
//! one in batches, concurrently with the engine writing new values; nothing is lost, and once
//! done the old key can be removed from the configuration.

use crate::common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use mutask::app;
use mutask::config::Role;
use mutask::crypto::KeyRing;
use serde_json::{Value, json};

/// A name the hello-world regex accepts (letters only).
fn letters(i: usize) -> String {
    format!(
        "{}{}",
        (b'a' + (i / 26) as u8) as char,
        (b'a' + (i % 26) as u8) as char
    )
}

fn entry(id: &str) -> String {
    let e = KeyRing::generate_entry().unwrap();
    format!("{id}:{}", e.split_once(':').unwrap().1)
}

async fn get(client: &reqwest::Client, base: &str, path: &str) -> Value {
    client
        .get(format!("{base}{path}"))
        .basic_auth("admin", Some("admin-pw"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

async fn create(client: &reqwest::Client, base: &str, name: &str) -> String {
    let r: Value = client
        .post(format!("{base}/task"))
        .basic_auth("admin", Some("admin-pw"))
        .json(&json!({"template_name": "hello-world", "input": {"name": name}, "comment": format!("secret note {name}")}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    r["id"]
        .as_str()
        .unwrap_or_else(|| panic!("{r}"))
        .to_string()
}

async fn wait_done(client: &reqwest::Client, base: &str, ids: &[String]) {
    let deadline = Instant::now() + Duration::from_secs(60);
    for id in ids {
        loop {
            let t = get(client, base, &format!("/task/{id}")).await;
            if t["state"] == "DONE" {
                break;
            }
            assert!(Instant::now() < deadline, "{id} not done: {t}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotation_while_tasks_run_loses_nothing() {
    let db = mutask::testing::test_db().await;
    let dir = tempfile::tempdir().unwrap();
    let client = common::http();
    let (a, b) = (entry("old"), entry("new"));

    // 1. data sealed with the old key
    let mut config = common::test_config(&db, dir.path());
    config.encryption_keys = Some(a.clone());
    let running = app::start(config, Role::All, false).await.unwrap();
    let base = format!("http://{}", running.addr);
    let mut ids = Vec::new();
    for i in 0..20 {
        ids.push(create(&client, &base, &format!("Old{}", letters(i))).await);
    }
    wait_done(&client, &base, &ids).await;
    running.shutdown().await.unwrap();

    // 2. the new key is added (newest last); tasks keep running while the rotation proceeds
    let mut config = common::test_config(&db, dir.path());
    config.encryption_keys = Some(format!("{a},{b}"));
    let running = app::start(config, Role::All, false).await.unwrap();
    let base = format!("http://{}", running.addr);
    let store = running.state.store.clone();
    let rotation = tokio::spawn(async move {
        let mut total = 0;
        for _ in 0..5 {
            let p = mutask::store::rotation::rotate(&store, 7).await.unwrap();
            total += p.values().sum::<u64>();
            tokio::time::sleep(Duration::from_millis(30)).await;
        }
        total
    });
    let r = client
        .post(format!("{base}/key-rotate"))
        .basic_auth("alice", Some("alice-pw"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403, "only admins rotate keys");
    // 100 tasks created and run while the rotation proceeds
    for i in 0..100 {
        ids.push(create(&client, &base, &format!("New{}", letters(i))).await);
    }
    let resealed = rotation.await.unwrap();
    assert!(resealed > 20 * 3, "old values were re-sealed ({resealed})");
    wait_done(&client, &base, &ids).await;
    let r: Value = client
        .post(format!("{base}/key-rotate"))
        .basic_auth("admin", Some("admin-pw"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(r["complete"], true, "{r}");
    assert_eq!(r["newest_key"], "new");
    let in_use = mutask::store::rotation::keys_in_use(&running.state.store)
        .await
        .unwrap();
    assert_eq!(in_use.keys().collect::<Vec<_>>(), ["new"], "{in_use:?}");
    running.shutdown().await.unwrap();

    // 3. the old key is gone: everything still opens
    let mut config = common::test_config(&db, dir.path());
    config.encryption_keys = Some(b.clone());
    let running = app::start(config, Role::All, false).await.unwrap();
    let base = format!("http://{}", running.addr);
    for (i, id) in ids.iter().enumerate() {
        let t = get(&client, &base, &format!("/task/{id}")).await;
        let name = if i < 20 {
            format!("Old{}", letters(i))
        } else {
            format!("New{}", letters(i - 20))
        };
        assert_eq!(t["input"]["name"], name.as_str());
        assert_eq!(t["title"], format!("Say hello to {name}"));
        assert_eq!(t["result"]["greeting"], format!("Hello {name}!"));
        let comments = get(&client, &base, &format!("/task/{id}/comment")).await;
        assert!(
            comments
                .to_string()
                .contains(&format!("secret note {name}")),
            "{comments}"
        );
    }
    running.shutdown().await.unwrap();
}

/// A start is refused when stored data is sealed with a key the ring no longer has, and only
/// then: a key the database recorded but nothing uses any more, or a damaged stored value, does
/// not stop it (nor make the check fail with a database error).
#[tokio::test]
async fn a_start_is_refused_only_when_a_key_in_use_is_missing() {
    use mutask::domain::TaskId;
    use mutask::store::{self, Store};

    let (k1, k2) = (entry("k1"), entry("k2"));
    let (old, _db) = common::store_keyed(&k1).await;
    store::keys::record_configured(&old).await.unwrap();
    let version = common::add_template(&old, "keyed").await;
    let (sealed, cut, not_utf8) = (TaskId::new(), TaskId::new(), TaskId::new());
    for id in [sealed, cut, not_utf8] {
        store::task::create(
            &old,
            &common::new_task(id, "keyed", version, None),
            None,
            None,
        )
        .await
        .unwrap();
    }
    // two damaged inputs: a header cut short, and a key id that is not UTF-8
    for (id, damaged) in [
        (cut, &b"\x01\x02"[..]),
        (not_utf8, &b"\x01\x02\xff\xfe\x00"[..]),
    ] {
        sqlx::query("UPDATE task SET input_enc = $2 WHERE id = $1")
            .bind(id)
            .bind(damaged)
            .execute(&old.pool)
            .await
            .unwrap();
    }
    let with = |spec: &str| Store::new(old.pool.clone(), Arc::new(KeyRing::parse(spec).unwrap()));
    let missing = |s: Store| async move {
        store::keys::record_configured(&s).await.unwrap();
        store::keys::check_missing_keys(&s).await.unwrap()
    };

    // k1 sealed a stored input: a ring without it is refused, one with it is not
    assert_eq!(missing(with(&k2)).await, ["k1"]);
    assert!(missing(with(&format!("{k1},{k2}"))).await.is_empty());
    // k2 is recorded now but seals nothing: the old ring alone is fine
    assert!(missing(with(&k1)).await.is_empty());
    // once nothing uses k1, a ring without it is fine too
    sqlx::query("DELETE FROM task WHERE id = $1")
        .bind(sealed)
        .execute(&old.pool)
        .await
        .unwrap();
    assert!(missing(with(&k2)).await.is_empty());
}

/// A key that left every ring and seals nothing is marked retired when a start finds it so, and
/// later starts no longer look for it in the stored inputs; a running instance that holds a key
/// keeps it from being retired, and holding or configuring a retired key again clears the mark.
#[tokio::test]
async fn a_key_no_ring_holds_and_nothing_uses_is_retired() {
    use mutask::domain::{InstanceId, TaskId};
    use mutask::store::{self, Store};

    let (k1, k2) = (entry("k1"), entry("k2"));
    let (s1, _db) = common::store_keyed(&k1).await;
    store::keys::record_configured(&s1).await.unwrap();
    let s2 = Store::new(s1.pool.clone(), Arc::new(KeyRing::parse(&k2).unwrap()));
    store::keys::record_configured(&s2).await.unwrap();
    let retired = || async {
        sqlx::query_scalar::<_, bool>(
            "SELECT retired_at IS NOT NULL FROM encryption_key WHERE id = 'k1'",
        )
        .fetch_one(&s1.pool)
        .await
        .unwrap()
    };
    let age_k1 = || async {
        sqlx::query(
            "UPDATE encryption_key SET last_seen = now() - interval '10 minutes' WHERE id = 'k1'",
        )
        .execute(&s1.pool)
        .await
        .unwrap();
    };

    // k1 seals nothing, but it was configured a moment ago: it may still be in a running ring
    assert!(
        store::keys::check_missing_keys(&s2)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(!retired().await, "seen recently: not retired");

    // a running instance with k1 in its ring keeps it seen through its heartbeat
    age_k1().await;
    let instance = InstanceId::new();
    store::instance::register(&s1, instance, "worker", false)
        .await
        .unwrap();
    store::instance::heartbeat(&s1, instance, "worker", false)
        .await
        .unwrap();
    assert!(
        store::keys::check_missing_keys(&s2)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(!retired().await, "held by a live instance: not retired");

    // no ring has held it for a while, and nothing uses it: retired
    age_k1().await;
    assert!(
        store::keys::check_missing_keys(&s2)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(retired().await, "unused and held by nobody: retired");

    // a retired key is not looked for again, even if something sealed with it appeared
    let version = common::add_template(&s1, "keyed").await;
    store::task::create(
        &s1,
        &common::new_task(TaskId::new(), "keyed", version, None),
        None,
        None,
    )
    .await
    .unwrap();
    assert!(
        store::keys::check_missing_keys(&s2)
            .await
            .unwrap()
            .is_empty()
    );

    // an instance holding it un-retires it with its heartbeat, and a ring without it is then
    // refused while it seals data
    store::instance::heartbeat(&s1, instance, "worker", false)
        .await
        .unwrap();
    assert!(!retired().await, "held again: no longer retired");
    assert_eq!(store::keys::check_missing_keys(&s2).await.unwrap(), ["k1"]);

    // so does configuring it again at a start
    sqlx::query("UPDATE encryption_key SET retired_at = now() WHERE id = 'k1'")
        .execute(&s1.pool)
        .await
        .unwrap();
    store::keys::record_configured(&s1).await.unwrap();
    assert!(!retired().await, "configured again: no longer retired");
}
