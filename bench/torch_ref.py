#!/usr/bin/env python3
"""PyTorch eager reference of sshface's two networks, for timing beside `sshface bench --json`.

Both networks are written from the specs (ssh-vgg16.md §3, retinaface-mnv2.md §3-4) with seeded random
weights: the same layers, shapes and arithmetic per image as sshface, from the network input to the raw
head outputs. Preprocessing (decode, resize, normalisation), decode and NMS are not timed here, whereas
sshface's numbers include them: ratios slightly favour PyTorch.

Modes as in issue "Speed": fp32 (TF32 off), tf32 (TF32 on for matmuls and cuDNN convolutions), fp16
(weights and inputs in half precision). Times come from CUDA events around each forward after warm-up,
each followed by a synchronize; on a CPU (dry runs) from perf_counter.

Prints one JSON object per (workload, mode) line on stdout, a readable line per run on stderr.
Usage: torch_ref.py --workload ssh-vgg16:640x640:1 --workload retinaface-mnv2:1920x1088:8 [--modes fp32,tf32,fp16]
"""

import argparse
import json
import os
import statistics
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

# spec numbers the models are checked against: (stored parameters, multiply-accumulates at 640x640).
SPEC = {
    "ssh-vgg16": (19_766_372, 133.33e9),
    "retinaface-mnv2": (1_526_944, 2.7227e9),
}


class Net(nn.Module):
    """Convolutions keyed by the export names of sshface's weight files (spec §7 / §3), so that a real
    safetensors file loads as it is (`load`): `m1.ssh_3x3` is the conv whose weights are `m1.ssh_3x3.weight`."""

    def __init__(self, layers):
        super().__init__()
        # ModuleDict keys cannot hold '.', which export names use as a separator.
        self.convs = nn.ModuleDict({
            name.replace(".", "/"): nn.Conv2d(cin, cout, k, stride, pad, groups=groups)
            for name, cin, cout, k, stride, pad, groups in layers})

    def c(self, name, x):
        return self.convs[name.replace(".", "/")](x)

    def load(self, path):
        from safetensors.torch import load_file
        sd = {f"convs.{k.rsplit('.', 1)[0].replace('.', '/')}.{k.rsplit('.', 1)[1]}": v
              for k, v in load_file(path).items()}
        self.load_state_dict(sd, strict=True)
        return self


