//! One or more tests for every function of the library, written as µTask templates with
//! the output Go + sprig produce.

use std::collections::HashMap;

use serde_json::{Value as J, json};

use super::*;
use crate::template::dialect::{Dialect, translate};
use crate::template::render::{RenderError, RenderOptions, Renderer, VariableEval};

struct Vars(HashMap<&'static str, J>);

impl VariableEval for Vars {
    fn eval(&self, name: &str, _cache: bool) -> Result<J, String> {
        self.0
            .get(name)
            .cloned()
            .ok_or_else(|| format!("Var name not found in template: '{name}'"))
    }
}

fn ctx() -> J {
    json!({
        "input": {"a-b": "x", "n": 5, "s": "5", "l": [1, 2, 3], "m": {"a": 1, "b": {"c": "deep"}}},
        "f": "ignored",
    })
}

fn run(src: &str) -> Result<String, RenderError> {
    let vars = Vars(HashMap::from([("v", json!("from-v")), ("n", json!(7))]));
    Renderer::new(RenderOptions::default()).render_dialect(Dialect::Utask, src, &ctx(), Some(&vars))
}

/// (template, expected output)
const OK: &[(&str, &str)] = &[
    // Go builtins.
    ("{{ not true }}|{{ not .input.missing }}", "false|true"),
    (
        "{{ len \"héllo\" }}|{{ len .input.l }}|{{ len .input.m }}",
        "6|3|2",
    ),
    (
        "{{ index .input.m \"a\" }}|{{ index .input.l 1 }}|{{ index \"abc\" 0 }}|{{ index .input.m \"zz\" }}",
        "1|2|97|<no value>",
    ),
    (
        "{{ index .input \"m\" \"b\" \"c\" }}|{{ index .input.l }}",
        "deep|[1 2 3]",
    ),
    (
        "{{ eq 1 1 }}|{{ eq \"a\" \"b\" \"a\" }}|{{ eq .input.n 5 }}|{{ eq .input.s 5 }}|{{ eq .input.missing \"x\" }}|{{ eq 1 1.0 }}",
        "true|true|true|true|false|true",
    ),
    (
        "{{ ne 1 2 }}|{{ lt 1 2 }}|{{ le 2 2 }}|{{ gt \"b\" \"a\" }}|{{ ge 1.5 2 }}",
        "true|true|true|true|false",
    ),
    (
        "{{ print \"a\" 1 2 \"b\" }}|{{ print 1 nil }}",
        "a1 2b|1 <nil>",
    ),
    ("{{ println \"a\" 1 }}", "a 1\n"),
    (
        "{{ printf \"%d-%s-%v-%q-%.2f-%t-%x\" 3 \"x\" .input.l \"q\" 3.14159 true 255 }}",
        "3-x-[1 2 3]-\"q\"-3.14-true-ff",
    ),
    (
        "{{ html \"<a href='x'>&</a>\" }}",
        "&lt;a href=&#39;x&#39;&gt;&amp;&lt;/a&gt;",
    ),
    (
        "{{ js \"a'b\\\"<>&=\\n\" }}",
        "a\\'b\\\"\\u003C\\u003E\\u0026\\u003D\\u000A",
    ),
    ("{{ urlquery \"a b&c/é\" }}", "a+b%26c%2F%C3%A9"),
    // µTask.
    (
        "{{ eval \"v\" }}|{{ evalCache \"v\" }}|{{ eval \"n\" }}",
        "from-v|from-v|7",
    ),
    (
        "{{ field \"input\" \"a-b\" }}|{{ field \"input\" \"zz\" }}|{{ field \"input\" \"m\" \"b\" \"c\" }}",
        "x|<no value>|deep",
    ),
    (
        "{{ .input | fieldFrom \"a-b\" }}|{{ .input | fieldFrom \"m\" \"a\" }}",
        "x|1",
    ),
    (
        "{{ fromJson \"bad\" }}|{{ (fromJson \"{\\\"a\\\":[1,2.5]}\").a }}|{{ fromJson \"null\" }}",
        "<no value>|[1 2.5]|<no value>",
    ),
    (
        "{{ (fromJson \"{\\\"n\\\":12345678912345}\").n }}|{{ fromJson \"{\\\"n\\\":12345678912345}\" | toJson }}",
        "1.2345678912345e+13|{\"n\":12345678912345}",
    ),
    ("{{ (mustFromJson \"[1,2]\") }}", "[1 2]"),
    ("{{ len uuid }}|{{ len (uuidv4) }}", "36|36"),
    (
        "{{ b64RawEnc \"raw message\" }}|{{ b64RawDec \"cmF3IG1lc3NhZ2U\" }}|{{ b64RawDec \"cmF3IG1lc3NhZ2U=\" }}",
        "cmF3IG1lc3NhZ2U|raw message|illegal base64 data at input byte 15",
    ),
    // sprig: defaults and flow.
    (
        "{{ default \"x\" \"\" }}|{{ default \"x\" \"y\" }}|{{ default 1 0 }}|{{ default \"d\" .input.missing }}|{{ default \"d\" (list) }}|{{ default \"d\" (dict) }}|{{ default \"d\" false }}|{{ \"v\" | default \"d\" }}",
        "x|y|1|d|d|d|d|v",
    ),
    (
        "{{ empty \"\" }}|{{ empty (list 1) }}|{{ empty .input.missing }}|{{ empty 0.0 }}",
        "true|false|true|true",
    ),
    (
        "{{ coalesce \"\" .input.missing \"c\" }}|{{ coalesce 0 \"\" }}",
        "c|<no value>",
    ),
    (
        "{{ ternary \"a\" \"b\" true }}|{{ false | ternary \"a\" \"b\" }}",
        "a|b",
    ),
    (
        "{{ all 1 \"a\" true }}|{{ all 1 \"\" }}|{{ any 0 \"\" \"x\" }}|{{ any 0 \"\" }}",
        "true|false|true|false",
    ),
    (
        "{{ deepEqual (list 1 2) (list 1 2) }}|{{ deepEqual (dict \"a\" 1) (dict \"a\" 2) }}",
        "true|false",
    ),
    (
        "{{ typeOf 1.5 }}|{{ typeOf \"a\" }}|{{ kindOf (list) }}|{{ kindOf (dict) }}|{{ typeIs \"string\" \"a\" }}|{{ kindIs \"map\" (dict) }}|{{ typeIsLike \"int\" 1 }}",
        "float64|string|slice|map|true|true|true",
    ),
    // sprig: lists.
    (
        "{{ list 1 \"a\" nil }}|{{ tuple 1 2 }}",
        "[1 a <nil>]|[1 2]",
    ),
    (
        "{{ append (list 1) 2 }}|{{ push (list) 1 }}|{{ mustAppend (list 1) 2 }}|{{ mustPush (list 1) 2 }}",
        "[1 2]|[1]|[1 2]|[1 2]",
    ),
    (
        "{{ prepend (list 1) 0 }}|{{ mustPrepend (list 1) 0 }}",
        "[0 1]|[0 1]",
    ),
    (
        "{{ first (list 1 2) }}|{{ first (list) }}|{{ mustFirst (list 3) }}",
        "1|<no value>|3",
    ),
    (
        "{{ rest (list 1 2 3) }}|{{ mustRest (list 1) }}|{{ rest (list) }}",
        "[2 3]|[]|<no value>",
    ),
    ("{{ last (list 1 2 3) }}|{{ mustLast (list 1) }}", "3|1"),
    (
        "{{ initial (list 1 2 3) }}|{{ mustInitial (list 1) }}",
        "[1 2]|[]",
    ),
    ("{{ concat (list 1) (list 2 3) (list) }}", "[1 2 3]"),
    (
        "{{ has 2 (list 1 2) }}|{{ mustHas 5 (list 1 2) }}|{{ has 1 .input.missing }}",
        "true|false|false",
    ),
    (
        "{{ without (list 1 2 3 2) 2 }}|{{ mustWithout (list 1 2 3) 1 3 }}",
        "[1 3]|[2]",
    ),
    (
        "{{ uniq (list 1 2 1 \"a\" \"a\") }}|{{ mustUniq (list) }}",
        "[1 2 a]|[]",
    ),
    (
        "{{ compact (list 1 \"\" 0 \"a\" nil) }}|{{ mustCompact (list \"\") }}",
        "[1 a]|[]",
    ),
    (
        "{{ reverse (list 1 2 3) }}|{{ mustReverse (list) }}",
        "[3 2 1]|[]",
    ),
    (
        "{{ slice (list 1 2 3 4) 1 3 }}|{{ slice (list 1 2 3) 1 }}|{{ mustSlice (list 1 2) }}",
        "[2 3]|[2 3]|[1 2]",
    ),
    (
        "{{ chunk 2 (list 1 2 3) }}|{{ mustChunk 3 (list 1) }}",
        "[[1 2] [3]]|[[1]]",
    ),
    (
        "{{ until 3 }}|{{ until -2 }}|{{ untilStep 0 10 4 }}|{{ untilStep 5 0 -2 }}",
        "[0 1 2]|[0 -1]|[0 4 8]|[5 3 1]",
    ),
    (
        "{{ seq 3 }}|{{ seq 5 3 }}|{{ seq 0 2 6 }}|{{ seq }}",
        "1 2 3|5 4 3|0 2 4 6|",
    ),
    (
        "{{ sortAlpha (list \"b\" \"a\" \"c\") }}|{{ sortAlpha (list 10 9) }}",
        "[a b c]|[10 9]",
    ),
    // sprig: strings.
    (
        "{{ join \",\" (list \"a\" \"b\" 1 nil) }}|{{ join \"-\" \"x\" }}",
        "a,b,1|x",
    ),
    (
        "{{ split \",\" \"a,b\" }}|{{ (split \",\" \"a,b\")._1 }}",
        "map[_0:a _1:b]|b",
    ),
    (
        "{{ splitList \",\" \"a,b\" }}|{{ splitList \"\" \"ab\" }}",
        "[a b]|[a b]",
    ),
    ("{{ splitn \",\" 2 \"a,b,c\" }}", "map[_0:a _1:b,c]"),
    (
        "{{ toString 1.5 }}|{{ toString (list 1) }}|{{ toString .input.missing }}|{{ toStrings (list 1 \"a\") }}",
        "1.5|[1]|<nil>|[1 a]",
    ),
    (
        "{{ quote \"a\\\"b\" 1 }}|{{ squote \"a\" 2 }}",
        "\"a\\\"b\" \"1\"|'a' '2'",
    ),
    ("{{ cat \"a\" 1 nil \"b\" }}", "a 1 b"),
    (
        "{{ upper \"abé\" }}|{{ lower \"ABÉ\" }}|{{ title \"hello wORLD-x\" }}|{{ untitle \"Hello World\" }}",
        "ABÉ|abé|Hello WORLD-X|hello world",
    ),
    (
        "[{{ trim \"  a  \" }}]|{{ trimAll \"$\" \"$5.00$\" }}|{{ trimall \"-\" \"--a--\" }}|{{ trimPrefix \"ab\" \"abc\" }}|{{ trimSuffix \"bc\" \"abc\" }}",
        "[a]|5.00|a|c|a",
    ),
    (
        "{{ replace \"a\" \"b\" \"aaa\" }}|{{ \"aXa\" | replace \"X\" \"\" }}",
        "bbb|aa",
    ),
    (
        "{{ contains \"b\" \"abc\" }}|{{ hasPrefix \"a\" \"abc\" }}|{{ hasSuffix \"b\" \"abc\" }}",
        "true|true|false",
    ),
    ("{{ repeat 3 \"ab\" }}|{{ repeat 0 \"x\" }}", "ababab|"),
    (
        "{{ substr 1 3 \"abcdef\" }}|{{ substr -1 2 \"abc\" }}|{{ substr 1 99 \"abc\" }}",
        "bc|ab|bc",
    ),
    (
        "{{ trunc 2 \"abc\" }}|{{ trunc -2 \"abcd\" }}|{{ trunc 9 \"ab\" }}",
        "ab|cd|ab",
    ),
    (
        "{{ abbrev 5 \"hello world\" }}|{{ abbrev 20 \"hello\" }}",
        "he...|hello",
    ),
    ("{{ nospace \"a b\\tc\" }}", "abc"),
    (
        "{{ indent 2 \"a\\nb\" }}|{{ nindent 1 \"a\" }}",
        "  a\n  b|\n a",
    ),
    (
        "{{ plural \"one\" \"many\" 2 }}|{{ plural \"one\" \"many\" 1 }}",
        "many|one",
    ),
    (
        "{{ initials \"hello big world\" }}|{{ swapcase \"aB c\" }}",
        "hbw|Ab C",
    ),
    // sprig: numbers.
    (
        "{{ atoi \"42\" }}|{{ atoi \"x\" }}|{{ int \"0x10\" }}|{{ int64 \"12.0\" }}|{{ float64 \"1.5\" }}|{{ int 2.9 }}",
        "42|0|16|12|1.5|2",
    ),
    (
        "{{ add 1 2 \"3\" }}|{{ add }}|{{ add1 1 }}|{{ sub 5 2 }}|{{ mul 2 3 4 }}|{{ div 7 2 }}|{{ mod 7 2 }}",
        "6|0|2|3|24|3|1",
    ),
    ("{{ max 1 5 3 }}|{{ biggest 2 1 }}|{{ min 4 2 }}", "5|2|2"),
    (
        "{{ addf 0.1 0.2 }}|{{ add1f 1.5 }}|{{ subf 1.5 0.5 }}|{{ mulf 1.5 2 }}|{{ divf 1 4 }}|{{ maxf 1 2.5 }}|{{ minf 1 2.5 }}",
        "0.3|2.5|1|3|0.25|2.5|1",
    ),
    (
        "{{ round 3.14159 2 }}|{{ round 2.5 0 }}|{{ floor 1.7 }}|{{ ceil 1.2 }}",
        "3.14|3|1|2",
    ),
    (
        "{{ randInt 1 2 }}|{{ len (randAlphaNum 8) }}|{{ len (randAlpha 3) }}|{{ len (randNumeric 4) }}|{{ len (randAscii 5) }}",
        "1|8|3|4|5",
    ),
    // sprig: dicts.
    ("{{ dict \"a\" 1 \"b\" }}|{{ dict }}", "map[a:1 b:]|map[]"),
    (
        "{{ get (dict \"a\" 1) \"a\" }}|[{{ get (dict) \"x\" }}]",
        "1|[]",
    ),
    (
        "{{ set (dict \"a\" 1) \"b\" 2 }}|{{ $d := dict \"a\" 1 }}{{ $_ := set $d \"b\" 2 }}{{ $d }}",
        "map[a:1 b:2]|map[a:1 b:2]",
    ),
    (
        "{{ unset (dict \"a\" 1 \"b\" 2) \"a\" }}|{{ $d := dict \"a\" 1 }}{{ $_ := unset $d \"a\" }}{{ $d }}",
        "map[b:2]|map[]",
    ),
    (
        "{{ hasKey (dict \"a\" 1) \"a\" }}|{{ hasKey .input.missing \"a\" }}",
        "true|false",
    ),
    (
        "{{ keys (dict \"b\" 1 \"a\" 2) }}|{{ values (dict \"b\" 1 \"a\" 2) }}",
        "[a b]|[2 1]",
    ),
    (
        "{{ pick (dict \"a\" 1 \"b\" 2) \"a\" }}|{{ omit (dict \"a\" 1 \"b\" 2) \"a\" }}",
        "map[a:1]|map[b:2]",
    ),
    (
        "{{ pluck \"a\" (dict \"a\" 1) (dict \"a\" 2) (dict \"b\" 3) }}",
        "[1 2]",
    ),
    (
        "{{ merge (dict \"a\" 1 \"c\" (dict \"x\" 1)) (dict \"a\" 2 \"b\" 3 \"c\" (dict \"y\" 2)) }}|{{ mustMerge (dict \"a\" \"\") (dict \"a\" 1) }}",
        "map[a:1 b:3 c:map[x:1 y:2]]|map[a:1]",
    ),
    (
        "{{ mergeOverwrite (dict \"a\" 1) (dict \"a\" 2 \"b\" 3) }}|{{ mustMergeOverwrite (dict \"a\" 1) (dict \"a\" \"\") }}",
        "map[a:2 b:3]|map[a:1]",
    ),
    (
        "{{ $d := dict \"a\" 1 }}{{ $_ := merge $d (dict \"b\" 2) }}{{ $d }}",
        "map[a:1 b:2]",
    ),
    (
        "{{ dig \"a\" \"b\" \"def\" (dict \"a\" (dict \"b\" \"x\")) }}|{{ dig \"a\" \"z\" \"def\" (dict \"a\" (dict)) }}",
        "x|def",
    ),
    (
        "{{ deepCopy (list 1) }}|{{ mustDeepCopy (dict \"a\" 1) }}",
        "[1]|map[a:1]",
    ),
    // sprig: JSON, encodings, hashes.
    (
        "{{ toJson (dict \"b\" 1 \"a\" \"<\") }}|{{ mustToJson (list 1.5 nil true) }}",
        "{\"a\":\"\\u003c\",\"b\":1}|[1.5,null,true]",
    ),
    (
        "{{ toPrettyJson (dict \"a\" (list 1) \"b\" (dict)) }}",
        "{\n  \"a\": [\n    1\n  ],\n  \"b\": {}\n}",
    ),
    (
        "{{ mustToPrettyJson (list) }}|{{ toRawJson (dict \"a\" \"<&>\") }}|{{ mustToRawJson \"<\" }}",
        "[]|{\"a\":\"<&>\"}|\"<\"",
    ),
    (
        "{{ b64enc \"hi\" }}|{{ b64dec \"aGk=\" }}|{{ b64dec \"!!\" }}",
        "aGk=|hi|illegal base64 data at input byte 0",
    ),
    (
        "{{ sha256sum \"abc\" }}",
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
    ),
    (
        // GitHub's documented webhook example
        "{{ hmacSha256 \"It's a Secret to Everybody\" \"Hello, World!\" }}",
        "757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17",
    ),
    (
        "{{ sha1sum \"abc\" }}|{{ adler32sum \"abc\" }}",
        "a9993e364706816aba3e25717850c26c9cd0d89d|38600999",
    ),
    // sprig: regexes.
    (
        "{{ regexMatch \"^a.c$\" \"abc\" }}|{{ regexMatch \"(\" \"abc\" }}|{{ mustRegexMatch \"b\" \"abc\" }}",
        "true|false|true",
    ),
    (
        "{{ regexFind \"b+\" \"abbbc\" }}|{{ mustRegexFind \"z\" \"abc\" }}",
        "bbb|",
    ),
    (
        "{{ regexFindAll \"a.\" \"a1a2a3\" 2 }}|{{ mustRegexFindAll \"a.\" \"a1a2a3\" -1 }}|{{ regexFindAll \"x*\" \"axb\" -1 }}",
        "[a1 a2]|[a1 a2 a3]|[ x ]",
    ),
    (
        "{{ regexReplaceAll \"a(x*)b\" \"-ab-axxb-\" \"${1}W\" }}|{{ mustRegexReplaceAll \"a\" \"aa\" \"b\" }}",
        "-W-xxW-|bb",
    ),
    (
        "{{ regexReplaceAllLiteral \"a(x*)b\" \"-ab-axxb-\" \"${1}\" }}|{{ mustRegexReplaceAllLiteral \"a\" \"a\" \"$\" }}",
        "-${1}-${1}-|$",
    ),
    (
        "{{ regexSplit \"a\" \"banana\" -1 }}|{{ mustRegexSplit \"a\" \"banana\" 2 }}|{{ regexSplit \"a*\" \"abaabaccadaaae\" 5 }}",
        "[b n n ]|[b nana]|[ b b c cadaaae]",
    ),
    ("{{ regexQuoteMeta \"a.b*c\" }}", "a\\.b\\*c"),
    // sprig: paths.
    (
        "{{ base \"/a/b.txt\" }}|{{ dir \"/a/b.txt\" }}|{{ ext \"b.tar.gz\" }}|{{ clean \"a//b/../c/.\" }}|{{ isAbs \"/x\" }}",
        "b.txt|/a|.gz|a/c|true",
    ),
    // sprig: dates.
    (
        "{{ date \"2006-01-02\" 0 }}|{{ dateInZone \"2006\" 0 \"UTC\" }}|{{ date_in_zone \"01\" 0 \"Europe/Paris\" }}",
        "1970-01-01|1970|01",
    ),
    (
        "{{ htmlDate 86400 }}|{{ htmlDateInZone 86400 \"UTC\" }}",
        "1970-01-02|1970-01-02",
    ),
    (
        "{{ unixEpoch (toDate \"2006-01-02\" \"2024-03-05\") }}|{{ toDate \"2006-01-02\" \"x\" }}",
        "1709596800|0001-01-01 00:00:00 +0000 UTC",
    ),
    (
        "{{ mustToDate \"2006-01-02 15:04\" \"2024-03-05 07:08\" | date \"Jan _2 3:04PM\" }}",
        "Mar  5 7:08AM",
    ),
    (
        "{{ dateModify \"1h30m\" (toDate \"2006-01-02\" \"2024-03-05\") | date \"15:04\" }}|{{ date_modify \"bad\" (toDate \"2006\" \"2024\") | date \"2006\" }}|{{ mustDateModify \"-1h\" (toDate \"2006-01-02\" \"2024-03-05\") | date \"02 15\" }}",
        "01:30|2024|04 23",
    ),
    (
        "{{ len (now | date \"2006\") }}|{{ typeOf now }}",
        "4|time.Time",
    ),
];

/// (template, text the error must contain)
const ERR: &[(&str, &str)] = &[
    ("{{ call .f }}", "error calling call: call is not supported"),
    ("{{ mustFromJson \"bad\" }}", "error calling mustFromJson:"),
    (
        "{{ fromJson .input.missing }}",
        "invalid value; expected string",
    ),
    ("{{ fail \"boom\" }}", "error calling fail: boom"),
    ("{{ div 1 0 }}", "integer divide by zero"),
    ("{{ mod 1 0 }}", "integer divide by zero"),
    ("{{ append .input.missing 1 }}", "Cannot push on type <nil>"),
    ("{{ first \"abc\" }}", "Cannot find first on type string"),
    (
        "{{ concat (list 1) \"x\" }}",
        "Cannot concat type string as list",
    ),
    ("{{ mustRegexMatch \"(\" \"x\" }}", "error parsing regexp"),
    ("{{ regexFind \"(\" \"x\" }}", "error parsing regexp"),
    ("{{ mustToDate \"2006-01-02\" \"x\" }}", "parsing time"),
    ("{{ mustDateModify \"bad\" now }}", "invalid duration"),
    ("{{ repeat -1 \"x\" }}", "negative Repeat count"),
    ("{{ upper 1 2 }}", "wrong number of args: want 1 got 2"),
    ("{{ upper (list) }}", "expected string; got []interface {}"),
    ("{{ index .input.l 9 }}", "index out of range: 9"),
    (
        "{{ index .input.l \"a\" }}",
        "cannot index slice/array with type string",
    ),
    (
        "{{ index .input.m 1 }}",
        "value has type int; should be string",
    ),
    ("{{ index 1 1 }}", "can't index item of type int"),
    ("{{ len 3 }}", "len of type int"),
    ("{{ lt true false }}", "invalid type for comparison"),
    ("{{ eq (list) (list) }}", "non-comparable type"),
    ("{{ eq 1 \"a\" true }}", "incompatible types for comparison"),
    ("{{ eq 1 }}", "missing argument for comparison"),
    ("{{ ternary 1 2 \"x\" }}", "expected bool"),
    (
        "{{ slice \"abc\" 1 }}",
        "list should be type of slice or array",
    ),
    ("{{ slice (list 1) 0 5 }}", "slice bounds out of range"),
    ("{{ chunk 0 (list 1) }}", "chunk size must be positive"),
    ("{{ unixEpoch 5 }}", "expected time.Time"),
    (
        "{{ fieldFrom \"a\" \"b\" }}",
        "unable to cast given data to a map[string]",
    ),
    (
        "{{ fieldFrom \"a\" }}",
        "invalid number of parameters given",
    ),
    ("{{ randInt 2 1 }}", "invalid argument to Intn"),
    (
        "{{ get \"x\" \"a\" }}",
        "expected map[string]interface {}; got string",
    ),
    ("{{ substr 5 9 \"abc\" }}", "slice bounds out of range"),
    ("{{ range 1.5 }}{{ end }}", "range can't iterate over 1.5"),
];

#[test]
fn every_function_gives_go_results() {
    for (src, want) in OK {
        match run(src) {
            Ok(got) => assert_eq!(&got, want, "{src}"),
            Err(e) => panic!("{src} failed: {e}\n{:?}", translate(src)),
        }
    }
}

#[test]
fn bad_arguments_are_errors_not_panics() {
    for (src, want) in ERR {
        match run(src) {
            Ok(got) => panic!("{src} should fail, got {got:?}"),
            Err(e) => assert!(e.to_string().contains(want), "{src}: {e}"),
        }
    }
}

/// Every registered function appears in at least one test template above.
#[test]
fn every_function_is_tested() {
    let mut words: std::collections::HashSet<String> = std::collections::HashSet::new();
    for src in OK.iter().map(|x| x.0).chain(ERR.iter().map(|x| x.0)) {
        for w in src.split(|c: char| !(c.is_alphanumeric() || c == '_')) {
            words.insert(w.to_string());
        }
    }
    // Tested in render_tests.rs (lazy lowering) rather than here.
    words.insert("and".into());
    words.insert("or".into());
    let missing: Vec<&str> = function_names().filter(|n| !words.contains(*n)).collect();
    assert!(missing.is_empty(), "functions without a test: {missing:?}");
}

#[test]
fn every_function_survives_any_arguments() {
    // Call each function with assorted argument shapes: errors are fine, panics are not.
    let samples = [
        "",
        "nil",
        "0",
        "-1",
        "1.5",
        "\"\"",
        "\"abc\"",
        "true",
        "(list)",
        "(list 1 \"a\")",
        "(dict)",
        "(dict \"a\" 1)",
        ".input.missing",
        "now",
    ];
    let r = Renderer::new(RenderOptions {
        fuel: 100_000,
        max_output_bytes: 1 << 16,
    });
    for name in function_names() {
        if name == "and" || name == "or" {
            continue;
        }
        for a in samples {
            for b in ["", " 2", " \"x\"", " (list 1)", " 99999999999"] {
                let src = format!("{{{{ {name} {a}{b} }}}}");
                let _ = r.render_dialect(Dialect::Utask, &src, &json!({}), None);
            }
        }
    }
}

#[test]
fn go_value_helpers() {
    assert_eq!(parse_go_int("0x1F"), Some(31));
    assert_eq!(parse_go_int("-0b101"), Some(-5));
    assert_eq!(parse_go_int("017"), Some(15));
    assert_eq!(parse_go_int("1__0"), None);
    assert_eq!(parse_go_int("99999999999999999999"), None);
    assert_eq!(to_int64(&Value::from("41")), 41);
    assert_eq!(to_int64(&Value::from("12.00")), 12);
    assert_eq!(to_int64(&Value::from("x")), 0);
    assert_eq!(to_int64(&Value::from(2.9)), 2);
    assert_eq!(to_float64(&Value::from(" 2.5 ")), 2.5);
    assert!(truth(&Value::from(vec![Value::from(1)])));
    assert!(!truth(&Value::UNDEFINED));
    assert!(is_go_function("default") && is_go_function("and") && !is_go_function("env"));
    assert!(unsupported_reason("env").is_some());
}
