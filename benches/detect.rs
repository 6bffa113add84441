//! End-to-end detection throughput with the bundled retinaface-mnv2: one image per submit against batches of
//! 4 (the baseline is batch 1; criterion reports images/s for both, side by side in one run).
//! Size from `SSHFACE_BENCH_SIZE` (default 640, a WIDER-style input); skips with a reason without an adapter.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use image::RgbImage;
use sshface::Detector;

fn image(side: u32) -> RgbImage {
    let astro = sshface::image_io::load_rgb(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/astronaut.png"
    ))
    .unwrap();
    image::imageops::resize(&astro, side, side, image::imageops::FilterType::Triangle)
}

fn detect(c: &mut Criterion) {
    let det = match Detector::builder().build() {
        Ok(d) => d,
        Err(e) => {
            eprintln!("SKIP detect bench: {e}");
            return;
        }
    };
    let side: u32 = std::env::var("SSHFACE_BENCH_SIZE")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(640);
    let img = image(side);
    let mut g = c.benchmark_group(format!(
        "retinaface-mnv2 {side}x{side} on {}",
        det.context().info.name
    ));
    g.sample_size(10);
    for batch in [1usize, 4] {
        let imgs = vec![img.clone(); batch];
        det.detect_batch(&imgs).unwrap(); // plan and pipelines outside the timing
        g.throughput(Throughput::Elements(batch as u64));
        g.bench_with_input(BenchmarkId::new("batch", batch), &imgs, |b, imgs| {
            b.iter(|| det.detect_batch(imgs).unwrap())
        });
    }
    g.finish();
}

criterion_group!(benches, detect);
criterion_main!(benches);
