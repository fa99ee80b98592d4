//! # `email` — send an email over SMTP
//!
//! µTask's `email` action (same field names), with STARTTLS/TLS choices, cc/bcc, HTML bodies and
//! a custom CA. The message is sent with lettre over SMTP; one connection per step.
//!
//! | field | type | meaning |
//! |---|---|---|
//! | `smtp_hostname` | string | SMTP server (required) |
//! | `smtp_port` | number or string | default `465` with `smtp_tls: tls`, `25` with `none`, else `587` |
//! | `smtp_username` / `smtp_password` | string | credentials (AUTH PLAIN/LOGIN), both or neither |
//! | `smtp_tls` | `auto` (default), `starttls`, `tls`, `none` | `auto`: implicit TLS on port 465, otherwise STARTTLS when the server offers it; `starttls`: STARTTLS required; `tls`: implicit TLS (smtps); `none`: plain text (local relays only) |
//! | `smtp_skip_tls_verify` | bool | accept any certificate (µTask's flag; off by default) |
//! | `smtp_root_ca` | string (PEM) | a CA to trust besides the public roots |
//! | `from_address` | string | sender address (required) |
//! | `from_name` | string | sender display name |
//! | `to` | list of strings (or one string) | recipients (at least one) |
//! | `cc` / `bcc` | list of strings | more recipients |
//! | `reply_to` | string | Reply-To address |
//! | `subject` | string | required |
//! | `body` | string | required |
//! | `html` | bool | the body is HTML (`text/html`), default plain text |
//! | `timeout` | duration | SMTP exchange timeout, default `30s`, at most `5m` |
//!
//! The server is resolved through the same network policy as the `http` action (loopback,
//! link-local and metadata addresses are refused unless the operator allows them) and the
//! connection goes to the address that was checked; TLS still verifies the host name.
//!
//! **Output** (µTask's echo): `from_address`, `from_name`, `to`, `cc`, `subject`, `body`
//! (`bcc` is left out of the output: it is not shown to recipients either).
//! **Metadata**: `smtp_hostname`, `smtp_port`, `tls`, `smtp_code` and `smtp_message` (the
//! server's answer to the message).
//!
//! **Errors**: a bad configuration or address, a refused host, a permanent SMTP refusal (5xx:
//! unknown mailbox, authentication failed) or a certificate that does not verify →
//! CLIENT_ERROR; a transient refusal (4xx), a timeout, a connection failure or a name that does
//! not resolve → SERVER_ERROR (retried).
//!
//! ```yaml
//! action:
//!   type: email
//!   configuration:
//!     smtp_hostname: smtp.example.com
//!     smtp_username: robot@example.com
//!     smtp_password: "{{ config.smtp_password }}"
//!     from_address: robot@example.com
//!     from_name: Deploy robot
//!     to: ["{{ task.requester_username }}@example.com"]
//!     subject: "Deployed {{ input.service }}"
//!     body: "{{ input.service }} is live."
//! ```

use std::sync::Arc;
use std::time::Duration;

use lettre::message::header::ContentType;
use lettre::message::{Mailbox, Message};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use serde_json::{Value, json};

use super::http::{NetworkPolicy, Refusal};
use super::{Action, ActionError, ActionRequest, ActionResult, BoxFuture, config_bool, config_str};

/// SMTP exchange timeout when the step sets none.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest accepted timeout.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(300);
/// Most recipients of one message (to + cc + bcc).
pub const MAX_RECIPIENTS: usize = 100;

/// How the connection is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsMode {
    Auto,
    StartTls,
    Tls,
    None,
}

impl TlsMode {
    fn as_str(self) -> &'static str {
        match self {
            TlsMode::Auto => "auto",
            TlsMode::StartTls => "starttls",
            TlsMode::Tls => "tls",
            TlsMode::None => "none",
        }
    }
}

/// One email step, validated.
#[derive(Debug, Clone)]
pub struct Params {
    pub hostname: String,
    pub port: u16,
    pub credentials: Option<(String, String)>,
    pub tls: TlsMode,
    pub skip_verify: bool,
    pub root_ca: Option<String>,
    pub from: Mailbox,
    pub to: Vec<Mailbox>,
    pub cc: Vec<Mailbox>,
    pub bcc: Vec<Mailbox>,
    pub reply_to: Option<Mailbox>,
    pub subject: String,
    pub body: String,
    pub html: bool,
    pub timeout: Duration,
}

