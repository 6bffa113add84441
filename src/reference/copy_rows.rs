//! Reference of `shaders/copy_rows.wgsl`.

use super::CpuTensor;

/// Copies rows `src_row..src_row + rows` of every plane of `x` into rows `dst_row..` of `out`.
pub fn copy_rows(x: &CpuTensor, src_row: usize, out: &mut CpuTensor, dst_row: usize, rows: usize) {
    let [n, c, hs, w] = x.nchw();
    let hd = out.nchw()[2];
    for plane in 0..n * c {
        for r in 0..rows {
            let s = (plane * hs + src_row + r) * w;
            let d = (plane * hd + dst_row + r) * w;
            out.data[d..d + w].copy_from_slice(&x.data[s..s + w]);
        }
    }
}
