//! Request bodies (JSON or YAML by content type, size-limited by the server before this): any
//! bytes parse or give a 4xx error with a message, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mutask::api::body::parse_body;

fuzz_target!(|data: &[u8]| {
    let (ct, body) = match data.first() {
        Some(b) if b % 2 == 0 => ("application/x-yaml", &data[1..]),
        Some(_) => ("application/json", &data[1..]),
        None => return,
    };
    if let Err(e) = parse_body::<serde_json::Value>(ct, body) {
        assert!(!e.to_string().is_empty());
    }
});
