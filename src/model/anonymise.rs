//! The anonymisation steps appended to a detection graph: for every image, a blur step reading its packed RGB8
//! upload and its group's kept rows, writing a packed RGB8 output that is read back instead of the image.

use crate::error::{Error, Result};
use crate::gpu::{Graph, TensorId};
use crate::model::pipeline::GroupIo;
use crate::ops::blur::{blur, Blur};

/// Appends one blur step per image after NMS; returns, per group, the output of each of its images (in the order
/// of `GroupIo::images`).
pub fn append(
    g: &mut Graph,
    groups: &[GroupIo],
    sizes: &[[usize; 2]],
    b: &Blur,
) -> Result<Vec<Vec<TensorId>>> {
    let mut outs = Vec::with_capacity(groups.len());
    for (k, gr) in groups.iter().enumerate() {
        let mut v = Vec::with_capacity(gr.images.len());
        for (j, (idx, pieces)) in gr.images.iter().enumerate() {
            let (idx, hw) = (*idx, sizes[*idx]);
            let &[(0, src)] = pieces.as_slice() else {
                return Err(Error::shape(
                    format!("anonymise{k}.{j}"),
                    format!("image {idx} ({}×{}) is larger than one storage binding: blurring it is not supported", hw[1], hw[0]),
                ));
            };
            let words = (hw[0] * hw[1] * 3).div_ceil(4);
            let out = g.tensor(&format!("anonymised{k}.{j}"), &[words])?;
            g.mark_output(out);
            blur(
                g,
                &format!("anonymise{k}.{j}"),
                src,
                hw,
                gr.rows,
                gr.counts,
                j,
                out,
                b,
            )?;
            v.push(out);
        }
        outs.push(v);
    }
    Ok(outs)
}

/// Unpacks little-endian RGB8 words read back from the GPU into an `h`×`w` image.
pub fn unpack(bytes: &[u8], hw: [usize; 2]) -> image::RgbImage {
    let n = hw[0] * hw[1] * 3;
    image::RgbImage::from_raw(
        hw[1] as u32,
        hw[0] as u32,
        bytes[..n.min(bytes.len())].to_vec(),
    )
    .unwrap_or_else(|| image::RgbImage::new(hw[1] as u32, hw[0] as u32))
}
