//! # `ping` — check that a host answers, with TCP connections
//!
//! µTask's `ping` sends ICMP echo requests, which needs raw sockets: root, `CAP_NET_RAW`, or a
//! `net.ipv4.ping_group_range` sysctl covering the service's group — none of which a service
//! should need, and which containers often forbid. mutask's `ping` measures **TCP connects**
//! instead: each probe opens a connection to `hostname:port` and closes it at once; the time to
//! establish it is the round-trip time. A probe is received when the connection is established,
//! lost when it is refused (nothing listens on the port), unreachable or past `timeout`. Choose
//! a port the host serves (22 for SSH, 443 for HTTPS).
//!
//! | field | type | meaning |
//! |---|---|---|
//! | `hostname` | string | host name or IP address (required) |
//! | `port` | number or string | TCP port, default `80` |
//! | `count` | number or string | probes to send, default `1` (as µTask), at most 100 |
//! | `interval_second` | number or string | seconds between probes, default `1`, at most 60 (fractions allowed) |
//! | `timeout` | duration | longest wait for one probe, default `5s`, at most `1m` |
//!
//! The host is resolved once, through the same network policy as the `http` action (loopback,
//! link-local, cloud metadata and unspecified addresses are refused unless the operator allows
//! them: CLIENT_ERROR naming the host and the rule); the first allowed address is probed.
//!
//! **Output** (µTask's fields, times in milliseconds): `packets_sent`, `packets_received`,
//! `packet_loss` (percent), `ip_addr`, `addr` (the hostname), `port`, `rtts` (list),
//! `min_rtt`, `max_rtt`, `avg_rtt`, `std_dev_rtt`. **Metadata**: the parameters used.
//! At least one probe received → DONE; all lost, or the name does not resolve → SERVER_ERROR
//! (the output is kept); a bad configuration → CLIENT_ERROR naming the field.
//!
//! ```yaml
//! action:
//!   type: ping
//!   configuration:
//!     hostname: "{{ input.server }}"
//!     port: 22
//!     count: "3"
//!     interval_second: "1"
//! ```

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::http::{NetworkPolicy, Refusal};
use super::{Action, ActionError, ActionRequest, ActionResult, BoxFuture};

/// Port probed when the step names none.
pub const DEFAULT_PORT: u16 = 80;
/// Probes sent when the step sets no `count` (µTask: 1).
pub const DEFAULT_COUNT: u32 = 1;
/// Most probes one step may send.
pub const MAX_COUNT: u32 = 100;
/// Longest wait for one probe when the step sets no `timeout`.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

/// What one ping step does, validated.
#[derive(Debug, Clone, PartialEq)]
struct Params {
    hostname: String,
    port: u16,
    count: u32,
    interval: Duration,
    timeout: Duration,
}

/// A scalar field as text (numbers and booleans stringified); `None` when absent, null or "".
fn text(config: &Value, field: &str) -> Result<Option<String>, String> {
    match config.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.trim().to_string())),
        Some(Value::Number(n)) => Ok(Some(n.to_string())),
        Some(_) => Err(format!("ping: `{field}` must be a string or a number")),
    }
}

fn params(config: &Value) -> Result<Params, String> {
    if !config.is_object() {
        return Err("ping: the configuration must be a map".into());
    }
    let hostname = text(config, "hostname")?.ok_or("ping: `hostname` is required")?;
    let port = match text(config, "port")? {
        None => DEFAULT_PORT,
        Some(p) => p
            .parse::<u16>()
            .ok()
            .filter(|p| *p > 0)
            .ok_or_else(|| format!("ping: `port` must be a TCP port (1-65535), got {p:?}"))?,
    };
    let count = match text(config, "count")? {
        None => DEFAULT_COUNT,
        Some(c) => c
            .parse::<u32>()
            .ok()
            .filter(|c| (1..=MAX_COUNT).contains(c))
            .ok_or_else(|| format!("ping: `count` must be 1 to {MAX_COUNT}, got {c:?}"))?,
    };
    let interval = match text(config, "interval_second")? {
        None => Duration::from_secs(1),
        Some(i) => i
            .parse::<f64>()
            .ok()
            .filter(|i| (0.0..=60.0).contains(i))
            .map(Duration::from_secs_f64)
            .ok_or_else(|| {
                format!(
                    "ping: `interval_second` must be a number of seconds from 0 to 60, got {i:?}"
                )
            })?,
    };
    let timeout = match text(config, "timeout")? {
        None => DEFAULT_TIMEOUT,
        Some(t) => crate::template::model::parse_go_duration(&t)
            .ok()
            .filter(|d| !d.is_zero() && *d <= Duration::from_secs(60))
            .ok_or_else(|| {
                format!("ping: `timeout` must be a duration above 0 and at most 1m, got {t:?}")
            })?,
    };
    Ok(Params {
        hostname,
        port,
        count,
        interval,
        timeout,
    })
}

