//! Notifications of task changes to Slack and to signed generic webhooks, through the outbox of
//! [`store::notification`].
//!
//! Every instance running the engine runs a notifier: once a second it expands new task events
//! into one notification per configured backend (filtered by `MUTASK_NOTIFY_STRATEGY`) and sends
//! the due ones. A failed send is retried with exponential backoff (5 s doubling, at most 10 min
//! apart) and given up after `MUTASK_NOTIFY_MAX_ATTEMPTS` attempts (12; `POST /notification/{id}/retry`
//! re-queues one); notifications survive restarts (they are rows) and
//! never block the engine (separate task, no transaction open during a send).
//!
//! Generic webhook: `POST` of the JSON payload with `X-Mutask-Id` (unique per notification: the
//! receiver's deduplication key — delivery is at least once), `X-Mutask-Timestamp` and, when
//! `MUTASK_NOTIFY_WEBHOOK_SECRET` is set, `X-Mutask-Signature: sha256=<hex HMAC-SHA256(secret,
//! body)>`. Slack: `{"text": …}` to an incoming-webhook URL. The notifier also looks for
//! unfinished tasks running longer than their template's `expected_duration` (counted from when
//! each first ran, earliest deadline first) and notifies each once (`task_overdue`, whatever the
//! strategy; to a status hook too, so it works without any backend). Payloads carry task ids, title,
//! states, template, requester and links — never inputs, outputs or resolver inputs.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};

use crate::schedule::webhook::hmac_sha256_hex;
use crate::store::{self, Store, StoreError, notification::Event};

/// Backend name of a task's own status hook.
pub const STATUS_HOOK: &str = "status_hook";

/// Task events expanded into notifications per pass.
const EXPAND_BATCH: usize = 100;
/// How long the notifier lets task changes gather after a wake-up before it expands them.
const EVENT_DEBOUNCE: Duration = Duration::from_millis(100);

/// Which task changes are notified.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Strategy {
    /// Every creation and state change.
    #[default]
    Always,
    /// Tasks becoming BLOCKED.
    FailureOnly,
    /// Tasks becoming BLOCKED or DONE.
    FailureOrDone,
}

impl Strategy {
    pub fn parse(s: &str) -> Option<Strategy> {
        match s.trim() {
            "always" => Some(Strategy::Always),
            "failure_only" => Some(Strategy::FailureOnly),
            "failure_or_done" => Some(Strategy::FailureOrDone),
            _ => None,
        }
    }

    /// True when a change to `state` is notified (an overdue task always is).
    pub fn wants(self, state: &str) -> bool {
        if state == "OVERDUE" {
            return true;
        }
        match self {
            Strategy::Always => true,
            Strategy::FailureOnly => state == "BLOCKED",
            Strategy::FailureOrDone => state == "BLOCKED" || state == "DONE",
        }
    }
}

/// A notification backend.
#[derive(Clone)]
pub enum Backend {
    Webhook {
        url: String,
        secret: Option<String>,
    },
    Slack {
        url: String,
    },
    /// An SMTP server: `smtp` holds the `email` action's server fields (`smtp_hostname`,
    /// `smtp_port`, `smtp_tls`, credentials), `from` and `to` the addresses.
    Email {
        smtp: serde_json::Map<String, Value>,
        from: String,
        to: Vec<String>,
    },
}

impl std::fmt::Debug for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // URLs may hold tokens (Slack's do): never printed
        f.write_str(self.name())
    }
}

