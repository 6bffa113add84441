#!/usr/bin/env bash
# Throughput of `sshface detect VIDEO` (issue "Video in, video out", item 4): a synthetic clip made by ffmpeg
# (testsrc2 plus two faces pasted from tests/data, one of them moving) at 640x360 and 1280x720, detected with
# --batch 1 and --batch 8; prints a Markdown table of frames/s (decoding, detection and writing the rows, as
# the per-video summary line reports it) and the wall time of the whole command (GPU start-up included).
#
#   bench/video.sh              on this machine; SSHFACE_WRAP=.ci/runner (the default where .ci/mesa-root's root
#                               exists) runs sshface and ffmpeg on Mesa 26.1's lavapipe inside it
# Environment: SSHFACE_BIN (target/release/sshface), FRAMES (32 per clip), SIZES ("640x360 1280x720"),
# BATCHES ("1 8"), OUT (bench-out/video: clips, logs and the table).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN="${SSHFACE_BIN:-target/release/sshface}"
FRAMES="${FRAMES:-32}"
SIZES="${SIZES:-640x360 1280x720}"
BATCHES="${BATCHES:-1 8}"
OUT="${OUT:-bench-out/video}"
if [ -z "${SSHFACE_WRAP+x}" ] && [ -x /opt/sshface-mesa/usr/bin/dpkg ]; then
    SSHFACE_WRAP=.ci/runner
    source .ci/env
fi
WRAP=(${SSHFACE_WRAP:-})
mkdir -p "$OUT"
[ -x "$BIN" ] || cargo build --release

clip() { # WxH -> $OUT/clip-WxH.mp4 (H.264, 25 fps, AAC tone)
    local w=${1%x*} h=${1#*x} f="$OUT/clip-$1.mp4"
    [ -f "$f" ] && return
    local a=$((h / 3)) g=$((h / 2))
    "${WRAP[@]}" ffmpeg -hide_banner -loglevel error -y \
        -f lavfi -i "testsrc2=size=${w}x${h}:rate=25" -loop 1 -i tests/data/astronaut.png \
        -loop 1 -i tests/data/grace_hopper.jpg -f lavfi -i "sine=frequency=440" \
        -filter_complex "[1:v]crop=150:170:150:35,scale=-2:${a}[a];[2:v]crop=240:280:145:80,scale=-2:${g}[g];\
[0:v][a]overlay=x='mod(t*${w}/4\,W-w)':y=H/10[v];[v][g]overlay=x=W*0.55:y=H*0.4[o]" \
        -map "[o]" -map 3:a -frames:v "$FRAMES" -shortest -c:v libx264 -pix_fmt yuv420p -c:a aac "$f"
}

echo "| clip | batch | frames | frames/s | wall s | faces |" >"$OUT/table.md"
echo "|---|---|---|---|---|---|" >>"$OUT/table.md"
for size in $SIZES; do
    clip "$size"
    for b in $BATCHES; do
        log="$OUT/$size-b$b.log"
        t0=$(date +%s.%N)
        "${WRAP[@]}" "$BIN" detect --batch "$b" "$OUT/clip-$size.mp4" >"$OUT/$size-b$b.jsonl" 2>"$log"
        t1=$(date +%s.%N)
        line=$(grep -E "clip-$size.mp4: [0-9]+ frames" "$log")
        frames=$(sed -E 's/.*: ([0-9]+) frames.*/\1/' <<<"$line")
        fps=$(sed -E 's/.* ([0-9.]+) frames\/s.*/\1/' <<<"$line")
        faces=$(sed -E 's/.* ([0-9]+) faces.*/\1/' <<<"$line")
        printf '| %s | %s | %s | %s | %.1f | %s |\n' "$size" "$b" "$frames" "$fps" "$(echo "$t1 - $t0" | bc)" \
            "$faces" >>"$OUT/table.md"
        echo "video.sh: $line" >&2
    done
done
grep -h -m1 "model" "$OUT"/*-b1.log | head -1 | sed "s/^sshface: //" >"$OUT/adapter.txt"
cat "$OUT/adapter.txt" "$OUT/table.md"
