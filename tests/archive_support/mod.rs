//! Shared by the archive and scheduler tests: the binary without scheduler variables, a run's exit code and
//! stderr, and a folder of small mixed-size fixture images.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const DATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data");

pub fn sshface() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_sshface"));
    for v in [
        "SLURM_ARRAY_TASK_ID",
        "JOB_COMPLETION_INDEX",
        "CUDA_VISIBLE_DEVICES",
    ] {
        c.env_remove(v);
    }
    c
}

pub fn run(c: &mut Command) -> (i32, String, Output) {
    let out = c.output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    (out.status.code().unwrap_or(-1), err, out)
}

/// `n` small images of mixed sizes cut from the test images, plus corrupt ones at the given positions; in name
/// order, so unit k of size 1 is image k.
pub fn fixture(dir: &Path, n: usize, corrupt: &[usize]) -> Vec<PathBuf> {
    std::fs::create_dir_all(dir).unwrap();
    let src = ["astronaut.png", "camera.png", "grace_hopper.jpg"]
        .map(|f| image::open(format!("{DATA}/{f}")).unwrap().to_rgb8());
    (0..n)
        .map(|i| {
            let p = dir.join(format!("{i:03}.png"));
            if corrupt.contains(&i) {
                std::fs::write(&p, b"\x89PNG\r\n\x1a\n truncated").unwrap();
            } else {
                let (w, h) = (160 + 24 * (i as u32 % 4), 200 - 16 * (i as u32 % 3));
                let img = image::imageops::resize(
                    &src[i % 3],
                    w,
                    h,
                    image::imageops::FilterType::Triangle,
                );
                img.save(&p).unwrap();
            }
            p
        })
        .collect()
}
