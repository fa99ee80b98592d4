//! # `ssh` — run a script on a remote host over SSH
//!
//! µTask's `ssh` action (same fields), with host-key checking and values passed safely. The
//! script is sent to `/bin/sh -s` on the target through the channel's stdin — never through a
//! command line — preceded by `export NAME='value'` lines for `environment`, quoted by mutask:
//! put template values in `environment` and use `"$NAME"` in the script, so a value holding
//! `; rm -rf /`, backticks or `$(…)` stays data. Key authentication only (russh, pure Rust).
//!
//! | field | type | meaning |
//! |---|---|---|
//! | `target` | string | `host`, `host:port` or `user@host:port` (required) |
//! | `user` | string | remote user (required unless in `target`) |
//! | `hops` | list of strings | bastions to go through, in order: `[user@]host[:port]` (same key) |
//! | `ssh_key` | string | private key, OpenSSH or PEM text (required) |
//! | `ssh_key_passphrase` | string | its passphrase |
//! | `script` | string | shell script run by `/bin/sh` (required) |
//! | `environment` | map | variables exported before the script, values quoted by mutask |
//! | `output_mode` | `auto-result` (default), `manual-lastline`, `manual-delimiters`, `disabled` | how the output is read |
//! | `result` | map | `auto-result`: output key → shell expression evaluated after the script (`$(…)` output, as a string) |
//! | `output_manual_delimiters` | list of 2 strings | `manual-delimiters`: the JSON output is between them |
//! | `exit_codes_unrecoverable` | list | exit codes (`3`) or ranges (`10-20`) that mean CLIENT_ERROR |
//! | `timeout` | duration | whole exchange, default `5m` |
//! | `known_hosts` | string | known_hosts lines for the target and hops (plain, `[host]:port` or hashed); default the file named by `MUTASK_SSH_KNOWN_HOSTS`, else `~/.ssh/known_hosts` |
//! | `skip_host_key_check` | bool | accept any host key (off by default; for throwaway hosts only) |
//!
//! The first host (target, or the first hop) is resolved through the actions' network policy
//! (loopback, link-local and metadata addresses refused unless allowed); hosts behind a
//! bastion are reached from it with `direct-tcpip`. Stdout and stderr lines go to the step log
//! as they arrive ([docs/step-logs.md](../step-logs.md)).
//!
//! **Output**: per `output_mode` — `auto-result`: the `result` map's values; `manual-lastline`:
//! the last stdout line as JSON; `manual-delimiters`: the JSON between the delimiters;
//! `disabled`: none. **Metadata**: `output` (stdout and stderr, at most 64 KiB), `exit_code`,
//! `exit_signal`, `exit_msg`. **States**: exit 0 → DONE; a code of `exit_codes_unrecoverable`
//! → CLIENT_ERROR; another code or a signal → SERVER_ERROR; an unknown or changed host key, a
//! refused key or a bad configuration → CLIENT_ERROR; a connection failure or timeout →
//! SERVER_ERROR (past the timeout, `output` keeps what the script printed until then and
//! `exit_code` is `-1`).
//!
//! ```yaml
//! action:
//!   type: ssh
//!   configuration:
//!     target: "deploy@{{ input.host }}:22"
//!     ssh_key: "{{ config.deploy_key }}"
//!     known_hosts: "{{ config.known_hosts }}"
//!     environment:
//!       VERSION: "{{ resolver_input.version }}"
//!     script: |
//!       systemctl restart "app@$VERSION"
//!     result:
//!       uptime: "cat /proc/uptime"
//! ```

use std::sync::Arc;
use std::time::Duration;

use russh::ChannelMsg;
use russh::client::{self, Handle};
use russh::keys::{PrivateKey, PrivateKeyWithHashAlg, PublicKey, PublicKeyOrCertificate};
use serde_json::{Map, Value, json};

use super::http::{NetworkPolicy, Refusal};
use super::log::{LineSplitter, Stream};
use super::{Action, ActionError, ActionRequest, ActionResult, BoxFuture, config_bool, config_str};

/// Default timeout of the whole exchange.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(300);
/// Most output kept in the metadata.
pub const MAX_OUTPUT: usize = 64 * 1024;

