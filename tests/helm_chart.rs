//! The Helm chart (`deploy/helm/mutask`), rendered without a `helm` binary: its templates use
//! only Go-template functions mutask's own µTask-dialect renderer knows, so each one is
//! translated and rendered here with the chart's values (plus overrides), and the manifests are
//! parsed and checked: kinds, selectors matching pod labels, probes on the health routes, the
//! role of each Deployment, secrets, templates mounted from a ConfigMap, the ingress.

use std::path::PathBuf;

use mutask::template::dialect::translate;
use mutask::template::render::{RenderOptions, Renderer};
use serde_json::{Value, json};

fn chart() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("deploy/helm/mutask")
}

fn merge(base: &mut Value, over: &Value) {
    match (base, over) {
        (Value::Object(b), Value::Object(o)) => {
            for (k, v) in o {
                merge(b.entry(k.clone()).or_insert(Value::Null), v);
            }
        }
        (b, o) => *b = o.clone(),
    }
}

/// Every rendered manifest (kind → documents), or the first rendering error.
fn render(overrides: Value) -> Result<Vec<Value>, String> {
    let mut values: Value =
        serde_yaml::from_str(&std::fs::read_to_string(chart().join("values.yaml")).unwrap())
            .unwrap();
    merge(&mut values, &overrides);
    let chart_meta: Value =
        serde_yaml::from_str(&std::fs::read_to_string(chart().join("Chart.yaml")).unwrap())
            .unwrap();
    let ctx = json!({
        "Values": values,
        "Release": {"Name": "demo", "Namespace": "default"},
        "Chart": {"Name": chart_meta["name"], "Version": chart_meta["version"], "AppVersion": chart_meta["appVersion"]},
    });
    let renderer = Renderer::new(RenderOptions::default());
    let mut docs = Vec::new();
    let mut files: Vec<_> = std::fs::read_dir(chart().join("templates"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    files.sort();
    for f in files {
        let src = std::fs::read_to_string(&f).unwrap();
        let jinja = translate(&src).map_err(|e| format!("{}: {e}", f.display()))?;
        let out = renderer
            .render(&jinja, &ctx, None)
            .map_err(|e| format!("{}: {e}", f.display()))?;
        assert!(
            !out.contains("<no value>"),
            "{}: a value is missing:\n{out}",
            f.display()
        );
        if out.trim().is_empty() {
            continue;
        }
        let doc: Value = serde_yaml::from_str(&out)
            .unwrap_or_else(|e| panic!("{} renders invalid YAML: {e}\n{out}", f.display()));
        assert!(
            doc["apiVersion"].is_string() && doc["kind"].is_string(),
            "{}: {doc}",
            f.display()
        );
        docs.push(doc);
    }
    Ok(docs)
}

fn kinds(docs: &[Value]) -> Vec<String> {
    let mut k: Vec<String> = docs
        .iter()
        .map(|d| {
            format!(
                "{}/{}",
                d["kind"].as_str().unwrap(),
                d["metadata"]["name"].as_str().unwrap()
            )
        })
        .collect();
    k.sort();
    k
}

fn find<'a>(docs: &'a [Value], kind: &str, name: &str) -> &'a Value {
    docs.iter()
        .find(|d| d["kind"] == kind && d["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} {name}"))
}

fn env(container: &Value, name: &str) -> Option<String> {
    container["env"]
        .as_array()?
        .iter()
        .find(|e| e["name"] == name)
        .map(|e| e["value"].as_str().unwrap_or_default().to_string())
}

fn required() -> Value {
    json!({"database": {"url": "postgres://mutask:pw@pg:5432/mutask"}, "encryptionKeys": "k1:AAAA",
           "basicAuth": "admin:$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaA"})
}