def same(name, cin, cout, k=3, stride=1, groups=1):
    return (name, cin, cout, k, stride, k // 2, groups)


def ssh_layers(p, names, cin, x):
    """SSH's module: 3x3 (x) ‖ dimred (x/2) → 5x5 ‖ dimred → 7x7-1 → 7x7, all 3x3 (both specs)."""
    a, d, b, c7a, c7 = (f"{p}.{n}" for n in names)
    h = x // 2
    return [same(a, cin, x), same(d, cin, h), same(b, h, h), same(c7a, h, h), same(c7, h, h)]


def ssh_forward(net, f, p, names, inner):
    a, d, b, c7a, c7 = (f"{p}.{n}" for n in names)
    dd = inner(net.c(d, f))
    return F.relu(torch.cat([net.c(a, f), net.c(b, dd), net.c(c7, inner(net.c(c7a, dd)))], 1))


VGG_SSH = ["ssh_3x3", "ssh_dimred", "ssh_5x5", "ssh_7x7-1", "ssh_7x7"]
VGG_TRUNK = [("conv1_1", 3, 64), ("conv1_2", 64, 64), ("conv2_1", 64, 128), ("conv2_2", 128, 128),
             ("conv3_1", 128, 256), ("conv3_2", 256, 256), ("conv3_3", 256, 256), ("conv4_1", 256, 512),
             ("conv4_2", 512, 512), ("conv4_3", 512, 512), ("conv5_1", 512, 512), ("conv5_2", 512, 512),
             ("conv5_3", 512, 512)]
POOL_AFTER = {"conv1_2", "conv2_2", "conv3_3", "conv4_3"}


class SshVgg16(Net):
    """ssh-vgg16.md §3: VGG-16 to conv5_3 with ceil-mode pools, M1 fusion through the fixed bilinear
    deconvolution and a top-left crop, three detection modules with 1x1 heads (raw scores and deltas)."""

    def __init__(self):
        layers = [same(n, i, o) for n, i, o in VGG_TRUNK]
        layers += [same("conv4_128", 512, 128, 1), same("conv5_128", 512, 128, 1),
                   same("conv4_fuse_final", 128, 128)]
        for m, (cin, x) in enumerate([(128, 128), (512, 256), (512, 256)], 1):
            layers += ssh_layers(f"m{m}", VGG_SSH, cin, x)
            layers += [same(f"m{m}.ssh_cls_score", 2 * x, 4, 1), same(f"m{m}.ssh_bbox_pred", 2 * x, 8, 1)]
        super().__init__(layers)
        w = torch.tensor([0.25, 0.75, 0.75, 0.25])
        # conv5_128_up: never trained, not stored (spec §3.1); a buffer follows .to() but is no parameter.
        self.register_buffer("up", (w[:, None] * w[None, :]).expand(128, 1, 4, 4).contiguous(), persistent=False)

    def forward(self, x):
        pool = lambda t: F.max_pool2d(t, 2, 2, ceil_mode=True)  # noqa: E731
        for n, _, _ in VGG_TRUNK:
            x = F.relu(self.c(n, x))
            if n == "conv4_3":
                c4 = x
            if n in POOL_AFTER:
                x = pool(x)
        c5 = x
        l4 = F.relu(self.c("conv4_128", c4))
        up = F.conv_transpose2d(F.relu(self.c("conv5_128", c5)), self.up, stride=2, padding=1, groups=128)
        m1 = F.relu(self.c("conv4_fuse_final", up[:, :, : l4.shape[2], : l4.shape[3]] + l4))
        out = []
        for m, f in enumerate([m1, c5, pool(c5)], 1):
            o = ssh_forward(self, f, f"m{m}", VGG_SSH, F.relu)
            out += [self.c(f"m{m}.ssh_cls_score", o), self.c(f"m{m}.ssh_bbox_pred", o)]
        return out


# (C_in, C_mid, C_out, dw stride) of MobileNetV2's blocks 0..15 (retinaface-mnv2.md §3.1).
MNV2 = [(32, 32, 16, 1), (16, 96, 24, 2), (24, 144, 24, 1), (24, 144, 32, 2), (32, 192, 32, 1),
        (32, 192, 32, 1), (32, 192, 64, 2), (64, 384, 64, 1), (64, 384, 64, 1), (64, 384, 64, 1),
        (64, 384, 96, 1), (96, 576, 96, 1), (96, 576, 96, 1), (96, 576, 160, 2), (160, 960, 160, 1),
        (160, 960, 160, 1)]
RF_SSH = ["conv3x3", "conv5x5_1", "conv5x5_2", "conv7x7_2", "conv7x7_3"]


def pad_s2(x):
    """retinaface-mnv2.md §4: stride-2 layers pad bottom and right by 1 (TF's explicit Pad), then VALID."""
    return F.pad(x, (0, 1, 0, 1))


class RetinafaceMnv2(Net):
    """retinaface-mnv2.md §3: MobileNetV2 to block 15, FPN with nearest x2 and LeakyReLU 0.1, SSH modules,
    class/bbox/landmark heads flattened and concatenated over the levels as in the graph."""

    def __init__(self):
        layers = [("backbone.conv1", 3, 32, 3, 2, 0, 1)]
        for i, (cin, mid, cout, s) in enumerate(MNV2):
            p = f"backbone.block{i}"
            if i > 0:
                layers.append(same(f"{p}.expand", cin, mid, 1))
            layers += [(f"{p}.dw", mid, mid, 3, s, 0 if s == 2 else 1, mid), same(f"{p}.project", mid, cout, 1)]
        layers += [same(f"fpn.lateral{k}", c, 64, 1) for k, c in ((1, 32), (2, 96), (3, 160))]
        layers += [same("fpn.merge2", 64, 64), same("fpn.merge1", 64, 64)]
        for i in range(3):
            layers += ssh_layers(f"ssh{i}", RF_SSH, 64, 32)
            layers += [same(f"head.{h}.{i}", 64, 2 * k, 1) for h, k in (("class", 2), ("bbox", 4), ("landmark", 10))]
        super().__init__(layers)

    def forward(self, x):
        leaky = lambda t: F.leaky_relu(t, 0.1)  # noqa: E731
        x = F.relu6(self.c("backbone.conv1", pad_s2(x)))
        cs = []
        for i, (cin, _, cout, s) in enumerate(MNV2):
            p = f"backbone.block{i}"
            y = F.relu6(self.c(f"{p}.expand", x)) if i > 0 else x
            y = self.c(f"{p}.project", F.relu6(self.c(f"{p}.dw", pad_s2(y) if s == 2 else y)))
            x = x + y if s == 1 and cin == cout else y
            if i in (5, 12, 15):
                cs.append(x)
        l1, l2, l3 = (leaky(self.c(f"fpn.lateral{k}", c)) for k, c in enumerate(cs, 1))
        p4 = leaky(self.c("fpn.merge2", l2 + F.interpolate(l3, size=l2.shape[2:], mode="nearest")))
        p3 = leaky(self.c("fpn.merge1", l1 + F.interpolate(p4, size=l1.shape[2:], mode="nearest")))
        out = [[], [], []]
        for i, p in enumerate([p3, p4, l3]):
            f = ssh_forward(self, p, f"ssh{i}", RF_SSH, leaky)
            for k, (h, width) in enumerate((("class", 2), ("bbox", 4), ("landmark", 10))):
                out[k].append(self.c(f"head.{h}.{i}", f).permute(0, 2, 3, 1).reshape(f.shape[0], -1, width))
        return [torch.cat(o, 1) for o in out]


MODELS = {"ssh-vgg16": SshVgg16, "retinaface-mnv2": RetinafaceMnv2}


def check_against_spec(name):
    """Parameters and multiply-accumulates at 640x640 against the spec's numbers (a wrong layer shows here).
    On the meta device: shapes only, no memory and no arithmetic."""
    model = MODELS[name]().to("meta")
    params = sum(p.numel() for p in model.parameters())
    macs = [0]

    def hook(mod, inp, out):
        macs[0] += out.numel() * mod.weight[0].numel()

    # The fixed deconvolution (0.8 M MACs at 640x640) is functional and not counted; the spec's total rounds it away.
    hooks = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, nn.Conv2d)]
    with torch.inference_mode():
        model(torch.zeros(1, 3, 640, 640, device="meta"))
    for h in hooks:
        h.remove()
    want_p, want_m = SPEC[name]
    ok = params == want_p and abs(macs[0] - want_m) / want_m < 1e-3
    print(f"torch_ref: {name}: {params:,} parameters (spec {want_p:,}), {macs[0] / 1e9:.2f} G MACs at 640x640 "
          f"(spec {want_m / 1e9:.2f} G){'' if ok else '  MISMATCH'}", file=sys.stderr)
    return ok


