//! What `bench` and `profile` share: the network options, a deterministic input image, and seeded random
//! ssh-vgg16 weights, so that its speed can be measured without the authors' model.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use clap::Args;
use image::RgbImage;
use sshface::{Detector, GemmTier, GpuContext, Precision, ShaderChecks};

use super::{GpuArgs, ModelArg};

#[derive(Args)]
pub struct NetArgs {
    /// Network to run.
    #[arg(long, value_enum, default_value = "retinaface-mnv2")]
    model: ModelArg,
    /// Weight file (default: the bundled retinaface-mnv2 weights).
    #[arg(long, conflicts_with = "random_weights")]
    weights: Option<PathBuf>,
    /// ssh-vgg16: seeded random weights of the spec's shapes instead of --weights, for timing without the
    /// authors' model (the same work per layer; the detections mean nothing).
    #[arg(long, value_name = "SEED")]
    random_weights: Option<u64>,
    /// Image size WxH (synthetic noise image, or bench's --image resized to it).
    #[arg(long, default_value = "640x640")]
    pub size: String,
    /// Resize factor (ssh-vgg16: instead of the 1200/1600 single-scale rule; 1: the network sees --size).
    #[arg(long, allow_negative_numbers = true)]
    scale: Option<f64>,
    /// Register-tiled GEMM of the f32 and f16 convolutions: wide (256 threads, 128x128 tiles), small (64
    /// threads) or auto (wide on GPUs, small on CPU adapters). Cooperative-matrix convolutions ignore it.
    #[arg(long, default_value = "auto", value_parser = super::precision::gemm_parser())]
    pub gemm: GemmTier,
    #[command(flatten)]
    gpu: GpuArgs,
}

impl NetArgs {
    /// One detector per precision, all on one device so that they are measured side by side, its shaders compiled
    /// with or without runtime checks.
    pub fn detectors(
        &self,
        precisions: &[Precision],
        checks: ShaderChecks,
    ) -> anyhow::Result<Vec<Detector>> {
        // --scale applies to both models (the library validates it); random weights exist for ssh-vgg16 only.
        if self.model == ModelArg::RetinafaceMnv2 && self.random_weights.is_some() {
            anyhow::bail!("--random-weights applies to --model ssh-vgg16 only");
        }
        parse_size(&self.size)?;
        self.with_weights(|weights| {
            let mut ctx: Option<std::sync::Arc<GpuContext>> = None;
            let mut out = Vec::new();
            for &p in precisions {
                let mut b = Detector::builder()
                    .model(self.model.into())
                    .precision(p)
                    .gemm(self.gemm)
                    .shader_checks(checks);
                b = match &ctx {
                    Some(c) => b.context(c.clone()),
                    None => b.adapter(self.gpu.options()?),
                };
                if let Some(w) = weights {
                    b = b.weights(w);
                }
                if let Some(s) = self.scale {
                    b = b.protocol(sshface::Protocol::Scale(s));
                }
                let det = b.build()?;
                ctx.get_or_insert_with(|| det.context().clone());
                out.push(det);
            }
            Ok(out)
        })
    }

    /// Runs `f` with the weight file to load: `--weights`, the `--random-weights` written to a temporary file
    /// (the loaders read files) that is removed afterwards, or `None` for the bundled weights.
    pub fn with_weights<T>(
        &self,
        f: impl FnOnce(Option<&Path>) -> anyhow::Result<T>,
    ) -> anyhow::Result<T> {
        let Some(seed) = self.random_weights else {
            return f(self.weights.as_deref());
        };
        let path = std::env::temp_dir().join(format!(
            "sshface-random-vgg16-{seed}-{}.safetensors",
            std::process::id()
        ));
        let meta = HashMap::from([("source".to_string(), self.weights_label())]);
        sshface::convert::write_safetensors(&path, &random_vgg16(seed), &meta)?;
        let r = f(Some(&path));
        let _ = std::fs::remove_file(&path);
        r
    }

    pub fn model(&self) -> ModelArg {
        self.model
    }

    /// A GPU context on the adapter these options choose.
    pub fn gpu_context(&self) -> anyhow::Result<GpuContext> {
        Ok(GpuContext::new(&self.gpu.options()?)?)
    }

    /// Where the weights came from, for reports.
    pub fn weights_label(&self) -> String {
        match (&self.weights, self.random_weights) {
            (Some(p), _) => p.display().to_string(),
            (None, Some(seed)) => format!("random (seed {seed})"),
            (None, None) => "bundled".into(),
        }
    }

    pub fn scale(&self) -> Option<f64> {
        self.scale
    }

    pub fn image(&self, path: Option<&PathBuf>) -> anyhow::Result<RgbImage> {
        test_image(&self.size, path)
    }
}

fn parse_size(s: &str) -> anyhow::Result<(u32, u32)> {
    let bad = || anyhow::anyhow!("--size '{s}': expected WxH with W, H ≥ 1, e.g. 640x640");
    let (w, h) = s.split_once('x').ok_or_else(bad)?;
    match (w.parse::<u32>(), h.parse::<u32>()) {
        (Ok(w), Ok(h)) if w > 0 && h > 0 => Ok((w, h)),
        _ => Err(bad()),
    }
}

fn test_image(size: &str, path: Option<&PathBuf>) -> anyhow::Result<RgbImage> {
    let (w, h) = parse_size(size)?;
    if let Some(p) = path {
        let img = sshface::image_io::load_rgb(p)?;
        return Ok(image::imageops::resize(
            &img,
            w,
            h,
            image::imageops::FilterType::Triangle,
        ));
    }
    // Deterministic noise: exercises every layer at full cost without bundling a large image.
    let mut s = 0x9E37_79B9u32;
    Ok(RgbImage::from_fn(w, h, |_, _| {
        s ^= s << 13;
        s ^= s >> 17;
        s ^= s << 5;
        image::Rgb([s as u8, (s >> 8) as u8, (s >> 16) as u8])
    }))
}

/// The 74 tensors of the spec's weight table: He-scaled uniform weights and small biases, with the gains of the
/// network tests (`tests/vgg_support`): conv1_1 scaled down for its 0..255-sized input, and the background
/// logits raised so that only some anchors pass a 0.5 score and NMS does a realistic amount of work.
pub fn random_vgg16(seed: u64) -> Vec<sshface::convert::NamedTensor> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    // xorshift64*: uniform in [-1, 1); statistical quality is irrelevant for timing.
    let mut uniform = move || {
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        let bits = state.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 40;
        bits as f32 / (1u64 << 23) as f32 - 1.0
    };
    let mut out = Vec::new();
    for layer in sshface::convert::caffe::SSH_VGG16_LAYERS.iter() {
        let [o, i, kh, kw] = layer.weight;
        let gain = match layer.name {
            "conv1_1" => 1.0 / 74.0,
            n if n.ends_with("cls_score") => 1.5,
            n if n.ends_with("bbox_pred") => 0.1,
            _ => 1.0,
        };
        let a = 3f32.sqrt() * gain * (2.0 / (i * kh * kw) as f32).sqrt();
        let w = (0..o * i * kh * kw).map(|_| a * uniform()).collect();
        let mut b: Vec<f32> = (0..o).map(|_| 0.05 * uniform()).collect();
        if layer.name.ends_with("cls_score") {
            // Class-major: channels 0 and 1 are the background logits of anchors 0 and 1.
            b[0] += 2.0;
            b[1] += 2.0;
        }
        out.push((format!("{}.weight", layer.name), layer.weight.to_vec(), w));
        out.push((format!("{}.bias", layer.name), vec![o], b));
    }
    out
}
