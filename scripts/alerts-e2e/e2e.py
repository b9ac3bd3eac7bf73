#!/usr/bin/env python3
"""The checks of scripts/alerts-e2e.sh (which starts and stops the services).

  e2e.py data DIR
      Writes DIR/train.jsonl and DIR/validation.jsonl: short synthetic news-like texts of four
      labels (seeded, so every run trains the same model).
  e2e.py run --taxon URL --prometheus URL --alertmanager URL --webhook-dir D --mail-dir D
             --rules FILE --dashboard FILE --model DIR --user U --password P [--timeout S]
      1. waits for Prometheus to scrape taxon; gets a token; tries wrong passwords until the
         login limit answers 429 (taxon_login_limited_total), and waits for TaxonLoginRateLimited's
         Slack payload in #taxon-security;
      2. sends normal predictions and their true labels as feedback (model_accuracy);
      3. sends drifted traffic (long texts of another domain) until TaxonDriftDetected fires,
         then waits for its Slack payload in the webhook sink (channel #taxon-ml) and its mail
         in the mailbox;
      4. evaluates every PromQL expression of the rules and the dashboard with Prometheus's
         /api/v1/query (any error fails) and checks every metric name they use is on taxon's
         live /metrics (or is Prometheus's own, or a recording rule);
      5. sends normal traffic until the online window no longer drifts, then waits for the
         RESOLVED notice in both sinks.
      Every wait is bounded by --timeout seconds and fails with what it was waiting for.
"""
import argparse
import email
import email.policy
import glob
import json
import os
import random
import re
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

LABELS = {
    "sport": "match goal team player coach league season striker win cup referee stadium",
    "business": "market shares profit bank company investors growth prices economy trade deal sales",
    "tech": "software phone computer internet users digital network device data online app chip",
    "politics": "election minister party government vote parliament policy campaign leader law tax reform",
}
COMMON = "the a of in and to said on for with was new year that it after their".split()
# Another domain: none of these words is in the training texts.
OTHER = ("galaxy orbit telescope nebula comet planet asteroid photon spectrum gravity quasar "
         "pulsar eclipse meteor lunar solar cosmic stellar horizon radiation").split()

# Series Prometheus makes itself.
PROMETHEUS_OWN = {"up", "ALERTS", "ALERTS_FOR_STATE", "scrape_duration_seconds", "scrape_samples_scraped"}
# PromQL words that look like metric names.
KEYWORDS = {"and", "or", "unless", "bool", "offset", "by", "without", "on", "ignoring",
            "group_left", "group_right", "inf", "nan"}


def normal_text(rng, label):
    words = LABELS[label].split()
    n = rng.randint(10, 24)
    return " ".join(rng.choice(words) if rng.random() < 0.6 else rng.choice(COMMON) for _ in range(n))


def odd_text(rng):
    n = rng.randint(150, 300)
    return " ".join(rng.choice(OTHER) if rng.random() < 0.9 else rng.choice(COMMON) for _ in range(n))


def cmd_data(out):
    rng = random.Random(7)
    os.makedirs(out, exist_ok=True)
    for name, n in (("train.jsonl", 100), ("validation.jsonl", 40)):
        with open(os.path.join(out, name), "w") as f:
            for _ in range(n):
                for label in LABELS:
                    f.write(json.dumps({"text": normal_text(rng, label), "label": label}) + "\n")


class Fail(Exception):
    pass


TOKEN = None


def http(method, url, body=None, timeout=10, form=None):
    headers = {}
    if form is not None:
        data = urllib.parse.urlencode(form).encode()
        headers["content-type"] = "application/x-www-form-urlencoded"
    else:
        data = None if body is None else json.dumps(body).encode()
        if data:
            headers["content-type"] = "application/json"
    if TOKEN and "/v1/" in url:
        headers["authorization"] = "Bearer " + TOKEN
    req = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def query(prom, expr):
    """Prometheus's answer to an instant query: (status, result list or error)."""
    url = prom + "/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    code, text = http("GET", url)
    try:
        doc = json.loads(text)
    except json.JSONDecodeError:
        return "error", f"HTTP {code}: {text[:200]}"
    if doc.get("status") != "success":
        return "error", f"{doc.get('errorType')}: {doc.get('error')}"
    return "success", doc["data"]["result"]


