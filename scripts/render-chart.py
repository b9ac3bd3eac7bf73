"""Renders deploy/helm/taxon offline with helm-python-sdk (Helm's own engine), as
`helm template taxon deploy/helm/taxon -f VALUES` would, and checks what the chart promises.

    render-chart.py CHART OUT_DIR          -> OUT_DIR/default.yaml, staging.yaml, production.yaml

For each values file: the values pass values.schema.json, `helm lint --strict` reports no
warning or error, the chart renders, and the rendered objects keep the chart's promises
(replicas, probes, hardened pods, a grace period longer than the preStop sleep plus the
drain, secrets by reference only). Then a few values that must be refused are refused.
"""

import sys
from pathlib import Path

import helm_python as helm
import yaml

chart_dir, out_dir = Path(sys.argv[1]), Path(sys.argv[2])
out_dir.mkdir(parents=True, exist_ok=True)
RELEASE, NAMESPACE = "taxon", "taxon"
# The longest a drain can take: in-flight requests finish, and a request body may take
# `taxon serve --body-read-timeout` (30 s by default) to arrive.
DRAIN_SECONDS = 30

VARIANTS = {
    "default": {},
    "staging": yaml.safe_load((chart_dir / "values-staging.yaml").read_text()),
    "production": yaml.safe_load((chart_dir / "values-production.yaml").read_text()),
}


def fail(msg):
    print(f"render-chart: {msg}", file=sys.stderr)
    sys.exit(1)


def render(chart, values):
    out = chart.render(values, name=RELEASE, namespace=NAMESPACE, is_install=True)
    docs = []
    text = []
    for path in sorted(out):
        if path.endswith("NOTES.txt") or not out[path].strip():
            continue
        for doc in yaml.safe_load_all(out[path]):
            if doc:
                docs.append(doc)
        text.append(f"---\n# Source: {path}\n{out[path].strip()}\n")
    return docs, "".join(text)


def pod_specs(docs):
    for d in docs:
        spec = d.get("spec", {})
        if d["kind"] in ("Deployment", "Job"):
            yield d, spec["template"]["spec"]
        elif d["kind"] == "CronJob":
            yield d, spec["jobTemplate"]["spec"]["template"]["spec"]


def check_promises(name, docs):
    kinds = {}
    for d in docs:
        kinds.setdefault(d["kind"], []).append(d)
    dep = kinds["Deployment"][0]
    hpa = kinds.get("HorizontalPodAutoscaler", [])
    replicas = hpa[0]["spec"]["minReplicas"] if hpa else dep["spec"]["replicas"]
    if name in ("default", "production") and replicas < 3:
        fail(f"{name}: {replicas} replicas, want at least 3")
    if hpa and "replicas" in dep["spec"]:
        fail(f"{name}: the Deployment sets replicas although an HPA owns them")
    pod = dep["spec"]["template"]["spec"]
    c = pod["containers"][0]
    probes = {p: c[p]["httpGet"]["path"] for p in ("livenessProbe", "readinessProbe", "startupProbe")}
    if probes != {"livenessProbe": "/health", "readinessProbe": "/ready", "startupProbe": "/health"}:
        fail(f"{name}: probes {probes}")
    for k in ("requests", "limits"):
        if not c["resources"].get(k):
            fail(f"{name}: no resource {k}")
    sleep = c["lifecycle"]["preStop"]["sleep"]["seconds"]
    grace = pod["terminationGracePeriodSeconds"]
    if grace <= sleep + DRAIN_SECONDS:
        fail(f"{name}: grace period {grace}s <= preStop {sleep}s + drain {DRAIN_SECONDS}s")
    keys = {t["topologyKey"] for t in pod["topologySpreadConstraints"]}
    if "kubernetes.io/hostname" not in keys:
        fail(f"{name}: replicas are not spread across nodes")
    if "PodDisruptionBudget" not in kinds or "NetworkPolicy" not in kinds or "Service" not in kinds:
        fail(f"{name}: missing a PodDisruptionBudget, NetworkPolicy or Service")
    for owner, spec in pod_specs(docs):
        where = f"{name}: {owner['kind']} {owner['metadata']['name']}"
        if not spec["securityContext"].get("runAsNonRoot"):
            fail(f"{where}: pod may run as root")
        if spec["securityContext"].get("seccompProfile", {}).get("type") != "RuntimeDefault":
            fail(f"{where}: no RuntimeDefault seccomp profile")
        for ctr in spec.get("initContainers", []) + spec["containers"]:
            sc = ctr["securityContext"]
            if not (sc["readOnlyRootFilesystem"] and sc["runAsNonRoot"]
                    and sc["allowPrivilegeEscalation"] is False and "ALL" in sc["capabilities"]["drop"]):
                fail(f"{where}/{ctr['name']}: not hardened: {sc}")
            for env in ctr.get("env", []):
                secretish = any(w in env["name"] for w in ("SECRET", "PASSWORD", "KEY", "_DB", "WEBHOOK"))
                if secretish and "value" in env and env["name"] != "AWS_DEFAULT_REGION":
                    fail(f"{where}/{ctr['name']}: {env['name']} inlined, not from a Secret")
    if "Secret" in kinds:
        fail(f"{name}: the chart must reference Secrets, not create them")
    for job in kinds.get("Job", []):
        args = job["spec"]["template"]["spec"]["containers"][0]["args"]
        shard = args[args.index("--shard") + 1]
        if job["spec"]["completionMode"] != "Indexed" or not shard.startswith("$(JOB_COMPLETION_INDEX)/"):
            fail(f"{name}: batch Job is not an Indexed Job over --shard $(JOB_COMPLETION_INDEX)/N")
    return sorted(kinds)


with helm.Chart.load(str(chart_dir)) as chart:
    for name, values in VARIANTS.items():
        try:
            chart.validate_schema(values)
        except helm.HelmError as e:
            fail(f"{name}: values.schema.json refuses the values: {e}")
        report = helm.lint(str(chart_dir), values, strict=True, namespace=NAMESPACE)
        problems = [m for m in report.get("messages", []) if m.get("severity", 0) >= 2]
        if problems or report.get("errors"):
            fail(f"{name}: helm lint: {problems} {report.get('errors')}")
        docs, text = render(chart, values)
        kinds = check_promises(name, docs)
        (out_dir / f"{name}.yaml").write_text(text)
        print(f"   {name}: schema, lint (strict), {len(docs)} objects ({', '.join(kinds)}) -> {out_dir / (name + '.yaml')}")

    # Values that must be refused.
    refused = {
        "a writable root filesystem": {"securityContext": {"readOnlyRootFilesystem": False}},
        "an unknown top-level value": {"replicas": 3},
        "a batch input that is not s3://": {"batch": {"input": "/data/in.jsonl"}},
        "an HPA that can scale to one pod": {"autoscaling": {"minReplicas": 1}},
    }
    for what, values in refused.items():
        try:
            chart.validate_schema(values)
        except helm.HelmError:
            print(f"   refused: {what}")
            continue
        fail(f"values.schema.json accepted {what}: {values}")
    try:
        chart.render({"auth": {"enabled": False}}, name=RELEASE, namespace=NAMESPACE)
    except helm.HelmError:
        print("   refused: no authentication without auth.insecure=true")
    else:
        fail("the chart rendered with authentication off and auth.insecure unset")