/// One SSH endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub user: String,
    pub host: String,
    pub port: u16,
}

/// Parses `[user@]host[:port]` (IPv6 in brackets), with `default_user`.
pub fn endpoint(text: &str, default_user: Option<&str>, field: &str) -> Result<Endpoint, String> {
    let text = text.trim();
    let (user, rest) = match text.rsplit_once('@') {
        Some((u, r)) => (Some(u.to_string()), r),
        None => (default_user.map(str::to_string), text),
    };
    let (host, port) = if let Some(inner) = rest.strip_prefix('[') {
        let (h, after) = inner
            .split_once(']')
            .ok_or_else(|| format!("ssh: `{field}`: unclosed `[` in {text:?}"))?;
        let port = match after.strip_prefix(':') {
            Some(p) => Some(p),
            None if after.is_empty() => None,
            None => return Err(format!("ssh: `{field}`: unexpected {after:?}")),
        };
        (h.to_string(), port)
    } else {
        match rest.rsplit_once(':') {
            Some((h, p)) if !h.contains(':') => (h.to_string(), Some(p)),
            _ => (rest.to_string(), None),
        }
    };
    let port = match port {
        None => 22,
        Some(p) => p
            .parse::<u16>()
            .ok()
            .filter(|p| *p > 0)
            .ok_or_else(|| format!("ssh: `{field}`: {p:?} is not a port"))?,
    };
    if host.is_empty() || host.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!("ssh: `{field}`: {text:?} names no host"));
    }
    let user = user
        .filter(|u| !u.is_empty())
        .ok_or_else(|| format!("ssh: `{field}`: no user (give `user` or `user@host`)"))?;
    Ok(Endpoint { user, host, port })
}

/// Quotes a value for `sh` (single quotes; `'` becomes `'\''`).
pub fn sh_quote(v: &str) -> String {
    format!("'{}'", v.replace('\'', "'\\''"))
}

fn valid_var(name: &str) -> bool {
    let mut c = name.chars();
    c.next()
        .is_some_and(|f| f.is_ascii_alphabetic() || f == '_')
        && c.all(|x| x.is_ascii_alphanumeric() || x == '_')
}

/// How the output is read.
#[derive(Debug, Clone, PartialEq, Eq)]
enum OutputMode {
    AutoResult(Vec<(String, String)>),
    LastLine,
    Delimiters(String, String),
    Disabled,
}

/// One ssh step, checked.
#[derive(Debug, Clone)]
struct Params {
    hops: Vec<Endpoint>,
    target: Endpoint,
    key: Arc<PrivateKey>,
    script: String,
    output: OutputMode,
    unrecoverable: Vec<(i64, i64)>,
    timeout: Duration,
    known_hosts: Option<String>,
    skip_host_key_check: bool,
}

/// The marker around the `auto-result` values in stdout.
const RESULT_MARK: &str = "__MUTASK_SSH_RESULT_7f3a__";

