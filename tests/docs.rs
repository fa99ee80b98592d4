//! Documentation stays true: every builtin action has `docs/actions/<name>.md`, identical to its
//! module's `//!` reference page (house rule 8), and the README states the conformance count.

use std::path::PathBuf;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn module_doc(path: &std::path::Path) -> String {
    let src = std::fs::read_to_string(path).unwrap();
    let mut out = Vec::new();
    for line in src.lines() {
        match line.strip_prefix("//!") {
            Some(rest) => out.push(rest.strip_prefix(' ').unwrap_or(rest).to_string()),
            None => break,
        }
    }
    out.join("\n") + "\n"
}

#[test]
fn every_action_has_its_reference_page() {
    let registry = mutask::action::Registry::builtin();
    assert!(!registry.names().is_empty());
    for name in registry.names() {
        let doc = root().join(format!("docs/actions/{name}.md"));
        let page = std::fs::read_to_string(&doc)
            .unwrap_or_else(|_| panic!("{} is missing", doc.display()));
        let module = module_doc(&root().join(format!("src/action/{name}.rs")));
        assert_eq!(
            page, module,
            "docs/actions/{name}.md differs from src/action/{name}.rs's //! doc"
        );
        assert!(
            page.contains("```yaml"),
            "{name}: the page needs a YAML example"
        );
    }
}

#[test]
fn readme_states_the_conformance_count() {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    assert!(
        readme.contains("µTask engine conformance: 54/54"),
        "README must state the conformance count"
    );
}

#[test]
fn the_readme_names_every_environment_variable() {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let config = std::fs::read_to_string(root().join("src/config.rs")).unwrap();
    let names: Vec<&str> = config
        .split("env = \"")
        .skip(1)
        .filter_map(|rest| rest.split('"').next())
        .collect();
    assert!(names.len() > 30, "found only {names:?} in src/config.rs");
    let missing: Vec<&&str> = names.iter().filter(|n| !readme.contains(**n)).collect();
    assert!(missing.is_empty(), "README.md does not name {missing:?}");
}

/// The fields of the configuration table (`| field | type | meaning |`) of a reference page.
fn table_fields(page: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut in_table = false;
    for line in page.lines() {
        let t = line.trim();
        if t.starts_with("| field |") {
            in_table = true;
            continue;
        }
        if !in_table {
            continue;
        }
        if !t.starts_with('|') {
            break;
        }
        let first = t
            .trim_start_matches('|')
            .split('|')
            .next()
            .unwrap_or("")
            .trim();
        if first.starts_with("---") {
            continue;
        }
        // `name`, or `a`, `b` / `a` / `b` for fields sharing a row
        for name in first.split([',', '/']) {
            let name = name.trim().trim_matches('`');
            if !name.is_empty() {
                out.push(name.to_string());
            }
        }
    }
    out
}

#[test]
fn every_builtin_schema_matches_its_configuration_table() {
    let mut differ = Vec::new();
    for name in mutask::action::schema::BUILTINS {
        let page = std::fs::read_to_string(root().join(format!("docs/actions/{name}.md")))
            .unwrap_or_else(|_| panic!("docs/actions/{name}.md is missing"));
        let mut documented = table_fields(&page);
        documented.sort();
        let schema = mutask::action::schema::builtin(name).unwrap();
        let mut published: Vec<String> = schema["properties"]
            .as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect();
        published.sort();
        if documented != published {
            let only_doc: Vec<&String> = documented
                .iter()
                .filter(|f| !published.contains(f))
                .collect();
            let only_schema: Vec<&String> = published
                .iter()
                .filter(|f| !documented.contains(f))
                .collect();
            differ.push(format!(
                "{name}: only in docs/actions/{name}.md {only_doc:?}, only in the schema {only_schema:?}"
            ));
        }
    }
    assert!(
        differ.is_empty(),
        "configuration tables vs the schemas served by GET /action:\n{}",
        differ.join("\n")
    );
}

#[test]
fn the_plugin_page_is_the_plugin_modules_doc_and_the_index_lists_every_page() {
    let page = std::fs::read_to_string(root().join("docs/actions/plugin.md")).unwrap();
    assert_eq!(
        page,
        module_doc(&root().join("src/action/plugin.rs")),
        "docs/actions/plugin.md differs from src/action/plugin.rs's //! doc"
    );
    assert!(page.contains("```yaml"), "plugin.md needs a YAML example");
    let index = std::fs::read_to_string(root().join("docs/actions/README.md")).unwrap();
    for entry in std::fs::read_dir(root().join("docs/actions")).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().into_owned();
        if name != "README.md" {
            assert!(
                index.contains(&format!("]({name})")),
                "docs/actions/README.md does not link {name}"
            );
        }
    }
    assert!(
        index.contains("no `cache` action"),
        "the index explains why cache is not built"
    );
}

/// `Cargo.toml` builds one test binary (`autotests = false`, `tests/main.rs`): a file in
/// `tests/` that `tests/main.rs` does not declare would never be compiled nor run.
#[test]
fn every_test_file_is_a_module_of_the_suite() {
    let main = std::fs::read_to_string(root().join("tests/main.rs")).unwrap();
    let declared: std::collections::BTreeSet<&str> = main
        .lines()
        .filter_map(|l| l.trim().strip_prefix("mod ")?.strip_suffix(';'))
        .collect();
    let mut files = Vec::new();
    for entry in std::fs::read_dir(root().join("tests")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "rs") {
            let stem = path.file_stem().unwrap().to_string_lossy().into_owned();
            if stem != "main" {
                files.push(stem);
            }
        }
    }
    assert!(files.len() > 30, "found only {files:?} in tests/");
    let missing: Vec<&String> = files
        .iter()
        .filter(|f| !declared.contains(f.as_str()))
        .collect();
    assert!(
        missing.is_empty(),
        "tests/main.rs does not declare {missing:?} (add `mod <name>;`, or the file is never built)"
    );
    assert!(declared.contains("common"), "tests/main.rs declares common");
}
