"""Validates every document of every *.yaml under the given directories.

Kubernetes' own kinds go through kubernetes-validate (its schemas ship in
the package, so this runs offline) in strict mode, which refuses unknown
fields, against each version in VERSIONS. A kind it has no schema for fails,
except ServiceMonitor, a prometheus-operator CRD, which is checked against
servicemonitor.schema.json beside this file. One JSON line per document on
stdout (file, kind, name, error or null), for tests/it/deploy/kubernetes.rs;
exit status 1 when any document fails.

    tests/kubernetes/.venv/bin/python tests/kubernetes/validate.py examples/kubernetes
"""

import json
import pathlib
import sys

import jsonschema
import kubernetes_validate
import yaml

# The oldest Kubernetes minor still commonly supported and the newest this
# kubernetes-validate knows: a field too new for the one or removed by the
# other fails.
VERSIONS = ["1.33.0", "1.37.0"]

CRD_SCHEMAS = {
    ("monitoring.coreos.com/v1", "ServiceMonitor"): "servicemonitor.schema.json",
}


def check(doc, here):
    if not isinstance(doc, dict) or "apiVersion" not in doc or "kind" not in doc:
        return "not a Kubernetes object (apiVersion and kind are required)"
    crd = CRD_SCHEMAS.get((doc["apiVersion"], doc["kind"]))
    if crd is not None:
        schema = json.loads((here / crd).read_text())
        try:
            jsonschema.Draft202012Validator(schema).validate(doc)
        except jsonschema.ValidationError as e:
            path = ".".join(str(p) for p in e.absolute_path)
            return "%s: %s" % (path, e.message)
        return None
    for version in VERSIONS:
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.ValidationError as e:
            path = ".".join(str(p) for p in e.path)
            return "against %s: %s: %s" % (version, path, e.message)
        except kubernetes_validate.SchemaNotFoundError as e:
            return e.message
    return None


def main(dirs):
    here = pathlib.Path(__file__).resolve().parent
    files = sorted(f for d in dirs for f in pathlib.Path(d).rglob("*.yaml"))
    if not files:
        print(json.dumps({"file": None, "error": "no *.yaml under %s" % dirs}))
        return 1
    failed = 0
    for f in files:
        try:
            docs = [d for d in yaml.safe_load_all(f.read_text()) if d is not None]
        except yaml.YAMLError as e:
            docs, error = [], "invalid YAML: %s" % e
            print(json.dumps({"file": str(f), "kind": None, "name": None, "error": error}))
            failed += 1
        for doc in docs:
            error = check(doc, here)
            obj = doc if isinstance(doc, dict) else {}
            meta = obj.get("metadata") if isinstance(obj.get("metadata"), dict) else {}
            print(json.dumps({
                "file": str(f),
                "kind": obj.get("kind"),
                "name": meta.get("name"),
                "error": error,
            }))
            failed += error is not None
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
