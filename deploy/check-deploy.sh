#!/usr/bin/env bash
# Validates the container and Kubernetes deployment files without a Docker engine or a cluster:
#
#   1. docker-compose.yml: `docker-compose config -q` (Debian's docker-compose; also Compose v2
#      when `docker compose` works), with a temporary .env from .env.example if .env is missing.
#   2. YAML: docker-compose.yml and every deploy/k8s/*.yaml parse (yaml.safe_load_all); every
#      Kubernetes document has apiVersion, kind, metadata.name and the API shape of its kind;
#      cross-references hold (selectors, probe ports, ScaledObject targets, kustomization
#      resources); `kubectl kustomize deploy/k8s` renders, when kubectl or kustomize is there;
#      kubernetes-validate --strict checks every built-in object (and the rendered output)
#      against the Kubernetes 1.30 and latest schemas; ScaledObjects against KEDA's fields.
#   3. Configuration: every SLUICE__ variable in the Dockerfile, docker-compose.yml (anchors
#      included), .env.example and deploy/k8s (ConfigMap literals, env entries, Secret keys) is
#      loaded by the project's own loader, `sluice config`, with the values each container
#      would get (secret references replaced by a valid dummy); an unknown key or a bad value
#      fails. The effective config it prints is then checked against the files: probe and
#      healthcheck ports, grace periods vs. worker.drain_timeout, KEDA's partitions/topics/groups.
#   4. Commands: every role and subcommand in compose, k8s and the Dockerfile's CMD parses with
#      the real CLI (`sluice <args> --help`), and every `--kinds` names a real job kind.
#   5. promtool check config deploy/prometheus/prometheus.yml, and its targets are compose
#      services on the ports those services listen on.
#   6. Dockerfile sanity: non-root USER, HEALTHCHECK, ENTRYPOINT ["sluice"], EXPOSE, bookworm
#      stages; .dockerignore keeps target/ and .env out but not the sources.
#
# Installs what is missing (Debian's docker-compose and prometheus packages, PyYAML;
# kubernetes-validate from PyPI into .cache/check-deploy-venv), builds
# target/debug/sluice (cargo build; or set SLUICE_BIN to a sluice binary). Reports every problem
# the file checks find, then exits non-zero if there was one.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"

# apt_install (policy-rc.d guard, `apt-get update` only when needed) from the env scripts.
# shellcheck source=deploy/kafka/common.sh
source "$REPO/deploy/kafka/common.sh"
step() { printf '\n== %s\n' "$*"; }
die() { printf 'check-deploy: %s\n' "$*" >&2; exit 1; }

# ---------------------------------------------------------------------------------------------
step "tools"
PY=""
for candidate in python3 /usr/bin/python3; do
  if command -v "$candidate" >/dev/null && "$candidate" -c 'import yaml' 2>/dev/null; then
    PY="$candidate"; break
  fi
done
if [[ -z $PY ]] && command -v python3 >/dev/null \
  && python3 -m pip install --quiet pyyaml >/dev/null 2>&1 && python3 -c 'import yaml' 2>/dev/null; then
  PY=python3
fi
if [[ -z $PY ]]; then
  echo "PyYAML not found: installing Debian's python3-yaml"
  apt_install python3 python3-yaml || die "could not install python3-yaml"
  PY=/usr/bin/python3
fi
if ! command -v docker-compose >/dev/null; then
  echo "docker-compose not found: installing Debian's docker-compose"
  apt_install docker-compose || die "could not install docker-compose"
fi
if ! command -v promtool >/dev/null; then
  echo "promtool not found: installing Debian's prometheus package (the server is not started)"
  apt_install prometheus || die "could not install prometheus (promtool)"
fi
# kubernetes-validate (PyPI) checks Kubernetes objects against the API's published schemas.
KV_VERSION=1.37.0
if command -v kubernetes-validate >/dev/null; then
  KV=kubernetes-validate
else
  KV_VENV="$REPO/.cache/check-deploy-venv"
  KV="$KV_VENV/bin/kubernetes-validate"
  if [[ ! -x $KV ]]; then
    echo "kubernetes-validate not found: installing $KV_VERSION from PyPI into ${KV_VENV#"$REPO"/}"
    rm -rf "$KV_VENV"
    python3 -m venv "$KV_VENV" 2>/dev/null \
      || { apt_install python3-venv && /usr/bin/python3 -m venv "$KV_VENV"; } \
      || die "could not create a Python venv"
    "$KV_VENV/bin/pip" install --quiet --disable-pip-version-check "kubernetes-validate==$KV_VERSION" \
      || die "could not install kubernetes-validate from PyPI"
  fi
fi
# The checks ask the binary built from this tree (cargo build is a no-op when it is current; a
# stale binary could know other keys). SLUICE_BIN points at a prebuilt one instead.
if [[ -n ${SLUICE_BIN:-} ]]; then
  SLUICE="$SLUICE_BIN"
  [[ -x $SLUICE ]] || die "SLUICE_BIN=$SLUICE is not an executable"
else
  echo "cargo build --bin sluice"
  cargo build --quiet --bin sluice || die "cargo build --bin sluice failed"
  SLUICE="$REPO/target/debug/sluice"
fi
echo "python: $PY ($("$PY" -c 'import yaml; print("PyYAML", yaml.__version__)'))"
echo "docker-compose: $(docker-compose version --short 2>/dev/null || docker-compose version | head -1)"
echo "promtool: $(promtool --version 2>&1 | head -1)"
echo "kubernetes-validate: $("$KV" --version 2>&1 | tail -1)"
echo "sluice: $SLUICE ($("$SLUICE" --version))"

# ---------------------------------------------------------------------------------------------
step "docker-compose.yml: docker-compose config"
created_env="" RENDERED=""
cleanup() {
  if [[ -n $created_env ]]; then rm -f "$REPO/.env"; created_env=""; fi
  if [[ -n $RENDERED ]]; then rm -f "$RENDERED"; fi
}
trap cleanup EXIT
if [[ ! -e .env ]]; then
  [[ -f .env.example ]] || die ".env.example is missing"
  cp .env.example .env
  created_env=1
  echo "(no .env: using a temporary copy of .env.example)"
