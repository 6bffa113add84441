#!/usr/bin/env python3
"""One table from `sshface bench --json` and `torch_ref.py` output (both JSON Lines): every workload's
times for each sshface precision and PyTorch mode, the ratios of sshface's time to PyTorch's, and the
targets of issue "Speed"; `bench --train` lines ("mode": "train") in a small table of their own. Lines run with
`--shader-checks off` get a column of their time over the same precision's with checks on (same workload, same
run), and a summary; the targets count checks-on lines only (the default). Lines of the wide GEMM tier get a
column of their time over the small tier's (`--gemm small`, same workload, precision and checks), and the targets
leave out such explicit small-tier lines.
Standard library only, so it runs wherever the device script does.

Usage: report.py SSHFACE.jsonl [TORCH.jsonl]
"""

import json
import sys


def load(path):
    try:
        with open(path) as f:
            return [json.loads(line) for line in f if line.strip().startswith("{")]
    except FileNotFoundError:
        return []


def key(r):
    return (r["model"], r["batch"], r["width"], r["height"])


def label(k):
    model, batch, w, h = k
    return f"{model} {batch}x{w}x{h}"


def row(cells):
    print("| " + " | ".join(cells) + " |")


def fmt_ms(ms):
    return f"{ms:.2f}" if ms < 100 else f"{ms:.0f}"


def checks(r):
    # Lines written before --shader-checks existed ran with the checks on.
    return r.get("shader_checks", "on")


def off_on(ours):
    """{id(off record): off/on time ratio} against the checks-on record of the same workload and precision."""
    out = {}
    for rs in ours.values():
        on = {r["conv_path"]: r for r in rs if checks(r) == "on"}
        for r in rs:
            if checks(r) == "off" and r["conv_path"] in on:
                out[id(r)] = r["ms_per_batch_median"] / on[r["conv_path"]]["ms_per_batch_median"]
    return out


def gemm(r):
    # Lines written before --gemm existed do not say; they are never paired.
    return r.get("gemm")


def wide_small(ours):
    """{id(wide record): wide/small time ratio} against the small-tier record of the same workload, precision and
    checks (`--gemm small` beside the default wide tier)."""
    out = {}
    for rs in ours.values():
        small = {(r["precision"], checks(r)): r for r in rs if gemm(r) == "small"}
        for r in rs:
            s = small.get((r["precision"], checks(r)))
            if gemm(r) == "wide" and s is not None:
                out[id(r)] = r["ms_per_batch_median"] / s["ms_per_batch_median"]
    return out


def defaults(ours):
    """What runs by default: checks on, and not the small GEMM tier where the wide one ran beside it."""
    out = {}
    for k, rs in ours.items():
        wide = {r["precision"] for r in rs if gemm(r) == "wide"}
        out[k] = [r for r in rs if checks(r) == "on" and not (gemm(r) == "small" and r["precision"] in wide)]
    return out


def targets(ours, torch):
    """Issue "Speed" targets: (what, met or None when not measured, the figures)."""
    def best(k):
        rs = ours.get(k, [])
        return min(rs, key=lambda r: r["ms_per_batch_median"]) if rs else None

    def prec(k, p):
        return next((r for r in ours.get(k, []) if r["precision"] == p), None)

    def pt(k, mode):
        return torch.get(k, {}).get(mode)

    def check(what, a, b, ok):
        if a is None or b is None:
            return (what, None, "not measured")
        return (what, ok(a, b), f"{a['ms_per_batch_median']:.2f} ms vs {b['ms_per_batch_median']:.2f} ms "
                                 f"({a['ms_per_batch_median'] / b['ms_per_batch_median']:.2f}x)")

    vgg1, vgg8 = ("ssh-vgg16", 1, 640, 640), ("ssh-vgg16", 8, 640, 640)
    rf1, rf32 = ("retinaface-mnv2", 1, 640, 640), ("retinaface-mnv2", 32, 640, 640)
    out = [
        check("ssh-vgg16 1x640x640 f32 time <= 1.0x PyTorch fp32", prec(vgg1, "f32"), pt(vgg1, "fp32"),
              lambda a, b: a["ms_per_batch_median"] <= b["ms_per_batch_median"]),
        check("ssh-vgg16 1x640x640 f16-coop time <= 1.0x PyTorch TF32", prec(vgg1, "f16-coop"), pt(vgg1, "tf32"),
              lambda a, b: a["ms_per_batch_median"] <= b["ms_per_batch_median"]),
        check("ssh-vgg16 8x640x640 throughput >= PyTorch fp32 (fastest precision)", best(vgg8), pt(vgg8, "fp32"),
              lambda a, b: a["images_per_s"] >= b["images_per_s"]),
        check("retinaface-mnv2 32x640x640 throughput >= 1.35x PyTorch fp32 (fastest precision)", best(rf32),
              pt(rf32, "fp32"), lambda a, b: a["images_per_s"] >= 1.35 * b["images_per_s"]),
    ]
    b = best(rf1)
    out.append(("retinaface-mnv2 1x640x640 <= 2.0 ms (fastest precision)",
                None if b is None else b["ms_per_batch_median"] <= 2.0,
                "not measured" if b is None else f"{b['ms_per_batch_median']:.2f} ms ({b['precision']})"))
    return out


