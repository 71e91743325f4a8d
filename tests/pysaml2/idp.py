"""A third-party SAML IdP for the interop tests: pysaml2's saml2.server.Server
behind Python's http.server on 127.0.0.1 and an ephemeral port.

Started by tests/it/support/pysaml2.rs. Prints `PORT <n>` on its first stdout
line once it serves, then serves until killed.

Endpoints (base http://127.0.0.1:<port>):
  GET  /metadata                 this IdP's metadata (signing cert, SSO, SLO)
  GET  /sso/redirect             SP-initiated: parses the Redirect-binding
                                 AuthnRequest, answers with a pick-a-user form
  POST /sso/login                user=<name> + the request: auto-post form with
                                 the signed Response to the SP's ACS. Honours
                                 RequestedAuthnContext like an IdP doing MFA:
                                 the statement's AuthnContextClassRef is the
                                 first requested class it knows (else
                                 PasswordProtectedTransport). Misbehaviour for
                                 tests: class_ref=<uri> answers that class
                                 whatever was asked, auth_age=<s> dates the
                                 AuthnInstant that far back.
  GET  /idp-initiated            user=<name>&sp=<sp entity id>[&RelayState=..]:
                                 an unsolicited signed Response (no InResponseTo)
  GET  /slo/redirect             SP-initiated logout: a Redirect-binding
                                 LogoutRequest; answers with a LogoutResponse
                                 redirect to the SP's SLO endpoint
  GET  /idp-logout               user=<name>&sp=<entity>[&session_index=..]:
                                 an IdP-initiated LogoutRequest redirect to the SP
  GET  /log                      JSON list of what the IdP saw (for assertions)
  POST /sp                       metadata_url=<url>: the admin console's "add a
                                 service provider from its metadata URL"; the
                                 IdP fetches the SP metadata and trusts it
"""

import argparse
import html
import json
import sys
import time
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from saml2 import BINDING_HTTP_POST, BINDING_HTTP_REDIRECT, saml
from saml2.config import IdPConfig
from saml2.metadata import create_metadata_string
from saml2.saml import NAMEID_FORMAT_EMAILADDRESS, NameID
from saml2.samlp import STATUS_SUCCESS
from saml2.server import Server
from saml2.sigver import SIG_RSA_SHA256
from saml2.xmldsig import DIGEST_SHA256
from saml2.authn_context import PASSWORDPROTECTEDTRANSPORT

USERS = {
    "alice": {
        "email": ["alice@acme.com"],
        "displayName": ["Alice Example"],
        "firstName": ["Alice"],
        "lastName": ["Example"],
        "groups": ["Engineering", "Everyone"],
        # only a claim mapping reads these
        "department": ["R&D"],
        "division": ["Research"],
        "badges": ["first-aid", "fire, safety"],
    },
    "bob": {
        "email": ["bob@acme.com"],
        "displayName": ["Bob Builder"],
        "firstName": ["Bob"],
        "lastName": ["Builder"],
        "groups": ["Everyone"],
    },
}

# The classes this IdP can authenticate with (password; password + OTP).
MULTIFACTOR = "urn:oasis:names:tc:SAML:2.0:ac:classes:MultiFactor"
KNOWN_CLASSES = [PASSWORDPROTECTEDTRANSPORT, MULTIFACTOR]

LOG = []


def requested_context(req):
    """The AuthnRequest's RequestedAuthnContext class refs, its Comparison,
    and whether it sets ForceAuthn."""
    rac = req.requested_authn_context
    classes = [c.text for c in rac.authn_context_class_ref] if rac is not None else []
    comparison = (rac.comparison or "exact") if rac is not None else None
    force = str(req.force_authn).lower() in ("true", "1")
    return classes, comparison, force


def build_server(base, args):
    cfg = {
        "entityid": f"{base}/metadata",
        "service": {
            "idp": {
                "name": "pysaml2 test IdP",
                "endpoints": {
                    "single_sign_on_service": [
                        (f"{base}/sso/redirect", BINDING_HTTP_REDIRECT)
                    ],
                    "single_logout_service": [
                        (f"{base}/slo/redirect", BINDING_HTTP_REDIRECT)
                    ],
                },
                "policy": {"default": {"lifetime": {"minutes": 5}}},
                "name_id_format": [NAMEID_FORMAT_EMAILADDRESS],
                "want_authn_requests_signed": args.want_signed_requests,
            }
        },
        "key_file": args.key,
        "cert_file": args.cert,
        "metadata": {"local": args.sp_metadata},
        "xmlsec_binary": args.xmlsec,
        "signing_algorithm": SIG_RSA_SHA256,
        "digest_algorithm": DIGEST_SHA256,
        "allow_unknown_attributes": True,
    }
    conf = IdPConfig()
    conf.load(cfg)
    return Server(config=conf)


