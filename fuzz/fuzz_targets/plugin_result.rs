//! The plugin protocol's result parsing: whatever a plugin prints (stdout, stderr, any exit
//! status) becomes an action result, never a panic; the metadata always names the exit status,
//! a non-zero exit is always an error, and every error names the plugin.
//! Layout: one byte (exit status, signed), then stdout and stderr separated by a NUL byte.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mutask::action::ActionError;
use mutask::action::plugin::parse_result;

fuzz_target!(|data: &[u8]| {
    let Some((&code, rest)) = data.split_first() else {
        return;
    };
    let code = i32::from(code as i8);
    let (out, err) = match rest.iter().position(|b| *b == 0) {
        Some(i) => (&rest[..i], &rest[i + 1..]),
        None => (rest, &[][..]),
    };
    let r = parse_result("fuzz", out, err, code, std::time::Duration::from_millis(3));
    let meta = r.metadata.expect("metadata is always set");
    assert_eq!(meta["exit_code"], serde_json::json!(code.to_string()));
    if code != 0 {
        assert!(r.error.is_some());
    }
    if let Some(e) = r.error {
        let m = match e {
            ActionError::Client(m)
            | ActionError::Server(m)
            | ActionError::Fatal(m)
            | ActionError::Waiting(m)
            | ActionError::Retry(m) => m,
            #[allow(unreachable_patterns)]
            _ => return,
        };
        assert!(m.starts_with("fuzz: "), "{m}");
    }
});
