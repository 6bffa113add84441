//! Writes a folder of mixed-size images (the test images resized to seeded random sizes), the input of the
//! size-bucket measurement in the README: `cargo run --release --example mixed_folder -- DIR [N] [MIN] [MAX]`.

use rand::{Rng, SeedableRng};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(dir) = args.first() else {
        return Err("usage: mixed_folder DIR [N=200] [MIN_SIDE=96] [MAX_SIDE=480]".into());
    };
    let num = |i: usize, d: u32| args.get(i).map_or(Ok(d), |s| s.parse::<u32>());
    let (n, lo, hi) = (num(1, 200)?, num(2, 96)?, num(3, 480)?);
    let data = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data");
    let sources: Vec<image::RgbImage> = ["astronaut.png", "camera.png", "grace_hopper.jpg"]
        .iter()
        .map(|f| image::open(format!("{data}/{f}")).map(|i| i.to_rgb8()))
        .collect::<Result<_, _>>()?;
    std::fs::create_dir_all(dir)?;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(8);
    for i in 0..n {
        let (w, h) = (rng.random_range(lo..=hi), rng.random_range(lo..=hi));
        let src = &sources[i as usize % sources.len()];
        let img = image::imageops::resize(src, w, h, image::imageops::FilterType::Triangle);
        img.save(format!("{dir}/{i:04}.png"))?;
    }
    eprintln!("wrote {n} images of {lo}..={hi} pixels per side to {dir}");
    Ok(())
}
