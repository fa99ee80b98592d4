//! Rendering hostile template text with hostile values: bounded by fuel and output size, ends
//! with a string or an error, never a panic. The input is split at the first NUL: template text,
//! then a JSON document used as `input`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mutask::template::render::{RenderOptions, Renderer};

fuzz_target!(|data: &[u8]| {
    let (tpl, values) = match data.iter().position(|b| *b == 0) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &b"{}"[..]),
    };
    let Ok(tpl) = std::str::from_utf8(tpl) else {
        return;
    };
    let input: serde_json::Value =
        serde_json::from_slice(values).unwrap_or(serde_json::Value::Null);
    let renderer = Renderer::new(RenderOptions {
        fuel: 20_000,
        max_output_bytes: 64 << 10,
    });
    let ctx = serde_json::json!({"input": input, "step": {"a": {"output": input}}});
    if let Ok(out) = renderer.render(tpl, &ctx, None) {
        assert!(out.len() <= 64 << 10, "output limit");
    }
});
