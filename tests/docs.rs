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
