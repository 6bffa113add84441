//! Subcommands: detect, convert, bench, profile, eval, adapters.

mod bench;
mod bench_train;
mod buckets;
mod crops;
mod detect;
mod draw;
mod eval;
mod eval_ap;
mod font;
mod memstats;
use sshface::readers::mat;
mod output;
mod pr_plot;
mod precision;
mod profile;
mod status;
mod synthetic;
mod train;
mod train_recipe;
mod train_step;
mod units;
mod video;
mod visual;
mod wider_ap;
mod worker;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use sshface::{AdapterOptions, Model};

#[derive(Parser)]
#[command(
    name = "sshface",
    version,
    about = "Face detection with SSH / RetinaFace, every layer a WGSL compute shader on wgpu",
    after_help = status::HELP
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Detect faces: a JSON array on stdout, or one file per work unit with --out (resumable, shardable);
    /// coordinates in original pixels after EXIF orientation.
    Detect(Box<detect::DetectArgs>),
    /// Convert a released model to sshface's safetensors format.
    Convert(ConvertArgs),
    /// Measure end-to-end detection throughput on synthetic images.
    Bench(bench::BenchArgs),
    /// GPU time of every layer (needs timestamp queries inside passes).
    Profile(profile::ProfileArgs),
    /// Write WIDER FACE result files for an image folder (one sub-folder per event).
    Eval(eval::EvalArgs),
    /// List the GPU adapters wgpu can see, with the indexes of --device N.
    Adapters(AdaptersArgs),
    /// Train ssh-vgg16 on WIDER FACE (or boxes in its format) with the authors' recipe.
    Train(Box<train::TrainArgs>),
    /// One forward and backward on one image: losses and every parameter's gradient (`--dump-grads`).
    TrainStep(Box<train_step::TrainStepArgs>),
}

#[derive(Clone, Copy, PartialEq, ValueEnum)]
enum ModelArg {
    #[value(name = "retinaface-mnv2")]
    RetinafaceMnv2,
    #[value(name = "ssh-vgg16")]
    SshVgg16,
}

impl From<ModelArg> for Model {
    fn from(m: ModelArg) -> Model {
        match m {
            ModelArg::RetinafaceMnv2 => Model::RetinafaceMnv2,
            ModelArg::SshVgg16 => Model::SshVgg16,
        }
    }
}

/// Options shared by every command that opens a GPU.
#[derive(Args, Clone)]
struct GpuArgs {
    /// Backend list: vulkan, metal, dx12, gl (default: $WGPU_BACKEND, else Vulkan/Metal/DX12, else GL when those
    /// have no adapter).
    #[arg(long)]
    backend: Option<String>,
    /// Use the adapter whose name contains this (default: $WGPU_ADAPTER_NAME or the best one).
    #[arg(long)]
    adapter: Option<String>,
    /// auto: the GPU named by CUDA_VISIBLE_DEVICES, ROCR_VISIBLE_DEVICES/HIP_VISIBLE_DEVICES or ZE_AFFINITY_MASK
    /// when set, else the best; N: adapter N of `sshface adapters`.
    #[arg(long, default_value = "auto", conflicts_with = "adapter")]
    device: String,
}

impl GpuArgs {
    fn options(&self) -> anyhow::Result<AdapterOptions> {
        Ok(AdapterOptions {
            backends: self
                .backend
                .as_deref()
                .map(AdapterOptions::parse_backends)
                .transpose()?,
            adapter_name: self.adapter.clone(),
            device: self.device.parse()?,
        })
    }
}

#[derive(Args)]
struct AdaptersArgs {
    /// Backend list: vulkan, metal, dx12, gl (default: as detect: $WGPU_BACKEND, else Vulkan/Metal/DX12, else GL).
    #[arg(long)]
    backend: Option<String>,
}

#[derive(Args)]
struct ConvertArgs {
    /// Source format.
    #[arg(long, value_enum)]
    from: FromArg,
    /// The released model file (frozen_graph.pb, SSH.caffemodel, or the ImageNet VGG_ILSVRC_16_layers.caffemodel
    /// that `sshface train --init` starts from).
    input: PathBuf,
    /// Output safetensors file.
    #[arg(short, long)]
    output: PathBuf,
}

#[derive(Clone, Copy, ValueEnum)]
enum FromArg {
    #[value(name = "tf-graph")]
    TfGraph,
    Caffe,
}

/// Prints a line on stderr without tearing the progress bar.
macro_rules! say {
    ($pb:expr, $($t:tt)*) => {
        $pb.suspend(|| eprintln!($($t)*))
    };
}
pub(crate) use say;

