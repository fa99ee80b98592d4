//! Inbound webhook authentication and input mapping, pure (no IO, time passed in).
//!
//! Kinds (karajo's):
//! - `github`: `X-Hub-Signature-256: sha256=<hex HMAC-SHA256(secret, body)>`, falling back to
//!   `X-Hub-Signature: sha1=<hex HMAC-SHA1>`; the delivery id is `X-GitHub-Delivery`.
//! - `sourcehut`: `X-Payload-Signature: <base64 ed25519 signature of body ‖ nonce>` with
//!   `X-Payload-Nonce`; the secret is sourcehut's base64 public key; the delivery id is the nonce.
//! - `hmac-sha256`: `<header>: <hex HMAC-SHA256(secret, payload)>` (an optional `sha256=`
//!   prefix is accepted), header default `X-Mutask-Sign`; the payload is the body, or
//!   `<timestamp>.<body>` when a timestamp header is configured; the delivery id is `X-Mutask-Id`
//!   when sent.
//!
//! With a timestamp header (unix seconds), a delivery outside the replay window is refused.
//! Without a sender delivery id, the hash of the signature stands for it, so a replayed request
//! (same body, same signature) is refused within the window. Comparisons are constant-time.

use std::collections::BTreeMap;

use base64::Engine as _;
use hmac::{KeyInit, Mac};
use serde_json::{Map, Value};
use sha2::Digest;

/// Why a delivery was refused (answered 401, nothing created).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("missing header {0}")]
    Missing(String),
    #[error("malformed header {0}")]
    Malformed(String),
    #[error("signature mismatch")]
    Mismatch,
    #[error("timestamp outside the replay window")]
    Stale,
}

/// How a webhook authenticates its deliveries.
#[derive(Debug, Clone)]
pub struct AuthSpec<'a> {
    pub kind: &'a str,
    /// HMAC key, or sourcehut's base64 public key.
    pub secret: &'a [u8],
    pub header: &'a str,
    pub timestamp_header: Option<&'a str>,
    pub replay_window_secs: i64,
}

/// Request headers, names lower-cased.
pub type Headers = BTreeMap<String, String>;

fn get<'h>(h: &'h Headers, name: &str) -> Result<&'h str, AuthError> {
    h.get(&name.to_ascii_lowercase())
        .map(|v| v.trim())
        .filter(|v| !v.is_empty())
        .ok_or_else(|| AuthError::Missing(name.to_string()))
}

fn unhex(name: &str, s: &str) -> Result<Vec<u8>, AuthError> {
    if !s.len().is_multiple_of(2) || s.len() > 256 {
        return Err(AuthError::Malformed(name.into()));
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2).unwrap_or("zz"), 16))
        .collect::<Result<_, _>>()
        .map_err(|_| AuthError::Malformed(name.into()))
}

fn check_hmac<M: Mac + KeyInit>(key: &[u8], payload: &[u8], sig: &[u8]) -> Result<(), AuthError> {
    let mut mac = <M as KeyInit>::new_from_slice(key).map_err(|_| AuthError::Mismatch)?;
    mac.update(payload);
    mac.verify_slice(sig).map_err(|_| AuthError::Mismatch)
}