def auto_post(idp, destination, response, relay):
    args = idp.apply_binding(
        BINDING_HTTP_POST, str(response), destination, relay or "", response=True
    )
    return args["data"]


def login_response(
    idp,
    user,
    sp_entity,
    in_response_to,
    sign_response,
    encrypt=False,
    class_ref=PASSWORDPROTECTEDTRANSPORT,
    authn_instant=None,
):
    identity = USERS[user]
    authn = {"class_ref": class_ref}
    if authn_instant is not None:
        authn["authn_instant"] = authn_instant
    acs = idp.metadata.assertion_consumer_service(sp_entity, BINDING_HTTP_POST)
    destination = acs[0]["location"]
    resp = idp.create_authn_response(
        identity=dict(identity),
        in_response_to=in_response_to,
        destination=destination,
        sp_entity_id=sp_entity,
        name_id=NameID(format=NAMEID_FORMAT_EMAILADDRESS, text=identity["email"][0]),
        userid=identity["email"][0],
        authn=authn,
        sign_assertion=True,
        sign_response=sign_response,
        sign_alg=SIG_RSA_SHA256,
        digest_alg=DIGEST_SHA256,
        # pysaml2 encrypts with 3DES-CBC and RSA-OAEP to the SP metadata's
        # encryption certificate (its choice, not configurable)
        encrypt_assertion=encrypt,
    )
    return destination, resp