fn mailbox(field: &str, text: &str) -> Result<Mailbox, String> {
    text.trim()
        .parse::<Mailbox>()
        .map_err(|e| format!("email: `{field}`: {text:?} is not an email address ({e})"))
}

fn mailboxes(config: &Value, field: &str) -> Result<Vec<Mailbox>, String> {
    let items: Vec<String> = match config.get(field) {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::String(s)) if s.trim().is_empty() => Vec::new(),
        // one string, possibly comma-separated (a templated list often renders so)
        Some(Value::String(s)) => s.split(',').map(|x| x.trim().to_string()).collect(),
        Some(Value::Array(a)) => a
            .iter()
            .enumerate()
            .map(|(i, v)| match v {
                Value::String(s) => Ok(s.clone()),
                _ => Err(format!("email: `{field}[{i}]` must be a string")),
            })
            .collect::<Result<_, _>>()?,
        Some(_) => return Err(format!("email: `{field}` must be a list of addresses")),
    };
    items
        .iter()
        .enumerate()
        .filter(|(_, s)| !s.trim().is_empty())
        .map(|(i, s)| mailbox(&format!("{field}[{i}]"), s))
        .collect()
}

fn required(config: &Value, field: &str) -> Result<String, String> {
    match config_str(config, field) {
        Some(s) if !s.trim().is_empty() => Ok(s.into_owned()),
        _ => Err(format!("email: `{field}` is required")),
    }
}

/// Reads and checks a step's configuration.
pub fn params(config: &Value) -> Result<Params, String> {
    if !config.is_object() {
        return Err("email: the configuration must be a map".into());
    }
    let hostname = required(config, "smtp_hostname")?.trim().to_string();
    let tls = match config_str(config, "smtp_tls").as_deref().map(str::trim) {
        None | Some("") | Some("auto") => TlsMode::Auto,
        Some("starttls") => TlsMode::StartTls,
        Some("tls") | Some("smtps") => TlsMode::Tls,
        Some("none") => TlsMode::None,
        Some(other) => {
            return Err(format!(
                "email: `smtp_tls` must be auto, starttls, tls or none, not {other:?}"
            ));
        }
    };
    let port = match config_str(config, "smtp_port").as_deref().map(str::trim) {
        None | Some("") => match tls {
            TlsMode::Tls => 465,
            TlsMode::None => 25,
            _ => 587,
        },
        Some(p) => p
            .parse::<u16>()
            .ok()
            .filter(|p| *p > 0)
            .ok_or_else(|| format!("email: `smtp_port` must be a port number, not {p:?}"))?,
    };
    let tls = match (tls, port) {
        (TlsMode::Auto, 465) => TlsMode::Tls,
        (t, _) => t,
    };
    let user = config_str(config, "smtp_username").filter(|s| !s.is_empty());
    let password = config_str(config, "smtp_password").filter(|s| !s.is_empty());
    let credentials = match (user, password) {
        (Some(u), Some(p)) => Some((u.into_owned(), p.into_owned())),
        (None, None) => None,
        _ => {
            return Err("email: give both `smtp_username` and `smtp_password`, or neither".into());
        }
    };
    let from_address = required(config, "from_address")?;
    let from = match config_str(config, "from_name").filter(|s| !s.trim().is_empty()) {
        // a line break would smuggle headers (and lettre refuses to format it)
        Some(name) if name.chars().any(char::is_control) => {
            return Err("email: `from_name` must be one line without control characters".into());
        }
        Some(name) => Mailbox::new(
            Some(name.trim().to_string()),
            from_address
                .trim()
                .parse()
                .map_err(|e| format!("email: `from_address`: {from_address:?} ({e})"))?,
        ),
        None => mailbox("from_address", &from_address)?,
    };
    let to = mailboxes(config, "to")?;
    if to.is_empty() {
        return Err("email: `to` needs at least one address".into());
    }
    let cc = mailboxes(config, "cc")?;
    let bcc = mailboxes(config, "bcc")?;
    if to.len() + cc.len() + bcc.len() > MAX_RECIPIENTS {
        return Err(format!(
            "email: at most {MAX_RECIPIENTS} recipients (to, cc and bcc together)"
        ));
    }
    let reply_to = match config_str(config, "reply_to").filter(|s| !s.trim().is_empty()) {
        Some(r) => Some(mailbox("reply_to", &r)?),
        None => None,
    };
    let subject = required(config, "subject")?;
    if subject.chars().any(char::is_control) {
        return Err("email: `subject` must be one line without control characters".into());
    }
    let body = match config_str(config, "body") {
        Some(b) => b.into_owned(),
        None => return Err("email: `body` is required".into()),
    };
    let timeout = match config_str(config, "timeout").filter(|s| !s.trim().is_empty()) {
        None => DEFAULT_TIMEOUT,
        Some(t) => crate::template::model::parse_go_duration(t.trim())
            .ok()
            .filter(|d| !d.is_zero() && *d <= MAX_TIMEOUT)
            .ok_or_else(|| {
                format!("email: `timeout` must be a duration above 0 and at most 5m, got {t:?}")
            })?,
    };
    Ok(Params {
        hostname,
        port,
        credentials,
        tls,
        skip_verify: config_bool(config.get("smtp_skip_tls_verify")),
        root_ca: config_str(config, "smtp_root_ca")
            .filter(|s| !s.trim().is_empty())
            .map(|s| s.into_owned()),
        from,
        to,
        cc,
        bcc,
        reply_to,
        subject,
        body,
        html: config_bool(config.get("html")),
        timeout,
    })
}

