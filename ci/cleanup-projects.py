#!/usr/bin/env python3
"""Deletes leftover end-to-end projects from a backend through its query API (the nightly
cleanup job of the end-to-end plan). A test that is killed before its teardown leaves its
project behind; the project's name carries its creation time, `e2e-reliability-<unix>-<8 hex>`.

    python3 ci/cleanup-projects.py --query-url URL --older-than HOURS
                                   [--api-key-env NAME] [--dry-run] [--now UNIX]

Lists GET {URL}/projects, and for every project named e2e-reliability-<unix>-<8 hex> whose
<unix> is more than HOURS before now, sends DELETE {URL}/projects/{name}. Any other project is
left alone, whatever its age. The API key, when needed, comes from the environment variable
--api-key-env names (sent as x-api-key) and is never printed. Prints one JSON object:
{"listed", "matched", "deleted": [...], "kept": [...], "failed": [{"project", "status"}]}.

Exit codes: 0 done (or nothing to do), 1 a deletion failed, 2 bad usage (or the key's
variable is unset), 3 the backend could not be listed.
"""

import argparse
import json
import os
import re
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

NAME = re.compile(r"e2e-reliability-(\d{9,11})-[0-9a-f]{8}")


def request(method, url, key):
    req = urllib.request.Request(url, method=method)
    if key:
        req.add_header("x-api-key", key)
    try:
        with urllib.request.urlopen(req, timeout=30) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--query-url", required=True, help="the backend's query API, e.g. http://127.0.0.1:4318/api/v1")
    parser.add_argument("--older-than", required=True, type=float, metavar="HOURS")
    parser.add_argument("--api-key-env", metavar="NAME", help="environment variable holding the API key")
    parser.add_argument("--dry-run", action="store_true", help="list what would be deleted, delete nothing")
    parser.add_argument("--now", type=float, help="Unix seconds to measure ages from (default: the clock)")
    args = parser.parse_args()
    if args.older_than < 0:
        parser.error("--older-than must be >= 0 hours")
    if not args.query_url.startswith(("http://", "https://")):
        parser.error("--query-url must be an http:// or https:// URL")
    key = None
    if args.api_key_env:
        key = os.environ.get(args.api_key_env)
        if not key:
            parser.error(f"--api-key-env {args.api_key_env}: the variable is unset or empty")
    base = args.query_url.rstrip("/")
    cutoff = (args.now if args.now is not None else time.time()) - args.older_than * 3600
    try:
        status, body = request("GET", f"{base}/projects", key)
        projects = json.loads(body)["projects"] if status == 200 else None
    except (OSError, ValueError, KeyError, TypeError) as error:
        print(f"cleanup-projects.py: listing {base}/projects failed: {type(error).__name__}", file=sys.stderr)
        return 3
    if projects is None:
        print(f"cleanup-projects.py: listing {base}/projects answered {status}", file=sys.stderr)
        return 3
    result = {"listed": len(projects), "matched": 0, "deleted": [], "kept": [], "failed": []}
    for project in sorted(p["name"] for p in projects):
        match = NAME.fullmatch(project)
        if not match:
            continue
        result["matched"] += 1
        if int(match.group(1)) >= cutoff:
            result["kept"].append(project)
            continue
        if args.dry_run:
            result["deleted"].append(project)
            continue
        try:
            status, _ = request("DELETE", f"{base}/projects/{urllib.parse.quote(project, safe='')}", key)
        except OSError:
            status = None
        # 404: deleted meanwhile (by its own teardown or another cleanup); nothing left to do.
        if status in (200, 202, 204, 404):
            result["deleted"].append(project)
        else:
            result["failed"].append({"project": project, "status": status})
    result["dry_run"] = args.dry_run
    print(json.dumps(result))
    return 1 if result["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
