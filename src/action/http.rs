//! # `http` — call an HTTP(S) endpoint
//!
//! Sends one request and returns the response. Compatible with µTask's `http` plugin.
//!
//! | field | type | meaning |
//! |---|---|---|
//! | `url` | string | full destination (`http://` or `https://`); conflicts with `host` + `path` |
//! | `host` | string | scheme and authority (`https://api.example.org:8443`), with `path` |
//! | `path` | string | path (and query) appended to `host` |
//! | `method` | `GET` (default) \| `POST` \| `PUT` \| `DELETE` \| `PATCH` \| `HEAD` \| `OPTIONS` | HTTP method |
//! | `body` | string, or a map / list sent as JSON | request body |
//! | `headers` | list of `{name, value}`, or a map | request headers (a later one replaces an earlier one, and replaces `auth`) |
//! | `query_parameters` | list of `{name, value}`, or a map | appended to the query of `url` (names may repeat) |
//! | `timeout` | duration | default `30s`; covers connecting, sending and reading the whole response |
//! | `auth` | `{basic: {user, password}}` \| `{bearer: token}` \| `{mutual_tls: {client_cert, client_key}}` | authentication (PEM strings for mutual TLS) |
//! | `follow_redirect` | bool (`"true"`) | default `false`: a 3xx answer is returned as it is; when `true`, up to 10 redirects are followed |
//! | `insecure_skip_verify` | bool (`"true"`) | accept any TLS certificate (never in production) |
//! | `root_ca` | string | PEM certificate(s) trusted in addition to the system roots |
//! | `trim_prefix` | string | removed from the start of the response body before it is decoded (e.g. `)]}',`) |
//!
//! Booleans accept `true`/`false` or the strings `"true"`, `"false"`, `"1"`, `"0"`; anything else
//! is a CLIENT_ERROR naming the field. When a body is given without a `Content-Type` header and
//! the body is valid JSON, `Content-Type: application/json` is sent.
//!
//! **Output**: the decoded body when the response says `application/json` (or `…+json`), or
//! carries no content type and parses as JSON; otherwise the body as a string. **Metadata**:
//! `HTTPStatus` (number), `HTTPHeaders` (first value of each header, names in `Canonical-Form`),
//! `HTTPCookies` (name → value of each `Set-Cookie`). Output and metadata are kept when the step
//! fails on the status.
//!
//! **States**: 2xx → DONE; 4xx → CLIENT_ERROR; any other status (5xx, and a 3xx that is not
//! followed, as in µTask) → SERVER_ERROR; connection failures, timeouts, a JSON response that
//! does not decode and a body over 10 MiB ("response too large") → SERVER_ERROR. Error messages
//! name the method and the URL without credentials or query string.
//!
//! **Step log**: one line per execution: method, URL (without query), status or failure, time.
//!
//! **Network policy** (SSRF guard): every connection, including each redirect hop, goes to an
//! address that was resolved and checked by mutask itself (so a DNS answer cannot switch to a
//! forbidden address between check and connect). Refused by default: loopback (`127.0.0.0/8`,
//! `::1`), link-local (`169.254.0.0/16`, `fe80::/10`), cloud metadata endpoints
//! (`169.254.169.254`, `fd00:ec2::254`, `100.100.100.200`) and unspecified addresses
//! (`0.0.0.0/8`, `::`). Private ranges (`10/8`, `172.16/12`, `192.168/16`, `100.64/10`,
//! `fc00::/7`) are allowed by default — reaching internal APIs is what the action is for — and
//! can be refused too by the operator. The operator's allow-list of CIDRs and host names
//! (`*.example.org` for subdomains) lifts every rule for what it names. A refused destination is
//! a CLIENT_ERROR naming the host, the address and the rule. HTTP proxies from the environment
//! are not used.
//!
//! ```yaml
//! action:
//!   type: http
//!   configuration:
//!     url: "https://api.example.org/v1/users/{{ input.user }}"
//!     method: POST
//!     timeout: 10s
//!     auth:
//!       bearer: "{{ config.api_token }}"
//!     headers:
//!       - {name: X-Request-Id, value: "{{ task.task_id }}"}
//!     query_parameters:
//!       - {name: lang, value: en}
//!     body: {name: "{{ input.name }}", admin: false}
//! ```

use std::error::Error as StdError;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Once};
use std::time::Duration;

use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue};
use reqwest::{Method, Url};
use serde_json::{Map, Value, json};

use super::{Action, ActionError, ActionRequest, ActionResult, BoxFuture};

/// Timeout when the step sets none (µTask's default).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
/// Largest response body read; past it the step fails with "response too large".
pub const MAX_RESPONSE_BYTES: usize = 10 * 1024 * 1024;
/// Redirects followed at most when `follow_redirect` is on (µTask: 10).
pub const MAX_REDIRECTS: usize = 10;
/// Longest part of a failing response's body quoted in the error message.
const ERROR_BODY_CHARS: usize = 512;

// ---------------------------------------------------------------------------------------------
// Network policy (shared with `ping`)
// ---------------------------------------------------------------------------------------------

/// An IP network (`10.0.0.0/8`, `::1/128`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// Parses `a.b.c.d/n`, `x::y/n` or a bare address (a single host).
    pub fn parse(text: &str) -> Option<Cidr> {
        let text = text.trim();
        let (addr, prefix) = match text.split_once('/') {
            Some((a, p)) => (a, Some(p.parse::<u8>().ok()?)),
            None => (text, None),
        };
        let addr: IpAddr = addr
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse()
            .ok()?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = prefix.unwrap_or(max);
        (prefix <= max).then_some(Cidr { addr, prefix })
    }

    /// Whether `ip` is inside (an IPv4-mapped IPv6 address counts as its IPv4 address).
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, canonical(ip)) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

