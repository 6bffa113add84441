//! CPU reference of `ops::pack_kmajor`: `[groups · rows, k]` to `[groups, kp, mp]`, zero-padded.

use crate::ops::pack_kmajor::Layout;

pub fn pack_kmajor(w: &[f32], l: Layout) -> Vec<f32> {
    assert_eq!(w.len(), l.groups * l.rows * l.k, "{l:?}");
    let mut out = vec![0.0; l.groups * l.kp * l.mp];
    for g in 0..l.groups {
        for m in 0..l.rows {
            for k in 0..l.k {
                out[(g * l.kp + k) * l.mp + m] = w[(g * l.rows + m) * l.k + k];
            }
        }
    }
    out
}
