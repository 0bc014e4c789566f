#!/usr/bin/env python3
"""Checks the monitoring config against the metric contract (metrics-contract.txt).

- Grafana dashboards (deploy/grafana/dashboards/*.json): every panel has the provisioned
  datasource and targets; every PromQL expression (panels, template variables, annotations)
  uses only contract metric names, and only their labels.
- alerts.yml: the same for every rule expression; every alert has a severity label and summary
  and description annotations.
- alerts_test.yml: input series are contract metrics; every alert has a test where it fires and
  one where it does not (`exp_alerts: []`).

Standard library only (no PyYAML): the YAML files are read line by line, which works for the
layout these files use (`expr: |` blocks or one-line `expr:`). Exits 1 on any problem.
Usage: check_contract.py REPO_ROOT
"""

import json
import pathlib
import re
import sys

TARGET_LABELS = {"job", "instance"}
KEYWORDS = {"and", "or", "unless", "bool", "inf", "nan", "offset"}
CLAUSE = re.compile(r"\b(by|without|on|ignoring|group_left|group_right)\s*\(([^()]*)\)")


def load_contract(path):
    """name -> set of labels, histograms expanded to _bucket (+le), _sum and _count."""
    metrics = {}
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        fields = line.split()
        name, kind = fields[0], fields[1]
        labels = set(fields[3].split(",")) if len(fields) > 3 else set()
        if kind == "histogram":
            metrics[name + "_bucket"] = labels | {"le"}
            metrics[name + "_sum"] = set(labels)
            metrics[name + "_count"] = set(labels)
        else:
            metrics[name] = labels
    return metrics


def split_args(text, start):
    """Arguments of the call whose '(' is at text[start], split at top-level commas."""
    args, depth, cur, i, quote = [], 0, "", start, None
    while i < len(text):
        c = text[i]
        if quote:
            cur += c
            if c == "\\":
                cur += text[i + 1]
                i += 1
            elif c == quote:
                quote = None
        elif c in "\"'`":
            quote = c
            cur += c
        elif c in "([{":
            depth += 1
            if depth > 1:
                cur += c
        elif c in ")]}":
            depth -= 1
            if depth == 0:
                args.append(cur.strip())
                return args
            cur += c
        elif c == "," and depth == 1:
            args.append(cur.strip())
            cur = ""
        else:
            cur += c
        i += 1
    return args


def lint_promql(expr, contract):
    """Problems with one PromQL expression, as strings."""
    problems = []
    made = set()  # labels created by label_replace/label_join
    for m in re.finditer(r"\blabel_(replace|join)\s*\(", expr):
        args = split_args(expr, m.end() - 1)
        if len(args) > 1:
            made.add(args[1].strip("\"'`"))
    s = re.sub(r'"(?:\\.|[^"\\])*"|\'(?:\\.|[^\'\\])*\'|`[^`]*`', '""', expr)
    s = re.sub(r"\$\{[^}]*\}|\$\w+", "5m", s)  # Grafana variables ($__rate_interval, ...)
    clause_labels = set()
    for m in CLAUSE.finditer(s):
        clause_labels |= {x.strip() for x in m.group(2).split(",") if x.strip()}
    s = CLAUSE.sub(" ", s)
    s = re.sub(r"\[[^\]]*\]", "", s)  # ranges and subqueries
    s = re.sub(r"\boffset\s+-?\w+", "", s)
    s = re.sub(r"@\s*[\w.()]+", "", s)
    for m in re.finditer(r"\{", s):
        if not re.search(r"[\w:]$", s[: m.start()].rstrip()):
            problems.append(f"selector without a metric name in: {expr}")
    used_labels = set(TARGET_LABELS)
    for m in re.finditer(r"(?<![\w:.])([A-Za-z_:][\w:]*)\s*(\{[^}]*\})?", s):
        name, braces = m.group(1), m.group(2)
        rest = s[m.end():].lstrip()
        if not braces and rest.startswith("("):
            continue  # function or aggregation
        if name.lower() in KEYWORDS:
            continue
        if name not in contract:
            problems.append(f"metric {name!r} is not in the contract: {expr}")
            continue
        labels = contract[name] | TARGET_LABELS
        used_labels |= labels
        for lm in re.finditer(r"(\w+)\s*(?:=~|!~|!=|=)", braces or ""):
            if lm.group(1) not in labels:
                problems.append(f"{name} has no label {lm.group(1)!r}: {expr}")
    unknown = clause_labels - used_labels - made - {"le"}
    if unknown:
        problems.append(f"grouping by labels none of its metrics has {sorted(unknown)}: {expr}")
    return problems


