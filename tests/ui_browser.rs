//! The dashboard and editor in a real browser: `ui/e2e/run.mjs` (playwright-core driving
//! Debian's chromium) against a mutask started here with the shipped templates and those of
//! `ui/e2e/templates`. It creates a task from the form (with watchers), edits its watchers, counts
//! and searches titles in the list, resolves it as the resolver, watches the steps turn DONE, sees
//! a step's configuration rendered (and as written), skips a failed step, marks an invalid template's error at its line and runs
//! plan mode. Screenshots land in `target/ui-e2e/`.
//!
//! Needs what `.ci/run` installs: the UI built (`ui/dist`), `ui/node_modules` (`npm ci`) and
//! `/usr/bin/chromium` (or `CHROMIUM`). Missing pieces fail the test with the command to run.

use crate::common;

use std::path::{Path, PathBuf};
use std::process::Command;

use mutask::config::parse_basic_auth;

fn ui_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("ui")
}

fn copy_yaml(from: &Path, to: &Path) {
    for e in std::fs::read_dir(from).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "yaml") {
            std::fs::copy(&p, to.join(p.file_name().unwrap())).unwrap();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn dashboard_and_editor_in_chromium() {
    let ui = ui_dir();
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    assert!(
        ui.join("dist/index.html").is_file(),
        "the UI is not built: run `npm ci && npm run build` in ui/ (.ci/run does)"
    );
    assert!(
        ui.join("node_modules/playwright-core").is_dir(),
        "playwright-core is missing: run `npm ci` in ui/ (.ci/run does)"
    );
    assert!(
        Path::new(&chromium).is_file(),
        "{chromium} is missing: `apt-get install chromium` (.ci/run does)"
    );

    let templates = tempfile::tempdir().unwrap();
    copy_yaml(&common::shipped_templates(), templates.path());
    copy_yaml(&ui.join("e2e/templates"), templates.path());
    let dir = templates.path().to_path_buf();
    let inst = common::start_with(move |c| {
        c.templates_dir = dir;
        c.scripts_dir = ui_dir().join("e2e/scripts");
        c.basic_auth = Some(parse_basic_auth("admin:pw,alice:pw,rita:pw").unwrap());
    })
    .await;

    // the app is served, and browsers asking for `/` are sent to it
    let r = inst.client.get(inst.url("/ui/")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.text().await.unwrap().contains("<div id=\"app\">"));

    let out = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/ui-e2e");
    let _ = std::fs::remove_dir_all(&out);
    let base = inst.base.clone();
    let result = tokio::task::spawn_blocking({
        let out = out.clone();
        move || {
            Command::new("node")
                .arg("e2e/run.mjs")
                .current_dir(ui_dir())
                .env("MUTASK_URL", base)
                .env("E2E_OUT", &out)
                .env("CHROMIUM", chromium)
                .output()
                .expect("node runs")
        }
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&result.stdout);
    let stderr = String::from_utf8_lossy(&result.stderr);
    assert!(
        result.status.success(),
        "browser scenarios failed (screenshots in {}):\n{stdout}\n{stderr}",
        out.display()
    );
    for s in ["approval-flow", "skip-failed-step", "editor", "phone-width"] {
        assert!(
            stdout.contains(&format!("ok   {s}")),
            "{s} did not pass:\n{stdout}"
        );
    }
    for shot in [
        "04-resolved-all-done.png",
        "06-step-skipped-task-done.png",
        "07-plan.png",
        "08-editor-error.png",
    ] {
        assert!(out.join(shot).is_file(), "no screenshot {shot}");
    }
    inst.stop().await;
}