fn params(config: &Value) -> Result<Params, String> {
    if !config.is_object() {
        return Err("ssh: the configuration must be a map".into());
    }
    let user = config_str(config, "user").filter(|u| !u.trim().is_empty());
    let target = match config_str(config, "target") {
        Some(t) if !t.trim().is_empty() => endpoint(&t, user.as_deref(), "target")?,
        _ => return Err("ssh: `target` is required".into()),
    };
    let hops = match config.get("hops") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(a)) => a
            .iter()
            .enumerate()
            .map(|(i, h)| match h {
                Value::String(s) => endpoint(s, user.as_deref(), &format!("hops[{i}]")),
                _ => Err(format!("ssh: `hops[{i}]` must be a string")),
            })
            .collect::<Result<_, _>>()?,
        Some(_) => return Err("ssh: `hops` must be a list of hosts".into()),
    };
    let key_text = match config_str(config, "ssh_key") {
        Some(k) if !k.trim().is_empty() => k.into_owned(),
        _ => return Err("ssh: `ssh_key` (a private key) is required".into()),
    };
    let passphrase = config_str(config, "ssh_key_passphrase").filter(|p| !p.is_empty());
    let key = russh::keys::decode_secret_key(&key_text, passphrase.as_deref())
        .map_err(|e| format!("ssh: `ssh_key` is not a usable private key: {e}"))?;
    let mut script = String::new();
    match config.get("environment") {
        None | Some(Value::Null) => {}
        Some(Value::Object(m)) => {
            for (k, v) in m {
                if !valid_var(k) {
                    return Err(format!("ssh: `environment.{k}`: not a shell variable name"));
                }
                let v = match v {
                    Value::String(s) => s.clone(),
                    Value::Null => String::new(),
                    other => other.to_string(),
                };
                if v.contains('\0') {
                    return Err(format!("ssh: `environment.{k}` contains a NUL byte"));
                }
                script.push_str(&format!("export {k}={}\n", sh_quote(&v)));
            }
        }
        Some(_) => return Err("ssh: `environment` must be a map".into()),
    }
    let user_script = match config_str(config, "script") {
        Some(s) if !s.trim().is_empty() => s.into_owned(),
        _ => return Err("ssh: `script` is required".into()),
    };
    let mode = config_str(config, "output_mode")
        .map(|m| m.trim().to_string())
        .unwrap_or_default();
    let output = match mode.as_str() {
        "" | "auto-result" => {
            let mut pairs = Vec::new();
            match config.get("result") {
                None | Some(Value::Null) => {}
                Some(Value::Object(m)) => {
                    for (k, v) in m {
                        let expr = v.as_str().ok_or_else(|| {
                            format!("ssh: `result.{k}` must be a shell expression")
                        })?;
                        if k.contains(['\t', '\n']) {
                            return Err(format!("ssh: `result` key {k:?} is not a plain name"));
                        }
                        pairs.push((k.clone(), expr.to_string()));
                    }
                }
                Some(_) => return Err("ssh: `result` must be a map".into()),
            }
            OutputMode::AutoResult(pairs)
        }
        "manual-lastline" => OutputMode::LastLine,
        "manual-delimiters" => match config.get("output_manual_delimiters") {
            Some(Value::Array(a)) if a.len() == 2 => match (a[0].as_str(), a[1].as_str()) {
                (Some(x), Some(y)) if !x.is_empty() && !y.is_empty() => {
                    OutputMode::Delimiters(x.to_string(), y.to_string())
                }
                _ => return Err("ssh: `output_manual_delimiters` needs 2 non-empty strings".into()),
            },
            _ => return Err("ssh: `output_manual_delimiters` needs 2 strings".into()),
        },
        "disabled" => OutputMode::Disabled,
        other => {
            return Err(format!(
                "ssh: `output_mode` must be auto-result, manual-lastline, manual-delimiters or disabled, not {other:?}"
            ));
        }
    };
    if let OutputMode::AutoResult(pairs) = &output
        && !pairs.is_empty()
    {
        // when the script ends (at its end or by `exit`, variables it set still visible): each
        // value as `key<TAB>base64`, between markers, and the script's exit status kept
        script.push_str("__mutask_result() {\n__mutask_rc=$?\n");
        script.push_str(&format!("echo '{RESULT_MARK}'\n"));
        for (k, expr) in pairs {
            script.push_str(&format!(
                "printf '%s\\t' {}; ( {expr} ) 2>/dev/null | base64 | tr -d '\\n'; echo\n",
                sh_quote(k)
            ));
        }
        script.push_str(&format!(
            "echo '{RESULT_MARK}'\nexit $__mutask_rc\n}}\ntrap __mutask_result EXIT\n"
        ));
    }
    script.push_str(&user_script);
    script.push('\n');
    let mut unrecoverable = Vec::new();
    match config.get("exit_codes_unrecoverable") {
        None | Some(Value::Null) => {}
        Some(Value::Array(a)) => {
            for (i, v) in a.iter().enumerate() {
                let t = match v {
                    Value::String(s) => s.trim().to_string(),
                    Value::Number(n) => n.to_string(),
                    _ => {
                        return Err(format!(
                            "ssh: `exit_codes_unrecoverable[{i}]` must be a code or a range"
                        ));
                    }
                };
                let (lo, hi) = t.split_once('-').unwrap_or((&t, &t));
                match (lo.trim().parse::<i64>(), hi.trim().parse::<i64>()) {
                    (Ok(l), Ok(h)) if l <= h => unrecoverable.push((l, h)),
                    _ => {
                        return Err(format!(
                            "ssh: `exit_codes_unrecoverable[{i}]`: {t:?} is not a code or a range"
                        ));
                    }
                }
            }
        }
        Some(_) => return Err("ssh: `exit_codes_unrecoverable` must be a list".into()),
    }
    let timeout = match config_str(config, "timeout").filter(|t| !t.trim().is_empty()) {
        None => DEFAULT_TIMEOUT,
        Some(t) => crate::domain::duration::parse(t.trim())
            .ok()
            .filter(|d| !d.is_zero())
            .ok_or_else(|| format!("ssh: `timeout`: {t:?} is not a duration"))?,
    };
    Ok(Params {
        hops,
        target,
        key: Arc::new(key),
        script,
        output,
        unrecoverable,
        timeout,
        known_hosts: config_str(config, "known_hosts")
            .filter(|k| !k.trim().is_empty())
            .map(|k| k.into_owned()),
        skip_host_key_check: config_bool(config.get("skip_host_key_check")),
    })
}