def check_dashboard(path, contract, ds_uid):
    problems = []
    try:
        dash = json.loads(path.read_text())
    except ValueError as e:
        return [f"{path}: not JSON: {e}"]
    for key in ("uid", "title", "schemaVersion", "panels"):
        if key not in dash:
            problems.append(f"{path}: no {key!r}")

    def lint(where, expr):
        problems.extend(f"{path}: {where}: {p}" for p in lint_promql(expr, contract))

    ids = set()

    def walk(panels):
        for p in panels:
            where = f"panel {p.get('id')} {p.get('title')!r}"
            if p.get("id") in ids:
                problems.append(f"{path}: {where}: duplicate panel id")
            ids.add(p.get("id"))
            if "gridPos" not in p:
                problems.append(f"{path}: {where}: no gridPos")
            if p.get("type") == "row":
                walk(p.get("panels", []))
                continue
            ds = p.get("datasource")
            if not isinstance(ds, dict) or ds.get("uid") != ds_uid:
                problems.append(f"{path}: {where}: datasource is not {{uid: {ds_uid}}}: {ds}")
            targets = p.get("targets") or []
            if not targets:
                problems.append(f"{path}: {where}: no targets")
            for t in targets:
                tds = t.get("datasource")
                if tds is not None and (not isinstance(tds, dict) or tds.get("uid") != ds_uid):
                    problems.append(f"{path}: {where}: target {t.get('refId')} datasource {tds}")
                expr = t.get("expr")
                if not isinstance(expr, str) or not expr.strip():
                    problems.append(f"{path}: {where}: target {t.get('refId')} has no expr")
                else:
                    lint(where, expr)

    walk(dash.get("panels", []))
    for var in dash.get("templating", {}).get("list", []):
        if var.get("type") != "query":
            continue
        q = var.get("query")
        q = q.get("query", "") if isinstance(q, dict) else (q or "")
        where = f"variable {var.get('name')!r}"
        ds = var.get("datasource")
        if not isinstance(ds, dict) or ds.get("uid") != ds_uid:
            problems.append(f"{path}: {where}: datasource is not {{uid: {ds_uid}}}")
        m = re.fullmatch(r"\s*label_values\(\s*(.*?)\s*,\s*(\w+)\s*\)\s*", q)
        if m:
            lint(where, m.group(1))
            name = re.match(r"[A-Za-z_:][\w:]*", m.group(1))
            if name and name.group(0) in contract and m.group(2) not in (
                contract[name.group(0)] | TARGET_LABELS
            ):
                problems.append(f"{path}: {where}: {name.group(0)} has no label {m.group(2)!r}")
        elif q:
            lint(where, q)
    for ann in dash.get("annotations", {}).get("list", []):
        if ann.get("expr"):
            lint(f"annotation {ann.get('name')!r}", ann["expr"])
    return problems


def yaml_exprs(text):
    """(line number, expr) for every `expr:` in a rules file, block or one-line."""
    lines = text.splitlines()
    out = []
    for i, line in enumerate(lines):
        m = re.match(r"^(\s*)(?:- )?expr:\s*(.*)$", line)
        if not m:
            continue
        indent, value = len(m.group(1)), m.group(2).strip()
        if value in ("|", ">", "|-", ">-"):
            body = []
            for nxt in lines[i + 1:]:
                if nxt.strip() and len(nxt) - len(nxt.lstrip()) <= indent:
                    break
                body.append(nxt.strip())
            out.append((i + 1, " ".join(b for b in body if b)))
        else:
            out.append((i + 1, value.strip("'\"") if value[:1] in "'\"" else value))
    return out


def check_rules(path, contract):
    text = path.read_text()
    problems = []
    for lineno, expr in yaml_exprs(text):
        problems.extend(f"{path}:{lineno}: {p}" for p in lint_promql(expr, contract))
    blocks = re.split(r"^\s*- alert:\s*", text, flags=re.M)[1:]
    names = []
    for block in blocks:
        name = block.split()[0]
        names.append(name)
        for need in ("severity:", "summary:", "description:"):
            if not re.search(rf"^\s+{need}", block, re.M):
                problems.append(f"{path}: alert {name} has no {need[:-1]}")
    if not names:
        problems.append(f"{path}: no alerts")
    return names, problems


def check_tests(path, contract, alerts):
    text = path.read_text()
    problems = []
    for i, line in enumerate(text.splitlines()):
        m = re.match(r"^\s*(?:- )?series:\s*(['\"])(.*)\1\s*$", line)
        if m:
            problems.extend(f"{path}:{i + 1}: {p}" for p in lint_promql(m.group(2), contract))
    fires, quiet = set(), set()
    for block in re.split(r"^\s*- alertname:\s*", text, flags=re.M)[1:]:
        name = block.split()[0]
        block = re.split(r"^\s*- (?:name|interval|series):", block, flags=re.M)[0]
        if re.search(r"exp_alerts:\s*\[\s*\]", block):
            quiet.add(name)
        elif re.search(r"exp_alerts:\s*\n\s*- exp_labels:", block):
            fires.add(name)
    for name in alerts:
        if name not in fires:
            problems.append(f"{path}: no test where {name} fires")
        if name not in quiet:
            problems.append(f"{path}: no test where {name} does not fire (exp_alerts: [])")
    return problems


def main():
    root = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else ".")
    prom, graf = root / "deploy/prometheus", root / "deploy/grafana"
    contract = load_contract(prom / "metrics-contract.txt")
    ds_text = (graf / "provisioning/datasources/prometheus.yml").read_text()
    uid = re.search(r"^\s*uid:\s*['\"]?([\w.-]+)", ds_text, re.M)
    problems = [] if uid else ["grafana datasource provisioning has no uid"]
    ds_uid = uid.group(1) if uid else None
    dashboards = sorted((graf / "dashboards").glob("*.json"))
    if not dashboards:
        problems.append("no dashboards in deploy/grafana/dashboards")
    for d in dashboards:
        problems += check_dashboard(d, contract, ds_uid)
    alerts, p = check_rules(prom / "alerts.yml", contract)
    problems += p
    problems += check_tests(prom / "alerts_test.yml", contract, alerts)
    for p in problems:
        print("FAIL:", p)
    if problems:
        print(f"contract check: {len(problems)} problem(s)")
        return 1
    print(
        f"contract check: OK ({len(dashboards)} dashboard(s), {len(alerts)} alerts, "
        f"{len(contract)} contract series names)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
