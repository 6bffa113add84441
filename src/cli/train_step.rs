//! `sshface train-step`: one forward and backward pass on one image with every loss and gradient written out, the
//! hook for checking the backward pass against another implementation.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context;
use clap::Args;
use sshface::convert::{write_safetensors, NamedTensor};
use sshface::model::weights::WeightFile;
use sshface::train::trainer::TrainScale;
use sshface::GpuContext;

use super::train_recipe::{losses_json, timing, RecipeArgs};
use super::GpuArgs;

#[derive(Args)]
pub struct TrainStepArgs {
    /// Weights: an ssh-vgg16 checkpoint (or an ImageNet VGG-16, new layers then drawn from --seed).
    #[arg(long)]
    weights: PathBuf,
    /// The image.
    #[arg(long)]
    image: PathBuf,
    /// JSON array of [x1, y1, x2, y2] face boxes in original-image pixels.
    #[arg(long)]
    boxes: PathBuf,
    /// Resize factor (default: the training rule, shortest side 1200, longest at most 1600).
    #[arg(long)]
    scale: Option<f64>,
    /// Accepted for symmetry with `train`: train-step never flips.
    #[arg(long)]
    no_flip: bool,
    /// Losses (`loss.m1.cls` …) and gradients (`<parameter>.grad`) as safetensors.
    #[arg(long)]
    dump_grads: Option<PathBuf>,
    #[command(flatten)]
    recipe: RecipeArgs,
    #[command(flatten)]
    gpu: GpuArgs,
}

/// The network input size of an image of `hw` resized by `scale` (as the step computes it).
fn scale_hw(hw: [usize; 2], scale: f64) -> Option<[usize; 2]> {
    sshface::ops::preprocess::resized_size(hw, scale).ok()
}

/// Reads a JSON array of `[x1, y1, x2, y2]` boxes.
fn read_boxes(path: &Path) -> anyhow::Result<Vec<[f32; 4]>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading boxes {}", path.display()))?;
    let v: Vec<[f32; 4]> = serde_json::from_str(&text).with_context(|| {
        format!(
            "boxes {}: expected a JSON array of [x1, y1, x2, y2] arrays",
            path.display()
        )
    })?;
    Ok(v)
}

pub fn train_step(a: TrainStepArgs) -> anyhow::Result<ExitCode> {
    let ctx = GpuContext::new(&a.gpu.options()?)?;
    let wf = WeightFile::open(&a.weights)?;
    let (rgb, hw) = sshface::image_io::load_rgb8(&a.image)?;
    let boxes = read_boxes(&a.boxes)?;
    let scale = a.scale.unwrap_or_else(|| TrainScale::default().factor(hw));
    let mut t = a.recipe.trainer(&ctx, &wf)?;
    let t0 = Instant::now();
    let l = t.accumulate(&ctx, &rgb, hw, &boxes, scale)?;
    let secs = t0.elapsed().as_secs_f64();
    if let Some(out) = &a.dump_grads {
        let mut tensors: Vec<NamedTensor> = Vec::new();
        for k in 0..3 {
            tensors.push((format!("loss.m{}.cls", k + 1), vec![], vec![l.cls[k]]));
            tensors.push((format!("loss.m{}.bbox", k + 1), vec![], vec![l.bbox[k]]));
        }
        tensors.extend(t.net.gradients(&ctx)?);
        let meta = HashMap::from([
            ("image".to_string(), a.image.display().to_string()),
            ("scale".to_string(), scale.to_string()),
        ]);
        write_safetensors(out, &tensors, &meta)?;
        eprintln!(
            "sshface: wrote {} ({} tensors)",
            out.display(),
            tensors.len()
        );
    }
    println!(
        "{}",
        serde_json::json!({"image": a.image.display().to_string(), "scale": scale, "input_hw": scale_hw(hw, scale), "losses": losses_json(&l), "time": timing(secs, l.flops)})
    );
    Ok(ExitCode::SUCCESS)
}