/// Does a known_hosts host field (`a,b`, `[a]:2222`, `|1|salt|hash`) name `host:port`?
fn host_matches(field: &str, host: &str, port: u16) -> bool {
    let wanted = if port == 22 {
        host.to_string()
    } else {
        format!("[{host}]:{port}")
    };
    field.split(',').any(|h| {
        if let Some(hashed) = h.strip_prefix("|1|") {
            use base64::Engine;
            use hmac::{KeyInit, Mac};
            let Some((salt, hash)) = hashed.split_once('|') else {
                return false;
            };
            let b64 = base64::engine::general_purpose::STANDARD;
            let (Ok(salt), Ok(hash)) = (b64.decode(salt), b64.decode(hash)) else {
                return false;
            };
            let Ok(mut mac) = hmac::Hmac::<sha1::Sha1>::new_from_slice(&salt) else {
                return false;
            };
            mac.update(wanted.as_bytes());
            mac.verify_slice(&hash).is_ok()
        } else {
            h == wanted
        }
    })
}

/// Checks a server key against known_hosts text: Ok(()) when a line names the host with
/// this key; an error naming the problem otherwise (unknown host, changed key).
pub fn check_known_host(text: &str, host: &str, port: u16, key: &PublicKey) -> Result<(), String> {
    let mut same_algorithm_differs = false;
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with('@') {
            continue;
        }
        let mut parts = line.split_whitespace();
        let (Some(hosts), Some(_kind), Some(b64)) = (parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        if !host_matches(hosts, host, port) {
            continue;
        }
        let Ok(known) = russh::keys::parse_public_key_base64(b64) else {
            continue;
        };
        if known.key_data() == key.key_data() {
            return Ok(());
        }
        if known.algorithm() == key.algorithm() {
            same_algorithm_differs = true;
        }
    }
    let fp = key.fingerprint(russh::keys::HashAlg::Sha256);
    if same_algorithm_differs {
        Err(format!(
            "ssh: the host key of {host}:{port} CHANGED (now {fp}): refusing to connect"
        ))
    } else {
        Err(format!(
            "ssh: {host}:{port} is not in known_hosts (its key is {fp}); add it, or set skip_host_key_check for a throwaway host"
        ))
    }
}

struct Client {
    host: String,
    port: u16,
    known_hosts: Arc<Option<String>>,
    skip: bool,
    refusal: Arc<std::sync::Mutex<Option<String>>>,
}

impl client::Handler for Client {
    type Error = russh::Error;