fi
docker-compose -f docker-compose.yml config -q
echo "ok: docker-compose $(docker-compose version --short 2>/dev/null) accepts docker-compose.yml"
if docker compose version >/dev/null 2>&1; then
  docker compose -f docker-compose.yml config -q
  echo "ok: $(docker compose version | head -1) accepts docker-compose.yml"
else
  echo "(Compose v2 not installed here: only docker-compose v1 checked)"
fi
if [[ -n $created_env ]]; then rm -f "$REPO/.env"; created_env=""; fi

# ---------------------------------------------------------------------------------------------
step "kustomize build deploy/k8s"
# A failure here is reported at the end, after the file checks below have said what they find.
kustomize_failed=""
kustomize_cmd=()
if kubectl kustomize --help >/dev/null 2>&1; then
  kustomize_cmd=(kubectl kustomize deploy/k8s)
elif command -v kustomize >/dev/null; then
  kustomize_cmd=(kustomize build deploy/k8s)
fi
if [[ ${#kustomize_cmd[@]} -gt 0 ]]; then
  RENDERED="$(mktemp)"
  if "${kustomize_cmd[@]}" >"$RENDERED"; then
    echo "ok: ${kustomize_cmd[*]} renders $(grep -c '^kind:' "$RENDERED") objects"
  else
    echo "FAIL: ${kustomize_cmd[*]} does not render (see above)"
    kustomize_failed=1
    rm -f "$RENDERED"; RENDERED=""
  fi
else
  echo "(neither kubectl nor kustomize here: the rendered output is not checked; the files are)"
fi

# ---------------------------------------------------------------------------------------------
step "YAML, API shapes, SLUICE__ variables (sluice config), commands (sluice --help)"
"$PY" - "$REPO" "$SLUICE" "${RENDERED:-}" <<'PY'
import base64, json, os, re, shlex, subprocess, sys
import yaml

repo, sluice, rendered = sys.argv[1], sys.argv[2], sys.argv[3]
os.chdir(repo)
errors = []
DUMMY_SECRET = "whsec_ZHVtbXk="   # valid in form (whsec_ + base64 of "dummy")


def fail(msg):
    errors.append(msg)
    print(f"FAIL: {msg}")


def ok(msg):
    print(f"ok: {msg}")


def load_all(path):
    try:
        with open(path) as f:
            return [d for d in yaml.safe_load_all(f) if d is not None]
    except yaml.YAMLError as e:
        fail(f"{path}: not valid YAML: {e}")
        return []


def parse_duration(text):
    """humantime as printed by `sluice config` ("30s", "1m 30s", "7days", "250ms") -> seconds."""
    units = {"ns": 1e-9, "us": 1e-6, "ms": 1e-3, "s": 1, "sec": 1, "secs": 1, "m": 60, "min": 60,
             "mins": 60, "h": 3600, "hr": 3600, "hrs": 3600, "d": 86400, "day": 86400,
             "days": 86400}
    total = 0.0
    parts = re.findall(r"(\d+)\s*([a-z]+)", str(text))
    if not parts:
        raise ValueError(f"not a duration: {text!r}")
    for n, u in parts:
        total += int(n) * units[u]
    return total


def compose_duration(text):
    """Compose durations: 45s, 1m30s, 1m."""
    return parse_duration(re.sub(r"(\d+)m(?!s)", r"\1min ", str(text)))


def port_of(listen):
    return int(str(listen).rsplit(":", 1)[1])


# The long-running roles and the config key each one listens on (HTTP, or /metrics + /healthz).
LISTEN_KEYS = {"api": ("api", "listen"), "worker": ("worker", "metrics_listen"),
               "fanout": ("social", "metrics_listen"), "scheduler": ("scheduler", "metrics_listen")}


def listen_of(cfg, role):
    section, key = LISTEN_KEYS[role]
    return cfg[section][key]


# ---------------------------------------------------------------- sluice, the source of truth
def run(args, env=None):
    return subprocess.run([sluice, *args], capture_output=True, text=True, env=env)


BASE_ENV = {k: v for k, v in os.environ.items() if not k.startswith("SLUICE")}


def load_config(where, assignments):
    """Loads `assignments` (list of (key, value)) with `sluice config`; returns the effective
    config as a dict, or None after recording the failure."""
    env = dict(BASE_ENV)
    for k, v in assignments:
        env[k] = str(v)
    r = run(["config"], env)
    if r.returncode != 0:
        msg = (r.stderr.strip() or r.stdout.strip()).splitlines()
        fail(f"{where}: `sluice config` rejects its SLUICE__ settings: {msg[-1] if msg else r.returncode}")
        return None
    return json.loads(r.stdout)


def known_kinds():
    r = run(["topics", "list"], dict(BASE_ENV))
    if r.returncode != 0:
        sys.exit(f"`sluice topics list` failed: {r.stderr}")
    kinds = sorted({m.group(1) for m in re.finditer(r"^jobs\.([A-Za-z0-9_-]+)\s", r.stdout, re.M)})
    if not kinds:
        sys.exit("`sluice topics list` printed no jobs.<kind> topic")
    return kinds


def topics_for(assignments):
    env = dict(BASE_ENV)
    env.update({k: str(v) for k, v in assignments})
    r = run(["topics", "list"], env)
    return {line.split()[0] for line in r.stdout.splitlines() if line.strip()} if r.returncode == 0 else set()


KINDS = known_kinds()
ok(f"job kinds (from `sluice topics list`): {', '.join(KINDS)}")
help_cache = {}


def check_command(where, argv):
    """The CLI itself parses `argv --help`: an unknown role, subcommand or flag fails. Returns the
    role (first word) or None."""
    if not argv:
        fail(f"{where}: empty command")
        return None
    key = tuple(argv)
    if key not in help_cache:
        help_cache[key] = run([*argv, "--help"], dict(BASE_ENV))
    r = help_cache[key]
    if r.returncode != 0:
        fail(f"{where}: `sluice {' '.join(argv)}` is not a valid command: "
             f"{(r.stderr.strip().splitlines() or ['?'])[0]}")
        return None
    if argv[0] == "worker":
        kinds = []
        for i, a in enumerate(argv):
            if a == "--kinds" and i + 1 < len(argv):
                kinds = argv[i + 1].split(",")
            elif a.startswith("--kinds="):
                kinds = a.split("=", 1)[1].split(",")
        if not kinds:
            fail(f"{where}: `sluice worker` without --kinds (one kind per service, so each scales alone)")
        for k in kinds:
            if k not in KINDS:
                fail(f"{where}: --kinds names `{k}`, not a job kind ({', '.join(KINDS)})")
    return argv[0]


def list_flag(argv, flag, default):
    """The comma-separated values of `--flag v1,v2` or `--flag=v1,v2`."""
    for i, a in enumerate(argv):
        if a == flag and i + 1 < len(argv):
            return argv[i + 1].split(",")
        if a.startswith(flag + "="):
            return a.split("=", 1)[1].split(",")
    return default


def worker_kinds(argv):
    return list_flag(argv, "--kinds", [])


def worker_lanes(argv):
    """The lanes a worker serves (`--lanes`, default all three)."""
    return list_flag(argv, "--lanes", ["high", "normal", "low"])


def lane_topic(prefix, kind, lane):
    return f"{prefix}jobs.{kind}" if lane == "normal" else f"{prefix}jobs.{kind}.{lane}"


def collect_sluice_vars(node, out):
    """Every SLUICE__ variable named anywhere in a parsed YAML tree: mapping keys, `K=V` list
    items, and k8s `{name: K, value: V}` env entries."""
    if isinstance(node, dict):
        if isinstance(node.get("name"), str) and node["name"].startswith("SLUICE"):
            out.append((node["name"], node.get("value", DUMMY_SECRET)))
        for k, v in node.items():
            if isinstance(k, str) and k.startswith("SLUICE"):
                out.append((k, v if not isinstance(v, (dict, list)) else ""))
            collect_sluice_vars(v, out)
    elif isinstance(node, list):
        for item in node:
            if isinstance(item, str) and re.match(r"^SLUICE\w*=", item):
                k, v = item.split("=", 1)
                out.append((k, v))
            else:
                collect_sluice_vars(item, out)


# ------------------------------------------------------------------------------ Dockerfile
def dockerfile_instructions(path):
    text = open(path).read()
    text = re.sub(r"\\\n", " ", text)           # line continuations
    out = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        word, _, rest = line.partition(" ")
        out.append((word.upper(), rest.strip()))
    return out


DOCKERFILE = "deploy/Dockerfile"
instrs = dockerfile_instructions(DOCKERFILE)
stages = []
for word, rest in instrs:
    if word == "FROM":
        stages.append({"from": rest, "instrs": []})
    elif stages:
        stages[-1]["instrs"].append((word, rest))
if not stages:
    fail(f"{DOCKERFILE}: no FROM")
    stages = [{"from": "", "instrs": []}]
final = stages[-1]
args = {m.group(1): m.group(2) for w, r in instrs if w == "ARG"
        for m in [re.match(r"(\w+)=(\S+)", r)] if m}
expand = lambda s: re.sub(r"\$\{(\w+)\}", lambda m: args.get(m.group(1), m.group(0)), s)
if not any(re.match(r"rust:\S*bookworm", expand(s["from"])) for s in stages[:-1]):
    fail(f"{DOCKERFILE}: no builder stage FROM rust:*-bookworm")
if not re.match(r"debian:bookworm-slim\b", expand(final["from"])):
    fail(f"{DOCKERFILE}: the runtime stage is not FROM debian:bookworm-slim (got {expand(final['from'])!r})")
fin = final["instrs"]
users = [r for w, r in fin if w == "USER"]
if not users:
    fail(f"{DOCKERFILE}: the runtime stage has no USER (it would run as root)")
elif users[-1].split(":")[0] in ("root", "0"):
    fail(f"{DOCKERFILE}: the runtime stage's USER is root")
elif not users[-1].split(":")[0].isdigit():
    fail(f"{DOCKERFILE}: USER {users[-1]} is not numeric (Kubernetes runAsNonRoot cannot verify a name)")
if not any(w == "HEALTHCHECK" and not r.upper().startswith("NONE") for w, r in fin):
    fail(f"{DOCKERFILE}: the runtime stage has no HEALTHCHECK")
entry = [r for w, r in fin if w == "ENTRYPOINT"]
try:
    entry_ok = bool(entry) and json.loads(entry[-1]) == ["sluice"]
except ValueError:                      # shell form
    entry_ok = False
if not entry_ok:
    fail(f'{DOCKERFILE}: ENTRYPOINT is not exactly ["sluice"] (got {entry[-1] if entry else None!r})')
exposed = {p for w, r in fin if w == "EXPOSE" for p in r.split()}
for p in ("8080", "9101", "9102", "9103"):
    if p not in exposed:
        fail(f"{DOCKERFILE}: EXPOSE lacks {p}")
if not any(w == "COPY" and "/usr/local/bin/sluice" in r for w, r in fin):
    fail(f"{DOCKERFILE}: the runtime stage does not copy the binary to /usr/local/bin/sluice")
cmds = [r for w, r in fin if w == "CMD"]
image_cmd = []
if not cmds or not cmds[-1].startswith("["):
    fail(f"{DOCKERFILE}: no exec-form CMD")
else:
    image_cmd = json.loads(cmds[-1])
    check_command(f"{DOCKERFILE} CMD", image_cmd)
image_env = []
for w, r in fin:
    if w == "ENV":
        for tok in shlex.split(r):
            if "=" in tok:
                k, v = tok.split("=", 1)
                if k.startswith("SLUICE"):
                    image_env.append((k, v))
if image_env:
    load_config(f"{DOCKERFILE} ENV", image_env)
if not errors:
    ok(f"{DOCKERFILE}: bookworm stages, USER {users[-1]}, HEALTHCHECK, ENTRYPOINT [\"sluice\"], "
       f"CMD {image_cmd}, EXPOSE {' '.join(sorted(exposed))}, {len(image_env)} SLUICE__ ENV")

# .dockerignore: the heavy and the secret stay out, the sources stay in.
try:
    ignore = [l.strip() for l in open(".dockerignore") if l.strip() and not l.startswith("#")]
except FileNotFoundError:
    ignore = []
    fail(".dockerignore is missing")
norm = {p.strip("/") for p in ignore}
for must in ("target", ".git", ".env", ".cache", "logs"):
    if must not in norm:
        fail(f".dockerignore does not exclude {must}/")
for needed in ("Cargo.toml", "Cargo.lock", "services", "schemas", "tests"):
    if needed in norm or any(re.fullmatch(p.replace(".", r"\.").replace("*", ".*"), needed) for p in norm):
        fail(f".dockerignore excludes {needed}, which the build needs")

# --------------------------------------------------------------------------- .env.example
def read_env_file(path):
    pairs = []
    for n, line in enumerate(open(path), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if "=" not in line:
            fail(f"{path}:{n}: not KEY=VALUE")
            continue
        k, v = line.split("=", 1)
        pairs.append((k.strip(), v.strip().strip('"').strip("'")))
    return pairs


env_example = read_env_file(".env.example") if os.path.exists(".env.example") else []
if not env_example:
    fail(".env.example is missing or empty")
env_example_sluice = [(k, v) for k, v in env_example if k.startswith("SLUICE")]


def looks_fake(value):
    text = value
    if value.startswith("whsec_"):
        try:
            text += " " + base64.b64decode(value[len("whsec_"):]).decode("utf-8", "replace")
        except ValueError:
            pass
    return re.search(r"replace|change|example|fake|dummy|placeholder|not-a-real", text, re.I)


for k, v in env_example:
    if re.search(r"SECRET|PASSWORD|TOKEN", k) and v and not looks_fake(v):
        fail(f".env.example: {k} does not look like a placeholder: only clearly fake values belong there")
local_env = read_env_file(".env") if os.path.exists(".env") else None

# -------------------------------------------------------------------------- docker-compose
COMPOSE = "docker-compose.yml"
compose_docs = load_all(COMPOSE)
compose = compose_docs[0] if compose_docs else {}
services = compose.get("services") or {}
if not isinstance(services, dict) or not services:
    fail(f"{COMPOSE}: no services")
    services = {}
interp_vars = dict(env_example)


def interpolate(value):
    def sub(m):
        name, op, arg = m.group(1), m.group(2), m.group(3)
        if name in interp_vars and interp_vars[name] != "":
            return interp_vars[name]
        if op in (":-", "-"):
            return arg or ""
        return ""
    return re.sub(r"\$\{(\w+)(?:(:?[-?])([^}]*))?\}", sub, str(value))


def env_pairs(env):
    if isinstance(env, dict):
        return [(k, "" if v is None else interpolate(v)) for k, v in env.items()]
    pairs = []
    for item in env or []:
        k, _, v = str(item).partition("=")
        pairs.append((k, interpolate(v)))
    return pairs


def as_argv(cmd):
    if cmd is None:
        return None
    return shlex.split(cmd) if isinstance(cmd, str) else [str(c) for c in cmd]


def is_sluice_service(svc):
    build = svc.get("build")
    dockerfile = build.get("dockerfile") if isinstance(build, dict) else None
    return dockerfile == DOCKERFILE or str(svc.get("image", "")).startswith("sluice:")


validated_keys = set()
compose_cfg = {}
roles_in_compose = {}
for name, svc in services.items():
    if not isinstance(svc, dict):
        fail(f"{COMPOSE}: service {name} is not a mapping")
        continue
    if not is_sluice_service(svc):
        continue
    env_files = svc.get("env_file") or []
    env_files = [env_files] if isinstance(env_files, str) else env_files
    assignments = list(image_env)
    if ".env" in env_files:
        assignments += env_example_sluice
    elif env_files:
        fail(f"{COMPOSE}: {name}: env_file {env_files} is not .env (only .env has a committed example)")
    own = [(k, v) for k, v in env_pairs(svc.get("environment")) if k.startswith("SLUICE")]
    for k, v in own:
        if "SECRET" in k and v:
            fail(f"{COMPOSE}: {name}: {k} has a value in the file; secrets come from .env (env_file)")
    assignments += own
    validated_keys.update(k for k, _ in assignments)
    cfg = load_config(f"{COMPOSE} service {name}", assignments)
    if local_env is not None:
        load_config(f".env (local, as service {name} gets it)",
                    list(image_env) + [(k, v) for k, v in local_env if k.startswith("SLUICE")] + own)
    entrypoint = as_argv(svc.get("entrypoint"))
    argv = as_argv(svc.get("command"))
    if entrypoint is not None:
        if not entrypoint or not entrypoint[0].endswith("sluice"):
            fail(f"{COMPOSE}: {name}: entrypoint {entrypoint} is not sluice")
            continue
        argv = entrypoint[1:] + (argv or [])
    if argv is None:
        argv = image_cmd
    role = check_command(f"{COMPOSE} service {name}", argv)
    compose_cfg[name] = (cfg, role, argv)
    if role:
        roles_in_compose.setdefault(role, []).append(name)

# every SLUICE__ named anywhere in the compose file (an unused anchor too) is a real key
raw = []
collect_sluice_vars(compose, raw)
orphans = [(k, interpolate(v)) for k, v in raw if k not in validated_keys]
if orphans:
    load_config(f"{COMPOSE} (SLUICE__ variables no sluice service uses)", orphans)

# roles, health, ordering
for kind in KINDS:
    if not any(compose_cfg[s][1] == "worker" and kind in worker_kinds(compose_cfg[s][2]) for s in compose_cfg):
        fail(f"{COMPOSE}: no worker service consumes kind `{kind}`")
for role in ("api", "fanout", "scheduler", "topics"):
    if role not in roles_in_compose:
        fail(f"{COMPOSE}: no service runs `sluice {role}`")
kafka_version = open("deploy/kafka/VERSION").read().strip()
kafka_images = [s.get("image", "") for s in services.values() if str(s.get("image", "")).startswith("apache/kafka")]
if kafka_images != [f"apache/kafka:{kafka_version}"]:
    fail(f"{COMPOSE}: Kafka image {kafka_images} is not apache/kafka:{kafka_version} (deploy/kafka/VERSION)")
for name, svc in services.items():
    one_shot = str(svc.get("restart", "no")) == "no" and svc.get("restart") is not None
    hc = svc.get("healthcheck")
    if not one_shot:
        if not isinstance(hc, dict) or hc.get("disable") or not hc.get("test"):
            fail(f"{COMPOSE}: long-running service {name} has no healthcheck")
    deps = svc.get("depends_on") or {}
    if isinstance(deps, list):
        deps = {d: {"condition": "service_started"} for d in deps}
    for dep, spec in deps.items():
        if dep not in services:
            fail(f"{COMPOSE}: {name} depends on unknown service {dep}")
            continue
        cond = (spec or {}).get("condition", "service_started")
        if cond not in ("service_started", "service_healthy", "service_completed_successfully"):
            fail(f"{COMPOSE}: {name}: unknown depends_on condition {cond}")
        if cond == "service_completed_successfully" and str(services[dep].get("restart")) != "no":
            fail(f"{COMPOSE}: {name} waits for {dep} to complete, but {dep} is not restart: \"no\"")
        if cond == "service_healthy" and not (services[dep].get("healthcheck") or {}).get("test"):
            fail(f"{COMPOSE}: {name} waits for {dep} to be healthy, but {dep} has no healthcheck")
for name, (cfg, role, argv) in compose_cfg.items():
    if role in ("api", "worker", "fanout", "scheduler"):
        deps = services[name].get("depends_on") or {}
        for dep in ("kafka", "redis"):
            if (deps.get(dep) or {}).get("condition") != "service_healthy":
                fail(f"{COMPOSE}: {name} does not wait for {dep} to be healthy")
        topics_svcs = roles_in_compose.get("topics", [])
        if topics_svcs and not any((deps.get(t) or {}).get("condition") == "service_completed_successfully" for t in topics_svcs):
            fail(f"{COMPOSE}: {name} does not wait for the topics job to complete")
    if cfg is None or role not in LISTEN_KEYS:
        continue
    port = port_of(listen_of(cfg, role))
    test = " ".join(as_argv((services[name].get("healthcheck") or {}).get("test")) or [])
    if f":{port}/" not in test:
        fail(f"{COMPOSE}: {name}'s healthcheck does not probe port {port}, where `sluice {role}` listens")
    listen = listen_of(cfg, role)
    if listen.startswith("127.") or listen.startswith("localhost"):
        fail(f"{COMPOSE}: {name} (`sluice {role}`) listens on {listen}: unreachable from other containers")
    if role in ("worker", "fanout"):
        drain = parse_duration(cfg["worker"]["drain_timeout"])
        grace = compose_duration(services[name].get("stop_grace_period", "10s"))
        if grace <= drain:
            fail(f"{COMPOSE}: {name}: stop_grace_period {grace:.0f}s does not outlast worker.drain_timeout {drain:.0f}s")
    if cfg["topics"]["partitions"] < int(((services[name].get("deploy") or {}).get("replicas") or 1)):
        fail(f"{COMPOSE}: {name}: more replicas than topics.partitions")

# prometheus scrape targets = compose services, on the ports they listen on
prom = (load_all("deploy/prometheus/prometheus.yml") or [{}])[0]
def scrape_targets(job):
    for sc in job.get("static_configs", []):
        yield from sc.get("targets", [])
    # DNS discovery resolves a compose service's replicas: the name and port must still match.
    for sd in job.get("dns_sd_configs", []):
        for name in sd.get("names", []):
            yield f"{name}:{sd.get('port', '')}"

for job in prom.get("scrape_configs", []):
        for target in scrape_targets(job):
            host, _, port = target.rpartition(":")
            if host not in services:
                fail(f"deploy/prometheus/prometheus.yml: target {target} is not a compose service")
            elif host in compose_cfg and compose_cfg[host][0]:
                cfg, role = compose_cfg[host][0], compose_cfg[host][1]
                want = listen_of(cfg, role) if role in LISTEN_KEYS else None
                if want and port_of(want) != int(port):
                    fail(f"deploy/prometheus/prometheus.yml: target {target}, but {host} listens on {want}")
if not errors:
    ok(f"{COMPOSE}: {len(services)} services; sluice services {', '.join(compose_cfg)} load with "
       f"`sluice config` and run valid commands; healthchecks, depends_on, grace periods, Prometheus targets")

# ------------------------------------------------------------------------------ deploy/k8s
K8S = "deploy/k8s"
API = {"Namespace": "v1", "ConfigMap": "v1", "Secret": "v1", "Service": "v1",
       "ServiceAccount": "v1", "Deployment": "apps/v1", "Job": "batch/v1",
       "PodDisruptionBudget": "policy/v1", "ScaledObject": "keda.sh/v1alpha1",
       "TriggerAuthentication": "keda.sh/v1alpha1",
       "Kustomization": "kustomize.config.k8s.io/v1beta1"}
docs = {}
for root, _, files in os.walk(K8S):
    for f in sorted(files):
        path = os.path.join(root, f)
        if not f.endswith((".yaml", ".yml")):
            continue
        docs[path] = load_all(path)
        for d in docs[path]:
            if not isinstance(d, dict):
                fail(f"{path}: a document is not a mapping")
                continue
            kind, api = d.get("kind"), d.get("apiVersion")
            if not kind or not api:
                fail(f"{path}: a document lacks apiVersion or kind")
                continue
            if kind != "Kustomization" and not (d.get("metadata") or {}).get("name"):
                fail(f"{path}: {kind} without metadata.name")
            if kind not in API:
                fail(f"{path}: kind {kind} is not one this check knows; add its apiVersion to API")
            elif API[kind] != api:
                fail(f"{path}: {kind} {d.get('metadata', {}).get('name')} has apiVersion {api}, expected {API[kind]}")

kust_path = os.path.join(K8S, "kustomization.yaml")
kust = (docs.get(kust_path) or [{}])[0]
resources = kust.get("resources") or []
for r in resources:
    if not os.path.exists(os.path.join(K8S, r)):
        fail(f"{kust_path}: resource {r} does not exist")
for path in docs:
    rel = os.path.relpath(path, K8S)
    if rel != "kustomization.yaml" and rel not in resources and not rel.endswith(".example.yaml"):
        fail(f"{path} is not in {kust_path} resources (name it *.example.yaml if that is on purpose)")
    if rel.endswith(".example.yaml") and rel in resources:
        fail(f"{kust_path}: {rel} is an example and must not be applied")

named_doc = lambda d: isinstance(d, dict) and isinstance(d.get("metadata"), dict) and d["metadata"].get("name")
objs = [(p, d) for p, ds in docs.items() if not p.endswith("kustomization.yaml")
        and (os.path.relpath(p, K8S) in resources) for d in ds if named_doc(d)]
examples = [(p, d) for p, ds in docs.items() if p.endswith(".example.yaml") for d in ds if named_doc(d)]
by_kind = {}
for p, d in objs:
    by_kind.setdefault(d.get("kind"), []).append((p, d))

# config sources: generated or literal ConfigMaps, and Secrets (examples give the keys)
configmaps = {}
for gen in kust.get("configMapGenerator") or []:
    pairs = []
    for lit in gen.get("literals") or []:
        k, _, v = lit.partition("=")
        pairs.append((k, v))
    if gen.get("envs") or gen.get("files"):
        fail(f"{kust_path}: configMapGenerator {gen.get('name')}: only `literals` are checked; add support here")
    configmaps[gen["name"]] = pairs
for p, d in by_kind.get("ConfigMap", []):
    configmaps[d["metadata"]["name"]] = [(k, v) for k, v in (d.get("data") or {}).items()]
for name, pairs in configmaps.items():
    for k, v in pairs:
        if "SECRET" in k and k.startswith("SLUICE"):
            fail(f"ConfigMap {name}: {k} is a secret; it belongs in a Secret")
secrets = {}
for p, d in by_kind.get("Secret", []) + [e for e in examples if e[1].get("kind") == "Secret"]:
    data = dict(d.get("stringData") or {})
    data.update({k: DUMMY_SECRET for k in (d.get("data") or {})})
    secrets[d["metadata"]["name"]] = list(data.items())
for p, d in [e for e in examples if e[1].get("kind") == "Secret"]:
    load_config(f"{p}", [(k, v) for k, v in secrets[d["metadata"]["name"]] if k.startswith("SLUICE")])


def container_env(where, c):
    pairs = list(image_env)
    for src in c.get("envFrom") or []:
        if "configMapRef" in src:
            name = src["configMapRef"]["name"]
            if name not in configmaps:
                fail(f"{where}: envFrom ConfigMap {name} is not defined in {K8S}")
            pairs += configmaps.get(name, [])
        elif "secretRef" in src:
            name = src["secretRef"]["name"]
            if name not in secrets:
                fail(f"{where}: envFrom Secret {name} has no example in {K8S}")
            pairs += secrets.get(name, [])
    for e in c.get("env") or []:
        if "value" in e:
            pairs.append((e["name"], e["value"]))
        elif "secretKeyRef" in (e.get("valueFrom") or {}):
            ref = e["valueFrom"]["secretKeyRef"]
            known = dict(secrets.get(ref["name"], []))
            if ref["name"] in secrets and ref["key"] not in known:
                fail(f"{where}: secretKeyRef {ref['name']}/{ref['key']}: no such key in its example")
            pairs.append((e["name"], DUMMY_SECRET if "WEBHOOK__SECRET" in e["name"] else known.get(ref["key"], DUMMY_SECRET)))
        elif "configMapKeyRef" in (e.get("valueFrom") or {}):
            ref = e["valueFrom"]["configMapKeyRef"]
            pairs.append((e["name"], dict(configmaps.get(ref["name"], [])).get(ref["key"], "")))
    return [(k, v) for k, v in pairs if k.startswith("SLUICE")]


def matches(selector, labels):
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


deployments = {}
for p, d in by_kind.get("Deployment", []) + by_kind.get("Job", []):
    kind, name = d["kind"], d["metadata"]["name"]
    where = f"{p}: {kind} {name}"
    spec = d.get("spec") or {}
    tmpl = spec.get("template") or {}
    labels = (tmpl.get("metadata") or {}).get("labels") or {}
    pod = tmpl.get("spec") or {}
    if kind == "Deployment" and not matches((spec.get("selector") or {}).get("matchLabels"), labels):
        fail(f"{where}: spec.selector.matchLabels do not match the pod template's labels")
    if kind == "Job" and pod.get("restartPolicy") not in ("OnFailure", "Never"):
        fail(f"{where}: a Job's restartPolicy must be OnFailure or Never")
    containers = pod.get("containers") or []
    if not containers:
        fail(f"{where}: no containers")
    psc = pod.get("securityContext") or {}
    for c in containers:
        cw = f"{where} container {c.get('name')}"
        if not c.get("name") or not c.get("image"):
            fail(f"{cw}: name and image are required")
        res = c.get("resources") or {}
        for part in ("requests", "limits"):
            for r in ("cpu", "memory"):
                if r not in (res.get(part) or {}):
                    fail(f"{cw}: resources.{part}.{r} missing")
        csc = c.get("securityContext") or {}
        if not (csc.get("runAsNonRoot", psc.get("runAsNonRoot")) is True):
            fail(f"{cw}: runAsNonRoot is not true")
        if csc.get("allowPrivilegeEscalation") is not False:
            fail(f"{cw}: allowPrivilegeEscalation is not false")
        if "ALL" not in ((csc.get("capabilities") or {}).get("drop") or []):
            fail(f"{cw}: capabilities.drop lacks ALL")
        if c.get("command") is not None:
            cmd = [str(x) for x in c["command"]]
            if not cmd or not cmd[0].endswith("sluice"):
                fail(f"{cw}: command {cmd} is not sluice")
                continue
            argv = cmd[1:] + [str(x) for x in c.get("args") or []]
        else:
            argv = [str(x) for x in c.get("args") or []] or image_cmd
        role = check_command(cw, argv)
        env = container_env(cw, c)
        cfg = load_config(cw, env)
        deployments[name] = {"kind": kind, "labels": labels, "containers": containers, "role": role,
                             "argv": argv, "cfg": cfg, "env": env, "where": where}
        ports = {pt.get("name"): pt.get("containerPort") for pt in c.get("ports") or []}
        if cfg and role in LISTEN_KEYS:
            listen = listen_of(cfg, role)
            if listen.startswith("127.") or listen.startswith("localhost"):
                fail(f"{cw}: listens on {listen}: probes and Prometheus cannot reach it")
            for probe in ("livenessProbe", "readinessProbe"):
                pr = c.get(probe)
                if not pr or "httpGet" not in pr:
                    fail(f"{cw}: no {probe} (httpGet)")
                    continue
                port = pr["httpGet"].get("port")
                number = ports.get(port) if isinstance(port, str) else port
                if number is None:
                    fail(f"{cw}: {probe} port {port} is not a container port")
                elif number != port_of(listen):
                    fail(f"{cw}: {probe} probes port {number}, but `sluice {role}` listens on {listen}")
            if role in ("worker", "fanout"):
                drain = parse_duration(cfg["worker"]["drain_timeout"])
                grace = pod.get("terminationGracePeriodSeconds", 30)
                if grace <= drain:
                    fail(f"{where}: terminationGracePeriodSeconds {grace} does not outlast worker.drain_timeout {drain:.0f}s")
        if kind == "Deployment" and role not in LISTEN_KEYS:
            fail(f"{cw}: a Deployment runs `sluice {' '.join(argv)}`, not a long-running role")
        if kind == "Job" and argv[:2] != ["topics", "ensure"]:
            fail(f"{cw}: the Job runs `sluice {' '.join(argv)}`, expected `topics ensure`")

for kind in KINDS:
    if not any(d["role"] == "worker" and kind in worker_kinds(d["argv"]) for d in deployments.values()):
        fail(f"{K8S}: no Deployment runs a worker for kind `{kind}`")
if not any(d["kind"] == "Deployment" and d["role"] == "scheduler" for d in deployments.values()):
    fail(f"{K8S}: no Deployment runs `sluice scheduler` (schedules and the delay ladder)")
if not any(d["kind"] == "Job" and d["argv"][:2] == ["topics", "ensure"] for d in deployments.values()):
    fail(f"{K8S}: no Job runs `sluice topics ensure`")

for p, d in by_kind.get("Service", []):
    sel = (d.get("spec") or {}).get("selector") or {}
    targets = [x for x in deployments.values() if x["kind"] == "Deployment" and matches(sel, x["labels"])]
    if not targets:
        fail(f"{p}: Service {d['metadata']['name']} selects no Deployment's pods")
    for port in (d.get("spec") or {}).get("ports") or []:
        tp = port.get("targetPort", port.get("port"))
        names = {pt.get("name") for t in targets for c in t["containers"] for pt in c.get("ports") or []}
        nums = {pt.get("containerPort") for t in targets for c in t["containers"] for pt in c.get("ports") or []}
        if targets and tp not in names and tp not in nums:
            fail(f"{p}: Service {d['metadata']['name']} targetPort {tp} is not a port of the pods it selects")

for p, d in by_kind.get("PodDisruptionBudget", []):
    spec = d.get("spec") or {}
    if ("minAvailable" in spec) == ("maxUnavailable" in spec):
        fail(f"{p}: PodDisruptionBudget {d['metadata']['name']} needs exactly one of minAvailable, maxUnavailable")
    sel = (spec.get("selector") or {}).get("matchLabels")
    if not any(x["kind"] == "Deployment" and matches(sel, x["labels"]) for x in deployments.values()):
        fail(f"{p}: PodDisruptionBudget {d['metadata']['name']} selects no Deployment's pods")

# KEDA's CRD schema is not available offline: the fields these files may use, from KEDA's docs
# (ScaledObject spec, the `kafka` trigger). Trigger metadata is map[string]string in the CRD.
SO_SPEC = {"scaleTargetRef", "pollingInterval", "cooldownPeriod", "initialCooldownPeriod",
           "idleReplicaCount", "minReplicaCount", "maxReplicaCount", "fallback", "advanced", "triggers"}
SO_TARGET = {"apiVersion", "kind", "name", "envSourceContainerName"}
SO_ADVANCED = {"restoreToOriginalReplicaCount", "horizontalPodAutoscalerConfig", "scalingModifiers"}
SO_TRIGGER = {"type", "name", "metadata", "authenticationRef", "metricType", "useCachedMetrics"}
KAFKA_META = {"bootstrapServers", "consumerGroup", "topic", "lagThreshold", "activationLagThreshold",
              "offsetResetPolicy", "allowIdleConsumers", "scaleToZeroOnInvalidOffset",
              "excludePersistentLag", "limitToPartitionsWithLag", "ensureEvenDistributionOfPartitions",
              "version", "partitionLimitation", "sasl", "saslTokenProvider", "tls", "unsafeSsl", "awsRegion"}


def unknown(where, have, allowed):
    for k in sorted(set(have or {}) - allowed):
        fail(f"{where}: unknown field `{k}`")


scaled = set()
for p, d in by_kind.get("ScaledObject", []):
    name = d["metadata"]["name"]
    spec = d.get("spec") or {}
    unknown(f"{p}: ScaledObject {name} spec", spec, SO_SPEC)
    unknown(f"{p}: ScaledObject {name} spec.scaleTargetRef", spec.get("scaleTargetRef"), SO_TARGET)
    unknown(f"{p}: ScaledObject {name} spec.advanced", spec.get("advanced"), SO_ADVANCED)
    for i, t in enumerate(spec.get("triggers") or []):
        unknown(f"{p}: ScaledObject {name} triggers[{i}]", t, SO_TRIGGER)
        if t.get("type") == "kafka":
            unknown(f"{p}: ScaledObject {name} triggers[{i}].metadata", t.get("metadata"), KAFKA_META)
        for k, v in (t.get("metadata") or {}).items():
            if not isinstance(v, str):
                fail(f"{p}: ScaledObject {name} triggers[{i}].metadata.{k}: {v!r} must be a string (quote it)")
    for k in ("minReplicaCount", "maxReplicaCount", "pollingInterval", "cooldownPeriod"):
        if k in spec and not isinstance(spec[k], int):
            fail(f"{p}: ScaledObject {name} spec.{k} must be an integer")
    target = (spec.get("scaleTargetRef") or {}).get("name")
    dep = deployments.get(target)
    if not dep or dep["kind"] != "Deployment":
        fail(f"{p}: ScaledObject {name} targets {target}, not a Deployment here")
        continue
    scaled.add(target)
    cfg = dep["cfg"]
    if not cfg:
        continue
    if dep["role"] != "worker":
        fail(f"{p}: ScaledObject {name} scales {target}, which is not a worker")
        continue
    kinds = worker_kinds(dep["argv"])
    lanes = worker_lanes(dep["argv"])
    served = {lane_topic(cfg["topics"]["prefix"], k, l) for k in kinds for l in lanes}
    # Retries of every lane share the tiers, read by the workers that serve the normal lane.
    runs_tiers = "normal" in lanes
    parts = cfg["topics"]["partitions"]
    prefix = cfg["topics"]["prefix"]
    if int(spec.get("maxReplicaCount", 100)) > parts:
        fail(f"{p}: ScaledObject {name}: maxReplicaCount {spec.get('maxReplicaCount')} > topics.partitions {parts}: extra consumers would idle")
    if int(spec.get("minReplicaCount", 0)) < 1:
        fail(f"{p}: ScaledObject {name}: minReplicaCount < 1 would strand waiting retries")
    topics = topics_for(dep["env"])
    triggers = spec.get("triggers") or []
    if not triggers:
        fail(f"{p}: ScaledObject {name} has no triggers")
    seen_main = False
    for t in triggers:
        md = t.get("metadata") or {}
        if t.get("type") != "kafka":
            continue
        group = md.get("consumerGroup")
        if group not in {f"{prefix}sluice.worker.{k}" for k in kinds}:
            fail(f"{p}: ScaledObject {name}: consumerGroup {group} is not {target}'s group "
                 f"({', '.join(f'{prefix}sluice.worker.{k}' for k in kinds)})")
        topic = md.get("topic")
        if topic not in topics:
            fail(f"{p}: ScaledObject {name}: topic {topic} is not one `sluice topics list` creates")
        elif not (topic in served or (runs_tiers and any(topic.startswith(f"{prefix}jobs.{k}.retry.") for k in kinds))):
            fail(f"{p}: ScaledObject {name}: topic {topic} is not consumed by {target}")
        seen_main |= topic in served
        if md.get("bootstrapServers") != cfg["kafka"]["bootstrap_servers"]:
            fail(f"{p}: ScaledObject {name}: bootstrapServers {md.get('bootstrapServers')} != "
                 f"{target}'s kafka.bootstrap_servers {cfg['kafka']['bootstrap_servers']}")
        if not str(md.get("lagThreshold", "")).isdigit():
            fail(f"{p}: ScaledObject {name}: lagThreshold must be a number (as a string)")
    if not seen_main:
        fail(f"{p}: ScaledObject {name} has no trigger on a lane {target} serves")
    covered = {(t.get("metadata") or {}).get("topic") for t in triggers}
    for topic in sorted(topics):
        if topic in served and topic not in covered:
            fail(f"{p}: ScaledObject {name}: lane {topic} has no trigger")
        if runs_tiers and any(topic.startswith(f"{prefix}jobs.{k}.retry.") for k in kinds) and topic not in covered:
            fail(f"{p}: ScaledObject {name}: retry tier {topic} (`sluice topics list`) has no trigger")
for name, dep in deployments.items():
    if dep["role"] == "worker" and name not in scaled:
        fail(f"{K8S}: worker Deployment {name} has no ScaledObject")

# every SLUICE__ named anywhere in deploy/k8s was loaded in some context
named = []
for path, ds in docs.items():
    collect_sluice_vars(ds, named)
for gen in kust.get("configMapGenerator") or []:
    for lit in gen.get("literals") or []:
        k, _, v = lit.partition("=")
        named.append((k, v))
loaded = {k for d in deployments.values() for k, _ in d["env"]} | {k for s in secrets.values() for k, _ in s}
orphans = [(k, v) for k, v in named if k not in loaded and k.startswith("SLUICE")]
if orphans:
    load_config(f"{K8S} (SLUICE__ variables no container uses)", orphans)

if rendered:
    out = [d for d in load_all(rendered) if isinstance(d, dict)]
    names = {(d["kind"], d["metadata"]["name"]) for d in out}
    for d in out:
        if d["kind"] != "Namespace" and d["metadata"].get("namespace") != kust.get("namespace"):
            fail(f"rendered {d['kind']} {d['metadata']['name']}: namespace {d['metadata'].get('namespace')}")
        for c in (((d.get("spec") or {}).get("template") or {}).get("spec") or {}).get("containers") or []:
            for src in c.get("envFrom") or []:
                ref = (src.get("configMapRef") or {}).get("name")
                if ref and ("ConfigMap", ref) not in names:
                    fail(f"rendered {d['kind']} {d['metadata']['name']}: ConfigMap {ref} is not rendered")
            if c.get("image") == "sluice":
                fail(f"rendered {d['kind']} {d['metadata']['name']}: image not set by kustomization `images`")
    ok(f"kustomize output: {len(out)} objects, all in namespace {kust.get('namespace')}, references resolve")

if not [e for e in errors if K8S in e or "ScaledObject" in e]:
    ok(f"{K8S}: {sum(len(v) for v in docs.values())} documents in {len(docs)} files; "
       f"{len(deployments)} workloads load with `sluice config`, run valid commands, probe the ports "
       f"they listen on; Services, PDBs and ScaledObjects reference them consistently")

if errors:
    print(f"\n{len(errors)} problem(s) found")
    sys.exit(1)
PY

# ---------------------------------------------------------------------------------------------
# Strict: an unknown field (a typo such as `readinesProbe`) fails, not only a wrong type. The
# oldest Kubernetes these manifests target (1.30) and the newest the validator knows. Custom
# resources (KEDA's ScaledObject) have no schema here: the step above checks their fields.
for k8s_version in 1.30.0 ""; do
  step "kubernetes-validate --strict ${k8s_version:+-k $k8s_version }deploy/k8s${RENDERED:+ and the kustomize output}"
  "$KV" --strict --quiet ${k8s_version:+-k "$k8s_version"} deploy/k8s/*.yaml ${RENDERED:+"$RENDERED"} 2>&1 \
    | grep -v "Couldn't find schema for kind \(ScaledObject\|TriggerAuthentication\|Kustomization\)" || true
  "$KV" --strict --quiet --no-warn ${k8s_version:+-k "$k8s_version"} deploy/k8s/*.yaml ${RENDERED:+"$RENDERED"} >/dev/null 2>&1 \
    || die "kubernetes-validate rejects deploy/k8s (see above)"
  echo "ok: every built-in object matches the Kubernetes ${k8s_version:-$KV_VERSION} schema"
done

# ---------------------------------------------------------------------------------------------
step "promtool check config deploy/prometheus/prometheus.yml"
promtool check config deploy/prometheus/prometheus.yml

[[ -z $kustomize_failed ]] || die "deploy/k8s does not build with kustomize (see above)"

echo
echo "deployment files: all checks passed"
