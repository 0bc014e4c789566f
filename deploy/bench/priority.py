"""The load and the figures of `make bench-priority` (driven by priority.sh).

Phase 1: the worker drains a backlog of low jobs alone (low jobs/s, saturated).
Phase 2: high jobs arrive at a steady RATE through the api while the backlog drains; each high
job's publish->start is its `succeeded` time minus its handler sleep minus the moment the client
sent it. Low jobs/s in phase 2 against phase 1 shows what low work kept.
Phase 3 (baseline, FIFO): the same steady jobs sent as *low*, i.e. into the one queue behind the
backlog, as a single Kafka topic (or any FIFO queue) would serve them.
Phase "delayed": jobs at RATE for SECONDS with delays spread over 1-20 s walk the delay ladder;
each one's start (its `succeeded` time minus its sleep) against its run_at: how late, and
whether any started early.
"""

import random

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
# Every /v1 call needs a token (priority.sh makes one with `sluice tokens new`).
AUTH = {"Authorization": "Bearer " + os.environ["SLUICE_TOKEN"]}


def post(body):
    request = urllib.request.Request(
        f"{API}/v1/jobs/noop",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", **AUTH},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.load(response)["job_id"]


def status(job_id):
    request = urllib.request.Request(f"{API}/v1/jobs/{job_id}?wait=30s", headers=AUTH)
    with urllib.request.urlopen(request, timeout=40) as response:
        return json.load(response)


def finished_total():
    with urllib.request.urlopen(f"{METRICS}/metrics", timeout=5) as response:
        text = response.read().decode()
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("sluice_jobs_finished_total{")
    )


def queue_wait_buckets(lane):
    """The worker's own view: `sluice_job_queue_wait_seconds{lane}` cumulative buckets."""
    with urllib.request.urlopen(f"{METRICS}/metrics", timeout=5) as response:
        text = response.read().decode()
    out = {}
    for line in text.splitlines():
        if line.startswith("sluice_job_queue_wait_seconds_bucket{") and f'lane="{lane}"' in line:
            le = line.split('le="')[1].split('"')[0]
            out[le] = int(float(line.rsplit(" ", 1)[1]))
    return out


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


def started_at(job_id, deadline):
    """When the job's handler started: its `succeeded` time minus its sleep."""
    s = status(job_id)
    while s["status"] != "succeeded" and time.time() < deadline:
        s = status(job_id)
    if s["status"] != "succeeded":
        sys.exit(f"job {job_id} did not succeed: {s}")
    return s["updated_at"] - SLEEP_MS


def waits(sent):
    deadline = time.time() + 600
    return sorted(started_at(job_id, deadline) - at for job_id, at in sent)


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
                      "low_during_per_s": round(low_during),
                      "worker_high_wait_buckets": queue_wait_buckets("high")}))
elif phase == "delayed":
    sent, lock, threads = [], threading.Lock(), []

    def one():
        body = {"sleep_ms": SLEEP_MS, "delay": f"{random.randint(1000, 20000)}ms"}
        request = urllib.request.Request(
            f"{API}/v1/jobs/noop", data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json", **AUTH})
        with urllib.request.urlopen(request, timeout=10) as response:
            answer = json.load(response)
        with lock:
            sent.append((answer["job_id"], answer["run_at"]))

    start = time.time()
    for i in range(int(RATE * SECONDS)):
        pause = start + i / RATE - time.time()
        if pause > 0:
            time.sleep(pause)
        t = threading.Thread(target=one)
        t.start()
        threads.append(t)
    for t in threads:
        t.join()
    time.sleep(21)
    late = waits(sent)
    print(json.dumps({"delayed_jobs": len(late), "late_p50_ms": pct(late, 50),
                      "late_p99_ms": pct(late, 99), "late_max_ms": late[-1],
                      "early": sum(1 for x in late if x < 0)}))
else:
    time.sleep(3)
    sent = steady("low")
    w = waits(sent)
    print(json.dumps({"fifo_p50_ms": pct(w, 50), "fifo_p99_ms": pct(w, 99), "fifo_jobs": len(w)}))