    async fn check_server_key(
        &mut self,
        server: &PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        if self.skip {
            return Ok(true);
        }
        let key = match server {
            PublicKeyOrCertificate::PublicKey { key, .. } => key.clone(),
            PublicKeyOrCertificate::Certificate(c) => PublicKey::from(c.public_key().clone()),
        };
        let text = match self.known_hosts.as_ref() {
            Some(t) => t.clone(),
            None => {
                let path = std::env::var_os("MUTASK_SSH_KNOWN_HOSTS")
                    .map(std::path::PathBuf::from)
                    .or_else(|| std::env::home_dir().map(|h| h.join(".ssh/known_hosts")));
                path.and_then(|p| std::fs::read_to_string(p).ok())
                    .unwrap_or_default()
            }
        };
        match check_known_host(&text, &self.host, self.port, &key) {
            Ok(()) => Ok(true),
            Err(m) => {
                if let Ok(mut r) = self.refusal.lock() {
                    *r = Some(m);
                }
                Ok(false)
            }
        }
    }
}

/// Connection failure, classified.
fn fail(e: ActionError, metadata: Option<Value>) -> ActionResult {
    ActionResult {
        metadata,
        ..ActionResult::err(e)
    }
}

async fn authenticate(
    handle: &mut Handle<Client>,
    ep: &Endpoint,
    key: &Arc<PrivateKey>,
) -> Result<(), ActionError> {
    let hash = handle
        .best_supported_rsa_hash()
        .await
        .ok()
        .flatten()
        .flatten();
    let auth = handle
        .authenticate_publickey(&ep.user, PrivateKeyWithHashAlg::new(key.clone(), hash))
        .await
        .map_err(|e| {
            ActionError::Server(format!(
                "ssh: {}:{}: authentication failed: {e}",
                ep.host, ep.port
            ))
        })?;
    if auth.success() {
        Ok(())
    } else {
        Err(ActionError::Client(format!(
            "ssh: {}@{}:{} refused the key",
            ep.user, ep.host, ep.port
        )))
    }
}

fn client_for(
    ep: &Endpoint,
    p: &Params,
    refusal: &Arc<std::sync::Mutex<Option<String>>>,
) -> Client {
    Client {
        host: ep.host.clone(),
        port: ep.port,
        known_hosts: Arc::new(p.known_hosts.clone()),
        skip: p.skip_host_key_check,
        refusal: refusal.clone(),
    }
}

fn connect_error(
    e: russh::Error,
    ep: &Endpoint,
    refusal: &Arc<std::sync::Mutex<Option<String>>>,
) -> ActionError {
    if let Some(m) = refusal.lock().ok().and_then(|mut r| r.take()) {
        return ActionError::Client(m);
    }
    ActionError::Server(format!(
        "ssh: cannot connect to {}:{}: {e}",
        ep.host, ep.port
    ))
}

/// Opens an authenticated session to the target, through the hops.
async fn session(
    p: &Params,
    policy: &NetworkPolicy,
    refusal: &Arc<std::sync::Mutex<Option<String>>>,
) -> Result<Handle<Client>, ActionError> {
    let config = Arc::new(client::Config {
        inactivity_timeout: Some(p.timeout),
        ..Default::default()
    });
    let mut chain: Vec<&Endpoint> = p.hops.iter().collect();
    chain.push(&p.target);
    let first = chain[0];
    let addr = match policy.resolve(&first.host, first.port).await {
        Ok(a) => a
            .into_iter()
            .next()
            .ok_or_else(|| ActionError::Server(format!("ssh: `{}` has no address", first.host)))?,
        Err(Refusal::Denied(d)) => return Err(ActionError::Client(format!("ssh: {d}"))),
        Err(Refusal::Lookup(m)) => return Err(ActionError::Server(format!("ssh: {m}"))),
    };
    let mut handle = client::connect(config.clone(), addr, client_for(first, p, refusal))
        .await
        .map_err(|e| connect_error(e, first, refusal))?;
    authenticate(&mut handle, first, &p.key).await?;
    for next in chain.iter().skip(1) {
        let channel = handle
            .channel_open_direct_tcpip(next.host.clone(), u32::from(next.port), "127.0.0.1", 0)
            .await
            .map_err(|e| {
                ActionError::Server(format!(
                    "ssh: the bastion could not reach {}:{}: {e}",
                    next.host, next.port
                ))
            })?;
        let mut inner = client::connect_stream(
            config.clone(),
            channel.into_stream(),
            client_for(next, p, refusal),
        )
        .await
        .map_err(|e| connect_error(e, next, refusal))?;
        authenticate(&mut inner, next, &p.key).await?;
        // the outer session must outlive the inner one: keep it alive in the background
        let outer = handle;
        tokio::spawn(async move {
            let keep = outer;
            tokio::time::sleep(Duration::from_secs(24 * 3600)).await;
            drop(keep);
        });
        handle = inner;
    }
    Ok(handle)
}