def check_golden(device):
    """The bundled retinaface-mnv2 weights on tests/data/astronaut.png against the TF graph's raw heads
    (retinaface-mnv2.md §11: within 2e-4): proves this reference computes the same network. Returns the largest
    absolute difference, or None when PIL or safetensors are missing."""
    try:
        import numpy as np
        from PIL import Image
        from safetensors.numpy import load_file
    except ImportError as e:
        print(f"torch_ref: no golden check ({e})", file=sys.stderr)
        return None
    root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
    set_mode("fp32")
    net = RetinafaceMnv2().load(os.path.join(root, "weights/retinaface_mnv2.safetensors")).to(device).eval()
    rgb = np.asarray(Image.open(os.path.join(root, "tests/data/astronaut.png")).convert("RGB"), dtype=np.float32)
    x = torch.from_numpy(rgb).permute(2, 0, 1)[None].to(device) / 127.5 - 1
    with torch.inference_mode():
        got = net(x)
    want = load_file(os.path.join(root, "tests/data/astronaut.heads.safetensors"))
    diff = max(float(np.abs(g[0].cpu().numpy() - want[k]).max()) for g, k in zip(got, ["cls_logits", "bbox", "landm"]))
    print(f"torch_ref: retinaface-mnv2 with the bundled weights: raw heads within {diff:.2e} of the TF golden "
          f"(spec 2e-4){'' if diff <= 2e-4 else '  MISMATCH'}", file=sys.stderr)
    return diff


