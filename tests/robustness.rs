//! Robustness at archive scale: GPU faults end in errors (never a hang or a panic), non-finite numbers never reach
//! a result, and one detector shared by threads equals sequential calls. The long run is `tests/long_run.rs`.

mod common;

#[path = "robustness/faults.rs"]
mod faults;
#[path = "robustness/faults_cli.rs"]
mod faults_cli;
#[path = "robustness/nonfinite.rs"]
mod nonfinite;
#[path = "robustness/threads.rs"]
mod threads;

use sshface::image::{imageops, RgbImage};

pub const DATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data");

/// A test image resized to `w`×`h` (the astronaut, the camera man or Grace Hopper by `which`).
pub fn sample(which: usize, w: u32, h: u32) -> RgbImage {
    let name = ["astronaut.png", "camera.png", "grace_hopper.jpg"][which % 3];
    let img = sshface::image_io::load_rgb(format!("{DATA}/{name}")).unwrap();
    imageops::resize(&img, w, h, imageops::FilterType::Triangle)
}