/// What a remote script printed and how it ended, as it arrives: the caller keeps it when the
/// action's timeout cuts the run.
#[derive(Default)]
struct Collected {
    stdout: Vec<u8>,
    /// stdout and stderr interleaved (at most `MAX_OUTPUT` bytes)
    combined: Vec<u8>,
    out_lines: LineSplitter,
    err_lines: LineSplitter,
    code: Option<u32>,
    signal: Option<String>,
}

impl Collected {
    /// The output is complete, or cut: the last lines without their newline go to the log.
    fn finish(&mut self, log: &super::log::StepLog) {
        self.out_lines.finish(log, Stream::Stdout);
        self.err_lines.finish(log, Stream::Stderr);
    }

    fn combined(&self) -> String {
        String::from_utf8_lossy(&self.combined).into_owned()
    }
}

/// Runs the script, collecting what it prints and its exit in `got`.
async fn run_script(
    handle: &Handle<Client>,
    p: &Params,
    req: &ActionRequest,
    got: &mut Collected,
) -> Result<(), ActionError> {
    let mut channel = handle
        .channel_open_session()
        .await
        .map_err(|e| ActionError::Server(format!("ssh: cannot open a session: {e}")))?;
    channel
        .exec(true, "/bin/sh -s")
        .await
        .map_err(|e| ActionError::Server(format!("ssh: cannot start the shell: {e}")))?;
    channel
        .data(p.script.as_bytes())
        .await
        .map_err(|e| ActionError::Server(format!("ssh: cannot send the script: {e}")))?;
    channel
        .eof()
        .await
        .map_err(|e| ActionError::Server(format!("ssh: cannot send the script: {e}")))?;
    while let Some(msg) = channel.wait().await {
        match msg {
            ChannelMsg::Data { data } => {
                got.out_lines.feed(&req.log, Stream::Stdout, &data);
                if got.stdout.len() < 4 * MAX_OUTPUT {
                    got.stdout.extend_from_slice(&data);
                }
                keep_combined(&mut got.combined, &data);
            }
            ChannelMsg::ExtendedData { data, .. } => {
                got.err_lines.feed(&req.log, Stream::Stderr, &data);
                keep_combined(&mut got.combined, &data);
            }
            ChannelMsg::ExitStatus { exit_status } => got.code = Some(exit_status),
            ChannelMsg::ExitSignal { signal_name, .. } => {
                got.signal = Some(format!("{signal_name:?}"))
            }
            _ => {}
        }
    }
    got.finish(&req.log);
    Ok(())
}

fn keep_combined(combined: &mut Vec<u8>, data: &[u8]) {
    if combined.len() < MAX_OUTPUT {
        combined.extend_from_slice(&data[..data.len().min(MAX_OUTPUT - combined.len())]);
    }
}