/// An IPv4-mapped IPv6 address (`::ffff:127.0.0.1`) as the IPv4 address it is.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(v6),
        },
        v4 => v4,
    }
}

/// Which destinations the `http` and `ping` actions may connect to (their SSRF guard). The
/// default refuses loopback, link-local, cloud metadata and unspecified addresses.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NetworkPolicy {
    allow_networks: Vec<Cidr>,
    /// Lower-case host names; `*.example.org` matches its subdomains.
    allow_hosts: Vec<String>,
    deny_private: bool,
}

/// A destination the [`NetworkPolicy`] refuses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denied {
    pub host: String,
    pub ip: IpAddr,
    pub rule: &'static str,
}

impl std::fmt::Display for Denied {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "destination `{}`", self.host)?;
        if self.host != self.ip.to_string() {
            write!(f, " ({})", self.ip)?;
        }
        write!(
            f,
            " is refused by the network policy: {} addresses are denied (an operator can allow it in the network allow-list)",
            self.rule
        )
    }
}

impl StdError for Denied {}

/// Why a host could not be turned into addresses to connect to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The policy refuses every address of the host.
    Denied(Denied),
    /// Name resolution failed.
    Lookup(String),
}

impl NetworkPolicy {
    /// A policy whose allow-list holds `entries`: CIDRs or addresses (`127.0.0.1`,
    /// `10.0.0.0/8`, `::1`), host names (`localhost`), or `*.domain` for its subdomains.
    pub fn with_allow_list<S: AsRef<str>>(
        entries: impl IntoIterator<Item = S>,
    ) -> Result<NetworkPolicy, String> {
        let mut policy = NetworkPolicy::default();
        for entry in entries {
            let entry = entry.as_ref().trim();
            if entry.is_empty() {
                continue;
            }
            if let Some(cidr) = Cidr::parse(entry) {
                policy.allow_networks.push(cidr);
            } else if entry.contains('/') || entry.contains(char::is_whitespace) {
                return Err(format!(
                    "network allow-list entry `{entry}` is neither a CIDR nor a host name"
                ));
            } else {
                policy.allow_hosts.push(entry.to_ascii_lowercase());
            }
        }
        Ok(policy)
    }

    /// Also refuse private ranges (`10/8`, `172.16/12`, `192.168/16`, `100.64/10`, `fc00::/7`).
    pub fn deny_private(mut self, deny: bool) -> NetworkPolicy {
        self.deny_private = deny;
        self
    }

    /// Whether the host name is on the allow-list (then its addresses are not checked).
    pub fn host_allowed(&self, host: &str) -> bool {
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        self.allow_hosts.iter().any(|h| match h.strip_prefix("*.") {
            Some(domain) => host
                .strip_suffix(domain)
                .is_some_and(|rest| rest.ends_with('.')),
            None => *h == host,
        })
    }

    /// The rule that refuses `ip`, if any (the allow-list is not consulted).
    pub fn rule_for(&self, ip: IpAddr) -> Option<&'static str> {
        let ip = canonical(ip);
        const METADATA: [&str; 3] = ["169.254.169.254", "100.100.100.200", "fd00:ec2::254"];
        if METADATA
            .iter()
            .any(|m| m.parse::<IpAddr>().ok() == Some(ip))
        {
            return Some("cloud metadata");
        }
        let within = |nets: &[&str]| {
            nets.iter()
                .filter_map(|n| Cidr::parse(n))
                .any(|c| c.contains(ip))
        };
        if ip.is_loopback() {
            Some("loopback")
        } else if within(&["169.254.0.0/16", "fe80::/10"]) {
            Some("link-local")
        } else if within(&["0.0.0.0/8"]) || ip.is_unspecified() {
            Some("unspecified")
        } else if self.deny_private
            && within(&[
                "10.0.0.0/8",
                "172.16.0.0/12",
                "192.168.0.0/16",
                "100.64.0.0/10",
                "fc00::/7",
            ])
        {
            Some("private")
        } else {
            None
        }
    }

    /// Checks one address of `host`.
    pub fn check(&self, host: &str, ip: IpAddr) -> Result<(), Denied> {
        if self.host_allowed(host) || self.allow_networks.iter().any(|n| n.contains(ip)) {
            return Ok(());
        }
        match self.rule_for(ip) {
            Some(rule) => Err(Denied {
                host: host.to_string(),
                ip,
                rule,
            }),
            None => Ok(()),
        }
    }

    /// Resolves `host` (a name or an IP literal) and keeps the addresses the policy allows;
    /// refuses when none is left.
    pub async fn resolve(&self, host: &str, port: u16) -> Result<Vec<SocketAddr>, Refusal> {
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        let found: Vec<SocketAddr> = match bare.parse::<IpAddr>() {
            Ok(ip) => vec![SocketAddr::new(ip, port)],
            Err(_) => tokio::net::lookup_host((bare, port))
                .await
                .map_err(|e| Refusal::Lookup(format!("cannot resolve `{host}`: {e}")))?
                .collect(),
        };
        if found.is_empty() {
            return Err(Refusal::Lookup(format!("`{host}` has no address")));
        }
        let mut first_denial = None;
        let mut allowed = Vec::with_capacity(found.len());
        for addr in found {
            match self.check(bare, addr.ip()) {
                Ok(()) => allowed.push(addr),
                Err(d) => {
                    first_denial.get_or_insert(d);
                }
            }
        }
        match (allowed.is_empty(), first_denial) {
            (true, Some(d)) => Err(Refusal::Denied(d)),
            _ => Ok(allowed),
        }
    }
}

