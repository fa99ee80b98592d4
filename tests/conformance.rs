//! µTask engine conformance: one test per template of µTask's own engine suite
//! (`../shared/conformance/utask/templates_tests/`), asserting what µTask's `engine_test.go`
//! asserts (`../shared/spec/utask-conformance.md`). Each test creates the task and its resolution
//! like µTask's harness (requester "", resolution TODO, not auto-run) and drives synchronous
//! cycles through [`Engine::run_cycle`], the same entry point the collectors and the API use.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use mutask::action::{ActionEnv, Registry};
use mutask::crypto::KeyRing;
use mutask::domain::{InstanceId, ResolutionId, ResolutionState, StepState, TaskId, TaskState};
use mutask::engine::{Engine, EngineError, EngineSettings};
use mutask::store::resolution::{NewResolution, StepRecord};
use mutask::store::task::NewTask;
use mutask::store::{self, Store};
use mutask::template::model::TaskTemplate;
use mutask::template::render::{RenderOptions, Renderer};
use mutask::template::{self as tpl, Severity};
use serde_json::{Value, json};

/// µTask's fixtures, beside the checkout (`../shared`); a checkout without them fails here,
/// saying where they were looked for, rather than later as a template that did not load.
fn conformance_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/conformance/utask");
    assert!(
        dir.join("templates_tests").is_dir(),
        "the µTask conformance fixtures are not at {} (clone mutask next to `shared`)",
        dir.display()
    );
    dir
}

struct H {
    store: Store,
    engine: Engine,
    templates: HashMap<String, TaskTemplate>,
    versions: HashMap<String, i32>,
    load_errors: Vec<tpl::Problem>,
}

async fn harness() -> H {
    let (pool, _db) = mutask::testing::test_pool().await;
    store::db::migrate(&pool).await.unwrap();
    let keys = Arc::new(KeyRing::parse(&KeyRing::generate_entry().unwrap()).unwrap());
    let store = Store::new(pool, keys);
    let (functions, fproblems) =
        tpl::load_functions_dir(&conformance_dir().join("functions_tests"));
    assert!(
        fproblems.iter().all(|p| p.severity != Severity::Error),
        "function fixtures: {fproblems:?}"
    );
    let report = tpl::load_templates_dir(&conformance_dir().join("templates_tests"), &functions);
    let mut templates = HashMap::new();
    let mut versions = HashMap::new();
    for t in &report.templates {
        let def = serde_json::to_value(&t.template).unwrap();
        store::template::upsert(
            &store,
            &store::template::TemplateUpsert {
                name: &t.name,
                description: &t.template.description,
                definition: &def,
                source: &t.source,
                source_file: None,
                hidden: false,
                blocked: false,
            },
        )
        .await
        .unwrap();
        let v = store::template::get(&store, &t.name)
            .await
            .unwrap()
            .unwrap()
            .version;
        versions.insert(t.name.clone(), v);
        templates.insert(t.name.clone(), t.template.clone());
    }
    let engine = Engine {
        store: store.clone(),
        renderer: Arc::new(Renderer::new(RenderOptions::default())),
        functions: Arc::new(functions),
        actions: Registry::builtin(),
        action_env: Arc::new(ActionEnv {
            scripts_dir: PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/utask"),
            store: Some(store.clone()),
            renderer: Some(Arc::new(Renderer::new(RenderOptions::default()))),
            admins: ["admin".to_string()].into(),
            base_url: "http://foo.example.com".into(),
            notify_backends: Vec::new(),
        }),
        instance: InstanceId::new(),
        js: Some(Arc::new(mutask::engine::js::SandboxJs::new(
            mutask::sandbox::SandboxPool::new(mutask::sandbox::SandboxConfig::new(PathBuf::from(
                env!("CARGO_BIN_EXE_mutask"),
            )))
            .unwrap(),
        ))),
        settings: Arc::new(EngineSettings::default()),
        ends: Default::default(),
        loads: Default::default(),
        shutdown: Default::default(),
        resources: Default::default(),
    };
    let load_errors = report
        .problems
        .into_iter()
        .filter(|p| p.severity == Severity::Error)
        .collect();
    H {
        store,
        engine,
        templates,
        versions,
        load_errors,
    }
}

impl H {
    fn template(&self, name: &str) -> &TaskTemplate {
        self.templates
            .get(name)
            .unwrap_or_else(|| panic!("template {name} did not load"))
    }

    /// µTask's createResolution: task (requester "") + resolution TODO.
    async fn create(&self, name: &str, input: Value) -> (TaskId, ResolutionId) {
        let t = self.template(name);
        let given = input.as_object().cloned().unwrap_or_default();
        let inputs = tpl::input::validate(&t.inputs, &given, "input").expect("inputs valid");
        let task_id = TaskId::new();
        let res_id = ResolutionId::new();
        let task = NewTask {
            id: task_id,
            template_name: name.to_string(),
            template_version: self.versions[name],
            title: t.title_format.clone(),
            state: TaskState::Todo,
            requester_username: String::new(),
            requester_groups: vec![],
            watcher_usernames: vec![],
            watcher_groups: vec![],
            resolver_usernames: vec![],
            resolver_groups: vec![],
            tags: json!({}),
            input: Value::Object(inputs),
            batch_id: None,
            parent_task_id: None,
            status_hook: None,
            expected_duration: None,
            template_guard: None,
            claim: None,
        };
        let res = NewResolution {
            id: res_id,
            state: ResolutionState::Todo,
            resolver_username: None,
            run_max: t.retry_max() as i32,
            next_retry: None,
            resolver_input: json!({}),
            steps: mutask::engine::initial_steps(t).unwrap(),
        };
        store::task::create(&self.store, &task, Some(&res), None)
            .await
            .unwrap();
        (task_id, res_id)
    }

    /// µTask's `resolution.Create` for an existing task (state TODO, not auto-run).
    async fn resolve_task(&self, task: TaskId) -> ResolutionId {
        let rec = store::task::get(&self.store, task).await.unwrap().unwrap();
        let t = self.template(&rec.template_name);
        let id = ResolutionId::new();
        let r = NewResolution {
            id,
            state: ResolutionState::Todo,
            resolver_username: None,
            run_max: t.retry_max() as i32,
            next_retry: None,
            resolver_input: json!({}),
            steps: mutask::engine::initial_steps(t).unwrap(),
        };
        store::resolution::create(&self.store, task, &r)
            .await
            .unwrap();
        id
    }