impl Backend {
    pub fn name(&self) -> &'static str {
        match self {
            Backend::Webhook { .. } => "webhook",
            Backend::Slack { .. } => "slack",
            Backend::Email { .. } => "email",
        }
    }

    /// The email backend of `smtp[s]://[user:password@]host[:port]?from=…&to=…[,…]`
    /// (`tls=starttls|none`, `skip_tls_verify=true`, `ca_file=/path.pem` in the query).
    pub fn email_from_url(text: &str) -> Result<Backend, String> {
        let u = url::Url::parse(text).map_err(|e| format!("not a URL ({e})"))?;
        let tls = match u.scheme() {
            "smtp" => "auto",
            "smtps" => "tls",
            other => {
                return Err(format!(
                    "must be an smtp:// or smtps:// URL, not {other}://"
                ));
            }
        };
        let host = u
            .host_str()
            .filter(|h| !h.is_empty())
            .ok_or("the URL names no SMTP host")?;
        let mut smtp = serde_json::Map::new();
        smtp.insert("smtp_hostname".into(), json!(host.trim_matches(['[', ']'])));
        smtp.insert("smtp_tls".into(), json!(tls));
        if let Some(port) = u.port() {
            smtp.insert("smtp_port".into(), json!(port));
        }
        let decode = |s: &str| {
            url::form_urlencoded::parse(format!("x={s}").as_bytes())
                .next()
                .map(|(_, v)| v.into_owned())
                .unwrap_or_default()
        };
        if !u.username().is_empty() {
            smtp.insert("smtp_username".into(), json!(decode(u.username())));
            smtp.insert(
                "smtp_password".into(),
                json!(decode(u.password().unwrap_or(""))),
            );
        }
        let (mut from, mut to) = (String::new(), Vec::new());
        for (k, v) in u.query_pairs() {
            match k.as_ref() {
                "from" => from = v.into_owned(),
                "to" => to.extend(
                    v.split(',')
                        .map(|x| x.trim().to_string())
                        .filter(|x| !x.is_empty()),
                ),
                "tls" => {
                    smtp.insert("smtp_tls".into(), json!(v.as_ref()));
                }
                "skip_tls_verify" => {
                    smtp.insert("smtp_skip_tls_verify".into(), json!(v == "true"));
                }
                "ca_file" => {
                    let pem = std::fs::read_to_string(v.as_ref())
                        .map_err(|e| format!("ca_file {v}: {e}"))?;
                    smtp.insert("smtp_root_ca".into(), json!(pem));
                }
                other => return Err(format!("unknown query parameter `{other}`")),
            }
        }
        if from.is_empty() || to.is_empty() {
            return Err("give `from=` and `to=` in the query".into());
        }
        // check everything now, with a sample message: a bad address fails at startup
        let mut sample = Value::Object(smtp.clone());
        sample["from_address"] = json!(from);
        sample["to"] = json!(to);
        sample["subject"] = json!("check");
        sample["body"] = json!("");
        crate::action::email::params(&sample).map_err(|e| e.replacen("email: ", "", 1))?;
        Ok(Backend::Email { smtp, from, to })
    }
}

/// Sends one notification by email: the subject line, the task's link and the event as text.
/// The SMTP host was configured by the operator, so the network policy allows it.
async fn send_email(
    smtp: &serde_json::Map<String, Value>,
    from: &str,
    to: &[String],
    id: uuid::Uuid,
    payload: &Value,
) -> Result<(), String> {
    let host = smtp
        .get("smtp_hostname")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let policy = crate::action::http::NetworkPolicy::with_allow_list([host])?;
    let task = &payload["task"];
    let body = format!(
        "{subject}\n\nTask: {title}\nTemplate: {template}\nState: {state}\nRequested by: {requester}\nLink: {link}\n\nNotification {id}\n",
        subject = payload["subject"].as_str().unwrap_or_default(),
        title = task["title"].as_str().unwrap_or_default(),
        template = task["template"].as_str().unwrap_or_default(),
        state = task["state"].as_str().unwrap_or_default(),
        requester = task["requester"].as_str().unwrap_or_default(),
        link = payload["links"]["task"].as_str().unwrap_or_default(),
    );
    let mut body = body;
    if let Some(Value::Object(fields)) = payload.get("fields") {
        for (k, v) in fields {
            body.push_str(&format!("{k}: {}\n", v.as_str().unwrap_or_default()));
        }
    }
    let mut config = Value::Object(smtp.clone());
    config["from_address"] = json!(from);
    config["from_name"] = json!("mutask");
    config["to"] = json!(to);
    config["subject"] = json!(format!(
        "[mutask] {}",
        payload["subject"].as_str().unwrap_or_default()
    ));
    config["body"] = json!(body);
    let r = crate::action::email::execute(&config, &policy).await;
    match r.error {
        None => Ok(()),
        Some(e) => Err(e.message().to_string()),
    }
}

