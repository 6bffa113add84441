//! WIDER FACE average precision exactly as the official MATLAB toolkit computes it (`eval_tools/`: `read_pred.m`,
//! `norm_score.m`, `evaluation.m`, `VOCap` in `wider_plot.m`):
//! - predictions sorted by score, descending and stable; scores min-max normalised over the whole set;
//! - per image, each prediction in order takes the ground-truth face of largest IoU (`boxoverlap`, +1 pixel
//!   convention; the first on ties); at IoU ≥ 0.5 a face outside the setting's `gt_list` is ignored (the prediction
//!   is then no proposal at all), a listed face not yet recalled becomes recalled;
//! - at each of 1000 thresholds 1 − t/1000: proposals = the non-ignored predictions with score ≥ threshold,
//!   recalled = the faces recalled by the last of them; summed over images (images without faces or predictions
//!   add only their listed faces to the count);
//! - precision = recalled / proposals, recall = recalled / listed faces, AP by VOC's rule with MATLAB's `max`
//!   (which skips the NaN of 0/0).

/// A box as x, y, w, h (the files' and the MAT file's format).
pub type Xywh = [f64; 4];

/// One image of the ground truth: its faces and the 0-based indices of those the setting counts.
pub struct GtImage {
    pub faces: Vec<Xywh>,
    pub keep: Vec<usize>,
}

/// The per-threshold (proposals, recalled) of one image; `preds` sorted by score, descending.
fn image_pr(preds: &[(Xywh, f64)], gt: &GtImage, thresholds: usize) -> Vec<[f64; 2]> {
    let corners = |b: &Xywh| [b[0], b[1], b[0] + b[2], b[1] + b[3]];
    let gts: Vec<[f64; 4]> = gt.faces.iter().map(corners).collect();
    let mut counted = vec![false; gts.len()];
    for &k in &gt.keep {
        if let Some(c) = counted.get_mut(k) {
            *c = true;
        }
    }
    // 0: unmatched, 1: recalled, -1: matched but ignored (MATLAB's recall_list).
    let mut recall = vec![0i8; gts.len()];
    let mut proposal = vec![true; preds.len()];
    let mut pred_recall = vec![0usize; preds.len()];
    let mut recalled = 0;
    for (h, (p, _)) in preds.iter().enumerate() {
        let b = corners(p);
        let mut best = (f64::NEG_INFINITY, 0);
        for (i, g) in gts.iter().enumerate() {
            let o = overlap(g, &b);
            if o > best.0 {
                best = (o, i);
            }
        }
        if best.0 >= 0.5 {
            let i = best.1;
            if !counted[i] {
                recall[i] = -1;
                proposal[h] = false;
            } else if recall[i] == 0 {
                recall[i] = 1;
                recalled += 1;
            }
        }
        pred_recall[h] = recalled;
    }
    // proposals_upto[r]: proposals among the first r + 1 predictions (prefix sums keep this linear per threshold).
    let proposals_upto: Vec<usize> = proposal
        .iter()
        .scan(0, |n, &p| {
            *n += p as usize;
            Some(*n)
        })
        .collect();
    (1..=thresholds)
        .map(|t| {
            let th = 1.0 - t as f64 / thresholds as f64;
            // Sorted descending: the last prediction with score ≥ th ends the prefix of those that pass.
            match preds.partition_point(|(_, s)| *s >= th) {
                0 => [0.0, 0.0],
                n => [proposals_upto[n - 1] as f64, pred_recall[n - 1] as f64],
            }
        })
        .collect()
}

/// `boxoverlap.m`: IoU of corner boxes with inclusive pixel ends (+1), 0 when they do not intersect.
fn overlap(a: &[f64; 4], b: &[f64; 4]) -> f64 {
    let w = a[2].min(b[2]) - a[0].max(b[0]) + 1.0;
    let h = a[3].min(b[3]) - a[1].max(b[1]) + 1.0;
    if w <= 0.0 || h <= 0.0 {
        return 0.0;
    }
    let inter = w * h;
    let aa = (a[2] - a[0] + 1.0) * (a[3] - a[1] + 1.0);
    let ba = (b[2] - b[0] + 1.0) * (b[3] - b[1] + 1.0);
    inter / (aa + ba - inter)
}

/// Sorts each image's predictions by score, descending and stable (MATLAB's `sort(..., 'descend')`), and
/// min-max normalises all scores together (`norm_score.m`).
pub fn normalise(preds: &mut [Vec<(Xywh, f64)>]) {
    let all = preds.iter().flatten().map(|p| p.1);
    let max = all.clone().fold(f32::MIN_POSITIVE as f64, f64::max);
    let min = all.fold(f32::MAX as f64, f64::min);
    for p in preds.iter_mut() {
        p.sort_by(|a, b| b.1.total_cmp(&a.1));
        for d in p.iter_mut() {
            d.1 = (d.1 - min) / (max - min);
        }
    }
}

/// The PR curve (precision, recall) at each threshold and the AP, for normalised, sorted `preds` and the ground
/// truth `gt` (one entry per image, same order).
pub fn evaluate(
    preds: &[Vec<(Xywh, f64)>],
    gt: &[GtImage],
    thresholds: usize,
) -> (Vec<[f64; 2]>, f64) {
    let mut sum = vec![[0.0f64; 2]; thresholds];
    let mut faces = 0usize;
    for (p, g) in preds.iter().zip(gt) {
        faces += g.keep.len();
        if g.faces.is_empty() || p.is_empty() {
            continue;
        }
        for (s, v) in sum.iter_mut().zip(image_pr(p, g, thresholds)) {
            s[0] += v[0];
            s[1] += v[1];
        }
    }
    let curve: Vec<[f64; 2]> = sum
        .iter()
        .map(|s| [s[1] / s[0], s[1] / faces as f64])
        .collect();
    let ap = voc_ap(&curve);
    (curve, ap)
}

/// `VOCap(rec, prec)` with MATLAB's `max`, which returns the other operand when one is NaN.
pub fn voc_ap(curve: &[[f64; 2]]) -> f64 {
    let mut rec = vec![0.0];
    let mut pre = vec![0.0];
    for c in curve {
        pre.push(c[0]);
        rec.push(c[1]);
    }
    rec.push(1.0);
    pre.push(0.0);
    let mmax = |a: f64, b: f64| {
        if a.is_nan() {
            b
        } else if b.is_nan() {
            a
        } else {
            a.max(b)
        }
    };
    for i in (0..pre.len() - 1).rev() {
        pre[i] = mmax(pre[i], pre[i + 1]);
    }
    (1..rec.len())
        .filter(|&i| rec[i] != rec[i - 1])
        .map(|i| (rec[i] - rec[i - 1]) * pre[i])
        .sum()
}

#[cfg(test)]
#[path = "wider_ap_tests.rs"]
mod tests;
