//! Renderer tests: every `{{ }}` form of µTask's conformance templates and function fixtures,
//! with the output Go produces, plus control flow, limits and hostile inputs.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};

use serde_json::{Value as J, json};

use super::*;
use crate::template::dialect::{self, detect, translate};

fn renderer() -> Renderer {
    Renderer::new(RenderOptions::default())
}

/// A fake variable evaluator: returns what µTask's variables would (JS results as strings).
struct FakeEval {
    vars: HashMap<String, J>,
    calls: AtomicUsize,
}

impl FakeEval {
    fn new(vars: &[(&str, J)]) -> FakeEval {
        FakeEval {
            vars: vars
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect(),
            calls: AtomicUsize::new(0),
        }
    }
}

impl VariableEval for FakeEval {
    fn eval(&self, name: &str, _cache: bool) -> Result<J, String> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.vars
            .get(name)
            .cloned()
            .ok_or_else(|| format!("Var name not found in template: '{name}'"))
    }
}

fn go_eval(src: &str, ctx: &J, eval: Option<&dyn VariableEval>) -> Result<String, RenderError> {
    renderer().render_dialect(Dialect::Utask, src, ctx, eval)
}

fn go(src: &str, ctx: &J) -> String {
    match go_eval(src, ctx, None) {
        Ok(s) => s,
        Err(e) => panic!("{src:?} failed: {e}\njinja: {:?}", translate(src)),
    }
}

