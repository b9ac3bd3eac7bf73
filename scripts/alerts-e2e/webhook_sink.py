#!/usr/bin/env python3
"""A webhook sink for scripts/alerts-e2e.sh: records every POST body (Alertmanager's Slack
payloads) as DIR/NNNN.json and answers 200 "ok" as Slack does.

Usage: webhook_sink.py PORT DIR   (listens on 127.0.0.1:PORT only)
"""
import http.server
import itertools
import os
import sys

port, out = int(sys.argv[1]), sys.argv[2]
os.makedirs(out, exist_ok=True)
counter = itertools.count(1)


class Sink(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        path = os.path.join(out, f"{next(counter):04d}.json")
        with open(path + ".tmp", "wb") as f:
            f.write(body)
        os.replace(path + ".tmp", path)  # readers never see half a body
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, fmt, *args):
        sys.stderr.write("webhook sink: " + fmt % args + "\n")


http.server.ThreadingHTTPServer(("127.0.0.1", port), Sink).serve_forever()
