//! Inbound webhook authentication and body mapping: any headers, secret and body are accepted
//! or refused with a reason, never a panic; a body signed with the secret is always accepted.
//! Layout: one byte (kind, timestamp header on/off, content type), then secret, headers
//! (`name: value` lines) and body separated by NUL bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mutask::schedule::webhook::{
    AuthSpec, Headers, body_json, hmac_sha256_hex, map_inputs, verify,
};

const NOW: i64 = 1_700_000_000;

fuzz_target!(|data: &[u8]| {
    let Some((&sel, rest)) = data.split_first() else {
        return;
    };
    let mut parts = rest.splitn(3, |b| *b == 0);
    let (Some(secret), Some(head), Some(body)) = (parts.next(), parts.next(), parts.next()) else {
        return;
    };
    let kind = ["github", "sourcehut", "hmac-sha256"][usize::from(sel % 3)];
    let spec = AuthSpec {
        kind,
        secret,
        header: "X-Mutask-Sign",
        timestamp_header: (sel & 4 != 0).then_some("X-Mutask-Timestamp"),
        replay_window_secs: 300,
    };
    let mut headers: Headers = String::from_utf8_lossy(head)
        .lines()
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    if let Ok(id) = verify(&spec, &headers, body, NOW) {
        assert!(!id.is_empty());
    }
    // the oracle: a correctly signed delivery is accepted
    if kind == "hmac-sha256" {
        let mut payload = Vec::new();
        if spec.timestamp_header.is_some() {
            headers.insert("x-mutask-timestamp".into(), NOW.to_string());
            payload.extend_from_slice(format!("{NOW}.").as_bytes());
        }
        payload.extend_from_slice(body);
        headers.insert("x-mutask-sign".into(), hmac_sha256_hex(secret, &payload));
        assert!(verify(&spec, &headers, body, NOW).is_ok());
    }
    let ct = match sel >> 4 {
        0..=5 => "application/json",
        6..=10 => "application/x-www-form-urlencoded",
        _ => "application/x-yaml",
    };
    if let Ok(v) = body_json(ct, body) {
        let map = serde_json::json!({"all": "$body", "name": "/repository/name", "k": 1});
        let inputs = map_inputs(map.as_object().unwrap(), &v);
        assert_eq!(inputs.get("k"), Some(&serde_json::json!(1)));
    }
});
