#!/usr/bin/env python3
"""Proves the dashboards and rules against a real Prometheus holding real pushed data.

    python3 monitoring/proof.py static [--dashboards DIR] [--json OUT]
    python3 monitoring/proof.py live --prometheus URL [--dashboards DIR] [--rules DIR]
                                     [--wait SECONDS] [--json OUT]

`static` checks the dashboard JSON alone: unique dashboard uids, unique panel ids, grid
positions inside the 24 columns that do not overlap, every panel and query naming the
provisioned datasource by uid, and every `$variable` a query uses defined by the dashboard.

`live` does the static checks, waits until Prometheus has scraped every target and evaluated
every recording rule, then evaluates through its HTTP API every template variable query, every
panel query (variables set to match all, `$__rate_interval` to 5m), every recording rule and
every alert expression. A panel, variable or recording rule fails on an error or an empty
result; an alert (silent on healthy data by design) fails on an error or when a metric it reads
has no series at all, which is how a misspelt name shows.

Prints one line per failure and the counts; --json writes them as
{"evaluated": {...}, "failures": [{"kind", "where", "expr", "error"}]}.
Exit codes: 0 every check passed, 1 a check failed, 2 bad usage or unreadable input.
"""

import argparse
import datetime
import json
import re
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
DASHBOARDS = HERE / "grafana" / "dashboards"
RULES = HERE / "prometheus" / "rules"
DATASOURCES = HERE / "grafana" / "provisioning" / "datasources"
# Grafana's built-in variables and what the proof sets them to.
BUILTINS = {"__rate_interval": "5m", "__interval": "15s", "__range": "1h"}
KEYWORDS = {
    "and", "or", "unless", "by", "without", "on", "ignoring", "group_left", "group_right",
    "bool", "offset", "inf", "nan",
}


class Usage(Exception):
    pass


def fail(failures, kind, where, expr, error):
    failures.append({"kind": kind, "where": where, "expr": expr, "error": error})


def datasource_uids():
    uids = set()
    for path in sorted(DATASOURCES.glob("*.yml")):
        for source in yaml.safe_load(path.read_text()).get("datasources", []):
            uids.add(source["uid"])
    return uids


def load_dashboards(directory):
    boards = []
    for path in sorted(Path(directory).glob("*.json")):
        try:
            boards.append((path.name, json.loads(path.read_text())))
        except (OSError, json.JSONDecodeError) as error:
            raise Usage(f"{path}: {error}") from error
    if not boards:
        raise Usage(f"no dashboards (*.json) in {directory}")
    return boards


def panels_of(board):
    """Every panel, rows' collapsed panels included."""
    for panel in board.get("panels", []):
        yield panel
        yield from panel.get("panels", [])


def static_checks(boards, failures):
    uids = datasource_uids()
    seen_uids = {}
    for name, board in boards:
        if board.get("uid") in seen_uids:
            fail(failures, "dashboard", name, "", f"uid {board.get('uid')!r} also in {seen_uids[board.get('uid')]}")
        seen_uids[board.get("uid")] = name
        variables = {v["name"] for v in board.get("templating", {}).get("list", [])}
        ids, cells = {}, {}
        for panel in panels_of(board):
            where = f"{name} panel {panel.get('id')} {panel.get('title')!r}"
            if panel.get("id") in ids:
                fail(failures, "layout", where, "", f"panel id {panel.get('id')} repeats {ids[panel.get('id')]!r}")
            ids[panel.get("id")] = panel.get("title")
            grid = panel.get("gridPos", {})
            x, y, w, h = (grid.get(k) for k in ("x", "y", "w", "h"))
            if not all(isinstance(v, int) for v in (x, y, w, h)) or x < 0 or y < 0 or w < 1 or h < 1 or x + w > 24:
                fail(failures, "layout", where, "", f"grid position {grid} is outside the 24 columns")
                continue
            for cx in range(x, x + w):
                for cy in range(y, y + h):
                    if (cx, cy) in cells and panel.get("type") != "row":
                        fail(failures, "layout", where, "", f"overlaps panel {cells[(cx, cy)]!r} at x={cx} y={cy}")
                        break
                    cells[(cx, cy)] = panel.get("title")
                else:
                    continue
                break
            if panel.get("type") == "row":
                continue
            sources = [panel.get("datasource")] + [t.get("datasource") for t in panel.get("targets", [])]
            for source in sources:
                if not isinstance(source, dict) or source.get("uid") not in uids:
                    fail(failures, "datasource", where, "", f"datasource {source!r} is not one of uids {sorted(uids)}")
            if not panel.get("targets"):
                fail(failures, "panel", where, "", "panel has no query")
            for target in panel.get("targets", []):
                for used in re.findall(r"\$\{?(\w+)", target.get("expr", "")):
                    if used not in variables and used not in BUILTINS:
                        fail(failures, "variable", where, target.get("expr", ""), f"${used} is not defined")


