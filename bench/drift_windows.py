"""Windows of current data for bench/drift.sh: writes each window as JSONL, runs
`taxon --json monitor drift` on it and prints the share of windows flagged, per scenario and
window size, as a Markdown table (and which features fired)."""

import argparse
import collections
import importlib
import json
import random
import subprocess
import sys
import warnings


def other_domain():
    """Paragraphs of the Python standard library's docstrings (30+ words): English, but
    technical prose about software, not news."""
    warnings.simplefilter("ignore")
    mods = ["json", "os", "re", "collections", "argparse", "asyncio", "email", "http.client",
            "logging", "pathlib", "subprocess", "socket", "typing", "unittest", "decimal",
            "datetime", "sqlite3", "threading", "zipfile", "tarfile", "functools", "itertools",
            "inspect", "ast", "csv", "xml.etree.ElementTree", "urllib.request", "random",
            "statistics", "string"]
    out = []
    for m in mods:
        mod = importlib.import_module(m)
        for name in dir(mod):
            doc = getattr(getattr(mod, name, None), "__doc__", None)
            if isinstance(doc, str) and len(doc.split()) >= 30:
                out.append(" ".join(doc.split()))
    return list(dict.fromkeys(out))


def sample(rng, pool, n):
    """n items without replacement when the pool is large enough, else with replacement."""
    return rng.sample(pool, n) if n <= len(pool) else [rng.choice(pool) for _ in range(n)]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--taxon", required=True)
    ap.add_argument("--model", required=True)
    ap.add_argument("--test", required=True)
    ap.add_argument("--work", required=True)
    ap.add_argument("--windows", type=int, default=30)
    ap.add_argument("--sizes", type=int, nargs="+", default=[50, 100, 200, 500])
    ap.add_argument("--shift-label", default="sports", help="the label drawn three times as often")
    ap.add_argument("--only", default="", help="run the scenarios whose name contains this")
    args = ap.parse_args()
    rows = [json.loads(l) for l in open(args.test)]
    texts = [r["text"] for r in rows]
    by_label = collections.defaultdict(list)
    for r in rows:
        by_label[r["label"]].append(r["text"])
    docs = other_domain()
    short = [" ".join(t.split()[: max(1, len(t.split()) // 3)]) for t in texts]

    def label_shift(rng, n):
        # one label drawn three times as often as each other label
        labels = sorted(by_label)
        if args.shift_label not in by_label:
            sys.exit(f"--shift-label {args.shift_label!r} is not a label of the test split: {labels}")
        weights = [3 if l == args.shift_label else 1 for l in labels]
        return [rng.choice(by_label[rng.choices(labels, weights)[0]]) for _ in range(n)]

    scenarios = [
        ("test split (no drift)", lambda rng, n: sample(rng, texts, n)),
        ("another domain (stdlib docstrings)", lambda rng, n: sample(rng, docs, n)),
        (f"label shift ({args.shift_label} x3)", label_shift),
        ("length shift (first third of each text)", lambda rng, n: sample(rng, short, n)),
    ]
    print(f"reference: {args.model}/profile.json; {len(texts)} test texts, {len(docs)} "
          f"docstring paragraphs; {args.windows} windows per cell", file=sys.stderr)
    table = {}
    fired = collections.defaultdict(collections.Counter)
    scenarios = [(n, d) for n, d in scenarios if args.only in n]
    for name, draw in scenarios:
        for n in args.sizes:
            rng = random.Random(f"{name}-{n}")
            hits = 0
            for w in range(args.windows):
                path = f"{args.work}/window.jsonl"
                with open(path, "w") as f:
                    for t in draw(rng, n):
                        f.write(json.dumps({"text": t}) + "\n")
                p = subprocess.run([args.taxon, "-q", "--json", "monitor", "drift", "--reference",
                                    args.model, "--current", path], capture_output=True, text=True)
                if p.returncode not in (0, 1):
                    sys.exit(f"taxon failed: {p.stderr}")
                rep = json.loads(p.stdout)
                hits += rep["drift"]
                for feat in rep["features"]:
                    if feat["drift"]:
                        fired[name][feat["name"]] += 1
            table[(name, n)] = hits / args.windows
            print(f"  {name}, {n}: {hits}/{args.windows}", file=sys.stderr)
    print("| scenario | " + " | ".join(f"n={n}" for n in args.sizes) + " | features that fired |")
    print("|---|" + "---:|" * len(args.sizes) + "---|")
    for name, _ in scenarios:
        cells = " | ".join(f"{table[(name, n)] * 100:.0f}%" for n in args.sizes)
        top = ", ".join(f"{k} {v}" for k, v in fired[name].most_common(4))
        print(f"| {name} | {cells} | {top} |")


if __name__ == "__main__":
    main()
