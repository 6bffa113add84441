//! Central finite differences and the data they need: values on a coarse binary grid, so that `x ± h` is
//! exact in f32 and the difference quotient sees exactly the step it divides by.

use crate::common::rng;
use rand::seq::SliceRandom;
use rand::Rng;

/// Uniform values in [lo, hi) rounded to multiples of 2^-`bits` (exact in f32 for |v| < 2^(24 − bits)).
pub fn grid_vec(seed: u64, n: usize, lo: f32, hi: f32, bits: i32) -> Vec<f32> {
    let q = 2f32.powi(bits);
    let mut r = rng(seed);
    (0..n)
        .map(|_| (r.random_range(lo..hi) * q).round() / q)
        .collect()
}

/// `n` distinct values (multiples of 1/64 in about [−n/128, n/128)) in random order: no ties, gaps 1/64.
pub fn distinct_vec(seed: u64, n: usize) -> Vec<f32> {
    let mut v: Vec<f32> = (0..n).map(|i| (i as f32 - n as f32 / 2.0) / 64.0).collect();
    v.shuffle(&mut rng(seed));
    v
}

/// Indices to probe: all of `0..n` when n ≤ `max`, else `max` random ones (seeded).
pub fn probe(seed: u64, n: usize, max: usize) -> Vec<usize> {
    let mut all: Vec<usize> = (0..n).collect();
    if n > max {
        all.shuffle(&mut rng(seed));
        all.truncate(max);
    }
    all
}

/// (f(v + h·e_i) − f(v − h·e_i)) / 2h for each probed i, restoring `v`.
pub fn central(v: &mut [f32], idx: &[usize], h: f32, f: impl Fn(&[f32]) -> f64) -> Vec<f64> {
    idx.iter()
        .map(|&i| {
            let x0 = v[i];
            v[i] = x0 + h;
            let up = f(v);
            v[i] = x0 - h;
            let down = f(v);
            v[i] = x0;
            (up - down) / (2.0 * h as f64)
        })
        .collect()
}

/// Σ r·y in f64: the scalar loss whose gradient with respect to y is r.
pub fn dot(r: &[f32], y: &[f32]) -> f64 {
    assert_eq!(r.len(), y.len());
    r.iter().zip(y).map(|(&a, &b)| a as f64 * b as f64).sum()
}

/// Panics naming `case`, the index, the analytic and the numeric value where they differ by more than
/// atol + rtol·|numeric|.
pub fn assert_fd(
    case: &str,
    idx: &[usize],
    analytic: &[f32],
    numeric: &[f64],
    atol: f64,
    rtol: f64,
) {
    assert!(!idx.is_empty(), "{case}: nothing probed");
    for (k, &i) in idx.iter().enumerate() {
        let (a, n) = (analytic[i] as f64, numeric[k]);
        assert!(
            (a - n).abs() <= atol + rtol * n.abs(),
            "{case}: index {i}: analytic {a} vs finite difference {n} (atol {atol}, rtol {rtol})"
        );
    }
}