class Prometheus:
    def __init__(self, url):
        self.url = url.rstrip("/")

    def get(self, path, **params):
        query = urllib.parse.urlencode(params)
        try:
            with urllib.request.urlopen(f"{self.url}{path}?{query}", timeout=60) as response:
                body = json.loads(response.read())
        except urllib.error.HTTPError as error:
            body = json.loads(error.read() or b"{}")
        except OSError as error:
            raise Usage(f"Prometheus at {self.url} is unreachable: {error}") from error
        if body.get("status") != "success":
            return None, f"{body.get('errorType', 'error')}: {body.get('error', body)}"
        return body["data"], None

    def query(self, expr):
        """(result list, error)."""
        data, error = self.get("/api/v1/query", query=expr)
        return (data or {}).get("result", []), error


def substitute(expr):
    for name, value in BUILTINS.items():
        expr = expr.replace(f"${{{name}}}", value).replace(f"${name}", value)
    # Every template variable matches all, as the dashboards' "All" does (allValue ".*").
    return re.sub(r"\$\{?\w+\}?", ".*", expr)


def metric_names(expr):
    """The metric names an expression reads (strings, matchers, ranges and groupings removed)."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', "", expr)
    text = re.sub(r"\{[^}]*\}", " ", text)
    text = re.sub(r"\[[^\]]*\]", " ", text)
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    names = set()
    for match in re.finditer(r"[a-zA-Z_:][a-zA-Z0-9_:]*", text):
        rest = text[match.end() :].lstrip()
        if rest.startswith("(") or match.group().lower() in KEYWORDS:
            continue
        if match.start() > 0 and (text[match.start() - 1].isdigit() or text[match.start() - 1] == "."):
            continue  # the exponent or unit of a number
        names.add(match.group())
    return names


def rules_of(directory):
    rules = []
    for path in sorted(Path(directory).glob("*.yml")):
        for group in yaml.safe_load(path.read_text()).get("groups", []):
            for rule in group.get("rules", []):
                rules.append((path.name, group["name"], rule))
    if not rules:
        raise Usage(f"no rules (*.yml) in {directory}")
    return rules


def scraped_at(text):
    """Unix seconds of a target's lastScrape (RFC 3339 with nanoseconds)."""
    match = re.fullmatch(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d+)?(Z|[+-]\d\d:\d\d)", text or "")
    if not match:
        return 0.0
    zone = "+00:00" if match.group(3) == "Z" else match.group(3)
    whole = datetime.datetime.fromisoformat(match.group(1) + zone).timestamp()
    return whole + float(match.group(2) or 0)


def wait_until_ready(prom, rules, seconds):
    """Every scrape target up and scraped since the proof began (so it holds what was pushed
    before), and every recording rule evaluated once; else what is missing at the deadline."""
    began = time.time()
    deadline = time.monotonic() + seconds
    records = [rule["record"] for _, _, rule in rules if "record" in rule]
    while True:
        missing = []
        targets, error = prom.get("/api/v1/targets")
        if error:
            missing.append(f"targets: {error}")
        else:
            missing += [
                f"target {t['labels'].get('job')} {t['scrapeUrl']} is {t['health']} ({t.get('lastError', '')})"
                for t in targets["activeTargets"]
                if t["health"] != "up"
            ]
            missing += [
                f"target {t['labels'].get('job')} {t['scrapeUrl']} not scraped since the proof began"
                for t in targets["activeTargets"]
                if scraped_at(t.get("lastScrape")) <= began
            ]
        for record in records:
            result, error = prom.query(record)
            if error or not result:
                missing.append(f"recording rule {record} has no result yet")
        if not missing or time.monotonic() > deadline:
            return missing
        time.sleep(1)