#[test]
fn defaults_give_instances_a_service_a_secret_and_a_disruption_budget() {
    let docs = render(required()).unwrap();
    assert_eq!(
        kinds(&docs),
        [
            "Deployment/demo-mutask",
            "PodDisruptionBudget/demo-mutask",
            "Secret/demo-mutask",
            "Service/demo-mutask"
        ]
    );
    let d = find(&docs, "Deployment", "demo-mutask");
    assert_eq!(d["spec"]["replicas"], 2);
    let labels = &d["spec"]["template"]["metadata"]["labels"];
    let selector = &d["spec"]["selector"]["matchLabels"];
    for (k, v) in selector.as_object().unwrap() {
        assert_eq!(&labels[k], v, "the selector matches the pod labels");
    }
    let c = &d["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(c["args"], json!(["serve", "--role", "all"]));
    assert_eq!(c["livenessProbe"]["httpGet"]["path"], "/unsecured/mon/ping");
    assert_eq!(
        c["readinessProbe"]["httpGet"]["path"],
        "/unsecured/mon/ready"
    );
    assert_eq!(c["envFrom"][0]["secretRef"]["name"], "demo-mutask");
    assert_eq!(env(c, "MUTASK_LISTEN").as_deref(), Some("0.0.0.0:8081"));
    assert_eq!(c["resources"]["limits"]["memory"], "512Mi");
    assert_eq!(
        d["spec"]["template"]["spec"]["securityContext"]["runAsUser"],
        10001
    );
    let svc = find(&docs, "Service", "demo-mutask");
    for (k, v) in svc["spec"]["selector"].as_object().unwrap() {
        assert_eq!(&labels[k], v, "the Service selects the pods");
    }
    assert_eq!(svc["spec"]["ports"][0]["port"], 8081);
    let pdb = find(&docs, "PodDisruptionBudget", "demo-mutask");
    assert_eq!(pdb["spec"]["selector"]["matchLabels"], *selector);
    let secret = find(&docs, "Secret", "demo-mutask");
    assert_eq!(secret["stringData"]["MUTASK_ENCRYPTION_KEYS"], "k1:AAAA");
}

#[test]
fn workers_ingress_templates_and_an_existing_secret() {
    let template =
        "name: hello\ndescription: \"Say: hello\"\nsteps:\n  a:\n    action: {type: echo}\n";
    let mut o = required();
    merge(
        &mut o,
        &json!({
            "role": "api",
            "worker": {"enabled": true, "replicaCount": 3},
            "existingSecret": "my-mutask",
            "ingress": {"enabled": true, "host": "mutask.example.org", "className": "nginx",
                        "tls": {"enabled": true, "secretName": "tls"}},
            "templates": {"hello.yaml": template},
            "extraEnv": {"MUTASK_LOG_FORMAT": "json", "MUTASK_LEASE_SECONDS": "30"},
            "baseUrl": "https://mutask.example.org",
        }),
    );
    let docs = render(o).unwrap();
    assert_eq!(
        kinds(&docs),
        [
            "ConfigMap/demo-mutask-templates",
            "Deployment/demo-mutask",
            "Deployment/demo-mutask-worker",
            "Ingress/demo-mutask",
            "PodDisruptionBudget/demo-mutask",
            "PodDisruptionBudget/demo-mutask-worker",
            "Service/demo-mutask"
        ],
        "no Secret when an existing one is named"
    );
    let api = &find(&docs, "Deployment", "demo-mutask")["spec"]["template"]["spec"];
    let worker = find(&docs, "Deployment", "demo-mutask-worker");
    assert_eq!(worker["spec"]["replicas"], 3);
    let wspec = &worker["spec"]["template"]["spec"];
    assert_eq!(
        api["containers"][0]["args"],
        json!(["serve", "--role", "api"])
    );
    assert_eq!(
        wspec["containers"][0]["args"],
        json!(["serve", "--role", "worker"])
    );
    let wpdb = find(&docs, "PodDisruptionBudget", "demo-mutask-worker");
    assert_eq!(
        wpdb["spec"]["selector"]["matchLabels"], worker["spec"]["selector"]["matchLabels"],
        "the worker budget selects the worker pods"
    );
    for spec in [api, wspec] {
        let c = &spec["containers"][0];
        assert_eq!(c["startupProbe"]["httpGet"]["path"], "/unsecured/mon/ready");
        assert_eq!(c["securityContext"]["allowPrivilegeEscalation"], false);
        assert_eq!(c["envFrom"][0]["secretRef"]["name"], "my-mutask");
        assert_eq!(env(c, "MUTASK_LOG_FORMAT").as_deref(), Some("json"));
        assert_eq!(
            env(c, "MUTASK_BASE_URL").as_deref(),
            Some("https://mutask.example.org")
        );
        assert_eq!(c["volumeMounts"][0]["mountPath"], "/etc/mutask/templates");
        assert_eq!(
            spec["volumes"][0]["configMap"]["name"],
            "demo-mutask-templates"
        );
    }
    // the worker pods are not behind the Service
    let svc = find(&docs, "Service", "demo-mutask");
    assert_eq!(
        svc["spec"]["selector"]["app.kubernetes.io/component"],
        "server"
    );
    let cm = find(&docs, "ConfigMap", "demo-mutask-templates");
    assert_eq!(
        cm["data"]["hello.yaml"], template,
        "the template text survives quoting"
    );
    let ing = find(&docs, "Ingress", "demo-mutask");
    assert_eq!(ing["spec"]["rules"][0]["host"], "mutask.example.org");
    assert_eq!(ing["spec"]["ingressClassName"], "nginx");
    assert_eq!(ing["spec"]["tls"][0]["secretName"], "tls");
    assert_eq!(
        ing["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]["name"],
        "demo-mutask"
    );
}

#[test]
fn missing_required_values_fail_with_a_message() {
    let e = render(json!({"encryptionKeys": "k1:AAAA"})).unwrap_err();
    assert!(e.contains("database.url is required"), "{e}");
    let e = render(json!({"database": {"url": "postgres://x"}})).unwrap_err();
    assert!(e.contains("encryptionKeys is required"), "{e}");
    // every replica must share one admin credential
    let mut no_auth = required();
    no_auth.as_object_mut().unwrap().remove("basicAuth");
    let e = render(no_auth).unwrap_err();
    assert!(e.contains("basicAuth is required"), "{e}");
    // with an existing Secret nothing else is required
    assert!(render(json!({"existingSecret": "s"})).is_ok());
}