/// Builds the message of `p`.
pub fn message(p: &Params) -> Result<Message, String> {
    let mut b = Message::builder().from(p.from.clone()).subject(&p.subject);
    for m in &p.to {
        b = b.to(m.clone());
    }
    for m in &p.cc {
        b = b.cc(m.clone());
    }
    for m in &p.bcc {
        b = b.bcc(m.clone());
    }
    if let Some(r) = &p.reply_to {
        b = b.reply_to(r.clone());
    }
    let ct = if p.html {
        ContentType::TEXT_HTML
    } else {
        ContentType::TEXT_PLAIN
    };
    b.header(ct)
        .body(p.body.clone())
        .map_err(|e| format!("email: cannot build the message: {e}"))
}

fn tls_parameters(p: &Params) -> Result<TlsParameters, String> {
    let mut b = TlsParameters::builder(p.hostname.clone())
        .dangerous_accept_invalid_certs(p.skip_verify)
        .dangerous_accept_invalid_hostnames(p.skip_verify);
    if let Some(pem) = &p.root_ca {
        let cert = Certificate::from_pem(pem.as_bytes())
            .map_err(|e| format!("email: `smtp_root_ca` is not a PEM certificate: {e}"))?;
        b = b.add_root_certificate(cert);
    }
    b.build_rustls()
        .map_err(|e| format!("email: TLS settings refused: {e}"))
}

fn output(p: &Params) -> Value {
    let list = |v: &[Mailbox]| v.iter().map(|m| m.email.to_string()).collect::<Vec<_>>();
    json!({
        "from_address": p.from.email.to_string(),
        "from_name": p.from.name.clone().unwrap_or_default(),
        "to": list(&p.to),
        "cc": list(&p.cc),
        "subject": p.subject,
        "body": p.body,
    })
}

fn classify(e: &lettre::transport::smtp::Error) -> ActionError {
    let text = e.to_string();
    let msg = format!("email: {text}");
    // a certificate that does not verify will not verify on the next try either
    if e.is_permanent() || e.is_tls() || text.contains("certificate") {
        ActionError::Client(msg)
    } else {
        ActionError::Server(msg)
    }
}