def live_checks(prom, boards, rules, failures):
    counts = {"variable_queries": 0, "panel_queries": 0, "recording_rules": 0, "alert_rules": 0, "alert_metrics": 0}
    for name, board in boards:
        for variable in board.get("templating", {}).get("list", []):
            query = variable.get("query", {})
            query = query.get("query", "") if isinstance(query, dict) else query
            match = re.fullmatch(r"\s*label_values\((.*),\s*(\w+)\)\s*", query)
            where = f"{name} variable {variable['name']}"
            if not match:
                fail(failures, "variable", where, query, "not a label_values(metric, label) query")
                continue
            counts["variable_queries"] += 1
            expr = f"count by ({match.group(2)}) ({substitute(match.group(1))})"
            result, error = prom.query(expr)
            values = [r["metric"].get(match.group(2)) for r in result if r["metric"].get(match.group(2))]
            if error or not values:
                fail(failures, "variable", where, expr, error or "no values")
        for panel in panels_of(board):
            for target in panel.get("targets", []):
                counts["panel_queries"] += 1
                expr = substitute(target.get("expr", ""))
                result, error = prom.query(expr)
                if error or not result:
                    where = f"{name} panel {panel.get('id')} {panel.get('title')!r} query {target.get('refId')}"
                    fail(failures, "panel", where, expr, error or "empty result")
    for file, group, rule in rules:
        kind = "recording_rules" if "record" in rule else "alert_rules"
        counts[kind] += 1
        where = f"{file} {group} {rule.get('record') or rule.get('alert')}"
        result, error = prom.query(rule["expr"])
        if error:
            fail(failures, kind[:-1], where, rule["expr"], error)
        elif kind == "recording_rules" and not result:
            fail(failures, "recording_rule", where, rule["expr"], "empty result")
        elif kind == "alert_rules":
            for metric in sorted(metric_names(rule["expr"])):
                counts["alert_metrics"] += 1
                series, error = prom.query(f"count({{__name__={json.dumps(metric)}}})")
                if error or not series:
                    fail(failures, "alert_rule", where, rule["expr"], error or f"no series named {metric}")
    return counts


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("mode", choices=["static", "live"])
    parser.add_argument("--prometheus", help="Prometheus base URL (live)")
    parser.add_argument("--dashboards", default=str(DASHBOARDS))
    parser.add_argument("--rules", default=str(RULES))
    parser.add_argument("--wait", type=float, default=300, help="seconds to wait for scrapes and rules (live)")
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args()
    failures = []
    counts = {}
    try:
        boards = load_dashboards(args.dashboards)
        counts["dashboards"] = len(boards)
        counts["panels"] = sum(1 for _, b in boards for _ in panels_of(b))
        static_checks(boards, failures)
        if args.mode == "live":
            if not args.prometheus:
                raise Usage("live needs --prometheus URL")
            prom = Prometheus(args.prometheus)
            rules = rules_of(args.rules)
            for missing in wait_until_ready(prom, rules, args.wait):
                fail(failures, "ready", args.prometheus, "", missing)
            counts.update(live_checks(prom, boards, rules, failures))
    except Usage as error:
        print(f"proof.py: {error}", file=sys.stderr)
        return 2
    for failure in failures:
        print(f"FAIL {failure['kind']}: {failure['where']}: {failure['error']}\n     {failure['expr']}")
    print("proof.py " + args.mode + ": " + ", ".join(f"{v} {k.replace('_', ' ')}" for k, v in counts.items())
          + f"; {len(failures)} failure(s)")
    if args.json:
        Path(args.json).write_text(json.dumps({"evaluated": counts, "failures": failures}, indent=2))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
