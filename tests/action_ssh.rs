//! The `ssh` action against a real OpenSSH server started here on a free loopback port (Debian
//! `openssh-server`, installed by `.ci/run`): key authentication, host-key checking, values
//! passed as data, output modes, exit codes, a bastion hop, the network policy, the step log.

use crate::common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use mutask::action::http::NetworkPolicy;
use mutask::action::log::{StepLog, Stream};
use mutask::action::ssh::Ssh;
use mutask::action::{Action, ActionError, ActionResult, Registry};
use serde_json::{Value, json};

struct Sshd {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
    user: String,
    host_pub: String,
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn keygen(path: &Path) {
    let out = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(path)
        .output()
        .expect("ssh-keygen runs (openssh-client)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn sshd() -> Sshd {
    let bin = PathBuf::from("/usr/sbin/sshd");
    assert!(
        bin.exists(),
        "/usr/sbin/sshd is missing: apt-get install openssh-server (.ci/run does)"
    );
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    keygen(&d.join("host"));
    keygen(&d.join("client"));
    keygen(&d.join("stranger"));
    std::fs::copy(d.join("client.pub"), d.join("authorized_keys")).unwrap();
    let user = String::from_utf8(Command::new("id").arg("-un").output().unwrap().stdout)
        .unwrap()
        .trim()
        .to_string();
    if nix::unistd::geteuid().is_root() {
        std::fs::create_dir_all("/run/sshd").unwrap();
    }
    // a port picked free may be taken again before sshd binds it (a parallel test): sshd writes
    // its pid file once it listens, and exits when the bind fails — then try another port
    let mut started = None;
    for _ in 0..5 {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let pid = d.join(format!("sshd-{port}.pid"));
        let config = d.join("sshd_config");
        std::fs::write(
            &config,
            format!(
                "Port {port}\nListenAddress 127.0.0.1\nHostKey {host}\nAuthorizedKeysFile {keys}\n\
                 PasswordAuthentication no\nKbdInteractiveAuthentication no\nPubkeyAuthentication yes\n\
                 PermitRootLogin prohibit-password\nStrictModes no\nUsePAM no\nPidFile {pid}\n\
                 AllowTcpForwarding yes\nLogLevel ERROR\n",
                host = d.join("host").display(),
                keys = d.join("authorized_keys").display(),
                pid = pid.display(),
            ),
        )
        .unwrap();
        let mut child = Command::new(&bin)
            .args(["-D", "-e", "-f"])
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(d.join("sshd.log")).unwrap())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if child.try_wait().unwrap().is_some() {
                break; // the port was taken: another try
            }
            if pid.exists() {
                started = Some((child, port));
                break;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!(
                    "sshd did not start: {}",
                    std::fs::read_to_string(d.join("sshd.log")).unwrap_or_default()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        if started.is_some() {
            break;
        }
    }
    let (child, port) = started.unwrap_or_else(|| {
        panic!(
            "sshd could not listen: {}",
            std::fs::read_to_string(d.join("sshd.log")).unwrap_or_default()
        )
    });
    let host_pub = std::fs::read_to_string(d.join("host.pub")).unwrap();
    Sshd {
        child,
        port,
        dir,
        user,
        host_pub,
    }
}

impl Sshd {
    fn key(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir.path().join(name)).unwrap()
    }

    fn known_hosts(&self) -> String {
        let mut parts = self.host_pub.split_whitespace();
        let (kind, b64) = (parts.next().unwrap(), parts.next().unwrap());
        format!("[127.0.0.1]:{} {kind} {b64}\n", self.port)
    }

    fn config(&self, script: &str) -> Value {
        json!({
            "target": format!("{}@127.0.0.1:{}", self.user, self.port),
            "ssh_key": self.key("client"),
            "known_hosts": self.known_hosts(),
            "script": script,
            "timeout": "20s",
        })
    }
}

async fn run(config: Value) -> ActionResult {
    Ssh::new(NetworkPolicy::with_allow_list(["127.0.0.1"]).unwrap())
        .run(common::action_request(config, StepLog::discard()))
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_script_runs_with_values_as_data_and_a_result() {
    let s = sshd();
    let hostile = "x'; touch /tmp/mutask-ssh-pwned; echo '$(id) `id`";
    let mut c = s.config("echo \"value=$VALUE\"\necho 'on stderr' >&2\nexit 0\n");
    c["environment"] = json!({"VALUE": hostile});
    c["result"] = json!({"value": "printf '%s' \"$VALUE\"", "kernel": "uname -s"});
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let r = Ssh::new(NetworkPolicy::with_allow_list(["127.0.0.1"]).unwrap())
        .run(common::action_request(c, StepLog::new(tx)))
        .await;
    assert_eq!(r.error, None, "{r:?}");
    let out = r.output.unwrap();
    assert_eq!(out["value"], hostile, "the value arrived as data");
    assert_eq!(out["kernel"], "Linux");
    assert!(
        !Path::new("/tmp/mutask-ssh-pwned").exists(),
        "nothing was injected"
    );
    let meta = r.metadata.unwrap();
    assert_eq!(meta["exit_code"], "0");
    assert!(
        meta["output"]
            .as_str()
            .unwrap()
            .contains(&format!("value={hostile}")),
        "{meta}"
    );
    assert!(
        !meta["output"]
            .as_str()
            .unwrap()
            .contains("__MUTASK_SSH_RESULT"),
        "{meta}"
    );
    let lines: Vec<(Stream, String)> = std::iter::from_fn(|| rx.try_recv().ok()).collect();
    assert!(
        lines.contains(&(Stream::Stdout, format!("value={hostile}"))),
        "{lines:?}"
    );
    assert!(
        lines.contains(&(Stream::Stderr, "on stderr".into())),
        "{lines:?}"
    );

    // manual-lastline and manual-delimiters
    let mut c = s.config("echo noise\necho '{\"ok\": true}'\n");
    c["output_mode"] = json!("manual-lastline");
    assert_eq!(run(c).await.output, Some(json!({"ok": true})));
    let mut c = s.config("echo 'a <<<[1,2]>>> b'\n");
    c["output_mode"] = json!("manual-delimiters");
    c["output_manual_delimiters"] = json!(["<<<", ">>>"]);
    assert_eq!(run(c).await.output, Some(json!([1, 2])));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_keys_keys_and_exit_codes_decide_the_state() {
    let s = sshd();
    // unknown host: refused before anything runs, unless explicitly skipped
    let mut c = s.config("touch /tmp/should-not-run-$$\n");
    c["known_hosts"] = json!("# nothing\n");
    let r = run(c.clone()).await;
    assert!(
        matches!(&r.error, Some(ActionError::Client(m)) if m.contains("not in known_hosts")),
        "{r:?}"
    );
    c["known_hosts"] = json!(format!(
        "[127.0.0.1]:{} ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl\n",
        s.port
    ));
    let r = run(c.clone()).await;
    assert!(
        matches!(&r.error, Some(ActionError::Client(m)) if m.contains("CHANGED")),
        "{r:?}"
    );
    let mut skip = s.config("exit 0\n");
    skip["known_hosts"] = json!("");
    skip["skip_host_key_check"] = json!(true);
    assert_eq!(run(skip).await.error, None);

    // a key the server does not know
    let mut c = s.config("exit 0\n");
    c["ssh_key"] = json!(s.key("stranger"));
    let r = run(c).await;
    assert!(
        matches!(&r.error, Some(ActionError::Client(m)) if m.contains("refused the key")),
        "{r:?}"
    );

    // exit codes
    let mut c = s.config("exit 3\n");
    c["exit_codes_unrecoverable"] = json!(["1-3", 9]);
    let r = run(c.clone()).await;
    assert!(matches!(r.error, Some(ActionError::Client(_))), "{r:?}");
    assert_eq!(r.metadata.unwrap()["exit_code"], "3");
    c["script"] = json!("exit 4\n");
    assert!(matches!(run(c).await.error, Some(ActionError::Server(_))));

    // nothing listens: transient
    let mut c = s.config("exit 0\n");
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    c["target"] = json!(format!("{}@127.0.0.1:{port}", s.user));
    assert!(matches!(run(c).await.error, Some(ActionError::Server(_))));

    // the default network policy refuses loopback
    let r = Registry::builtin()
        .get("ssh")
        .unwrap()
        .run(common::action_request(
            s.config("exit 0\n"),
            StepLog::discard(),
        ))
        .await;
    assert!(
        matches!(&r.error, Some(ActionError::Client(m)) if m.contains("loopback")),
        "{r:?}"
    );

    // a bad configuration names the field
    let mut c = s.config("exit 0\n");
    c["environment"] = json!({"NOT-A-NAME": "x"});
    let r = run(c).await;
    assert!(
        matches!(&r.error, Some(ActionError::Client(m)) if m.contains("environment.NOT-A-NAME")),
        "{r:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bastion_hop_reaches_the_target() {
    let s = sshd();
    // the same sshd is both the bastion and the target, reached through direct-tcpip
    let mut c = s.config("echo through\n");
    c["hops"] = json!([format!("{}@127.0.0.1:{}", s.user, s.port)]);
    c["output_mode"] = json!("disabled");
    let r = run(c).await;
    assert_eq!(r.error, None, "{r:?}");
    assert!(
        r.metadata.unwrap()["output"]
            .as_str()
            .unwrap()
            .contains("through")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_runs_a_remote_script_end_to_end() {
    let s = sshd();
    let target = format!("{}@127.0.0.1:{}", s.user, s.port);
    let m = common::start_with(move |c| {
        c.network_allow = vec!["127.0.0.1".into()];
        let dir = c.data_dir.join("templates");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("remote.yaml"),
            format!(
                r#"
name: remote
description: Runs a command over SSH
title_format: remote run
auto_runnable: true
allow_all_resolver_usernames: true
inputs:
  - name: key
    type: password
  - name: known_hosts
  - name: message
steps:
  run:
    action:
      type: ssh
      configuration:
        target: "{target}"
        ssh_key: "{{{{.input.key}}}}"
        known_hosts: "{{{{.input.known_hosts}}}}"
        environment:
          MESSAGE: "{{{{.input.message}}}}"
        script: |
          echo "got: $MESSAGE"
        result:
          echoed: printf '%s' "$MESSAGE"
"#
            ),
        )
        .unwrap();
        c.templates_dir = dir;
    })
    .await;
    let message = "hi; rm -rf / `id` $(reboot)";
    let (status, t) = m
        .post(
            "alice",
            "/task",
            &json!({"template_name": "remote", "input": {"key": s.key("client"), "known_hosts": s.known_hosts(), "message": message}}),
        )
        .await;
    assert_eq!(status, 201, "{t}");
    let id = t["id"].as_str().unwrap().to_string();
    let deadline = Instant::now() + Duration::from_secs(60);
    let task = loop {
        let (_, t) = m.get("admin", &format!("/task/{id}")).await;
        if t["state"] == "DONE" || t["state"] == "BLOCKED" {
            break t;
        }
        assert!(Instant::now() < deadline, "not done: {t}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let r = task["resolution"].as_str().unwrap().to_string();
    let (_, step) = m.get("admin", &format!("/resolution/{r}/step/run")).await;
    assert_eq!(task["state"], "DONE", "{step}");
    assert_eq!(step["output"]["echoed"], message);
    // the step log has the remote output
    let (_, log) = m
        .get("admin", &format!("/resolution/{r}/step/run/log"))
        .await;
    assert!(log.to_string().contains("got: hi; rm -rf /"), "{log}");
    m.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_remote_script_past_its_timeout_is_a_server_error() {
    let s = sshd();
    let marker = s.dir.path().join("finished");
    let mut c = s.config(&format!(
        "echo started\nprintf 'still waiting' >&2\nsleep 30\ntouch '{}'\n",
        marker.display()
    ));
    c["timeout"] = json!("1s");
    let started = Instant::now();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let r = Ssh::new(NetworkPolicy::with_allow_list(["127.0.0.1"]).unwrap())
        .run(common::action_request(c, StepLog::new(tx)))
        .await;
    assert!(
        matches!(&r.error, Some(ActionError::Server(m)) if m.contains("timed out after 1s")),
        "{r:?}"
    );
    // what it printed until then: in the metadata, and in the step log, the last line without
    // its newline too
    let meta = r.metadata.as_ref().expect("metadata at a timeout");
    let output = meta["output"].as_str().unwrap();
    assert!(
        output.contains("started\n") && output.contains("still waiting"),
        "{meta}"
    );
    assert_eq!(meta["exit_code"], "-1", "{meta}");
    let lines: Vec<(Stream, String)> = std::iter::from_fn(|| rx.try_recv().ok()).collect();
    assert!(
        lines.contains(&(Stream::Stdout, "started".into()))
            && lines.contains(&(Stream::Stderr, "still waiting".into())),
        "{lines:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "cut at the timeout: {:?}",
        started.elapsed()
    );
    assert!(!marker.exists(), "the script did not run to its end");
}