def wait(what, timeout, probe, every=0.5, act=None):
    """Calls act() then probe() until probe() is truthy; fails after timeout seconds."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        if act:
            act()
        last = probe()
        if last:
            return last
        time.sleep(every)
    raise Fail(f"timed out after {timeout} s waiting for {what}")


def slack_payloads(d):
    out = []
    for path in sorted(glob.glob(os.path.join(d, "*.json"))):
        with open(path) as f:
            out.append(json.load(f))
    return out


def slack_notice(d, status, alert="TaxonDriftDetected"):
    """The first Slack payload about ALERT whose title starts with STATUS."""
    for p in slack_payloads(d):
        for a in p.get("attachments", []):
            if a.get("title", "").startswith(status + ":") and alert in a.get("title", ""):
                return p
    return None


def mails(d):
    out = []
    for path in sorted(glob.glob(os.path.join(d, "new", "*"))):
        with open(path, "rb") as f:
            out.append(email.message_from_binary_file(f, policy=email.policy.default))
    return out


def mail_notice(d, status):
    """The first mail whose subject is [FIRING:N] or [RESOLVED] ... TaxonDriftDetected ..."""
    for m in mails(d):
        subject = str(m["subject"] or "")
        if subject.startswith("[" + status) and "TaxonDriftDetected" in subject:
            return m
    return None


def exposed_names(metrics_text):
    """Every sample name taxon's /metrics can have: the samples present, and for each
    `# TYPE` the names of its type (a family with no series yet shows only its TYPE line)."""
    names = set()
    suffixes = {"counter": ["_total", "_created"], "histogram": ["_bucket", "_sum", "_count", "_created"],
                "summary": ["", "_sum", "_count", "_created"], "gauge": [""], "untyped": [""],
                "unknown": [""], "info": ["_info"], "stateset": [""], "gaugehistogram": ["_bucket", "_gcount", "_gsum"]}
    for line in metrics_text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(None, 3)
            names.add(name)
            for s in suffixes.get(kind.strip(), [""]):
                names.add(name + s)
        elif line and not line.startswith("#"):
            names.add(re.split(r"[{\s]", line, maxsplit=1)[0])
    return names


def metric_names(expr):
    """Metric names an expression selects (functions, keywords, labels and strings removed)."""
    e = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    e = re.sub(r"\{[^}]*\}", " ", e)
    e = re.sub(r"\[[^\]]*\]", " ", e)
    e = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", e)
    found = set()
    for m in re.finditer(r"(?<![\w.])([A-Za-z_:][A-Za-z0-9_:]*)(\s*\()?", e):
        name, call = m.group(1), m.group(2)
        if call or name.lower() in KEYWORDS:
            continue
        found.add(name)
    return found


def rule_expressions(path):
    import yaml  # the test venv's PyYAML (scripts/setup-tools.sh)
    with open(path) as f:
        doc = yaml.safe_load(f)
    records, exprs = set(), []
    for g in doc["groups"]:
        for r in g["rules"]:
            exprs.append((r.get("alert") or r.get("record"), r["expr"]))
            if "record" in r:
                records.add(r["record"])
    return records, exprs


def dashboard_expressions(path, job):
    with open(path) as f:
        dash = json.load(f)
    out = []
    panels = list(dash["panels"]) + [q for p in dash["panels"] for q in p.get("panels", [])]
    for p in panels:
        for t in p.get("targets", []):
            expr = t["expr"].replace("$__rate_interval", "1m").replace("${job}", job).replace("$job", job)
            out.append((f"panel {p['title']!r} {t['refId']}", expr))
    for v in dash.get("templating", {}).get("list", []):
        q = v.get("query")
        if isinstance(q, dict):
            q = q.get("query")
        m = re.fullmatch(r"label_values\((\w+),\s*\w+\)", q or "")
        if m:  # label_values(metric, label) is Grafana's; the metric must exist
            out.append((f"variable {v['name']}", m.group(1)))
    return out


def send(taxon, texts):
    code, text = http("POST", taxon + "/v1/predict/batch", {"texts": texts})
    if code != 200:
        raise Fail(f"POST /v1/predict/batch answered {code}: {text[:300]}")


def drift_detected(taxon):
    code, text = http("GET", taxon + "/metrics")
    m = re.search(r"^taxon_drift_detected\{[^}]*\} (\d+)", text, re.M)
    return None if m is None else int(m.group(1)), text


def cmd_run(a):
    rng = random.Random(11)
    labels = list(LABELS)
    t0 = time.monotonic()

    def step(msg):
        print(f"[{time.monotonic() - t0:6.1f} s] {msg}", flush=True)

    # 1. Prometheus scrapes taxon.
    wait("Prometheus to scrape taxon (up{job=\"taxon\"} == 1)", a.timeout,
         lambda: (lambda s, r: s == "success" and any(x["value"][1] == "1" for x in r))(*query(a.prometheus, 'up{job="taxon"}')))
    step("Prometheus scrapes taxon")

    # Auth: a token for the prediction routes, then wrong passwords until a login limit
    # refuses with 429.
    global TOKEN
    code, text = http("POST", a.taxon + "/token", form={"username": a.user, "password": a.password})
    if code != 200:
        raise Fail(f"POST /token with the right password answered {code}: {text[:300]}")
    TOKEN = json.loads(text)["access_token"]
    codes = []
    for _ in range(20):
        code, _text = http("POST", a.taxon + "/token", form={"username": a.user, "password": "wrong-password-1"})
        codes.append(code)
        if code == 429:
            break
    # A wrong password is OAuth2's invalid_grant: 400.
    if codes[-1] != 429 or not set(codes[:-1]) <= {400, 401} or len(codes) < 2:
        raise Fail(f"wrong passwords were answered {codes}, not 400s then 429")
    step(f"{len(codes) - 1} wrong passwords answered {sorted(set(codes[:-1]))}, then 429")
    slack = wait("a FIRING Slack payload for TaxonLoginRateLimited", a.timeout,
                 lambda: slack_notice(a.webhook_dir, "FIRING", "TaxonLoginRateLimited"))
    if slack.get("channel") != "#taxon-security":
        raise Fail(f"the login alert went to Slack channel {slack.get('channel')!r}, not #taxon-security")
    step("Slack payload in #taxon-security: " + slack["attachments"][0]["title"])

    # 2. Normal predictions with feedback: live accuracy.
    correct = 0
    for i in range(40):
        label = labels[i % len(labels)]
        code, text = http("POST", a.taxon + "/v1/predict", {"text": normal_text(rng, label)})
        if code != 200:
            raise Fail(f"POST /v1/predict answered {code}: {text[:300]}")
        answer = json.loads(text)
        correct += answer["label"] == label
        code, text = http("POST", a.taxon + "/v1/feedback", {"request_id": answer["request_id"], "label": label})
        if code != 200:
            raise Fail(f"POST /v1/feedback answered {code}: {text[:300]}")
    step(f"40 predictions with feedback, {correct} right")
    live = wait("model_accuracy in Prometheus", a.timeout,
                lambda: (lambda s, r: r if s == "success" and r else None)(*query(a.prometheus, 'model_accuracy{job="taxon"}')))
    got = float(live[0]["value"][1])
    if abs(got - correct / 40) > 1e-9:
        raise Fail(f"model_accuracy is {got}, the feedback says {correct / 40}")
    with open(os.path.join(a.model, "metrics.json")) as f:
        recorded = json.load(f)["validation"]["accuracy"]
    status, ev = query(a.prometheus, 'taxon_model_evaluated_accuracy{job="taxon"}')
    if status != "success" or len(ev) != 1 or abs(float(ev[0]["value"][1]) - recorded) > 1e-9:
        raise Fail(f"taxon_model_evaluated_accuracy is {ev}, metrics.json records validation accuracy {recorded}")
    step(f"model_accuracy {got:.3f}, taxon_model_evaluated_accuracy {recorded:.3f} (metrics.json)")
    state = drift_detected(a.taxon)[0]
    if state != 0:
        raise Fail(f"taxon_drift_detected is {state} on normal traffic, before any drift was sent")

    # 3. Drift: long texts of another domain until the alert fires, then the notices.
    wait("TaxonDriftDetected to fire in Prometheus", a.timeout,
         lambda: (lambda s, r: s == "success" and r)(*query(a.prometheus, 'ALERTS{alertname="TaxonDriftDetected",alertstate="firing"}')),
         act=lambda: send(a.taxon, [odd_text(rng) for _ in range(8)]))
    step("TaxonDriftDetected fires in Prometheus")
    slack = wait("a FIRING Slack payload for TaxonDriftDetected in the webhook sink", a.timeout,
                 lambda: slack_notice(a.webhook_dir, "FIRING"))
    if slack.get("channel") != "#taxon-ml":
        raise Fail(f"the drift alert went to Slack channel {slack.get('channel')!r}, not #taxon-ml: {slack}")
    text = slack["attachments"][0].get("text", "")
    if "taxon monitor drift" not in text:
        raise Fail(f"the Slack text does not carry the rule's description: {text!r}")
    step("Slack payload: " + slack["attachments"][0]["title"])
    mail = wait("a [FIRING] mail for TaxonDriftDetected in the mailbox", a.timeout,
                lambda: mail_notice(a.mail_dir, "FIRING"))
    if "ml-team@example.org" not in str(mail["to"]):
        raise Fail(f"the drift mail went to {mail['to']}, not ml-team@example.org")
    step(f"mail to {mail['to']}: {mail['subject']}")

    # 4. Every expression of the rules and the dashboard, and every metric it names.
    records, rule_exprs = rule_expressions(a.rules)
    exprs = rule_exprs + dashboard_expressions(a.dashboard, "taxon")
    code, live_metrics = http("GET", a.taxon + "/metrics")
    exposed = exposed_names(live_metrics)
    problems, empty = [], []
    for where, expr in exprs:
        status, result = query(a.prometheus, expr)
        if status != "success":
            problems.append(f"{where}: {expr!r}: {result}")
        elif not result:
            empty.append(where)
        for name in metric_names(expr):
            if name in records or name in PROMETHEUS_OWN or name in exposed:
                continue
            problems.append(f"{where}: metric {name} is not on taxon's /metrics")
    # Series the run made sure exist: these must have data (the join checks that live accuracy
    # and evaluated accuracy carry the same labels, or TaxonLiveAccuracyBelowEvaluated could
    # never fire).
    for expr in ['taxon_model_evaluated_accuracy - on (job, instance, model_version) model_accuracy',
                 'job:taxon_requests:rate5m', 'job_route:taxon_request_duration_seconds:p99_5m{route="/v1/predict/batch"}',
                 'job:taxon_queue:saturation', 'job_version_result:predictions:rate5m', 'taxon_drift_score',
                 'taxon_live_recall']:
        status, result = query(a.prometheus, expr)
        if status != "success" or not result:
            problems.append(f"{expr} has no data in Prometheus after the traffic: {result}")
    if problems:
        raise Fail("PromQL checks failed:\n  " + "\n  ".join(problems))
    used = sorted(set().union(*(metric_names(e) for _, e in exprs)))
    step(f"{len(exprs)} expressions evaluated without error ({len(empty)} empty now: {', '.join(empty)}); "
         f"{len(used)} metric names all exported, recorded or Prometheus's own")

    # 5. Normal traffic until the window is clean, then the RESOLVED notices.
    sent = 0

    def normal():
        nonlocal sent
        send(a.taxon, [normal_text(rng, rng.choice(labels)) for _ in range(8)])
        sent += 8
    try:
        wait("taxon_drift_detected 0 after normal traffic", a.timeout,
             lambda: drift_detected(a.taxon)[0] == 0, every=0.2, act=normal)
    except Fail:
        scores = [l for l in drift_detected(a.taxon)[1].splitlines() if l.startswith("taxon_drift_score")]
        raise Fail(f"taxon_drift_detected stayed 1 after {sent} normal texts; scores:\n  " + "\n  ".join(scores))
    step(f"the online window is clean after {sent} normal texts")
    slack = wait("a RESOLVED Slack payload for TaxonDriftDetected", a.timeout, lambda: slack_notice(a.webhook_dir, "RESOLVED"))
    step("Slack payload: " + slack["attachments"][0]["title"])
    mail = wait("a [RESOLVED] mail for TaxonDriftDetected", a.timeout, lambda: mail_notice(a.mail_dir, "RESOLVED"))
    step(f"mail to {mail['to']}: {mail['subject']}")


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    d = sub.add_parser("data")
    d.add_argument("dir")
    r = sub.add_parser("run")
    for flag in ("taxon", "prometheus", "alertmanager", "webhook-dir", "mail-dir", "rules", "dashboard", "model",
                 "user", "password"):
        r.add_argument("--" + flag, required=True)
    r.add_argument("--timeout", type=float, default=120)
    a = p.parse_args()
    if a.cmd == "data":
        cmd_data(a.dir)
        return 0
    try:
        cmd_run(a)
    except Fail as e:
        print(f"alerts-e2e: FAILED: {e}", file=sys.stderr)
        return 1
    print("alerts-e2e: every check passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
