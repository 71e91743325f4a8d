//! examples/kubernetes: every manifest validated against the Kubernetes
//! schemas (kubernetes-validate, pinned in tests/kubernetes/requirements.txt
//! and installed into tests/kubernetes/.venv by `make test`; the schemas
//! ship in the package, so this runs offline), and what the schemas cannot
//! see checked here: the ConfigMap's portcullis.toml loads and runs, the
//! probes and the ServiceMonitor hit the admin listener's real paths, the
//! sidecar's app is reachable only through Portcullis, and the Ingress
//! annotations agree with the configuration.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_yaml::Value;

use crate::ops::cli::{Child, wait_ready};
use crate::support::env::*;

const BIN: &str = env!("CARGO_BIN_EXE_portcullis");

fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/kubernetes")
}

/// Every document of every `*.yaml` under `dir`, with its file.
fn documents(dir: &Path) -> Vec<(PathBuf, Value)> {
    let mut files: Vec<PathBuf> = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "yaml") {
                files.push(p);
            }
        }
    }
    files.sort();
    let mut out = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        for de in serde_yaml::Deserializer::from_str(&text) {
            let v = <Value as serde::Deserialize>::deserialize(de)
                .unwrap_or_else(|e| panic!("{}: {e}", f.display()));
            if !v.is_null() {
                out.push((f.clone(), v));
            }
        }
    }
    out
}

fn s(v: &Value) -> &str {
    v.as_str().unwrap_or_else(|| panic!("not a string: {v:?}"))
}

fn seq(v: &Value) -> &[Value] {
    v.as_sequence().map(Vec::as_slice).unwrap_or_default()
}

/// The one document of `kind` named `name`.
fn find<'a>(docs: &'a [(PathBuf, Value)], kind: &str, name: &str) -> &'a Value {
    let hits: Vec<&Value> = docs
        .iter()
        .map(|(_, d)| d)
        .filter(|d| d["kind"] == kind && d["metadata"]["name"] == name)
        .collect();
    assert_eq!(hits.len(), 1, "expected one {kind} `{name}`");
    hits[0]
}

fn of_kind<'a>(docs: &'a [(PathBuf, Value)], kind: &str) -> Vec<&'a Value> {
    docs.iter()
        .map(|(_, d)| d)
        .filter(|d| d["kind"] == kind)
        .collect()
}

fn python() -> PathBuf {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/kubernetes/.venv/bin/python");
    assert!(
        p.exists(),
        "{} missing: run `make test` once (it installs tests/kubernetes/requirements.txt)",
        p.display()
    );
    p
}

/// tests/kubernetes/validate.py on `dir`: its exit status and one JSON
/// object per document.
fn validate(dir: &Path) -> (bool, Vec<serde_json::Value>) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/kubernetes/validate.py");
    let out = Command::new(python())
        .arg(script)
        .arg(dir)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let lines = stdout
        .lines()
        .map(|l| {
            serde_json::from_str(l).unwrap_or_else(|e| {
                panic!(
                    "validate.py printed a non-JSON line ({e}): {l}\n{}",
                    String::from_utf8_lossy(&out.stderr)
                )
            })
        })
        .collect();
    (out.status.success(), lines)
}

#[test]
fn manifests_validate_against_the_kubernetes_schemas() {
    let (ok, results) = validate(&examples());
    let failures: Vec<&serde_json::Value> =
        results.iter().filter(|r| !r["error"].is_null()).collect();
    assert!(
        ok && failures.is_empty(),
        "manifests fail validation: {failures:#?}"
    );
    // Every document was seen by the validator, none skipped.
    let docs = documents(&examples());
    assert_eq!(results.len(), docs.len(), "{results:#?}");
    let kinds: BTreeMap<String, usize> = results.iter().fold(BTreeMap::new(), |mut m, r| {
        *m.entry(r["kind"].as_str().unwrap().to_owned()).or_default() += 1;
        m
    });
    for kind in [
        "ConfigMap",
        "Secret",
        "Deployment",
        "Service",
        "ServiceMonitor",
        "Ingress",
        "NetworkPolicy",
    ] {
        assert!(kinds.contains_key(kind), "no {kind} validated: {kinds:?}");
    }
}

