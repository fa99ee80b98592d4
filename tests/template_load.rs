//! Template loading against µTask's own engine test templates (conformance lint rows) and
//! mutask fixtures: every valid template loads, every invalid one reports µTask's message, and
//! problems carry exact file:line:column.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

use mutask::template::{
    FunctionSet, Problem, Severity, ValidationContext, load_all, load_functions_dir,
    load_template_files, load_templates_dir, parse_template,
};

const TEMPLATES: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../shared/conformance/utask/templates_tests"
);
const FUNCTIONS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../shared/conformance/utask/functions_tests"
);
const BAD_FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/templates_bad");

/// Conformance rows whose template must be refused, with the text µTask's error contains.
const ERROR_ROWS: &[(&str, &str)] = &[
    (
        "circularDependencies.yaml",
        "Invalid: circular dependency [stepOne stepThree stepTwo] <-> step",
    ),
    (
        "conditionForeachInvalid.yaml",
        "Unknown condition foreach: invalid",
    ),
    (
        "conditionForeachSkipOnly.yaml",
        "Step condition can set foreach on a skip condition",
    ),
    (
        "conditionForeachStepNotForeach.yaml",
        "Step condition cannot set foreach on a non-foreach step",
    ),
    (
        "customStates.yaml",
        "Custom state \"SERVER_ERROR\" is not allowed as it's a reserved state",
    ),
    (
        "forbiddenStateImpact.yaml",
        "Step condition cannot impact the state of step stepTwo, only those who belong to the dependency chain are allowed",
    ),
    (
        "functionEchoHelloWorldError.yaml",
        "Invalid executor action: missing function_args \"name\"",
    ),
    ("lintingError.yaml", "Variable notfound does not exist"),
    ("lintingReservedStep.yaml", "'this' step name is reserved"),
    ("lintingRootKey.yaml", "Variable grault does not exist"),
    (
        "orphanDependencies.yaml",
        "Invalid dependency, no step with that name: \"stepTwo\"",
    ),
    (
        "selfDependency.yaml",
        "Invalid: circular dependency [stepOne] <-> stepOne",
    ),
    (
        "stepDetailsLintingError.yaml",
        "Wrong step key: stepNotFound",
    ),
];

fn file_name(p: &Problem) -> String {
    p.file
        .as_deref()
        .and_then(|f| Path::new(f).file_name())
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn conformance_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(TEMPLATES)
        .expect("conformance templates dir")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    files
}

