//! Authentication: who is calling.
//!
//! Sources, in order: the `x-remote-user` / `x-remote-groups` headers, accepted **only** when the
//! peer address is in `MUTASK_TRUSTED_PROXIES` (µTask trusts anyone; mutask does not), then HTTP
//! Basic against `MUTASK_BASIC_AUTH` (plain text compared in constant time, argon2 and bcrypt
//! hashes verified off the async runtime). No credentials → 401 with `WWW-Authenticate`.
//! Admins are `MUTASK_ADMIN_USERNAMES`.

use std::collections::HashSet;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::extract::{ConnectInfo, FromRef, FromRequestParts};
use axum::http::request::Parts;
use base64::Engine as _;
use subtle::ConstantTimeEq;

use crate::config::{BasicAuthUser, IpRange, PasswordCheck};

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

/// Authentication settings.
#[derive(Debug, Default)]
pub struct Auth {
    pub users: Vec<BasicAuthUser>,
    pub trusted_proxies: Vec<IpRange>,
    pub admins: HashSet<String>,
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
        let Some(b64) = authz
            .strip_prefix("Basic ")
            .or_else(|| authz.strip_prefix("basic "))
        else {
            return Err(ApiError::Unauthorized);
        };
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(b64.trim())
            .ok()
            .and_then(|d| String::from_utf8(d).ok())
            .ok_or(ApiError::Unauthorized)?;
        let (user, password) = decoded.split_once(':').ok_or(ApiError::Unauthorized)?;
        let Some(entry) = self.users.iter().find(|u| u.username == user) else {
            return Err(ApiError::Unauthorized);
        };
        if verify(&entry.secret, password).await {
            Ok(self.caller(user.to_string(), Vec::new()))
        } else {
            Err(ApiError::Unauthorized)
        }
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