def training(train):
    """`bench --train` lines: an iteration is iter_size forward and backward passes and one SGD update."""
    if not train:
        return
    print("\nTraining (ssh-vgg16, f32, scale 1; an iteration: iter_size images forward and backward, one update):\n")
    row(["workload", "freeze", "sampling", "ms/iteration", "images/s", "GFLOP/image", "GFLOP/s", "GPU MiB"])
    row(["---"] * 8)
    for r in train:
        row([f"{r['iter_size']}x{r['width']}x{r['height']}, {r['faces']} faces", r["freeze"], r["sampling"],
             fmt_ms(r["ms_per_iter_median"]), f"{r['images_per_s']:.2f}", f"{r['gflop_per_image']:.1f}",
             f"{r['gflop_per_s']:.1f}", f"{r['gpu_memory_bytes'] / 2**20:.0f}"])


def main():
    if len(sys.argv) not in (2, 3):
        sys.exit(__doc__)
    ours = {}
    # Files written before `bench --train` existed have no "mode": every line is detection.
    records = load(sys.argv[1])
    train = [r for r in records if r.get("mode") == "train"]
    for r in records:
        if r.get("mode") != "train":
            ours.setdefault(key(r), []).append(r)
    torch = {}
    for r in load(sys.argv[2]) if len(sys.argv) == 3 else []:
        torch.setdefault(key(r), {})[r["mode"]] = r
    if not ours and not torch and not train:
        sys.exit("report: no records")
    ratios = off_on(ours)
    tiers = wide_small(ours)
    modes = sorted({m for d in torch.values() for m in d}, key=["fp32", "tf32", "fp16"].index)
    first = next(iter(ours.values()), train or [None])[0]
    if first:
        vgg = next((r[0] for k, r in ours.items() if k[0] == "ssh-vgg16"), train[0] if train else None)
        print(f"sshface {first['sshface']} ({first['build']} build) on {first['adapter']} "
              f"({first['backend']}, driver {first['driver']}); weights of ssh-vgg16: "
              f"{vgg['weights'] if vgg else '-'}")
    pt_any = next((r for d in torch.values() for r in d.values()), None)
    if pt_any:
        print(f"PyTorch {pt_any['torch']} eager on {pt_any['device']}, cudnn.benchmark "
              f"{pt_any['cudnn_benchmark']}, spec check {'ok' if pt_any['matches_spec'] else 'MISMATCH'}, "
              f"golden heads max diff {pt_any.get('golden_max_abs_diff')}; network only (sshface: end to end)")
    print()
    row(["workload", "engine", "ms/batch", "min ms", "images/s", "GPU MiB"] + [f"x PyTorch {m}" for m in modes]
        + (["off/on"] if ratios else []) + (["wide/small"] if tiers else []))
    row(["---"] * (6 + len(modes) + bool(ratios) + bool(tiers)))
    for k in sorted(set(ours) | set(torch)):
        pt = torch.get(k, {})
        times = lambda r: [label(k), fmt_ms(r["ms_per_batch_median"]), fmt_ms(r["ms_per_batch_min"]),  # noqa: E731
                           f"{r['images_per_s']:.1f}"]
        for r in ours.get(k, []):
            ratios_pt = [f"{r['ms_per_batch_median'] / pt[m]['ms_per_batch_median']:.2f}" if m in pt else "-"
                         for m in modes]
            t = times(r)
            engine = f"sshface {r['conv_path']}" + (", checks off" if checks(r) == "off" else "")
            extra = [f"{ratios[id(r)]:.3f}" if id(r) in ratios else "-"] if ratios else []
            extra += [f"{tiers[id(r)]:.3f}" if id(r) in tiers else "-"] if tiers else []
            row(t[:1] + [engine] + t[1:] + [f"{r['gpu_memory_bytes'] / 2**20:.0f}"] + ratios_pt + extra)
        for m in modes:
            if m in pt:
                t = times(pt[m])
                row(t[:1] + [f"PyTorch {m}"] + t[1:] + ["-"] * (1 + len(modes) + bool(ratios) + bool(tiers)))
    print("\n'x PyTorch M': sshface's time per batch divided by PyTorch's in mode M (below 1: sshface is faster).")
    if ratios:
        rs = sorted(ratios.values())
        print(f"'off/on': time with shader runtime checks off over checks on, same workload and precision, side by "
              f"side in one process (below 1: off is faster). {len(rs)} pairs: median {rs[len(rs) // 2]:.3f}, "
              f"range {rs[0]:.3f}-{rs[-1]:.3f}.")
    if tiers:
        rs = sorted(tiers.values())
        print(f"'wide/small': time on the wide GEMM tier (256 threads, 128x128 tiles, packed weights; the default on "
              f"GPUs) over the small one (--gemm small), same workload, precision and checks (below 1: wide is "
              f"faster). {len(rs)} pairs: median {rs[len(rs) // 2]:.3f}, range {rs[0]:.3f}-{rs[-1]:.3f}.")
    training(train)
    print("\nTargets (issue \"Speed\"):")
    for what, ok, figures in targets(defaults(ours), torch):
        print(f"  {'n/a ' if ok is None else 'PASS' if ok else 'FAIL'}  {what}: {figures}")


if __name__ == "__main__":
    main()