/// Reads the output per mode; the stdout shown in metadata has the result block removed.
fn read_output(mode: &OutputMode, stdout: &str) -> (Option<Value>, Option<String>) {
    match mode {
        OutputMode::Disabled => (None, None),
        OutputMode::LastLine => {
            let last = stdout
                .lines()
                .rev()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("");
            match serde_json::from_str::<Value>(last) {
                Ok(v) => (Some(v), None),
                Err(e) => (None, Some(format!("ssh: the last line is not JSON: {e}"))),
            }
        }
        OutputMode::Delimiters(a, b) => {
            let inner = stdout
                .split_once(a.as_str())
                .and_then(|(_, rest)| rest.split_once(b.as_str()))
                .map(|(inner, _)| inner.trim());
            match inner.map(serde_json::from_str::<Value>) {
                Some(Ok(v)) => (Some(v), None),
                Some(Err(e)) => (
                    None,
                    Some(format!(
                        "ssh: the output between the delimiters is not JSON: {e}"
                    )),
                ),
                None => (
                    None,
                    Some("ssh: the output delimiters were not found".into()),
                ),
            }
        }
        OutputMode::AutoResult(pairs) if pairs.is_empty() => (None, None),
        OutputMode::AutoResult(_) => {
            use base64::Engine;
            let mut out = Map::new();
            let block = stdout
                .split_once(RESULT_MARK)
                .and_then(|(_, rest)| rest.split_once(RESULT_MARK))
                .map(|(b, _)| b);
            let Some(block) = block else {
                return (
                    None,
                    Some("ssh: the script ended before the result was read".into()),
                );
            };
            for line in block.lines().filter(|l| !l.is_empty()) {
                if let Some((k, b64)) = line.split_once('\t') {
                    let v = base64::engine::general_purpose::STANDARD
                        .decode(b64.trim())
                        .map(|b| {
                            String::from_utf8_lossy(&b)
                                .trim_end_matches('\n')
                                .to_string()
                        })
                        .unwrap_or_default();
                    out.insert(k.to_string(), Value::String(v));
                }
            }
            (Some(Value::Object(out)), None)
        }
    }
}

async fn execute(req: ActionRequest, policy: &NetworkPolicy) -> ActionResult {
    let p = match params(&req.config) {
        Ok(p) => p,
        Err(m) => return ActionResult::err(ActionError::Client(m)),
    };
    let refusal = Arc::new(std::sync::Mutex::new(None));
    let mut got = Collected::default();
    let run = async {
        let handle = session(&p, policy, &refusal).await?;
        let r = run_script(&handle, &p, &req, &mut got).await;
        let _ = handle
            .disconnect(russh::Disconnect::ByApplication, "", "en")
            .await;
        r
    };
    match tokio::time::timeout(p.timeout, run).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => return fail(e, None),
        Err(_) => {
            // what the script printed until then (the step log has had it line by line)
            got.finish(&req.log);
            let message = format!("timed out after {:?}", p.timeout);
            let metadata = json!({
                "output": got.combined(),
                "exit_code": "-1",
                "exit_signal": "",
                "exit_msg": message,
            });
            return fail(
                ActionError::Server(format!("ssh: {message}")),
                Some(metadata),
            );
        }
    }
    let (stdout, combined) = (String::from_utf8_lossy(&got.stdout), got.combined());
    let (code, signal) = (got.code, got.signal.take());
    let shown = match stdout.find(RESULT_MARK) {
        Some(_) => combined
            .split(RESULT_MARK)
            .enumerate()
            .filter(|(i, _)| i % 2 == 0)
            .map(|(_, s)| s)
            .collect::<String>(),
        None => combined,
    };
    let exit_msg = match (code, &signal) {
        (Some(c), _) => format!("exit status {c}"),
        (None, Some(s)) => format!("killed by signal {s}"),
        (None, None) => "no exit status".into(),
    };
    let metadata = json!({
        "output": shown,
        "exit_code": code.map(|c| c.to_string()).unwrap_or_else(|| "-1".into()),
        "exit_signal": signal.clone().unwrap_or_default(),
        "exit_msg": exit_msg,
    });
    let (output, output_error) = read_output(&p.output, &stdout);
    let mut result = ActionResult::ok(output, Some(metadata));
    result.error = match code {
        Some(0) => output_error.map(ActionError::Server),
        Some(c) => {
            let msg = format!("ssh: the script failed on {}: {exit_msg}", p.target.host);
            let c = i64::from(c);
            Some(
                if p.unrecoverable.iter().any(|(l, h)| (*l..=*h).contains(&c)) {
                    ActionError::Client(msg)
                } else {
                    ActionError::Server(msg)
                },
            )
        }
        None => Some(ActionError::Server(format!(
            "ssh: the script on {} ended without an exit status ({exit_msg})",
            p.target.host
        ))),
    };
    result
}

/// The ssh action, with the network policy it enforces.
#[derive(Debug, Clone, Default)]
pub struct Ssh {
    policy: Arc<NetworkPolicy>,
}