#[test]
fn validator_refuses_what_a_cluster_would() {
    // The negative control: each document below is wrong in one way the
    // validator must catch (a wrong type, an unknown field under strict,
    // a misspelt ServiceMonitor field, a kind without a schema).
    let dir = tempfile::tempdir().unwrap();
    let bad = [
        (
            "replicas.yaml",
            "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x}\nspec:\n  replicas: \"one\"\n  selector: {matchLabels: {a: b}}\n  template:\n    metadata: {labels: {a: b}}\n    spec:\n      containers: [{name: c, image: i}]\n",
        ),
        (
            "unknown-field.yaml",
            "apiVersion: v1\nkind: Service\nmetadata: {name: y}\nspec:\n  ports: [{port: 80, prot: TCP}]\n",
        ),
        (
            "servicemonitor.yaml",
            "apiVersion: monitoring.coreos.com/v1\nkind: ServiceMonitor\nmetadata: {name: z}\nspec:\n  selector: {matchLabels: {a: b}}\n  endpoints: [{port: admin, pth: /metrics}]\n",
        ),
        (
            "crd.yaml",
            "apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w}\n",
        ),
    ];
    for (name, text) in bad {
        std::fs::write(dir.path().join(name), text).unwrap();
    }
    let (ok, results) = validate(dir.path());
    assert!(!ok, "{results:#?}");
    assert_eq!(results.len(), bad.len(), "{results:#?}");
    for r in &results {
        assert!(!r["error"].is_null(), "a broken document passed: {r:#?}");
    }
    let by_file = |f: &str| {
        results
            .iter()
            .find(|r| r["file"].as_str().unwrap().ends_with(f))
            .unwrap()["error"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    assert!(by_file("replicas.yaml").contains("replicas"));
    assert!(by_file("unknown-field.yaml").contains("prot"));
    assert!(by_file("servicemonitor.yaml").contains("pth"));
}

/// What the Deployment's `portcullis` container runs with: the
/// configuration text (from the ConfigMap it mounts at the `--config`
/// path) and the environment its Secret references provide.
struct Pod<'a> {
    deployment: &'a Value,
    container: &'a Value,
    config: String,
    /// Variable -> the Secret's placeholder value.
    secret_env: BTreeMap<String, String>,
}

fn portcullis_pod<'a>(docs: &'a [(PathBuf, Value)], deployment: &str) -> Pod<'a> {
    let d = find(docs, "Deployment", deployment);
    let spec = &d["spec"]["template"]["spec"];
    let container = seq(&spec["containers"])
        .iter()
        .find(|c| c["name"] == "portcullis")
        .expect("a container named portcullis");
    let args: Vec<&str> = seq(&container["args"]).iter().map(s).collect();
    let at = args
        .iter()
        .position(|a| *a == "--config")
        .expect("args name --config");
    let config_path = Path::new(args[at + 1]);
    // The Dockerfile's default command reads the same path.
    let dockerfile =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docker/Dockerfile"))
            .unwrap();
    assert!(
        dockerfile.contains(&format!("\"{}\"", config_path.display())),
        "the Dockerfile's CMD reads another config path than {}",
        config_path.display()
    );
    let mount = seq(&container["volumeMounts"])
        .iter()
        .find(|m| config_path.parent() == Some(Path::new(s(&m["mountPath"]))))
        .expect("a volume mounted at the config file's directory");
    let volume = seq(&spec["volumes"])
        .iter()
        .find(|v| v["name"] == mount["name"])
        .unwrap();
    let file = config_path.file_name().unwrap().to_str().unwrap();
    let item = seq(&volume["configMap"]["items"])
        .iter()
        .find(|i| i["path"] == file)
        .expect("the ConfigMap item that becomes the config file");
    let cm = find(docs, "ConfigMap", s(&volume["configMap"]["name"]));
    let config = s(&cm["data"][s(&item["key"])]).to_owned();
    let mut secret_env = BTreeMap::new();
    for e in seq(&container["env"]) {
        let r = &e["valueFrom"]["secretKeyRef"];
        if r.is_null() {
            continue;
        }
        let secret = find(docs, "Secret", s(&r["name"]));
        let value = &secret["stringData"][s(&r["key"])];
        assert!(
            value.is_string(),
            "Secret {} has no key {}",
            s(&r["name"]),
            s(&r["key"])
        );
        secret_env.insert(s(&e["name"]).to_owned(), s(value).to_owned());
    }
    // Every ${NAME} in the file comes from the container's environment.
    for part in config.split("${").skip(1) {
        let name = part.split('}').next().unwrap();
        assert!(
            secret_env.contains_key(name),
            "portcullis.toml reads ${{{name}}}, which the container's env does not set from its Secret"
        );
    }
    Pod {
        deployment: d,
        container,
        config,
        secret_env,
    }
}

