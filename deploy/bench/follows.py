#!/usr/bin/env python3
"""Load and measurements of `make bench-follows` (driven by follows.sh, which starts the
processes and exports their addresses).

  follows.py seed   the authors' recent posts and the latency author's followers, straight into Redis
  follows.py run    a bulk import of FOLLOWS follow changes produced straight to social.follows (any
                    Kafka client: here Python's confluent-kafka, Avro encoded by hand), timed until
                    the fanout counted them all; meanwhile one post every POST_EVERY ms by an author
                    with LAT_FOLLOWERS followers through POST /v1/posts, each timed until a follower's
                    feed holds it; then checks what the import left in Redis.

Reuses fanout-load.py's Redis client, HTTP client and metric helpers.
"""

import importlib.util
import os
import random
import sys
import threading
import time

from confluent_kafka import Producer

_spec = importlib.util.spec_from_file_location(
    "fanload", os.path.join(os.path.dirname(os.path.abspath(__file__)), "fanout-load.py"))
fl = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(fl)

ENV = os.environ
FOLLOWS = fl.env_int("FOLLOWS", 100000)
AUTHORS = fl.env_int("AUTHORS", 1000)
USERS = fl.env_int("USERS", 20000)
AUTHOR_POSTS = fl.env_int("AUTHOR_POSTS", 10)
LAT_FOLLOWERS = fl.env_int("LAT_FOLLOWERS", 100)
POST_EVERY_MS = fl.env_int("POST_EVERY", 50)
BACKFILL = 20  # social.backfill_posts' default
LAT_AUTHOR = "lat-author"


def author(i):
    return "a%04d" % i


def user(i):
    return "u%05d" % i


def lat_follower(i):
    return "lf%03d" % i


def varint(n):
    """Avro long: zig-zag, then base-128 little-endian."""
    n = (n << 1) ^ (n >> 63)
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def avro_string(s):
    b = s.encode()
    return varint(len(b)) + b


def follow_record(header, follower, followee, at_ms):
    """A FollowChanged (v1: follower_id, followee_id, action FOLLOW = symbol 0, changed_at) in
    Avro single-object encoding: the 10-byte header `sluice schemas` prints, then the body."""
    return header + avro_string(follower) + avro_string(followee) + varint(0) + varint(at_ms)


