//! Encryption at the store boundary: an AES-256-GCM key ring.
//!
//! Every sealed value is `[version=1][key id length][key id][96-bit random nonce][ciphertext+tag]`.
//! The associated data binds a ciphertext to its table, column and row ([`Aad`]), so a value copied
//! into another row or column does not decrypt. Several keys may be configured: the **last** one of
//! the ring (the newest) encrypts, every one decrypts, which is what lets key rotation re-encrypt
//! rows in batches while the system keeps running. Keys are never logged; [`KeyRing`]'s `Debug`
//! shows key ids only. A flipped byte anywhere in a sealed value is detected (GCM tag) and reported
//! as [`CryptoError::Corrupt`], never decrypted to garbage.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use serde::Serialize;
use serde::de::DeserializeOwned;

const FORMAT_VERSION: u8 = 1;
const NONCE_LEN: usize = 12;

/// Errors of the key ring. Messages never contain key material or plaintext.
#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    #[error("invalid encryption key entry #{index}: {reason} (expected `id:base64-of-32-bytes`)")]
    BadKeySpec { index: usize, reason: String },
    #[error("no encryption key configured")]
    Empty,
    #[error("duplicate encryption key id `{0}`")]
    DuplicateId(String),
    #[error("sealed value uses key `{0}`, which is not in the configured key ring")]
    UnknownKey(String),
    #[error("sealed value for {0} is corrupt or was tampered with")]
    Corrupt(String),
    #[error("sealed value for {0} is not valid JSON: {1}")]
    Json(String, String),
    #[error("random number generator failed: {0}")]
    Random(String),
}

/// What a ciphertext is bound to: table, column and row id.
#[derive(Debug, Clone, Copy)]
pub struct Aad<'a> {
    pub table: &'a str,
    pub column: &'a str,
    pub row: &'a str,
}

impl Aad<'_> {
    fn bytes(&self) -> Vec<u8> {
        format!("mutask:v1:{}.{}:{}", self.table, self.column, self.row).into_bytes()
    }
    fn describe(&self) -> String {
        format!("{}.{} of row {}", self.table, self.column, self.row)
    }
}

struct RingKey {
    id: String,
    cipher: Aes256Gcm,
}

/// The configured keys; the last one encrypts.
pub struct KeyRing {
    keys: Vec<RingKey>,
}

impl std::fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyRing")
            .field("key_ids", &self.key_ids())
            .finish()
    }
}

fn random_bytes<const N: usize>() -> Result<[u8; N], CryptoError> {
    let mut buf = [0u8; N];
    getrandom::fill(&mut buf).map_err(|e| CryptoError::Random(e.to_string()))?;
    Ok(buf)
}

impl KeyRing {
    /// Parses `id:base64,id2:base64` (whitespace and newlines also separate entries).
    pub fn parse(spec: &str) -> Result<KeyRing, CryptoError> {
        let mut keys: Vec<RingKey> = Vec::new();
        for (index, entry) in spec
            .split(|c: char| c == ',' || c.is_whitespace())
            .filter(|e| !e.is_empty())
            .enumerate()
        {
            let index = index + 1;
            let (id, b64) = entry
                .split_once(':')
                .ok_or_else(|| CryptoError::BadKeySpec {
                    index,
                    reason: "missing `:` between key id and key".into(),
                })?;
            if id.is_empty()
                || id.len() > 64
                || !id
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
            {
                return Err(CryptoError::BadKeySpec {
                    index,
                    reason: "key id must be 1-64 characters of [A-Za-z0-9._-]".into(),
                });
            }
            let raw = B64
                .decode(b64.trim())
                .map_err(|e| CryptoError::BadKeySpec {
                    index,
                    reason: format!("key is not valid base64 ({e})"),
                })?;
            let bytes: [u8; 32] = raw
                .try_into()
                .map_err(|v: Vec<u8>| CryptoError::BadKeySpec {
                    index,
                    reason: format!("key must be 32 bytes, got {}", v.len()),
                })?;
            if keys.iter().any(|k| k.id == id) {
                return Err(CryptoError::DuplicateId(id.to_string()));
            }
            let key = Key::<Aes256Gcm>::from(bytes);
            keys.push(RingKey {
                id: id.to_string(),
                cipher: Aes256Gcm::new(&key),
            });
        }
        if keys.is_empty() {
            return Err(CryptoError::Empty);
        }
        Ok(KeyRing { keys })
    }

