#!/usr/bin/env python3
"""A webhook receiver for tests/webhooks.rs, on loopback.

Every request is verified with the `standardwebhooks` package (the
specification's reference implementation, not Lethe's code) and recorded as
one JSON line in OUT. It answers by path:
  /ok     200
  /slow   200 after 300 ms (deliveries lag behind commits)
  /flaky  500 to the first three attempts of each webhook-id, then 200
  /gone   410
A request whose signature does not verify gets 400.

    receiver.py PORT SECRET OUT
"""
import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from standardwebhooks.webhooks import Webhook

PORT, SECRET, OUT = int(sys.argv[1]), sys.argv[2], sys.argv[3]
VERIFIER = Webhook(SECRET)
LOCK = threading.Lock()
SEEN = {}


class Handler(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("content-length", 0)))
        headers = {k.lower(): v for k, v in self.headers.items()}
        try:
            VERIFIER.verify(body, headers)
            verified = True
        except Exception:  # any verification failure
            verified = False
        key = (self.path, headers.get("webhook-id", ""))
        with LOCK:
            SEEN[key] = SEEN.get(key, 0) + 1
            attempt = SEEN[key]
        if not verified:
            status = 400
        elif self.path == "/flaky" and attempt <= 3:
            status = 500
        elif self.path == "/gone":
            status = 410
        else:
            if self.path == "/slow":
                time.sleep(0.3)
            status = 200
        record = {
            "path": self.path,
            "verified": verified,
            "status": status,
            "attempt": attempt,
            "headers": {
                k: headers[k]
                for k in ("webhook-id", "webhook-timestamp", "webhook-signature")
                if k in headers
            },
            "body": body.decode("utf-8", "replace"),
        }
        with LOCK, open(OUT, "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")
        self.send_response(status)
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


ThreadingHTTPServer(("127.0.0.1", PORT), Handler).serve_forever()
