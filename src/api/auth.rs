//! Authentication: who is calling.
//!
//! Sources, in order: the `x-remote-user` / `x-remote-groups` headers, accepted **only** when the
//! peer address is in `MUTASK_TRUSTED_PROXIES` (µTask trusts anyone; mutask does not), then
//! `Authorization: Bearer mtk_…` API tokens (created by admins, stored as SHA-256, revocable),
//! then HTTP Basic against `MUTASK_BASIC_AUTH` (plain text compared in constant time, argon2 and
//! bcrypt hashes verified off the async runtime; a successful hash check is remembered for five
//! minutes as a SHA-256 of the password, so polling clients do not pay argon2 on every request).
//! No credentials → 401 with `WWW-Authenticate`. Admins are `MUTASK_ADMIN_USERNAMES`.
//!
//! Failed logins (wrong password, unknown user, bad or revoked token) are counted per client
//! address; past `MUTASK_LOGIN_FAILURE_LIMIT` in a minute that address gets 429 with
//! `Retry-After` — without its credentials being checked — until the minute is over.

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, FromRef, FromRequestParts};
use axum::http::request::Parts;
use base64::Engine as _;
use subtle::ConstantTimeEq;

use crate::config::{BasicAuthUser, IpRange, PasswordCheck};
use crate::store::{self, Store};

use super::error::ApiError;

/// The authenticated caller of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub username: String,
    pub groups: Vec<String>,
    pub is_admin: bool,
}

impl Caller {
    /// True when the caller is named in `users` or belongs to one of `groups`.
    pub fn is_in(&self, users: &[String], groups: &[String]) -> bool {
        users.contains(&self.username) || self.groups.iter().any(|g| groups.contains(g))
    }
}

/// Authentication settings and state.
#[derive(Default)]
pub struct Auth {
    pub users: Vec<BasicAuthUser>,
    pub trusted_proxies: Vec<IpRange>,
    pub admins: HashSet<String>,
    /// Where API tokens are looked up (`None`: bearer tokens are refused).
    pub tokens: Option<Store>,
    pub limiter: LoginLimiter,
    /// user → (SHA-256 of a password whose hash check passed, when); starts empty.
    pub verified: Mutex<HashMap<String, ([u8; 32], Instant)>>,
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Auth")
            .field("users", &self.users.len())
            .field("trusted_proxies", &self.trusted_proxies)
            .field("admins", &self.admins)
            .field("tokens", &self.tokens.is_some())
            .field("limiter", &self.limiter)
            .finish_non_exhaustive()
    }
}

/// How long a successful argon2/bcrypt check is remembered.
const VERIFIED_TTL: Duration = Duration::from_secs(300);

/// Prefix of API tokens: `mtk_<id as 32 hex digits>_<secret>`.
pub const TOKEN_PREFIX: &str = "mtk_";

/// Counts failed logins per client address over a fixed window.
#[derive(Debug)]
pub struct LoginLimiter {
    /// Failures allowed per window (0: no limit).
    limit: u32,
    window: Duration,
    seen: Mutex<HashMap<IpAddr, (Instant, u32)>>,
}

impl Default for LoginLimiter {
    fn default() -> Self {
        LoginLimiter::new(10, Duration::from_secs(60))
    }
}

impl LoginLimiter {
    pub fn new(limit: u32, window: Duration) -> LoginLimiter {
        LoginLimiter {
            limit,
            window,
            seen: Mutex::new(HashMap::new()),
        }
    }

    /// `Err(seconds to wait)` while `ip` is over the limit.
    pub fn check(&self, ip: IpAddr, now: Instant) -> Result<(), u64> {
        if self.limit == 0 {
            return Ok(());
        }
        let seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        match seen.get(&ip) {
            Some((start, n)) if *n >= self.limit && now < *start + self.window => {
                Err((*start + self.window - now).as_secs().max(1))
            }
            _ => Ok(()),
        }
    }