/// Default attempts at one delivery (`MUTASK_NOTIFY_MAX_ATTEMPTS`).
pub const MAX_ATTEMPTS: i32 = 12;

/// Backoff before attempt `attempts + 1` with the default [`MAX_ATTEMPTS`]; `None` once given up.
pub fn retry_in(attempts: i32) -> Option<Duration> {
    backoff(attempts, MAX_ATTEMPTS)
}

/// Backoff before attempt `attempts + 1` (5 s doubling, at most 10 min); `None` once
/// `max_attempts` were made.
pub fn backoff(attempts: i32, max_attempts: i32) -> Option<Duration> {
    if attempts >= max_attempts {
        return None;
    }
    let secs = 5u64.saturating_mul(1 << attempts.clamp(0, 16) as u32 >> 1);
    Some(Duration::from_secs(secs.clamp(5, 600)))
}

fn level(state: &str) -> &'static str {
    match state {
        "BLOCKED" => "error",
        "CANCELLED" | "WONTFIX" | "OVERDUE" => "warning",
        _ => "info",
    }
}

/// Sends notifications.
#[derive(Clone)]
pub struct Notifier {
    pub store: Store,
    pub backends: Arc<Vec<Backend>>,
    pub strategy: Strategy,
    /// Base of the links in payloads.
    pub base_url: String,
    pub http: reqwest::Client,
    /// The network policy status hooks must pass (the actions' one).
    pub policy: Arc<crate::action::http::NetworkPolicy>,
    /// Attempts at one delivery before it is given up.
    pub max_attempts: i32,
    /// Templates' `notify` settings by (name, version).
    settings: Arc<std::sync::Mutex<std::collections::HashMap<(String, i32), TemplateNotify>>>,
}

/// What a template's `notify:` decides for its tasks.
#[derive(Debug, Clone, Default)]
struct TemplateNotify {
    /// `None`: the instance's strategy; `Some(None)`: nothing (`events: none`).
    strategy: Option<Option<Strategy>>,
    backends: Vec<String>,
}

impl Notifier {
    pub fn new(
        store: Store,
        backends: Vec<Backend>,
        strategy: Strategy,
        base_url: String,
    ) -> Result<Notifier, reqwest::Error> {
        crate::install_crypto_provider();
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        Ok(Notifier {
            store,
            backends: Arc::new(backends),
            strategy,
            base_url,
            http,
            policy: Default::default(),
            max_attempts: MAX_ATTEMPTS,
            settings: Default::default(),
        })
    }

    /// The notifications this instance can send: its backends' and status hooks.
    fn sendable(&self) -> Vec<String> {
        self.backends
            .iter()
            .map(|b| b.name().to_string())
            .chain([STATUS_HOOK.to_string()])
            .collect()
    }

    /// The `notify:` settings of a template version (cached; a version that is gone means
    /// none).
    async fn template_notify(
        &self,
        name: &str,
        version: i32,
    ) -> Result<TemplateNotify, StoreError> {
        let key = (name.to_string(), version);
        if let Ok(cache) = self.settings.lock()
            && let Some(t) = cache.get(&key)
        {
            return Ok(t.clone());
        }
        let parsed = match store::template::get_version(&self.store, name, version).await? {
            Some((definition, _)) => definition
                .get("notify")
                .cloned()
                .and_then(|v| {
                    serde_json::from_value::<crate::template::model::NotifySettings>(v).ok()
                })
                .map(|n| TemplateNotify {
                    strategy: n.events.map(|e| Strategy::parse(&e)),
                    backends: n.backends,
                })
                .unwrap_or_default(),
            None => TemplateNotify::default(),
        };
        if let Ok(mut cache) = self.settings.lock()
            && cache.len() < 10_000
        {
            cache.insert(key, parsed.clone());
        }
        Ok(parsed)
    }

