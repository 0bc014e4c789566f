#!/usr/bin/env python3
"""A sluice job consumer in plain Python (standard library only): the endpoint of a kind with
`handler = "http"`. sluice POSTs each job here as JSON:

    {"job_id": "...", "kind": "greet", "attempt": 1, "enqueued_at": 1764620000000,
     "record": {"name": "Ada"}}

signed per Standard Webhooks (`webhook-id`, `webhook-timestamp`, `webhook-signature`) with the
kind's secret. The answer decides the job's outcome:

    2xx          success; a JSON body (up to 64 KiB) becomes the job's result
    429, 503     retry later, honouring Retry-After
    408, 5xx     retry later
    other 4xx    fatal: the job is dead-lettered at once

Run it:  SLUICE_SECRET=whsec_... PORT=8000 python3 consumer.py
"""

import base64
import hashlib
import hmac
import json
import os
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

SECRET = os.environ.get("SLUICE_SECRET", "")
PORT = int(os.environ.get("PORT", "8000"))
# Signatures older or newer than this are refused, so a captured request cannot be replayed later.
TOLERANCE_SECONDS = 300


def signing_key(secret):
    if not secret.startswith("whsec_"):
        sys.exit("SLUICE_SECRET must be the kind's `whsec_` secret")
    return base64.b64decode(secret[len("whsec_"):])


KEY = signing_key(SECRET)


def verified(headers, body):
    """True when the Standard Webhooks signature over `id.timestamp.body` is the kind's."""
    msg_id = headers.get("webhook-id", "")
    timestamp = headers.get("webhook-timestamp", "")
    signatures = headers.get("webhook-signature", "")
    try:
        if abs(time.time() - int(timestamp)) > TOLERANCE_SECONDS:
            return False
    except ValueError:
        return False
    signed = f"{msg_id}.{timestamp}.".encode() + body
    expected = base64.b64encode(hmac.new(KEY, signed, hashlib.sha256).digest()).decode()
    # Several signatures may be sent (secret rotation), space-separated, each `v1,<base64>`.
    return any(
        hmac.compare_digest(sig.partition(",")[2], expected)
        for sig in signatures.split()
        if sig.startswith("v1,")
    )


def handle(job):
    """The work. Returns (status, body, extra headers)."""
    name = job["record"]["name"]
    if name == "bad":
        # A job that can never succeed: a 4xx dead-letters it at once.
        return 422, {"error": "nobody is called bad"}, {}
    if name == "busy" and job["attempt"] == 1:
        # Not now: sluice retries after the Retry-After (or its retry tier, if longer).
        return 503, {"error": "busy, try again"}, {"Retry-After": "1"}
    return 200, {"greeting": f"hello {name}", "attempt": job["attempt"]}, {}


class Handler(BaseHTTPRequestHandler):
    def do_POST(self):
        length = int(self.headers.get("content-length", "0"))
        body = self.rfile.read(length)
        if not verified(self.headers, body):
            return self.answer(401, {"error": "invalid signature"}, {})
        try:
            job = json.loads(body)
        except ValueError:
            return self.answer(400, {"error": "body is not JSON"}, {})
        self.answer(*handle(job))

    def answer(self, status, body, headers):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        for key, value in headers.items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


if __name__ == "__main__":
    server = ThreadingHTTPServer(("127.0.0.1" if "BIND_LOCAL" in os.environ else "0.0.0.0", PORT), Handler)
    print(f"greet consumer listening on :{PORT}", flush=True)
    server.serve_forever()