#[test]
fn conformance_expressions() {
    let fib_list = r#"["0","1","1","2"]"#;
    let table: Vec<(&str, J, &str)> = vec![
        // foreach / iterator forms.
        ("{{.iterator}}", json!({"iterator": 1}), "1"),
        ("{{ .iterator }}", json!({"iterator": "a"}), "a"),
        (
            "{{.iterator.id}}",
            json!({"iterator": {"id": 1619464078}}),
            "1619464078",
        ),
        (
            "/id/{{.iterator.id}}",
            json!({"iterator": {"id": 1619464079}}),
            "/id/1619464079",
        ),
        (
            "{{.iterator.output.foo}}-{{.iterator.output.bar}}",
            json!({"iterator": {"output": {"foo": "foo-b", "bar": "bar-b"}}}),
            "foo-b-bar-b",
        ),
        ("foo-{{.iterator}}", json!({"iterator": "b"}), "foo-b"),
        ("hello {{.iterator}}", json!({"iterator": 3}), "hello 3"),
        // step handles.
        (
            "{{.step.this.state}}",
            json!({"step": {"this": {"state": "DONE"}}}),
            "DONE",
        ),
        (
            "{{.step.stepThree.state}}",
            json!({"step": {"stepThree": {"state": "FOO"}}}),
            "FOO",
        ),
        (
            "{{.step.this.output.foo}}",
            json!({"step": {"this": {"output": {"foo": "bar"}}}}),
            "bar",
        ),
        (
            "{{.step.this.output.items}}",
            json!({"step": {"this": {"output": {"items": "foo,bar"}}}}),
            "foo,bar",
        ),
        (
            "{{.step.this.output.HTTPStatus}}",
            json!({"step": {"this": {"output": {"HTTPStatus": 404}}}}),
            "404",
        ),
        (
            "{{.step.this.metadata.HTTPStatus}}",
            json!({"step": {"this": {"metadata": {"HTTPStatus": "200"}}}}),
            "200",
        ),
        (
            "{{.step.stepNotFound.metadata.value}}",
            json!({"step": {}}),
            "<no value>",
        ),
        (
            "{{.step.stepOne.output.notfound}}",
            json!({"step": {"stepOne": {"output": {}}}}),
            "<no value>",
        ),
        (
            "{{.step.stepOne.output.foo.bar.grault}}",
            json!({"step": {"stepOne": {"output": {"foo": {"bar": {"grault": "corge"}}}}}}),
            "corge",
        ),
        (
            "{{.step.stepOne.output.foo.bar.bar}}",
            json!({"step": {"stepOne": {"output": {"foo": {"bar": {"grault": "corge"}}}}}}),
            "<no value>",
        ),
        (
            "{{.step.createCallback.output.id}}",
            json!({"step": {"createCallback": {"output": {"id": "cb-1"}}}}),
            "cb-1",
        ),
        (
            "{{.step.waitCallback.output.success}}",
            json!({"step": {"waitCallback": {"output": {"success": true}}}}),
            "true",
        ),
        // inputs and numbers.
        (
            "{{.input.quantity}}",
            json!({"input": {"quantity": -2.3}}),
            "-2.3",
        ),
        ("{{ .input.N }}", json!({"input": {"N": 12.0}}), "12"),
        ("{{.input.id}}", json!({"input": {"id": "1234"}}), "1234"),
        (
            "{{.input.big}}",
            json!({"input": {"big": 12345678912345_i64}}),
            "12345678912345",
        ),
        ("{{.input.f}}", json!({"input": {"f": 1e21}}), "1e+21"),
        (
            "{{.input.skipStepOne}}",
            json!({"input": {"skipStepOne": "skip"}}),
            "skip",
        ),
        (
            "{{ .input.separator }}",
            json!({"input": {"separator": ", "}}),
            ", ",
        ),
        ("{{.input.nothing}}", json!({"input": {}}), "<no value>"),
        (
            "{{.input.null}}",
            json!({"input": {"null": null}}),
            "<no value>",
        ),
        // toJson (Go json.Marshal: compact, sorted keys, HTML escaping).
        (
            "{{.input.list | toJson}}",
            json!({"input": {"list": ["a", "b", "c"]}}),
            r#"["a","b","c"]"#,
        ),
        (
            "{{.input.singleString | toJson}}",
            json!({"input": {"singleString": "<b> & \"q\"\ttab"}}),
            r#""\u003cb\u003e \u0026 \"q\"\ttab""#,
        ),
        (
            "{{.input.multilineString | toJson}}",
            json!({"input": {"multilineString": "a\nb"}}),
            r#""a\nb""#,
        ),
        (
            "{{.step.listStep.output | toJson}}",
            json!({"step": {"listStep": {"output": [{"id": 1619464078}, {"id": 1619464079}, {"id": 1619464077}]}}}),
            r#"[{"id":1619464078},{"id":1619464079},{"id":1619464077}]"#,
        ),
        (
            "{{.step.generateItems.children | toJson}}",
            json!({"step": {"generateItems": {"children": [{"state": "DONE", "output": {"foo": "foo-b", "bar": "bar-b"}}]}}}),
            r#"[{"output":{"bar":"bar-b","foo":"foo-b"},"state":"DONE"}]"#,
        ),
        // index forms.
        (
            r#"{{ index .step "this" "output" "concat"}}"#,
            json!({"step": {"this": {"output": {"concat": "foo-b-bar-b"}}}}),
            "foo-b-bar-b",
        ),
        (
            "{{ (index .step.stepForeach.children 0).state }}",
            json!({"step": {"stepForeach": {"children": [{"state": "A"}, {"state": "B"}, {"state": "C"}]}}}),
            "A",
        ),
        (
            "{{ (index .step.stepForeach.children 1).state }}",
            json!({"step": {"stepForeach": {"children": [{"state": "A"}, {"state": "B"}, {"state": "C"}]}}}),
            "B",
        ),
        (
            "{{ (index .step.stepForeach.children 2).state }}",
            json!({"step": {"stepForeach": {"children": [{"state": "A"}, {"state": "B"}, {"state": "C"}]}}}),
            "C",
        ),
        // function fixtures.
        (
            "{{ .function_args.name }}",
            json!({"function_args": {"name": "toto"}}),
            "toto",
        ),
        (
            "Hello {{ .function_args.name }} !",
            json!({"function_args": {"name": "foobar"}}),
            "Hello foobar !",
        ),
        (
            "{{ .function_args.name1 }}",
            json!({"function_args": {"name1": "foobar"}}),
            "foobar",
        ),
        (
            "{{ .pre_hook.output.value }}",
            json!({"pre_hook": {"output": {"value": "42"}}}),
            "42",
        ),
        (
            "Coalesce {{ coalesce .pre_hook.output.notExist .pre_hook.output.value }}!",
            json!({"pre_hook": {"output": {"value": "42"}}}),
            "Coalesce 42!",
        ),
        (
            "{{ .step.this.output.firstname }} {{ .step.this.output.name }}",
            json!({"step": {"this": {"output": {"firstname": "John", "name": "Doe"}}}}),
            "John Doe",
        ),
        // raw strings.
        ("{{ `World` }}", json!({}), "World"),
        ("Hello {{ `World` }}!", json!({}), "Hello World!"),
        // retryNowMaxRetry.
        (
            "{{ add (default 0 .step.this.output) 1 }}",
            json!({"step": {"this": {"output": "41"}}}),
            "42",
        ),
        (
            "{{ add (default 0 .step.this.output) 1 }}",
            json!({"step": {"this": {"output": {}}}}),
            "1",
        ),
        (
            "{{ add (default 0 .step.this.output) 1 }}",
            json!({"step": {"this": {}}}),
            "1",
        ),
        // retryNowState, single steps.
        (
            "{{ default \"0\" .step.this.output.tail1 }}",
            json!({"step": {"this": {"output": {}}}}),
            "0",
        ),
        (
            "{{ default \"0\" .step.this.output.tail1 }}",
            json!({"step": {"this": {"output": {"tail1": "8"}}}}),
            "8",
        ),
        (
            "{{ default \"1\" (add .step.this.output.tail0 .step.this.output.tail1) }}",
            json!({"step": {"this": {"output": {}}}}),
            "1",
        ),
        (
            "{{ default \"1\" (add .step.this.output.tail0 .step.this.output.tail1) }}",
            json!({"step": {"this": {"output": {"tail0": "5", "tail1": "8"}}}}),
            "13",
        ),
        (
            "{{ append (fromJson (default \"[]\" .step.this.output.list)) (default \"0\" .step.this.output.tail1) | toJson }}",
            json!({"step": {"this": {"output": {}}}}),
            r#"["0"]"#,
        ),
        (
            "{{ append (fromJson (default \"[]\" .step.this.output.list)) (default \"0\" .step.this.output.tail1) | toJson }}",
            json!({"step": {"this": {"output": {"list": "[\"0\"]", "tail1": "1"}}}}),
            r#"["0","1"]"#,
        ),
        (
            "{{ len (fromJson .step.this.output.list) }}",
            json!({"step": {"this": {"output": {"list": fib_list}}}}),
            "4",
        ),
        (
            "{{ default .step.fibonacci.output.list .step.this.output.list | fromJson | rest | toJson }}",
            json!({"step": {"fibonacci": {"output": {"list": fib_list}}, "this": {"output": {}}}}),
            r#"["1","1","2"]"#,
        ),
        (
            "{{ default .step.fibonacci.output.list .step.this.output.list | fromJson | rest | first }}",
            json!({"step": {"fibonacci": {"output": {"list": fib_list}}, "this": {"output": {}}}}),
            "1",
        ),
        (
            "{{ default (.step.fibonacci.output.list | fromJson | first) .step.this.output.str }}{{ .input.separator }}{{ default .step.fibonacci.output.list .step.this.output.list | fromJson | rest | first }}",
            json!({"input": {"separator": " sep "}, "step": {"fibonacci": {"output": {"list": fib_list}}, "this": {"output": {}}}}),
            "0 sep 1",
        ),
        // Printing of collections and nil.
        (
            "{{ .input }}",
            json!({"input": {"b": [1, 2.5, "x", null, true], "a": {"k": "v"}}}),
            "map[a:map[k:v] b:[1 2.5 x <nil> true]]",
        ),
    ];
    for (src, ctx, want) in &table {
        assert_eq!(go(src, ctx), *want, "template {src:?} with {ctx}");
    }
}