impl Ssh {
    /// An ssh action enforcing `policy`.
    pub fn new(policy: NetworkPolicy) -> Ssh {
        Ssh {
            policy: Arc::new(policy),
        }
    }
}

impl Action for Ssh {
    fn name(&self) -> &'static str {
        "ssh"
    }

    fn run(&self, req: ActionRequest) -> BoxFuture<'_, ActionResult> {
        Box::pin(async move { execute(req, &self.policy).await })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_and_quoting() {
        assert_eq!(
            endpoint("deploy@host.example:2222", None, "target").unwrap(),
            Endpoint {
                user: "deploy".into(),
                host: "host.example".into(),
                port: 2222
            }
        );
        assert_eq!(
            endpoint("[::1]:22", Some("u"), "target").unwrap().host,
            "::1"
        );
        assert_eq!(endpoint("h", Some("u"), "target").unwrap().port, 22);
        assert!(
            endpoint("h", None, "target")
                .unwrap_err()
                .contains("no user")
        );
        assert!(
            endpoint("u@h:99999", None, "hops[0]")
                .unwrap_err()
                .contains("hops[0]")
        );
        assert_eq!(
            sh_quote("it's; rm -rf / $(id) `x`"),
            "'it'\\''s; rm -rf / $(id) `x`'"
        );
        assert!(valid_var("VERSION_2") && !valid_var("2X") && !valid_var("A-B"));
    }

    #[test]
    fn known_hosts_lines_plain_ported_and_hashed() {
        let key = russh::keys::parse_public_key_base64(
            "AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl",
        )
        .unwrap();
        let line = "AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl";
        assert!(
            check_known_host(
                &format!("h.example ssh-ed25519 {line}"),
                "h.example",
                22,
                &key
            )
            .is_ok()
        );
        assert!(
            check_known_host(
                &format!("[h.example]:2222 ssh-ed25519 {line}"),
                "h.example",
                2222,
                &key
            )
            .is_ok()
        );
        assert!(
            check_known_host(
                &format!("h.example ssh-ed25519 {line}"),
                "h.example",
                2222,
                &key
            )
            .unwrap_err()
            .contains("not in known_hosts")
        );
        // `ssh-keygen -H` form of "h.example"
        use base64::Engine;
        use hmac::{KeyInit, Mac};
        let salt = b"0123456789abcdef0123";
        let mut mac = hmac::Hmac::<sha1::Sha1>::new_from_slice(salt).unwrap();
        mac.update(b"h.example");
        let b64 = base64::engine::general_purpose::STANDARD;
        let hashed = format!(
            "|1|{}|{}",
            b64.encode(salt),
            b64.encode(mac.finalize().into_bytes())
        );
        assert!(
            check_known_host(
                &format!("{hashed} ssh-ed25519 {line}"),
                "h.example",
                22,
                &key
            )
            .is_ok()
        );
        let other = "AAAAC3NzaC1lZDI1NTE5AAAAIIhY5JOQ6UtB3MdJJWlySP+v1NE5dQcVOZ8iDtWwuyXt";
        assert!(
            check_known_host(
                &format!("h.example ssh-ed25519 {other}"),
                "h.example",
                22,
                &key
            )
            .unwrap_err()
            .contains("CHANGED")
        );
    }

    #[test]
    fn outputs_per_mode() {
        let block = format!("hello\n{RESULT_MARK}\nup\tMTIzCg==\n{RESULT_MARK}\n");
        let (o, e) = read_output(
            &OutputMode::AutoResult(vec![("up".into(), "x".into())]),
            &block,
        );
        assert_eq!((o, e), (Some(json!({"up": "123"})), None));
        let (o, _) = read_output(&OutputMode::LastLine, "a\n{\"k\": 1}\n");
        assert_eq!(o, Some(json!({"k": 1})));
        let (o, _) = read_output(
            &OutputMode::Delimiters("<<".into(), ">>".into()),
            "x << [1] >> y",
        );
        assert_eq!(o, Some(json!([1])));
        assert!(read_output(&OutputMode::LastLine, "not json").1.is_some());
    }
}