    /// The notifications of one task event, as (backend, payload). A read that fails is an
    /// error (the pass is retried), never "nothing to send": that would lose the event.
    async fn payloads(&self, e: Event) -> Result<Vec<(String, Value)>, StoreError> {
        if self.backends.is_empty() && !e.hooked {
            return Ok(Vec::new());
        }
        let Some(task) = store::task::get(&self.store, crate::domain::TaskId(e.task_id)).await?
        else {
            return Ok(Vec::new()); // deleted since
        };
        let settings = self
            .template_notify(&task.template_name, task.template_version)
            .await?;
        let wanted = !self.backends.is_empty()
            && match settings.strategy {
                None => self.strategy.wants(&e.new_state),
                Some(None) => false,
                Some(Some(s)) => s.wants(&e.new_state),
            };
        // the task's own hook gets every change, whatever the strategy
        let hook = if e.hooked {
            store::task::status_hook(&self.store, task.id).await?
        } else {
            None
        };
        if !wanted && hook.is_none() {
            return Ok(Vec::new());
        }
        let overdue = e.new_state == "OVERDUE";
        let action = if overdue {
            "task_overdue"
        } else if e.old_state.is_none() {
            "task_created"
        } else {
            "task_state_update"
        };
        let (state, previous, subject) = if overdue {
            let state = e.old_state.clone().unwrap_or_default();
            (
                state.clone(),
                Some(state),
                format!("{} runs longer than expected", task.title),
            )
        } else {
            (
                e.new_state.clone(),
                e.old_state.clone(),
                format!("{} is {}", task.title, e.new_state),
            )
        };
        let payload = json!({
            "action": action,
            "level": level(&e.new_state),
            "subject": subject,
            "task": {
                "id": task.id, "title": task.title, "state": state,
                "previous_state": previous, "template": e.template,
                "requester": task.requester_username, "resolver": task.resolver_username,
                "resolution": task.resolution_id, "steps_done": task.steps_done,
                "steps_total": task.steps_total, "tags": task.tags,
            },
            "links": {
                "task": format!("{}/task/{}", self.base_url, task.id),
                "template": format!("{}/template/{}", self.base_url, e.template),
            },
            "at": e.at,
        });
        let mut out: Vec<(String, Value)> = if wanted {
            self.backends
                .iter()
                .filter(|b| {
                    settings.backends.is_empty() || settings.backends.iter().any(|n| n == b.name())
                })
                .map(|b| (b.name().to_string(), payload.clone()))
                .collect()
        } else {
            Vec::new()
        };
        if let Some(h) = hook {
            let mut p = payload;
            p["status_hook"] = h;
            out.push((STATUS_HOOK.to_string(), p));
        }
        Ok(out)
    }

    /// Calls a task's status hook: its URL and secret travel (sealed) in the payload and are
    /// taken out of the body; the host must pass the actions' network policy.
    async fn send_hook(&self, id: uuid::Uuid, payload: &Value) -> Result<(), String> {
        let mut body = payload.clone();
        let hook = body
            .as_object_mut()
            .and_then(|m| m.remove("status_hook"))
            .ok_or("the status hook is missing from the notification")?;
        let url = hook["url"].as_str().unwrap_or_default().to_string();
        let parsed = url::Url::parse(&url).map_err(|e| format!("status hook URL: {e}"))?;
        let host = parsed.host_str().unwrap_or_default().to_string();
        let port = parsed.port_or_known_default().unwrap_or(80);
        self.policy
            .resolve(&host, port)
            .await
            .map_err(|r| match r {
                crate::action::http::Refusal::Denied(d) => format!("status hook: {d}"),
                crate::action::http::Refusal::Lookup(m) => format!("status hook: {m}"),
            })?;
        let backend = Backend::Webhook {
            url,
            secret: hook["secret"].as_str().map(str::to_string),
        };
        self.send(&backend, id, &body).await
    }

