# sluice — the two commands that matter: `make run` and `make test`.
SHELL := /bin/bash
.DEFAULT_GOAL := help

CARGO ?= cargo
SLUICE_DEBUG := target/debug/sluice
SLUICE_RELEASE := target/release/sluice
# A development-only signing secret for `make run`; production sets SLUICE__KINDS__WEBHOOK__SECRET.
DEV_WEBHOOK_SECRET := whsec_c2x1aWNlLWRldmVsb3BtZW50LXNlY3JldA==
# `make run`'s API token (every /v1 call needs one): made once by `sluice tokens new --env`, kept
# here (git-ignored) so it stays the same from one run to the next.
DEV_TOKEN_FILE := .cache/dev-token.env

.PHONY: help setup env-up env-down env-clean env-status build run test lint fmt bench-publish bench-retry bench-fanout bench-consume bench-images bench-priority bench-hooks bench-follows

help: ## list the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/:.*## /\t/' | column -t -s $$'\t'

setup: ## install what the project needs (Rust toolchain check, Redis, kcat, Kafka jars, Mailpit)
	@command -v cargo >/dev/null || { echo "cargo is required: install Rust with rustup" >&2; exit 1; }
	@deploy/env.sh fetch

env-up: ## start Kafka (KRaft, 127.0.0.1:9092), Redis (127.0.0.1:6379) and Mailpit (SMTP :1025, API :8025); no-op when running
	@deploy/env.sh up

env-down: ## stop Kafka, Redis, Mailpit (and s3 if started)
	@deploy/env.sh down

env-clean: ## stop everything and delete its data and the logs
	@deploy/env.sh clean

env-status:
	@deploy/env.sh status

build: ## debug build of the sluice binary
	$(CARGO) build --bin sluice

run: env-up build ## the whole pipeline on this machine: env, topics, api + workers + fanout + scheduler (Ctrl-C stops)
	@$(SLUICE_DEBUG) topics ensure
	@[[ -s $(DEV_TOKEN_FILE) ]] || { mkdir -p $(dir $(DEV_TOKEN_FILE)) && \
	  $(SLUICE_DEBUG) tokens new --name dev --scope publish,read,admin --env >$(DEV_TOKEN_FILE).new && \
	  mv $(DEV_TOKEN_FILE).new $(DEV_TOKEN_FILE); }
	@set -a; . ./$(DEV_TOKEN_FILE); set +a; \
	echo; \
	echo "sluice is starting: api http://127.0.0.1:8080 (POST /v1/jobs/{kind}, GET /v1/jobs/{id}),"; \
	echo "  console: http://127.0.0.1:8080/console (log in with the development token below)"; \
	echo "  metrics: api http://127.0.0.1:8080/metrics, worker :9101/metrics, fanout :9102/metrics, scheduler :9103/metrics"; \
	echo "  every /v1 call needs a token; a development one (publish, read, admin; kept in $(DEV_TOKEN_FILE)):"; \
	echo "    export SLUICE_TOKEN=$$SLUICE_TOKEN"; \
	echo "  queue health: curl -H \"Authorization: Bearer \$$SLUICE_TOKEN\" localhost:8080/v1/queue/stats  (or target/debug/sluice stats --watch)"; \
	echo "  try: curl -si -H \"Authorization: Bearer \$$SLUICE_TOKEN\" -XPOST localhost:8080/v1/jobs/noop -d '{\"payload\":\"hello\"}'"; \
	echo "       add \"priority\":\"high\" (lanes high/normal/low), \"delay\":\"90s\" or \"run_at\" (RFC 3339); DELETE /v1/jobs/{id} cancels"; \
	echo "  email: curl -si -H \"Authorization: Bearer \$$SLUICE_TOKEN\" -XPOST localhost:8080/v1/jobs/email -d '{\"to\":[\"ada@example.com\"],\"template\":\"welcome\",\"vars\":{\"name\":\"Ada\",\"team\":\"engines\"}}'"; \
	echo "         what arrived: http://127.0.0.1:8025 (Mailpit's web UI; templates in examples/email-templates)"; \
	echo "  image: curl -s -H \"Authorization: Bearer \$$SLUICE_TOKEN\" -F file=@photo.jpg localhost:8080/v1/uploads/images   (then GET the Location with ?wait=10s;"; \
	echo "         thumbnails at http://127.0.0.1:8080/files/images/<job id>/800.jpg, stored under data/storage, no token needed)"; \
	echo "  more tokens: target/debug/sluice tokens new --name <name> --scope publish (README \"API tokens\")"; \
	echo "  Ctrl-C drains in-flight jobs and stops every role; 'make env-down' stops Kafka, Redis and Mailpit."; \
	echo "  development only: webhooks may go to loopback and private addresses (SLUICE__KINDS__WEBHOOK__ALLOW_PRIVATE=true),"; \
	echo "         so a receiver on this machine works; in production the outgoing guard refuses them."; \
	echo; \
	SLUICE__KINDS__WEBHOOK__SECRET=$${SLUICE__KINDS__WEBHOOK__SECRET:-$(DEV_WEBHOOK_SECRET)} \
	  SLUICE__KINDS__WEBHOOK__ALLOW_PRIVATE=$${SLUICE__KINDS__WEBHOOK__ALLOW_PRIVATE:-true} \
	  SLUICE__KINDS__EMAIL__TEMPLATES=$${SLUICE__KINDS__EMAIL__TEMPLATES:-examples/email-templates} \
	  exec $(SLUICE_DEBUG) all

test: ## start Kafka, Redis and Mailpit if needed, run every test, stop what this target started
	@deploy/test.sh

lint: ## formatting and clippy, warnings are errors
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

fmt:
	$(CARGO) fmt --all

bench-publish: ## 100 000 noop jobs: sluice publish --file vs Kafka's ProducerPerformance vs kcat, uncompressed, lz4, zstd; bytes per record
	@deploy/bench/publish.sh

bench-retry: ## retry timing accuracy: lateness p50/p99 of 1500 retried jobs against their due time
	@deploy/bench/retry.sh

bench-fanout: ## fan-out deliveries/s vs redis-benchmark ZADD -P 16, one post's fan-out p50/p99 and its ratio to Redis's own floor, feed read p99 (REDIS_CLUSTER=1: on the local 3-master Redis Cluster)
	@deploy/bench/fanout.sh

bench-consume: ## worker jobs/s vs Kafka's ConsumerPerformance; http handler jobs/s vs wrk on one endpoint
	@deploy/bench/consume.sh

bench-images: ## thumbnails/s per core vs ImageMagick's -thumbnail on 4000x3000 JPEGs
	@deploy/bench/images.sh

bench-priority: ## high jobs past 100 000 queued low ones: publish->start p50/p99 vs FIFO, low jobs/s kept
	@deploy/bench/priority.sh

bench-hooks: ## verified Stripe webhooks/s (vs noop jobs through the same api) and p99 at 1 000 req/s
	@deploy/bench/hooks.sh

bench-follows: ## follow changes applied/s for a 100 000-follow import, and post->feed p99 during it
	@deploy/bench/follows.sh