/// The container's port named `name`.
fn container_port(container: &Value, name: &str) -> u16 {
    let p = seq(&container["ports"])
        .iter()
        .find(|p| p["name"] == name)
        .unwrap_or_else(|| panic!("no container port named {name}"));
    p["containerPort"].as_u64().unwrap() as u16
}

/// A probe's or ServiceMonitor's port (a name or a number) as a number.
fn resolve_port(container: &Value, port: &Value) -> u16 {
    match port.as_u64() {
        Some(n) => n as u16,
        None => container_port(container, s(port)),
    }
}

fn check(config: &str, env: &BTreeMap<String, String>) -> std::process::Output {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("portcullis.toml");
    std::fs::write(&path, config).unwrap();
    Command::new(BIN)
        .args(["check", "--config"])
        .arg(&path)
        .env_remove("PORTCULLIS_SESSION_KEY")
        .env_remove("PORTCULLIS_STORE_KEY")
        .envs(env)
        .output()
        .unwrap()
}

/// Values of the shape the Secret's comments ask for.
fn real_secrets(pod: &Pod<'_>) -> BTreeMap<String, String> {
    let mut env = BTreeMap::new();
    for name in pod.secret_env.keys() {
        let v = match name.as_str() {
            "PORTCULLIS_SESSION_KEY" => KEY_A,
            "PORTCULLIS_STORE_KEY" => STORE_KEY,
            other => panic!("no test value for {other}"),
        };
        env.insert(name.clone(), v.to_owned());
    }
    env
}