class Handler(BaseHTTPRequestHandler):
    idp = None
    args = None

    def log_message(self, fmt, *a):  # quiet: stderr is the test's
        pass

    def send(self, status, body, ctype="text/html; charset=utf-8", headers=()):
        data = body.encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        for k, v in headers:
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def query(self):
        q = urllib.parse.urlsplit(self.path).query
        return {k: v[0] for k, v in urllib.parse.parse_qs(q).items()}

    def do_GET(self):
        path = urllib.parse.urlsplit(self.path).path
        try:
            if path == "/metadata":
                xml = create_metadata_string(None, config=self.idp.config, sign=False)
                self.send(200, xml.decode("utf-8"), "application/samlmetadata+xml")
            elif path == "/sso/redirect":
                self.sso_redirect()
            elif path == "/idp-initiated":
                q = self.query()
                dest, resp = login_response(
                    self.idp, q["user"], q["sp"], None, q.get("sign_response") == "1"
                )
                LOG.append({"kind": "idp_initiated", "user": q["user"]})
                self.send(200, auto_post(self.idp, dest, resp, q.get("RelayState")))
            elif path == "/slo/redirect":
                self.slo_redirect()
            elif path == "/idp-logout":
                self.idp_logout()
            elif path == "/log":
                self.send(200, json.dumps(LOG), "application/json")
            else:
                self.send(404, "not found", "text/plain")
        except Exception as e:  # the test reads the status and this text
            self.send(400, f"{type(e).__name__}: {e}", "text/plain")

    def do_POST(self):
        path = urllib.parse.urlsplit(self.path).path
        length = int(self.headers.get("Content-Length", "0"))
        form = {
            k: v[0]
            for k, v in urllib.parse.parse_qs(self.rfile.read(length).decode()).items()
        }
        try:
            if path == "/sp":
                self.add_sp(form["metadata_url"])
            elif path == "/sso/login":
                req = self.parse_authn(form)
                classes, _, force = requested_context(req)
                known = [c for c in classes if c in KNOWN_CLASSES]
                class_ref = form.get("class_ref") or (known[0] if known else PASSWORDPROTECTEDTRANSPORT)
                age = int(form.get("auth_age", "0"))
                dest, resp = login_response(
                    self.idp,
                    form["user"],
                    req.issuer.text,
                    req.id,
                    form.get("sign_response") == "1",
                    form.get("encrypt") == "1",
                    class_ref=class_ref,
                    authn_instant=int(time.time()) - age if age else None,
                )
                if dest != req.assertion_consumer_service_url:
                    raise ValueError("ACS URL does not match the SP metadata")
                LOG.append(
                    {
                        "kind": "sp_initiated",
                        "user": form["user"],
                        "id": req.id,
                        "class_ref": class_ref,
                        "force_authn": force,
                    }
                )
                self.send(200, auto_post(self.idp, dest, resp, form.get("RelayState")))
            else:
                self.send(404, "not found", "text/plain")
        except Exception as e:
            self.send(400, f"{type(e).__name__}: {e}", "text/plain")

    def add_sp(self, url):
        with urllib.request.urlopen(url, timeout=10) as r:
            xml = r.read().decode("utf-8")
        self.idp.metadata.load("inline", xml)
        LOG.append({"kind": "sp_registered", "metadata_url": url})
        self.send(200, "registered", "text/plain")

    def parse_authn(self, q):
        # With want_authn_requests_signed, pysaml2 verifies the
        # HTTP-Redirect signature (SAML bindings 3.4.4.1) against the
        # signing certificate in the SP's metadata, and raises otherwise.
        return self.idp.parse_authn_request(
            q["SAMLRequest"],
            BINDING_HTTP_REDIRECT,
            relay_state=q.get("RelayState"),
            sigalg=q.get("SigAlg"),
            signature=q.get("Signature"),
        ).message

    def sso_redirect(self):
        q = self.query()
        req = self.parse_authn(q)
        classes, comparison, force = requested_context(req)
        LOG.append(
            {
                "kind": "authn_request",
                "id": req.id,
                "signed": "Signature" in q,
                "requested_classes": classes,
                "comparison": comparison,
                "force_authn": force,
            }
        )
        fields = "".join(
            f'<input type="hidden" name="{k}" value="{html.escape(q[k])}">'
            for k in ("SAMLRequest", "RelayState", "SigAlg", "Signature")
            if k in q
        )
        users = "".join(f'<option value="{u}">{u}</option>' for u in USERS)
        self.send(
            200,
            f'<form method="post" action="/sso/login">{fields}'
            f'<select name="user">{users}</select><button>Sign in</button></form>',
        )

    def slo_redirect(self):
        q = self.query()
        if "SAMLResponse" in q:
            LOG.append({"kind": "logout_response"})
            self.send(200, "logged out", "text/plain")
            return
        req = self.idp.parse_logout_request(
            q["SAMLRequest"],
            BINDING_HTTP_REDIRECT,
            relay_state=q.get("RelayState"),
            sigalg=q.get("SigAlg"),
            signature=q.get("Signature"),
        ).message
        LOG.append(
            {
                "kind": "logout_request",
                "name_id": req.name_id.text if req.name_id is not None else None,
                "session_index": [s.text for s in req.session_index],
                "issuer": req.issuer.text,
                "destination": req.destination,
                "signed": "Signature" in q,
            }
        )
        resp = self.idp.create_logout_response(req, [BINDING_HTTP_REDIRECT])
        dest = self.idp.metadata.single_logout_service(
            req.issuer.text, BINDING_HTTP_REDIRECT, "spsso"
        )[0]["location"]
        args = self.idp.apply_binding(
            BINDING_HTTP_REDIRECT,
            str(resp),
            dest,
            q.get("RelayState", ""),
            response=True,
            sign=True,
            sigalg=SIG_RSA_SHA256,
        )
        location = dict(args["headers"])["Location"]
        self.send(302, "", "text/plain", [("Location", location)])

    def idp_logout(self):
        q = self.query()
        email = USERS[q["user"]]["email"][0]
        dest = self.idp.metadata.single_logout_service(
            q["sp"], BINDING_HTTP_REDIRECT, "spsso"
        )[0]["location"]
        kwargs = {}
        if q.get("session_index"):
            kwargs["session_indexes"] = [q["session_index"]]
        req_id, req = self.idp.create_logout_request(
            dest,
            issuer_entity_id=q["sp"],
            name_id=NameID(format=NAMEID_FORMAT_EMAILADDRESS, text=email),
            sign=False,
            **kwargs,
        )
        args = self.idp.apply_binding(
            BINDING_HTTP_REDIRECT,
            str(req),
            dest,
            q.get("RelayState", ""),
            sign=True,
            sigalg=SIG_RSA_SHA256,
        )
        location = dict(args["headers"])["Location"]
        LOG.append({"kind": "idp_logout_sent", "id": req_id})
        self.send(302, "", "text/plain", [("Location", location)])


def main():
    p = argparse.ArgumentParser()
    # Without any, the IdP trusts no SP until one is added through POST /sp.
    p.add_argument("--sp-metadata", action="append", default=[])
    p.add_argument("--key", required=True)
    p.add_argument("--cert", required=True)
    p.add_argument("--xmlsec", default="/usr/bin/xmlsec1")
    p.add_argument("--want-signed-requests", action="store_true")
    args = p.parse_args()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    port = httpd.server_address[1]
    Handler.idp = build_server(f"http://127.0.0.1:{port}", args)
    Handler.args = args
    print(f"PORT {port}", flush=True)
    httpd.serve_forever()


if __name__ == "__main__":
    sys.exit(main())