    /// A fresh key entry `id:base64`, the id derived from the current UTC time.
    pub fn generate_entry() -> Result<String, CryptoError> {
        let bytes: [u8; 32] = random_bytes()?;
        let suffix: [u8; 2] = random_bytes()?;
        let id = format!(
            "k{}-{:02x}{:02x}",
            chrono::Utc::now().format("%Y%m%d%H%M%S"),
            suffix[0],
            suffix[1]
        );
        Ok(format!("{id}:{}", B64.encode(bytes)))
    }

    /// Ids of every key, oldest first; the last one encrypts.
    pub fn key_ids(&self) -> Vec<&str> {
        self.keys.iter().map(|k| k.id.as_str()).collect()
    }

    /// The id of the key that encrypts.
    pub fn current_key_id(&self) -> &str {
        // parse() guarantees at least one key
        self.keys.last().map(|k| k.id.as_str()).unwrap_or_default()
    }

    /// Encrypts `plaintext` with the newest key, bound to `aad`.
    pub fn seal(&self, aad: Aad<'_>, plaintext: &[u8]) -> Result<Vec<u8>, CryptoError> {
        let key = self.keys.last().ok_or(CryptoError::Empty)?;
        let nonce_bytes: [u8; NONCE_LEN] = random_bytes()?;
        let nonce = Nonce::from(nonce_bytes);
        let aad_bytes = aad.bytes();
        let ct = key
            .cipher
            .encrypt(
                &nonce,
                Payload {
                    msg: plaintext,
                    aad: &aad_bytes,
                },
            )
            .map_err(|_| CryptoError::Corrupt(aad.describe()))?;
        let mut out = Vec::with_capacity(2 + key.id.len() + NONCE_LEN + ct.len());
        out.push(FORMAT_VERSION);
        out.push(key.id.len() as u8);
        out.extend_from_slice(key.id.as_bytes());
        out.extend_from_slice(&nonce_bytes);
        out.extend_from_slice(&ct);
        Ok(out)
    }

    /// The key id a sealed value was encrypted with, if the header is well-formed.
    pub fn key_id_of(sealed: &[u8]) -> Option<&str> {
        let (&version, rest) = sealed.split_first()?;
        if version != FORMAT_VERSION {
            return None;
        }
        let (&len, rest) = rest.split_first()?;
        let id = rest.get(..len as usize)?;
        std::str::from_utf8(id).ok()
    }

    /// Decrypts a value sealed by any key of the ring; detects tampering.
    pub fn open(&self, aad: Aad<'_>, sealed: &[u8]) -> Result<Vec<u8>, CryptoError> {
        let corrupt = || CryptoError::Corrupt(aad.describe());
        let id = Self::key_id_of(sealed).ok_or_else(corrupt)?;
        let key = self
            .keys
            .iter()
            .find(|k| k.id == id)
            .ok_or_else(|| CryptoError::UnknownKey(id.to_string()))?;
        let body = &sealed[2 + id.len()..];
        if body.len() < NONCE_LEN + 16 {
            return Err(corrupt());
        }
        let (nonce_bytes, ct) = body.split_at(NONCE_LEN);
        let nonce_arr: [u8; NONCE_LEN] = nonce_bytes.try_into().map_err(|_| corrupt())?;
        let aad_bytes = aad.bytes();
        key.cipher
            .decrypt(
                &Nonce::from(nonce_arr),
                Payload {
                    msg: ct,
                    aad: &aad_bytes,
                },
            )
            .map_err(|_| corrupt())
    }

    /// Serializes `value` as JSON and seals it.
    pub fn seal_json<T: Serialize + ?Sized>(
        &self,
        aad: Aad<'_>,
        value: &T,
    ) -> Result<Vec<u8>, CryptoError> {
        let bytes = serde_json::to_vec(value)
            .map_err(|e| CryptoError::Json(aad.describe(), e.to_string()))?;
        self.seal(aad, &bytes)
    }

    /// Opens a sealed JSON value.
    pub fn open_json<T: DeserializeOwned>(
        &self,
        aad: Aad<'_>,
        sealed: &[u8],
    ) -> Result<T, CryptoError> {
        let bytes = self.open(aad, sealed)?;
        serde_json::from_slice(&bytes).map_err(|e| CryptoError::Json(aad.describe(), e.to_string()))
    }