    /// Records a failed login from `ip`.
    pub fn failed(&self, ip: IpAddr, now: Instant) {
        if self.limit == 0 {
            return;
        }
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        if seen.len() > 100_000 {
            let window = self.window;
            seen.retain(|_, (start, _)| now < *start + window);
        }
        let entry = seen.entry(ip).or_insert((now, 0));
        if now >= entry.0 + self.window {
            *entry = (now, 0);
        }
        entry.1 = entry.1.saturating_add(1);
    }
}

fn sha256(data: &[u8]) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(data).into()
}

/// A new API token for `id`: (token text to hand out once, SHA-256 of its secret to store).
pub fn new_token(id: uuid::Uuid) -> Result<(String, [u8; 32]), getrandom::Error> {
    let mut b = [0u8; 32];
    getrandom::fill(&mut b)?;
    let secret = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
    let hash = sha256(secret.as_bytes());
    Ok((format!("{TOKEN_PREFIX}{}_{secret}", id.simple()), hash))
}

/// Splits `mtk_<id>_<secret>`; `None` when it is not shaped like a token.
fn parse_token(token: &str) -> Option<(uuid::Uuid, &str)> {
    let (id, secret) = token.strip_prefix(TOKEN_PREFIX)?.split_once('_')?;
    if id.len() != 32 || secret.is_empty() {
        return None;
    }
    Some((id.parse().ok()?, secret))
}

fn header<'a>(parts: &'a Parts, name: &str) -> Option<&'a str> {
    parts
        .headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
}

impl Auth {
    fn peer_trusted(&self, peer: Option<IpAddr>) -> bool {
        peer.is_some_and(|ip| self.trusted_proxies.iter().any(|r| r.contains(ip)))
    }

    fn caller(&self, username: String, groups: Vec<String>) -> Caller {
        let is_admin = self.admins.contains(&username);
        Caller {
            username,
            groups,
            is_admin,
        }
    }

    /// Authenticates a request.
    pub async fn authenticate(&self, parts: &Parts) -> Result<Caller, ApiError> {
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip());
        if let Some(user) = header(parts, "x-remote-user") {
            if self.peer_trusted(peer) {
                let groups = header(parts, "x-remote-groups")
                    .map(|g| {
                        g.split(',')
                            .map(str::trim)
                            .filter(|s| !s.is_empty())
                            .map(String::from)
                            .collect()
                    })
                    .unwrap_or_default();
                return Ok(self.caller(user.to_string(), groups));
            }
            tracing::debug!(?peer, "ignoring x-remote-user from an untrusted peer");
        }
        let Some(authz) = header(parts, "authorization") else {
            return Err(ApiError::Unauthorized);
        };
        let now = Instant::now();
        if let Some(ip) = peer {
            self.limiter
                .check(ip, now)
                .map_err(|retry_after| ApiError::TooManyRequests { retry_after })?;
        }
        let result = self.check_credentials(authz).await;
        if result.is_err()
            && let Some(ip) = peer
        {
            self.limiter.failed(ip, now);
            tracing::info!(%ip, "failed login");
        }
        result
    }

    async fn check_credentials(&self, authz: &str) -> Result<Caller, ApiError> {
        let (scheme, value) = authz.split_once(' ').ok_or(ApiError::Unauthorized)?;
        let value = value.trim();
        if scheme.eq_ignore_ascii_case("bearer") {
            return self.check_token(value).await;
        }
        if !scheme.eq_ignore_ascii_case("basic") {
            return Err(ApiError::Unauthorized);
        }
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(value)
            .ok()
            .and_then(|d| String::from_utf8(d).ok())
            .ok_or(ApiError::Unauthorized)?;
        let (user, password) = decoded.split_once(':').ok_or(ApiError::Unauthorized)?;
        let Some(entry) = self.users.iter().find(|u| u.username == user) else {
            return Err(ApiError::Unauthorized);
        };
        let hashed = !matches!(entry.secret, PasswordCheck::Plain(_));
        let digest = sha256(password.as_bytes());
        if hashed && self.recently_verified(user, &digest) {
            return Ok(self.caller(user.to_string(), Vec::new()));
        }
        if verify(&entry.secret, password).await {
            if hashed {
                let mut cache = self.verified.lock().unwrap_or_else(|p| p.into_inner());
                cache.insert(user.to_string(), (digest, Instant::now()));
            }
            Ok(self.caller(user.to_string(), Vec::new()))
        } else {
            Err(ApiError::Unauthorized)
        }
    }

    fn recently_verified(&self, user: &str, digest: &[u8; 32]) -> bool {
        let cache = self.verified.lock().unwrap_or_else(|p| p.into_inner());
        cache.get(user).is_some_and(|(known, at)| {
            at.elapsed() < VERIFIED_TTL && bool::from(known.as_slice().ct_eq(digest.as_slice()))
        })
    }

    async fn check_token(&self, token: &str) -> Result<Caller, ApiError> {
        let (Some(tokens), Some((id, secret))) = (&self.tokens, parse_token(token)) else {
            return Err(ApiError::Unauthorized);
        };
        let Some(found) = store::token::usable(tokens, id).await? else {
            return Err(ApiError::Unauthorized);
        };
        let digest = sha256(secret.as_bytes());
        if !bool::from(found.secret_hash.as_slice().ct_eq(digest.as_slice())) {
            return Err(ApiError::Unauthorized);
        }
        if let Err(e) = store::token::touch(tokens, id).await {
            tracing::warn!(error = %e, token = %id, "recording a token use failed");
        }
        Ok(self.caller(found.record.username, found.record.groups))
    }
}