/// reqwest's DNS resolver: resolution through the policy, so every connection (first request
/// and each redirect hop) goes to a checked address.
struct GuardedResolver(Arc<NetworkPolicy>);

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let policy = self.0.clone();
        let host = name.as_str().to_string();
        Box::pin(async move {
            match policy.resolve(&host, 0).await {
                Ok(addrs) => Ok(Box::new(addrs.into_iter()) as reqwest::dns::Addrs),
                Err(Refusal::Denied(d)) => Err(Box::new(d) as Box<dyn StdError + Send + Sync>),
                Err(Refusal::Lookup(m)) => Err(m.into()),
            }
        })
    }
}

/// IP-literal hosts never reach the resolver: they are checked here.
fn check_literal(url: &Url, policy: &NetworkPolicy) -> Result<(), Denied> {
    let ip = match url.host() {
        Some(url::Host::Ipv4(ip)) => IpAddr::V4(ip),
        Some(url::Host::Ipv6(ip)) => IpAddr::V6(ip),
        _ => return Ok(()),
    };
    policy.check(&ip.to_string(), ip)
}

// ---------------------------------------------------------------------------------------------
// Configuration
// ---------------------------------------------------------------------------------------------

/// One request, validated.
struct Plan {
    method: Method,
    url: Url,
    headers: HeaderMap,
    body: Option<Vec<u8>>,
    timeout: Duration,
    follow_redirect: bool,
    insecure_skip_verify: bool,
    root_ca: Vec<reqwest::Certificate>,
    identity: Option<reqwest::Identity>,
    trim_prefix: String,
}

fn client_err(msg: impl std::fmt::Display) -> String {
    format!("http: {msg}")
}

/// A scalar field as a string (numbers and booleans stringified); `None` when absent or null.
fn string_field(v: Option<&Value>, field: &str) -> Result<Option<String>, String> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(Value::Number(n)) => Ok(Some(n.to_string())),
        Some(Value::Bool(b)) => Ok(Some(b.to_string())),
        Some(other) => Err(client_err(format!(
            "`{field}` must be a string, got {}",
            type_name(other)
        ))),
    }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a map",
    }
}

/// A boolean given as a bool or a string (Go's `strconv.ParseBool` spellings); absent → false.
fn bool_field(v: Option<&Value>, field: &str) -> Result<bool, String> {
    match v {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(Value::String(s)) => match s.trim() {
            "" => Ok(false),
            "1" | "t" | "T" | "true" | "TRUE" | "True" => Ok(true),
            "0" | "f" | "F" | "false" | "FALSE" | "False" => Ok(false),
            other => Err(client_err(format!(
                "`{field}` must be true or false, got {other:?}"
            ))),
        },
        Some(other) => Err(client_err(format!(
            "`{field}` must be true or false, got {}",
            type_name(other)
        ))),
    }
}

/// `[{name, value}]` or `{name: value}` → ordered pairs.
fn pairs(v: Option<&Value>, field: &str) -> Result<Vec<(String, String)>, String> {
    match v {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(items)) => items
            .iter()
            .enumerate()
            .map(|(i, item)| {
                let Value::Object(m) = item else {
                    return Err(client_err(format!(
                        "`{field}[{i}]` must be a map with `name` and `value`, got {}",
                        type_name(item)
                    )));
                };
                let name = string_field(m.get("name"), &format!("{field}[{i}].name"))?
                    .filter(|n| !n.is_empty())
                    .ok_or_else(|| client_err(format!("`{field}[{i}].name` is missing")))?;
                let value = string_field(m.get("value"), &format!("{field}[{i}].value"))?
                    .unwrap_or_default();
                Ok((name, value))
            })
            .collect(),
        Some(Value::Object(m)) => m
            .iter()
            .map(|(k, v)| {
                if k.is_empty() {
                    return Err(client_err(format!("`{field}` has an empty name")));
                }
                let value = string_field(Some(v), &format!("{field}.{k}"))?.unwrap_or_default();
                Ok((k.clone(), value))
            })
            .collect(),
        Some(other) => Err(client_err(format!(
            "`{field}` must be a list of {{name, value}} or a map, got {}",
            type_name(other)
        ))),
    }
}

fn parse_url(text: &str, field: &str) -> Result<Url, String> {
    let url = Url::parse(text.trim())
        .map_err(|e| client_err(format!("`{field}` is not a valid URL ({e})")))?;
    match url.scheme() {
        "http" | "https" => {}
        other => {
            return Err(client_err(format!(
                "`{field}` must use http or https, not `{other}`"
            )));
        }
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(client_err(format!("`{field}` has no host")));
    }
    Ok(url)
}

fn target_url(config: &Value) -> Result<Url, String> {
    let url = string_field(config.get("url"), "url")?.filter(|s| !s.is_empty());
    let host = string_field(config.get("host"), "host")?.filter(|s| !s.is_empty());
    let path = string_field(config.get("path"), "path")?.filter(|s| !s.is_empty());
    match (url, host) {
        (Some(_), Some(_)) => Err(client_err("`url` conflicts with `host` + `path`")),
        (Some(_), None) if path.is_some() => {
            Err(client_err("`url` conflicts with `host` + `path`"))
        }
        (Some(url), None) => parse_url(&url, "url"),
        (None, Some(host)) => {
            let mut base = parse_url(&host, "host")?;
            // µTask keeps only the scheme and authority of `host`
            let _ = base.set_username("");
            let _ = base.set_password(None);
            base.set_path("/");
            base.set_query(None);
            base.set_fragment(None);
            let path = path.unwrap_or_default();
            // one leading slash: `//other.host/x` must not switch the authority
            let rel = format!("/{}", path.trim_start_matches(['/', '\\']));
            base.join(&rel)
                .map_err(|e| client_err(format!("`path` is not a valid path ({e})")))
        }
        (None, None) => Err(client_err("`url` (or `host` + `path`) is required")),
    }
}