    /// True when `sealed` was not encrypted with the newest key (rotation needed).
    pub fn needs_rotation(&self, sealed: &[u8]) -> bool {
        Self::key_id_of(sealed) != Some(self.current_key_id())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ring(n: usize) -> KeyRing {
        let spec: Vec<String> = (0..n)
            .map(|i| {
                let e = KeyRing::generate_entry().unwrap();
                let (_, k) = e.split_once(':').unwrap();
                format!("key{i}:{k}")
            })
            .collect();
        KeyRing::parse(&spec.join(",")).unwrap()
    }

    const AAD: Aad<'static> = Aad {
        table: "task",
        column: "input",
        row: "r1",
    };

    #[test]
    fn round_trip_and_nonce_never_repeats() {
        let r = ring(1);
        let a = r.seal(AAD, b"secret").unwrap();
        let b = r.seal(AAD, b"secret").unwrap();
        assert_ne!(a, b, "same plaintext must give different ciphertexts");
        assert_eq!(r.open(AAD, &a).unwrap(), b"secret");
        assert!(!a.windows(6).any(|w| w == b"secret"));
        let mut nonces = std::collections::HashSet::new();
        for _ in 0..2000 {
            let s = r.seal(AAD, b"x").unwrap();
            let id_len = s[1] as usize;
            assert!(nonces.insert(s[2 + id_len..2 + id_len + NONCE_LEN].to_vec()));
        }
    }

    #[test]
    fn aad_binds_row_and_column() {
        let r = ring(1);
        let s = r.seal(AAD, b"v").unwrap();
        let other_row = Aad { row: "r2", ..AAD };
        let other_col = Aad {
            column: "result",
            ..AAD
        };
        assert!(matches!(
            r.open(other_row, &s),
            Err(CryptoError::Corrupt(_))
        ));
        assert!(matches!(
            r.open(other_col, &s),
            Err(CryptoError::Corrupt(_))
        ));
    }

    #[test]
    fn every_flipped_byte_is_detected() {
        let r = ring(1);
        let s = r.seal(AAD, b"some plaintext value").unwrap();
        for i in 0..s.len() {
            let mut t = s.clone();
            t[i] ^= 0x01;
            assert!(r.open(AAD, &t).is_err(), "flip at byte {i} not detected");
        }
        assert!(r.open(AAD, &s[..s.len() - 1]).is_err());
        assert!(r.open(AAD, &[]).is_err());
    }

    #[test]
    fn newest_key_encrypts_all_decrypt() {
        let r2 = ring(2);
        let s = r2.seal(AAD, b"v").unwrap();
        assert_eq!(KeyRing::key_id_of(&s), Some("key1"));
        assert!(!r2.needs_rotation(&s));
        // a value sealed under an older key still opens and is flagged for rotation
        let old_only = KeyRing::parse(&format!("key0:{}", B64.encode([7u8; 32]))).unwrap();
        let both = KeyRing::parse(&format!(
            "key0:{},key9:{}",
            B64.encode([7u8; 32]),
            B64.encode([9u8; 32])
        ))
        .unwrap();
        let s_old = old_only.seal(AAD, b"old").unwrap();
        assert_eq!(both.open(AAD, &s_old).unwrap(), b"old");
        assert!(both.needs_rotation(&s_old));
        let missing = KeyRing::parse(&format!("key9:{}", B64.encode([9u8; 32]))).unwrap();
        assert!(
            matches!(missing.open(AAD, &s_old), Err(CryptoError::UnknownKey(id)) if id == "key0")
        );
    }

    #[test]
    fn bad_specs_name_the_problem() {
        for (spec, needle) in [
            ("", "no encryption key"),
            ("nocolon", "missing `:`"),
            ("a:notbase64!!", "base64"),
            ("a:AAAA", "32 bytes"),
            ("bad id:AAAA", "key id"),
        ] {
            let e = KeyRing::parse(spec).unwrap_err().to_string();
            assert!(e.contains(needle), "{spec:?} -> {e}");
            assert!(!e.contains("AAAA"), "key material leaked in {e}");
        }
        let k = B64.encode([1u8; 32]);
        assert!(matches!(
            KeyRing::parse(&format!("a:{k},a:{k}")),
            Err(CryptoError::DuplicateId(_))
        ));
        assert!(format!("{:?}", ring(1)).contains("key0"));
    }

    #[test]
    fn json_helpers() {
        let r = ring(1);
        let v = serde_json::json!({"a": [1, 2, {"b": "c"}]});
        let s = r.seal_json(AAD, &v).unwrap();
        let back: serde_json::Value = r.open_json(AAD, &s).unwrap();
        assert_eq!(back, v);
    }
}