/// Checks a password; hashes are verified on a blocking thread.
pub async fn verify(check: &PasswordCheck, password: &str) -> bool {
    match check {
        PasswordCheck::Plain(expected) => {
            // constant time for equal lengths; the length itself is not secret enough to hide
            let (a, b) = (expected.as_bytes(), password.as_bytes());
            a.len() == b.len() && bool::from(a.ct_eq(b))
        }
        PasswordCheck::Argon2(hash) => {
            let (hash, password) = (hash.clone(), password.to_string());
            tokio::task::spawn_blocking(move || {
                use argon2::PasswordVerifier;
                argon2::PasswordHash::new(&hash)
                    .map(|h| {
                        argon2::Argon2::default()
                            .verify_password(password.as_bytes(), &h)
                            .is_ok()
                    })
                    .unwrap_or(false)
            })
            .await
            .unwrap_or(false)
        }
        PasswordCheck::Bcrypt(hash) => {
            let (hash, password) = (hash.clone(), password.to_string());
            tokio::task::spawn_blocking(move || bcrypt::verify(password, &hash).unwrap_or(false))
                .await
                .unwrap_or(false)
        }
    }
}

impl<S> FromRequestParts<S> for Caller
where
    S: Send + Sync,
    Arc<Auth>: FromRef<S>,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let auth = Arc::<Auth>::from_ref(state);
        auth.authenticate(parts).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::Request;

    fn parts(headers: &[(&str, &str)], peer: Option<&str>) -> Parts {
        let mut b = Request::builder().uri("/");
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        let (mut parts, _) = b.body(()).unwrap().into_parts();
        if let Some(p) = peer {
            parts
                .extensions
                .insert(ConnectInfo(p.parse::<SocketAddr>().unwrap()));
        }
        parts
    }

    fn basic(user: &str, pw: &str) -> String {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pw}"))
        )
    }

    fn auth() -> Auth {
        let argon = {
            use argon2::password_hash::{PasswordHasher, SaltString};
            let salt = SaltString::encode_b64(b"0123456789abcdef").unwrap();
            argon2::Argon2::default()
                .hash_password(b"s3cret", &salt)
                .unwrap()
                .to_string()
        };
        let bc = bcrypt::hash("b-pass", 4).unwrap();
        Auth {
            users: crate::config::parse_basic_auth(&format!("alice:pw,bob:{argon},carol:{bc}"))
                .unwrap(),
            trusted_proxies: vec![IpRange::parse("10.0.0.1").unwrap()],
            admins: ["alice".to_string()].into_iter().collect(),
            ..Auth::default()
        }
    }

    #[tokio::test]
    async fn basic_auth_plain_argon2_bcrypt() {
        let a = auth();
        let c = a
            .authenticate(&parts(&[("authorization", &basic("alice", "pw"))], None))
            .await
            .unwrap();
        assert!(c.is_admin && c.username == "alice");
        assert!(
            a.authenticate(&parts(&[("authorization", &basic("alice", "pw2"))], None))
                .await
                .is_err()
        );
        assert!(
            a.authenticate(&parts(&[("authorization", &basic("alice", "p"))], None))
                .await
                .is_err()
        );
        let c = a
            .authenticate(&parts(&[("authorization", &basic("bob", "s3cret"))], None))
            .await
            .unwrap();
        assert!(!c.is_admin);
        assert!(
            a.authenticate(&parts(&[("authorization", &basic("bob", "nope"))], None))
                .await
                .is_err()
        );
        assert!(
            a.authenticate(&parts(
                &[("authorization", &basic("carol", "b-pass"))],
                None
            ))
            .await
            .is_ok()
        );
        assert!(
            a.authenticate(&parts(&[("authorization", &basic("dave", "pw"))], None))
                .await
                .is_err()
        );
        assert!(
            a.authenticate(&parts(&[("authorization", "Basic !!!")], None))
                .await
                .is_err()
        );
        assert!(a.authenticate(&parts(&[], None)).await.is_err());
    }

    #[tokio::test]
    async fn proxy_headers_only_from_trusted_peers() {
        let a = auth();
        let h = [
            ("x-remote-user", "mallory"),
            ("x-remote-groups", "ops, dev"),
        ];
        let c = a
            .authenticate(&parts(&h, Some("10.0.0.1:5555")))
            .await
            .unwrap();
        assert_eq!(c.username, "mallory");
        assert_eq!(c.groups, ["ops", "dev"]);
        assert!(matches!(
            a.authenticate(&parts(&h, Some("10.0.0.2:5555"))).await,
            Err(ApiError::Unauthorized)
        ));
        assert!(matches!(
            a.authenticate(&parts(&h, None)).await,
            Err(ApiError::Unauthorized)
        ));
    }
}