def timed(fn, iters, warmup, cuda):
    for _ in range(warmup):
        fn()
    if cuda:
        torch.cuda.synchronize()
    ms = []
    for _ in range(iters):
        if cuda:
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            end.synchronize()
            ms.append(start.elapsed_time(end))
        else:
            t = time.perf_counter()
            fn()
            ms.append((time.perf_counter() - t) * 1e3)
    return statistics.median(ms), min(ms)


def set_mode(mode):
    tf32 = mode == "tf32"
    torch.backends.cuda.matmul.allow_tf32 = tf32
    torch.backends.cudnn.allow_tf32 = tf32


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--workload", action="append", required=True, help="MODEL:WxH:BATCH, repeatable")
    ap.add_argument("--modes", default="fp32,tf32,fp16")
    ap.add_argument("--iters", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--no-cudnn-benchmark", action="store_true", help="keep cuDNN's heuristic algorithm choice")
    ap.add_argument("--no-spec-check", action="store_true")
    ap.add_argument("--check-golden", action="store_true", help="retinaface-mnv2's bundled weights vs the TF heads")
    a = ap.parse_args()
    cuda = a.device.startswith("cuda")
    torch.backends.cudnn.benchmark = not a.no_cudnn_benchmark
    dev_name = torch.cuda.get_device_name() if cuda else "cpu"
    golden = check_golden(a.device) if a.check_golden else None
    torch.manual_seed(0)
    models, checked = {}, {}
    for w in a.workload:
        name, size, batch = w.split(":")
        width, height = (int(v) for v in size.split("x"))
        batch = int(batch)
        if name not in models:
            models[name] = MODELS[name]().to(a.device).eval()
            checked[name] = a.no_spec_check or check_against_spec(name)
        for mode in a.modes.split(","):
            set_mode(mode)
            dtype = torch.float16 if mode == "fp16" else torch.float32
            model = models[name].to(dtype)
            x = torch.randn(batch, 3, height, width, device=a.device, dtype=dtype)
            with torch.inference_mode():
                median, low = timed(lambda: model(x), a.iters, a.warmup, cuda)
            rec = {
                "framework": "pytorch", "torch": torch.__version__, "device": dev_name, "mode": mode,
                "model": name, "width": width, "height": height, "batch": batch, "iters": a.iters,
                "ms_per_batch_median": median, "ms_per_batch_min": low, "ms_per_image": median / batch,
                "images_per_s": 1e3 * batch / median, "cudnn_benchmark": torch.backends.cudnn.benchmark,
                "matches_spec": checked[name], "golden_max_abs_diff": golden,
            }
            print(json.dumps(rec), flush=True)
            print(f"torch_ref: {name} {batch}x{width}x{height} {mode}: {median:.2f} ms/batch, "
                  f"{rec['images_per_s']:.1f} images/s", file=sys.stderr, flush=True)
        models[name].float()


if __name__ == "__main__":
    main()