    async fn send(&self, backend: &Backend, id: uuid::Uuid, payload: &Value) -> Result<(), String> {
        if let Backend::Email { smtp, from, to } = backend {
            return send_email(smtp, from, to, id, payload).await;
        }
        let (url, body, headers) = match backend {
            Backend::Webhook { url, secret } => {
                let mut p = payload.clone();
                p["id"] = json!(id);
                let body = serde_json::to_vec(&p).map_err(|e| e.to_string())?;
                let mut headers = vec![
                    ("x-mutask-id", id.to_string()),
                    (
                        "x-mutask-timestamp",
                        chrono::Utc::now().timestamp().to_string(),
                    ),
                ];
                if let Some(s) = secret {
                    headers.push((
                        "x-mutask-signature",
                        format!("sha256={}", hmac_sha256_hex(s.as_bytes(), &body)),
                    ));
                }
                (url, body, headers)
            }
            Backend::Slack { url } => {
                let text = format!(
                    "*{}* — <{}|task {}> ({})",
                    payload["subject"].as_str().unwrap_or_default(),
                    payload["links"]["task"].as_str().unwrap_or_default(),
                    payload["task"]["id"].as_str().unwrap_or_default(),
                    payload["task"]["template"].as_str().unwrap_or_default(),
                );
                let body =
                    serde_json::to_vec(&json!({ "text": text })).map_err(|e| e.to_string())?;
                (url, body, vec![])
            }
            Backend::Email { .. } => unreachable!("sent above"),
        };
        let mut req = self
            .http
            .post(url.as_str())
            .header("content-type", "application/json")
            .body(body);
        for (k, v) in headers {
            req = req.header(k, v);
        }
        let r = req.send().await.map_err(|e| format!("sending: {e}"))?;
        if r.status().is_success() {
            Ok(())
        } else {
            Err(format!("the receiver answered {}", r.status()))
        }
    }

    /// Records an `OVERDUE` event for each unfinished task older than its template's
    /// `expected_duration` (once per task).
    pub async fn find_overdue(&self) -> Result<usize, StoreError> {
        Ok(self.scan_overdue().await?.0)
    }

    /// [`find_overdue`](Self::find_overdue), also answering the earliest deadline still to come.
    async fn scan_overdue(
        &self,
    ) -> Result<(usize, Option<chrono::DateTime<chrono::Utc>>), StoreError> {
        let now = chrono::Utc::now();
        let mut next: Option<chrono::DateTime<chrono::Utc>> = None;
        let mut n = 0;
        let candidates = store::notification::overdue_candidates(&self.store, 200).await?;
        if candidates.len() == 200 {
            next = Some(now); // a full page: more may be due, scan again soon
        }
        // earliest deadline first: the first one still to come ends the pass
        for (task, template, state, deadline) in candidates {
            if deadline >= now {
                next = Some(next.map_or(deadline, |x| x.min(deadline)));
                break;
            }
            if store::notification::mark_overdue(&self.store, task, &template, &state).await? {
                tracing::warn!(%task, %template, "task runs longer than its expected_duration");
                n += 1;
            }
        }
        Ok((n, next))
    }

    /// Expands new events and sends due notifications once.
    pub async fn tick(&self) -> Result<(usize, usize), StoreError> {
        let expanded = store::notification::expand(
            &self.store,
            EXPAND_BATCH as i64,
            self.backends.is_empty(),
            |e| self.payloads(e),
        )
        .await?;
        let due = store::notification::claim_due(
            &self.store,
            &self.sendable(),
            20,
            Duration::from_secs(120),
        )
        .await?;
        let mut sent = 0;
        for n in due {
            if n.backend == STATUS_HOOK {
                match self.send_hook(n.id, &n.payload).await {
                    Ok(()) => {
                        store::notification::delivered(&self.store, n.id).await?;
                        sent += 1;
                    }
                    Err(e) => {
                        let retry = backoff(n.attempts, self.max_attempts);
                        tracing::warn!(notification = %n.id, attempts = n.attempts, error = %e, given_up = retry.is_none(), "status hook not called");
                        store::notification::failed(&self.store, n.id, &e, retry).await?;
                    }
                }
                continue;
            }
            let Some(backend) = self.backends.iter().find(|b| b.name() == n.backend) else {
                store::notification::failed(
                    &self.store,
                    n.id,
                    "backend no longer configured",
                    None,
                )
                .await?;
                continue;
            };
            match self.send(backend, n.id, &n.payload).await {
                Ok(()) => {
                    store::notification::delivered(&self.store, n.id).await?;
                    sent += 1;
                }
                Err(e) => {
                    let retry = backoff(n.attempts, self.max_attempts);
                    tracing::warn!(notification = %n.id, backend = backend.name(), attempts = n.attempts, error = %e, given_up = retry.is_none(), "notification not delivered");
                    store::notification::failed(&self.store, n.id, &e, retry).await?;
                }
            }
        }
        Ok((expanded, sent))
    }

