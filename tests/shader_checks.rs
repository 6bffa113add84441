//! Shader runtime checks off (`ShaderChecks::Off`, wgpu's `create_shader_module_trusted` with
//! `ShaderRuntimeChecks::unchecked()`) gives the bits that checks on give: the raw heads and the faces of the golden
//! images, at f32 and (where the adapter has cooperative matrices) f16-coop; the choice reaches wgpu; a clash with a
//! shared context is an error. The conv2d kernel tables with checks off are in tests/ops/unchecked.rs.

mod common;

use std::sync::{Arc, OnceLock};

use sshface::{Detector, Error, GpuContext, Precision, ShaderChecks};

const DATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data");
const IMAGES: [&str; 3] = ["astronaut.png", "camera.png", "grace_hopper.jpg"];

/// One context with checks on and one with them off, opened one after the other by whichever test comes first:
/// devices opened from parallel threads crash Mesa 26.1 lavapipe now and then (SIGSEGV, checks on or off alike).
fn contexts() -> Option<&'static (Arc<GpuContext>, Arc<GpuContext>)> {
    static CTX: OnceLock<Option<(Arc<GpuContext>, Arc<GpuContext>)>> = OnceLock::new();
    CTX.get_or_init(|| {
        common::gpu()?;
        let open = |c| Arc::new(GpuContext::with_shader_checks(&Default::default(), c).unwrap());
        Some((open(ShaderChecks::On), open(ShaderChecks::Off)))
    })
    .as_ref()
}

fn detector(ctx: &Arc<GpuContext>, checks: ShaderChecks, p: Precision) -> Detector {
    Detector::builder()
        .context(ctx.clone())
        .precision(p)
        .shader_checks(checks)
        .build()
        .expect("bundled detector")
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

fn face_bits(f: &sshface::Face) -> Vec<u32> {
    let mut v = bits(&f.bbox);
    v.push(f.score.to_bits());
    v.extend(f.landmarks.iter().flatten().flat_map(|p| bits(p)));
    v
}

fn assert_same_bits((c_on, c_off): &(Arc<GpuContext>, Arc<GpuContext>), p: Precision) {
    let on = detector(c_on, ShaderChecks::On, p);
    let off = detector(c_off, ShaderChecks::Off, p);
    assert_eq!(on.context().unchecked_modules(), 0);
    let images: Vec<_> = IMAGES
        .iter()
        .map(|n| sshface::image_io::load_rgb(format!("{DATA}/{n}")).unwrap())
        .collect();
    for (name, img) in IMAGES.iter().zip(&images) {
        let (a, b) = (on.dump(img).unwrap(), off.dump(img).unwrap());
        assert_eq!(a.len(), b.len());
        for ((na, sa, va), (nb, sb, vb)) in a.iter().zip(&b) {
            assert_eq!((na, sa), (nb, sb));
            assert!(
                bits(va) == bits(vb),
                "{name} {p:?}: head '{na}' differs with checks off"
            );
        }
    }
    // One batch of the three sizes: selection, NMS and the mixed-size plan as well.
    let (fa, fb) = (
        on.detect_batch(&images).unwrap(),
        off.detect_batch(&images).unwrap(),
    );
    assert!(
        fa.iter().any(|f| !f.is_empty()),
        "no faces at all: nothing compared"
    );
    for ((name, a), b) in IMAGES.iter().zip(&fa).zip(&fb) {
        let (a, b): (Vec<_>, Vec<_>) = (
            a.iter().map(face_bits).collect(),
            b.iter().map(face_bits).collect(),
        );
        assert_eq!(a, b, "{name} {p:?}: faces differ with checks off");
    }
    // The unchecked path was taken: every module of the off detector came from create_shader_module_trusted.
    assert!(off.context().unchecked_modules() > 0);
    assert_eq!(on.context().unchecked_modules(), 0);
    assert_eq!(off.shader_checks(), ShaderChecks::Off);
    assert!(
        off.describe().ends_with("shader checks off"),
        "{}",
        off.describe()
    );
    assert!(
        !on.describe().contains("shader checks"),
        "{}",
        on.describe()
    );
}

#[test]
fn golden_images_identical_f32() {
    let Some(ctx) = contexts() else { return };
    assert_same_bits(ctx, Precision::F32);
}

#[test]
fn golden_images_identical_f16_coop() {
    let Some(pair) = contexts() else { return };
    let ctx = &pair.0;
    if ctx.coop_size().is_none() {
        assert!(
            std::env::var("SSHFACE_REQUIRE_COOP").map_or(true, |v| v != "1"),
            "SSHFACE_REQUIRE_COOP=1 but {} has no cooperative matrices",
            ctx.describe()
        );
        eprintln!("SKIP (no cooperative matrices): {}", ctx.describe());
        return;
    }
    assert_same_bits(pair, Precision::F16Coop);
}

#[test]
fn clash_with_shared_context_is_an_error() {
    let Some((ctx, _)) = contexts() else { return };
    let err = Detector::builder()
        .context(ctx.clone())
        .shader_checks(ShaderChecks::Off)
        .build()
        .err()
        .expect("checks off on a context compiled with checks on");
    assert!(
        matches!(&err, Error::Config(m) if m.contains("shader checks off") && m.contains("with_shader_checks")),
        "{err}"
    );
    // The same choice as the context's, or none, shares it.
    let det = Detector::builder()
        .context(ctx.clone())
        .shader_checks(ShaderChecks::On)
        .build()
        .unwrap();
    assert_eq!(det.shader_checks(), ShaderChecks::On);
}

#[test]
fn names_parse_and_bad_ones_are_errors() {
    for c in [ShaderChecks::On, ShaderChecks::Off] {
        assert_eq!(c.name().parse::<ShaderChecks>().unwrap(), c);
    }
    let e = "unchecked".parse::<ShaderChecks>().unwrap_err().to_string();
    assert!(e.contains("'unchecked'") && e.contains("on or off"), "{e}");
    assert_eq!(ShaderChecks::default(), ShaderChecks::On);
}
