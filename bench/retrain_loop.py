#!/usr/bin/env python3
"""The continuous-training loop on real data, against a live `taxon serve` (bench/retrain.sh).

usage: bench/retrain_loop.py --port P --traffic traffic.jsonl --feedback N --work DIR

1. Scores every text of traffic.jsonl with the served model (v1): live accuracy before.
2. Sends the true label of the first N as feedback (POST /v1/feedback).
3. Keeps a background client predicting throughout, counting failed requests.
4. Posts an Alertmanager notification (`ModelAccuracyLow`, firing) to /v1/admin/retrain and
   times until the server answers with another model version.
5. Scores the rest of traffic.jsonl (the texts that got no feedback) with v1 before and with the
   new version after: the accuracy the retraining bought on texts it never saw.
Prints one JSON object.
"""

import argparse
import json
import threading
import time
import urllib.error
import urllib.request


def post(port, path, body):
    req = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}",
        json.dumps(body).encode(),
        {"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=60) as r:
        return r.status, json.load(r)


def predict(port, text):
    return post(port, "/v1/predict", {"text": text})[1]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--traffic", required=True)
    ap.add_argument("--feedback", type=int, required=True)
    args = ap.parse_args()
    rows = [json.loads(l) for l in open(args.traffic) if l.strip()]
    # The server refuses texts over its --max-text-chars (20,000 by default): a client would
    # not send them.
    rows = [r for r in rows if len(r["text"]) <= 20_000]
    fb_rows, rest = rows[: args.feedback], rows[args.feedback :]

    answers = [predict(args.port, r["text"]) for r in fb_rows]
    v1 = answers[0]["model"]["version"]
    before_fb = sum(a["label"] == r["label"] for a, r in zip(answers, fb_rows)) / len(fb_rows)
    before_rest = sum(predict(args.port, r["text"])["label"] == r["label"] for r in rest) / len(rest)
    items = [{"request_id": a["request_id"], "label": r["label"]} for a, r in zip(answers, fb_rows)]
    for i in range(0, len(items), 200):
        post(args.port, "/v1/feedback", {"feedback": items[i : i + 200]})
    time.sleep(2)  # the log's writer flushes in the background

    stop = threading.Event()
    counts = {"sent": 0, "failed": 0}

    def load():
        i = 0
        while not stop.is_set():
            try:
                predict(args.port, rest[i % len(rest)]["text"])
            except (urllib.error.URLError, OSError, ValueError):
                counts["failed"] += 1
            counts["sent"] += 1
            i += 1

    t = threading.Thread(target=load)
    t.start()
    notice = {
        "receiver": "taxon-retrain",
        "status": "firing",
        "alerts": [{"status": "firing", "labels": {"alertname": "ModelAccuracyLow"}}],
    }
    t0 = time.monotonic()
    status, started = post(args.port, "/v1/admin/retrain", notice)
    assert status == 202, started
    v2 = v1
    while v2 == v1 and time.monotonic() - t0 < 600:
        time.sleep(0.2)
        v2 = predict(args.port, rest[0]["text"])["model"]["version"]
    swap_s = time.monotonic() - t0
    time.sleep(1)
    stop.set()
    t.join()
    after_rest = sum(predict(args.port, r["text"])["label"] == r["label"] for r in rest) / len(rest)
    print(json.dumps({
        "version_before": v1,
        "version_after": v2,
        "feedback_rows": len(fb_rows),
        "live_accuracy_before_on_feedback_texts": round(before_fb, 4),
        "accuracy_on_unseen_traffic_before": round(before_rest, 4),
        "accuracy_on_unseen_traffic_after": round(after_rest, 4),
        "unseen_traffic_rows": len(rest),
        "alert_to_new_version_serving_s": round(swap_s, 2),
        "requests_during_retraining": counts["sent"],
        "failed_requests": counts["failed"],
    }, indent=2))


if __name__ == "__main__":
    main()
