#!/usr/bin/env python3
"""Structural check of Grafana dashboards (Grafana itself cannot run here).

Usage: check-dashboard.py [--expressions] DASHBOARD.json...
Fails (exit 1, one line per problem) unless each file is valid JSON with a title, a uid and
panels; every panel other than a row names a Prometheus datasource and has targets, each
with a non-empty `expr` and a `refId` unique in the panel; panel ids are unique; grid
positions fit the 24-column grid; every `${var}`/`$var` a panel uses is a templating
variable or one of Grafana's own. With --expressions, prints every target's expr (one per
line, `\\n`-joined lines escaped) for scripts/alerts-e2e.sh to evaluate against Prometheus.
"""
import json
import re
import sys

GRAFANA_VARS = {"__rate_interval", "__interval", "__range", "__interval_ms", "__range_s"}


def panels_of(dash):
    for p in dash.get("panels", []):
        yield p
        # Collapsed rows hold their panels inside.
        for q in p.get("panels", []) or []:
            yield q


def check(path, problems, exprs):
    try:
        with open(path, encoding="utf-8") as f:
            dash = json.load(f)
    except (OSError, json.JSONDecodeError) as e:
        problems.append(f"{path}: not valid JSON: {e}")
        return
    for key in ("title", "uid", "panels"):
        if not dash.get(key):
            problems.append(f"{path}: dashboard has no {key}")
    variables = {v.get("name") for v in dash.get("templating", {}).get("list", [])}
    ids = set()
    for p in panels_of(dash):
        where = f"{path}: panel {p.get('id')} {p.get('title')!r}"
        if p.get("id") in ids:
            problems.append(f"{where}: duplicate panel id")
        ids.add(p.get("id"))
        g = p.get("gridPos") or {}
        if not all(isinstance(g.get(k), int) for k in ("h", "w", "x", "y")) or g["x"] + g["w"] > 24:
            problems.append(f"{where}: gridPos {g} is not inside the 24-column grid")
        if p.get("type") == "row":
            continue
        if not p.get("title"):
            problems.append(f"{where}: no title")
        ds = p.get("datasource")
        if not isinstance(ds, dict) or ds.get("type") != "prometheus" or not ds.get("uid"):
            problems.append(f"{where}: datasource {ds!r} is not a Prometheus datasource with a uid")
        targets = p.get("targets")
        if not targets:
            problems.append(f"{where}: no targets")
            continue
        refs = [t.get("refId") for t in targets]
        if len(set(refs)) != len(refs) or not all(refs):
            problems.append(f"{where}: refIds {refs} are not unique and non-empty")
        for t in targets:
            expr = t.get("expr")
            if not isinstance(expr, str) or not expr.strip():
                problems.append(f"{where}: target {t.get('refId')} has no expr")
                continue
            for var in re.findall(r"\$\{?(\w+)", expr):
                if var not in variables and var not in GRAFANA_VARS:
                    problems.append(f"{where}: expr uses ${var}, which is no variable of the dashboard")
            exprs.append(expr)
        for var in re.findall(r"\$\{?(\w+)", json.dumps(ds)):
            if var not in variables:
                problems.append(f"{where}: datasource uses ${var}, which is no variable of the dashboard")


def main(argv):
    print_exprs = "--expressions" in argv
    paths = [a for a in argv if a != "--expressions"]
    if not paths:
        print(__doc__, file=sys.stderr)
        return 2
    problems, exprs = [], []
    for path in paths:
        check(path, problems, exprs)
    for p in problems:
        print(p, file=sys.stderr)
    if problems:
        return 1
    if print_exprs:
        for e in exprs:
            print(e.replace("\n", " "))
    else:
        print(f"dashboards OK: {len(paths)} file(s), {len(exprs)} queries")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
