//! blur.wgsl vs reference::blur on noise images: pixelate and solid exact, Gaussian within 1 (the GPU's `exp`
//! rounds differently). Every case also checks the promise users rely on: each face's centre pixel changed, every
//! pixel outside all ellipses byte-identical to the input.

use crate::common::*;
use sshface::gpu::Graph;
use sshface::ops::blur::{blur, Blur, BlurMode};
use sshface::ops::preprocess::pack_rgb8;
use sshface::reference::blur as r;

/// (name, [H, W], batch N, image n, capacity, boxes of image n, count written for image n)
type Case = (
    &'static str,
    [usize; 2],
    usize,
    usize,
    usize,
    Vec<[f32; 4]>,
    u32,
);

fn cases() -> Vec<Case> {
    vec![
        (
            "odd 37x53, two faces",
            [37, 53],
            1,
            0,
            4,
            vec![[5.0, 4.0, 20.0, 22.0], [30.0, 10.0, 47.5, 30.0]],
            2,
        ),
        (
            "face past the border",
            [40, 33],
            1,
            0,
            2,
            vec![[-8.0, 25.0, 14.0, 52.0]],
            1,
        ),
        ("no faces", [9, 11], 1, 0, 3, vec![], 0),
        (
            "batch 2, image 1",
            [30, 30],
            2,
            1,
            3,
            vec![[8.0, 8.0, 20.0, 22.0]],
            1,
        ),
        (
            "count above capacity",
            [24, 31],
            1,
            0,
            2,
            vec![[2.0, 2.0, 10.0, 12.0], [18.0, 6.0, 28.0, 20.0]],
            9,
        ),
        (
            "large face, sigma > 1",
            [96, 80],
            1,
            0,
            1,
            vec![[10.0, 12.0, 70.0, 84.0]],
            1,
        ),
    ]
}

fn run(ctx: &sshface::GpuContext, c: &Case, b: &Blur) -> (Vec<u8>, Vec<u8>) {
    let (_, [h, w], n_img, n, cap, ref boxes, count) = *c;
    let img: Vec<u8> = rand_vec(h as u64 * 31 + w as u64, h * w * 3, 0.0, 255.99)
        .iter()
        .map(|v| *v as u8)
        .collect();
    let mut rows = vec![0f32; n_img * cap * 16];
    // Other images' rows and rows past the count hold boxes over the whole image: reading them would blur all.
    for (k, row) in rows.chunks_mut(16).enumerate() {
        row[..4].copy_from_slice(&[0.0, 0.0, w as f32, h as f32]);
        row[15] = k as f32;
    }
    for (k, bx) in boxes.iter().enumerate() {
        rows[(n * cap + k) * 16..][..4].copy_from_slice(bx);
    }
    let mut counts = vec![cap as u32; 2 * n_img];
    counts[2 * n] = count;
    counts[2 * n + 1] = 0;
    let words = (h * w * 3).div_ceil(4);
    let packed: Vec<f32> = pack_rgb8(&img).into_iter().map(f32::from_bits).collect();
    let counts_f: Vec<f32> = counts.into_iter().map(f32::from_bits).collect();
    let mut g = Graph::new();
    let src = g.input("src", &[words]).unwrap();
    let tr = g.input("rows", &[n_img, cap, 16]).unwrap();
    let tc = g.input("counts", &[n_img, 2]).unwrap();
    let out = g.tensor("out", &[words]).unwrap();
    g.mark_output(out);
    blur(&mut g, c.0, src, [h, w], tr, tc, n, out, b).unwrap();
    let got = run_graph_bytes(
        ctx,
        g,
        &[(src, &packed), (tr, &rows), (tc, &counts_f)],
        &[out],
    );
    let kept = &boxes[..boxes.len().min(cap).min(count as usize)];
    let want = r::blur(&img, [h, w], kept, b);
    (got[0][..h * w * 3].to_vec(), want)
}

#[test]
fn blur_cases() {
    let Some(ctx) = gpu() else { return };
    for mode in [BlurMode::Gaussian, BlurMode::Pixelate, BlurMode::Solid] {
        for scale in [1.0, 1.3] {
            let b = Blur {
                mode,
                mask_scale: scale,
            };
            for c in cases() {
                let name = format!("{} [{mode:?}, mask scale {scale}]", c.0);
                let (got, want) = run(ctx, &c, &b);
                let (h, w) = (c.1[0], c.1[1]);
                let img: Vec<u8> = rand_vec(h as u64 * 31 + w as u64, h * w * 3, 0.0, 255.99)
                    .iter()
                    .map(|v| *v as u8)
                    .collect();
                let atol = if mode == BlurMode::Gaussian { 1 } else { 0 };
                for (i, (g, wv)) in got.iter().zip(&want).enumerate() {
                    let d = (*g as i32 - *wv as i32).abs();
                    assert!(
                        d <= atol,
                        "{name}: byte {i} (pixel {}, {}) got {g} want {wv}",
                        (i / 3) % w,
                        i / 3 / w
                    );
                }
                let kept = &c.5[..c.5.len().min(c.4).min(c.6 as usize)];
                // Most pixels of every face change (pixelate keeps each cell's sample pixel; noise rarely blurs to
                // itself).
                for (k, _) in kept.iter().enumerate() {
                    let (mut inside, mut changed) = (0, 0);
                    for y in 0..h {
                        for x in 0..w {
                            if r::face_at(kept, scale, x, y) == Some(k) {
                                let p = (y * w + x) * 3;
                                inside += 1;
                                changed += (got[p..p + 3] != img[p..p + 3]) as usize;
                            }
                        }
                    }
                    assert!(
                        inside > 0 && changed * 4 >= inside * 3,
                        "{name}: face {k}: {changed} of {inside} pixels changed"
                    );
                }
                for y in 0..h {
                    for x in 0..w {
                        if r::face_at(kept, scale, x, y).is_none() {
                            let p = (y * w + x) * 3;
                            assert_eq!(
                                got[p..p + 3],
                                img[p..p + 3],
                                "{name}: pixel ({x}, {y}) outside every face changed"
                            );
                        }
                    }
                }
            }
        }
    }
}

#[test]
fn blur_rejects_wrong_sizes() {
    let mut g = Graph::new();
    let src = g.input("image0", &[10]).unwrap();
    let rows = g.input("rows", &[1, 4, 16]).unwrap();
    let counts = g.input("counts", &[1, 2]).unwrap();
    let out = g.tensor("out", &[10]).unwrap();
    let e = blur(
        &mut g,
        "anonymise0.0",
        src,
        [4, 5],
        rows,
        counts,
        0,
        out,
        &Blur::default(),
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("anonymise0.0") && e.contains("'image0'") && e.contains("15"),
        "{e}"
    );
    let e = blur(
        &mut g,
        "anonymise0.1",
        src,
        [1, 13],
        rows,
        counts,
        1,
        out,
        &Blur::default(),
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("image 1 < N"), "{e}");
}
