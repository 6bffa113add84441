#!/usr/bin/env bash
# The device script of issue "Speed": on a lent GPU machine, in one run that builds nothing there, times
# `sshface bench --json` (a release binary built here and carried over) and the PyTorch reference
# bench/torch_ref.py on the issue's workloads, and prints one table with the ratios (bench/report.py); and
# `sshface bench --train` at 1600x1200, reported in a table of its own. Every detection workload runs with shader
# runtime checks on and off side by side in one process (`--shader-checks on,off`): the report's off/on column is
# what decides whether `ShaderChecks::Off` becomes the default (README, "Shader runtime checks"). The 640x640
# batch-1 workloads also run on the small GEMM tier (`--gemm small`, f32 and f16), for the report's wide/small
# column: the figure that checks the wide tier `Auto` picks on GPUs, and its tile table.
# Everything it prints and the JSON Lines behind the table are saved under $OUT (default ./bench-out).
#
#   bench/device.sh --prepare   here, once: release build, Vulkan loader debs in .gl/ (the device has none)
#   bench/device.sh             on the device (README, "Benchmarks": the run tool's arguments); 3-5 min on an H200
#   bench/device.sh --dry-run   tiny workloads, one iteration, PyTorch on the CPU if it is installed: checks the
#                               script anywhere; on a machine with .ci/mesa-root's root, sshface runs on lavapipe
#
# Environment: SSHFACE_BIN (target/release/sshface), SSHFACE_PRECISIONS (f32,f16,f16-coop: each compared side by
# side in one process), SSHFACE_CHECKS (on,off: likewise), SSHFACE_ITERS (10), TORCH_ITERS (20), PYTHON
# (python3), SSHFACE_WRAP (a command prefix for sshface; --dry-run defaults it to .ci/runner where that root exists).
set -uo pipefail
cd "$(dirname "$0")/.."

mode="${1:-full}"
case "$mode" in
--prepare)
    set -e
    grep -qx '/.gl/' .git/info/exclude 2>/dev/null || grep -qx '/.gl/' .gitignore || echo /.gl/ >>.git/info/exclude
    cargo build --release
    if ! ls .gl/libvulkan1_*.deb >/dev/null 2>&1; then
        mkdir -p .gl /tmp/amd64/partial
        o=(-oAPT::Architecture=amd64 -oAPT::Architectures=amd64 -oDir::State::Lists=/tmp/amd64)
        apt-get "${o[@]}" update -qq
        (cd .gl && apt-get "${o[@]}" download libvulkan1)
    fi
    ls -la target/release/sshface .gl
    echo "device.sh: ready; run it on the device with carry [\".gl\", \"target/release/sshface\"]"
    exit 0
    ;;
--dry-run | full) ;;
*)
    echo "usage: bench/device.sh [--prepare | --dry-run]" >&2
    exit 2
    ;;
esac

OUT="${OUT:-$PWD/bench-out}"
mkdir -p "$OUT"
BIN="${SSHFACE_BIN:-target/release/sshface}"
PRECISIONS="${SSHFACE_PRECISIONS:-f32,f16,f16-coop}"
CHECKS="${SSHFACE_CHECKS:-on,off}"
PYTHON="${PYTHON:-python3}"
export WGPU_BACKEND="${WGPU_BACKEND:-vulkan}"
[ -x "$BIN" ] || { echo "device.sh: no $BIN: build it here (bench/device.sh --prepare) and carry it" >&2; exit 1; }

if [ "$mode" = --dry-run ]; then
    ITERS=1
    TORCH_ITERS=1
    WARMUP=0
    TORCH_EXTRA=(--device cpu)
    if [ -z "${SSHFACE_WRAP+x}" ] && [ -x /opt/sshface-mesa/usr/bin/dpkg ]; then
        source .ci/env
        SSHFACE_WRAP=.ci/runner
    fi
    VGG=("--size 40x36 --batch 1")
    RF=("--size 64x64 --batch 1,2")
    TRAIN=("--size 48x40 --iters 1")
    GEMM_SIZE="--size 64x64 --batch 1"
    TORCH_W=(ssh-vgg16:40x36:1 retinaface-mnv2:64x64:1 retinaface-mnv2:64x64:2)
