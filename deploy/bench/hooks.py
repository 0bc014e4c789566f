"""Load client of `make bench-hooks` (deploy/bench/hooks.sh): Stripe-signed webhooks against a
running api on 127.0.0.1.

Every request is a distinct Stripe event (its own `id`), signed beforehand with stripe-python's
`WebhookSignature.generate_signature_header` (the sender's own library, pinned in
deploy/pytools.sh), so the api verifies, claims, produces and marks each one, never a duplicate.

  max     N requests on C keep-alive connections as fast as they are answered: verified
          webhooks/s. The same count of `POST /v1/jobs/noop` (no signature, no claim, the same
          produce path) is the peer in the same run.
  paced   RATE requests/s for DURATION s, open loop: each request's latency is measured from the
          moment it was due, so a client or server falling behind shows in the figures.

Prints one JSON object: {"max": {...}, "jobs_peer": {...}, "paced": {...}}; `hooks.py report
<figures.json> <records> <metrics.txt> <binary>` makes the results file from it.
Env: API (http://127.0.0.1:8080), SOURCE (bench), SECRET, N (20000), CONNECTIONS (32),
RATE (1000), DURATION (10), THREADS (16).
"""

import http.client
import json
import os
import sys
import threading
import time
import uuid
from urllib.parse import urlparse

import stripe

API = urlparse(os.environ.get("API", "http://127.0.0.1:8080"))
SOURCE = os.environ.get("SOURCE", "bench")
SECRET = os.environ.get("SECRET", "")
N = int(os.environ.get("N", "20000"))
CONNECTIONS = int(os.environ.get("CONNECTIONS", "32"))
RATE = int(os.environ.get("RATE", "1000"))
DURATION = int(os.environ.get("DURATION", "10"))
THREADS = int(os.environ.get("THREADS", "16"))
RUN = uuid.uuid4().hex[:8]


def signed_requests(count, tag):
    """`count` distinct Stripe events and their headers, signed now."""
    now = int(time.time())
    requests = []
    for i in range(count):
        body = json.dumps({"id": f"evt_{RUN}_{tag}_{i}", "object": "event",
                           "type": "invoice.paid", "data": {"object": {"id": f"in_{i}"}}})
        header = stripe.WebhookSignature.generate_signature_header(body, SECRET, timestamp=now)
        requests.append((f"/v1/hooks/{SOURCE}", body.encode(),
                         {"Stripe-Signature": header, "Content-Type": "application/json"}))
    return requests


def noop_requests(count):
    headers = {
        "Content-Type": "application/json",
        "Authorization": "Bearer " + os.environ["SLUICE_TOKEN"],
    }
    return [("/v1/jobs/noop", b"{}", headers)] * count


def percentile(sorted_values, p):
    if not sorted_values:
        return None
    return sorted_values[min(len(sorted_values) - 1, int(len(sorted_values) * p))]


def summary(latencies, statuses, elapsed):
    latencies.sort()
    ok = statuses.get(200, 0) + statuses.get(202, 0)
    return {
        "requests": sum(statuses.values()),
        "ok": ok,
        "statuses": {str(k): v for k, v in sorted(statuses.items())},
        "per_second": round(ok / elapsed, 1),
        "elapsed_s": round(elapsed, 3),
        "p50_ms": round(percentile(latencies, 0.50) * 1000, 2),
        "p99_ms": round(percentile(latencies, 0.99) * 1000, 2),
        "max_ms": round(latencies[-1] * 1000, 2),
    }


def send(connection, request):
    path, body, headers = request
    connection.request("POST", path, body=body, headers=headers)
    response = connection.getresponse()
    response.read()
    return response.status


def closed_loop(requests):
    """Every request, on CONNECTIONS connections, each sending its next as soon as answered."""
    lock = threading.Lock()
    position = [0]
    latencies, statuses = [], {}

    def worker():
        connection = http.client.HTTPConnection(API.hostname, API.port, timeout=30)
        while True:
            with lock:
                if position[0] >= len(requests):
                    return
                request = requests[position[0]]
                position[0] += 1
            started = time.perf_counter()
            status = send(connection, request)
            took = time.perf_counter() - started
            with lock:
                latencies.append(took)
                statuses[status] = statuses.get(status, 0) + 1

    threads = [threading.Thread(target=worker) for _ in range(CONNECTIONS)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return summary(latencies, statuses, time.perf_counter() - started)


def open_loop(requests, rate):
    """Request i is due at start + i/rate; latency runs from its due time to its answer."""
    lock = threading.Lock()
    position = [0]
    latencies, statuses = [], {}
    start = time.perf_counter() + 0.2

    def worker():
        connection = http.client.HTTPConnection(API.hostname, API.port, timeout=30)
        while True:
            with lock:
                i = position[0]
                if i >= len(requests):
                    return
                position[0] += 1
            due = start + i / rate
            pause = due - time.perf_counter()
            if pause > 0:
                time.sleep(pause)
            status = send(connection, requests[i])
            took = time.perf_counter() - due
            with lock:
                latencies.append(took)
                statuses[status] = statuses.get(status, 0) + 1

    threads = [threading.Thread(target=worker) for _ in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    result = summary(latencies, statuses, time.perf_counter() - start)
    result["target_per_second"] = rate
    return result


def report(figures_path, records, metrics_path, binary):
    """The results file: a table of the three phases, the records Kafka holds, the metric."""
    figures = json.load(open(figures_path))
    metrics = open(metrics_path).read()
    m, peer, p = figures["max"], figures["jobs_peer"], figures["paced"]
    print(f"# bench-hooks\n\nbinary: `{binary}`\n")
    print("| measurement | rate | p50 | p99 | max | answers |\n|---|---|---|---|---|---|")
    for name, r in [("signed Stripe webhooks, as fast as answered", m),
                    ("peer: `POST /v1/jobs/noop`, same connections", peer),
                    (f"signed Stripe webhooks at {p['target_per_second']}/s (open loop)", p)]:
        print(f"| {name} | {r['per_second']:,}/s | {r['p50_ms']} ms | {r['p99_ms']} ms "
              f"| {r['max_ms']} ms | {r['statuses']} |")
    print(f"\nwebhooks / noop jobs (max rate): {m['per_second'] / peer['per_second']:.2f}")
    print(f"\nrecords in jobs.hook: {records} (answered 200: {m['ok'] + p['ok']}, plus 200 warm-up)\n")
    print("```\n" + metrics + "```")
    print("\n```json\n" + json.dumps(figures, indent=1) + "\n```")


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "report":
        report(*sys.argv[2:6])
        return
    results = {}
    warm = signed_requests(200, "warm")
    closed_loop(warm)
    closed_loop(noop_requests(200))
    results["max"] = closed_loop(signed_requests(N, "max"))
    results["jobs_peer"] = closed_loop(noop_requests(N))
    results["paced"] = open_loop(signed_requests(RATE * DURATION, "paced"), RATE)
    print(json.dumps(results))


if __name__ == "__main__":
    main()
