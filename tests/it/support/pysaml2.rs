//! pysaml2's IdP (`saml2.server.Server`, tests/pysaml2/idp.py) as a child
//! process on 127.0.0.1 and an ephemeral port. Needs the virtualenv that
//! `make test` creates in tests/pysaml2/.venv; without it the test fails
//! and says so (it never skips).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::saml::IdpKey;

pub(crate) struct PySaml2Idp {
    child: Child,
    pub base: String,
}

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/pysaml2")
}

impl PySaml2Idp {
    /// Starts the IdP signing with `key`, trusting the SPs described by the
    /// metadata files `sp_metadata`.
    pub(crate) fn start(key: &IdpKey, sp_metadata: &[&Path], extra_args: &[&str]) -> PySaml2Idp {
        let python = dir().join(".venv/bin/python");
        assert!(
            python.exists(),
            "{} is missing: run `make test` (it installs tests/pysaml2/requirements.txt into that virtualenv)",
            python.display()
        );
        let mut cmd = Command::new(&python);
        cmd.arg(dir().join("idp.py"))
            .arg("--key")
            .arg(&key.key)
            .arg("--cert")
            .arg(&key.cert)
            .args(extra_args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .env("PYTHONWARNINGS", "ignore");
        for m in sp_metadata {
            cmd.arg("--sp-metadata").arg(m);
        }
        let mut child = cmd.spawn().expect("start tests/pysaml2/idp.py");
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(l) => l,
            Err(_) => {
                let _ = child.kill();
                panic!("pysaml2 IdP did not report its port within 30 s");
            }
        };
        let port: u16 = line
            .trim()
            .strip_prefix("PORT ")
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("pysaml2 IdP said {line:?} instead of its port"));
        PySaml2Idp {
            child,
            base: format!("http://127.0.0.1:{port}"),
        }
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// The IdP's metadata XML.
    pub(crate) async fn metadata(&self) -> String {
        let r = reqwest::get(self.url("/metadata")).await.unwrap();
        assert_eq!(r.status(), 200);
        r.text().await.unwrap()
    }

    /// What the IdP saw, in order.
    pub(crate) async fn log(&self) -> Vec<serde_json::Value> {
        reqwest::get(self.url("/log"))
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }
}

impl Drop for PySaml2Idp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An HTML auto-post form: its action and its fields (entities decoded).
pub(crate) fn html_form(html: &str) -> (String, Vec<(String, String)>) {
    fn unescape(s: &str) -> String {
        s.replace("&quot;", "\"")
            .replace("&#34;", "\"")
            .replace("&#x27;", "'")
            .replace("&#39;", "'")
            .replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&amp;", "&")
    }
    fn attr(tag: &str, name: &str) -> Option<String> {
        let needle = format!("{name}=\"");
        let rest = tag.split_once(&needle)?.1;
        Some(unescape(rest.split('"').next()?))
    }
    let form = html.split("<form").nth(1).expect("a form");
    let action = attr(form.split('>').next().unwrap(), "action").expect("action");
    let fields = form
        .split("<input")
        .skip(1)
        .filter_map(|i| {
            let tag = i.split('>').next()?;
            Some((attr(tag, "name")?, attr(tag, "value").unwrap_or_default()))
        })
        .collect();
    (action, fields)
}