/// Milliseconds, rounded to the microsecond.
fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e6).round() / 1e3
}

/// µTask's statistics over the round-trip times of the received probes.
fn stats(p: &Params, ip: &str, sent: u32, rtts: &[Duration]) -> Value {
    let received = rtts.len() as u32;
    let loss = if sent == 0 {
        0.0
    } else {
        f64::from(sent - received) * 100.0 / f64::from(sent)
    };
    let (min, max, avg, std_dev) = if rtts.is_empty() {
        (0.0, 0.0, 0.0, 0.0)
    } else {
        let v: Vec<f64> = rtts.iter().map(|d| d.as_secs_f64()).collect();
        let n = v.len() as f64;
        let avg = v.iter().sum::<f64>() / n;
        let var = v.iter().map(|x| (x - avg).powi(2)).sum::<f64>() / n;
        let min = v.iter().copied().fold(f64::INFINITY, f64::min);
        let max = v.iter().copied().fold(0.0, f64::max);
        let to_ms = |s: f64| (s * 1e6).round() / 1e3;
        (to_ms(min), to_ms(max), to_ms(avg), to_ms(var.sqrt()))
    };
    json!({
        "packets_sent": sent,
        "packets_received": received,
        "packet_loss": loss,
        "ip_addr": ip,
        "addr": p.hostname,
        "port": p.port,
        "rtts": rtts.iter().map(|d| ms(*d)).collect::<Vec<_>>(),
        "min_rtt": min,
        "max_rtt": max,
        "avg_rtt": avg,
        "std_dev_rtt": std_dev,
    })
}

/// Runs one ping step under `policy`.
pub async fn execute(config: &Value, policy: &NetworkPolicy) -> ActionResult {
    let p = match params(config) {
        Ok(p) => p,
        Err(m) => return ActionResult::err(ActionError::Client(m)),
    };
    let metadata = json!({
        "hostname": p.hostname,
        "port": p.port,
        "count": p.count,
        "interval_second": p.interval.as_secs_f64(),
        "timeout_ms": p.timeout.as_millis() as u64,
    });
    let addr = match policy.resolve(&p.hostname, p.port).await {
        Ok(addrs) => match addrs.into_iter().next() {
            Some(a) => a,
            None => {
                return ActionResult {
                    metadata: Some(metadata),
                    ..ActionResult::err(ActionError::Server(format!(
                        "ping: `{}` has no address",
                        p.hostname
                    )))
                };
            }
        },
        Err(Refusal::Denied(d)) => {
            return ActionResult {
                metadata: Some(metadata),
                ..ActionResult::err(ActionError::Client(format!("ping: {d}")))
            };
        }
        Err(Refusal::Lookup(m)) => {
            return ActionResult {
                metadata: Some(metadata),
                ..ActionResult::err(ActionError::Server(format!("ping: {m}")))
            };
        }
    };
    let mut rtts = Vec::new();
    let mut last_error = String::new();
    for i in 0..p.count {
        if i > 0 {
            tokio::time::sleep(p.interval).await;
        }
        let started = Instant::now();
        match tokio::time::timeout(p.timeout, tokio::net::TcpStream::connect(addr)).await {
            Ok(Ok(stream)) => {
                rtts.push(started.elapsed());
                drop(stream);
            }
            Ok(Err(e)) => last_error = e.to_string(),
            Err(_) => last_error = format!("no answer within {}ms", p.timeout.as_millis()),
        }
    }
    let output = stats(&p, &addr.ip().to_string(), p.count, &rtts);
    let mut result = ActionResult::ok(Some(output), Some(metadata));
    if rtts.is_empty() {
        result.error = Some(ActionError::Server(format!(
            "ping: {}:{} ({}) did not answer: {} of {} probes lost ({last_error})",
            p.hostname,
            p.port,
            addr.ip(),
            p.count,
            p.count
        )));
    }
    result
}