#[cfg(test)]
mod limiter_tests {
    use super::*;

    #[test]
    fn limiter_counts_per_address_and_window() {
        let l = LoginLimiter::new(2, Duration::from_secs(60));
        let (a, b): (IpAddr, IpAddr) = ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap());
        let t0 = Instant::now();
        assert!(l.check(a, t0).is_ok());
        l.failed(a, t0);
        assert!(l.check(a, t0).is_ok());
        l.failed(a, t0 + Duration::from_secs(10));
        assert_eq!(l.check(a, t0 + Duration::from_secs(10)), Err(50));
        assert!(l.check(b, t0 + Duration::from_secs(10)).is_ok());
        // the window is over: allowed again, and counting starts afresh
        assert!(l.check(a, t0 + Duration::from_secs(61)).is_ok());
        l.failed(a, t0 + Duration::from_secs(61));
        assert!(l.check(a, t0 + Duration::from_secs(62)).is_ok());
        let off = LoginLimiter::new(0, Duration::from_secs(60));
        for _ in 0..100 {
            off.failed(a, t0);
        }
        assert!(off.check(a, t0).is_ok());
    }

    #[test]
    fn tokens_parse_and_hash() {
        let id = uuid::Uuid::now_v7();
        let (token, hash) = new_token(id).unwrap();
        let (parsed, secret) = parse_token(&token).unwrap();
        assert_eq!(parsed, id);
        assert_eq!(sha256(secret.as_bytes()), hash);
        assert!(parse_token("mtk_abc_def").is_none());
        assert!(parse_token(&token.replace("mtk_", "xyz_")).is_none());
    }
}
