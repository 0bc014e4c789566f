"""The load and the figures of `make bench-priority` (driven by priority.sh).

Phase 1: the worker drains a backlog of low jobs alone (low jobs/s, saturated).
Phase 2: high jobs arrive at a steady RATE through the api while the backlog drains; each high
job's publish->start is its `succeeded` time minus its handler sleep minus the moment the client
sent it. Low jobs/s in phase 2 against phase 1 shows what low work kept.
Phase 3 (baseline, FIFO): the same steady jobs sent as *low*, i.e. into the one queue behind the
backlog, as a single Kafka topic (or any FIFO queue) would serve them.
"""

import json
import os
import sys
import threading
import time
import urllib.request

API = os.environ["API"]
METRICS = os.environ["METRICS"]
RATE = float(os.environ.get("RATE", "50"))
SECONDS = float(os.environ.get("SECONDS_HIGH", "8"))
SLEEP_MS = int(os.environ.get("SLEEP_MS", "5"))


def post(body):
    request = urllib.request.Request(
        f"{API}/v1/jobs/noop",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.load(response)["job_id"]


def status(job_id):
    with urllib.request.urlopen(f"{API}/v1/jobs/{job_id}?wait=30s", timeout=40) as response:
        return json.load(response)


def finished_total():
    with urllib.request.urlopen(f"{METRICS}/metrics", timeout=5) as response:
        text = response.read().decode()
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("sluice_jobs_finished_total{")
    )


def steady(priority):
    """Sends jobs at RATE for SECONDS; returns [(job_id, sent_ms)]."""
    sent, lock, threads = [], threading.Lock(), []
    interval, start = 1.0 / RATE, time.time()

    def one(at):
        job_id = post({"sleep_ms": SLEEP_MS, "priority": priority})
        with lock:
            sent.append((job_id, at))

    n = int(RATE * SECONDS)
    for i in range(n):
        due = start + i * interval
        pause = due - time.time()
        if pause > 0:
            time.sleep(pause)
        at = int(time.time() * 1000)
        t = threading.Thread(target=one, args=(at,))
        t.start()
        threads.append(t)
    for t in threads:
        t.join()
    return sent


def waits(sent):
    out = []
    for job_id, at in sent:
        s = status(job_id)
        if s["status"] != "succeeded":
            sys.exit(f"job {job_id} did not succeed: {s}")
        out.append(s["updated_at"] - SLEEP_MS - at)
    return sorted(out)


def pct(values, p):
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


phase = sys.argv[1]
if phase == "lanes":
    t0, f0 = time.time(), finished_total()
    time.sleep(3)
    t1, f1 = time.time(), finished_total()
    low_alone = (f1 - f0) / (t1 - t0)
    sent = steady("high")
    t2, f2 = time.time(), finished_total()
    low_during = (f2 - f1 - len(sent)) / (t2 - t1)
    w = waits(sent)
    print(json.dumps({"high_p50_ms": pct(w, 50), "high_p99_ms": pct(w, 99), "high_max_ms": w[-1],
                      "high_jobs": len(w), "low_alone_per_s": round(low_alone),
                      "low_during_per_s": round(low_during)}))
else:
    time.sleep(3)
    sent = steady("low")
    w = waits(sent)
    print(json.dumps({"fifo_p50_ms": pct(w, 50), "fifo_p99_ms": pct(w, 99), "fifo_jobs": len(w)}))
