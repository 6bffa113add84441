//! `sshface profile`: GPU time of every step from timestamp queries, totals per kernel, the slowest layers with
//! their FLOPs and achieved GFLOP/s, and optionally a Chrome trace (Perfetto, chrome://tracing).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use serde_json::json;
use sshface::gpu::StepTiming;
use sshface::ShaderChecks;

use super::precision::PrecisionArgs;
use super::synthetic::NetArgs;

#[derive(Args)]
pub struct ProfileArgs {
    #[command(flatten)]
    net: NetArgs,
    #[command(flatten)]
    precision: PrecisionArgs,
    /// Print every step, not only the per-kernel totals and the slowest layers.
    #[arg(long)]
    all: bool,
    /// How many of the slowest steps to list.
    #[arg(long, default_value_t = 15)]
    top: usize,
    /// on: shaders with wgpu's runtime checks (bounds checks, loop bounding); off: without (see README,
    /// "Shader runtime checks").
    #[arg(long, default_value = "on", value_parser = super::precision::checks_parser())]
    shader_checks: ShaderChecks,
    /// Write a Chrome trace (Trace Event Format JSON) of every step to this file.
    #[arg(long, value_name = "FILE")]
    trace: Option<PathBuf>,
}

/// Achieved GFLOP/s (FLOPs per ns), or none for steps that count no FLOPs.
fn gflops_per_s(flops: u64, nanos: f64) -> Option<f64> {
    (flops > 0 && nanos > 0.0).then(|| flops as f64 / nanos)
}

fn show(rate: Option<f64>) -> String {
    rate.map_or("-".into(), |r| format!("{r:.1}"))
}

pub fn profile(a: ProfileArgs) -> anyhow::Result<ExitCode> {
    let det = a
        .net
        .detectors(&[a.precision.precision], a.shader_checks)?
        .remove(0);
    let img = a.net.image(None)?;
    det.detect(&img)?;
    let t = det.profile(&img)?;
    let total: f64 = t.iter().map(|s| s.nanos).sum();
    let flops: u64 = t.iter().map(|s| s.flops).sum();
    println!(
        "model {} size {} on {}: {} steps, {:.3} ms GPU, {:.2} GFLOP",
        det.model().name(),
        a.net.size,
        det.describe(),
        t.len(),
        total / 1e6,
        flops as f64 / 1e9
    );
    if a.all {
        for s in &t {
            println!("{:>10.3} ms  {:<18} {}", s.nanos / 1e6, s.entry, s.label);
        }
    }
    let mut by: BTreeMap<(&str, &str), (f64, usize, u64)> = BTreeMap::new();
    for s in &t {
        let e = by.entry((&s.shader, &s.entry)).or_default();
        e.0 += s.nanos;
        e.1 += 1;
        e.2 += s.flops;
    }
    let mut v: Vec<_> = by.into_iter().collect();
    v.sort_by(|a, b| b.1 .0.total_cmp(&a.1 .0));
    println!(
        "\n{:<16} {:<18} {:>6} {:>10} {:>7} {:>9}",
        "shader", "kernel", "steps", "ms", "share", "GFLOP/s"
    );
    for ((shader, entry), (ns, n, fl)) in v {
        let rate = show(gflops_per_s(fl, ns));
        println!(
            "{shader:<16} {entry:<18} {n:>6} {:>10.3} {:>6.1}% {rate:>9}",
            ns / 1e6,
            100.0 * ns / total.max(1.0)
        );
    }
    let mut slow: Vec<&StepTiming> = t.iter().collect();
    slow.sort_by(|a, b| b.nanos.total_cmp(&a.nanos));
    println!(
        "\nslowest {} steps:\n{:>10} {:>7} {:>9} {:>9}  {:<18} layer",
        a.top.min(slow.len()),
        "ms",
        "share",
        "GFLOP",
        "GFLOP/s",
        "kernel"
    );
    for s in slow.iter().take(a.top) {
        println!(
            "{:>10.3} {:>6.1}% {:>9.3} {:>9}  {:<18} {}",
            s.nanos / 1e6,
            100.0 * s.nanos / total.max(1.0),
            s.flops as f64 / 1e9,
            show(gflops_per_s(s.flops, s.nanos)),
            s.entry,
            s.label
        );
    }
    if let Some(path) = &a.trace {
        let title = format!(
            "sshface {} {} on {}",
            det.model().name(),
            a.net.size,
            det.describe()
        );
        std::fs::write(path, serde_json::to_vec(&chrome_trace(&title, &t))?)
            .map_err(|e| anyhow::anyhow!("--trace {}: {e}", path.display()))?;
        eprintln!(
            "sshface: wrote a trace of {} steps to {}",
            t.len(),
            path.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Trace Event Format: one complete ("X") event per step on one track, times in µs from the first step's start.
fn chrome_trace(title: &str, steps: &[StepTiming]) -> serde_json::Value {
    let mut events = vec![
        json!({"name": "process_name", "ph": "M", "pid": 1, "tid": 1, "args": {"name": title}}),
        json!({"name": "thread_name", "ph": "M", "pid": 1, "tid": 1, "args": {"name": "GPU compute pass"}}),
    ];
    events.extend(steps.iter().enumerate().map(|(i, s)| {
        json!({
            "name": s.label,
            "cat": s.shader,
            "ph": "X",
            "pid": 1,
            "tid": 1,
            "ts": s.start_nanos / 1e3,
            "dur": s.nanos / 1e3,
            "args": {
                "step": i,
                "shader": s.shader,
                "entry": s.entry,
                "flops": s.flops,
                "gflops_per_s": gflops_per_s(s.flops, s.nanos),
            },
        })
    }));
    json!({"traceEvents": events, "displayTimeUnit": "ms"})
}
