#!/usr/bin/env bash
# Thumbnails per second per core: sluice's thumbnail code (decode, orient, fit into 800×800
# with Lanczos3, JPEG q80) against ImageMagick's `-thumbnail 800x800` (as `mogrify`, one process
# for all files, so process start-up is not counted against it) on the same photo-like
# 4000×3000 JPEGs, both on one thread, same run.
#
#   make bench-images            # 6 images, 3 rounds each
#   IMAGES=4 ROUNDS=2 deploy/bench/images.sh
#
# Prints the figures and writes them to deploy/bench/results/images-<date>.md.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$REPO"
source deploy/kafka/common.sh
IMAGES="${IMAGES:-6}" ROUNDS="${ROUNDS:-3}" SIDE=800 QUALITY=80
TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT
calc() { awk "BEGIN { printf \"%s\", $1 }"; }

# Debian's ImageMagick by its path: a `convert` earlier on PATH may be something else.
CONVERT=/usr/bin/convert MOGRIFY=/usr/bin/mogrify
"$MOGRIFY" -version 2>/dev/null | grep -q ImageMagick ||
  { say "imagemagick: installing (apt)"; apt_install imagemagick; }
"$MOGRIFY" -version | grep -q ImageMagick || die "no ImageMagick at $MOGRIFY after installing it"
say "build: cargo build --release -p sluice-thumbnail --bin thumbnail-bench"
"${CARGO:-cargo}" build --release -p sluice-thumbnail --bin thumbnail-bench
BENCH="$REPO/target/release/thumbnail-bench"

say "generating $IMAGES photo-like 4000x3000 JPEGs (plasma fractals, q90)"
files=()
for i in $(seq 1 "$IMAGES"); do
  "$CONVERT" -seed "$i" -size 4000x3000 plasma:fractal -blur 0x1 -quality 90 "$TMP/photo$i.jpg"
  files+=("$TMP/photo$i.jpg")
done

say "ImageMagick: mogrify -thumbnail ${SIDE}x${SIDE} -quality $QUALITY, one thread, $ROUNDS rounds"
mkdir -p "$TMP/im"
start=$(date +%s.%N)
for _ in $(seq 1 "$ROUNDS"); do
  MAGICK_THREAD_LIMIT=1 "$MOGRIFY" -path "$TMP/im" -thumbnail "${SIDE}x${SIDE}" -quality "$QUALITY" "${files[@]}"
done
end=$(date +%s.%N)
IM_RATE="$(calc "$IMAGES * $ROUNDS / ($end - $start)")"
say "ImageMagick: $IM_RATE thumbnails/s"

say "sluice thumbnail: the same files, one thread, $ROUNDS rounds"
read -r made seconds SLUICE_RATE < <("$BENCH" "$SIDE" "$QUALITY" "$ROUNDS" "${files[@]}")
say "sluice: $made thumbnails in ${seconds}s = $SLUICE_RATE thumbnails/s"
RATIO="$(calc "$SLUICE_RATE / $IM_RATE")"
say "ratio: ${RATIO}x ImageMagick"

mkdir -p deploy/bench/results
OUT="deploy/bench/results/images-$(date +%Y-%m-%d-%H%M%S).md"
cat >"$OUT" <<MD
# bench-images $(date -u +%Y-%m-%dT%H:%MZ)

Command: \`make bench-images\` (IMAGES=$IMAGES, ROUNDS=$ROUNDS), $(nproc) cores, one thread each,
$("$CONVERT" -version | head -1 | cut -c1-60).

| tool | thumbnails/s (one core) | ratio |
|---|---|---|
| ImageMagick \`mogrify -thumbnail ${SIDE}x${SIDE} -quality $QUALITY\` (MAGICK_THREAD_LIMIT=1) | $IM_RATE | 1 |
| sluice-thumbnail (decode, orient, Lanczos3 to ${SIDE}, JPEG q$QUALITY) | $SLUICE_RATE | ${RATIO}x |
MD
say "written: $OUT"