/// The configuration without its `[forward_auth]` tables: what the
/// forward-auth-less binary of today can load. The full file is checked by
/// `standalone_forward_auth_config_loads`.
pub(super) fn without_forward_auth(text: &str) -> String {
    let mut out = String::new();
    let mut skipping = false;
    for line in text.lines() {
        let t = line.trim_start();
        if t.starts_with('[') {
            skipping = t.starts_with("[forward_auth]") || t.starts_with("[[forward_auth.");
        }
        if !skipping {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

fn load(text: &str, env: &BTreeMap<String, String>) -> portcullis::config::Config {
    portcullis::config::from_str(text, "portcullis.toml", &|n| env.get(n).cloned())
        .unwrap_or_else(|e| panic!("{e:?}"))
}

fn port_of(address: &str) -> u16 {
    address.parse::<SocketAddr>().unwrap().port()
}

/// Replaces `from` (which must occur exactly once) with `to`.
fn swap(text: &str, from: &str, to: &str) -> String {
    assert_eq!(
        text.matches(from).count(),
        1,
        "expected `{from}` once in the example config"
    );
    text.replace(from, to)
}

/// Runs the real binary on the example's configuration, with its
/// addresses moved to loopback ports and its store to a private temp dir,
/// and checks that the probes and the ServiceMonitor answer on the admin
/// listener and nowhere else.
async fn runs_and_answers_its_probes(dir: &str, deployment: &str, forward_auth: bool) {
    let docs = documents(&examples().join(dir));
    let pod = portcullis_pod(&docs, deployment);
    let env = real_secrets(&pod);

    // The Secret as shipped is refused: nobody runs on a published key.
    let out = check(&without_forward_auth(&pod.config), &pod.secret_env);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(78), "placeholders accepted: {err}");
    assert!(
        err.contains("session.keys") && err.contains("store.encryption_key"),
        "{err}"
    );

    let text = if forward_auth {
        pod.config.clone()
    } else {
        let t = without_forward_auth(&pod.config);
        if pod.config.contains("[forward_auth]") {
            assert_ne!(t, pod.config);
        }
        t
    };
    let out = check(&text, &env);
    assert!(
        out.status.success(),
        "{dir}: portcullis check refuses the ConfigMap's portcullis.toml:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let cfg = load(&text, &env);

    // Ports: the config's listeners are the container's named ports, and
    // both listen on every interface (the kubelet and the Service use the
    // pod IP).
    let http = container_port(pod.container, "http");
    let admin = container_port(pod.container, "admin");
    assert_eq!(port_of(&cfg.admin.address), admin);
    assert!(cfg.admin.address.starts_with("0.0.0.0:"));
    assert!(cfg.listeners.iter().any(|l| port_of(&l.address) == http));

    // Probes: the admin port, the real health paths (answered 200 below).
    // Liveness must be /healthz: /readyz fails while the store is down, and
    // a liveness probe on it would restart every pod during a database
    // outage.
    let mut paths = Vec::new();
    for (probe, want) in [("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")] {
        let get = &pod.container[probe]["httpGet"];
        assert_eq!(
            resolve_port(pod.container, &get["port"]),
            admin,
            "{dir}: {probe} must use the admin listener"
        );
        assert_eq!(s(&get["path"]), want, "{dir}: {probe}");
        paths.push(want.to_owned());
    }
    // The ServiceMonitor scrapes a Service port that reaches the admin port.
    for sm in of_kind(&docs, "ServiceMonitor") {
        let selector = &sm["spec"]["selector"]["matchLabels"];
        let svc = of_kind(&docs, "Service")
            .into_iter()
            .find(|svc| {
                svc["metadata"]["labels"] == *selector || svc["spec"]["selector"] == *selector
            })
            .expect("a Service the ServiceMonitor selects");
        for ep in seq(&sm["spec"]["endpoints"]) {
            let port = seq(&svc["spec"]["ports"])
                .iter()
                .find(|p| p["name"] == ep["port"])
                .expect("the ServiceMonitor's port is a Service port name");
            assert_eq!(resolve_port(pod.container, &port["targetPort"]), admin);
            paths.push(s(&ep["path"]).to_owned());
        }
    }
    assert!(paths.iter().any(|p| p == "/metrics"), "{paths:?}");

    // Storage: the root filesystem is read-only, so the SQLite directory
    // and /tmp (pingora's pid file) must be writable volumes, and the store
    // must sit in a subdirectory Portcullis creates 0700 (a volume's root
    // is group/world-writable, which the store refuses).
    assert_eq!(
        pod.container["securityContext"]["readOnlyRootFilesystem"],
        true
    );
    let mounts: Vec<(String, bool)> = seq(&pod.container["volumeMounts"])
        .iter()
        .map(|m| (s(&m["mountPath"]).to_owned(), m["readOnly"] == true))
        .collect();
    let writable = |p: &Path| {
        mounts
            .iter()
            .any(|(m, ro)| !ro && p.starts_with(m) && p != Path::new(m))
    };
    assert!(writable(Path::new("/tmp/portcullis.pid")), "{mounts:?}");
    let db = cfg
        .store
        .url
        .strip_prefix("sqlite://")
        .expect("the example uses SQLite");
    let db_dir = Path::new(db).parent().unwrap();
    assert!(
        writable(db_dir),
        "the store directory {} must be a subdirectory of a writable volume: {mounts:?}",
        db_dir.display()
    );
    // The uid matches the image's USER, which owns /var/lib/portcullis.
    let uid = pod.container["securityContext"]["runAsUser"]
        .as_u64()
        .or(pod.deployment["spec"]["template"]["spec"]["securityContext"]["runAsUser"].as_u64())
        .expect("runAsUser");
    let dockerfile =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docker/Dockerfile"))
            .unwrap();
    assert!(dockerfile.contains(&format!("\nUSER {uid}:{uid}\n")));

    // Run it.
    let (upstream, _task) = start_echo_upstream().await;
    let tmp = private_tempdir().unwrap();
    let store = format!("sqlite://{}/store/portcullis.db", tmp.path().display());
    let path = tmp.path().join("portcullis.toml");
    let listener = cfg.listeners[0].address.clone();
    let (child, addrs) = spawn_listening(2, |a| {
        let mut t = swap(&text, &format!("\"{listener}\""), &format!("\"{}\"", a[0]));
        t = swap(
            &t,
            &format!("\"{}\"", cfg.admin.address),
            &format!("\"{}\"", a[1]),
        );
        t = swap(
            &t,
            &format!("\"{}\"", cfg.store.url),
            &format!("\"{store}\""),
        );
        if t.contains("[upstream]") {
            t = swap(
                &t,
                &format!("\"{}\"", cfg.upstream.address),
                &format!("\"{upstream}\""),
            );
        }
        std::fs::write(&path, t).unwrap();
        Command::new(BIN)
            .args(["run", "--config"])
            .arg(&path)
            .envs(&env)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    })
    .await;
    let _child = Child(child);
    wait_ready(addrs[1]).await;
    let c = client();
    for p in &paths {
        let r = c
            .get(format!("http://{}{p}", addrs[1]))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{dir}: admin {p}");
        // On the public listener the same path is the app's (behind the
        // gate), never the operator's.
        let r = c
            .get(format!("http://{}{p}", addrs[0]))
            .send()
            .await
            .unwrap();
        assert_ne!(
            r.status(),
            200,
            "{dir}: public {p} answered like the admin listener"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configmap_config_loads_and_probes_use_the_admin_listener() {
    runs_and_answers_its_probes("sidecar", "app", false).await;
    // The standalone file without [forward_auth]; the full file in
    // standalone_forward_auth_config_loads.
    runs_and_answers_its_probes("standalone", "portcullis", false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn standalone_forward_auth_config_loads() {
    runs_and_answers_its_probes("standalone", "portcullis", true).await;
}

#[test]
fn sidecar_app_listens_on_loopback_only() {
    let docs = documents(&examples().join("sidecar"));
    let pod = portcullis_pod(&docs, "app");
    let cfg = load(&pod.config, &real_secrets(&pod));
    let upstream: SocketAddr = cfg.upstream.address.parse().unwrap();
    assert!(upstream.ip().is_loopback(), "{upstream}");

    let spec = &pod.deployment["spec"]["template"]["spec"];
    assert!(
        spec["hostNetwork"].is_null() || spec["hostNetwork"] == false,
        "hostNetwork would put the pod's loopback on the node"
    );
    let others: Vec<&Value> = seq(&spec["containers"])
        .iter()
        .filter(|c| c["name"] != "portcullis")
        .collect();
    assert_eq!(others.len(), 1, "one app container beside Portcullis");
    let app = others[0];
    assert!(
        seq(&app["ports"]).is_empty(),
        "the app container declares ports: {:?}",
        app["ports"]
    );
    // The app is told to bind the address Portcullis forwards to.
    let told: Vec<&str> = seq(&app["env"])
        .iter()
        .filter_map(|e| e["value"].as_str())
        .chain(seq(&app["args"]).iter().filter_map(Value::as_str))
        .collect();
    assert!(
        told.iter().any(|v| v.contains(&cfg.upstream.address)),
        "the app is never told to listen on {} (env/args: {told:?})",
        cfg.upstream.address
    );
    assert!(!told.iter().any(|v| v.contains("0.0.0.0")), "{told:?}");

    // Every Service port leads to a Portcullis port, none to the app.
    let names: BTreeSet<&str> = seq(&pod.container["ports"])
        .iter()
        .map(|p| s(&p["name"]))
        .collect();
    for svc in of_kind(&docs, "Service") {
        for p in seq(&svc["spec"]["ports"]) {
            let target = &p["targetPort"];
            assert!(
                target.as_str().is_some_and(|t| names.contains(t)),
                "Service port {:?} does not target a named Portcullis port",
                p
            );
            assert_ne!(resolve_port(pod.container, target), upstream.port());
        }
    }
}

#[test]
fn ingress_external_auth_matches_the_forward_auth_config() {
    let docs = documents(&examples().join("standalone"));
    let pod = portcullis_pod(&docs, "portcullis");
    let env = real_secrets(&pod);
    let cfg = load(&without_forward_auth(&pod.config), &env);
    let raw: toml::Table = pod.config.parse().unwrap();
    let fa = &raw["forward_auth"];
    let endpoints = fa["endpoints"].as_array().unwrap();
    assert_eq!(endpoints.len(), 1);
    assert_eq!(endpoints[0]["convention"].as_str(), Some("nginx"));
    let auth_path = endpoints[0]["path"].as_str().unwrap();
    assert!(auth_path.starts_with(&cfg.server.internal_prefix));

    let app = find(&docs, "Ingress", "app");
    let ann = |k: &str| {
        s(&app["metadata"]["annotations"][format!("nginx.ingress.kubernetes.io/{k}").as_str()])
            .to_owned()
    };

    // auth-url: the Service's cluster DNS name and port, the endpoint path.
    let svc = find(&docs, "Service", "portcullis");
    let http = seq(&svc["spec"]["ports"])
        .iter()
        .find(|p| p["name"] == "http")
        .unwrap();
    assert_eq!(
        resolve_port(pod.container, &http["targetPort"]),
        port_of(&cfg.listeners[0].address)
    );
    assert_eq!(
        ann("auth-url"),
        format!(
            "http://{}.{}.svc.cluster.local:{}{auth_path}",
            s(&svc["metadata"]["name"]),
            s(&svc["metadata"]["namespace"]),
            http["port"].as_u64().unwrap()
        )
    );
    // auth-signin: the login page at public_url, return_to as its parameter.
    assert_eq!(
        ann("auth-signin"),
        format!(
            "{}{}login",
            cfg.server.public_url.trim_end_matches('/'),
            cfg.server.internal_prefix
        )
    );
    assert_eq!(ann("auth-signin-redirect-param"), "return_to");
    // auth-response-headers: exactly the configured identity headers and
    // the assertion, so each overwrites (or, empty, removes) the client's.
    let h = &cfg.headers;
    let want: BTreeSet<String> = [
        &h.user,
        &h.email,
        &h.name,
        &h.groups,
        &h.roles,
        &h.tenant,
        &h.principal_type,
        &h.assertion,
    ]
    .iter()
    .map(|n| n.to_ascii_lowercase())
    .collect();
    let got: BTreeSet<String> = ann("auth-response-headers")
        .split(',')
        .map(|n| n.trim().to_ascii_lowercase())
        .collect();
    assert_eq!(got, want);

    // The protected host is a return target the session cookie reaches.
    let hosts: Vec<&str> = seq(&app["spec"]["rules"])
        .iter()
        .map(|r| s(&r["host"]))
        .collect();
    let allowed: Vec<&str> = fa["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    let domain = cfg.session.domain.clone().expect("session.domain");
    for host in &hosts {
        assert!(allowed.contains(host), "{host} not in forward_auth.hosts");
        assert!(host.ends_with(&format!(".{domain}")), "{host} vs {domain}");
        assert!(
            cfg.routes.iter().any(|r| r.host.as_deref() == Some(*host)),
            "no route names {host}"
        );
    }

    // Portcullis' own Ingress serves public_url's host: the internal prefix
    // and SCIM, to the Service's http port.
    let own = find(&docs, "Ingress", "portcullis");
    assert!(
        own["metadata"]["annotations"].is_null(),
        "no auth on the auth pages"
    );
    let rule = &seq(&own["spec"]["rules"])[0];
    assert_eq!(
        format!("https://{}", s(&rule["host"])),
        cfg.server.public_url.trim_end_matches('/')
    );
    let paths: Vec<&str> = seq(&rule["http"]["paths"])
        .iter()
        .map(|p| {
            assert_eq!(p["backend"]["service"]["name"], "portcullis");
            assert_eq!(p["backend"]["service"]["port"]["name"], "http");
            s(&p["path"])
        })
        .collect();
    assert!(
        paths.contains(&cfg.server.internal_prefix.as_str()),
        "{paths:?}"
    );
    assert!(paths.contains(&cfg.scim.path.as_str()), "{paths:?}");
}