fn method(config: &Value) -> Result<Method, String> {
    let m = string_field(config.get("method"), "method")?.unwrap_or_default();
    let m = m.trim().to_ascii_uppercase();
    match m.as_str() {
        "" | "GET" => Ok(Method::GET),
        "POST" => Ok(Method::POST),
        "PUT" => Ok(Method::PUT),
        "DELETE" => Ok(Method::DELETE),
        "PATCH" => Ok(Method::PATCH),
        "HEAD" => Ok(Method::HEAD),
        "OPTIONS" => Ok(Method::OPTIONS),
        _ => Err(client_err(format!(
            "unknown `method` {m:?} (GET, POST, PUT, DELETE, PATCH, HEAD or OPTIONS)"
        ))),
    }
}

fn header_value(value: &str, what: &str) -> Result<HeaderValue, String> {
    HeaderValue::from_str(value).map_err(|_| {
        client_err(format!(
            "{what} has an invalid value (control characters such as CR or LF are refused)"
        ))
    })
}

fn auth(config: &Value, headers: &mut HeaderMap) -> Result<Option<reqwest::Identity>, String> {
    let a = match config.get("auth") {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Object(a)) => a,
        Some(other) => {
            return Err(client_err(format!(
                "`auth` must be a map, got {}",
                type_name(other)
            )));
        }
    };
    if let Some(k) = a
        .keys()
        .find(|k| !["basic", "bearer", "mutual_tls"].contains(&k.as_str()))
    {
        return Err(client_err(format!(
            "`auth.{k}` is not supported (basic, bearer or mutual_tls)"
        )));
    }
    let bearer = string_field(a.get("bearer"), "auth.bearer")?.filter(|b| !b.is_empty());
    if let Some(token) = bearer {
        let mut v = header_value(&format!("Bearer {token}"), "`auth.bearer`")?;
        v.set_sensitive(true);
        headers.insert(AUTHORIZATION, v);
    } else {
        match a.get("basic") {
            None | Some(Value::Null) => {}
            Some(Value::Object(b)) => {
                let user = string_field(b.get("user"), "auth.basic.user")?.unwrap_or_default();
                let password =
                    string_field(b.get("password"), "auth.basic.password")?.unwrap_or_default();
                // µTask sends basic auth only when both are set
                if !user.is_empty() && !password.is_empty() {
                    use base64::Engine as _;
                    let token = base64::engine::general_purpose::STANDARD
                        .encode(format!("{user}:{password}"));
                    let mut v = header_value(&format!("Basic {token}"), "`auth.basic`")?;
                    v.set_sensitive(true);
                    headers.insert(AUTHORIZATION, v);
                }
            }
            Some(other) => {
                return Err(client_err(format!(
                    "`auth.basic` must be a map with `user` and `password`, got {}",
                    type_name(other)
                )));
            }
        }
    }
    match a.get("mutual_tls") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(m)) => {
            let cert = string_field(m.get("client_cert"), "auth.mutual_tls.client_cert")?
                .unwrap_or_default();
            let key = string_field(m.get("client_key"), "auth.mutual_tls.client_key")?
                .unwrap_or_default();
            if cert.trim().is_empty() || key.trim().is_empty() {
                return Err(client_err(
                    "`auth.mutual_tls` needs `client_cert` and `client_key` (PEM)",
                ));
            }
            reqwest::Identity::from_pem(format!("{cert}\n{key}").as_bytes())
                .map(Some)
                .map_err(|_| {
                    client_err("`auth.mutual_tls`: client_cert / client_key are not a valid PEM certificate and key")
                })
        }
        Some(other) => Err(client_err(format!(
            "`auth.mutual_tls` must be a map, got {}",
            type_name(other)
        ))),
    }
}

impl Plan {
    fn from_config(config: &Value) -> Result<Plan, String> {
        if !config.is_object() {
            return Err(client_err("the configuration must be a map"));
        }
        let method = method(config)?;
        let mut url = target_url(config)?;
        let params = pairs(config.get("query_parameters"), "query_parameters")?;
        if !params.is_empty() {
            let mut q = url.query_pairs_mut();
            for (k, v) in &params {
                q.append_pair(k, v);
            }
        }
        let mut headers = HeaderMap::new();
        headers.insert(
            reqwest::header::USER_AGENT,
            HeaderValue::from_static(concat!("mutask/", env!("CARGO_PKG_VERSION"))),
        );
        let identity = auth(config, &mut headers)?;
        for (name, value) in pairs(config.get("headers"), "headers")? {
            let header = HeaderName::from_bytes(name.as_bytes()).map_err(|_| {
                client_err(format!(
                    "header name {name:?} is not a valid HTTP header name"
                ))
            })?;
            let value = header_value(&value, &format!("header `{name}`"))?;
            headers.insert(header, value);
        }
        let body = match config.get("body") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.clone().into_bytes()),
            Some(v @ (Value::Object(_) | Value::Array(_))) => {
                let bytes = serde_json::to_vec(v)
                    .map_err(|e| client_err(format!("`body` cannot be encoded: {e}")))?;
                Some(bytes)
            }
            Some(v) => Some(v.to_string().into_bytes()),
        };
        if let Some(b) = &body
            && !b.is_empty()
            && !headers.contains_key(CONTENT_TYPE)
            && serde_json::from_slice::<serde::de::IgnoredAny>(b).is_ok()
        {
            headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        }
        let timeout = match string_field(config.get("timeout"), "timeout")?
            .filter(|t| !t.trim().is_empty())
        {
            None => DEFAULT_TIMEOUT,
            Some(t) => crate::template::model::parse_go_duration(&t)
                .map_err(|e| client_err(format!("`timeout`: {e}")))?,
        };
        if timeout.is_zero() {
            return Err(client_err("`timeout` must be greater than zero"));
        }
        let root_ca = match string_field(config.get("root_ca"), "root_ca")?
            .filter(|s| !s.trim().is_empty())
        {
            None => Vec::new(),
            Some(pem) => {
                let certs = reqwest::Certificate::from_pem_bundle(pem.as_bytes())
                    .map_err(|_| client_err("`root_ca` is not a valid PEM certificate"))?;
                if certs.is_empty() {
                    return Err(client_err("`root_ca` holds no PEM certificate"));
                }
                certs
            }
        };
        Ok(Plan {
            method,
            url,
            headers,
            body,
            timeout,
            follow_redirect: bool_field(config.get("follow_redirect"), "follow_redirect")?,
            insecure_skip_verify: bool_field(
                config.get("insecure_skip_verify"),
                "insecure_skip_verify",
            )?,
            root_ca,
            identity,
            trim_prefix: string_field(config.get("trim_prefix"), "trim_prefix")?
                .unwrap_or_default(),
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Execution
// ---------------------------------------------------------------------------------------------

/// reqwest is built without a default crypto provider (ring instead of aws-lc): install ring
/// once, or building a client panics. An already installed provider is kept.
pub(crate) fn install_crypto_provider() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// The URL as shown in messages: no user info, query or fragment.
fn shown(url: &Url) -> String {
    let mut u = url.clone();
    let _ = u.set_username("");
    let _ = u.set_password(None);
    u.set_query(None);
    u.set_fragment(None);
    u.to_string()
}

#[derive(Debug)]
struct TooManyRedirects;

impl std::fmt::Display for TooManyRedirects {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "more than {MAX_REDIRECTS} redirects")
    }
}