/// A progress bar on stderr with rate and ETA; draws nothing when stderr is not a terminal. `{msg}` counts the
/// images read (decoded) ahead of the detected ones, and the steady tick redraws while a batch runs, so the bar moves
/// per image although results come a batch at a time.
fn progress(n: usize) -> ProgressBar {
    let pb = ProgressBar::new(n as u64);
    if let Ok(style) =
        ProgressStyle::with_template("{bar:40} {pos}/{len} images  {msg}  {per_sec}  ETA {eta}")
    {
        pb.set_style(style);
    }
    pb.enable_steady_tick(std::time::Duration::from_millis(250));
    pb
}

/// A threshold in [0, 1]; the error names the flag (clap adds it) and the range.
fn unit_interval(s: &str) -> Result<f32, String> {
    let v: f32 = s.parse().map_err(|_| format!("'{s}' is not a number"))?;
    if (0.0..=1.0).contains(&v) {
        Ok(v)
    } else {
        Err(format!("{v} is outside [0, 1]"))
    }
}

/// Output cut short by a closed pipe (`sshface … | head`) ends the process quietly, as for other Unix tools:
/// Rust ignores SIGPIPE, which turns every later `println!` into a panic (exit 101).
fn quiet_on_broken_pipe() {
    #[cfg(unix)]
    // SAFETY: restores the default disposition of one signal before any thread starts; no handler runs Rust code.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

pub fn main() -> ExitCode {
    quiet_on_broken_pipe();
    let cli = Cli::parse();
    let r = match cli.cmd {
        Cmd::Detect(a) => detect::run(*a),
        Cmd::Convert(a) => convert(a),
        Cmd::Bench(a) => bench::bench(a),
        Cmd::Profile(a) => profile::profile(a),
        Cmd::Eval(a) => eval::run(a),
        Cmd::Adapters(a) => adapters(a),
        Cmd::Train(a) => train::train(*a),
        Cmd::TrainStep(a) => train_step::train_step(*a),
    };
    match r {
        Ok(code) => code,
        Err(e) => {
            eprintln!("sshface: error: {e:#}");
            status::exit(status::code_for(&e))
        }
    }
}

fn convert(a: ConvertArgs) -> anyhow::Result<ExitCode> {
    let from = match a.from {
        FromArg::TfGraph => sshface::convert::Format::TfGraph,
        FromArg::Caffe => sshface::convert::Format::Caffe,
    };
    let report = sshface::convert::convert_file(from, &a.input, &a.output)?;
    eprintln!(
        "sshface: wrote {}: {} tensors, {} values from {} (sha256 {})",
        report.output.display(),
        report.tensors,
        report.values,
        report.input.display(),
        report.input_sha256
    );
    for n in &report.notes {
        eprintln!("sshface: {n}");
    }
    Ok(ExitCode::SUCCESS)
}

/// One line per adapter: the index of `--device N`, name, backend, type, PCI bus id, driver; `*` marks the one
/// `--device auto` opens here.
fn adapters(a: AdaptersArgs) -> anyhow::Result<ExitCode> {
    let opts = AdapterOptions {
        backends: a
            .backend
            .as_deref()
            .map(AdapterOptions::parse_backends)
            .transpose()?,
        ..AdapterOptions::default()
    };
    let (backends, list) = opts.enumerate()?;
    if list.is_empty() {
        return Err(sshface::Error::NoAdapter {
            tried: format!("backends {backends:?}; adapters present: none"),
        }
        .into());
    }
    let infos: Vec<wgpu::AdapterInfo> = list.iter().map(|a| a.get_info()).collect();
    println!("#\tname\tbackend\ttype\tpci bus\tdriver (* = what detect opens with --device auto)");
    let facts: Vec<_> = infos
        .iter()
        .map(sshface::gpu::select::AdapterFacts::from)
        .collect();
    let name = std::env::var("WGPU_ADAPTER_NAME")
        .ok()
        .filter(|s| !s.is_empty());
    let visible = sshface::gpu::select::visible_from_env(|k| std::env::var(k).ok());
    let auto = sshface::gpu::select::choose(
        &facts,
        name.as_deref(),
        Default::default(),
        visible.as_ref(),
    );
    for (k, i) in infos.iter().enumerate() {
        let mark = if auto.as_ref().is_ok_and(|c| c.index == k) {
            "*"
        } else {
            " "
        };
        let bus = if i.device_pci_bus_id.is_empty() {
            "-"
        } else {
            &i.device_pci_bus_id
        };
        println!(
            "{k}{mark}\t{}\t{:?}\t{:?}\t{bus}\t{} {}",
            i.name, i.backend, i.device_type, i.driver, i.driver_info
        );
    }
    match auto {
        Ok(c) => eprintln!(
            "sshface: --device auto opens adapter {} ({})",
            c.index, c.why
        ),
        Err(e) => eprintln!("sshface: --device auto fails here: {e}"),
    }
    Ok(ExitCode::SUCCESS)
}
