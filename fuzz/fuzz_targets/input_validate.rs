//! Task input validation against declared inputs: any declaration and any values give a
//! validated map or field errors naming a field, never a panic. The input is split at the first
//! NUL: a JSON list of input declarations, then a JSON object of values.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mutask::template::input::validate;
use mutask::template::model::Input;

fuzz_target!(|data: &[u8]| {
    let Some(i) = data.iter().position(|b| *b == 0) else {
        return;
    };
    let Ok(declared) = serde_json::from_slice::<Vec<Input>>(&data[..i]) else {
        return;
    };
    let Ok(given) =
        serde_json::from_slice::<serde_json::Map<String, serde_json::Value>>(&data[i + 1..])
    else {
        return;
    };
    if let Err(errors) = validate(&declared, &given, "input") {
        assert!(!errors.is_empty());
        for e in errors {
            assert!(e.field.starts_with("input"), "{}", e.field);
        }
    }
});