impl StdError for TooManyRedirects {}

fn build_client(plan: &Plan, policy: &Arc<NetworkPolicy>) -> Result<reqwest::Client, String> {
    install_crypto_provider();
    let redirect = if plan.follow_redirect {
        let policy = policy.clone();
        reqwest::redirect::Policy::custom(move |attempt| {
            if attempt.previous().len() >= MAX_REDIRECTS {
                return attempt.error(TooManyRedirects);
            }
            match check_literal(attempt.url(), &policy) {
                Ok(()) => attempt.follow(),
                Err(d) => attempt.error(d),
            }
        })
    } else {
        reqwest::redirect::Policy::none()
    };
    let mut b = reqwest::Client::builder()
        .no_proxy()
        .redirect(redirect)
        .timeout(plan.timeout)
        .dns_resolver(Arc::new(GuardedResolver(policy.clone())))
        .pool_max_idle_per_host(0);
    if plan.insecure_skip_verify {
        b = b.tls_danger_accept_invalid_certs(true);
    }
    if !plan.root_ca.is_empty() {
        b = b.tls_certs_merge(plan.root_ca.iter().cloned());
    }
    if let Some(id) = &plan.identity {
        b = b.identity(id.clone());
    }
    b.build()
        .map_err(|e| client_err(format!("cannot set up the client: {}", chain(&e))))
}

/// An error and its causes, one line.
fn chain(e: &(dyn StdError + 'static)) -> String {
    let mut parts = vec![e.to_string()];
    let mut cur = e.source();
    while let Some(s) = cur {
        let text = s.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        cur = s.source();
    }
    parts.join(": ")
}

fn find_in_chain<'a, T: StdError + 'static>(e: &'a (dyn StdError + 'static)) -> Option<&'a T> {
    let mut cur = Some(e);
    while let Some(err) = cur {
        if let Some(t) = err.downcast_ref::<T>() {
            return Some(t);
        }
        cur = err.source();
    }
    None
}

fn send_error(e: reqwest::Error, what: &str, timeout: Duration) -> ActionError {
    let e = e.without_url();
    if let Some(d) = find_in_chain::<Denied>(&e) {
        return ActionError::Client(format!("http: {what}: {d}"));
    }
    if e.is_timeout() {
        return ActionError::Server(format!(
            "http: {what}: timed out after {}",
            humanize(timeout)
        ));
    }
    if find_in_chain::<TooManyRedirects>(&e).is_some() {
        return ActionError::Server(format!("http: {what}: more than {MAX_REDIRECTS} redirects"));
    }
    ActionError::Server(format!("http: {what} failed: {}", chain(&e)))
}

fn humanize(d: Duration) -> String {
    if d.subsec_nanos() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{}ms", d.as_millis())
    }
}

/// `content-type` → `Content-Type` (Go's canonical header keys, as µTask reports them).
fn canonical_header(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut upper = true;
    for c in name.chars() {
        out.push(if upper {
            c.to_ascii_uppercase()
        } else {
            c.to_ascii_lowercase()
        });
        upper = c == '-';
    }
    out
}

fn metadata(status: u16, headers: &HeaderMap) -> Value {
    let mut hs = Map::new();
    let mut cookies = Map::new();
    for (name, value) in headers {
        let text = String::from_utf8_lossy(value.as_bytes()).into_owned();
        if name == reqwest::header::SET_COOKIE {
            let pair = text.split(';').next().unwrap_or_default();
            if let Some((k, v)) = pair.split_once('=') {
                let k = k.trim();
                if !k.is_empty() {
                    cookies.insert(k.to_string(), Value::String(v.trim().to_string()));
                }
            }
        }
        hs.entry(canonical_header(name.as_str()))
            .or_insert(Value::String(text));
    }
    json!({"HTTPStatus": status, "HTTPHeaders": hs, "HTTPCookies": cookies})
}

/// The response's media type says JSON (`application/json`, `application/problem+json`).
fn is_json_type(content_type: &str) -> bool {
    let media = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    media == "application/json" || (media.starts_with("application/") && media.ends_with("+json"))
}