#[test]
fn json_parsing_yaml() {
    // jsonParsing.yaml: the JS variable returns JSON.stringify(o).
    let ev = FakeEval::new(&[(
        "rawJSON",
        json!(r#"{"a":"utask","b":666,"c":{"k":"v"},"d":["1","2","3"]}"#),
    )]);
    let cases = [
        ("{{(eval `rawJSON` | fromJson).a}}", "utask"),
        ("{{(eval `rawJSON` | mustFromJson).b}}", "666"),
        ("{{(eval `rawJSON` | mustFromJson).c}}", "map[k:v]"),
        ("{{(eval `rawJSON` | fromJson).d}}", "[1 2 3]"),
    ];
    for (src, want) in cases {
        assert_eq!(go_eval(src, &json!({}), Some(&ev)).unwrap(), want, "{src}");
    }
}

#[test]
fn variables_yaml_and_friends() {
    let ev = FakeEval::new(&[
        ("truc", json!("4")),
        ("bidule", json!(5)),
        ("templated", json!("Hello World!")),
        ("expressionCached", json!("6")),
        ("largeNumber", json!(12345678912345_i64)),
        ("quaranteDeux", json!("42")),
        ("successField", json!("success")),
        ("foo", json!("bar")),
        ("rawDecoded", json!("raw message")),
        ("rawEncoded", json!("cmF3IG1lc3NhZ2U")),
    ]);
    let cases = [
        ("{{eval `truc`}}", "4"),
        ("{{eval `bidule`}}", "5"),
        ("{{eval `templated`}}", "Hello World!"),
        ("{{evalCache `expressionCached`}}", "6"),
        (
            "/some/api/path/{{ eval `largeNumber` }}",
            "/some/api/path/12345678912345",
        ),
        ("\"quantity\": {{eval `quaranteDeux`}}", "\"quantity\": 42"),
        (
            "\"required\": [\"{{evalCache `successField`}}\"]",
            "\"required\": [\"success\"]",
        ),
        ("{{ eval `foo` }}", "bar"),
        ("{{ eval `rawDecoded` | b64RawEnc }}", "cmF3IG1lc3NhZ2U"),
        ("{{ eval `rawEncoded` | b64RawDec }}", "raw message"),
        (
            "{{ eval \"truc\" }}{{ eval \"truc\" }}{{ evalCache \"truc\" }}",
            "444",
        ),
    ];
    for (src, want) in cases {
        assert_eq!(go_eval(src, &json!({}), Some(&ev)).unwrap(), want, "{src}");
    }
    // One hook call per distinct (name, cache) in one render.
    let ev2 = FakeEval::new(&[("a", json!("x")), ("b", json!("y"))]);
    let out = go_eval(
        "{{eval `a`}}{{eval `a`}}{{eval `b`}}{{eval `a`}}",
        &json!({}),
        Some(&ev2),
    )
    .unwrap();
    assert_eq!(out, "xxyx");
    assert_eq!(ev2.calls.load(Ordering::SeqCst), 2);
    // Unknown variable: µTask's message, wrapped like Go's call errors.
    let err = go_eval("{{ eval `nope` }}", &json!({}), Some(&ev))
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("Templating error: template: tmpl:1:1: executing"),
        "{err}"
    );
    assert!(
        err.contains("error calling eval: Var name not found in template: 'nope'"),
        "{err}"
    );
    // No hook at all.
    let err = go_eval("{{ eval `x` }}", &json!({}), None)
        .unwrap_err()
        .to_string();
    assert!(err.contains("Var name not found in template: 'x'"), "{err}");
}

