//! ssh-vgg16 protocol rules on hand-computed cases (CPU) and the loading checks of the weight file (GPU device
//! needed by `build()`; skipped with the printed reason without an adapter).

mod common;
mod vgg_support;

use std::sync::Arc;

use sshface::convert::NamedTensor;
use sshface::{AdapterOptions, Detector, GpuContext, Model, Protocol};

/// The single-scale rule (spec §6) on hand-computed cases.
#[test]
fn scale_for_rule() {
    use sshface::model::ssh_vgg16::scale_for;
    // 1200/512 = 2.34375; 600·2.34375 = 1406.25 ≤ 1600.
    assert_eq!(scale_for([512, 600], 1200.0, 1600.0), 2.34375);
    assert_eq!(scale_for([600, 512], 1200.0, 1600.0), 2.34375);
    // 1200/1000·3000 = 3600 > 1600 → 1600/3000.
    assert_eq!(scale_for([1000, 3000], 1200.0, 1600.0), 1600.0 / 3000.0);
    // 1200/800 = 1.5; 1.5·1067 = 1600.5 exactly; numpy rounds half to even → 1600, not > 1600: s stays 1.5
    // (rounding half away from zero would give 1601 and s = 1600/1067).
    assert_eq!(scale_for([800, 1067], 1200.0, 1600.0), 1.5);
    // 1.5·1068 = 1602 > 1600.
    assert_eq!(scale_for([800, 1068], 1200.0, 1600.0), 1600.0 / 1068.0);
    // 1200/900·1200 is 1600 up to one ulp; the rounding keeps it ≤ 1600.
    assert_eq!(scale_for([900, 1200], 1200.0, 1600.0), 1200.0 / 900.0);
    // Square and tiny images scale up freely as long as the long side fits.
    assert_eq!(scale_for([100, 100], 1200.0, 1600.0), 12.0);
    assert_eq!(Protocol::SingleScale.scales([512, 600]), vec![2.34375]);
    assert_eq!(Protocol::Scale(0.7).scales([512, 600]), vec![0.7]);
}

/// Pyramid levels (spec §6, R:`SSH/test.py`: `float(scale) / 800 * base_scale`), compared bit for bit.
#[test]
fn pyramid_scales_rule() {
    use sshface::model::ssh_vgg16::pyramid_scales;
    // 800/500 = 1.6, 700·1.6 = 1120 ≤ 1200.
    assert_eq!(
        pyramid_scales([500, 700]),
        [0.625 * 1.6, 1.6, 1.5 * 1.6, 2.0 * 1.6]
    );
    // 800/100·1000 = 8000 > 1200 → base 1.2; 1200/800·1.2 = 1.7999999999999998 (not 1.2·1200/800 = 1.8).
    assert_eq!(
        pyramid_scales([100, 1000]),
        [0.75, 1.2, 1.7999999999999998, 2.4]
    );
    assert_eq!(
        pyramid_scales([1, 1000]),
        [0.75, 1.2, 1.7999999999999998, 2.4]
    );
    // 800/600 = 4/3: 800·4/3 > 1200? 1066.67 ≤ 1200 → base 4/3.
    let b = 800.0 / 600.0;
    assert_eq!(pyramid_scales([600, 800]), [0.625 * b, b, 1.5 * b, 2.0 * b]);
    assert_eq!(
        Protocol::Pyramid.scales([600, 800]),
        pyramid_scales([600, 800]).to_vec()
    );
}

/// A weight file that is not exactly the spec's 74 tensors fails `build()` naming the tensor.
#[test]
fn bad_weight_files_fail_to_build() {
    if common::gpu().is_none() {
        return;
    }
    let ctx = Arc::new(GpuContext::new(&AdapterOptions::default()).unwrap());
    let build = |name: &str, t: &[NamedTensor]| {
        let path = vgg_support::write(name, t);
        let r = Detector::builder()
            .model(Model::SshVgg16)
            .weights(&path)
            .context(ctx.clone())
            .build();
        std::fs::remove_file(&path).unwrap();
        match r {
            Ok(_) => panic!("{name}: build succeeded"),
            Err(e) => e.to_string(),
        }
    };
    let zeros = vgg_support::zero_weights();
    assert_eq!(zeros.len(), 74);

    let missing: Vec<NamedTensor> = zeros
        .iter()
        .filter(|t| t.0 != "conv4_128.bias")
        .cloned()
        .collect();
    let e = build("vgg_missing", &missing);
    assert!(
        e.contains("missing tensor conv4_128.bias") && e.contains("[128]"),
        "{e}"
    );

    let mut wrong = zeros.clone();
    let t = wrong
        .iter_mut()
        .find(|t| t.0 == "m2.ssh_3x3.weight")
        .unwrap();
    *t = (t.0.clone(), vec![256, 512, 1, 1], vec![0.0; 256 * 512]);
    let e = build("vgg_wrong_shape", &wrong);
    assert!(
        e.contains("m2.ssh_3x3.weight: expected shape [256, 512, 3, 3], found [256, 512, 1, 1]"),
        "{e}"
    );

    let mut extra = zeros.clone();
    extra.push((
        "conv5_128_up.weight".into(),
        vec![128, 1, 4, 4],
        vec![0.0; 128 * 16],
    ));
    let e = build("vgg_extra", &extra);
    assert!(
        e.contains("conv5_128_up.weight") && e.contains("unknown"),
        "{e}"
    );

    // The untouched file builds.
    let path = vgg_support::write("vgg_zeros", &zeros);
    Detector::builder()
        .model(Model::SshVgg16)
        .weights(&path)
        .context(ctx.clone())
        .build()
        .unwrap();
    std::fs::remove_file(&path).unwrap();
}
