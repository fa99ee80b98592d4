//! Template YAML parsing + validation: any bytes give a template or a list of problems (with
//! positions), never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mutask::template::load::parse_template;
use mutask::template::model::FunctionSet;
use mutask::template::validate::ValidationContext;

fuzz_target!(|data: &[u8]| {
    let Ok(source) = std::str::from_utf8(data) else {
        return;
    };
    let functions = FunctionSet::new();
    let ctx = ValidationContext::new(&functions);
    if let Err(problems) = parse_template("fuzz.yaml", source, &ctx) {
        assert!(
            !problems.is_empty(),
            "a refused template names its problems"
        );
        for p in problems {
            assert!(!p.message.is_empty());
        }
    }
});