else
    ITERS="${SSHFACE_ITERS:-10}"
    TORCH_ITERS="${TORCH_ITERS:-20}"
    WARMUP=5
    TORCH_EXTRA=()
    # The Vulkan loader is not installed there: unpack the carried debs (README of the device tool).
    if ! ldconfig -p | grep -q 'libvulkan.so.1 '; then
        for f in .gl/*.deb; do [ -e "$f" ] && dpkg -x "$f" /; done
        ldconfig
    fi
    # The issue's table: ssh-vgg16 1 and 8 x 640x640, 1 x 1200x1600; retinaface-mnv2 1 and 32 x 640x640, 8 x 1088x1920.
    VGG=("--size 640x640 --batch 1,8" "--size 1600x1200 --batch 1")
    RF=("--size 640x640 --batch 1,32" "--size 1920x1088 --batch 8")
    # Training at the recipe's scale: two 1600x1200 images per iteration (about 3 TFLOP each).
    TRAIN=("--size 1600x1200 --iters 3")
    GEMM_SIZE="--size 640x640 --batch 1"
    TORCH_W=(ssh-vgg16:640x640:1 ssh-vgg16:640x640:8 ssh-vgg16:1600x1200:1
        retinaface-mnv2:640x640:1 retinaface-mnv2:640x640:32 retinaface-mnv2:1920x1088:8)
fi
read -r -a WRAP <<<"${SSHFACE_WRAP:-}"
sf() { "${WRAP[@]}" "$BIN" "$@"; }
# Each timed command gets what is left of 8 minutes (at most its own cap), so one run fits the tool's 10.
DEADLINE=$((SECONDS + 480))
left() { local l=$((DEADLINE - SECONDS)); echo $((l < $1 ? (l > 10 ? l : 10) : $1)); }

main() {
    date -u
    command -v nvidia-smi >/dev/null && nvidia-smi -L
    sf --version
    if ! sf adapters | tee "$OUT/adapters.txt" | grep -qv -i llvmpipe; then
        # No hardware adapter through the loader's default search: point it at the NVIDIA driver's manifest.
        icd=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
        if [ -e "$icd" ]; then
            export VK_DRIVER_FILES="$icd"
            echo "device.sh: VK_DRIVER_FILES=$icd"
            sf adapters | tee "$OUT/adapters.txt"
        fi
    fi
    # A precision the adapter lacks (f16-coop without cooperative matrices) fails the whole list: fall back to f32.
    if ! sf bench --size 32x32 --batch 1 --iters 1 --json --precision "$PRECISIONS" >/dev/null; then
        echo "device.sh: --precision $PRECISIONS is not available here; measuring f32 only"
        PRECISIONS=f32
    fi
    GEMM_PRECISIONS=f32
    if [[ ",$PRECISIONS," == *,f16,* ]]; then GEMM_PRECISIONS=f32,f16; fi

    : >"$OUT/sshface.jsonl"
    bench() {
        echo "device.sh: sshface bench $*"
        # shellcheck disable=SC2068 # the workload strings are split into arguments on purpose
        timeout -k 5 "$(left 150)" "${WRAP[@]}" "$BIN" bench --json $@ \
            >>"$OUT/sshface.jsonl" || echo "device.sh: FAILED (exit $?): sshface bench $*"
    }
    detect=(--iters "$ITERS" --precision "$PRECISIONS" --shader-checks "$CHECKS")
    for w in "${VGG[@]}"; do bench "${detect[@]}" --model ssh-vgg16 --random-weights 1 --scale 1 $w; done
    for w in "${RF[@]}"; do bench "${detect[@]}" --model retinaface-mnv2 $w; done
    # The small GEMM tier beside the default (wide on GPUs); f16-coop is left out, its convs run on matrices.
    small=(--iters "$ITERS" --precision "$GEMM_PRECISIONS" --gemm small)
    bench "${small[@]}" --model ssh-vgg16 --random-weights 1 --scale 1 $GEMM_SIZE
    bench "${small[@]}" --model retinaface-mnv2 $GEMM_SIZE
    # Training runs in f32 at scale 1 and sets its own iterations: no --precision, --scale or $ITERS.
    for w in "${TRAIN[@]}"; do bench --train --model ssh-vgg16 --random-weights 1 $w; done

    : >"$OUT/torch.jsonl"
    if "$PYTHON" -c 'import torch' 2>/dev/null; then
        args=()
        for w in "${TORCH_W[@]}"; do args+=(--workload "$w"); done
        timeout -k 5 "$(left 240)" "$PYTHON" bench/torch_ref.py "${args[@]}" --iters "$TORCH_ITERS" --warmup "$WARMUP" --check-golden \
            "${TORCH_EXTRA[@]}" >"$OUT/torch.jsonl" || echo "device.sh: FAILED (exit $?): torch_ref.py"
    else
        echo "device.sh: $PYTHON has no torch: sshface figures only"
    fi

    echo
    python3 bench/report.py "$OUT/sshface.jsonl" "$OUT/torch.jsonl" | tee "$OUT/report.md"
    date -u
}
main 2>&1 | tee "$OUT/device.log"
