//! Reference of `shaders/smooth_l1.wgsl`, transcribed from Fast R-CNN's `SmoothL1LossLayer`, in f64.

/// Loss `Σ |w_out · f(w_in · (pred − target))| / num` and the gradient of `pred`
/// `f'(d) · w_in · w_out / num`, with `f(d) = 0.5·σ²·d²` for `|d| < 1/σ²`, else `|d| − 0.5/σ²`.
pub fn smooth_l1(
    pred: &[f32],
    target: &[f32],
    w_in: &[f32],
    w_out: &[f32],
    num: usize,
    sigma: f64,
) -> (f64, Vec<f32>) {
    let len = pred.len();
    assert!(
        [target.len(), w_in.len(), w_out.len()] == [len; 3],
        "smooth_l1: input lengths"
    );
    let s2 = sigma * sigma;
    let num = num as f64;
    let mut loss = 0.0;
    let mut grad = Vec::with_capacity(len);
    for i in 0..len {
        let (wi, wo) = (w_in[i] as f64, w_out[i] as f64);
        let d = wi * (pred[i] as f64 - target[i] as f64);
        let (f, df) = if d.abs() < 1.0 / s2 {
            (0.5 * s2 * d * d, s2 * d)
        } else {
            (d.abs() - 0.5 / s2, d.signum())
        };
        loss += (wo * f).abs();
        grad.push((df * wi * wo / num) as f32);
    }
    (loss / num, grad)
}