/// The ping action, with the network policy it enforces.
#[derive(Debug, Clone, Default)]
pub struct Ping {
    policy: Arc<NetworkPolicy>,
}

impl Ping {
    /// A ping action enforcing `policy` ([`Registry::builtin`](super::Registry::builtin) uses
    /// the default policy).
    pub fn new(policy: NetworkPolicy) -> Ping {
        Ping {
            policy: Arc::new(policy),
        }
    }
}

impl Action for Ping {
    fn name(&self) -> &'static str {
        "ping"
    }

    fn run(&self, req: ActionRequest) -> BoxFuture<'_, ActionResult> {
        Box::pin(async move { execute(&req.config, &self.policy).await })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_and_defaults() {
        let p = params(&json!({"hostname": "h"})).unwrap();
        assert_eq!(
            p,
            Params {
                hostname: "h".into(),
                port: 80,
                count: 1,
                interval: Duration::from_secs(1),
                timeout: DEFAULT_TIMEOUT,
            }
        );
        let p = params(&json!({"hostname": "h", "port": "22", "count": 3, "interval_second": "0.5", "timeout": "200ms"}))
            .unwrap();
        assert_eq!((p.port, p.count), (22, 3));
        assert_eq!(p.interval, Duration::from_millis(500));
        assert_eq!(p.timeout, Duration::from_millis(200));
        let err = |v: Value| params(&v).unwrap_err();
        assert!(err(json!({})).contains("`hostname`"));
        assert!(err(json!({"hostname": ["h"]})).contains("`hostname`"));
        assert!(err(json!({"hostname": "h", "port": 0})).contains("`port`"));
        assert!(err(json!({"hostname": "h", "port": "70000"})).contains("`port`"));
        assert!(err(json!({"hostname": "h", "count": "0"})).contains("`count`"));
        assert!(err(json!({"hostname": "h", "count": 101})).contains("`count`"));
        assert!(err(json!({"hostname": "h", "count": "x"})).contains("`count`"));
        assert!(err(json!({"hostname": "h", "interval_second": -1})).contains("`interval_second`"));
        assert!(
            err(json!({"hostname": "h", "interval_second": "NaN"})).contains("`interval_second`")
        );
        assert!(err(json!({"hostname": "h", "timeout": "2h"})).contains("`timeout`"));
        assert!(err(json!({"hostname": "h", "timeout": {}})).contains("`timeout`"));
    }

    #[test]
    fn statistics() {
        let p = params(&json!({"hostname": "h", "count": 4})).unwrap();
        let rtts = [Duration::from_millis(1), Duration::from_millis(3)];
        let s = stats(&p, "192.0.2.1", 4, &rtts);
        assert_eq!(s["packets_sent"], 4);
        assert_eq!(s["packets_received"], 2);
        assert_eq!(s["packet_loss"], 50.0);
        assert_eq!(s["rtts"], json!([1.0, 3.0]));
        assert_eq!(s["min_rtt"], 1.0);
        assert_eq!(s["max_rtt"], 3.0);
        assert_eq!(s["avg_rtt"], 2.0);
        assert_eq!(s["std_dev_rtt"], 1.0);
        let s = stats(&p, "192.0.2.1", 4, &[]);
        assert_eq!(s["packet_loss"], 100.0);
        assert_eq!(s["avg_rtt"], 0.0);
    }
}