    /// µTask's RetryCollector: runs whatever is due until `id` reaches `until` (bounded).
    async fn collect_until(&self, id: ResolutionId, until: ResolutionState) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while self.state(id).await != until {
            assert!(
                std::time::Instant::now() < deadline,
                "{id} never reached {until}: {}",
                self.state(id).await
            );
            let claims = store::resolution::claim_due(
                &self.store,
                self.engine.instance,
                10,
                std::time::Duration::from_secs(60),
            )
            .await
            .unwrap();
            for (c, prev) in claims {
                self.engine.run_claimed(c, prev).await.unwrap();
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }

    async fn next_retry(&self, id: ResolutionId) -> Option<chrono::DateTime<chrono::Utc>> {
        store::resolution::get(&self.store, id)
            .await
            .unwrap()
            .unwrap()
            .next_retry
    }

    async fn run(&self, id: ResolutionId) -> Option<ResolutionState> {
        self.engine.run_cycle(id).await.expect("cycle runs")
    }

    async fn steps(&self, id: ResolutionId) -> HashMap<String, StepRecord> {
        store::resolution::steps(&self.store, id)
            .await
            .unwrap()
            .into_iter()
            .map(|s| (s.name.clone(), s))
            .collect()
    }

    async fn state(&self, id: ResolutionId) -> ResolutionState {
        store::resolution::get(&self.store, id)
            .await
            .unwrap()
            .unwrap()
            .state
    }

    /// Rewrites one step's definition (µTask tests mutate resolutions in Go).
    async fn edit_step(
        &self,
        id: ResolutionId,
        name: &str,
        f: impl FnOnce(&mut Value, &mut StepState),
    ) {
        let steps = store::resolution::steps(&self.store, id).await.unwrap();
        let s = steps.into_iter().find(|s| s.name == name).unwrap();
        let mut def = s.definition.clone();
        let mut state = s.state.clone();
        f(&mut def, &mut state);
        let w = store::resolution::StepWrite {
            name: s.name,
            position: s.position,
            state,
            try_count: s.try_count,
            last_run: s.last_run,
            definition: def,
            output: s.output,
            metadata: s.metadata,
            error: s.error,
            children: s.children,
        };
        store::resolution::replace_steps(&self.store, id, &[w], &[])
            .await
            .unwrap();
    }
}

fn st(steps: &HashMap<String, StepRecord>, name: &str) -> String {
    steps
        .get(name)
        .unwrap_or_else(|| panic!("no step {name} in {:?}", steps.keys()))
        .state
        .as_str()
        .to_string()
}

fn out(steps: &HashMap<String, StepRecord>, name: &str) -> Value {
    steps[name].output.clone().unwrap_or(Value::Null)
}

async fn expect_load_error(file: &str, needle: &str) {
    let h = harness().await;
    let hit = h.load_errors.iter().any(|p| {
        p.file.as_deref().is_some_and(|f| f.ends_with(file)) && p.message.contains(needle)
    });
    assert!(
        hit,
        "{file}: no error containing {needle:?} in {:#?}",
        h.load_errors
    );
}

// ---------------------------------------------------------------------------------------------
// Linting and validation (TestLintingAndValidation)

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lint_errors() {
    for (file, needle) in [
        (
            "circularDependencies.yaml",
            "Invalid: circular dependency [stepOne stepThree stepTwo] <-> step",
        ),
        (
            "conditionForeachInvalid.yaml",
            "Unknown condition foreach: invalid",
        ),
        (
            "conditionForeachSkipOnly.yaml",
            "Step condition can set foreach on a skip condition",
        ),
        (
            "conditionForeachStepNotForeach.yaml",
            "Step condition cannot set foreach on a non-foreach step",
        ),
        (
            "customStates.yaml",
            "Custom state \"SERVER_ERROR\" is not allowed as it's a reserved state",
        ),
        (
            "forbiddenStateImpact.yaml",
            "Step condition cannot impact the state of step stepTwo, only those who belong to the dependency chain are allowed",
        ),
        (
            "functionEchoHelloWorldError.yaml",
            "Invalid executor action: missing function_args \"name\"",
        ),
        ("lintingError.yaml", "Variable notfound does not exist"),
        ("lintingReservedStep.yaml", "'this' step name is reserved"),
        ("lintingRootKey.yaml", "Variable grault does not exist"),
        (
            "orphanDependencies.yaml",
            "Invalid dependency, no step with that name: \"stepTwo\"",
        ),
        (
            "selfDependency.yaml",
            "Invalid: circular dependency [stepOne] <-> stepOne",
        ),
        (
            "stepDetailsLintingError.yaml",
            "Wrong step key: stepNotFound",
        ),
    ] {
        expect_load_error(file, needle).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn valid_templates_load() {
    let h = harness().await;
    for name in [
        "allowedstateinmpact",
        "lintingok",
        "functioncustomstate",
        "functionhelloworld",
        "functiontemplatedoutput",
        "functionprehook",
    ] {
        let t = h.template(name);
        let (_, id) = h.create(name, json!({})).await;
        assert_eq!(h.state(id).await, ResolutionState::Todo, "{}", t.name);
    }
    // lintingInfiniteOk and lintingObject share the name `lintingok` (µTask upserts one over the
    // other): each is valid on its own
    let functions = tpl::model::FunctionSet::new();
    for file in ["lintingInfiniteOk.yaml", "lintingObject.yaml"] {
        let src =
            std::fs::read_to_string(conformance_dir().join("templates_tests").join(file)).unwrap();
        let loaded = tpl::parse_template(file, &src, &tpl::ValidationContext::new(&functions));
        assert!(loaded.is_ok(), "{file}: {:?}", loaded.err());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compute_version() {
    let h = harness().await;
    let (_, id) = h.create("computeversion", json!({})).await;
    let steps = h.steps(id).await;
    for (step, want) in [
        ("stepOne", "http://json-schema.org/draft-07/schema#"),
        ("stepTwo", "http://json-schema.org/draft-06/schema#"),
        ("stepThree", "http://json-schema.org/draft-04/schema#"),
        ("stepFour", "http://json-schema.org/draft-04/schema#"),
        ("stepFive", "http://json-schema.org/draft-07/schema#"),
        ("stepSix", "http://json-schema.org/draft-07/schema#"),
    ] {
        assert_eq!(
            steps[step].definition["step"]["json_schema"]["$schema"], want,
            "{step}"
        );
    }
    assert_eq!(
        h.run(id).await,
        Some(ResolutionState::Done),
        "outputs match their schemas"
    );
}

// ---------------------------------------------------------------------------------------------
// Execution

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simple_template() {
    let h = harness().await;
    let (_, id) = h.create("simpletemplate", json!({"foo": "bar"})).await;
    assert_eq!(h.run(id).await, Some(ResolutionState::Error));
    let s = h.steps(id).await;
    assert_eq!(
        (st(&s, "stepOne"), st(&s, "stepTwo"), st(&s, "stepThree")),
        ("DONE".into(), "DONE".into(), "SERVER_ERROR".into())
    );
    assert_eq!(s["stepThree"].error.as_deref(), Some("FAIL!"));
    let r = store::resolution::get(&h.store, id).await.unwrap().unwrap();
    assert!(r.next_retry.is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn any_dependency() {
    let h = harness().await;
    let (_, id) = h.create("anydependency", json!({})).await;
    assert_eq!(h.run(id).await, Some(ResolutionState::Done));
    let s = h.steps(id).await;
    assert_eq!(out(&s, "secondStepRunsIfAny")["i_ran_anyway"], "yes");
    assert_eq!(st(&s, "firstStepNotFound"), "NOT_FOUND");
    assert_eq!(st(&s, "thirdStepRunsIfSecondOK"), "DONE");
    assert_eq!(st(&s, "thirdStepRunsIfSecondKO"), "PRUNE");
    assert_eq!(st(&s, "fourthStepWillNotBePruned"), "DONE");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn base_configuration() {
    let h = harness().await;
    let (_, id) = h.create("base-configuration", json!({})).await;
    assert_eq!(h.run(id).await, Some(ResolutionState::Error));
    let s = h.steps(id).await;
    for step in ["stepOne", "stepTwo"] {
        assert_eq!(
            s[step].definition["step"]["action"]["base_configuration"],
            "testingcfg"
        );
        assert_eq!(out(&s, step), json!("testingoutput"));
        assert_eq!(st(&s, step), "SERVER_ERROR");
    }
    assert_eq!(s["stepOne"].error.as_deref(), Some("error1"));
    assert_eq!(s["stepTwo"].error.as_deref(), Some("error2"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn base_output() {
    let h = harness().await;
    let (_, id) = h.create("base-output", json!({"id": "1234"})).await;
    h.run(id).await;
    let s = h.steps(id).await;
    assert_eq!(out(&s, "stepOne"), json!({"id": "1234", "foo": "bar"}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_error() {
    let h = harness().await;
    let (_, id) = h.create("clienterrortemplate", json!({})).await;
    assert_eq!(h.run(id).await, Some(ResolutionState::BlockedBadRequest));
    assert_eq!(st(&h.steps(id).await, "stepOne"), "CLIENT_ERROR");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_script() {
    let h = harness().await;
    let (_, id) = h.create("exec-script", json!({"argv": "world"})).await;
    assert_eq!(h.run(id).await, Some(ResolutionState::Done));
    let s = h.steps(id).await;
    assert_eq!(
        out(&s, "stepOne"),
        json!({"dumb_string": "Hello world!", "random_object": {"foo": "bar"}})
    );
    let m = s["stepOne"].metadata.clone().unwrap();
    assert_eq!(m["exit_code"], "0");
    assert_eq!(m["process_state"], "exit status 0");
    assert_eq!(
        m["output"],
        "Hello world script\n{\"dumb_string\":\"Hello world!\",\"random_object\":{\"foo\":\"bar\"}}\n"
    );
    assert_eq!(m["error"], "");
    assert!(m["execution_time"].is_string());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_script_with_environment() {
    let h = harness().await;
    let (task, id) = h.create("exec-script-with-environment", json!({})).await;
    assert_eq!(h.run(id).await, Some(ResolutionState::Done));
    let s = h.steps(id).await;
    assert_eq!(st(&s, "stepOne"), "DONE");
    let o = out(&s, "stepOne");
    assert_eq!(o["UTASK_TASK_ID"], task.to_string());
    assert_eq!(o["UTASK_RESOLUTION_ID"], id.to_string());
    assert_eq!(o["UTASK_STEP_NAME"], "stepOne");
    assert_eq!(o["static_value"], "foo");
    assert_eq!(o["variable_value"], "bar");
}

async fn foreach_run(h: &H, list: &[&str]) -> (ResolutionId, Option<ResolutionState>) {
    let (_, id) = h.create("foreachloop", json!({"list": list})).await;
    let r = h.run(id).await;
    (id, r)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn foreach() {
    let h = harness().await;
    let (id, r) = foreach_run(&h, &["a", "b", "c"]).await;
    assert_eq!(r, Some(ResolutionState::Done));
    let s = h.steps(id).await;
    for step in ["emptyLoop", "concatItems", "finalStep"] {
        assert_eq!(st(&s, step), "DONE", "{step}");
    }
    assert_eq!(st(&s, "bStep"), "B");
    let gen_children = s["generateItems"].children.clone().unwrap();
    assert_eq!(gen_children.as_array().unwrap().len(), 2);
    let concat = s["concatItems"].children.clone().unwrap();
    assert_eq!(concat.as_array().unwrap().len(), 1);
    assert_eq!(concat[0]["output"]["concat"], "foo-b-bar-b");
    assert_eq!(
        concat[0]["metadata"]["iterator"]["output"],
        json!({"foo": "foo-b", "bar": "bar-b"})
    );
    // only `echo`s: nothing had to be durable before the end, so every step row (children
    // included) was written by the one statement that ended the cycle
    let (rows, writes): (i64, i64) = sqlx::query_as(
        "SELECT count(*), count(DISTINCT s.updated) FROM step s
           JOIN resolution r ON r.id = s.resolution_id
          WHERE r.id = $1 AND s.updated = r.last_stop",
    )
    .bind(id)
    .fetch_one(&h.store.pool)
    .await
    .unwrap();
    assert_eq!((rows as usize, writes), (s.len(), 1), "{s:?}");
}

async fn chained_setup(h: &H, dep_on_parent: bool) -> ResolutionId {
    let (_, id) = h
        .create("foreachloop", json!({"list": ["a", "b", "c", "d", "e"]}))
        .await;
    h.edit_step(id, "generateItems", |def, _| {
        let step = &mut def["step"];
        step["conditions"][0]["then"]["this"] = json!("DONE");
        step["conditions"].as_array_mut().unwrap().push(json!({
            "type": "check", "if": [{"value": "{{.iterator}}", "operator": "EQ", "expected": "d"}],
            "then": {"this": "SERVER_ERROR"}, "foreach": "children"
        }));
        step["foreach_strategy"] = json!("sequence");
        if dep_on_parent {
            step["dependencies"] = json!(["emptyLoop"]);
        }
    })
    .await;
    id
}

async fn check_chained(h: &H, id: ResolutionId, parent_deps: &[&str], child_prefix: &[&str]) {
    assert_eq!(h.run(id).await, Some(ResolutionState::Error));
    let s = h.steps(id).await;
    assert_eq!(st(&s, "emptyLoop"), "DONE");
    assert_eq!(st(&s, "concatItems"), "TODO");
    assert_eq!(st(&s, "finalStep"), "TODO");
    assert_eq!(st(&s, "bStep"), "B");
    for (i, want) in ["DONE", "DONE", "DONE", "SERVER_ERROR", "TODO"]
        .iter()
        .enumerate()
    {
        assert_eq!(st(&s, &format!("generateItems-{i}")), *want, "child {i}");
        let mut deps: Vec<String> = child_prefix.iter().map(|d| d.to_string()).collect();
        if i > 0 {
            deps.push(format!("generateItems-{}", i - 1));
        }
        assert_eq!(
            s[&format!("generateItems-{i}")].definition["step"]["dependencies"],
            json!(deps),
            "child {i} deps"
        );
    }
    let mut want: Vec<String> = parent_deps.iter().map(|d| d.to_string()).collect();
    want.extend((0..5).map(|i| format!("generateItems-{i}:ANY")));
    assert_eq!(
        s["generateItems"].definition["step"]["dependencies"],
        json!(want)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn foreach_with_chained_iterations() {
    let h = harness().await;
    let id = chained_setup(&h, false).await;
    check_chained(&h, id, &[], &[]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn foreach_with_chained_iterations_with_dep_on_parent() {
    let h = harness().await;
    let id = chained_setup(&h, true).await;
    check_chained(&h, id, &["emptyLoop"], &["emptyLoop"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn foreach_with_errors() {
    let h = harness().await;
    let (_, id) = h
        .create("foreachloop", json!({"list": ["a", "b", "c"]}))
        .await;
    h.edit_step(id, "generateItems", |_, state| {
        *state = StepState::FatalError
    })
    .await;
    assert_eq!(h.run(id).await, Some(ResolutionState::BlockedFatal));
}

async fn foreach_and_prerun(preset_to_retry: bool) {
    let h = harness().await;
    let (_, id) = h.create("foreachandprerun", json!({})).await;
    if preset_to_retry {
        for step in [
            "stepForeachPrune",
            "stepDepOnForeachPrune",
            "stepForeachPruneParentTask",
            "stepDepOnForeachPruneParentTask",
        ] {
            h.edit_step(id, step, |_, state| *state = StepState::ToRetry)
                .await;
        }
    }
    assert_eq!(h.run(id).await, Some(ResolutionState::Done));
    let s = h.steps(id).await;
    for step in [
        "stepForeachNoDep",
        "stepSkippedNoDep",
        "stepNoDep",
        "stepForeachWithDep",
        "stepSkippedWithDep",
        "stepForeachPrune",
        "stepDepOnForeachPrune",
    ] {
        assert_eq!(st(&s, step), "DONE", "{step} (preset {preset_to_retry})");
    }
    for step in [
        "stepDep",
        "stepDep2",
        "stepForeachPruneParentTask",
        "stepDepOnForeachPruneParentTask",
    ] {
        assert_eq!(st(&s, step), "PRUNE", "{step} (preset {preset_to_retry})");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn foreach_and_prerun_as_is() {
    foreach_and_prerun(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn foreach_and_prerun_from_to_retry() {
    foreach_and_prerun(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn function_custom_state() {
    let h = harness().await;
    let (_, id) = h.create("functioncustomstate", json!({})).await;
    h.run(id).await;
    let s = h.steps(id).await;
    assert_eq!(out(&s, "stepOne"), json!({"value": "Hello world!"}));
    let t = h.template("functioncustomstate");
    assert_eq!(
        t.steps["stepOne"].effective_custom_states(&h.engine.functions),
        ["STATE_HELLO"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn function_hello_world() {
    let h = harness().await;
    let (_, id) = h.create("functionhelloworld", json!({})).await;
    h.run(id).await;
    assert_eq!(
        out(&h.steps(id).await, "stepOne"),
        json!({"value": "Hello toto !"})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn function_templated_output() {
    let h = harness().await;
    let (_, id) = h.create("functiontemplatedoutput", json!({})).await;
    h.run(id).await;
    assert_eq!(
        out(&h.steps(id).await, "stepOne"),
        json!({"full_name": "John Doe"})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn function_nested() {
    let h = harness().await;
    let (_, id) = h.create("functionnested", json!({})).await;
    h.run(id).await;
    let s = h.steps(id).await;
    assert_eq!(
        out(&s, "stepOne"),
        json!({"value": "Hello foobar !", "nested1": "foo", "nested2": "foo", "base_nested": "nested2", "base_output_template": "foo"})
    );
    assert_eq!(st(&s, "stepOne"), "CUSTOM_STATE1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn function_pre_hook() {
    let h = harness().await;
    let (_, id) = h.create("functionprehook", json!({})).await;
    h.run(id).await;
    assert_eq!(
        out(&h.steps(id).await, "stepOne"),
        json!({"value": "Hello 42 !", "coalesce": "Coalesce 42!"})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn indirect_dependencies() {
    let h = harness().await;
    let (_, id) = h.create("indirectdependencies", json!({})).await;
    assert_eq!(h.run(id).await, Some(ResolutionState::BlockedFatal));
    let s = h.steps(id).await;
    assert_eq!(
        (
            st(&s, "stepOne"),
            st(&s, "stepTwo"),
            st(&s, "stepThree"),
            st(&s, "stepFour")
        ),
        (
            "DONE".into(),
            "FATAL_ERROR".into(),
            "PRUNE".into(),
            "TODO".into()
        )
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn input_number_and_empty_string() {
    let h = harness().await;
    let (_, id) = h.create("input", json!({"quantity": -2.3})).await;
    h.run(id).await;
    assert_eq!(out(&h.steps(id).await, "stepOne")["value"], "-2.3");
    let (_, id) = h
        .create("input", json!({"quantity": -2.3, "foo": ""}))
        .await;
    assert_eq!(h.run(id).await, Some(ResolutionState::Done));
    let s = h.steps(id).await;
    assert_eq!(st(&s, "stepOne"), "DONE");
    assert_eq!(out(&s, "stepOne")["foo"], "");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_templating() {
    let h = harness().await;
    let multiline = "Un,\n\tDeux,\n\tTrois,\n\tSoleil!";
    let (_, id) = h
        .create(
            "jsontemplating",
            json!({"singleString": "hello", "multilineString": multiline}),
        )
        .await;
    assert_eq!(h.run(id).await, Some(ResolutionState::Done));
    let o = out(&h.steps(id).await, "stepOne");
    assert_eq!(o["raw-multiline"], multiline);
    assert_eq!(o["raw-single"], "hello");
    let body: Value =
        serde_json::from_str(o["my-json-body"].as_str().unwrap()).expect("valid JSON body");
    assert_eq!(body["multiline"], multiline);
    assert_eq!(body["singleMarshalled"], "hello");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_number() {
    let h = harness().await;
    let (_, id) = h.create("jsonnumber", json!({})).await;
    assert_eq!(h.run(id).await, Some(ResolutionState::Done));
    let s = h.steps(id).await;
    assert_eq!(
        s["loopStep"].children.clone().unwrap()[0]["output"],
        "/id/1619464078"
    );
    assert_eq!(
        out(&s, "simpleStep")["path"],
        "/some/api/path/12345678912345"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_retry() {
    let h = harness().await;
    let (_, id) = h.create("maxretrytemplate", json!({})).await;
    assert_eq!(h.steps(id).await["stepOne"].try_count, 0);
    assert_eq!(h.run(id).await, Some(ResolutionState::BlockedMaxRetries));
    let s = h.steps(id).await;
    assert_eq!(
        (st(&s, "stepOne"), s["stepOne"].try_count),
        ("SERVER_ERROR".into(), 1)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metadata() {
    let h = harness().await;
    let (_, id) = h.create("metadata", json!({})).await;
    h.run(id).await;
    assert_eq!(st(&h.steps(id).await, "notfound"), "NOTFOUND");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn next_retry() {
    let h = harness().await;
    let (_, id) = h.create("nextretrytemplate", json!({})).await;
    assert!(
        store::resolution::get(&h.store, id)
            .await
            .unwrap()
            .unwrap()
            .next_retry
            .is_none()
    );
    assert_eq!(h.steps(id).await["stepOne"].try_count, 0);
    assert_eq!(h.run(id).await, Some(ResolutionState::Error));
    let s = h.steps(id).await;
    assert_eq!(
        (st(&s, "stepOne"), s["stepOne"].try_count),
        ("SERVER_ERROR".into(), 1)
    );
    assert!(
        store::resolution::get(&h.store, id)
            .await
            .unwrap()
            .unwrap()
            .next_retry
            .is_some()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_output_backward() {
    let h = harness().await;
    let (_, id) = h.create("no-output-backward", json!({})).await;
    assert_eq!(h.run(id).await, Some(ResolutionState::Done));
    let s = h.steps(id).await;
    assert_eq!(
        (st(&s, "stepOne"), out(&s, "stepOne")["foobar"].clone()),
        ("DONE".into(), json!("buzz"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_output() {
    let h = harness().await;
    let (_, id) = h.create("no-output", json!({})).await;
    assert_eq!(h.run(id).await, Some(ResolutionState::Done));
    let s = h.steps(id).await;
    assert_eq!(
        (st(&s, "stepOne"), out(&s, "stepOne")["foobar"].clone()),
        ("DONE".into(), json!("buzz"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn output_templating_errors() {
    let h = harness().await;
    for (strategy, expr, needle) in [
        (
            "template",
            "{{ index .foo.unknown 3 }}",
            "unable to format output: Templating error: template:",
        ),
        (
            "merge",
            "{{ index .foo.unknown 3 }}",
            "failed to template base output: Templating error: template:",
        ),
        (
            "template",
            "{{ index .step.stepOne.output.foo.unknown 3 }}",
            "unable to format output: Templating error: template:",
        ),
        (
            "merge",
            "{{ index .step.stepOne.output.foo.unknown 3 }}",
            "failed to template base output: Templating error: template:",
        ),
    ] {
        let (_, id) = h.create("no-output", json!({})).await;
        h.edit_step(id, "stepOne", |def, _| {
            def["step"]["action"]["output"] =
                json!({"strategy": strategy, "format": {"foo2": expr}});
        })
        .await;
        assert_eq!(
            h.run(id).await,
            Some(ResolutionState::BlockedFatal),
            "{strategy} {expr}"
        );
        let s = h.steps(id).await;
        assert_eq!(st(&s, "stepOne"), "FATAL_ERROR");
        let err = s["stepOne"].error.clone().unwrap_or_default();
        assert!(err.contains(needle), "{strategy} {expr}: {err}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prune() {
    let h = harness().await;
    let (_, id) = h.create("prunesteps", json!({"skipStepOne": "skip"})).await;
    h.run(id).await;
    let s = h.steps(id).await;
    assert_eq!(s.len(), 5);
    let got: Vec<String> = ["stepOne", "stepTwo", "stepThree", "stepFour", "stepFive"]
        .iter()
        .map(|n| st(&s, n))
        .collect();
    assert_eq!(got, ["PRUNE", "DONE", "PRUNE", "PRUNE", "PRUNE"]);
    let (_, id) = h
        .create("prunesteps", json!({"skipStepOne": "not_skip"}))
        .await;
    h.run(id).await;
    let s = h.steps(id).await;
    let got: Vec<String> = ["stepOne", "stepTwo", "stepThree", "stepFour", "stepFive"]
        .iter()
        .map(|n| st(&s, n))
        .collect();
    assert_eq!(got, ["DONE", "DONE", "PRUNE", "PRUNE", "DONE"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_now_max_retry() {
    let h = harness().await;
    let (_, id) = h.create("loopconditionmaxretry", json!({})).await;
    assert_eq!(h.run(id).await, Some(ResolutionState::BlockedFatal));
    let s = h.steps(id).await;
    assert_eq!(st(&s, "infinite"), "FATAL_ERROR");
    assert_eq!(s["infinite"].try_count, 42);
    assert_eq!(out(&s, "infinite"), json!("42"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_now_state() {
    let h = harness().await;
    let (_, id) = h
        .create("retrynowstate", json!({"N": 12.0, "separator": " sep "}))
        .await;
    assert_eq!(h.run(id).await, Some(ResolutionState::Done));
    let s = h.steps(id).await;
    assert_eq!(
        (st(&s, "fibonacci"), st(&s, "join")),
        ("DONE".into(), "DONE".into())
    );
    assert_eq!(
        out(&s, "join")["str"],
        "0 sep 1 sep 1 sep 2 sep 3 sep 5 sep 8 sep 13 sep 21 sep 34 sep 55 sep 89 sep 144"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_loop() {
    let h = harness().await;
    let (_, id) = h.create("retryloop", json!({})).await;
    assert_eq!(h.run(id).await, Some(ResolutionState::Error));
    let s = h.steps(id).await;
    assert_eq!(st(&s, "generateItems"), "TO_RETRY");
    assert!(
        s["generateItems"].definition["step"]
            .get("children_steps")
            .is_none()
            && s["generateItems"]
                .definition
                .get("children_steps")
                .is_none()
    );
    h.edit_step(id, "generateItems", |def, _| {
        def["step"]["conditions"] = json!([])
    })
    .await;
    assert_eq!(h.run(id).await, Some(ResolutionState::Done));
    let s = h.steps(id).await;
    assert!(
        s["generateItems"]
            .definition
            .get("children_steps")
            .is_none()
    );
    let children = s["generateItems"].children.clone().unwrap();
    assert_eq!(children.as_array().unwrap().len(), 3);
    assert_eq!(children[0]["output"]["foo"], "foo-a");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn step_condition_states() {
    let h = harness().await;
    let (_, id) = h.create("stepconditiontemplate", json!({})).await;
    let s = h.steps(id).await;
    assert_eq!(
        (
            st(&s, "stepOne"),
            st(&s, "stepOneFinal"),
            s["stepOne"].try_count
        ),
        ("TODO".into(), "TODO".into(), 0)
    );
    assert_eq!(h.state(id).await, ResolutionState::Todo);
    assert_eq!(h.run(id).await, Some(ResolutionState::BlockedBadRequest));
    let s = h.steps(id).await;
    assert_eq!(st(&s, "stepOne"), "TO_RETRY");
    assert_eq!(st(&s, "stepOneFinal"), "PRUNE");
    assert_eq!(st(&s, "stepSkip"), "CLIENT_ERROR");
    assert_eq!(st(&s, "stepSkipFinal"), "PRUNE");
    assert_eq!(
        (s["stepOne"].try_count, s["stepOneFinal"].try_count),
        (1, 1)
    );
    assert_eq!(h.run(id).await, Some(ResolutionState::BlockedBadRequest));
    let s = h.steps(id).await;
    assert_eq!(
        (st(&s, "stepOne"), s["stepOne"].try_count),
        ("TO_RETRY".into(), 2)
    );
    assert_eq!(
        (st(&s, "stepOneFinal"), s["stepOneFinal"].try_count),
        ("PRUNE".into(), 1)
    );
    assert_eq!(st(&s, "stepTwo"), "REGEXP_MATCH");
    assert_eq!(st(&s, "stepTwoBis"), "NOTREGEXP_MATCH");
    assert_eq!(st(&s, "stepThree"), "FOO");
    assert_eq!(
        s["stepThree"].error.as_deref(),
        Some("changed state matched correctly")
    );
    assert_eq!(st(&s, "stepFour"), "OK");
    assert_eq!(s["stepFour"].error.as_deref(), Some("OK"));
    assert_eq!(st(&s, "stepFive"), "PRUNE");
    assert_eq!(st(&s, "stepSix"), "LIST_NOMATCH");
    assert_eq!(st(&s, "stepForeach"), "DONE");
    assert_eq!(
        s["stepForeach"]
            .children
            .clone()
            .unwrap()
            .as_array()
            .unwrap()
            .len(),
        3
    );
    assert_eq!(st(&s, "stepForeachValidation"), "VALID");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resolution_states_that_refuse_to_run() {
    let h = harness().await;
    for (state, msg) in [
        (
            ResolutionState::Cancelled,
            "Can't run resolution: cancelled",
        ),
        (ResolutionState::Done, "Can't run resolution: already done"),
        (
            ResolutionState::Running,
            "Can't run resolution: already running",
        ),
    ] {
        let (_, id) = h.create("stepconditiontemplate", json!({})).await;
        store::resolution::force_state(&h.store, id, state)
            .await
            .unwrap();
        let err = h.engine.run_cycle(id).await.unwrap_err();
        assert!(matches!(err, EngineError::Refused(_)));
        assert_eq!(err.to_string(), msg);
    }
    // crashed with a non-idempotent RUNNING step: blocked for a human check
    let (_, id) = h.create("stepconditiontemplate", json!({})).await;
    h.edit_step(id, "stepOne", |_, s| *s = StepState::Running)
        .await;
    store::resolution::force_state(&h.store, id, ResolutionState::Crashed)
        .await
        .unwrap();
    assert_eq!(h.engine.run_cycle(id).await.unwrap(), None);
    assert_eq!(h.state(id).await, ResolutionState::BlockedToCheck);
    assert_eq!(st(&h.steps(id).await, "stepOne"), "CRASHED");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn step_max_retries() {
    let h = harness().await;
    let (_, id) = h.create("stepmaxretries", json!({})).await;
    let s = h.steps(id).await;
    assert_eq!(h.state(id).await, ResolutionState::Todo);
    assert_eq!(
        (
            s["stepOne"].try_count,
            s["stepOne"].definition["step"]["max_retries"].clone()
        ),
        (0, json!(1))
    );
    for _ in 0..3 {
        h.run(id).await;
    }
    assert_eq!(h.state(id).await, ResolutionState::BlockedFatal);
    let s = h.steps(id).await;
    assert_eq!(
        (st(&s, "stepOne"), s["stepOne"].try_count),
        ("FATAL_ERROR".into(), 2)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn variables_without_javascript_are_evaluated() {
    // jsonnumber covers numeric values; this covers templated string values and evalCache
    let h = harness().await;
    let (_, id) = h.create("exec-script-with-environment", json!({})).await;
    h.run(id).await;
    assert_eq!(out(&h.steps(id).await, "stepOne")["variable_value"], "bar");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn variables() {
    let h = harness().await;
    let (_, id) = h.create("variableeval", json!({})).await;
    assert_eq!(h.run(id).await, Some(ResolutionState::Done));
    let s = h.steps(id).await;
    assert_eq!(
        out(&s, "renderVariables"),
        json!({"truc": "4", "bidule": "5", "templated": "Hello World!", "cached": "6"})
    );
    assert_eq!(out(&s, "renderVariablesWithCache")["cached"], "6");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_parsing() {
    let h = harness().await;
    let (_, id) = h.create("jsonparsing", json!({})).await;
    assert_eq!(h.run(id).await, Some(ResolutionState::Done));
    let o = out(&h.steps(id).await, "stepOne");
    assert_eq!(
        o,
        json!({"a": "utask", "b": "666", "c": "map[k:v]", "d": "[1 2 3]"})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raw_b64_encoding_decoding() {
    let h = harness().await;
    let (_, id) = h.create("rawb64encodingdecoding", json!({})).await;
    assert_eq!(h.run(id).await, Some(ResolutionState::Done));
    assert_eq!(
        out(&h.steps(id).await, "stepOne"),
        json!({"a": "cmF3IG1lc3NhZ2U", "b": "raw message"})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn javascript_in_conditions_and_runaway_code() {
    // a JS variable used by a skip condition (evaluated on the cycle's task, not a blocking
    // thread), and an infinite loop that must end as a step error within its budget
    let h = harness().await;
    let (_, id) = h.create("variableeval", json!({})).await;
    h.edit_step(id, "renderVariables", |def, _| {
        def["step"]["conditions"] = json!([{"type": "skip", "if": [{"value": "{{eval `truc`}}", "operator": "EQ", "expected": "4"}], "then": {"this": "PRUNE"}}]);
    })
    .await;
    assert_eq!(h.run(id).await, Some(ResolutionState::Done));
    let s = h.steps(id).await;
    assert_eq!(st(&s, "renderVariables"), "PRUNE");
    assert_eq!(st(&s, "renderVariablesWithCache"), "PRUNE");
}

async fn subtask_flow(paused_parent: bool) {
    let h = harness().await;
    let (parent_task, parent) = h.create("subtasktemplate", json!({})).await;
    assert_eq!(h.run(parent).await, Some(ResolutionState::Waiting));
    let s = h.steps(parent).await;
    for (i, step) in [
        "subtaskCreation",
        "jsonInputSubtask",
        "templatingJsonInputSubtask",
    ]
    .iter()
    .enumerate()
    {
        let child: TaskId = out(&s, step)["id"].as_str().unwrap().parse().unwrap();
        let rec = store::task::get(&h.store, child).await.unwrap().unwrap();
        assert_eq!(rec.state, TaskState::Todo, "{step}");
        assert!(
            rec.resolution_id.is_none(),
            "requester \"\" is not allowed to auto-run"
        );
        assert_eq!(
            rec.tags["_utask_parent_task_id"],
            json!(parent_task.to_string())
        );
        assert_eq!(rec.parent_task_id, Some(parent_task));
        if paused_parent && i == 0 {
            store::resolution::force_state(&h.store, parent, ResolutionState::Paused)
                .await
                .unwrap();
        }
        let before = chrono::Utc::now();
        let child_res = h.resolve_task(child).await;
        assert_eq!(
            h.run(child_res).await,
            Some(ResolutionState::Done),
            "{step}"
        );
        let cs = h.steps(child_res).await;
        assert!(cs.values().all(|x| x.state == StepState::Done));
        assert_eq!(
            store::task::get(&h.store, child)
                .await
                .unwrap()
                .unwrap()
                .state,
            TaskState::Done
        );
        let nr = h.next_retry(parent).await;
        if paused_parent {
            assert!(nr.is_none(), "a paused parent is not woken");
            return;
        }
        let nr = nr.expect("parent woken");
        assert!(
            nr >= before - chrono::Duration::seconds(1) && nr <= chrono::Utc::now(),
            "{step}: {nr}"
        );
    }
    if !paused_parent {
        h.collect_until(parent, ResolutionState::Done).await;
        let task = store::task::get(
            &h.store,
            store::resolution::get(&h.store, parent)
                .await
                .unwrap()
                .unwrap()
                .task_id,
        )
        .await
        .unwrap()
        .unwrap();
        assert_eq!(task.result, Some(json!({"foo": "OK"})));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subtask() {
    subtask_flow(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subtask_parent_paused_is_not_resumed() {
    subtask_flow(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_output_subtask_wakes_a_running_parent() {
    let h = harness().await;
    let (_, parent) = h.create("nooutputsubtasktemplate", json!({})).await;
    assert_eq!(h.run(parent).await, Some(ResolutionState::Waiting));
    assert!(h.next_retry(parent).await.is_none());
    let s = h.steps(parent).await;
    let child: TaskId = out(&s, "subtaskCreation")["id"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    // µTask's TestWakeParent forces the parent to RUNNING before running the child
    store::resolution::force_state(&h.store, parent, ResolutionState::Running)
        .await
        .unwrap();
    mutask::store::resolution::set_task_state_for(&h.store, parent, TaskState::Running)
        .await
        .unwrap();
    let before = chrono::Utc::now();
    let child_res = h.resolve_task(child).await;
    assert_eq!(h.run(child_res).await, Some(ResolutionState::Done));
    let after = chrono::Utc::now();
    let nr = h.next_retry(parent).await.expect("parent woken");
    assert!(
        nr >= before - chrono::Duration::seconds(1) && nr <= after,
        "{nr}"
    );
    assert_eq!(h.state(parent).await, ResolutionState::Running);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch() {
    // batchedTask.yaml is the children's template
    let h = harness().await;
    let (_, parent) = h.create("batchtemplate", json!({})).await;
    assert_eq!(h.run(parent).await, Some(ResolutionState::Waiting));
    let s = h.steps(parent).await;
    let mut first_batch = true;
    for step in ["batchJsonInputs", "batchYamlInputs"] {
        assert_eq!(s[step].output, None, "{step}");
        let meta = s[step].metadata.clone().unwrap();
        let text = meta
            .as_str()
            .expect("metadata is a JSON string, as µTask's");
        let parsed: Value = serde_json::from_str(text).unwrap();
        let batch: mutask::domain::BatchId = parsed["batch_id"].as_str().unwrap().parse().unwrap();
        let children = store::task::batch_tasks(&h.store, batch).await.unwrap();
        assert_eq!(children.len(), 2, "{step}");
        for (i, child) in children.iter().enumerate() {
            let rec = store::task::get(&h.store, *child).await.unwrap().unwrap();
            assert_eq!(rec.state, TaskState::Todo);
            assert_eq!(rec.input["common_string"], "common");
            assert_eq!(rec.input["specific_string"], format!("specific-{}", i + 1));
            let r = h.resolve_task(*child).await;
            assert_eq!(h.run(r).await, Some(ResolutionState::Done));
            assert!(
                h.steps(r)
                    .await
                    .values()
                    .all(|x| x.state == StepState::Done)
            );
            assert_eq!(
                store::task::get(&h.store, *child)
                    .await
                    .unwrap()
                    .unwrap()
                    .state,
                TaskState::Done
            );
            let woken = h.next_retry(parent).await.is_some();
            if first_batch {
                assert_eq!(
                    woken,
                    i == 1,
                    "only the last child of the batch wakes the parent"
                );
            } else {
                assert!(woken);
            }
        }
        first_batch = false;
    }
    h.collect_until(parent, ResolutionState::Done).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_children_run_by_sub_batch() {
    // sub_batch_size bounds how many children exist unfinished at once
    let h = harness().await;
    let (_, parent) = h.create("batchtemplate", json!({})).await;
    h.edit_step(parent, "batchJsonInputs", |def, _| {
        def["step"]["action"]["configuration"]["json_inputs"] =
            json!("[{\"specific_string\": \"1\"}, {\"specific_string\": \"2\"}, {\"specific_string\": \"3\"}]");
        def["step"]["action"]["configuration"]["sub_batch_size"] = json!("1");
    })
    .await;
    assert_eq!(h.run(parent).await, Some(ResolutionState::Waiting));
    let meta: Value = serde_json::from_str(
        h.steps(parent).await["batchJsonInputs"]
            .metadata
            .clone()
            .unwrap()
            .as_str()
            .unwrap(),
    )
    .unwrap();
    let batch: mutask::domain::BatchId = meta["batch_id"].as_str().unwrap().parse().unwrap();
    assert_eq!(
        (
            meta["tasks_started"].clone(),
            meta["remaining_tasks"].clone()
        ),
        (json!(1), json!(3))
    );
    assert_eq!(
        h.steps(parent).await["batchJsonInputs"].state,
        StepState::Waiting
    );
    for round in 1..=3 {
        let children = store::task::batch_tasks(&h.store, batch).await.unwrap();
        assert_eq!(children.len(), round, "one more child per round");
        let r = h.resolve_task(*children.last().unwrap()).await;
        assert_eq!(h.run(r).await, Some(ResolutionState::Done));
        // the woken parent creates the next child
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while round < 3
            && store::task::batch_tasks(&h.store, batch)
                .await
                .unwrap()
                .len()
                == round
        {
            assert!(
                std::time::Instant::now() < deadline,
                "no child created after round {round}"
            );
            for (c, prev) in store::resolution::claim_due(
                &h.store,
                h.engine.instance,
                10,
                std::time::Duration::from_secs(60),
            )
            .await
            .unwrap()
            {
                h.engine.run_claimed(c, prev).await.unwrap();
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }
    let meta: Value = serde_json::from_str(
        h.steps(parent).await["batchJsonInputs"]
            .metadata
            .clone()
            .unwrap()
            .as_str()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(meta["tasks_started"], 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callback() {
    let h = harness().await;
    let (_, id) = h.create("callbacktemplate", json!({})).await;
    assert_eq!(h.run(id).await, Some(ResolutionState::Waiting));
    let s = h.steps(id).await;
    assert_eq!(
        (st(&s, "createCallback"), st(&s, "waitCallback")),
        ("DONE".into(), "WAITING".into())
    );
    let o = out(&s, "createCallback");
    assert!(
        o["url"]
            .as_str()
            .unwrap()
            .starts_with("http://foo.example.com/unsecured/callback/")
    );
    assert_eq!(
        o["schema"]["required"],
        json!(["success"]),
        "evalCache rendered inside the schema"
    );
    // the call resumes the resolution
    let cb: uuid::Uuid = o["id"].as_str().unwrap().parse().unwrap();
    assert!(
        store::callback::record_call(&h.store, cb, &json!({"success": true}))
            .await
            .unwrap()
    );
    assert!(
        !store::callback::record_call(&h.store, cb, &json!({"success": false}))
            .await
            .unwrap(),
        "once only"
    );
    h.collect_until(id, ResolutionState::Done).await;
    let s = h.steps(id).await;
    assert_eq!(out(&s, "waitCallback")["body"], json!({"success": true}));
}

/// Which test covers each µTask conformance file.
const COVERAGE: &[(&str, &str)] = &[
    ("allowedStateImpact.yaml", "valid_templates_load"),
    ("anyDependency.yaml", "any_dependency"),
    ("base_configuration.yaml", "base_configuration"),
    ("base_output.yaml", "base_output"),
    ("batch.yaml", "batch"),
    ("batchedTask.yaml", "batch"),
    ("callback.yaml", "callback"),
    ("circularDependencies.yaml", "lint_errors"),
    ("clientError.yaml", "client_error"),
    ("computeVersion.yaml", "compute_version"),
    ("conditionForeachInvalid.yaml", "lint_errors"),
    ("conditionForeachSkipOnly.yaml", "lint_errors"),
    ("conditionForeachStepNotForeach.yaml", "lint_errors"),
    ("customStates.yaml", "lint_errors"),
    ("execScript.yaml", "exec_script"),
    (
        "execScriptWithEnvironment.yaml",
        "exec_script_with_environment",
    ),
    ("forbiddenStateImpact.yaml", "lint_errors"),
    ("foreach.yaml", "foreach"),
    ("foreachAndPreRun.yaml", "foreach_and_prerun_as_is"),
    ("functionCustomState.yaml", "function_custom_state"),
    ("functionEchoHelloWorld.yaml", "function_hello_world"),
    ("functionEchoHelloWorldError.yaml", "lint_errors"),
    (
        "functionEchoTemplatedOutput.yaml",
        "function_templated_output",
    ),
    ("functionNested.yaml", "function_nested"),
    ("functionPreHook.yaml", "function_pre_hook"),
    ("indirectDependencies.yaml", "indirect_dependencies"),
    ("input.yaml", "input_number_and_empty_string"),
    ("jsonParsing.yaml", "json_parsing"),
    ("jsonTemplating.yaml", "json_templating"),
    ("jsonnumber.yaml", "json_number"),
    ("lintingError.yaml", "lint_errors"),
    ("lintingInfiniteOk.yaml", "valid_templates_load"),
    ("lintingObject.yaml", "valid_templates_load"),
    ("lintingReservedStep.yaml", "lint_errors"),
    ("lintingRootKey.yaml", "lint_errors"),
    ("maxRetry.yaml", "max_retry"),
    ("metadata.yaml", "metadata"),
    ("nextRetry.yaml", "next_retry"),
    ("no-output-backward.yaml", "no_output_backward"),
    ("no-output.yaml", "no_output"),
    (
        "noOutputSubtask.yaml",
        "no_output_subtask_wakes_a_running_parent",
    ),
    ("orphanDependencies.yaml", "lint_errors"),
    ("prune.yaml", "prune"),
    ("rawb64EncodingDecoding.yaml", "raw_b64_encoding_decoding"),
    ("retryNowMaxRetry.yaml", "retry_now_max_retry"),
    ("retryNowState.yaml", "retry_now_state"),
    ("retryloop.yaml", "retry_loop"),
    ("selfDependency.yaml", "lint_errors"),
    ("simple.yaml", "simple_template"),
    ("stepCondition.yaml", "step_condition_states"),
    ("stepDetailsLintingError.yaml", "lint_errors"),
    ("stepMaxRetries.yaml", "step_max_retries"),
    ("subtask.yaml", "subtask"),
    ("variables.yaml", "variables"),
];

/// Every file of the suite maps to a test of this file that exists (the README's count).
#[test]
fn every_conformance_file_has_a_test() {
    let source = include_str!("conformance.rs");
    let mut files: Vec<String> = std::fs::read_dir(conformance_dir().join("templates_tests"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    files.sort();
    assert_eq!(files.len(), 54);
    for f in &files {
        let Some((_, test)) = COVERAGE.iter().find(|(file, _)| file == f) else {
            panic!("conformance file {f} has no test");
        };
        assert!(
            source.contains(&format!("async fn {test}()")),
            "{f}: test {test} does not exist"
        );
    }
    assert_eq!(COVERAGE.len(), files.len());
}
