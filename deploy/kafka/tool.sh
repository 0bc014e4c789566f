#!/usr/bin/env bash
# Run any Kafka CLI class against the cached classpath, without a Kafka tarball, e.g.
#   deploy/kafka/tool.sh org.apache.kafka.tools.TopicCommand --bootstrap-server 127.0.0.1:9092 --list
#   deploy/kafka/tool.sh org.apache.kafka.tools.ProducerPerformance --topic t --num-records 1000 \
#     --record-size 200 --throughput -1 --producer-props bootstrap.servers=127.0.0.1:9092 acks=all
# Tool logging goes to stderr at WARN so stdout can be parsed. KAFKA_TOOL_HEAP overrides -Xmx.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
source "$REPO/deploy/kafka/common.sh"

(($# >= 1)) || die "usage: deploy/kafka/tool.sh <MainClass> [args...]"
kafka_fetch >&2
exec java -Xmx"${KAFKA_TOOL_HEAP:-512m}" -Djava.awt.headless=true \
  -Dlog4j2.configurationFile="$KAFKA_DIR/tools-log4j2.properties" \
  -cp "$KAFKA_CP" "$@"
