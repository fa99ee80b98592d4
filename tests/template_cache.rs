//! The store's template caches: task creation uses a cached current version that the creating
//! statement checks, so a template changed or retired by another instance is never used stale;
//! and a (name, version) names one definition forever, even across a deletion.

use crate::common;

use mutask::store::{self, Store, StoreError, template};
use mutask::tasks::{self, CreateError, CreateRequest, Requester};
use mutask::template::model::FunctionSet;
use mutask::template::render::Renderer;
use mutask::template::{ValidationContext, parse_template};

/// A template named `name` whose title is `title`, stored (as the loader stores one).
async fn put(s: &Store, name: &str, title: &str) -> template::UpsertOutcome {
    put_with(s, name, title, "").await
}

/// [`put`] with more top-level YAML lines.
async fn put_with(s: &Store, name: &str, title: &str, more: &str) -> template::UpsertOutcome {
    let source = format!(
        "name: {name}\ndescription: a cached template\ntitle_format: \"{title}\"\n{more}auto_runnable: true\nallow_all_resolver_usernames: true\nsteps:\n  one:\n    action:\n      type: echo\n      configuration:\n        output: {{ok: true}}\n"
    );
    let functions = FunctionSet::default();
    let loaded = parse_template("cached.yaml", &source, &ValidationContext::new(&functions))
        .unwrap_or_else(|p| panic!("template does not parse: {p:?}"));
    let definition = serde_json::to_value(&loaded.template).unwrap();
    template::upsert(
        s,
        &template::TemplateUpsert {
            name,
            description: "a cached template",
            definition: &definition,
            source: &source,
            source_file: Some("cached.yaml"),
            hidden: false,
            blocked: false,
        },
    )
    .await
    .unwrap()
}

/// The title format of a stored template version, read through `s`'s cache.
async fn title_of(s: &Store, name: &str, version: i32) -> String {
    template::version_model(s, name, version)
        .await
        .unwrap()
        .unwrap_or_else(|| panic!("{name} version {version} is gone"))
        .title_format
        .clone()
}

/// Another instance on the same database: same pool and keys, its own caches.
fn other_instance(s: &Store) -> Store {
    Store::new(s.pool.clone(), s.keys.clone())
}

async fn create(s: &Store, name: &str) -> Result<store::task::TaskRecord, CreateError> {
    let who = Requester {
        username: "alice".into(),
        groups: vec![],
        is_admin: false,
    };
    let req = CreateRequest {
        template_name: name.into(),
        ..Default::default()
    };
    tasks::create(s, &Renderer::default(), &who, req)
        .await
        .map(|(rec, _)| rec)
}

#[tokio::test]
async fn a_template_changed_by_another_instance_is_never_used_stale() {
    let (s, _db) = common::store().await;
    put(&s, "cached", "first").await;
    let first = create(&s, "cached").await.unwrap();
    assert_eq!((first.template_version, first.title.as_str()), (1, "first"));

    // another instance edits the template: this instance's cache still holds version 1
    let other = other_instance(&s);
    assert_eq!(
        put(&other, "cached", "second").await,
        template::UpsertOutcome::Updated { version: 2 }
    );
    let cached = template::current(&s, "cached", false)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(cached.version, 1, "the test needs a stale cache");

    // the guard refuses the stale version, and creation goes on with the current one
    let second = create(&s, "cached").await.unwrap();
    assert_eq!(
        (second.template_version, second.title.as_str()),
        (2, "second")
    );
    assert_eq!(
        template::current(&s, "cached", false)
            .await
            .unwrap()
            .unwrap()
            .version,
        2
    );
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM task WHERE template_name = 'cached'")
        .fetch_one(&s.pool)
        .await
        .unwrap();
    assert_eq!(n, 2, "the refused statement wrote nothing");

    // the statement itself: a stale guard writes nothing and says why
    let mut task = common::new_task(mutask::domain::TaskId::new(), "cached", 1, None);
    task.template_guard = Some(cached.updated);
    match store::task::create(&s, &task, None, None).await {
        Err(StoreError::TemplateChanged(name)) => assert_eq!(name, "cached"),
        other => panic!("expected TemplateChanged, got {other:?}"),
    }
    assert!(store::task::get(&s, task.id).await.unwrap().is_none());
}

#[tokio::test]
async fn a_refusal_is_never_based_on_a_stale_copy() {
    let (s, _db) = common::store().await;
    put_with(&s, "gated", "gated task", "blocked: true\n").await;
    assert!(matches!(
        create(&s, "gated").await,
        Err(CreateError::Blocked)
    ));
    assert!(
        template::current(&s, "gated", false)
            .await
            .unwrap()
            .unwrap()
            .template
            .blocked
    );

    // another instance unblocks it; this one's cached copy still says blocked
    put(&other_instance(&s), "gated", "gated task").await;
    let task = create(&s, "gated").await.unwrap();
    assert_eq!(task.template_version, 2);
}

#[tokio::test]
async fn a_template_retired_by_another_instance_is_not_found_here() {
    let (s, _db) = common::store().await;
    put(&s, "retired", "to retire").await;
    put(&s, "kept", "to keep").await;
    create(&s, "retired").await.unwrap();
    assert!(
        template::current(&s, "retired", false)
            .await
            .unwrap()
            .is_some()
    );

    // another instance starts without the file: the template is archived (a task uses it)
    let other = other_instance(&s);
    assert_eq!(
        template::retire_missing(&other, &["kept".to_string()])
            .await
            .unwrap(),
        (0, 1)
    );
    match create(&s, "retired").await {
        Err(CreateError::TemplateNotFound(name)) => assert_eq!(name, "retired"),
        other => panic!("expected TemplateNotFound, got {:?}", other.map(|r| r.id)),
    }
    create(&s, "kept").await.unwrap();
}

#[tokio::test]
async fn a_template_deleted_and_created_again_continues_its_version_numbers() {
    let (s, _db) = common::store().await;
    put(&s, "reborn", "old").await;
    let v1 = template::version_model(&s, "reborn", 1)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(v1.title_format, "old");

    // no task references it: removing its file deletes it
    let other = other_instance(&s);
    assert_eq!(template::retire_missing(&other, &[]).await.unwrap(), (1, 0));
    assert!(template::get(&s, "reborn").await.unwrap().is_none());

    // created again with another definition: version 2, never a second "version 1"
    assert_eq!(
        put(&other, "reborn", "new").await,
        template::UpsertOutcome::Created
    );
    let rec = template::get(&s, "reborn").await.unwrap().unwrap();
    assert_eq!(rec.version, 2);
    let task = create(&s, "reborn").await.unwrap();
    assert_eq!((task.template_version, task.title.as_str()), (2, "new"));
    // both versions still name their own definition, for this process's cache and the database
    assert_eq!(title_of(&s, "reborn", 1).await, "old");
    assert_eq!(title_of(&other, "reborn", 1).await, "old");
    assert_eq!(title_of(&other, "reborn", 2).await, "new");
    let versions: Vec<i32> = template::versions(&s, "reborn")
        .await
        .unwrap()
        .into_iter()
        .map(|(v, _)| v)
        .collect();
    assert_eq!(versions, vec![2, 1]);
}
