//! The `email` action against a real SMTP server on loopback (tests/common/smtp.rs): plain
//! text with AUTH, STARTTLS and implicit TLS with a CA generated here, refusals mapped to step
//! states, the network policy, and a task that sends an email end to end.

use crate::common;

use std::time::Duration;

use common::smtp;
use mutask::action::email::Email;
use mutask::action::http::NetworkPolicy;
use mutask::action::{Action, ActionError, ActionResult, Registry};
use serde_json::{Value, json};

async fn send(config: Value) -> ActionResult {
    Email::new(NetworkPolicy::with_allow_list(["127.0.0.1"]).unwrap())
        .run(common::action_request(config, Default::default()))
        .await
}

fn config(port: u16) -> Value {
    json!({
        "smtp_hostname": "localhost",
        "smtp_port": port,
        "smtp_tls": "none",
        "from_address": "robot@example.com",
        "from_name": "Deploy robot",
        "to": ["ops@example.com"],
        "cc": ["lead@example.com"],
        "bcc": ["audit@example.com"],
        "subject": "Deployed billing",
        "body": "billing is live.\n.\nA line with a single dot above.",
    })
}

#[tokio::test]
async fn plain_smtp_with_auth_delivers_the_message() {
    let sink = smtp::start(smtp::Options {
        credentials: Some(("robot".into(), "s3cret".into())),
        ..Default::default()
    })
    .await;
    let mut c = config(sink.addr.port());
    c["smtp_username"] = json!("robot");
    c["smtp_password"] = json!("s3cret");
    let r = send(c).await;
    assert_eq!(r.error, None, "{r:?}");
    let mails = sink.mails();
    assert_eq!(mails.len(), 1);
    let m = &mails[0];
    assert_eq!(m.from, "robot@example.com");
    assert_eq!(
        m.rcpt,
        ["ops@example.com", "lead@example.com", "audit@example.com"]
    );
    assert_eq!(m.auth_user.as_deref(), Some("robot"));
    assert!(!m.tls);
    assert!(m.data.contains("Subject: Deployed billing"), "{}", m.data);
    assert!(
        m.data
            .contains("From: \"Deploy robot\" <robot@example.com>"),
        "{}",
        m.data
    );
    assert!(
        !m.data.contains("audit@example.com"),
        "bcc must not be in the headers"
    );
    assert!(
        m.data.contains("\r\n.\r\nA line with a single dot above."),
        "dot-stuffing undone: {}",
        m.data
    );
    let out = r.output.unwrap();
    assert_eq!(out["to"], json!(["ops@example.com"]));
    assert_eq!(out["subject"], "Deployed billing");
    assert!(out.get("bcc").is_none());
    let meta = r.metadata.unwrap();
    assert_eq!(meta["smtp_code"], "250");
    assert_eq!(meta["tls"], "none");
    assert!(!meta.to_string().contains("s3cret"));
}

#[tokio::test]
async fn starttls_and_implicit_tls_verify_the_certificate() {
    let pki = smtp::pki();
    let sink = smtp::start(smtp::Options {
        starttls: Some(pki.server.clone()),
        ..Default::default()
    })
    .await;
    let mut c = config(sink.addr.port());
    c["smtp_tls"] = json!("starttls");
    // an unknown CA: refused, as a client error (it will not fix itself)
    let r = send(c.clone()).await;
    assert!(matches!(r.error, Some(ActionError::Client(_))), "{r:?}");
    assert!(sink.mails().is_empty());
    c["smtp_root_ca"] = json!(pki.ca_pem);
    let r = send(c.clone()).await;
    assert_eq!(r.error, None, "{r:?}");
    assert!(sink.mails()[0].tls, "sent after STARTTLS");
    // `auto` upgrades when offered
    c["smtp_tls"] = json!("auto");
    let r = send(c.clone()).await;
    assert_eq!(r.error, None, "{r:?}");
    assert!(sink.mails()[1].tls);
    // µTask's skip flag accepts the unknown CA
    let mut skip = c.clone();
    skip.as_object_mut().unwrap().remove("smtp_root_ca");
    skip["smtp_skip_tls_verify"] = json!(true);
    assert_eq!(send(skip).await.error, None);

    let smtps = smtp::start(smtp::Options {
        implicit_tls: Some(pki.server.clone()),
        ..Default::default()
    })
    .await;
    let mut c = config(smtps.addr.port());
    c["smtp_tls"] = json!("tls");
    c["smtp_root_ca"] = json!(pki.ca_pem);
    let r = send(c).await;
    assert_eq!(r.error, None, "{r:?}");
    assert!(smtps.mails()[0].tls);
}

