#!/usr/bin/env python3
"""Load generator and measurements for deploy/bench/fanout.sh (standard library only).

  fanout-load.py graph       write the follower graph of every phase straight into Redis
  fanout-load.py feeds       give the latency author's followers' feeds older posts, of varied lengths
  fanout-load.py warmup      one post through the whole path, proves the fanout holds its partitions
  fanout-load.py throughput  N posts by the throughput authors, deliveries/s and process CPU
  fanout-load.py latency     one post at a time by the latency author, fan-out latency per post
  fanout-load.py seed        30 posts per author of the feed reader's 200 authors
  fanout-load.py reads       sequential keep-alive feed reads against one api
  fanout-load.py report      the table and the markdown body from the phases' JSON files

Settings come from the environment (fanout.sh exports them): API, API_CACHED (host:port),
FANOUT_METRICS (host:port), FANOUT_PID, API_PID, SLUICE_TOKEN, KEY_PREFIX, REDIS_HOST, REDIS_PORT, TMP, TIMEOUT and
the load shape (see fanout.sh). Every phase writes $TMP/<phase>.json and prints one line per
figure; any failure exits non-zero with a message saying what did not happen.
"""

import http.client
import json
import os
import random
import socket
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

ENV = os.environ
TMP = ENV.get("TMP", "/tmp")
KEY_PREFIX = ENV.get("KEY_PREFIX", "benchfan:")
SOCIAL = KEY_PREFIX + "social:"
TIMEOUT = float(ENV.get("TIMEOUT", "60"))
CLK_TCK = os.sysconf("SC_CLK_TCK")


def die(msg):
    sys.stderr.write("bench-fanout: %s\n" % msg)
    sys.exit(1)


def env_int(name, default):
    return int(ENV.get(name, default))


# --- the load shape, shared by the phases (fanout.sh passes the same values to every call) -----
TP_AUTHORS = env_int("TP_AUTHORS", 10)
TP_FOLLOWERS = env_int("TP_FOLLOWERS", 9999)
TP_POSTS = env_int("TP_POSTS", 50)
LAT_FOLLOWERS = env_int("LAT_FOLLOWERS", 9999)
LAT_POSTS = env_int("LAT_POSTS", 200)
FEED_FILL = env_int("FEED_FILL", 300)
RD_AUTHORS = env_int("RD_AUTHORS", 200)
RD_CELEBS = env_int("RD_CELEBS", 5)
RD_CELEB_FOLLOWERS = env_int("RD_CELEB_FOLLOWERS", 10000)
RD_POSTS = env_int("RD_POSTS", 30)
READS = env_int("READS", 2000)
LIMIT = env_int("LIMIT", 50)
BATCH = env_int("BATCH_SIZE", 1000)


def tp_author(a):
    return "tp-a%02d" % a


def tp_follower(a, i):  # distinct follower ids: nobody follows two throughput authors
    return "tp-a%02d-f%05d" % (a, i)


LAT_AUTHOR = "lat-a"
# An author with one follower: the same path with (almost) no fan-out, i.e. HTTP + Kafka + one
# record's processing, to tell the transport apart from the fan-out in the latency.
SOLO_AUTHOR, SOLO_FOLLOWER = "solo-a", "solo-f"


def lat_follower(i):
    return "lat-f%05d" % i


READER = "rd-reader"


def rd_author(i):  # the first RD_CELEBS are the celebrities
    return ("rd-c%02d" % i) if i < RD_CELEBS else ("rd-a%03d" % i)


def rd_celeb_follower(c, i):
    return "rd-c%02d-f%05d" % (c, i)


# --- a minimal pipelining RESP client -----------------------------------------------------------
class Redis:
    def __init__(self, host=None, port=None):
        self.addr = (host or ENV.get("REDIS_HOST", "127.0.0.1"), int(port or ENV.get("REDIS_PORT", "6379")))
        self.sock = socket.create_connection(self.addr)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.reader = self.sock.makefile("rb")

    def nodes(self):
        """The servers node-wide commands (INFO, SLOWLOG, SCAN, BGREWRITEAOF) go to."""
        return [self]

    def by_node(self, commands):
        """[(node, commands)]: where each command goes (one Redis: all of them here)."""
        return [(self, commands)]

    @staticmethod
    def encode(args):
        out = [b"*%d\r\n" % len(args)]
        for a in args:
            a = a if isinstance(a, bytes) else str(a).encode()
            out.append(b"$%d\r\n%s\r\n" % (len(a), a))
        return b"".join(out)

    def reply(self):
        line = self.reader.readline()
        if not line:
            raise ConnectionError("redis closed the connection")
        kind, rest = line[:1], line[1:-2]
        if kind in (b"+", b":"):
            return int(rest) if kind == b":" else rest.decode()
        if kind == b"$":
            n = int(rest)
            return None if n < 0 else self.reader.read(n + 2)[:-2].decode()
        if kind == b"*":
            n = int(rest)
            return None if n < 0 else [self.reply() for _ in range(n)]
        if kind == b"-":
            raise RuntimeError("redis: " + rest.decode())
        raise RuntimeError("redis: unexpected reply %r" % line)

    def pipeline(self, commands, chunk=5000):
        replies = []
        for start in range(0, len(commands), chunk):
            part = commands[start:start + chunk]
            self.sock.sendall(b"".join(self.encode(c) for c in part))
            replies.extend(self.reply() for _ in part)
        return replies

    def call(self, *args):
        return self.pipeline([args])[0]

    def info(self, section):
        text = self.call("INFO", section)
        out = {}
        for line in text.splitlines():
            if ":" in line and not line.startswith("#"):
                k, v = line.split(":", 1)
                out[k] = v
        return out


# CRC-16/XMODEM, the hash of Redis Cluster's key slots.
CRC16_TABLE = []
for _byte in range(256):
    _crc = _byte << 8
    for _ in range(8):
        _crc = ((_crc << 1) ^ 0x1021) if _crc & 0x8000 else _crc << 1
    CRC16_TABLE.append(_crc & 0xFFFF)


def key_slot(key):
    """The cluster slot of a key: CRC16 of the key, or of its hash tag ({...}), mod 16384."""
    k = key if isinstance(key, bytes) else str(key).encode()
    start = k.find(b"{")
    if start >= 0:
        end = k.find(b"}", start + 1)
        if end > start + 1:
            k = k[start + 1:end]
    crc = 0
    for b in k:
        crc = ((crc << 8) & 0xFFFF) ^ CRC16_TABLE[((crc >> 8) ^ b) & 0xFF]
    return crc & 16383


class Cluster:
    """A Redis Cluster used as the phases use one Redis: a keyed command goes to the master that
    serves its key's slot (CLUSTER SLOTS, read once: the bench's cluster does not reshard), a
    pipeline is split by master, each part sent before any reply is read so the masters work at
    once, and the replies come back in command order. Node-wide commands go to every master
    through nodes()."""

    encode = staticmethod(Redis.encode)

    def __init__(self, seeds):
        host, port = seeds[0].rsplit(":", 1)
        seed = Redis(host, port)
        masters, self.owner = {}, [None] * 16384
        for start, end, master, *_ in seed.call("CLUSTER", "SLOTS"):
            addr = (master[0], int(master[1]))
            if addr not in masters:
                masters[addr] = seed if addr == seed.addr else Redis(*addr)
            self.owner[start:end + 1] = [masters[addr]] * (end + 1 - start)
        if any(node is None for node in self.owner):
            die("the Redis Cluster at %s does not serve every slot (is `deploy/redis-cluster.sh up` done?)" % seeds[0])
        self.masters = list(masters.values())
        self.node_of_key = {}  # the floor writes the same 9 999 feeds every post

    def nodes(self):
        return self.masters

    def node_for(self, key):
        node = self.node_of_key.get(key)
        if node is None:
            node = self.node_of_key[key] = self.owner[key_slot(key)]
        return node

    def positions_by_node(self, commands):
        """[(node, positions)]: where in `commands` each master's commands are (by the key, the
        argument after the command's name)."""
        groups = {}
        for i, c in enumerate(commands):
            groups.setdefault(id(node := self.node_for(c[1])), (node, []))[1].append(i)
        return list(groups.values())

    def by_node(self, commands):
        """[(node, commands)]: each master with its commands, in their order."""
        return [(node, [commands[i] for i in positions]) for node, positions in self.positions_by_node(commands)]

    def pipeline(self, commands, chunk=5000):
        groups = self.positions_by_node(commands)
        replies = [None] * len(commands)
        longest = max((len(positions) for _, positions in groups), default=0)
        for start in range(0, longest, chunk):
            sent = [(node, positions[start:start + chunk]) for node, positions in groups
                    if positions[start:start + chunk]]
            for node, part in sent:
                node.sock.sendall(b"".join(self.encode(commands[i]) for i in part))
            for node, part in sent:
                for i in part:
                    replies[i] = node.reply()
        return replies

    def call(self, *args):
        return self.pipeline([args])[0]


