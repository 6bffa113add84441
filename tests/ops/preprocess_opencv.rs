//! preprocess.wgsl and reference::preprocess against cv2.resize itself: tests/data/opencv_resize.safetensors,
//! made by tests/data/opencv_resize.py with opencv-python-headless 5.0.0 (IPP off, see that script).

use crate::common::*;
use crate::preprocess::{run, ssh};
use sshface::gpu::plan::bytes_to_f32;
use sshface::gpu::DType;
use sshface::reference::preprocess as reference;

/// (rgb, H×W, scale, OpenCV's [3, H', W'] output) of a case in tests/data/opencv_resize.safetensors.
type OpencvCase = (Vec<u8>, [usize; 2], f64, Vec<f32>);

fn opencv_cases() -> Vec<OpencvCase> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/opencv_resize.safetensors"
    );
    let bytes = std::fs::read(path).unwrap();
    let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    let meta = meta.metadata().as_ref().unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let n: usize = meta["cases"].parse().unwrap();
    (0..n)
        .map(|i| {
            let rgb = st.tensor(&format!("rgb{i}")).unwrap();
            let hw = [rgb.shape()[0], rgb.shape()[1]];
            let s: f64 = meta[&format!("scale{i}")].parse().unwrap();
            let out = bytes_to_f32(st.tensor(&format!("bgr{i}")).unwrap().data());
            (rgb.data().to_vec(), hw, s, out)
        })
        .collect()
}

#[test]
fn reference_matches_opencv() {
    let cases = opencv_cases();
    assert_eq!(cases.len(), 12);
    for (rgb, hw, s, want) in cases {
        let p = ssh(hw, s);
        let got = reference::preprocess(&rgb, &p, p.resized_hw);
        // atol 0: the same f32 operations in the same order as OpenCV's generic path (observed bit-exact).
        assert_close(&format!("opencv {hw:?} s={s}"), &got.data, &want, 0.0, 0.0);
    }
}

#[test]
fn gpu_matches_opencv() {
    let Some(ctx) = gpu() else { return };
    for (rgb, hw, s, want) in opencv_cases() {
        let p = ssh(hw, s);
        let got = run(ctx, &[(&rgb, &p)], p.resized_hw, DType::F32);
        // 1e-4: as the case table.
        assert_close(
            &format!("gpu vs opencv {hw:?} s={s}"),
            &got,
            &want,
            1e-4,
            0.0,
        );
    }
}
