//! Every (shader, entry point, override constants) the launchers create, collected from the steps of the real
//! graphs of both networks (on wgpu's no-op device, so no GPU is needed) plus the explicit kernel choices the
//! op tests and benchmarks make. `tests/translate.rs` translates them for Metal and DX12; `.ci/tint-check` reads
//! them as JSON (`SSHFACE_PIPELINES_JSON=FILE`) and compiles them with Chrome's Tint.

use std::collections::BTreeMap;
use std::sync::Arc;

use sshface::gpu::{Binding, DType, Graph, StepDesc};
use sshface::ops::conv2d::{conv2d_with, Conv2d, ConvKernel};
use sshface::ops::{Activation, Shader};
use sshface::{AdapterOptions, Detector, GemmTier, GpuContext, Model, Precision, Protocol};

use crate::vgg_support;

/// One pipeline: what `GpuContext::pipeline` is asked to compile.
#[derive(Clone, Debug)]
pub struct Variant {
    pub shader: &'static Shader,
    pub entry: &'static str,
    pub constants: Vec<(&'static str, f64)>,
    /// Where it was first seen: `<graph>: <step label>`.
    pub from: String,
}

/// Variants keyed by shader, entry and constants, so that each pipeline appears once.
#[derive(Default)]
pub struct Variants(BTreeMap<String, Variant>);

impl Variants {
    fn add_steps(&mut self, graph: &str, steps: &[StepDesc]) {
        assert!(!steps.is_empty(), "{graph}: no steps");
        // The steps that compute derived buffers (packed weights) run once at plan build: pipelines all the same.
        let derived = steps
            .iter()
            .flat_map(|s| &s.bindings)
            .filter_map(|b| match b {
                Binding::Derived(d) => Some(&d.step),
                _ => None,
            });
        let all: Vec<&StepDesc> = steps.iter().chain(derived).collect();
        for s in all {
            let key = format!("{}:{}:{:?}", s.shader.key(), s.entry, s.constants);
            self.0.entry(key).or_insert_with(|| Variant {
                shader: s.shader,
                entry: s.entry,
                constants: s.constants.clone(),
                from: format!("{graph}: {}", s.label),
            });
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = &Variant> {
        self.0.values()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// `{"pipelines": [{"shader", "file", "entry", "constants": {name: value}, "from"}], "f16_variants": [..]}`
    /// for `.ci/tint/`. The f16 variants build.rs generates are not files in shaders/ and need `shader-f16`,
    /// which the browser's SwiftShader adapter lacks: they are listed by name, for the check to report.
    pub fn to_json(&self) -> serde_json::Value {
        let f16: std::collections::BTreeSet<String> = self
            .iter()
            .filter(|v| v.shader.half)
            .map(|v| v.shader.key())
            .collect();
        let pipelines: Vec<serde_json::Value> = self
            .iter()
            .filter(|v| !v.shader.half)
            .map(|v| {
                let constants: serde_json::Map<String, serde_json::Value> = v
                    .constants
                    .iter()
                    .map(|(k, x)| (k.to_string(), serde_json::json!(x)))
                    .collect();
                serde_json::json!({
                    "shader": v.shader.name,
                    "file": format!("shaders/{}.wgsl", v.shader.name),
                    "entry": v.entry,
                    "constants": constants,
                    "from": v.from,
                })
            })
            .collect();
        serde_json::json!({ "pipelines": pipelines, "f16_variants": f16 })
    }
}

/// A context on wgpu's no-op device: weights upload and graphs build, nothing runs. `coop` pretends the
/// adapter is a Vulkan one with shader-f16 and cooperative matrices of that size (subgroups of 32), so
/// that the f16 and cooperative-matrix graphs build there too.
fn noop_context(coop: Option<u32>) -> Arc<GpuContext> {
    let opts = AdapterOptions {
        backends: Some(wgpu::Backends::NOOP),
        // Named, so that a WGPU_ADAPTER_NAME set for the GPU tests does not filter it out.
        adapter_name: Some("noop".into()),
        ..AdapterOptions::default()
    };
    let mut ctx =
        GpuContext::new(&opts).expect("wgpu's no-op device (dev-dependency feature `noop`)");
    if let Some(size) = coop {
        ctx.features |= wgpu::Features::SHADER_F16;
        ctx.coop_sizes = vec![size];
        ctx.info.subgroup_min_size = 32;
        ctx.info.subgroup_max_size = 32;
        // The no-op backend runs no shader path; plan as a Vulkan adapter would.
        ctx.info.backend = wgpu::Backend::Vulkan;
    }
    Arc::new(ctx)
}

/// The steps of `det`'s plan for each list of image sizes.
fn add_plans(v: &mut Variants, name: &str, det: &Detector, cases: &[&[[usize; 2]]]) {
    for sizes in cases {
        let steps = det
            .plan_steps(sizes)
            .unwrap_or_else(|e| panic!("{name} {sizes:?}: {e}"));
        v.add_steps(&format!("{name} {sizes:?}"), &steps);
    }
}

/// Both networks at sizes that reach every branch of their graphs: a tiny image (small sort workgroups), a batch of
/// two sizes, a large image (full-size sort workgroups), row strips (small binding budget) and the VGG pyramid.
fn network_variants(ctx: &Arc<GpuContext>, precision: Precision, v: &mut Variants) {
    let retina = |max_binding: Option<u64>| {
        let mut b = Detector::builder()
            .model(Model::RetinafaceMnv2)
            .precision(precision)
            .context(ctx.clone());
        if let Some(m) = max_binding {
            b = b.max_binding(m);
        }
        b.build().expect("retinaface-mnv2 on the no-op device")
    };
    add_plans(
        v,
        "retinaface-mnv2",
        &retina(None),
        &[&[[16, 16]], &[[480, 640], [97, 75]]],
    );
    add_plans(
        v,
        "retinaface-mnv2 strips",
        &retina(Some(256 << 10)),
        &[&[[160, 120]]],
    );
    // Per-anchor rows past the budget: held in chunks, NMS gathers its candidates (gather_rows).
    add_plans(
        v,
        "retinaface-mnv2 row chunks",
        &retina(Some(200_000)),
        &[&[[333, 213]]],
    );

    // The wide GEMM tier, which Auto takes on GPUs (the no-op device is not one): every tile of its table.
    let wide = |model: Model, weights: Option<&std::path::Path>| {
        let mut b = Detector::builder()
            .model(model)
            .precision(precision)
            .gemm(GemmTier::Wide)
            .protocol(Protocol::Scale(1.0))
            .context(ctx.clone());
        if let Some(w) = weights {
            b = b.weights(w);
        }
        b.build().expect("wide GEMM on the no-op device")
    };
    add_plans(
        v,
        "retinaface-mnv2 wide GEMM",
        &wide(Model::RetinafaceMnv2, None),
        &[&[[480, 640]], &[[97, 75]]],
    );

    let weights = vgg_support::write("ssh_vgg16_zero_variants", &vgg_support::zero_weights());
    add_plans(
        v,
        "ssh-vgg16 wide GEMM",
        &wide(Model::SshVgg16, Some(&weights)),
        &[&[[75, 97]], &[[600, 800]]],
    );
    let vgg = |protocol: Protocol, max_binding: u64| {
        Detector::builder()
            .model(Model::SshVgg16)
            .precision(precision)
            .weights(&weights)
            .context(ctx.clone())
            .protocol(protocol)
            .max_binding(max_binding)
            .build()
            .expect("ssh-vgg16 on the no-op device")
    };
    let all = u64::MAX;
    add_plans(
        v,
        "ssh-vgg16 scale 1",
        &vgg(Protocol::Scale(1.0), all),
        &[&[[75, 97], [29, 37]]],
    );
    add_plans(
        v,
        "ssh-vgg16 strips",
        &vgg(Protocol::Scale(1.0), 256 << 10),
        &[&[[75, 97]]],
    );
    add_plans(
        v,
        "ssh-vgg16 pyramid",
        &vgg(Protocol::Pyramid, all),
        &[&[[1, 1000]]],
    );
}

/// The conv2d entries that only explicit kernel choices reach (op tests, benchmarks), on a 1×1 and a depthwise
/// 3×3 conv with bias, residual and an activation, with feature maps of `maps`; the cooperative-matrix
/// kernel on f32 maps too (tests and benchmarks run it there) where the context offers it.
fn explicit_kernel_variants(ctx: &GpuContext, maps: DType, v: &mut Variants) {
    let c = 8;
    let w1 = ctx.weight_as("pw.weight", &vec![0.0; c * c], &[c, c, 1, 1], maps);
    let w3 = ctx.weight_as("dw.weight", &vec![0.0; c * 9], &[c, 1, 3, 3], maps);
    let b = ctx.weight("bias", &vec![0.0; c], &[c]);
    let (w1, w3, b) = (w1.unwrap(), w3.unwrap(), b.unwrap());
    let pointwise = Conv2d::new(w1, Some(b.clone())).with_act(Activation::Relu6);
    let depthwise = Conv2d::new(w3, Some(b))
        .with_groups(c)
        .with_act(Activation::Leaky(0.1));
    let path = sshface::gpu::ConvPath::resolve(Precision::F16Coop, ctx).unwrap_or_default();
    let mut g = Graph::with_numerics(path, maps);
    let x = g.input_as("x", &[1, c, 9, 9], maps).unwrap();
    if path != sshface::gpu::ConvPath::F32 {
        // The cooperative kernel on f32 maps too: tests and benchmarks run it there.
        for dtype in [DType::F32, DType::F16] {
            let mut g = Graph::with_numerics(path, dtype);
            let x = g.input_as("x", &[1, c, 9, 9], dtype).unwrap();
            let mut conv = pointwise.clone();
            conv.weight = ctx
                .weight_as("coop.w", &vec![0.0; c * c], &[c, c, 1, 1], dtype)
                .unwrap();
            conv2d_with(&mut g, "coop", x, &conv, Some(x), None, ConvKernel::Coop).unwrap();
            v.add_steps(&format!("explicit coop {dtype:?}"), g.steps());
        }
    }
    use ConvKernel::*;
    let cases = [
        (
            &pointwise,
            [Gemm, Gemm128, Pointwise, PointwiseDirect, Naive].as_slice(),
        ),
        (
            &depthwise,
            [Gemm, Gemm128, Depthwise, Depthwise3x3, Naive].as_slice(),
        ),
    ];
    for (conv, kernels) in cases {
        for &k in kernels {
            let label = format!("{k:?} {:?}", conv.weight.shape);
            conv2d_with(&mut g, &label, x, conv, Some(x), None, k)
                .unwrap_or_else(|e| panic!("{label}: {e}"));
        }
    }
    v.add_steps("explicit conv2d kernels", g.steps());
    // conv2d_gemm's vec4 entry: a 1×1 conv whose Ho·Wo is a multiple of 4.
    let mut g = Graph::with_numerics(path, maps);
    let x = g.input_as("x", &[1, c, 8, 8], maps).unwrap();
    conv2d_with(&mut g, "gemm v4", x, &pointwise, Some(x), None, Gemm128).unwrap();
    v.add_steps("explicit conv2d_gemm v4", g.steps());
}

/// The anonymisation step in each mode (`Detector::detect_anonymised` appends it after NMS).
fn blur_variants(v: &mut Variants) {
    use sshface::ops::blur::{blur, Blur, BlurMode};
    let mut g = Graph::new();
    let src = g.input("image", &[12]).unwrap();
    let rows = g.input("rows", &[1, 2, 16]).unwrap();
    let counts = g.input("counts", &[1, 2]).unwrap();
    let out = g.tensor("out", &[12]).unwrap();
    for mode in [BlurMode::Gaussian, BlurMode::Pixelate, BlurMode::Solid] {
        let b = Blur {
            mode,
            mask_scale: 1.3,
        };
        blur(
            &mut g,
            &format!("{mode:?}"),
            src,
            [4, 4],
            rows,
            counts,
            0,
            out,
            &b,
        )
        .unwrap();
    }
    v.add_steps("anonymise", g.steps());
}

/// Every pipeline variant; panics naming the graph that fails to build.
pub fn all() -> Variants {
    let mut v = Variants::default();
    let ctx = noop_context(None);
    network_variants(&ctx, Precision::F32, &mut v);
    explicit_kernel_variants(&ctx, DType::F32, &mut v);
    // The stall of the test-only fault injection.
    let mut g = Graph::new();
    let out = g.tensor("stall", &[sshface::ops::spin::WG]).unwrap();
    sshface::ops::spin::spin(&mut g, "stall", out, 1).unwrap();
    v.add_steps("stall", g.steps());
    blur_variants(&mut v);
    grad_variants(&ctx, &mut v);
    for size in [8, 16] {
        let ctx = noop_context(Some(size));
        network_variants(&ctx, Precision::F16, &mut v);
        network_variants(&ctx, Precision::F16Coop, &mut v);
        explicit_kernel_variants(&ctx, DType::F16, &mut v);
    }
    v
}

/// The backward (training) launchers, f32 only: conv input and parameter gradients (with and without the split
/// weight-gradient sum), ReLU and max-pool backward, both losses and the SGD update.
fn grad_variants(ctx: &GpuContext, v: &mut Variants) {
    use sshface::ops::conv2d_grad::{conv2d_grad_input, conv2d_grad_params, weight_grad_splits};
    use sshface::ops::max_pool::Pool;
    use sshface::ops::sgd::{sgd, Multipliers, HYPER_LEN};
    use sshface::ops::softmax2::ClassLayout;
    let c = 8;
    let w = ctx
        .weight("g.w", &vec![0.0; c * c * 9], &[c, c, 3, 3])
        .unwrap();
    let b = ctx.weight("g.b", &vec![0.0; c], &[c]).unwrap();
    let conv = Conv2d::new(w.clone(), Some(b.clone())).with_pad([1, 1, 1, 1]);
    for side in [9, 256] {
        let mut g = Graph::new();
        let shape = [1, c, side, side];
        let x = g.input("x", &shape).unwrap();
        let dy = g.input("dy", &shape).unwrap();
        conv2d_grad_input(&mut g, "dx", dy, &conv, shape).unwrap();
        conv2d_grad_params(&mut g, "dw", x, dy, &conv, None).unwrap();
        let splits = weight_grad_splits(side * side, c, c * 9);
        v.add_steps(
            &format!("conv grad {side}x{side} ({splits} splits)"),
            g.steps(),
        );
    }
    assert!(weight_grad_splits(256 * 256, c, c * 9) > 1, "a split case");
    let mut g = Graph::new();
    let y = g.input("y", &[1, c, 9, 9]).unwrap();
    let dy = g.input("dy", &[1, c, 9, 9]).unwrap();
    sshface::ops::relu_grad::relu_grad(&mut g, "relu", y, dy).unwrap();
    let pool = Pool {
        kernel: [2, 2],
        stride: [2, 2],
        pad: [0, 0],
        ceil_mode: true,
    };
    let dp = g.input("dp", &[1, c, 5, 5]).unwrap();
    sshface::ops::max_pool_grad::max_pool_grad(&mut g, "pool", y, dp, &pool).unwrap();
    let logits = g.input("logits", &[1, 4, 5, 5]).unwrap();
    let labels = g.input("labels", &[1, 2, 5, 5]).unwrap();
    sshface::ops::softmax_loss::softmax_loss(
        &mut g,
        "cls",
        logits,
        labels,
        ClassLayout::ClassMajor,
    )
    .unwrap();
    let t: Vec<_> = (0..4)
        .map(|k| g.input(&format!("l1.{k}"), &[1, 8, 5, 5]).unwrap())
        .collect();
    sshface::ops::smooth_l1::smooth_l1(&mut g, "bbox", [t[0], t[1], t[2], t[3]], 3.0).unwrap();
    let hyper = g.input("hyper", &[HYPER_LEN]).unwrap();
    let grad = g.input("grad", &[c]).unwrap();
    let hist = ctx.weight("g.b.history", &vec![0.0; c], &[c]).unwrap();
    let mult = Multipliers {
        lr: 2.0,
        decay: 0.0,
    };
    sgd(&mut g, "sgd", &b, &hist, grad, hyper, mult, true).unwrap();
    v.add_steps("backward ops", g.steps());
    let mut g = Graph::new();
    let gt = g.input("gt_boxes", &[3, 4]).unwrap();
    let grid = sshface::train::targets::AnchorGrid::ssh(0, [5, 7], [40, 56]);
    sshface::ops::anchor_targets::anchor_targets(&mut g, "m1_targets", gt, 3, &grid).unwrap();
    v.add_steps("anchor targets", g.steps());
    // M1's fusion upsampling backward, cropped by one row and column as on odd feature maps.
    let mut g = Graph::new();
    let dy = g.input("m1_up.grad", &[1, c, 9, 13]).unwrap();
    sshface::ops::upsample_bilinear_grad::upsample_bilinear_grad(&mut g, "m1_up", dy, [1, c, 5, 7])
        .unwrap();
    v.add_steps("upsample bilinear grad", g.steps());
    let mut g = Graph::new();
    let labels = g.input("m1_labels", &[1, 2, 5, 7]).unwrap();
    let prob = g.input("m1_face_prob", &[1, 2, 5, 7]).unwrap();
    let seed = g.input("m1_seed", &[1]).unwrap();
    use sshface::ops::ohem::{sample_anchors, Normalise, Sampling};
    sample_anchors(
        &mut g,
        "m1_ohem",
        labels,
        prob,
        seed,
        Sampling::SSH,
        Normalise::Sampled,
    )
    .unwrap();
    v.add_steps("anchor sampling", g.steps());
}