    /// Builds and sends notifications until `shutdown`: after each pass it sleeps until the
    /// earliest pending delivery is due (at most `max_sleep`) or a task event is signalled
    /// (`wake`: the `mutask_event` NOTIFY of the `task_event` trigger), so events go out within
    /// [`EVENT_DEBOUNCE`] (which gathers a burst into one pass) and an idle instance asks the
    /// database a few times per `max_sleep`. Overdue tasks are looked for every `max_sleep`; old
    /// events are forgotten hourly.
    pub async fn run(
        self,
        wake: std::sync::Arc<tokio::sync::Notify>,
        max_sleep: Duration,
        shutdown: tokio_util::sync::CancellationToken,
    ) {
        let mut last_gc = std::time::Instant::now();
        let mut last_overdue: Option<std::time::Instant> = None;
        // the earliest expected_duration deadline seen by the last scan
        let mut next_overdue: Option<chrono::DateTime<chrono::Utc>> = None;
        let mut woken = false;
        // a task event came while a scan was too recent: scan once 5 s have passed
        let mut scan_pending = false;
        loop {
            // scan for overdue tasks every `max_sleep`, when a known deadline passes, and after
            // task events (a new task may have a short deadline) at most every 5 s
            scan_pending |= woken;
            let scan = last_overdue.is_none_or(|t| {
                t.elapsed() >= max_sleep || (scan_pending && t.elapsed() >= Duration::from_secs(5))
            }) || next_overdue.is_some_and(|d| d <= chrono::Utc::now());
            if scan {
                last_overdue = Some(std::time::Instant::now());
                scan_pending = false;
                match self.scan_overdue().await {
                    Ok((_, next)) => next_overdue = next,
                    Err(e) => tracing::warn!(error = %e, "looking for overdue tasks failed"),
                }
            }
            let sleep = match self.tick().await {
                Err(e) => {
                    tracing::warn!(error = %e, "notification tick failed");
                    Duration::from_secs(5)
                }
                // a full batch: more may be waiting
                Ok((expanded, _)) if expanded >= EXPAND_BATCH => Duration::ZERO,
                Ok(_) => {
                    match store::notification::next_attempt(&self.store, &self.sendable()).await {
                        Ok(Some(at)) => (at - chrono::Utc::now())
                            .to_std()
                            .unwrap_or(Duration::from_millis(200))
                            .clamp(Duration::from_millis(200), max_sleep),
                        Ok(None) => max_sleep,
                        Err(e) => {
                            tracing::warn!(error = %e, "reading the next notification due failed");
                            Duration::from_secs(5)
                        }
                    }
                }
            };
            let sleep = match (scan_pending, last_overdue) {
                (true, Some(t)) => sleep.min(Duration::from_secs(5).saturating_sub(t.elapsed())),
                _ => sleep,
            };
            let sleep = match next_overdue {
                Some(d) => sleep.min(
                    (d - chrono::Utc::now())
                        .to_std()
                        .unwrap_or_default()
                        .max(Duration::from_millis(200)),
                ),
                None => sleep,
            };
            if last_gc.elapsed() > Duration::from_secs(3600) {
                last_gc = std::time::Instant::now();
                if let Err(e) = store::notification::collect(&self.store).await {
                    tracing::warn!(error = %e, "collecting old notifications failed");
                }
            }
            woken = tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = wake.notified() => true,
                _ = tokio::time::sleep(sleep) => false,
            };
            if woken {
                // a burst of task changes (a claimed batch, a busy API) is expanded in one
                // pass instead of one pass per change
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep(EVENT_DEBOUNCE) => {}
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strategies_and_backoff() {
        assert!(Strategy::Always.wants("RUNNING"));
        assert!(!Strategy::FailureOnly.wants("DONE"));
        assert!(Strategy::FailureOnly.wants("BLOCKED"));
        assert!(Strategy::FailureOrDone.wants("DONE"));
        assert_eq!(Strategy::parse("nope"), None);
        let waits: Vec<u64> = (1..=12)
            .map(|a| retry_in(a).map(|d| d.as_secs()).unwrap_or(0))
            .collect();
        assert_eq!(waits, [5, 10, 20, 40, 80, 160, 320, 600, 600, 600, 600, 0]);
    }
}