/// Lower-case hex HMAC-SHA256 (for signing: notifications, examples, tests).
pub fn hmac_sha256_hex(key: &[u8], payload: &[u8]) -> String {
    let mut mac = <hmac::Hmac<sha2::Sha256> as KeyInit>::new_from_slice(key)
        .expect("HMAC takes keys of any length");
    mac.update(payload);
    mac.finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Checks a delivery; returns its delivery id (for replay protection).
pub fn verify(
    spec: &AuthSpec<'_>,
    headers: &Headers,
    body: &[u8],
    now_unix: i64,
) -> Result<String, AuthError> {
    match spec.kind {
        "github" => {
            let delivery = headers.get("x-github-delivery").cloned();
            let sig_hash;
            if let Ok(v) = get(headers, "X-Hub-Signature-256") {
                let hex = v
                    .strip_prefix("sha256=")
                    .ok_or_else(|| AuthError::Malformed("X-Hub-Signature-256".into()))?;
                let sig = unhex("X-Hub-Signature-256", hex)?;
                check_hmac::<hmac::Hmac<sha2::Sha256>>(spec.secret, body, &sig)?;
                sig_hash = sig;
            } else {
                let v = get(headers, "X-Hub-Signature")
                    .map_err(|_| AuthError::Missing("X-Hub-Signature-256".into()))?;
                let hex = v
                    .strip_prefix("sha1=")
                    .ok_or_else(|| AuthError::Malformed("X-Hub-Signature".into()))?;
                let sig = unhex("X-Hub-Signature", hex)?;
                check_hmac::<hmac::Hmac<sha1::Sha1>>(spec.secret, body, &sig)?;
                sig_hash = sig;
            }
            Ok(delivery.unwrap_or_else(|| digest_id(&sig_hash)))
        }
        "sourcehut" => {
            let sig = base64::engine::general_purpose::STANDARD
                .decode(get(headers, "X-Payload-Signature")?)
                .map_err(|_| AuthError::Malformed("X-Payload-Signature".into()))?;
            let nonce = get(headers, "X-Payload-Nonce")?;
            let key = base64::engine::general_purpose::STANDARD
                .decode(spec.secret)
                .map_err(|_| AuthError::Mismatch)?;
            let mut msg = body.to_vec();
            msg.extend_from_slice(nonce.as_bytes());
            ring::signature::UnparsedPublicKey::new(&ring::signature::ED25519, key)
                .verify(&msg, &sig)
                .map_err(|_| AuthError::Mismatch)?;
            Ok(format!("nonce:{nonce}"))
        }
        _ => {
            let mut payload = Vec::with_capacity(body.len() + 16);
            if let Some(th) = spec.timestamp_header {
                let ts = get(headers, th)?;
                let t: i64 = ts.parse().map_err(|_| AuthError::Malformed(th.into()))?;
                if now_unix.abs_diff(t) > spec.replay_window_secs.unsigned_abs() {
                    return Err(AuthError::Stale);
                }
                payload.extend_from_slice(ts.as_bytes());
                payload.push(b'.');
            }
            payload.extend_from_slice(body);
            let v = get(headers, spec.header)?;
            let hex = v.strip_prefix("sha256=").unwrap_or(v);
            let sig = unhex(spec.header, hex)?;
            check_hmac::<hmac::Hmac<sha2::Sha256>>(spec.secret, &payload, &sig)?;
            Ok(headers
                .get("x-mutask-id")
                .cloned()
                .unwrap_or_else(|| digest_id(&sig)))
        }
    }
}

fn digest_id(sig: &[u8]) -> String {
    let d = sha2::Sha256::digest(sig);
    format!(
        "sig:{}",
        d.iter().map(|b| format!("{b:02x}")).collect::<String>()
    )
}

/// The body as JSON: a JSON document, or a form (`a=1&b=2` → strings).
pub fn body_json(content_type: &str, body: &[u8]) -> Result<Value, String> {
    let ct = content_type.split(';').next().unwrap_or("").trim();
    if ct.eq_ignore_ascii_case("application/x-www-form-urlencoded") {
        let m: Map<String, Value> = url::form_urlencoded::parse(body)
            .map(|(k, v)| (k.into_owned(), Value::String(v.into_owned())))
            .collect();
        // GitHub's form deliveries carry the JSON document in `payload`
        if let Some(Value::String(p)) = m.get("payload")
            && let Ok(v) = serde_json::from_str::<Value>(p)
        {
            return Ok(v);
        }
        return Ok(Value::Object(m));
    }
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Value::Object(Map::new()));
    }
    if ["application/x-yaml", "application/yaml", "text/yaml"]
        .iter()
        .any(|y| ct.eq_ignore_ascii_case(y))
    {
        let text = std::str::from_utf8(body).map_err(|_| "the body is not UTF-8".to_string())?;
        return crate::yaml::from_str(text).map_err(|e| format!("the body is not YAML: {e}"));
    }
    serde_json::from_slice(body).map_err(|e| format!("the body is not JSON: {e}"))
}