def connect():
    """The bench's Redis: a Redis Cluster when REDIS_CLUSTER names its seeds, else REDIS_HOST:PORT."""
    seeds = [s for s in ENV.get("REDIS_CLUSTER", "").split(",") if s]
    return Cluster(seeds) if seeds else Redis()


def redis_cpu(r):
    total = 0.0
    for node in r.nodes():
        i = node.info("cpu")
        total += float(i["used_cpu_user"]) + float(i["used_cpu_sys"])
    return total


def commandstats(r):
    """{command: (calls, usec)} from INFO commandstats, summed over the nodes."""
    out = {}
    for node in r.nodes():
        for k, v in node.info("commandstats").items():
            if not k.startswith("cmdstat_"):
                continue
            f = dict(p.split("=", 1) for p in v.split(","))
            calls, usec = out.get(k[len("cmdstat_"):], (0, 0))
            out[k[len("cmdstat_"):]] = (calls + int(f["calls"]), usec + int(f["usec"]))
    return out


def commandstats_delta(before, after):
    d = {}
    for cmd, (calls, usec) in after.items():
        c0, u0 = before.get(cmd, (0, 0))
        if calls - c0 > 0:
            d[cmd] = {"calls": calls - c0, "usec": usec - u0, "usec_per_call": round((usec - u0) / (calls - c0), 3)}
    return d


