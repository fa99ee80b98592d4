//! Translator unit tests: the shape of the generated Jinja (outputs are checked end to end in
//! `render_tests.rs`).

use super::*;

#[test]
fn field_chains_become_go_lookups() {
    assert_eq!(
        translate("{{.input.name}}").unwrap(),
        r#"{#@1:1 .input.name#}{{ __print(__get(__root, "input", "name")) }}"#
    );
    assert_eq!(
        translate("a{{ . }}b").unwrap(),
        "a{#@1:2 .#}{{ __print(__root) }}b"
    );
    assert_eq!(
        translate("{{ $.step }}").unwrap(),
        r#"{#@1:1 $.step#}{{ __print(__get(__root, "step")) }}"#
    );
}

#[test]
fn pipelines_pass_the_value_last() {
    let j = translate(r#"{{ .a | default "x" | upper }}"#).unwrap();
    assert!(
        j.contains(r#"go_upper(go_default("x", __get(__root, "a")))"#),
        "{j}"
    );
    let j = translate("{{ (index .s.c 0).state }}").unwrap();
    assert!(
        j.contains(r#"__get(go_index(__get(__root, "s", "c"), 0), "state")"#),
        "{j}"
    );
    // A function used as an argument is called without arguments.
    let j = translate("{{ upper uuid }}").unwrap();
    assert!(j.contains("go_upper(go_uuid())"), "{j}");
}

#[test]
fn and_or_are_lowered_to_short_circuit_statements() {
    let j = translate("{{ and .a (len .b) }}").unwrap();
    assert!(j.starts_with("{% set __v = namespace() %}"), "{j}");
    assert!(
        j.contains(r#"{% set __v.v1 = __get(__root, "a") %}{% if __truth(__v.v1) %}{% set __v.v1 = go_len(__get(__root, "b")) %}{% endif %}{{ __print(__v.v1) }}"#),
        "{j}"
    );
    let j = translate("{{ or .a .b }}").unwrap();
    assert!(j.contains("{% if not __truth(__v.v1) %}"), "{j}");
}

#[test]
fn variables_get_lexically_scoped_slots() {
    let j =
        translate("{{ $x := 1 }}{{ range .l }}{{ $x := 2 }}{{ $x = 3 }}{{ end }}{{ $x }}").unwrap();
    assert!(j.contains("{% set __v.v1 = 1 %}"), "{j}");
    assert!(j.contains("{% set __v.v3 = 2 %}"), "{j}");
    assert!(j.contains("{% set __v.v3 = 3 %}"), "{j}");
    assert!(j.ends_with("{{ __print(__v.v1) }}"), "{j}");
    // sprig's mutating helpers re-bind the variable.
    let j = translate(r#"{{ $d := dict }}{{ $_ := set $d "k" 1 }}"#).unwrap();
    assert!(
        j.contains(r#"{% set __v.v1 = go_set(__v.v1, "k", 1) %}"#),
        "{j}"
    );
}

#[test]
fn text_never_leaks_jinja_delimiters() {
    assert_eq!(
        translate("a {% b %} {# c #} {").unwrap(),
        "a {{ \"{\" }}% b %} {{ \"{\" }}# c #} {{ \"{\" }}"
    );
    assert_eq!(translate("x{y}").unwrap(), "x{y}");
    assert_eq!(translate("").unwrap(), "");
}

#[test]
fn literals() {
    let j = translate(r#"{{ print "q\"\\\n" `r\n` 'x' -7 2.5 true nil }}"#).unwrap();
    assert!(
        j.contains(r#"go_print("q\"\\\u000a", "r\\n", 120, -7, 2.5, true, none)"#),
        "{j}"
    );
    assert_eq!(unquote(r"\x41\101\u00e9\U0001F600", '"').unwrap(), "AAé😀");
    assert!(unquote(r"\q", '"').is_err());
    assert!(unquote(r"\'", '"').is_err());
    assert!(matches!(parse_number("0x10"), Ok(T::Int(16))));
    assert!(matches!(parse_number("1e3"), Ok(T::Float(f)) if f == 1000.0));
    assert!(matches!(parse_number("08"), Ok(T::Int(8))));
    assert!(parse_number("1i").is_err());
    assert!(parse_number("0x1p-2").is_err());
}

#[test]
fn positions_are_recorded_and_found() {
    let j = translate("line\n  {{ index .a 1 }}").unwrap();
    let at = j.find("go_index").unwrap();
    assert_eq!(
        source_position(&j, at),
        Some((2, 3, "index .a 1".to_string()))
    );
    assert_eq!(source_position("no marker", 3), None);
    // A `#}` inside the action cannot close the marker early.
    let j = translate("{{ \"#}\" }}").unwrap();
    assert!(j.starts_with("{#@1:1 \"# }\"#}"), "{j}");
}

#[test]
fn line_and_column_count_characters() {
    let src = "é\nab{{";
    let starts = vec![0, 3];
    assert_eq!(line_col(src, &starts, 0), (1, 1));
    assert_eq!(line_col(src, &starts, 2), (1, 2));
    assert_eq!(line_col(src, &starts, 5), (2, 3));
}
