//! Subcommands: detect, convert, bench, profile, eval, adapters.

mod bench;
mod detect;
mod eval;
mod precision;
mod profile;
mod synthetic;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use sshface::{AdapterOptions, Model};

#[derive(Parser)]
#[command(
    name = "sshface",
    version,
    about = "Face detection with SSH / RetinaFace, every layer a WGSL compute shader on wgpu"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Detect faces; prints a JSON array with one object per image on stdout.
    Detect(detect::DetectArgs),
    /// Convert a released model to sshface's safetensors format.
    Convert(ConvertArgs),
    /// Measure end-to-end detection throughput on synthetic images.
    Bench(bench::BenchArgs),
    /// GPU time of every layer (needs timestamp queries inside passes).
    Profile(profile::ProfileArgs),
    /// Write WIDER FACE result files for an image folder (one sub-folder per event).
    Eval(eval::EvalArgs),
    /// List the GPU adapters wgpu can see.
    Adapters,
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
    /// Backend list: vulkan, metal, dx12, gl (default: $WGPU_BACKEND or all).
    #[arg(long)]
    backend: Option<String>,
    /// Use the adapter whose name contains this (default: $WGPU_ADAPTER_NAME or the best one).
    #[arg(long)]
    adapter: Option<String>,
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
        })
    }
}

#[derive(Args)]
struct ConvertArgs {
    /// Source format.
    #[arg(long, value_enum)]
    from: FromArg,
    /// The released model file (frozen_graph.pb or SSH.caffemodel).
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

/// A progress bar on stderr with rate and ETA; draws nothing when stderr is not a terminal.
fn progress(n: usize) -> ProgressBar {
    let pb = ProgressBar::new(n as u64);
    if let Ok(style) =
        ProgressStyle::with_template("{bar:40} {pos}/{len} images  {per_sec}  ETA {eta}")
    {
        pb.set_style(style);
    }
    pb
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let r = match cli.cmd {
        Cmd::Detect(a) => detect::run(a),
        Cmd::Convert(a) => convert(a),
        Cmd::Bench(a) => bench::bench(a),
        Cmd::Profile(a) => profile::profile(a),
        Cmd::Eval(a) => eval::run(a),
        Cmd::Adapters => adapters(),
    };
    match r {
        Ok(code) => code,
        Err(e) => {
            eprintln!("sshface: error: {e:#}");
            ExitCode::FAILURE
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

fn adapters() -> anyhow::Result<ExitCode> {
    let instance =
        wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle().with_env());
    let list = pollster::block_on(instance.enumerate_adapters(wgpu::Backends::all()));
    if list.is_empty() {
        anyhow::bail!(
            "no GPU adapter found; on Linux without a GPU install mesa-vulkan-drivers (lavapipe)"
        );
    }
    for a in list {
        let i = a.get_info();
        println!(
            "{}\t{:?}\t{:?}\t{} {}",
            i.name, i.backend, i.device_type, i.driver, i.driver_info
        );
    }
    Ok(ExitCode::SUCCESS)
}