def proc_cpu(pid):
    """user+sys CPU seconds of a process (all its threads)."""
    with open("/proc/%s/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def machine_jiffies():
    """(busy, total) jiffies of all CPUs since boot, from /proc/stat."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    idle = v[3] + v[4]  # idle + iowait
    return sum(v) - idle, sum(v)


def all_procs():
    """{pid: (name, user+sys CPU seconds)} of every process (threads included)."""
    out = {}
    jiffies = machine_jiffies()[0]
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % d) as f:
                raw = f.read()
            name = raw[raw.index("(") + 1:raw.rindex(")")]
            fields = raw.rsplit(")", 1)[1].split()
            out[d] = (name, (int(fields[11]) + int(fields[12])) / CLK_TCK)
        except (OSError, ValueError):
            pass
    _jiffies_at[id(out)] = jiffies
    return out


def top_procs(before, after, wall, n=5):
    """The processes that used the most CPU between two all_procs() snapshots, by name."""
    use = {}
    for pid, (name, cpu) in after.items():
        d = cpu - before.get(pid, (name, 0.0))[1]
        if d > 0:
            use[name] = use.get(name, 0.0) + d
    top = sorted(use.items(), key=lambda kv: -kv[1])[:n]
    out = [(name, round(cpu / wall, 2)) for name, cpu in top if cpu / wall >= 0.02]
    # CPU of processes that started and ended between the snapshots is invisible per process.
    busy = (machine_jiffies()[0] - _jiffies_at.get(id(before), 0)) / CLK_TCK / wall if id(before) in _jiffies_at else None
    if busy is not None:
        gone = busy - sum(use.values()) / wall
        if gone >= 0.05:
            out.append(("short-lived processes", round(gone, 2)))
    return out


_jiffies_at = {}


class Phase:
    """What else happened on the machine and in Redis during a phase: CPU busy over all cores,
    AOF rewrites / forks, and SLOWLOG entries of this run's keys."""

    def __init__(self, r):
        self.r = r
        quiesce(r)
        self.j0 = machine_jiffies()
        self.procs0 = all_procs()
        self.rewrites0, self.rewriting0, self.forks0 = persistence_totals(r)
        self.slow0 = []
        for node in r.nodes():
            top = node.call("SLOWLOG", "GET", "1")
            self.slow0.append(top[0][0] if top else -1)
        self.t0 = time.monotonic()

    def end(self):
        wall = time.monotonic() - self.t0
        j1, (rewrites, rewriting, forks) = machine_jiffies(), persistence_totals(self.r)
        busy = (j1[0] - self.j0[0]) / CLK_TCK / wall
        top = top_procs(self.procs0, all_procs(), wall)
        slow = [e for node, slow0 in zip(self.r.nodes(), self.slow0) for e in node.call("SLOWLOG", "GET", "128")
                if e[0] > slow0 and any(str(a).startswith(KEY_PREFIX) for a in e[3][1:])]
        return {
            "machine_busy_cores": round(busy, 2),
            "top": top,
            "aof_rewrites": rewrites - self.rewrites0 + max(0, rewriting - self.rewriting0),
            "forks": forks - self.forks0,
            "slowlog": len(slow),
            "slowlog_max_us": max((e[2] for e in slow), default=0),
            "slowlog_cmds": sorted(set(str(e[3][0]).upper() for e in slow)),
        }


def persistence_totals(r):
    """AOF rewrites done, rewrites running and forks, summed over the nodes."""
    rewrites = rewriting = forks = 0
    for node in r.nodes():
        p = node.info("persistence")
        rewrites += int(p["aof_rewrites"])
        rewriting += p.get("aof_rewrite_in_progress") == "1"
        forks += int(node.info("stats").get("total_forks", 0))
    return rewrites, rewriting, forks


def quiesce(r, timeout=60):
    """quiesce_node on every node (one Redis, or each master of a cluster)."""
    for node in r.nodes():
        quiesce_node(node, timeout)


def quiesce_node(r, timeout):
    """Waits until Redis has no AOF rewrite or RDB save running and no UNLINKed keys left to free
    in the background: a forked child writing the whole dataset (and copy-on-write in the parent)
    or the lazy-free thread would compete with the next phase. An AOF that grew since its last
    rewrite is rewritten now: a phase writes ~50 MB of AOF, and Redis's own rewrite (a fork, at
    100 % growth) would otherwise start in the middle of the next phase."""
    p = r.info("persistence")
    grown = int(p.get("aof_current_size", 0)) - int(p.get("aof_base_size", 0))
    if p.get("aof_enabled") == "1" and p.get("aof_rewrite_in_progress") == "0" and grown > 2 << 20:
        r.call("BGREWRITEAOF")
    deadline = time.monotonic() + timeout
    while True:
        p = r.info("persistence")
        if p.get("aof_rewrite_in_progress") == "0" and p.get("rdb_bgsave_in_progress") == "0" and \
                p.get("aof_rewrite_scheduled") == "0" and r.info("memory").get("lazyfree_pending_objects", "0") == "0":
            return
        if time.monotonic() > deadline:
            die("Redis still rewriting its AOF / saving after %d s" % timeout)
        time.sleep(0.1)


def phase_note(env):
    out = "machine CPU busy %.2f of %d cores (%s)" % (env["machine_busy_cores"], os.cpu_count(),
                                                     ", ".join("%s %.2f" % tuple(t) for t in env.get("top", [])))
    if env.get("forks") or env["aof_rewrites"]:
        out += ", Redis forked %d time(s) (AOF rewrite: the child and copy-on-write compete)" % max(
            env.get("forks", 0), env["aof_rewrites"])
    if env["slowlog"]:
        out += ", %d SLOWLOG entries >= 10 ms on this run's keys (max %.1f ms, %s)" % (
            env["slowlog"], env["slowlog_max_us"] / 1000, "/".join(env["slowlog_cmds"]))
    return out


# --- HTTP -------------------------------------------------------------------------------------------
class Http:
    """One keep-alive connection."""

    def __init__(self, addr):
        host, port = addr.rsplit(":", 1)
        self.conn = http.client.HTTPConnection(host, int(port), timeout=30)

    def request(self, method, path, body=None):
        headers = {"Connection": "keep-alive"}
        # Every /v1 call needs a token (fanout.sh makes one; a build before tokens has none).
        if ENV.get("SLUICE_TOKEN"):
            headers["Authorization"] = "Bearer " + ENV["SLUICE_TOKEN"]
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        for attempt in (1, 2):
            try:
                self.conn.request(method, path, data, headers)
                resp = self.conn.getresponse()
                return resp.status, resp.read()
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                self.conn.close()
                if attempt == 2:
                    raise

    def post(self, author, text):
        status, body = self.request("POST", "/v1/posts", {"author_id": author, "text": text})
        if status != 202:
            die("POST /v1/posts for %s answered %d: %s" % (author, status, body[:300]))
        return json.loads(body)


_scrapers = {}


def scrape(addr):
    """GET /metrics over one keep-alive connection per address (polling must cost little CPU:
    the load generator shares the machine with what it measures)."""
    if addr not in _scrapers:
        _scrapers[addr] = Http(addr)
    status, body = _scrapers[addr].request("GET", "/metrics")
    if status != 200:
        die("GET http://%s/metrics answered %d" % (addr, status))
    return body.decode()


def metric(text, name, labels=""):
    """Sum of the samples of `name` whose label set contains `labels` (e.g. 'mode="push"')."""
    total, found = 0.0, False
    for line in text.splitlines():
        if not line.startswith(name) or line.startswith("#"):
            continue
        head, _, value = line.rpartition(" ")
        if head == name or (head.startswith(name + "{") and labels in head):
            total += float(value)
            found = True
    return total if found else None


def histogram(text, name):
    """[(le, cumulative count)] sorted by le, +Inf last."""
    rows = []
    for line in text.splitlines():
        if line.startswith(name + "_bucket{"):
            head, _, value = line.rpartition(" ")
            le = head.split('le="', 1)[1].split('"', 1)[0]
            rows.append((float("inf") if le == "+Inf" else float(le), float(value)))
    return sorted(rows)


def histogram_delta(before, after):
    b = dict(before)
    return [(le, c - b.get(le, 0.0)) for le, c in after]


def hist_quantile(q, rows):
    """Like Prometheus' histogram_quantile: (value, bucket lower, bucket upper) in seconds."""
    total = rows[-1][1] if rows else 0
    if total == 0:
        return None
    rank = q * total
    prev_le, prev_c = 0.0, 0.0
    for le, c in rows:
        if c >= rank:
            if le == float("inf"):
                return (prev_le, prev_le, le)
            v = le if c == prev_c else prev_le + (le - prev_le) * (rank - prev_c) / (c - prev_c)
            return (v, prev_le, le)
        prev_le, prev_c = le, c
    return None


def nearest_rank(sorted_values, q):
    n = len(sorted_values)
    return sorted_values[max(0, min(n - 1, -(-int(q * n * 1000) // 1000) - 1))]


def summary(values):
    v = sorted(values)
    return {
        "n": len(v),
        "p50": nearest_rank(v, 0.5),
        "p90": nearest_rank(v, 0.9),
        "p99": nearest_rank(v, 0.99),
        "max": v[-1],
        "min": v[0],
        "mean": sum(v) / len(v),
    }


def save(phase, data):
    with open(os.path.join(TMP, phase + ".json"), "w") as f:
        json.dump(data, f, indent=1)


def load(phase):
    path = os.path.join(TMP, phase + ".json")
    return json.load(open(path)) if os.path.exists(path) else None


def wait_for(what, check, timeout=None, interval=0.005):
    """Polls check() until it returns a true value; dies after timeout seconds saying what."""
    deadline = time.monotonic() + (timeout or TIMEOUT)
    while True:
        got = check()
        if got:
            return got
        if time.monotonic() > deadline:
            die("TIMEOUT after %.0f s waiting for %s" % (timeout or TIMEOUT, what))
        fanout_alive()
        time.sleep(interval)


def fanout_alive():
    pid = ENV.get("FANOUT_PID")
    if pid and not os.path.exists("/proc/%s" % pid):
        die("the fanout process (pid %s) exited; see its log" % pid)


def posts_done():
    text = scrape(ENV["FANOUT_METRICS"])
    return (metric(text, "sluice_fanout_posts_total", 'mode="push"') or 0) + (
        metric(text, "sluice_fanout_posts_total", 'mode="pull"') or 0
    )


# --- phases -------------------------------------------------------------------------------------
def cmd_idle():
    """How busy the machine is before anything of the bench runs (1 s samples); with IDLE_WAIT=n,
    waits up to n seconds for a second in which less than 0.3 cores are busy."""
    quiesce(connect())  # e.g. a previous run's UNLINKed keys still being freed
    wait_until = time.monotonic() + float(ENV.get("IDLE_WAIT", "0"))
    while True:
        j0, p0 = machine_jiffies(), all_procs()
        time.sleep(1)
        j1 = machine_jiffies()
        busy = (j1[0] - j0[0]) / CLK_TCK
        top = top_procs(p0, all_procs(), 1.0)
        if busy <= 0.3 or time.monotonic() >= wait_until:
            break
    save("idle", {"busy_cores": round(busy, 2), "loadavg": open("/proc/loadavg").read().split()[:3], "top": top})
    print("machine before the run: %.2f of %d cores busy (%s), load average %s"
          % (busy, os.cpu_count(), ", ".join("%s %.2f" % t for t in top), " ".join(open("/proc/loadavg").read().split()[:3])))
    if busy > 0.3:
        print("  WARNING: the machine is not idle; other processes compete with the bench for the CPUs")


def cmd_graph():
    """The follower graph, written straight into Redis (SADD both ways) before the fanout starts:
    through POST /v1/follows it would take minutes. Celebrities go into social:celebrities as the
    fanout itself would have put them there when their 10 000th follow arrived."""
    r = connect()
    cmds = []

    def follow_all(author, followers):
        for start in range(0, len(followers), 1000):
            cmds.append(["SADD", SOCIAL + "followers:" + author] + followers[start:start + 1000])
        for f in followers:
            cmds.append(["SADD", SOCIAL + "following:" + f, author])

    for a in range(TP_AUTHORS):
        follow_all(tp_author(a), [tp_follower(a, i) for i in range(1, TP_FOLLOWERS + 1)])
    follow_all(LAT_AUTHOR, [lat_follower(i) for i in range(1, LAT_FOLLOWERS + 1)])
    follow_all(SOLO_AUTHOR, [SOLO_FOLLOWER])
    for i in range(RD_AUTHORS):
        author = rd_author(i)
        followers = [READER]
        if i < RD_CELEBS:
            followers += [rd_celeb_follower(i, j) for j in range(1, RD_CELEB_FOLLOWERS)]
        follow_all(author, followers)
    cmds.append(["SADD", SOCIAL + "celebrities"] + [rd_author(i) for i in range(RD_CELEBS)])
    t0 = time.monotonic()
    r.pipeline(cmds)
    checks = [["SCARD", SOCIAL + "followers:" + tp_author(a)] for a in range(TP_AUTHORS)]
    checks += [["SCARD", SOCIAL + "followers:" + LAT_AUTHOR], ["SCARD", SOCIAL + "following:" + READER],
               ["SCARD", SOCIAL + "celebrities"]]
    got = r.pipeline(checks)
    want = [TP_FOLLOWERS] * TP_AUTHORS + [LAT_FOLLOWERS, RD_AUTHORS, RD_CELEBS]
    if got != want:
        die("graph check failed: set sizes %s, expected %s" % (got, want))
    n = TP_AUTHORS * TP_FOLLOWERS + LAT_FOLLOWERS + RD_AUTHORS + RD_CELEBS * (RD_CELEB_FOLLOWERS - 1)
    print("graph: %d follow edges (both directions) in %d commands, %.1f s" % (n, len(cmds), time.monotonic() - t0))
    save("graph", {"edges": n, "commands": len(cmds)})


def cmd_feeds():
    """Fills the latency author's followers' feeds with older posts by other authors, each feed
    to its own length drawn uniformly from 0..FEED_FILL (seeded, so every run gets the same
    feeds). Real followers' feeds are not empty and not all the same length. 9 999 identical
    empty feeds grow in step: each post lengthens every one of them by the same ~54 bytes, so
    they all outgrow their allocator size class on the same post (the 19th, 29th, 38th and
    48th here), and that post pays for 9 999 reallocations and copies at once, which no
    population of real feeds does. Past 128 entries a feed is a skiplist, as every feed at the
    default feed_cap of 1000 is in production; below it, a listpack."""
    if FEED_FILL == 0:
        print("feeds: the latency author's followers start with empty feeds (FEED_FILL=0)")
        save("feeds", {"fill": 0, "entries": 0})
        return
    r = connect()
    rng = random.Random(14)
    now_ms = int(time.time() * 1000)
    cmds, entries = [], 0
    for i in range(1, LAT_FOLLOWERS + 1):
        n = rng.randint(0, FEED_FILL)
        if not n:
            continue
        args = ["ZADD", SOCIAL + "feed:" + lat_follower(i)]
        for k in range(n):
            post_id = "%08x-%04x-4%03x-8%03x-%012x" % (rng.getrandbits(32), rng.getrandbits(16), rng.getrandbits(12),
                                                        rng.getrandbits(12), rng.getrandbits(48))
            # One post a minute back from an hour ago: older than anything the run posts.
            args += [now_ms - 3_600_000 - k * 60_000, "%s:old-a%03d" % (post_id, rng.randrange(1000))]
        cmds.append(args)
        entries += n
    t0 = time.monotonic()
    r.pipeline(cmds, chunk=500)
    print("feeds: %d older posts in %d of %d latency followers' feeds (0..%d each), %.1f s"
          % (entries, len(cmds), LAT_FOLLOWERS, FEED_FILL, time.monotonic() - t0))
    save("feeds", {"fill": FEED_FILL, "entries": entries})


def cmd_warmup():
    """One post by a separate author with one follower, so no feed the phases measure is touched.
    Succeeds once the fanout has applied it: it holds its partitions and Redis has its script."""
    r = connect()
    r.call("SADD", SOCIAL + "followers:warm-a", "warm-f")
    r.call("SADD", SOCIAL + "following:warm-f", "warm-a")
    api = Http(ENV["API"])
    t0 = time.monotonic()
    post = api.post("warm-a", "warm-up")
    member = "%s:warm-a" % post["post_id"]
    wait_for("the warm-up post to reach its follower's feed (is the fanout consuming?)",
             lambda: r.call("ZSCORE", SOCIAL + "feed:warm-f", member) is not None, interval=0.05)
    wait_for("sluice_fanout_posts_total to count the warm-up post", lambda: posts_done() >= 1, interval=0.05)
    print("warm-up: post applied %.2f s after the POST" % (time.monotonic() - t0))


def cmd_throughput():
    r = connect()
    fan_metrics = ENV["FANOUT_METRICS"]
    pid = ENV["FANOUT_PID"]
    text = scrape(fan_metrics)
    base = metric(text, "sluice_fanout_deliveries_total") or 0
    base_push = metric(text, "sluice_fanout_posts_total", 'mode="push"') or 0
    expected = TP_POSTS * TP_FOLLOWERS
    authors = [tp_author(i % TP_AUTHORS) for i in range(TP_POSTS)]
    # Threads with one keep-alive connection each, so publishing is never what we wait for.
    local = threading.local()

    def publish(i):
        if not hasattr(local, "api"):
            local.api = Http(ENV["API"])
        return local.api.post(authors[i], "throughput post %d" % i)

    phase = Phase(r)
    cpu0, api_cpu0, rcpu0, cs0 = proc_cpu(pid), proc_cpu(ENV["API_PID"]), redis_cpu(r), commandstats(r)
    t0 = time.monotonic()
    pool = ThreadPoolExecutor(8)
    futures = [pool.submit(publish, i) for i in range(TP_POSTS)]
    published_at = None
    progress = [0]

    def done():
        nonlocal published_at
        if published_at is None and all(f.done() for f in futures):
            for f in futures:
                f.result()  # re-raises a failed POST
            published_at = time.monotonic()
        d = (metric(scrape(fan_metrics), "sluice_fanout_deliveries_total") or 0) - base
        progress[0] = d
        return d >= expected

    deadline = time.monotonic() + TIMEOUT
    while not done():
        if time.monotonic() > deadline:
            die("TIMEOUT after %.0f s: %d of %d deliveries done" % (TIMEOUT, progress[0], expected))
        fanout_alive()
        time.sleep(0.01)
    t1 = time.monotonic()
    cpu1, api_cpu1, rcpu1, cs1 = proc_cpu(pid), proc_cpu(ENV["API_PID"]), redis_cpu(r), commandstats(r)
    env = phase.end()
    pool.shutdown()
    pushed = (metric(scrape(fan_metrics), "sluice_fanout_posts_total", 'mode="push"') or 0) - base_push
    if pushed != TP_POSTS or progress[0] != expected:
        die("after the throughput phase: %d posts pushed (expected %d), %d deliveries (expected %d)"
            % (pushed, TP_POSTS, progress[0], expected))
    # Spot check: one follower of every author holds exactly that author's posts.
    per_author = TP_POSTS // TP_AUTHORS
    sample = [["ZCARD", SOCIAL + "feed:" + tp_follower(a, random.randint(1, TP_FOLLOWERS))] for a in range(TP_AUTHORS)]
    cards = r.pipeline(sample)
    want = [TP_POSTS // TP_AUTHORS + (1 if a < TP_POSTS % TP_AUTHORS else 0) for a in range(TP_AUTHORS)]
    if cards != want:
        die("spot check: sampled followers' feeds hold %s entries, expected %s" % (cards, want))
    wall = t1 - t0
    res = {
        "posts": TP_POSTS, "authors": TP_AUTHORS, "followers": TP_FOLLOWERS, "deliveries": expected,
        "wall_s": wall, "publish_s": published_at - t0, "deliveries_per_s": expected / wall,
        "fanout_cpu_s": cpu1 - cpu0, "api_cpu_s": api_cpu1 - api_cpu0, "redis_cpu_s": rcpu1 - rcpu0,
        "commandstats": commandstats_delta(cs0, cs1), "per_author": per_author, "env": env,
    }
    save("throughput", res)
    cs = res["commandstats"]
    print("throughput: %d deliveries (%d posts x %d followers) in %.2f s = %.0f deliveries/s; posts published in %.2f s"
          % (expected, TP_POSTS, TP_FOLLOWERS, wall, res["deliveries_per_s"], res["publish_s"]))
    print("  CPU during the phase: fanout %.2f s (%.0f%% of one core), redis %.2f s (%.0f%%), api %.2f s"
          % (res["fanout_cpu_s"], 100 * res["fanout_cpu_s"] / wall, res["redis_cpu_s"], 100 * res["redis_cpu_s"] / wall, res["api_cpu_s"]))
    print("  " + phase_note(env))
    print("  redis commandstats: " + ", ".join("%s %d calls %.2f us/call" % (k, v["calls"], v["usec_per_call"])
                                               for k, v in sorted(cs.items(), key=lambda kv: -kv[1]["usec"])[:6]))


def cmd_zadd():
    """Runs redis-benchmark (argv[3:]) and parses its --csv output; argv[2] names the result."""
    import subprocess
    r = connect()
    phase = Phase(r)
    out = subprocess.run(sys.argv[3:], capture_output=True, text=True)
    env = phase.end()
    if out.returncode != 0:
        die("redis-benchmark failed: %s" % (out.stdout + out.stderr)[-500:])
    csv = os.path.join(TMP, sys.argv[2] + ".csv")
    open(csv, "w").write(out.stdout)
    sys.argv[2:] = [csv, sys.argv[2]]
    zadd_result(env)


def zadd_result(env):
    rows = [l for l in open(sys.argv[2]).read().splitlines() if l.startswith('"') and not l.startswith('"test"')]
    if len(rows) != 1:
        die("redis-benchmark printed no result: %s" % open(sys.argv[2]).read()[:300])
    cells = [c.strip('"') for c in rows[0].split('","')]
    res = {"command": cells[0], "ops_per_s": float(cells[1]), "avg_ms": float(cells[2]), "p50_ms": float(cells[4]),
           "p99_ms": float(cells[6]), "env": env}
    save(sys.argv[3] if len(sys.argv) > 3 else "zadd", res)
    print("redis-benchmark: %s: %.0f ops/s (latency per request p50 %.3f ms, p99 %.3f ms)"
          % (res["command"], res["ops_per_s"], res["p50_ms"], res["p99_ms"]))
    print("  " + phase_note(env))


def last_followers(r, author):
    """The followers whose feeds the fanout writes last, from a full SSCAN with the fanout's COUNT
    (batch_size; the set does not change, so the iteration order is the fanout's): its last
    member on one Redis. On a cluster the fanout groups the feeds by master, keeping that order,
    and sends each master its calls in turn, and a master runs its calls in the order sent: the
    last feed written on each master is that master's last in the order, and the post is
    delivered once all of those hold it."""
    cursor, order = "0", []
    while True:
        cursor, members = r.call("SSCAN", SOCIAL + "followers:" + author, cursor, "COUNT", BATCH)
        order += members
        if cursor == "0":
            break
    if not isinstance(r, Cluster):
        return order[-1:], len(order)
    last_on = {}
    for follower in order:
        last_on[id(r.node_for(SOCIAL + "feed:" + follower))] = follower
    return sorted(last_on.values()), len(order)


def floor_round(r, feeds, score, member):
    """The same writes as one post's fan-out, made the fastest way a client can: one pipeline of
    plain ZADDs of `member` into every feed, encoded beforehand, from a client that already
    knows the followers. ms from the first byte sent to the last reply; the member is removed
    again afterwards (not timed), so the feeds stay as the fanout sees them."""
    # On a cluster: one pipeline per master, all sent before any reply is read.
    parts = [(node, b"".join(r.encode(c) for c in commands), len(commands))
             for node, commands in r.by_node([["ZADD", f, score, member] for f in feeds])]
    t0 = time.monotonic()
    for node, adds, _ in parts:
        node.sock.sendall(adds)
    for node, _, n in parts:
        for _ in range(n):
            node.reply()
    took = (time.monotonic() - t0) * 1000
    r.pipeline([["ZREM", f, member] for f in feeds])
    return took


def one_at_a_time(r, api, author, followers, last, all_feeds, phase_name, posts=LAT_POSTS):
    """POSTs `posts` posts by `author` one at a time; for each, polls the feeds of the followers in
    `last` (every 1 ms) until they hold the post, then waits until the fanout has counted it; then, with more than
    one feed, times the floor (floor_round) for the same post. Lists of ms."""
    from_send, from_created, from_send_metrics, missing_at_seen, floor = [], [], [], [], []
    base_posts = posts_done()
    watched = [SOCIAL + "feed:" + f for f in last]
    for i in range(posts):
        t_send = time.monotonic()
        post = api.post(author, "%s post %d" % (phase_name, i))
        member = "%s:%s" % (post["post_id"], author)
        deadline = t_send + TIMEOUT
        while None in r.pipeline([["ZSCORE", feed, member] for feed in watched]):
            if time.monotonic() > deadline:
                die("TIMEOUT after %.0f s: %s post %d of %d did not reach the feeds of %s"
                    % (TIMEOUT, phase_name, i + 1, posts, ", ".join(last)))
            time.sleep(0.001)
        t_seen, wall_seen = time.monotonic(), time.time()
        # Cross-check that `last` really was last: every other feed already holds the post.
        if len(all_feeds) > 1:
            missing = sum(1 for s in r.pipeline([["ZSCORE", k, member] for k in all_feeds]) if s is None)
            missing_at_seen.append(missing)
        # The fanout counts the post once its last batch is written; wait for it before the next.
        wait_for("%s post %d to be counted by sluice_fanout_posts_total" % (phase_name, i + 1),
                 lambda: posts_done() >= base_posts + i + 1, interval=0.001)
        t_counted = time.monotonic()
        from_send.append((t_seen - t_send) * 1000)
        from_created.append(wall_seen * 1000 - post["created_at"])
        from_send_metrics.append((t_counted - t_send) * 1000)
        if len(all_feeds) > 1:
            time.sleep(0.02)
            floor.append(floor_round(r, all_feeds, post["created_at"], "floor-%d:%s" % (i, author)))
        time.sleep(0.02)
    return from_send, from_created, from_send_metrics, max(missing_at_seen, default=0), floor


def delivered_when(lat):
    """What the latency phase waited for after each POST."""
    if lat.get("cluster_masters"):
        return "the feed written last on every master has it"
    return "last follower's feed has it"


def cmd_latency():
    r = connect()
    fan_metrics = ENV["FANOUT_METRICS"]
    api = Http(ENV["API"])
    last, seen = last_followers(r, LAT_AUTHOR)
    if seen != LAT_FOLLOWERS:
        die("SSCAN of the latency author's followers returned %d members, expected %d" % (seen, LAT_FOLLOWERS))
    all_feeds = [SOCIAL + "feed:" + lat_follower(i) for i in range(1, LAT_FOLLOWERS + 1)]
    # The transport alone first: the same path for an author with one follower.
    solo_send, solo_created, _, _, _ = one_at_a_time(r, api, SOLO_AUTHOR, 1, [SOLO_FOLLOWER], [], "solo")
    phase = Phase(r)
    # Phase() had Redis fork for an AOF rewrite: until each page of the feeds is written once
    # more, a write to it takes a copy-on-write fault. One floor round takes those (~50 ms over
    # the feeds) so that they do not land on the first post: an artifact of the bench's own
    # rewrite, where a real Redis forks on its own schedule.
    fork_touch_ms = floor_round(r, all_feeds, int(time.time() * 1000), "touch:" + LAT_AUTHOR)
    text = scrape(fan_metrics)
    h0 = histogram(text, "sluice_fanout_duration_seconds")
    base_deliv = metric(text, "sluice_fanout_deliveries_total") or 0
    cs0 = commandstats(r)
    from_send, from_created, from_send_metrics, missing, floor = one_at_a_time(
        r, api, LAT_AUTHOR, LAT_FOLLOWERS, last, all_feeds, "latency")
    cs = commandstats_delta(cs0, commandstats(r))
    env = phase.end()
    text = scrape(fan_metrics)
    h = histogram_delta(h0, histogram(text, "sluice_fanout_duration_seconds"))
    deliv = (metric(text, "sluice_fanout_deliveries_total") or 0) - base_deliv
    if deliv != LAT_POSTS * LAT_FOLLOWERS:
        die("latency phase: %d deliveries, expected %d" % (deliv, LAT_POSTS * LAT_FOLLOWERS))
    q = {str(k): hist_quantile(k, h) for k in (0.5, 0.99)}
    res = {
        "posts": LAT_POSTS, "followers": LAT_FOLLOWERS, "last_follower": last,
        "from_send_ms": summary(from_send), "from_created_ms": summary(from_created),
        "from_send_to_counted_ms": summary(from_send_metrics), "histogram": h, "hist_q": q,
        "missing_at_seen_max": missing, "env": env, "floor_ms": summary(floor), "fork_touch_ms": fork_touch_ms,
        "feed_fill": FEED_FILL,
        # On a cluster the fanout writes plain ZADD pipelines, which commandstats cannot tell from the floor's.
        "script_ms_per_post": None if isinstance(r, Cluster) else
        sum(v["usec"] for k, v in cs.items() if k in ("evalsha", "eval")) / 1000 / LAT_POSTS,
        "cluster_masters": len(r.nodes()) if isinstance(r, Cluster) else 0,
        "slowest": sorted(((round(v, 1), i + 1) for i, v in enumerate(from_send)), reverse=True)[:5],
        "solo_from_send_ms": summary(solo_send), "solo_from_created_ms": summary(solo_created),
    }
    save("latency", res)
    s, c, so = res["from_send_ms"], res["from_created_ms"], res["solo_from_send_ms"]
    print("latency (%d posts x %d followers, one at a time): POST sent -> %s: p50 %.1f ms, p99 %.1f ms, max %.1f ms"
          % (LAT_POSTS, LAT_FOLLOWERS, delivered_when(res), s["p50"], s["p99"], s["max"]))
    print("  created_at -> last feed: p50 %.1f ms, p99 %.1f ms; histogram p50 %.1f ms (bucket %g-%g), p99 %.1f ms (bucket %g-%g)"
          % (c["p50"], c["p99"], q["0.5"][0] * 1000, q["0.5"][1] * 1000, q["0.5"][2] * 1000,
             q["0.99"][0] * 1000, q["0.99"][1] * 1000, q["0.99"][2] * 1000))
    print("  the same path with 1 follower (transport): p50 %.1f ms, p99 %.1f ms" % (so["p50"], so["p99"]))
    f = res["floor_ms"]
    print("  floor, one pipeline of %d plain ZADDs per post%s: p50 %.1f ms, p99 %.1f ms (%.1f ms for the round after the fork); sluice / floor: p50 %.2f, p99 %.2f; %s"
          % (LAT_FOLLOWERS, " (split by master)" if res["cluster_masters"] else "", f["p50"], f["p99"], res["fork_touch_ms"],
             s["p50"] / f["p50"], s["p99"] / f["p99"],
             "fanout scripts ran %.1f ms of Redis per post" % res["script_ms_per_post"]
             if res["script_ms_per_post"] is not None else "on a cluster the fanout writes plain ZADD pipelines"))
    print("  slowest (ms, post #): %s; %s" % (", ".join("%.1f #%d" % x for x in res["slowest"]), phase_note(env)))
    if res["missing_at_seen_max"]:
        print("  WARNING: up to %d feeds lacked the post when the 'last' follower had it" % res["missing_at_seen_max"])


def cmd_seed():
    """RD_POSTS posts by each of the reader's RD_AUTHORS authors, in rounds (every author once per
    round) so that the newest posts mix celebrities and pushed authors."""
    # Celebrities last in every round, so the newest posts of all include theirs.
    round_ = [rd_author(i) for i in range(RD_CELEBS, RD_AUTHORS)] + [rd_author(i) for i in range(RD_CELEBS)]
    order = [a for _ in range(RD_POSTS) for a in round_]
    local = threading.local()
    base = posts_done()

    def publish(k):
        if not hasattr(local, "api"):
            local.api = Http(ENV["API"])
        p = local.api.post(order[k], "post %d by %s" % (k // RD_AUTHORS, order[k]))
        return (p["created_at"], p["post_id"], order[k])

    t0 = time.monotonic()
    with ThreadPoolExecutor(16) as pool:
        posts = list(pool.map(publish, range(len(order))))
    t_pub = time.monotonic() - t0
    wait_for("the fanout to apply the %d seed posts" % len(order), lambda: posts_done() >= base + len(order), interval=0.05)
    t_done = time.monotonic() - t0
    posts.sort(reverse=True)  # newest first, post id breaking ties: the read's order
    expected = [p[1] for p in posts[:LIMIT]]
    celebs = sum(1 for p in posts[:LIMIT] if p[2].startswith("rd-c"))
    save("seed", {"posts": len(order), "publish_s": t_pub, "applied_s": t_done, "expected": expected,
                  "celebrity_posts_in_top": celebs})
    print("seed: %d posts by %d authors (%d celebrities) published in %.1f s, applied after %.1f s; the newest %d hold %d celebrity posts"
          % (len(order), RD_AUTHORS, RD_CELEBS, t_pub, t_done, LIMIT, celebs))


def cmd_reads():
    """reads <api addr> <name> <api pid> [burst]: READS sequential feed reads; with `burst`, reads
    for as long as a push burst (TP_POSTS posts by the throughput authors, published at once)
    is being fanned out instead, to see what the fan-out's scripts do to reads."""
    addr, name, api_pid = sys.argv[2], sys.argv[3], sys.argv[4]
    burst = len(sys.argv) > 5 and sys.argv[5] == "burst"
    seed = load("seed")
    http_ = Http(addr)
    path = "/v1/feed/%s?limit=%d" % (READER, LIMIT)
    status, body = http_.request("GET", path)
    if status != 200:
        die("GET %s answered %d: %s" % (path, status, body[:300]))
    got = [p["post_id"] for p in json.loads(body)["posts"]]
    if got != seed["expected"]:
        die("the feed read does not match the expected merge: %d posts, first mismatch at %s"
            % (len(got), next((i for i, (a, b) in enumerate(zip(got, seed["expected"])) if a != b), min(len(got), LIMIT))))
    h0 = histogram(scrape(addr), "sluice_feed_read_duration_seconds")
    r = connect()
    phase = Phase(r)
    cs0 = commandstats(r)
    cpu0 = proc_cpu(api_pid)
    lat = []
    running = None
    if burst:
        running = threading.Event()
        running.set()
        burst_result = {}

        def fan_burst():
            fan = Http(ENV["FANOUT_METRICS"])
            deliveries = lambda: metric(fan.request("GET", "/metrics")[1].decode(), "sluice_fanout_deliveries_total") or 0
            base, target = deliveries(), TP_POSTS * TP_FOLLOWERS
            local = threading.local()

            def publish(i):
                if not hasattr(local, "api"):
                    local.api = Http(ENV["API"])
                return local.api.post(tp_author(i % TP_AUTHORS), "burst post %d" % i)

            t = time.monotonic()
            with ThreadPoolExecutor(8) as pool:
                list(pool.map(publish, range(TP_POSTS)))
            while deliveries() - base < target and time.monotonic() - t < TIMEOUT:
                time.sleep(0.01)
            burst_result["done"] = deliveries() - base
            burst_result["s"] = time.monotonic() - t
            running.clear()

        threading.Thread(target=fan_burst, daemon=True).start()
    t0 = time.monotonic()
    n = 0
    while (running.is_set() if burst else n < READS):
        n += 1
        ts = time.perf_counter()
        status, body = http_.request("GET", path)
        lat.append((time.perf_counter() - ts) * 1000)
        if status != 200:
            die("GET %s answered %d: %s" % (path, status, body[:300]))
    wall = time.monotonic() - t0
    cpu = proc_cpu(api_pid) - cpu0
    cs = commandstats_delta(cs0, commandstats(r))
    env = phase.end()
    if burst and burst_result.get("done", 0) < TP_POSTS * TP_FOLLOWERS:
        die("the push burst during the reads did not finish within %.0f s (%d deliveries)" % (TIMEOUT, burst_result.get("done", 0)))
    reads = len(lat)
    h = histogram_delta(h0, histogram(scrape(addr), "sluice_feed_read_duration_seconds"))
    q = {str(k): hist_quantile(k, h) for k in (0.5, 0.99)}
    res = {"reads": reads, "burst": burst_result if burst else None, "client_ms": summary(lat), "histogram": h, "hist_q": q, "wall_s": wall,
           "reads_per_s": reads / wall, "api_cpu_ms_per_read": 1000 * cpu / reads, "env": env,
           "redis_us_per_read": sum(v["usec"] for k, v in cs.items() if k not in ("info", "slowlog")) / reads,
           "commandstats": cs,
           "slowest": sorted(lat, reverse=True)[:5]}
    save("reads-" + name, res)
    s = res["client_ms"]
    if burst:
        print("reads during a push burst: %d posts x %d followers fanned out in %.2f s while reading"
              % (TP_POSTS, TP_FOLLOWERS, burst_result["s"]))
    print("reads (%s): %d sequential GET %s: client p50 %.2f ms, p99 %.2f ms, max %.2f ms; server histogram p50 %.2f ms (bucket %g-%g), p99 %.2f ms (bucket %g-%g); api CPU %.2f ms/read"
          % (name, reads, path, s["p50"], s["p99"], s["max"], q["0.5"][0] * 1000, q["0.5"][1] * 1000, q["0.5"][2] * 1000,
             q["0.99"][0] * 1000, q["0.99"][1] * 1000, q["0.99"][2] * 1000, res["api_cpu_ms_per_read"]))
    print("  %s; Redis command time %.0f us per read (%s)" % (phase_note(env), res["redis_us_per_read"], ", ".join(
        "%s %.1f/read %.1f us" % (k, v["calls"] / reads, v["usec_per_call"]) for k, v in sorted(cs.items(), key=lambda kv: -kv[1]["usec"])[:5])))


def cmd_cleanup():
    """SCAN + UNLINK of every key under KEY_PREFIX (never FLUSHALL: the Redis is shared), then a
    second SCAN to count what is left. Prints the counts; exits 1 if keys are left."""
    r = connect()
    # A cluster refuses a many-key UNLINK across slots: one key per UNLINK there.
    per_call = 1 if isinstance(r, Cluster) else 1000
    pattern = KEY_PREFIX.replace("*", "\\*").replace("?", "\\?").replace("[", "\\[") + "*"
    deleted, left, t0 = 0, 0, time.monotonic()
    for node in r.nodes():
        cursor = "0"
        while True:
            cursor, keys = node.call("SCAN", cursor, "MATCH", pattern, "COUNT", 5000)
            if keys:
                deleted += sum(node.pipeline([["UNLINK"] + keys[i:i + per_call] for i in range(0, len(keys), per_call)]))
            if cursor == "0":
                break
        cursor = "0"
        while True:
            cursor, keys = node.call("SCAN", cursor, "MATCH", pattern, "COUNT", 5000)
            left += len(keys)
            if cursor == "0":
                break
    print("cleanup: unlinked %d Redis keys %s in %.1f s%s" % (deleted, pattern, time.monotonic() - t0,
                                                           ", %d left" % left if left else ""))
    sys.exit(1 if left else 0)


# --- report -------------------------------------------------------------------------------------
def fmt_bucket(q):
    lo, hi = q[1] * 1000, q[2] * 1000
    return "(%g, %s]" % (lo, "+Inf" if hi == float("inf") else "%g" % hi)


def table(header, rows):
    w = [max(len(str(r[i])) for r in [header] + rows) for i in range(len(header))]
    line = lambda r: "| " + " | ".join(str(c).ljust(w[i]) for i, c in enumerate(r)) + " |"
    return "\n".join([line(header), "|" + "|".join("-" * (x + 2) for x in w) + "|"] + [line(r) for r in rows])


def cmd_report():
    tp, z, zf, lat, seed = load("throughput"), load("zadd"), load("zadd-feeds"), load("latency"), load("seed")
    r_off, r_on, r_burst = load("reads-cache-off"), load("reads-cache-on"), load("reads-burst")
    ok = lambda b: "yes" if b else "**NO**"
    rows = []
    ratio = tp["deliveries_per_s"] / z["ops_per_s"]
    rows.append(["1. push fan-out throughput", "%.0f deliveries/s" % tp["deliveries_per_s"],
                 "%d posts x %d followers = %d deliveries in %.2f s" % (tp["posts"], tp["followers"], tp["deliveries"], tp["wall_s"]), "", ""])
    rows.append(["   fanout / Redis / api CPU", "%.2f / %.2f / %.2f s" % (tp["fanout_cpu_s"], tp["redis_cpu_s"], tp["api_cpu_s"]),
                 "%.0f%% / %.0f%% / %.0f%% of one core" % (100 * tp["fanout_cpu_s"] / tp["wall_s"], 100 * tp["redis_cpu_s"] / tp["wall_s"], 100 * tp["api_cpu_s"] / tp["wall_s"]), "", ""])
    rows.append(["2. redis-benchmark ZADD -P 16", "%.0f ops/s" % z["ops_per_s"], "one sorted set, random members", "", ""])
    if zf:
        rows.append(["   same, random feed keys", "%.0f ops/s" % zf["ops_per_s"], "ZADD into 100 000 small sorted sets", "", ""])
    rows.append(["   ratio deliveries/s / ZADD ops/s", "%.2f" % ratio, "vs ZADD into one sorted set", ">= 0.5", ok(ratio >= 0.5)])
    if zf:
        ratio_f = tp["deliveries_per_s"] / zf["ops_per_s"]
        rows.append(["   same vs random feed keys", "%.2f" % ratio_f, "vs ZADD into 100 000 small sorted sets", ">= 0.5", ok(ratio_f >= 0.5)])
    s, c, q = lat["from_send_ms"], lat["from_created_ms"], lat["hist_q"]
    f = lat.get("floor_ms")
    # With a floor measured, the target is the ratio to it (the absolute figure is what this
    # machine's Redis allows: see the README's fan-out section); without, the absolute one.
    rows.append(["3. fan-out latency, %d followers" % lat["followers"], "p50 %.1f ms, p99 %.1f ms" % (s["p50"], s["p99"]),
                 "POST sent -> %s, %d posts, max %.1f ms" % (delivered_when(lat), lat["posts"], s["max"]),
                 "(p99 100 ms)" if f else "p99 < 100 ms",
                 "(%s)" % ("yes" if s["p99"] < 100 else "no") if f else ok(s["p99"] < 100)])
    if f:
        rows.append(["   floor: one pipeline of plain ZADDs" + (" per master" if lat.get("cluster_masters") else ""),
                     "p50 %.1f ms, p99 %.1f ms" % (f["p50"], f["p99"]),
                     "the same %d writes per post, made the fastest way, max %.1f ms" % (lat["followers"], f["max"]), "", ""])
        rows.append(["   ratio sluice / floor", "p50 %.2f, p99 %.2f" % (s["p50"] / f["p50"], s["p99"] / f["p99"]),
                     "POST -> last feed, over Redis's own time for the same writes", "p99 <= 1.5", ok(s["p99"] / f["p99"] <= 1.5)])
    so = lat["solo_from_send_ms"]
    rows.append(["   same, author with 1 follower", "p50 %.1f ms, p99 %.1f ms" % (so["p50"], so["p99"]),
                 "the transport alone: HTTP, Kafka, one record", "", ""])
    rows.append(["   same from created_at", "p50 %.1f ms, p99 %.1f ms" % (c["p50"], c["p99"]), "post's created_at -> last feed", "", ""])
    rows.append(["   fanout histogram", "p50 %.1f ms, p99 %.1f ms" % (q["0.5"][0] * 1000, q["0.99"][0] * 1000),
                 "buckets %s / %s ms" % (fmt_bucket(q["0.5"]), fmt_bucket(q["0.99"])), "p99 < 100 ms", ok(q["0.99"][2] <= 0.1)])
    for name, rd in (("cache off", r_off), ("cache off, during a push burst", r_burst), ("cache on", r_on)):
        if not rd:
            continue
        s, q = rd["client_ms"], rd["hist_q"]
        target = name == "cache off"
        info = rd.get("burst") is not None
        what = "%d sequential keep-alive GETs, max %.2f ms, %.0f reads/s" % (rd["reads"], s["max"], rd["reads_per_s"])
        if rd.get("burst"):
            what = "%d GETs while %d x %d deliveries were pushed (%.1f s), max %.2f ms" % (
                rd["reads"], TP_POSTS, TP_FOLLOWERS, rd["burst"]["s"], s["max"])
        rows.append(["4. feed read, %s (client)" % name, "p50 %.2f ms, p99 %.2f ms" % (s["p50"], s["p99"]),
                     what,
                     "p99 < 5 ms" if target else ("(5 ms)" if info else ""),
                     ok(s["p99"] < 5) if target else ("(%s)" % ("yes" if s["p99"] < 5 else "no") if info else "")])
        rows.append(["   server histogram", "p50 %.2f ms, p99 %.2f ms" % (q["0.5"][0] * 1000, q["0.99"][0] * 1000),
                     "buckets %s / %s ms" % (fmt_bucket(q["0.5"]), fmt_bucket(q["0.99"])),
                     "p99 < 5 ms" if target else ("(5 ms)" if info else ""),
                     ok(q["0.99"][2] <= 0.005) if target else ("(%s)" % ("yes" if q["0.99"][2] <= 0.005 else "no") if info else "")])
    out = table(["measurement", "result", "detail", "target", "met"], rows)
    cs = tp["commandstats"]
    top = sorted(cs.items(), key=lambda kv: -kv[1]["usec"])
    stats = ["| command | calls | usec/call | total ms |", "|---|---|---|---|"]
    stats += ["| %s | %d | %.2f | %.0f |" % (k, v["calls"], v["usec_per_call"], v["usec"] / 1000) for k, v in top[:8]]
    script_ms = sum(v["usec"] for k, v in cs.items() if k in ("evalsha", "eval")) / 1000
    # Scripts' inner commands are counted twice (under the script and under their own names).
    inner = sum(v["usec"] for k, v in cs.items() if k in ("zadd", "zcard", "zremrangebyrank")) if script_ms else 0
    fanout_ms = (sum(v["usec"] for k, v in cs.items() if k not in ("info", "slowlog")) - inner) / 1000
    idle = load("idle")
    details = [
        "Machine before the run: %.2f of %d cores busy (%s), load average %s%s."
        % (idle["busy_cores"], os.cpu_count(), ", ".join("%s %.2f" % tuple(t) for t in idle["top"]), " ".join(idle["loadavg"]),
           " (**not idle**: other processes competed for the CPUs)" if idle["busy_cores"] > 0.3 else ""),
        "During each phase (every phase first had Redis rewrite its AOF if it had grown, and waited for any rewrite to finish):",
        "",
        "- throughput: " + phase_note(tp["env"]),
        "- ZADD one set: " + phase_note(z["env"]),
    ] + (["- ZADD feed keys: " + phase_note(zf["env"])] if zf else []) + [
        "- latency: " + phase_note(lat["env"]) + "; slowest posts (ms, #): "
        + ", ".join("%.1f #%d" % tuple(x) for x in lat["slowest"]),
    ] + ["- reads, %s: %s; slowest reads (ms): %s" % (n, phase_note(rd["env"]), ", ".join("%.2f" % x for x in rd["slowest"]))
         for n, rd in (("cache off", r_off), ("cache off, push burst", r_burst), ("cache on", r_on)) if rd] + [
        "",
        "Throughput phase, Redis side: Redis used %.2f s of CPU in %.2f s (%.0f%% of its one core);"
        % (tp["redis_cpu_s"], tp["wall_s"], 100 * tp["redis_cpu_s"] / tp["wall_s"]),
        "the fan-out's commands ran %.0f ms in total (scripts %.0f ms, the rest mostly SSCAN) = %.2f us"
        % (fanout_ms, script_ms, 1000 * fanout_ms / tp["deliveries"]),
        "per delivery inside Redis, i.e. Redis alone could do ~%d deliveries/s if the fanout kept it busy"
        % (round(tp["deliveries"] / (fanout_ms / 1000), -3) if fanout_ms else 0),
        "all the time (request parsing, replies and AOF writes not included). INFO commandstats delta",
        "(commands called from scripts are counted under their own names too):",
        "",
    ] + stats + [
        "",
        "Latency phase: the polled 'last' follower%s %s (the last member of an SSCAN with the fanout's"
        % (" of each master were" if lat.get("cluster_masters") else " was", ", ".join(lat["last_follower"])),
        "COUNT%s); right after %s the post, at most %d of the %d feeds lacked it (0 = %s last)."
        % (" among that master's feeds" if lat.get("cluster_masters") else "",
           "they had" if lat.get("cluster_masters") else "it had", lat["missing_at_seen_max"], lat["followers"],
           "they really were" if lat.get("cluster_masters") else "it really was"),
        "Histogram observations per bucket (ms): " + buckets(lat["histogram"]) + ".",
    ] + ([
        ("The fanout's push scripts ran %.1f ms of Redis per post (INFO commandstats, EVALSHA); the floor"
         % lat["script_ms_per_post"]) if lat.get("script_ms_per_post") is not None else
        ("On the %d-master cluster the fanout writes plain ZADD pipelines, one per master; the floor"
         % lat.get("cluster_masters", 0)),
        "round that took the copy-on-write faults after the phase's AOF rewrite took %.1f ms (followers' feeds"
        % lat["fork_touch_ms"],
        "started with 0..%d older posts each)." % lat["feed_fill"] if lat["feed_fill"] else "started empty).",
    ] if "fork_touch_ms" in lat else []) + [
        "",
        "Feed-read phase: %d posts seeded (%d authors x %d) in %.1f s, applied after %.1f s; the newest %d"
        % (seed["posts"], RD_AUTHORS, RD_POSTS, seed["publish_s"], seed["applied_s"], LIMIT),
        "posts hold %d celebrity posts; the first read of each api returned exactly the expected %d post ids."
        % (seed["celebrity_posts_in_top"], LIMIT),
    ]
    for name, rd in (("cache off", r_off), ("cache off, push burst", r_burst), ("cache on", r_on)):
        if rd:
            details.append("Server histogram, %s, reads per bucket (ms): %s; api CPU %.3f ms per read."
                           % (name, buckets(rd["histogram"]), rd["api_cpu_ms_per_read"]))
    open(os.path.join(TMP, "table.md"), "w").write(out + "\n")
    open(os.path.join(TMP, "details.md"), "w").write("\n".join(details) + "\n")
    print(out)


def buckets(rows):
    """Per-bucket (not cumulative) counts of a histogram delta, empty buckets left out."""
    out, prev_le, prev_c = [], 0.0, 0.0
    for le, c in rows:
        if c - prev_c > 0:
            out.append("(%g, %s] %d" % (prev_le * 1000, "+Inf" if le == float("inf") else "%g" % (le * 1000), c - prev_c))
        prev_le, prev_c = le, c
    return "; ".join(out) or "none"


if __name__ == "__main__":
    phases = {"cleanup": cmd_cleanup, "idle": cmd_idle, "graph": cmd_graph, "warmup": cmd_warmup, "throughput": cmd_throughput, "zadd": cmd_zadd,
              "latency": cmd_latency, "feeds": cmd_feeds, "seed": cmd_seed, "reads": cmd_reads, "report": cmd_report}
    if len(sys.argv) < 2 or sys.argv[1] not in phases:
        die("usage: fanout-load.py %s" % "|".join(phases))
    phases[sys.argv[1]]()