/// The output for a body: decoded JSON or the text. `Err` when it says JSON but is not.
fn decode(content_type: Option<&str>, body: &[u8]) -> Result<Value, (Value, String)> {
    let text = || Value::String(String::from_utf8_lossy(body).into_owned());
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(text());
    }
    match content_type {
        Some(ct) if is_json_type(ct) => serde_json::from_slice(body).map_err(|e| {
            (
                text(),
                format!("the response says JSON but does not decode: {e}"),
            )
        }),
        Some(_) => Ok(text()),
        None => Ok(serde_json::from_slice(body).unwrap_or_else(|_| text())),
    }
}

fn snippet(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    let mut out: String = text.chars().take(ERROR_BODY_CHARS).collect();
    if out.len() < text.len() {
        out.push('…');
    }
    out
}

async fn read_body(resp: &mut reqwest::Response) -> Result<Vec<u8>, ReadError> {
    if resp
        .content_length()
        .is_some_and(|n| n > MAX_RESPONSE_BYTES as u64)
    {
        return Err(ReadError::TooLarge);
    }
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(ReadError::Http)? {
        if body.len() + chunk.len() > MAX_RESPONSE_BYTES {
            return Err(ReadError::TooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

enum ReadError {
    TooLarge,
    Http(reqwest::Error),
}

/// Runs one request under `policy`.
pub async fn execute(config: &Value, policy: &Arc<NetworkPolicy>) -> ActionResult {
    let plan = match Plan::from_config(config) {
        Ok(p) => p,
        Err(m) => return ActionResult::err(ActionError::Client(m)),
    };
    let what = format!("{} {}", plan.method, shown(&plan.url));
    if let Err(d) = check_literal(&plan.url, policy) {
        return ActionResult::err(ActionError::Client(format!("http: {what}: {d}")));
    }
    let client = match build_client(&plan, policy) {
        Ok(c) => c,
        Err(m) => return ActionResult::err(ActionError::Client(m)),
    };
    let mut req = client
        .request(plan.method.clone(), plan.url.clone())
        .headers(plan.headers.clone());
    if let Some(b) = &plan.body {
        req = req.body(b.clone());
    }
    let timeout = plan.timeout;
    let exchange = async {
        let mut resp = req
            .send()
            .await
            .map_err(|e| send_error(e, &what, timeout))?;
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let body = match read_body(&mut resp).await {
            Ok(b) => b,
            Err(ReadError::TooLarge) => {
                return Err(ActionError::Server(format!(
                    "http: {what}: response too large (over {} MiB)",
                    MAX_RESPONSE_BYTES / (1024 * 1024)
                )));
            }
            Err(ReadError::Http(e)) => return Err(send_error(e, &what, timeout)),
        };
        Ok((status, headers, body))
    };
    // reqwest's timeout covers the body too; this one is a second fence
    let (status, headers, body) =
        match tokio::time::timeout(timeout + Duration::from_millis(100), exchange).await {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => return ActionResult::err(e),
            Err(_) => {
                return ActionResult::err(ActionError::Server(format!(
                    "http: {what}: timed out after {}",
                    humanize(timeout)
                )));
            }
        };
    let meta = metadata(status, &headers);
    let body = body
        .strip_prefix(plan.trim_prefix.as_bytes())
        .unwrap_or(&body);
    let content_type = headers
        .get(CONTENT_TYPE)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
    let (output, decode_error) = match decode(content_type.as_deref(), body) {
        Ok(v) => (v, None),
        Err((v, m)) => (v, Some(m)),
    };
    let mut result = ActionResult::ok(Some(output), Some(meta));
    let reason = reqwest::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("");
    let answered = format!("http: {what} answered {status} {reason}");
    result.error = match status {
        200..=299 => decode_error.map(|m| ActionError::Server(format!("{answered}: {m}"))),
        400..=499 => Some(ActionError::Client(format!(
            "{answered}: {}",
            snippet(body)
        ))),
        300..=399 if !plan.follow_redirect => Some(ActionError::Server(format!(
            "{answered} (redirects are followed only with `follow_redirect: true`)"
        ))),
        _ => Some(ActionError::Server(format!(
            "{answered}: {}",
            snippet(body)
        ))),
    };
    result
}

/// The http action, with the network policy it enforces.
#[derive(Debug, Clone, Default)]
pub struct Http {
    policy: Arc<NetworkPolicy>,
}

impl Http {
    /// An http action enforcing `policy` ([`Registry::builtin`](super::Registry::builtin) uses
    /// the default policy).
    pub fn new(policy: NetworkPolicy) -> Http {
        Http {
            policy: Arc::new(policy),
        }
    }
}

impl Action for Http {
    fn name(&self) -> &'static str {
        "http"
    }

    fn run(&self, req: ActionRequest) -> BoxFuture<'_, ActionResult> {
        Box::pin(async move {
            let started = std::time::Instant::now();
            let r = execute(&req.config, &self.policy).await;
            // the request summary, for the step log: method, URL without query, outcome, time
            let what = Plan::from_config(&req.config)
                .map(|p| format!("{} {}", p.method, shown(&p.url)))
                .unwrap_or_else(|_| "request".into());
            let outcome = match (&r.metadata, &r.error) {
                (Some(m), _) if m.get("HTTPStatus").is_some() => {
                    format!("answered {}", m["HTTPStatus"])
                }
                (_, Some(e)) => format!("failed: {}", e.message()),
                _ => "done".into(),
            };
            req.log.line(
                super::log::Stream::Http,
                &format!("{what} {outcome} in {} ms", started.elapsed().as_millis()),
            );
            r
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn default_policy_rules() {
        let p = NetworkPolicy::default();
        assert_eq!(p.rule_for(ip("127.0.0.1")), Some("loopback"));
        assert_eq!(p.rule_for(ip("127.8.9.10")), Some("loopback"));
        assert_eq!(p.rule_for(ip("::1")), Some("loopback"));
        assert_eq!(p.rule_for(ip("::ffff:127.0.0.1")), Some("loopback"));
        assert_eq!(p.rule_for(ip("169.254.169.254")), Some("cloud metadata"));
        assert_eq!(p.rule_for(ip("fd00:ec2::254")), Some("cloud metadata"));
        assert_eq!(p.rule_for(ip("169.254.1.1")), Some("link-local"));
        assert_eq!(p.rule_for(ip("fe80::1")), Some("link-local"));
        assert_eq!(p.rule_for(ip("0.0.0.0")), Some("unspecified"));
        assert_eq!(p.rule_for(ip("0.1.2.3")), Some("unspecified"));
        assert_eq!(p.rule_for(ip("::")), Some("unspecified"));
        assert_eq!(p.rule_for(ip("10.1.2.3")), None);
        assert_eq!(p.rule_for(ip("192.168.1.1")), None);
        assert_eq!(p.rule_for(ip("8.8.8.8")), None);
        assert_eq!(p.rule_for(ip("2001:db8::1")), None);
        let strict = NetworkPolicy::default().deny_private(true);
        assert_eq!(strict.rule_for(ip("10.1.2.3")), Some("private"));
        assert_eq!(strict.rule_for(ip("172.31.0.1")), Some("private"));
        assert_eq!(strict.rule_for(ip("172.32.0.1")), None);
        assert_eq!(strict.rule_for(ip("fd12::1")), Some("private"));
    }

    #[test]
    fn allow_list_lifts_rules() {
        let p = NetworkPolicy::with_allow_list([
            "127.0.0.1",
            "10.0.0.0/8",
            "*.corp.example",
            "Localhost",
        ])
        .unwrap();
        assert!(p.check("127.0.0.1", ip("127.0.0.1")).is_ok());
        assert!(p.check("x", ip("127.0.0.2")).is_err());
        assert!(p.check("localhost", ip("::1")).is_ok());
        assert!(p.check("a.corp.example", ip("169.254.169.254")).is_ok());
        assert!(p.check("corp.example", ip("169.254.169.254")).is_err());
        assert!(p.check("evilcorp.example", ip("169.254.169.254")).is_err());
        let d = p.check("meta", ip("169.254.169.254")).unwrap_err();
        assert_eq!(d.rule, "cloud metadata");
        assert!(d.to_string().contains("`meta`"));
        assert!(NetworkPolicy::with_allow_list(["10.0.0.0/33"]).is_err());
        assert!(NetworkPolicy::with_allow_list(["bad host"]).is_err());
        let all = NetworkPolicy::with_allow_list(["0.0.0.0/0", "::/0"]).unwrap();
        assert!(all.check("x", ip("127.0.0.1")).is_ok());
        assert!(all.check("x", ip("::1")).is_ok());
    }

    #[test]
    fn cidr_edges() {
        let c = Cidr::parse("172.16.0.0/12").unwrap();
        assert!(c.contains(ip("172.31.255.255")));
        assert!(!c.contains(ip("172.32.0.0")));
        assert!(c.contains(ip("::ffff:172.16.0.1")));
        assert!(Cidr::parse("0.0.0.0/0").unwrap().contains(ip("1.2.3.4")));
        assert!(Cidr::parse("[::1]").unwrap().contains(ip("::1")));
        assert!(Cidr::parse("nope").is_none());
    }

    #[tokio::test]
    async fn resolve_filters_denied_addresses() {
        let p = NetworkPolicy::default();
        assert!(matches!(
            p.resolve("127.0.0.1", 80).await,
            Err(Refusal::Denied(Denied {
                rule: "loopback",
                ..
            }))
        ));
        assert!(matches!(
            p.resolve("[::1]", 80).await,
            Err(Refusal::Denied(_))
        ));
        assert!(matches!(
            p.resolve("localhost", 80).await,
            Err(Refusal::Denied(_))
        ));
        let allowed = NetworkPolicy::with_allow_list(["127.0.0.1"]).unwrap();
        let addrs = allowed.resolve("localhost", 8080).await.unwrap();
        assert!(!addrs.is_empty());
        assert!(
            addrs
                .iter()
                .all(|a| a.ip() == ip("127.0.0.1") && a.port() == 8080)
        );
    }

    #[test]
    fn configuration_errors_name_the_field() {
        let err = |v: Value| match Plan::from_config(&v) {
            Err(m) => m,
            Ok(_) => panic!("accepted {v}"),
        };
        assert!(err(json!({})).contains("`url`"));
        assert!(err(json!("x")).contains("configuration"));
        assert!(err(json!({"url": "ftp://x/"})).contains("http or https"));
        assert!(err(json!({"url": "http://x/", "host": "http://y"})).contains("conflicts"));
        assert!(err(json!({"url": "http://x/", "method": "BREW"})).contains("method"));
        assert!(err(json!({"url": "http://x/", "method": ["GET"]})).contains("`method`"));
        assert!(err(json!({"url": "http://x/", "timeout": "soon"})).contains("`timeout`"));
        assert!(err(json!({"url": "http://x/", "timeout": "0s"})).contains("`timeout`"));
        assert!(err(json!({"url": "http://x/", "headers": "x"})).contains("`headers`"));
        assert!(
            err(json!({"url": "http://x/", "headers": [{"value": "v"}]}))
                .contains("`headers[0].name`")
        );
        assert!(
            err(json!({"url": "http://x/", "headers": {"X-A": {"b": 1}}}))
                .contains("`headers.X-A`")
        );
        assert!(
            err(json!({"url": "http://x/", "headers": {"bad name": "v"}})).contains("header name")
        );
        assert!(
            err(json!({"url": "http://x/", "headers": {"X-A": "a\r\nX-Injected: 1"}}))
                .contains("CR or LF")
        );
        assert!(
            err(json!({"url": "http://x/", "follow_redirect": "maybe"}))
                .contains("`follow_redirect`")
        );
        assert!(
            err(json!({"url": "http://x/", "insecure_skip_verify": 3}))
                .contains("`insecure_skip_verify`")
        );
        assert!(err(json!({"url": "http://x/", "auth": "token"})).contains("`auth`"));
        assert!(err(json!({"url": "http://x/", "auth": {"digest": {}}})).contains("`auth.digest`"));
        assert!(
            err(json!({"url": "http://x/", "auth": {"bearer": "a\nb"}})).contains("`auth.bearer`")
        );
        assert!(
            err(json!({"url": "http://x/", "auth": {"basic": "u:p"}})).contains("`auth.basic`")
        );
        assert!(err(json!({"url": "http://x/", "root_ca": "not a cert"})).contains("`root_ca`"));
        assert!(
            err(json!({"url": "http://x/", "query_parameters": 5})).contains("`query_parameters`")
        );
        assert!(
            err(json!({"url": "http://x/", "auth": {"mutual_tls": {"client_cert": "x"}}}))
                .contains("mutual_tls")
        );
    }

    #[test]
    fn builds_the_request() {
        let p = Plan::from_config(&json!({
            "host": "https://user:pw@api.example.org:8443/ignored?q=1",
            "path": "//evil.example/v1/x?a=1",
            "method": "post",
            "query_parameters": [{"name": "a", "value": 2}, {"name": "b c", "value": "&="}],
            "headers": {"X-One": "1"},
            "auth": {"basic": {"user": "u", "password": "p"}},
            "body": {"k": [1, 2]},
            "timeout": "1.5s",
            "follow_redirect": "true",
        }))
        .unwrap();
        assert_eq!(p.method, Method::POST);
        assert_eq!(
            p.url.as_str(),
            "https://api.example.org:8443/evil.example/v1/x?a=1&a=2&b+c=%26%3D"
        );
        assert_eq!(p.headers["x-one"], "1");
        assert_eq!(p.headers[AUTHORIZATION], "Basic dTpw");
        assert_eq!(p.headers[CONTENT_TYPE], "application/json");
        assert_eq!(p.body.as_deref(), Some(&b"{\"k\":[1,2]}"[..]));
        assert_eq!(p.timeout, Duration::from_millis(1500));
        assert!(p.follow_redirect);
        // bearer wins over basic; a header replaces auth; text body: no content type
        let p = Plan::from_config(&json!({
            "url": "http://x/",
            "auth": {"bearer": "tok", "basic": {"user": "u", "password": "p"}},
            "body": "plain text",
        }))
        .unwrap();
        assert_eq!(p.headers[AUTHORIZATION], "Bearer tok");
        assert!(!p.headers.contains_key(CONTENT_TYPE));
        assert_eq!(p.method, Method::GET);
        assert_eq!(p.timeout, DEFAULT_TIMEOUT);
        let p = Plan::from_config(&json!({
            "url": "http://x/",
            "auth": {"bearer": "tok"},
            "headers": [{"name": "Authorization", "value": "Custom z"}, {"name": "Content-Type", "value": "text/csv"}],
            "body": "{\"a\":1}",
        }))
        .unwrap();
        assert_eq!(p.headers[AUTHORIZATION], "Custom z");
        assert_eq!(p.headers[CONTENT_TYPE], "text/csv");
        // a URL with CR/LF: the url parser drops them, nothing reaches the headers
        let p = Plan::from_config(&json!({"url": "http://x/a\r\nX-Injected: 1"})).unwrap();
        assert!(!p.url.as_str().contains('\n'));
    }

    #[test]
    fn decoding_and_metadata() {
        assert_eq!(
            decode(Some("application/json; charset=utf-8"), b"{\"a\":1}"),
            Ok(json!({"a": 1}))
        );
        assert_eq!(
            decode(Some("application/problem+json"), b"[1]"),
            Ok(json!([1]))
        );
        assert_eq!(
            decode(Some("text/plain"), b"{\"a\":1}"),
            Ok(json!("{\"a\":1}"))
        );
        assert_eq!(decode(None, b"{\"a\":1}"), Ok(json!({"a": 1})));
        assert_eq!(decode(None, b"hello"), Ok(json!("hello")));
        assert_eq!(decode(Some("application/json"), b""), Ok(json!("")));
        assert!(decode(Some("application/json"), b"{nope").is_err());
        let mut h = HeaderMap::new();
        h.append("content-type", HeaderValue::from_static("text/plain"));
        h.append("x-multi", HeaderValue::from_static("first"));
        h.append("x-multi", HeaderValue::from_static("second"));
        h.append(
            "set-cookie",
            HeaderValue::from_static("sid=abc; Path=/; HttpOnly"),
        );
        h.append("set-cookie", HeaderValue::from_static("theme=dark"));
        let m = metadata(201, &h);
        assert_eq!(m["HTTPStatus"], 201);
        assert_eq!(m["HTTPHeaders"]["Content-Type"], "text/plain");
        assert_eq!(m["HTTPHeaders"]["X-Multi"], "first");
        assert_eq!(m["HTTPCookies"], json!({"sid": "abc", "theme": "dark"}));
        assert_eq!(canonical_header("www-authenticate"), "Www-Authenticate");
    }

    #[test]
    fn shown_url_hides_credentials_and_query() {
        let u = Url::parse("https://user:secret@h.example/p?token=abc#f").unwrap();
        assert_eq!(shown(&u), "https://h.example/p");
    }
}