def import_plan():
    """FOLLOWS (user, author) pairs, no pair twice: each user follows FOLLOWS/USERS authors."""
    rng = random.Random(7)
    per_user = -(-FOLLOWS // USERS)
    pairs = []
    for u in range(USERS):
        for a in rng.sample(range(AUTHORS), per_user):
            pairs.append((user(u), author(a)))
            if len(pairs) == FOLLOWS:
                return pairs
    return pairs


def cmd_seed():
    r = fl.Redis()
    now = int(time.time() * 1000) - 3_600_000
    commands = []
    for a in range(AUTHORS):
        for j in range(AUTHOR_POSTS):
            post_id, at = "p%04d-%02d" % (a, j), now + a * 100 + j
            commands.append(["HSET", fl.SOCIAL + "post:" + post_id, "post_id", post_id,
                             "author_id", author(a), "text", "post %d of %s" % (j, author(a)), "created_at", at])
            commands.append(["ZADD", fl.SOCIAL + "posts:" + author(a), at, post_id])
    for i in range(LAT_FOLLOWERS):
        commands.append(["SADD", fl.SOCIAL + "followers:" + LAT_AUTHOR, lat_follower(i)])
        commands.append(["SADD", fl.SOCIAL + "following:" + lat_follower(i), LAT_AUTHOR])
    r.pipeline(commands)
    print("seed: %d authors x %d posts, %s with %d followers (straight into Redis)"
          % (AUTHORS, AUTHOR_POSTS, LAT_AUTHOR, LAT_FOLLOWERS))


class Poster(threading.Thread):
    """One post every POST_EVERY_MS by LAT_AUTHOR; each timed from the POST being sent until a
    follower's feed holds it (ZSCORE polled every 1 ms), on its own Redis connection."""

    def __init__(self):
        super().__init__(daemon=True)
        self.stop = threading.Event()
        self.samples = []  # (sent at, ms)

    def run(self):
        api, r = fl.Http(ENV["API"]), fl.Redis()
        feed = fl.SOCIAL + "feed:" + lat_follower(LAT_FOLLOWERS - 1)
        n = 0
        while not self.stop.is_set():
            n += 1
            sent = time.monotonic()
            post = api.post(LAT_AUTHOR, "during the import %d" % n)
            member = "%s:%s" % (post["post_id"], LAT_AUTHOR)
            deadline = sent + fl.TIMEOUT
            while r.call("ZSCORE", feed, member) is None:
                if time.monotonic() > deadline:
                    fl.die("post %d never reached %s's feed" % (n, lat_follower(LAT_FOLLOWERS - 1)))
                time.sleep(0.001)
            self.samples.append((sent, (time.monotonic() - sent) * 1000))
            time.sleep(max(0, POST_EVERY_MS / 1000 - (time.monotonic() - sent)))


def applied(metrics_addr):
    return fl.metric(fl.scrape(metrics_addr), "sluice_follow_changes_total") or 0


def cmd_run():
    header = bytes.fromhex(ENV["FOLLOW_HEADER"])
    metrics_addr = ENV["FANOUT_METRICS"]
    pairs = import_plan()
    now = int(time.time() * 1000)
    records = [(followee.encode(), follow_record(header, follower, followee, now + k))
               for k, (follower, followee) in enumerate(pairs)]
    producer = Producer({
        "bootstrap.servers": ENV["BOOTSTRAP"],
        # What sluice's own producers use: the same partition for a key as Java clients.
        "partitioner": "murmur2_random",
        "acks": "all", "enable.idempotence": True, "linger.ms": 5,
        "queue.buffering.max.messages": 1_000_000,
    })
    topic = ENV["FOLLOWS_TOPIC"]
    # One follow first, so the follows consumer group has joined before the clock starts.
    base = applied(metrics_addr)
    producer.produce(topic, value=follow_record(header, "warm-up", author(0), now), key=author(0).encode())
    producer.flush(30)
    fl.wait_for("the warm-up follow", lambda: applied(metrics_addr) > base, interval=0.05)
    base = applied(metrics_addr)
    poster = Poster()
    poster.start()
    fl.wait_for("the first post to reach a feed", lambda: poster.samples, interval=0.05)
    time.sleep(1.0)  # a few posts before the import: the quiet baseline
    t0 = time.monotonic()
    for key, value in records:
        producer.produce(topic, value=value, key=key)
        producer.poll(0)
    left = producer.flush(60)
    if left:
        fl.die("%d follow records not acknowledged within 60 s" % left)
    produced = time.monotonic() - t0
    done = fl.wait_for("the fanout to count %d follow changes" % FOLLOWS,
                       lambda: applied(metrics_addr) - base >= FOLLOWS and time.monotonic(), timeout=300, interval=0.01)
    wall = done - t0
    time.sleep(1.0)
    poster.stop.set()
    poster.join()
    during = [ms for sent, ms in poster.samples if t0 <= sent <= done]
    before = [ms for sent, ms in poster.samples if sent < t0]
    if len(during) < 5:
        fl.die("only %d posts were timed during the import" % len(during))

    # What the import left: the graph both ways and each new follower's backfill.
    r = fl.Redis()
    rng = random.Random(11)
    checked = rng.sample(pairs, 500)
    replies = r.pipeline([c for follower, followee in checked for c in (
        ["SISMEMBER", fl.SOCIAL + "followers:" + followee, follower],
        ["SISMEMBER", fl.SOCIAL + "following:" + follower, followee],
        ["ZSCORE", fl.SOCIAL + "feed:" + follower, "p%s-%02d:%s" % (followee[1:], AUTHOR_POSTS - 1, followee)])])
    wrong = sum(1 for k in range(len(checked)) if replies[3 * k] != 1 or replies[3 * k + 1] != 1 or replies[3 * k + 2] is None)
    if wrong:
        fl.die("%d of 500 sampled follows are missing from the graph or lack the backfill" % wrong)

    s, q = fl.summary(during), fl.summary(before) if before else None
    result = {
        "follows": FOLLOWS, "authors": AUTHORS, "users": USERS, "produced_s": produced, "applied_s": wall,
        "follows_per_s": FOLLOWS / wall, "post_ms": s, "post_ms_before": q, "posts_timed": len(during),
    }
    fl.save("follows", result)
    print("import: %d follow changes (%d users -> %d authors) produced in %.2f s, all applied %.2f s after the first was sent: %.0f follows/s"
          % (FOLLOWS, USERS, AUTHORS, produced, wall, FOLLOWS / wall))
    print("posts by %s (%d followers) during the import: %d timed, POST sent -> in a follower's feed p50 %.1f ms, p99 %.1f ms, max %.1f ms"
          % (LAT_AUTHOR, LAT_FOLLOWERS, len(during), s["p50"], s["p99"], s["max"]))
    if q:
        print("  before the import: p50 %.1f ms, p99 %.1f ms (%d posts)" % (q["p50"], q["p99"], q["n"]))
    print("check: 500 sampled follows are in the graph both ways and their followers' feeds hold the author's newest post")


if __name__ == "__main__":
    phases = {"seed": cmd_seed, "run": cmd_run}
    if len(sys.argv) < 2 or sys.argv[1] not in phases:
        fl.die("usage: follows.py %s" % "|".join(phases))
    phases[sys.argv[1]]()