#[tokio::test]
async fn refusals_map_to_step_states() {
    let sink = smtp::start(smtp::Options {
        credentials: Some(("robot".into(), "right".into())),
        reject: Some("gone@example.com".into()),
        defer: Some("busy@example.com".into()),
        ..Default::default()
    })
    .await;
    let port = sink.addr.port();
    let with = |to: &str, pw: &str| {
        let mut c = config(port);
        c["to"] = json!([to]);
        c["cc"] = json!([]);
        c["bcc"] = json!([]);
        c["smtp_username"] = json!("robot");
        c["smtp_password"] = json!(pw);
        c
    };
    let r = send(with("gone@example.com", "right")).await;
    assert!(
        matches!(&r.error, Some(ActionError::Client(m)) if m.contains("550") || m.contains("mailbox")),
        "{r:?}"
    );
    let r = send(with("busy@example.com", "right")).await;
    assert!(matches!(r.error, Some(ActionError::Server(_))), "{r:?}");
    let r = send(with("ops@example.com", "wrong")).await;
    assert!(matches!(r.error, Some(ActionError::Client(_))), "{r:?}");
    assert!(
        !format!("{r:?}").contains("wrong\""),
        "the password is not echoed"
    );
    assert!(sink.mails().is_empty());

    // nothing listens: transient
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let mut c = config(port);
    c["timeout"] = json!("3s");
    let r = send(c).await;
    assert!(matches!(r.error, Some(ActionError::Server(_))), "{r:?}");

    // the default network policy refuses loopback, naming the rule
    let r = Registry::builtin()
        .get("email")
        .unwrap()
        .run(common::action_request(
            config(sink.addr.port()),
            Default::default(),
        ))
        .await;
    assert!(
        matches!(&r.error, Some(ActionError::Client(m)) if m.contains("127.0.0.1")),
        "{r:?}"
    );

    // a bad configuration names the field
    let mut c = config(sink.addr.port());
    c["to"] = json!(["not an address"]);
    let r = send(c).await;
    assert!(
        matches!(&r.error, Some(ActionError::Client(m)) if m.contains("to[0]")),
        "{r:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_sends_an_email_end_to_end() {
    let sink = smtp::start(smtp::Options::default()).await;
    let port = sink.addr.port();
    let m = common::start_with(move |c| {
        c.network_allow = vec!["127.0.0.1".into()];
        let dir = c.data_dir.join("templates");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("mail.yaml"),
            format!(
                r#"
name: mail
description: Tell ops a service is deployed
title_format: "mail about {{{{.input.service}}}}"
auto_runnable: true
allow_all_resolver_usernames: true
inputs:
  - name: service
steps:
  mail:
    action:
      type: email
      configuration:
        smtp_hostname: localhost
        smtp_port: {port}
        smtp_tls: none
        from_address: robot@example.com
        to: ["ops@example.com"]
        subject: "Deployed {{{{.input.service}}}}"
        body: "{{{{.input.service}}}}; rm -rf / $(reboot) `id` is live"
"#
            ),
        )
        .unwrap();
        c.templates_dir = dir;
    })
    .await;
    let (s, task) = m
        .post(
            "alice",
            "/task",
            &json!({"template_name": "mail", "input": {"service": "billing"}}),
        )
        .await;
    assert_eq!(s, 201, "{task}");
    let id = task["id"].as_str().unwrap().to_string();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let (_, t) = m.get("alice", &format!("/task/{id}")).await;
        if t["state"] == "DONE" {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "task not DONE: {t}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let mails = sink.mails();
    assert_eq!(mails.len(), 1);
    assert!(mails[0].data.contains("Subject: Deployed billing"));
    assert!(
        mails[0]
            .data
            .contains("billing; rm -rf / $(reboot) `id` is live"),
        "metacharacters arrive as data: {}",
        mails[0].data
    );
    m.stop().await;
}

#[tokio::test]
async fn html_bodies_arrive_as_text_html() {
    let sink = smtp::start(smtp::Options::default()).await;
    let mut c = config(sink.addr.port());
    c["body"] = json!("<p>billing is <b>live</b></p>");
    c["html"] = json!(true);
    let r = send(c.clone()).await;
    assert_eq!(r.error, None, "{r:?}");
    // the templated form of the flag (`"true"`) too, and plain text without it
    c["html"] = json!("true");
    assert_eq!(send(c.clone()).await.error, None);
    c.as_object_mut().unwrap().remove("html");
    assert_eq!(send(c).await.error, None);
    let mails = sink.mails();
    assert_eq!(mails.len(), 3);
    for m in &mails[..2] {
        let headers = m
            .data
            .split("\r\n\r\n")
            .next()
            .unwrap()
            .to_ascii_lowercase();
        assert!(headers.contains("content-type: text/html"), "{}", m.data);
        assert!(m.data.contains("<b>live</b>"), "{}", m.data);
    }
    let headers = mails[2]
        .data
        .split("\r\n\r\n")
        .next()
        .unwrap()
        .to_ascii_lowercase();
    assert!(
        headers.contains("content-type: text/plain"),
        "{}",
        mails[2].data
    );
}
