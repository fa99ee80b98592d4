//! µTask Go-template → Jinja translation: any text translates or is refused with a message; a
//! translation is itself valid minijinja source or a render error, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mutask::template::dialect::translate;
use mutask::template::render::{RenderOptions, Renderer};

fuzz_target!(|data: &[u8]| {
    let Ok(source) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(jinja) = translate(source) {
        let renderer = Renderer::new(RenderOptions {
            fuel: 20_000,
            max_output_bytes: 64 << 10,
        });
        let ctx = serde_json::json!({"input": {"x": "a", "n": 3, "list": [1, 2]}, "step": {}});
        let _ = renderer.render(&jinja, &ctx, None);
    }
});