/// retryNowState.yaml iterated like µTask's engine does (RETRY_NOW loops).
#[test]
fn retry_now_state_fibonacci() {
    let r = renderer();
    let fib_tpl = [
        ("tail0", "{{ default \"0\" .step.this.output.tail1 }}"),
        (
            "tail1",
            "{{ default \"1\" (add .step.this.output.tail0 .step.this.output.tail1) }}",
        ),
        (
            "list",
            "{{ append (fromJson (default \"[]\" .step.this.output.list)) (default \"0\" .step.this.output.tail1) | toJson }}",
        ),
    ];
    let fib_cond = translate("{{ len (fromJson .step.this.output.list) }}").unwrap();
    let n_expected = translate("{{ .input.N }}").unwrap();
    let input = json!({"N": 12.0, "separator": " sep "});
    let mut output = json!({});
    for _ in 0..100 {
        let ctx = json!({"input": input, "step": {"this": {"output": output}}});
        let mut next = serde_json::Map::new();
        for (k, t) in fib_tpl {
            let s = r.render(&translate(t).unwrap(), &ctx, None).unwrap();
            next.insert(k.to_string(), J::String(s));
        }
        output = J::Object(next);
        let ctx = json!({"input": input, "step": {"this": {"output": output}}});
        let len: i64 = r.render(&fib_cond, &ctx, None).unwrap().parse().unwrap();
        let n: i64 = r.render(&n_expected, &ctx, None).unwrap().parse().unwrap();
        if len > n {
            break; // LE no longer holds: no RETRY_NOW.
        }
    }
    assert_eq!(
        output["list"],
        json!(r#"["0","1","1","2","3","5","8","13","21","34","55","89","144"]"#)
    );
    let fib_output = output;
    let join_tpl = [
        (
            "list",
            "{{ default .step.fibonacci.output.list .step.this.output.list | fromJson | rest | toJson }}",
        ),
        (
            "str",
            "{{ default (.step.fibonacci.output.list | fromJson | first) .step.this.output.str }}{{ .input.separator }}{{ default .step.fibonacci.output.list .step.this.output.list | fromJson | rest | first }}",
        ),
    ];
    let mut output = json!({});
    for _ in 0..100 {
        let ctx = json!({"input": input, "step": {"fibonacci": {"output": fib_output}, "this": {"output": output}}});
        let mut next = serde_json::Map::new();
        for (k, t) in join_tpl {
            let s = r.render(&translate(t).unwrap(), &ctx, None).unwrap();
            next.insert(k.to_string(), J::String(s));
        }
        output = J::Object(next);
        let ctx = json!({"step": {"this": {"output": output}}});
        let len: i64 = r.render(&fib_cond, &ctx, None).unwrap().parse().unwrap();
        if len <= 1 {
            break; // GT 1 no longer holds.
        }
    }
    assert_eq!(
        output["str"],
        json!("0 sep 1 sep 1 sep 2 sep 3 sep 5 sep 8 sep 13 sep 21 sep 34 sep 55 sep 89 sep 144")
    );
}

/// retryNowMaxRetry.yaml: the output counts up as a string.
#[test]
fn retry_now_max_retry_counter() {
    let r = renderer();
    let t = translate("{{ add (default 0 .step.this.output) 1 }}").unwrap();
    let mut output = json!({});
    for _ in 0..42 {
        let s = r
            .render(&t, &json!({"step": {"this": {"output": output}}}), None)
            .unwrap();
        output = J::String(s);
    }
    assert_eq!(output, json!("42"));
}

#[test]
fn control_flow() {
    let t = r#"{{if eq .input.a "x"}}yes{{else if eq .input.a "y"}}why{{else}}no{{end}}"#;
    assert_eq!(go(t, &json!({"input": {"a": "x"}})), "yes");
    assert_eq!(go(t, &json!({"input": {"a": "y"}})), "why");
    assert_eq!(go(t, &json!({"input": {"a": "z"}})), "no");
    assert_eq!(go(t, &json!({"input": {}})), "no");
    let l = json!({"input": {"list": ["a", "b", "c"], "m": {"z": 1, "a": 2}, "e": []}});
    assert_eq!(
        go("{{range $i, $e := .input.list}}{{$i}}={{$e}};{{end}}", &l),
        "0=a;1=b;2=c;"
    );
    assert_eq!(go("{{range .input.list}}[{{.}}]{{end}}", &l), "[a][b][c]");
    assert_eq!(
        go("{{range $k, $v := .input.m}}{{$k}}:{{$v}} {{end}}", &l),
        "a:2 z:1 "
    );
    assert_eq!(go("{{range $e := .input.list}}{{$e}}{{end}}", &l), "abc");
    assert_eq!(go("{{range .input.e}}x{{else}}empty{{end}}", &l), "empty");
    assert_eq!(
        go("{{range .input.missing}}x{{else}}none{{end}}", &l),
        "none"
    );
    assert_eq!(
        go(
            "{{range .input.list}}{{if eq . \"b\"}}{{continue}}{{end}}{{if eq . \"c\"}}{{break}}{{end}}{{.}}{{end}}",
            &l
        ),
        "a"
    );
    assert_eq!(go("{{range $i := 3}}{{$i}}{{end}}", &l), "012");
    // $ is the root inside range; dot is the element.
    assert_eq!(go("{{range .input.list}}{{$.input.m.a}}{{end}}", &l), "222");
    // Variables: assignment inside range updates the outer variable; := shadows.
    assert_eq!(
        go(
            "{{$x := 0}}{{range .input.list}}{{$x = .}}{{end}}{{$x}}",
            &l
        ),
        "c"
    );
    assert_eq!(
        go(
            "{{$x := 1}}{{range .input.list}}{{$x := 2}}{{end}}{{$x}}",
            &l
        ),
        "1"
    );
    // with.
    assert_eq!(
        go("{{with .input.list}}{{index . 1}}{{else}}none{{end}}", &l),
        "b"
    );
    assert_eq!(go("{{with .input.e}}x{{else}}none{{end}}", &l), "none");
    assert_eq!(go("{{with $v := .input.m.a}}{{$v}}{{.}}{{end}}", &l), "22");
    assert_eq!(
        go(
            "{{with .input.nope}}a{{else with .input.m}}{{.a}}{{end}}",
            &l
        ),
        "2"
    );
    // if with a declaration.
    assert_eq!(go("{{if $n := len .input.list}}{{$n}}{{end}}", &l), "3");
    // and/or short-circuit and return the deciding operand.
    assert_eq!(
        go(
            "{{ if and .input.missing (gt (len .input.missing) 0) }}y{{else}}n{{end}}",
            &l
        ),
        "n"
    );
    assert_eq!(go("{{ or .input.missing \"fallback\" }}", &l), "fallback");
    assert_eq!(
        go("{{ and 1 \"x\" }}|{{ and 0 \"x\" }}|{{ or 0 \"\" }}", &l),
        "x|0|"
    );
    assert_eq!(go("{{ .input.m.a | and 1 }}", &l), "2");
    assert_eq!(go("{{ and (or 0 .input.m.a) (or .input.m.z 9) }}", &l), "1");
    // not / comparisons.
    assert_eq!(go("{{ if not .input.missing }}ok{{ end }}", &l), "ok");
    assert_eq!(
        go("{{ if lt 1 2 }}lt{{ end }}{{ if ge 2 2 }}ge{{ end }}", &l),
        "ltge"
    );
}

#[test]
fn text_trim_and_comments() {
    let c = json!({"x": "X"});
    assert_eq!(go("a  {{- .x -}}  b", &c), "aXb");
    assert_eq!(go("a \n {{- .x }} \n b", &c), "aX \n b");
    assert_eq!(go("a {{.x -}} \n\t b", &c), "a Xb");
    assert_eq!(go("a{{/* comment */}}b", &c), "ab");
    assert_eq!(go("a {{- /* comment */ -}} b", &c), "ab");
    assert_eq!(go("{{-3}}", &c), "-3");
    // Jinja delimiters in Go text stay text.
    assert_eq!(go("{% raw %}{# x #} {{.x}} {", &c), "{% raw %}{# x #} X {");
    assert_eq!(go("{{`{{`}}{{ \"{%\" }}", &c), "{{{%");
    // Trailing newlines are kept (Go keeps them).
    assert_eq!(go("{{.x}}\n", &c), "X\n");
    assert_eq!(go("line\n\n", &c), "line\n\n");
    // Keys that are method names in Jinja, dashes through index.
    let k = json!({"step": {"my-step": {"output": {"items": [1], "keys": "k"}}}});
    assert_eq!(
        go(r#"{{ index .step "my-step" "output" "keys" }}"#, &k),
        "k"
    );
    assert_eq!(
        go(r#"{{ (index .step "my-step").output.items }}"#, &k),
        "[1]"
    );
}

#[test]
fn literals_and_printing() {
    let c = json!({});
    assert_eq!(go(r#"{{ "a\tb\u00e9\x41" }}"#, &c), "a\tbéA");
    assert_eq!(
        go(
            "{{ 'a' }} {{ 0x1F }} {{ 1e3 }} {{ 1.50 }} {{ 010 }} {{ 1_000 }}",
            &c
        ),
        "97 31 1000 1.5 8 1000"
    );
    assert_eq!(
        go("{{ true }} {{ false }} {{ print nil }}", &c),
        "true false <nil>"
    );
    assert_eq!(go("{{ 1000000.0 }} {{ 0.00001 }}", &c), "1e+06 1e-05");
    assert_eq!(
        go("{{ printf \"%s-%03d %v\" \"a\" 7 (list 1 \"b\") }}", &c),
        "a-007 [1 b]"
    );
    assert_eq!(go("{{ list 1 2 | len }}", &c), "2");
    assert_eq!(
        go("{{ dict \"b\" 2 \"a\" (dict \"c\" nil) }}", &c),
        "map[a:map[c:<nil>] b:2]"
    );
}

#[test]
fn go_errors_are_positioned_and_utask_like() {
    // TestOutputTemplatingError's templates.
    for src in [
        "{{ index .foo.unknown 3 }}",
        "{{ index .step.stepOne.output.foo.unknown 3 }}",
    ] {
        let e = go_eval(src, &json!({"step": {"stepOne": {"output": {}}}}), None).unwrap_err();
        let msg = e.to_string();
        assert!(msg.starts_with("Templating error: template:"), "{msg}");
        assert!(
            msg.contains("tmpl:1:1: executing \"tmpl\" at <index"),
            "{msg}"
        );
        assert!(
            msg.contains("error calling index: index of untyped nil"),
            "{msg}"
        );
    }
    let e = go_eval(
        "line one\n  {{ .a.b.c }} {{ len .x }}",
        &json!({"a": {"b": "s"}}),
        None,
    )
    .unwrap_err();
    let msg = e.to_string();
    assert!(msg.contains("tmpl:2:3:"), "{msg}");
    assert!(
        msg.contains("can't evaluate field c in type string"),
        "{msg}"
    );
    let e = go_eval(
        "{{ if false }}a{{ else if len .x }}b{{ end }}",
        &json!({}),
        None,
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("tmpl:1:16: executing \"tmpl\" at <else if len .x>"),
        "{e}"
    );
    let e = go_eval("ok\n {{ len .x }}", &json!({}), None)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("tmpl:2:2:") && e.contains("error calling len: len of nil pointer"),
        "{e}"
    );
}

#[test]
fn malformed_templates_give_positioned_translate_errors() {
    let cases: &[(&str, usize, usize, &str)] = &[
        ("{{ .a", 1, 1, "unclosed action"),
        ("abc\n  {{ foo .a }}", 2, 6, "function \"foo\" not defined"),
        ("{{ env \"HOME\" }}", 1, 4, "not supported"),
        ("{{ .a | }}", 1, 7, "missing command"),
        ("{{ $x }}", 1, 4, "undefined variable \"$x\""),
        ("{{ if .a }}x", 1, 1, "unexpected EOF"),
        ("x{{ end }}", 1, 2, "unexpected {{end}}"),
        ("{{ \"abc }}", 1, 4, "unterminated quoted string"),
        ("{{ `abc }}", 1, 4, "unterminated raw quoted string"),
        ("{{ (.a }}", 1, 8, "unclosed left paren"),
        ("{{ .a) }}", 1, 6, "unexpected right paren"),
        ("{{ template \"x\" }}", 1, 1, "not supported"),
        ("{{ define \"x\" }}{{ end }}", 1, 1, "not supported"),
        ("{{ nil }}", 1, 4, "nil is not a command"),
        ("{{ .a 1 }}", 1, 4, "can't give argument to non-function"),
        (
            "{{ .a | \"x\" }}",
            1,
            9,
            "non executable command in pipeline stage 2",
        ),
        ("{{ break }}", 1, 1, "{{break}} outside {{range}}"),
        ("{{ 1i }}", 1, 4, "complex number"),
        ("{{ 99999999999999999999 }}", 1, 4, "overflows int"),
        ("{{ /* c */ }}", 1, 4, "bad character"),
        (
            "{{/* c */ x}}",
            1,
            1,
            "comment ends before closing delimiter",
        ),
        ("{{ \"a\".b }}", 1, 4, "unexpected . after term"),
        ("{{ }}", 1, 4, "missing value for command"),
        (
            "{{ with .a }}x{{ else if .b }}y{{ end }}",
            1,
            15,
            "not allowed in {{with}}",
        ),
        ("é{{ .a ? }}", 1, 8, "bad character"),
    ];
    for (src, line, col, msg) in cases {
        let e = translate(src).expect_err(src);
        assert!(e.message.contains(msg), "{src:?}: {e}");
        assert_eq!((e.line, e.column), (*line, *col), "{src:?}: {e}");
        let shown = e.to_string();
        assert!(
            shown.starts_with(&format!("template: tmpl:{line}:{col}: ")),
            "{shown}"
        );
    }
    let e = renderer()
        .render_dialect(Dialect::Utask, "{{ .a", &json!({}), None)
        .unwrap_err();
    assert!(
        e.to_string()
            .starts_with("Templating error: template: tmpl:1:1: unclosed action")
    );
}

#[test]
fn hostile_inputs_are_stopped() {
    let small = Renderer::new(RenderOptions {
        fuel: 200_000,
        max_output_bytes: 64 * 1024,
    });
    let run = |src: &str| small.render_dialect(Dialect::Utask, src, &json!({}), None);
    // Huge repeat: refused before allocating.
    assert_eq!(
        run("{{ repeat 1000000000 \"abc\" }}"),
        Err(RenderError::TooLarge { limit: 64 * 1024 })
    );
    // List doubling: stopped by the size cap or by fuel, never a hang.
    let doubling =
        "{{ $l := list 1 2 3 4 }}{{ range until 200 }}{{ $l = concat $l $l }}{{ end }}{{ len $l }}";
    assert!(matches!(
        run(doubling),
        Err(RenderError::TooLarge { .. } | RenderError::OutOfFuel)
    ));
    // A shared big string printed many times: the output cap holds.
    let shared = "{{ $s := repeat 60000 \"x\" }}{{ $l := list $s $s $s $s $s }}{{ $l }}";
    assert!(matches!(run(shared), Err(RenderError::TooLarge { .. })));
    let shared_json = "{{ $s := repeat 60000 \"x\" }}{{ list $s $s | toJson }}";
    assert!(matches!(
        run(shared_json),
        Err(RenderError::TooLarge { .. })
    ));
    // Long loops run out of fuel.
    assert_eq!(
        run("{{ range until 1000000 }}{{ end }}").unwrap_err(),
        RenderError::TooLarge { limit: 64 * 1024 }
    );
    assert_eq!(
        run("{{ range $i := 100000000 }}{{ end }}").unwrap_err(),
        RenderError::TooLarge { limit: 64 * 1024 }
    );
    let loops = "{{ range until 3000 }}{{ range until 3000 }}{{ end }}{{ end }}";
    assert_eq!(run(loops).unwrap_err(), RenderError::OutOfFuel);
    // Output cap.
    let big = "x".repeat(70 * 1024);
    assert_eq!(
        run(&big).unwrap_err(),
        RenderError::TooLarge { limit: 64 * 1024 }
    );
    // Deep nesting: a clean error, no stack overflow, in both parsers.
    let deep = format!("{{{{ {}1{} }}}}", "(".repeat(5000), ")".repeat(5000));
    let e = translate(&deep).unwrap_err();
    assert!(e.message.contains("nested too deeply"), "{e}");
    let deep_if = "{{ if 1 }}".repeat(5000);
    assert!(
        translate(&deep_if)
            .unwrap_err()
            .message
            .contains("nested too deeply")
    );
    // The deepest accepted nesting still compiles in minijinja.
    let n = dialect::MAX_NESTING - 2;
    let ok = format!("{{{{ {}1{} }}}}", "(add ".repeat(n), ")".repeat(n));
    assert_eq!(run(&ok).unwrap(), "1");
    let ok_if = format!("{}x{}", "{{ if 1 }}".repeat(n), "{{ end }}".repeat(n));
    assert_eq!(run(&ok_if).unwrap(), "x");
    let chain = format!(
        "{{{{ if 0 }}}}{}{{{{ else }}}}z{{{{ end }}}}",
        "{{ else if 0 }}".repeat(500)
    );
    assert_eq!(run(&chain).unwrap(), "z");
    // Garbage never panics.
    for src in [
        "{{",
        "}}",
        "{{{{",
        "{{ ( }}",
        "{{ $ }}",
        "{{ . . }}",
        "{{ 'ab' }}",
        "{{ \"\\q\" }}",
        "{{ :x }}",
        "{{ $x := }}",
        "{{ range $a, $b, $c := . }}{{end}}",
        "\u{0}{{ \u{0} }}",
    ] {
        let _ = run(src);
    }
}

#[test]
fn native_jinja_templates() {
    let r = renderer();
    let ev = FakeEval::new(&[("v", json!("from-eval"))]);
    let ctx = json!({"input": {"name": "Bob", "raw": "{\"a\": [1, 2]}"}, "step": {"s": {"output": {"x": 1}}}});
    let cases = [
        ("Hello {{ input.name }}!", "Hello Bob!"),
        (
            "{{ eval(\"v\") }}|{{ evalCache(\"v\") }}",
            "from-eval|from-eval",
        ),
        ("{{ (input.raw | fromjson).a }}", "[1.0, 2.0]"),
        (
            "{{ \"hi\" | b64encode }}|{{ \"aGk=\" | b64decode }}",
            "aGk=|hi",
        ),
        ("{{ step.s.output | tojson }}", "{\"x\": 1}"),
        ("{{ step.s.output | gotojson }}", "{\"x\":1}"),
        ("{{ step.s.output | goprint }}", "map[x:1]"),
        ("{{ step.missing.output.x }}", ""),
        ("{{ field(\"input\", \"name\") }}", "Bob"),
        ("{{ \"abc\" | regex_replace(\"b\", \"X\") }}", "aXc"),
        (
            "{{ \"a1b22\" | regex_find_all(\"[0-9]+\") }}",
            "['1', '22']",
        ),
        ("{{ go_add(1, \"2\") }}", "3"),
        (
            "{{ \"Hello, World!\" | hmac_sha256(\"It's a Secret to Everybody\") }}",
            "757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17",
        ),
    ];
    for (src, want) in cases {
        assert_eq!(r.render(src, &ctx, Some(&ev)).unwrap(), want, "{src}");
    }
    let e = r.render("{{ 1 + }}", &ctx, None).unwrap_err().to_string();
    assert!(
        e.starts_with("Templating error: template: tmpl:1: syntax error"),
        "{e}"
    );
    assert!(r.check("{{ input.name }}").is_ok());
    assert!(r.check("{% if %}").is_err());
}

#[test]
fn renders_concurrently() {
    let r = renderer();
    let t = translate("{{ .input.n | add 1 }}-{{ eval `v` }}").unwrap();
    std::thread::scope(|s| {
        for i in 0..8 {
            let r = r.clone();
            let t = t.clone();
            s.spawn(move || {
                let ev = FakeEval::new(&[("v", json!(i))]);
                for _ in 0..50 {
                    let out = r
                        .render(&t, &json!({"input": {"n": i}}), Some(&ev))
                        .unwrap();
                    assert_eq!(out, format!("{}-{i}", i + 1));
                }
            });
        }
    });
}

#[test]
fn detect_dialect() {
    let go_samples = [
        "{{.input.x}}",
        "{{ .step.x.output | toJson }}",
        "a {{- $x := 1 }}",
        "{{ eval `x` }}",
        "{{ eval \"x\" }}",
        "{{ default 0 .x }}",
        "{{ end }}",
        "{{ range .a }}",
        "{{ if not .x }}",
        "{{/* c */}}",
        "{{ index .step \"a\" }}",
        "{{ add 1 2 }}",
        "{{ x | default \"a\" }}",
        "{{ (index .step.s.children 0).state }}",
    ];
    for s in go_samples {
        assert_eq!(detect([s]), Dialect::Utask, "{s}");
    }
    let jinja_samples = [
        "{{ input.x }}",
        "{{ step.x.output | tojson }}",
        "{{ eval(\"x\") }}",
        "{{ a if b else c }}",
        "{{ not x }}",
        "{{ x is defined and y }}",
        "{{ \"$5 .x `y`\" }}",
        "{% if x %}{{ x }}{% endif %}",
        "plain text",
        "{{ uuid() }}",
        "{{ items | join(', ') }}",
    ];
    for s in jinja_samples {
        assert_eq!(detect([s]), Dialect::Jinja, "{s}");
    }
    assert_eq!(detect(["{{ input.x }}", "{{.input.y}}"]), Dialect::Utask);
    assert_eq!(detect(Vec::<&str>::new()), Dialect::Jinja);
}

/// Random Go-template-ish inputs: translation never panics, every successful translation
/// compiles in minijinja, and rendering never panics.
#[test]
fn fuzz_translate_and_render() {
    const PIECES: &[&str] = &[
        "{{",
        "}}",
        "{{- ",
        " -}}",
        "(",
        ")",
        " | ",
        ".a",
        ".b",
        ".",
        "$x",
        "$",
        " := ",
        " = ",
        ", ",
        "\"s\"",
        "`r`",
        "'c'",
        "1",
        "-2",
        "2.5",
        " ",
        "\n",
        "if ",
        "else ",
        "end",
        "range ",
        "with ",
        "break",
        "continue",
        "and ",
        "or ",
        "not ",
        "len ",
        "index ",
        "default ",
        "eq ",
        "toJson",
        "fromJson ",
        "list ",
        "dict ",
        "add ",
        "printf ",
        "nil",
        "true",
        "{%",
        "{#",
        "/*",
        "*/",
        "x",
        "$y",
        ".input",
        "eval ",
        "set ",
        "{",
        "}",
    ];
    let renderer = Renderer::new(RenderOptions {
        fuel: 20_000,
        max_output_bytes: 4096,
    });
    let mut seed: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let ctx = json!({"a": [1, 2], "b": {"c": "d"}, "input": {"x": 1}});
    let mut translated = 0;
    for _ in 0..50_000 {
        let n = (next() % 12) as usize + 1;
        let body: String = (0..n)
            .map(|_| PIECES[(next() % PIECES.len() as u64) as usize])
            .collect();
        // Half of the inputs are one action, to exercise the action parser.
        let src = if next() % 2 == 0 {
            format!("{{{{ {body} }}}}")
        } else {
            body
        };
        if let Ok(j) = translate(&src) {
            translated += 1;
            if let Err(e) = renderer.check(&j) {
                panic!("{src:?} translated to invalid Jinja {j:?}: {e}");
            }
            let _ = renderer.render(&j, &ctx, None);
        }
    }
    eprintln!("fuzz: {translated} of 50000 inputs translated");
    assert!(translated > 1000, "only {translated} inputs translated");
}

#[test]
fn maximum_nesting_compiles_in_every_form() {
    let n = dialect::MAX_NESTING - 2;
    let forms = [
        format!("{{{{ {}.a{} }}}}", "(".repeat(n), ")".repeat(n)),
        format!(
            "{{{{ {}1{} }}}}",
            "(default 0 (index (list ".repeat(n / 3),
            ") 0))".repeat(n / 3)
        ),
        format!(
            "{{{{ {}1{} }}}}",
            "(and 1 (or 0 ".repeat(n / 2),
            "))".repeat(n / 2)
        ),
        format!(
            "{}{{{{ (((((.a).b).c).d).e) }}}}{}",
            "{{ with .x }}{{ range .y }}".repeat(n / 4),
            "{{ end }}{{ end }}".repeat(n / 4)
        ),
    ];
    let r = renderer();
    for src in forms {
        let j = translate(&src).unwrap_or_else(|e| panic!("{src}: {e}"));
        r.check(&j).unwrap_or_else(|e| panic!("{src}: {e}"));
        r.render(&j, &json!({}), None)
            .unwrap_or_else(|e| panic!("{src}: {e}"));
    }
}

#[test]
fn prepared_context_renders_like_json() {
    let r = renderer();
    let ctx = json!({"input": {"n": 12345678912345_i64, "f": -2.5}});
    let prepared = PreparedContext::new(&ctx);
    let j = translate("{{ .input.n }} {{ .input.f }}").unwrap();
    assert_eq!(
        r.render_prepared(&j, &prepared, None).unwrap(),
        "12345678912345 -2.5"
    );
    assert_eq!(r.render(&j, &ctx, None).unwrap(), "12345678912345 -2.5");
}
