//! The `mutask` binary as a newcomer runs it: embedded PostgreSQL, generated admin password,
//! data surviving a restart; two instances racing on one database; configuration errors; the
//! template validator.

use crate::common;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_mutask");

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn mutask(data: &Path, port: u16) -> Command {
    let mut c = Command::new(BIN);
    c.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("MUTASK_DATA_DIR", data)
        .env("MUTASK_LISTEN", format!("127.0.0.1:{port}"))
        .env("MUTASK_TEMPLATES_DIR", common::shipped_templates())
        .env("MUTASK_FUNCTIONS_DIR", data.join("functions"))
        .env("RUST_LOG", "info")
        .stdin(Stdio::null());
    c
}

struct Proc {
    child: Child,
    log: std::path::PathBuf,
}

/// Starts `mutask serve` with `cmd`'s environment.
fn spawn(mut cmd: Command, log: &Path) -> Proc {
    cmd.arg("serve");
    let f = std::fs::File::create(log).unwrap();
    cmd.stdout(f.try_clone().unwrap()).stderr(f);
    Proc {
        child: cmd.spawn().unwrap(),
        log: log.to_path_buf(),
    }
}

impl Proc {
    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGTERM, then wait for a clean exit.
    fn stop(mut self) {
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        )
        .unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                assert!(
                    status.success(),
                    "mutask exited with {status}:\n{}",
                    self.log()
                );
                return;
            }
            assert!(
                Instant::now() < deadline,
                "mutask did not stop:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

async fn wait_ready(p: &mut Proc, port: u16) {
    let client = common::http();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if let Some(status) = p.child.try_wait().unwrap() {
            panic!("mutask exited early ({status}):\n{}", p.log());
        }
        if let Ok(r) = client
            .get(format!("http://127.0.0.1:{port}/unsecured/mon/ready"))
            .send()
            .await
            && r.status() == 200
        {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "mutask not ready in time:\n{}",
            p.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn embedded_database_first_run_and_restart() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let port = free_port();
    let mut p = spawn(mutask(&data, port), &dir.path().join("run1.log"));
    wait_ready(&mut p, port).await;
    let client = common::http();
    let r = client
        .get(format!("http://127.0.0.1:{port}/unsecured/mon/ping"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.text().await.unwrap(), "pong");

    // no auth configured: an admin whose password was generated into the data dir (mode 0600)
    let pw_path = data.join("admin-password");
    let password = std::fs::read_to_string(&pw_path)
        .unwrap()
        .trim()
        .to_string();
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&pw_path).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert_eq!(
        std::fs::metadata(data.join("encryption.key"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o600
    );
    assert!(
        !p.log().contains(&password),
        "the generated password must not be logged"
    );

    let list: Value = client
        .get(format!("http://127.0.0.1:{port}/template"))
        .basic_auth("admin", Some(&password))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        list.as_array()
            .unwrap()
            .iter()
            .any(|t| t["name"] == "hello-world"),
        "{list}"
    );
    let r = client
        .post(format!("http://127.0.0.1:{port}/task"))
        .basic_auth("admin", Some(&password))
        .json(&json!({"template_name": "hello-world", "input": {"name": "Restart"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let task: Value = r.json().await.unwrap();
    let id = task["id"].as_str().unwrap().to_string();
    p.stop();

    // second start: same cluster, same key, the task is still there
    let mut p = spawn(mutask(&data, port), &dir.path().join("run2.log"));
    wait_ready(&mut p, port).await;
    let got: Value = client
        .get(format!("http://127.0.0.1:{port}/task/{id}"))
        .basic_auth("admin", Some(&password))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(got["title"], "Say hello to Restart");
    assert_eq!(got["input"]["name"], "Restart");
    p.stop();
}

#[tokio::test]
async fn two_instances_starting_at_once_on_one_database() {
    let db = mutask::testing::test_db().await;
    let dir = tempfile::tempdir().unwrap();
    let key = "k1:".to_string() + &base64_key();
    let mut procs = Vec::new();
    for i in 0..2 {
        let port = free_port();
        let mut cmd = mutask(&dir.path().join(format!("d{i}")), port);
        cmd.env("MUTASK_DATABASE_URL", &db.url)
            .env("MUTASK_ENCRYPTION_KEYS", &key)
            .env("MUTASK_BASIC_AUTH", "admin:pw")
            .env("MUTASK_ADMIN_USERNAMES", "admin");
        procs.push((spawn(cmd, &dir.path().join(format!("i{i}.log"))), port));
    }
    for (p, port) in procs.iter_mut() {
        wait_ready(p, *port).await;
    }
    let alive = mutask::store::instance::count_alive(
        &mutask::store::Store::new(
            sqlx::PgPool::connect_with(db.options.clone())
                .await
                .unwrap(),
            std::sync::Arc::new(mutask::crypto::KeyRing::parse(&key).unwrap()),
        ),
        60,
    )
    .await
    .unwrap();
    assert_eq!(alive, 2);
    for (p, _) in procs {
        p.stop();
    }
}

fn base64_key() -> String {
    let entry = mutask::crypto::KeyRing::generate_entry().unwrap();
    entry.split_once(':').unwrap().1.to_string()
}

#[test]
fn invalid_configuration_names_the_setting() {
    let dir = tempfile::tempdir().unwrap();
    for (var, value) in [
        ("MUTASK_LISTEN", "not-an-address"),
        ("MUTASK_ENCRYPTION_KEYS", "k1:tooshort"),
        ("MUTASK_DATABASE_URL", "mysql://localhost/x"),
        ("MUTASK_BASIC_AUTH", "nopassword"),
    ] {
        let out = mutask(dir.path(), 1)
            .env(var, value)
            .arg("serve")
            .output()
            .unwrap();
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(var), "{var}: {err}");
        assert!(!err.contains("panicked"), "{err}");
    }
}

#[test]
fn no_postgresql_binaries_explains_the_ways_out() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty-bin");
    std::fs::create_dir_all(&empty).unwrap();
    let out = mutask(&dir.path().join("data"), free_port())
        .env("PATH", &empty)
        .env("MUTASK_PG_BIN_DIR", &empty)
        .arg("serve")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("MUTASK_DATABASE_URL") && err.contains("docker-compose"),
        "{err}"
    );
}

#[test]
fn help_and_version() {
    for args in [
        &["--help"][..],
        &["serve", "--help"],
        &["migrate", "--help"],
        &["template", "validate", "--help"],
        &["keys", "generate", "--help"],
    ] {
        let out = Command::new(BIN).args(args).output().unwrap();
        assert!(out.status.success(), "{args:?}");
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("Usage"),
            "{args:?}"
        );
    }
    let out = Command::new(BIN).arg("--version").output().unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains(env!("CARGO_PKG_VERSION")));
    let out = Command::new(BIN)
        .args(["keys", "generate"])
        .output()
        .unwrap();
    let entry = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert!(mutask::crypto::KeyRing::parse(&entry).is_ok(), "{entry}");
}

#[test]
fn template_validate_reports_every_problem_with_lines() {
    let dir = tempfile::tempdir().unwrap();
    let t = dir.path().join("templates");
    std::fs::create_dir_all(&t).unwrap();
    std::fs::copy(
        common::shipped_templates().join("hello-world.yaml"),
        t.join("hello-world.yaml"),
    )
    .unwrap();
    std::fs::write(
        t.join("broken.yaml"),
        "name: broken\n\
         description: three problems\n\
         title_format: broken\n\
         steps:\n\
         \x20 a:\n\
         \x20   action:\n\
         \x20     type: echo\n\
         \x20   dependencies: [nope]\n\
         \x20 this:\n\
         \x20   action:\n\
         \x20     type: echo\n\
         \x20 c:\n\
         \x20   action:\n\
         \x20     type: no-such-action\n",
    )
    .unwrap();
    let out = mutask(dir.path(), 1)
        .args(["template", "validate"])
        .arg(&t)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    let errors: Vec<&str> = stdout
        .lines()
        .filter(|l| l.contains("error"))
        .filter(|l| l.contains("broken.yaml"))
        .collect();
    assert_eq!(errors.len(), 3, "{stdout}");
    assert!(
        errors
            .iter()
            .any(|l| l.contains("broken.yaml:8:") && l.contains("nope")),
        "{stdout}"
    );
    assert!(
        errors
            .iter()
            .any(|l| l.contains("broken.yaml:9:") && l.contains("reserved")),
        "{stdout}"
    );
    assert!(
        errors
            .iter()
            .any(|l| l.contains("broken.yaml:14:") && l.contains("no-such-action")),
        "{stdout}"
    );
    assert!(stdout.contains("1 template(s) valid"), "{stdout}");
    let out = mutask(dir.path(), 1)
        .args(["template", "validate"])
        .arg(t.join("hello-world.yaml"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[test]
fn install_sh_writes_a_working_env_once() {
    let dir = tempfile::tempdir().unwrap();
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("install.sh");
    let run = || {
        Command::new("bash")
            .arg(&script)
            .current_dir(dir.path())
            .output()
            .unwrap()
    };
    let out = run();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let env_path = dir.path().join(".env");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&env_path).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let first = std::fs::read_to_string(&env_path).unwrap();
    let value = |k: &str| {
        first
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{k}=")))
            .unwrap_or_else(|| panic!("{k} missing"))
            .to_string()
    };
    assert!(mutask::crypto::KeyRing::parse(&value("MUTASK_ENCRYPTION_KEYS")).is_ok());
    assert!(mutask::config::parse_basic_auth(&value("MUTASK_BASIC_AUTH")).is_ok());
    assert!(!value("POSTGRES_PASSWORD").is_empty());
    // a project folder: the examples, a compose file building the image from this source, a README
    for f in [
        "templates/hello-world.yaml",
        "plugins/greet/manifest.yaml",
        "README.md",
    ] {
        assert!(dir.path().join(f).exists(), "{f} missing");
    }
    let compose = std::fs::read_to_string(dir.path().join("docker-compose.yaml")).unwrap();
    assert!(
        compose.contains(&format!("  build: {}\n", env!("CARGO_MANIFEST_DIR"))),
        "{compose}"
    );
    let again = run();
    assert!(again.status.success());
    assert!(String::from_utf8_lossy(&again.stdout).contains("keeping it"));
    assert_eq!(
        std::fs::read_to_string(&env_path).unwrap(),
        first,
        "an existing key is never overwritten"
    );
    let help = Command::new("bash")
        .arg(&script)
        .arg("--help")
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&help.stdout).contains("--no-docker"));
    let bad = Command::new("bash")
        .arg(&script)
        .arg("--nope")
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
}

#[tokio::test]
async fn install_sh_no_docker_gives_a_running_mutask_with_the_examples() {
    let tmp = tempfile::tempdir().unwrap();
    let project = tmp.path().join("proj");
    let src = env!("CARGO_MANIFEST_DIR");
    let script = std::path::Path::new(src).join("install.sh");
    // The first run takes the `cargo install` path. A real one is a release build of several
    // minutes, so a `cargo` early on PATH stands in for it: it records the arguments install.sh
    // gives and installs this test's binary where cargo would. The second run uses --binary.
    let fake_bin = tmp.path().join("fake-bin");
    std::fs::create_dir_all(&fake_bin).unwrap();
    let record = tmp.path().join("cargo-args");
    let cargo = fake_bin.join("cargo");
    std::fs::write(
        &cargo,
        format!(
            "#!/bin/sh\nprintf '%s\\n' \"$@\" > '{}'\nroot=\nwhile [ $# -gt 0 ]; do [ \"$1\" = --root ] && root=$2; shift; done\n\
             mkdir -p \"$root/bin\" && cp '{BIN}' \"$root/bin/mutask\"\n",
            record.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&cargo, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let install = |binary: bool| {
        let mut c = Command::new("bash");
        c.arg(&script).args(["--no-docker", "--dir"]).arg(&project);
        if binary {
            c.arg("--binary").arg(BIN);
        } else {
            c.env(
                "PATH",
                format!(
                    "{}:{}",
                    fake_bin.display(),
                    std::env::var("PATH").unwrap_or_default()
                ),
            );
        }
        c.output().unwrap()
    };
    let out = install(false);
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for f in [
        "templates/hello-world.yaml",
        "plugins/greet/manifest.yaml",
        "functions/greeting.yaml",
        "scripts/sleep.sh",
        "mutask.toml",
        "README.md",
        "bin/mutask",
    ] {
        assert!(project.join(f).exists(), "{f} missing:\n{stdout}");
    }
    let args = std::fs::read_to_string(&record).expect("install.sh ran cargo");
    assert_eq!(
        args.lines().collect::<Vec<_>>(),
        [
            "install",
            "--locked",
            "--root",
            project.to_str().unwrap(),
            "--path",
            src
        ]
    );
    // the command it prints, run as printed (on a free port instead of 8081)
    let command = stdout
        .lines()
        .skip_while(|l| !l.starts_with("Installed in"))
        .nth(1)
        .expect("a start command")
        .trim()
        .to_string();
    assert!(
        command.contains("bin/mutask") && command.ends_with("serve"),
        "{command}"
    );
    // a second run keeps what exists
    std::fs::write(project.join("templates/mine.yaml"), "# mine\n").unwrap();
    let again = install(true);
    assert!(again.status.success());
    assert!(String::from_utf8_lossy(&again.stdout).contains("mutask.toml exists, keeping it"));
    assert_eq!(
        std::fs::read_to_string(project.join("templates/mine.yaml")).unwrap(),
        "# mine\n"
    );
    std::fs::remove_file(project.join("templates/mine.yaml")).unwrap();

    // a template of the user's own that calls the shipped example function
    std::fs::write(
        project.join("templates/greet-function.yaml"),
        r#"name: greet-function
description: Greets through the example function
title_format: "Greet {{.input.name}}"
auto_runnable: true
allow_all_resolver_usernames: true
inputs:
  - name: name
steps:
  greet:
    description: greet
    action:
      type: example::greeting
      configuration:
        name: "{{.input.name}}"
result_format:
  greeting: "{{.step.greet.output.greeting}}"
"#,
    )
    .unwrap();

    let port = free_port();
    let mut cmd = Command::new("bash");
    cmd.arg("-c")
        .arg(format!("exec {command}"))
        .current_dir(tmp.path())
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("MUTASK_LISTEN", format!("127.0.0.1:{port}"))
        .env("RUST_LOG", "info")
        .stdin(Stdio::null());
    let mut p = spawn(cmd, &tmp.path().join("serve.log"));
    // `spawn` added `serve` after the printed command's own: bash ignores extra words after -c's
    // script, which runs exactly what install.sh printed
    wait_ready(&mut p, port).await;
    let password = std::fs::read_to_string(project.join(".mutask/admin-password")).unwrap();
    let r = common::http()
        .get(format!("http://127.0.0.1:{port}/template"))
        .basic_auth("admin", Some(password.trim()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let names: Vec<String> = r
        .json::<Value>()
        .await
        .unwrap()
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_string())
        .collect();
    assert!(names.contains(&"hello-world".to_string()), "{names:?}");
    let http = common::http();
    let created: Value = http
        .post(format!("http://127.0.0.1:{port}/task"))
        .basic_auth("admin", Some(password.trim()))
        .json(&json!({"template_name": "greet-function", "input": {"name": "Ada"}}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = created["id"]
        .as_str()
        .unwrap_or_else(|| panic!("{created}"));
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let t: Value = http
            .get(format!("http://127.0.0.1:{port}/task/{id}"))
            .basic_auth("admin", Some(password.trim()))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if t["state"] == "DONE" {
            assert_eq!(t["result"]["greeting"], "Hello Ada, from a function!");
            break;
        }
        assert!(Instant::now() < deadline, "{t}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let ui = common::http()
        .get(format!("http://127.0.0.1:{port}/ui/"))
        .send()
        .await
        .unwrap();
    assert_eq!(ui.status(), 200);
    p.stop();
}

#[test]
fn compose_file_runs_two_instances_on_one_postgres() {
    let text = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docker-compose.yaml"),
    )
    .unwrap();
    let mut doc: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
    doc.apply_merge().unwrap(); // `<<: *mutask`, as docker-compose resolves it
    let services = doc["services"].as_mapping().unwrap();
    assert!(services.contains_key("postgres"));
    assert!(doc["services"]["postgres"]["healthcheck"].is_mapping());
    let mutasks: Vec<_> = services
        .keys()
        .filter_map(|k| k.as_str())
        .filter(|k| k.starts_with("mutask"))
        .collect();
    assert_eq!(mutasks.len(), 2);
    // the database lives in a named volume, and nothing publishes PostgreSQL's port
    let pg = &doc["services"]["postgres"];
    assert!(
        pg["volumes"]
            .as_sequence()
            .unwrap()
            .iter()
            .any(|v| v.as_str() == Some("pgdata:/var/lib/postgresql/data")),
        "{pg:?}"
    );
    assert!(doc["volumes"]["pgdata"].is_mapping(), "pgdata is declared");
    assert!(
        pg["ports"].is_null(),
        "PostgreSQL stays inside the compose network"
    );
    // secrets only from .env: compose refuses to start without them (`${VAR:?…}`)
    let from_env = |v: &serde_yaml::Value, var: &str| {
        let s = v.as_str().unwrap_or_default();
        assert!(
            s.contains(&format!("${{{var}:?")),
            "{var} must come from .env: {s}"
        );
    };
    from_env(&pg["environment"]["POSTGRES_PASSWORD"], "POSTGRES_PASSWORD");
    for m in mutasks {
        let env = &doc["services"][m]["environment"];
        from_env(&env["MUTASK_ENCRYPTION_KEYS"], "MUTASK_ENCRYPTION_KEYS");
        from_env(&env["MUTASK_BASIC_AUTH"], "MUTASK_BASIC_AUTH");
        from_env(&env["MUTASK_DATABASE_URL"], "POSTGRES_PASSWORD");
        assert_eq!(
            doc["services"][m]["depends_on"]["postgres"]["condition"].as_str(),
            Some("service_healthy"),
            "{m} waits for a healthy database"
        );
        let url = doc["services"][m]["environment"]["MUTASK_DATABASE_URL"]
            .as_str()
            .unwrap();
        assert!(url.contains("@postgres:5432/"), "{m}: {url}");
        let port = doc["services"][m]["ports"][0].as_str().unwrap();
        assert!(
            port.starts_with("127.0.0.1:"),
            "{m} must listen on localhost only: {port}"
        );
        let volumes: Vec<&str> = doc["services"][m]["volumes"]
            .as_sequence()
            .unwrap()
            .iter()
            .filter_map(|v| v.as_str())
            .collect();
        for dir in ["templates", "functions", "scripts", "plugins"] {
            assert!(
                volumes.contains(&format!("./{dir}:/etc/mutask/{dir}:ro").as_str()),
                "{m} mounts {dir}: {volumes:?}"
            );
        }
    }
}

#[test]
fn the_image_runs_as_a_user_with_a_readiness_healthcheck() {
    let text = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("Dockerfile"),
    )
    .unwrap();
    let healthcheck = text
        .lines()
        .skip_while(|l| !l.starts_with("HEALTHCHECK"))
        .take(2)
        .collect::<Vec<_>>()
        .join(" ");
    assert!(
        healthcheck.contains("/unsecured/mon/ready"),
        "{healthcheck}"
    );
    assert!(text.contains("\nUSER mutask\n"));
    // the build stages run what CI runs natively, the UI first (it is embedded)
    let ui = text.find("npm run build").expect("the UI is built");
    let cargo = text
        .find("cargo build --release --locked")
        .expect("the binary is built");
    assert!(
        ui < cargo,
        "the UI must be built before the binary embeds it"
    );
    assert!(text.contains("npm ci"));
    assert!(text.contains("COPY --from=ui /src/ui/dist ui/dist"));
    for env in [
        "MUTASK_TEMPLATES_DIR",
        "MUTASK_PLUGINS_DIR",
        "MUTASK_DATA_DIR",
    ] {
        assert!(text.contains(env), "{env}");
    }
}

#[test]
fn the_config_file_sets_the_log_format() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("mutask.toml");
    std::fs::write(&file, "log_format = \"json\"\n").unwrap();
    let out = mutask(dir.path(), 1)
        .env("MUTASK_CONFIG", &file)
        .env("MUTASK_BASIC_AUTH", "admin:plain-password") // warns at startup
        .env("MUTASK_DATABASE_URL", "postgres://mutask@127.0.0.1:1/none")
        .arg("serve")
        .output()
        .unwrap();
    assert!(!out.status.success(), "no database there");
    let err = String::from_utf8_lossy(&out.stderr);
    let warning = err
        .lines()
        .find(|l| l.contains("plain-text password"))
        .unwrap_or_else(|| panic!("{err}"));
    let v: Value = serde_json::from_str(warning).unwrap_or_else(|e| panic!("{e}: {warning}"));
    assert_eq!(v["level"], "WARN", "{v}");
}