/// Sends one email step under `policy`.
pub async fn execute(config: &Value, policy: &NetworkPolicy) -> ActionResult {
    crate::action::http::install_crypto_provider();
    let p = match params(config) {
        Ok(p) => p,
        Err(m) => return ActionResult::err(ActionError::Client(m)),
    };
    let metadata = json!({
        "smtp_hostname": p.hostname,
        "smtp_port": p.port,
        "tls": p.tls.as_str(),
    });
    let fail = |e: ActionError| ActionResult {
        output: Some(output(&p)),
        metadata: Some(metadata.clone()),
        ..ActionResult::err(e)
    };
    let msg = match message(&p) {
        Ok(m) => m,
        Err(m) => return fail(ActionError::Client(m)),
    };
    let addr = match policy.resolve(&p.hostname, p.port).await {
        Ok(a) => match a.into_iter().next() {
            Some(a) => a,
            None => {
                return fail(ActionError::Server(format!(
                    "email: `{}` has no address",
                    p.hostname
                )));
            }
        },
        Err(Refusal::Denied(d)) => return fail(ActionError::Client(format!("email: {d}"))),
        Err(Refusal::Lookup(m)) => return fail(ActionError::Server(format!("email: {m}"))),
    };
    let tls = match p.tls {
        TlsMode::None => Tls::None,
        mode => match tls_parameters(&p) {
            Ok(params) => match mode {
                TlsMode::Auto => Tls::Opportunistic(params),
                TlsMode::StartTls => Tls::Required(params),
                _ => Tls::Wrapper(params),
            },
            Err(m) => return fail(ActionError::Client(m)),
        },
    };
    // connect to the address the policy checked (no second lookup); TLS checks the name
    let mut builder =
        AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(addr.ip().to_string())
            .port(p.port)
            .tls(tls)
            .timeout(Some(p.timeout));
    if let Some((u, pw)) = &p.credentials {
        builder = builder.credentials(Credentials::new(u.clone(), pw.clone()));
    }
    let transport = builder.build();
    match tokio::time::timeout(p.timeout + Duration::from_secs(5), transport.send(msg)).await {
        Ok(Ok(response)) => {
            let mut metadata = metadata;
            if let Value::Object(m) = &mut metadata {
                m.insert("smtp_code".into(), json!(response.code().to_string()));
                m.insert(
                    "smtp_message".into(),
                    json!(response.message().collect::<Vec<_>>().join("\n")),
                );
            }
            ActionResult::ok(Some(output(&p)), Some(metadata))
        }
        Ok(Err(e)) => fail(classify(&e)),
        Err(_) => fail(ActionError::Server(format!(
            "email: the SMTP exchange did not finish within {:?}",
            p.timeout
        ))),
    }
}

/// The email action, with the network policy it enforces.
#[derive(Debug, Clone, Default)]
pub struct Email {
    policy: Arc<NetworkPolicy>,
}

impl Email {
    /// An email action enforcing `policy`.
    pub fn new(policy: NetworkPolicy) -> Email {
        Email {
            policy: Arc::new(policy),
        }
    }
}

impl Action for Email {
    fn name(&self) -> &'static str {
        "email"
    }

    fn run(&self, req: ActionRequest) -> BoxFuture<'_, ActionResult> {
        Box::pin(async move { execute(&req.config, &self.policy).await })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> Value {
        json!({"smtp_hostname": "mail.example.com", "from_address": "robot@example.com",
               "to": ["a@example.com"], "subject": "s", "body": "b"})
    }

    #[test]
    fn defaults_and_ports() {
        let p = params(&base()).unwrap();
        assert_eq!((p.port, p.tls), (587, TlsMode::Auto));
        let mut c = base();
        c["smtp_port"] = json!("465");
        assert_eq!(
            params(&c).unwrap().tls,
            TlsMode::Tls,
            "465 means implicit TLS"
        );
        c["smtp_tls"] = json!("none");
        c["smtp_port"] = json!(null);
        assert_eq!(params(&c).unwrap().port, 25);
        c["to"] = json!("x@example.com, y@example.com");
        assert_eq!(params(&c).unwrap().to.len(), 2);
    }

    #[test]
    fn bad_configurations_name_the_field() {
        for (field, value, needle) in [
            ("smtp_hostname", json!(null), "smtp_hostname"),
            ("to", json!([]), "`to`"),
            ("to", json!(["not an address"]), "to[0]"),
            ("cc", json!([42]), "cc[0]"),
            ("smtp_port", json!("99999"), "smtp_port"),
            ("smtp_tls", json!("maybe"), "smtp_tls"),
            ("subject", json!("two\nlines"), "subject"),
            ("timeout", json!("10h"), "timeout"),
            ("from_address", json!("nobody"), "from_address"),
        ] {
            let mut c = base();
            c[field] = value;
            let e = params(&c).unwrap_err();
            assert!(e.contains(needle), "{field}: {e}");
        }
        let mut c = base();
        c["smtp_username"] = json!("u");
        assert!(params(&c).unwrap_err().contains("smtp_password"));
    }

    #[test]
    fn header_injection_attempts_are_refused() {
        for (field, value) in [
            ("from_name", "Robot\r\nBcc: victim@example.com"),
            ("subject", "hi\r\nBcc: victim@example.com"),
            ("to", "a@example.com\r\nBcc: victim@example.com"),
        ] {
            let mut c = base();
            c[field] = json!(value);
            let e = params(&c).unwrap_err();
            assert!(e.contains(field), "{field}: {e}");
        }
        // the display name is encoded, never raw header text
        let mut c = base();
        c["from_name"] = json!("Robot: Bcc <victim@example.com>");
        let text = String::from_utf8(message(&params(&c).unwrap()).unwrap().formatted()).unwrap();
        assert!(!text.contains("\r\nBcc:"), "{text}");
    }
}