/// Task inputs from a body: each input maps to a JSON pointer into the body (`/repository/name`),
/// `$body` (the whole body), or a literal value (anything else).
pub fn map_inputs(map: &Map<String, Value>, body: &Value) -> Map<String, Value> {
    map.iter()
        .filter_map(|(name, how)| {
            let v = match how {
                Value::String(p) if p == "$body" => Some(body.clone()),
                Value::String(p) if p.starts_with('/') => body.pointer(p).cloned(),
                other => Some(other.clone()),
            };
            v.map(|v| (name.clone(), v))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(pairs: &[(&str, &str)]) -> Headers {
        pairs
            .iter()
            .map(|(k, v)| (k.to_ascii_lowercase(), v.to_string()))
            .collect()
    }

    fn spec<'a>(kind: &'a str, secret: &'a [u8]) -> AuthSpec<'a> {
        AuthSpec {
            kind,
            secret,
            header: "X-Mutask-Sign",
            timestamp_header: None,
            replay_window_secs: 300,
        }
    }

    #[test]
    fn github_sha256_then_sha1() {
        let body = br#"{"ref":"refs/heads/main"}"#;
        // GitHub's documented example key/payload pair computed with the same primitive
        let sig = hmac_sha256_hex(b"It's a Secret to Everybody", b"Hello, World!");
        assert_eq!(
            sig,
            "757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
        );
        let good = hmac_sha256_hex(b"s3cret", body);
        let ok = verify(
            &spec("github", b"s3cret"),
            &h(&[
                ("X-Hub-Signature-256", &format!("sha256={good}")),
                ("X-GitHub-Delivery", "d-1"),
            ]),
            body,
            0,
        );
        assert_eq!(ok, Ok("d-1".to_string()));
        let forged = verify(
            &spec("github", b"other"),
            &h(&[("X-Hub-Signature-256", &format!("sha256={good}"))]),
            body,
            0,
        );
        assert_eq!(forged, Err(AuthError::Mismatch));
        // sha1 fallback
        let mut mac = <hmac::Hmac<sha1::Sha1> as KeyInit>::new_from_slice(b"s3cret").unwrap();
        mac.update(body);
        let s1: String = mac
            .finalize()
            .into_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert!(
            verify(
                &spec("github", b"s3cret"),
                &h(&[("X-Hub-Signature", &format!("sha1={s1}"))]),
                body,
                0
            )
            .is_ok()
        );
        assert_eq!(
            verify(&spec("github", b"s3cret"), &h(&[]), body, 0),
            Err(AuthError::Missing("X-Hub-Signature-256".into()))
        );
        assert!(matches!(
            verify(
                &spec("github", b"s3cret"),
                &h(&[("X-Hub-Signature-256", "sha256=zz")]),
                body,
                0
            ),
            Err(AuthError::Malformed(_))
        ));
    }

    #[test]
    fn hmac_with_timestamp_and_replay_window() {
        let mut s = spec("hmac-sha256", b"k");
        s.timestamp_header = Some("X-Mutask-Timestamp");
        let body = b"{}";
        let sig = hmac_sha256_hex(b"k", b"1000.{}");
        let headers = h(&[("X-Mutask-Sign", &sig), ("X-Mutask-Timestamp", "1000")]);
        assert!(verify(&s, &headers, body, 1100).is_ok());
        assert_eq!(verify(&s, &headers, body, 2000), Err(AuthError::Stale));
        // extreme timestamps are stale, not an arithmetic overflow
        for ts in ["-9223372036854775808", "9223372036854775807"] {
            let far = h(&[("X-Mutask-Sign", &sig), ("X-Mutask-Timestamp", ts)]);
            assert_eq!(verify(&s, &far, body, 1100), Err(AuthError::Stale));
        }
        // the timestamp is signed: changing it breaks the signature
        let moved = h(&[("X-Mutask-Sign", &sig), ("X-Mutask-Timestamp", "1001")]);
        assert_eq!(verify(&s, &moved, body, 1100), Err(AuthError::Mismatch));
        // without a sender id, the signature's hash is the delivery id
        let plain = spec("hmac-sha256", b"k");
        let sig = hmac_sha256_hex(b"k", body);
        let id = verify(
            &plain,
            &h(&[("X-Mutask-Sign", &format!("sha256={sig}"))]),
            body,
            0,
        )
        .unwrap();
        assert!(id.starts_with("sig:"));
    }

    #[test]
    fn sourcehut_ed25519() {
        use ring::signature::KeyPair;
        let rng = ring::rand::SystemRandom::new();
        let pkcs8 = ring::signature::Ed25519KeyPair::generate_pkcs8(&rng).unwrap();
        let pair = ring::signature::Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap();
        let public = base64::engine::general_purpose::STANDARD.encode(pair.public_key().as_ref());
        let body = b"{\"a\":1}";
        let sig = pair.sign(b"{\"a\":1}n0nce");
        let sig = base64::engine::general_purpose::STANDARD.encode(sig.as_ref());
        let s = spec("sourcehut", public.as_bytes());
        let ok = verify(
            &s,
            &h(&[("X-Payload-Signature", &sig), ("X-Payload-Nonce", "n0nce")]),
            body,
            0,
        );
        assert_eq!(ok, Ok("nonce:n0nce".to_string()));
        let bad = verify(
            &s,
            &h(&[("X-Payload-Signature", &sig), ("X-Payload-Nonce", "other")]),
            body,
            0,
        );
        assert_eq!(bad, Err(AuthError::Mismatch));
    }

    #[test]
    fn bodies_and_mappings() {
        let v = body_json("application/x-www-form-urlencoded", b"a=1&b=x%20y").unwrap();
        assert_eq!(v, serde_json::json!({"a": "1", "b": "x y"}));
        let v = body_json(
            "application/x-www-form-urlencoded",
            b"payload=%7B%22ref%22%3A%22main%22%7D",
        )
        .unwrap();
        assert_eq!(v["ref"], "main");
        assert!(body_json("application/json", b"{").is_err());
        let body = serde_json::json!({"repository": {"full_name": "o/r"}, "ref": "main"});
        let map: Map<String, Value> = serde_json::from_value(serde_json::json!({
            "repo": "/repository/full_name", "branch": "/ref", "missing": "/nope",
            "fixed": "literal", "all": "$body"
        }))
        .unwrap();
        let got = map_inputs(&map, &body);
        assert_eq!(got["repo"], "o/r");
        assert_eq!(got["branch"], "main");
        assert!(!got.contains_key("missing"));
        assert_eq!(got["fixed"], "literal");
        assert_eq!(got["all"], body);
    }
}
