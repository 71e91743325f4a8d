"""Runs scim2-tester against a SCIM server; prints one JSON line per check,
then one summary line.

Usage: run.py BASE_URL TOKEN
Exit status: 0 when every check passed, or failed or was skipped in a way
listed below with its reason (also in the README); 1 otherwise.

The summary (last line) is what tests/it/scim_tester.rs asserts:
{"checks": N, "passed": P, "statuses": {...}, "skipped": [...],
 "exceptions": [...], "unexplained_failures": F, "unexplained_skips": S,
 "stale": [...]}. The test also pins N, so a check that silently
disappears (or a new one) fails it.
"""

import json
import sys
from collections import Counter

from httpx2 import Client
from scim2_client.engines.httpx2 import SyncSCIMClient
from scim2_tester import Status, check_server

# Checks that may fail, each with the reason (see README "scim2-tester").
# Keyed by "title/resource type" (a title runs once per attribute, so a key
# names several checks); the value is (reason, text the failure's own reason
# must contain): an exception only covers the failure it explains, and one
# that no longer covers any failure is stale (the run fails: remove it).
EXCEPTIONS: dict[str, tuple[str, str]] = {
    # Group check_add_attribute / check_replace_attribute send members whose
    # `type` is a random string and expect it echoed back. Portcullis derives
    # `members.type` from the referenced resource ("User" or "Group", the
    # canonical values of RFC 7643 §4.2) and never stores what a client
    # claims; everything else those checks verify passes.
    "check_add_attribute/Group": (
        "members.type is derived from the member (User/Group), not echoed",
        "unexpected value for 'members'",
    ),
    "check_replace_attribute/Group": (
        "members.type is derived from the member (User/Group), not echoed",
        "unexpected value for 'members'",
    ),
}

# Checks that may be skipped, same shape. A skip is a check that did not
# run, so it proves nothing: each one needs a reason here, or the run fails.
SKIPS: dict[str, tuple[str, str]] = {}

PASSING = {Status.SUCCESS, Status.COMPLIANT, Status.ACCEPTABLE}


def listed(table: dict[str, tuple[str, str]], key: str, reason: str) -> str | None:
    entry = table.get(key)
    if entry and entry[1] in reason:
        return entry[0]
    return None


def main() -> int:
    base, token = sys.argv[1], sys.argv[2]
    http = Client(base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=20)
    client = SyncSCIMClient(http)
    results = check_server(client)
    failed = 0
    unexplained_skips = 0
    passed = 0
    skipped: list[str] = []
    excepted: list[str] = []
    statuses: Counter[str] = Counter()
    used: set[str] = set()
    for r in results:
        title = r.title or ""
        key = f"{title}/{r.resource_type}"
        reason = r.reason or ""
        statuses[r.status.name] += 1
        line = {
            "status": r.status.name,
            "title": title,
            "resource_type": r.resource_type,
            "reason": r.reason,
        }
        if r.status in PASSING:
            passed += 1
        elif r.status == Status.SKIPPED:
            skipped.append(key)
            why = listed(SKIPS, key, reason)
            if why:
                line["skip"] = why
                used.add(key)
            else:
                line["error"] = "skipped without a listed reason (add it to SKIPS or fix it)"
                unexplained_skips += 1
        else:
            line["data"] = repr(r.data)[:2000]
            why = listed(EXCEPTIONS, key, reason)
            if why:
                line["exception"] = why
                excepted.append(key)
                used.add(key)
            else:
                failed += 1
        print(json.dumps(line), flush=True)
    stale = sorted(k for k in (*EXCEPTIONS, *SKIPS) if k not in used)
    summary = {
        "checks": len(results),
        "passed": passed,
        "statuses": dict(sorted(statuses.items())),
        "skipped": skipped,
        "exceptions": excepted,
        "unexplained_failures": failed,
        "unexplained_skips": unexplained_skips,
        "stale": stale,
    }
    print(json.dumps(summary), flush=True)
    return 1 if failed or unexplained_skips or stale or not results else 0


if __name__ == "__main__":
    sys.exit(main())