#[test]
fn conformance_directory_loads_with_exactly_the_expected_errors() {
    let (functions, report) = load_all(Path::new(TEMPLATES), Path::new(FUNCTIONS));
    assert_eq!(functions.len(), 6);
    assert_eq!(report.functions.len(), 6);

    // Errors by file.
    let mut errors: BTreeMap<String, Vec<&Problem>> = BTreeMap::new();
    for p in report.errors() {
        errors.entry(file_name(p)).or_default().push(p);
    }
    for (file, want) in ERROR_ROWS {
        let got = errors.get(*file).map(Vec::as_slice).unwrap_or_default();
        assert!(
            got.iter().any(|p| p.message.contains(want)),
            "{file}: expected an error containing {want:?}, got {got:#?}"
        );
        for p in got {
            assert!(p.line.is_some() && p.column.is_some(), "unlocated: {p}");
        }
    }
    // lintingObject.yaml reuses the name of lintingInfiniteOk.yaml (µTask upserts): in one
    // directory that is a duplicate, and nothing else is wrong with it.
    let dup = errors
        .get("lintingObject.yaml")
        .expect("duplicate name error");
    assert_eq!(dup.len(), 1, "{dup:#?}");
    assert!(dup[0].message.contains("already used by"), "{}", dup[0]);

    let expected_error_files: HashSet<&str> = ERROR_ROWS
        .iter()
        .map(|(f, _)| *f)
        .chain(["lintingObject.yaml"])
        .collect();
    let error_files: HashSet<&str> = errors.keys().map(String::as_str).collect();
    assert_eq!(
        error_files, expected_error_files,
        "unexpected errors: {errors:#?}"
    );

    // Every other file loaded.
    let loaded: HashSet<String> = report
        .templates
        .iter()
        .map(|t| {
            Path::new(&t.file)
                .file_name()
                .unwrap()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    for f in conformance_files() {
        let name = f.file_name().unwrap().to_string_lossy().into_owned();
        assert_eq!(
            loaded.contains(&name),
            !expected_error_files.contains(name.as_str()),
            "{name}"
        );
    }
    assert_eq!(report.templates.len(), 54 - 14);
    // Names are normalized.
    for name in [
        "simpletemplate",
        "variableeval",
        "input",
        "batchedtasktemplate",
        "no-output",
    ] {
        assert!(report.template(name).is_some(), "{name}");
    }
}

#[test]
fn each_conformance_file_alone_with_known_templates() {
    let (functions, fproblems) = load_functions_dir(Path::new(FUNCTIONS));
    assert!(fproblems.iter().all(|p| !p.is_error()), "{fproblems:#?}");
    // Names of every template (first pass), so subtask/batch references resolve.
    let all = load_templates_dir(Path::new(TEMPLATES), &functions);
    let mut known: HashSet<String> = all.templates.iter().map(|t| t.name.clone()).collect();
    known.insert("lintingok".into());
    let ctx = ValidationContext {
        functions: &functions,
        known_templates: Some(&known),
        plugin_types: None,
    };
    for path in conformance_files() {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let source = std::fs::read_to_string(&path).unwrap();
        let result = parse_template(&name, &source, &ctx);
        match ERROR_ROWS.iter().find(|(f, _)| *f == name) {
            Some((_, want)) => {
                let problems = result.expect_err(&name);
                assert!(
                    problems
                        .iter()
                        .any(|p| p.is_error() && p.message.contains(want)),
                    "{name}: {problems:#?}"
                );
            }
            None => {
                let t = result.unwrap_or_else(|p| panic!("{name}: {p:#?}"));
                assert!(t.warnings.iter().all(|w| w.severity == Severity::Warning));
            }
        }
    }
}

#[test]
fn compute_version_normalizes_json_schema() {
    let (functions, _) = load_functions_dir(Path::new(FUNCTIONS));
    let report = load_template_files(
        &[Path::new(TEMPLATES).join("computeVersion.yaml")],
        &functions,
    );
    assert!(!report.has_errors(), "{:#?}", report.problems);
    let t = &report.template("computeversion").expect("loaded").template;
    let schema_of = |step: &str| {
        t.steps[step].json_schema.as_ref().unwrap()["$schema"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let url = |n: u8| format!("http://json-schema.org/draft-0{n}/schema#");
    assert_eq!(schema_of("stepOne"), url(7));
    assert_eq!(schema_of("stepTwo"), url(6));
    assert_eq!(schema_of("stepThree"), url(4));
    assert_eq!(schema_of("stepFour"), url(4));
    assert_eq!(schema_of("stepFive"), url(7));
    assert_eq!(schema_of("stepSix"), url(7));
    assert!(
        t.steps["stepFour"]
            .json_schema
            .as_ref()
            .unwrap()
            .get("version")
            .is_none()
    );
}

#[test]
fn tab_indented_template_loads_with_a_warning() {
    let report = load_template_files(
        &[Path::new(TEMPLATES).join("simple.yaml")],
        &FunctionSet::new(),
    );
    assert!(!report.has_errors(), "{:#?}", report.problems);
    let t = report.template("simpletemplate").expect("loaded");
    assert_eq!(t.template.steps.len(), 3);
    let w: Vec<&Problem> = report.warnings().collect();
    assert_eq!(w.len(), 1, "{w:#?}");
    assert!(
        w[0].message.contains("TAB") && w[0].message.contains("line 5"),
        "{}",
        w[0]
    );
    assert_eq!(w[0].line, Some(5));
}

#[test]
fn unknown_keys_are_warnings() {
    let report = load_template_files(
        &[Path::new(TEMPLATES).join("foreachAndPreRun.yaml")],
        &FunctionSet::new(),
    );
    assert!(!report.has_errors(), "{:#?}", report.problems);
    let w: Vec<&Problem> = report.warnings().collect();
    assert_eq!(w.len(), 1, "{w:#?}");
    assert_eq!(w[0].path, "allowed_resolver_tokens");
    assert_eq!((w[0].line, w[0].column), (Some(7), Some(1)));
}

#[test]
fn bad_fixture_directory_reports_every_problem_and_loads_the_good_templates() {
    let report = load_templates_dir(Path::new(BAD_FIXTURES), &FunctionSet::new());
    let mut names: Vec<&str> = report.templates.iter().map(|t| t.name.as_str()).collect();
    names.sort_unstable();
    assert_eq!(names, vec!["good-one", "good-two", "nested-good"]);

    let errors = |file: &str| -> Vec<&Problem> {
        report.errors().filter(|p| file_name(p) == file).collect()
    };

    // Three distinct errors in different places, with exact positions.
    let three = errors("three_errors.yaml");
    let got: Vec<(u32, &str)> = three
        .iter()
        .map(|p| (p.line.unwrap(), p.path.as_str()))
        .collect();
    assert_eq!(
        got,
        vec![
            (6, "inputs[0].regex"),
            (14, "steps.second.dependencies[1]"),
            (26, "steps.second.conditions[0].then.this"),
        ],
        "{three:#?}"
    );
    assert!(
        three[0]
            .message
            .contains("Invalid regex for input 'target'")
    );
    assert!(
        three[1]
            .message
            .contains("Invalid dependency, no step with that name: \"ghost\"")
    );
    assert!(
        three[2]
            .message
            .contains("Step condition implies invalid state for step second: NOT_A_STATE")
    );
    assert_eq!((three[1].column, three[2].column), (Some(27), Some(11)));
    assert!(
        three[1]
            .to_string()
            .ends_with("three_errors.yaml:14:27: error: template 'three-errors': steps.second.dependencies[1]: Invalid dependency, no step with that name: \"ghost\""),
        "{}",
        three[1]
    );

    // YAML syntax error: located.
    let syntax = errors("syntax_error.yaml");
    assert_eq!(syntax.len(), 1, "{syntax:#?}");
    assert!(
        syntax[0].message.contains("YAML syntax error"),
        "{}",
        syntax[0]
    );
    assert!(syntax[0].line.is_some() && syntax[0].column.is_some());

    // Type error: located and naming the field.
    let typed = errors("type_error.yaml");
    assert_eq!(typed.len(), 1, "{typed:#?}");
    assert_eq!(typed[0].path, "retry_max");
    assert_eq!((typed[0].line, typed[0].column), (Some(4), Some(12)));
    assert!(
        typed[0]
            .to_string()
            .contains("retry_max: invalid type: string \"abc\""),
        "{}",
        typed[0]
    );

    // Dotfiles are skipped.
    assert!(
        report
            .problems
            .iter()
            .all(|p| !file_name(p).starts_with('.'))
    );
}

#[test]
fn missing_directories_give_empty_reports() {
    let report = load_templates_dir(
        Path::new("/nonexistent/mutask/templates"),
        &FunctionSet::new(),
    );
    assert!(report.templates.is_empty());
    assert!(!report.has_errors());
    assert_eq!(report.warnings().count(), 1);
    let (set, problems) = load_functions_dir(Path::new("/nonexistent/mutask/functions"));
    assert!(set.is_empty());
    assert!(problems.iter().all(|p| !p.is_error()));
}

#[test]
fn duplicate_function_names_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("a.yaml"),
        "name: my::fn\naction: {type: echo, configuration: {output: x}}\n",
    )
    .unwrap();
    std::fs::create_dir(dir.path().join("nested")).unwrap();
    std::fs::write(
        dir.path().join("nested/b.yaml"),
        "name: my::fn\naction: {type: echo}\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("c.yaml"),
        "name: my::broken\naction: {type: nothing::here}\n",
    )
    .unwrap();
    let (set, problems) = load_functions_dir(dir.path());
    assert_eq!(set.len(), 2);
    let errs: Vec<&Problem> = problems.iter().filter(|p| p.is_error()).collect();
    assert_eq!(errs.len(), 2, "{errs:#?}");
    assert!(
        errs.iter()
            .any(|p| p.message.contains("function already exists")
                && file_name(p) == "b.yaml"
                && p.line == Some(1))
    );
    assert!(
        errs.iter().any(
            |p| p.message.contains("unknown action type \"nothing::here\"") && p.line == Some(2)
        )
    );
    assert!(set.is_invalid("my::broken"));

    // A template using the broken function is refused with a clear message.
    let ctx = ValidationContext::new(&set);
    let err = parse_template(
        "t.yaml",
        "name: uses-broken\ndescription: uses a broken function\ntitle_format: title\nsteps:\n  a:\n    action: {type: 'my::broken'}\n",
        &ctx,
    )
    .unwrap_err();
    assert!(
        err.iter()
            .any(|p| p.message.contains("is invalid") && p.line == Some(6)),
        "{err:#?}"
    );
}
