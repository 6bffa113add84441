//! Reading GPU buffers back: mapping a staging buffer and reinterpreting its bytes.

use crate::error::{Error, Result};
use crate::gpu::{DType, GpuContext};

/// Maps `buf` for reading once submit `index` (which fills it) is done, waiting at most the GPU timeout, and copies
/// out its first `len` bytes. `what` names the work for a timeout's message.
pub(crate) fn map_read(
    ctx: &GpuContext,
    buf: &wgpu::Buffer,
    len: u64,
    what: &str,
    (index, started): (wgpu::SubmissionIndex, std::time::Instant),
) -> Result<Vec<u8>> {
    let (tx, rx) = std::sync::mpsc::channel();
    buf.map_async(wgpu::MapMode::Read, 0..len, move |r| {
        let _ = tx.send(r);
    });
    ctx.wait(what, index, started)?;
    ctx.mapped("readback", &rx)?.map_err(|e| Error::Gpu {
        what: "mapping the readback buffer".into(),
        msg: e.to_string(),
    })?;
    let out = buf
        .get_mapped_range(0..len)
        .map_err(|e| Error::Gpu {
            what: "readback range".into(),
            msg: format!("{e:?}"),
        })?
        .to_vec();
    buf.unmap();
    Ok(out)
}

/// Reinterprets little-endian bytes read back from the GPU as f32 values.
pub fn bytes_to_f32(b: &[u8]) -> Vec<f32> {
    b.chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

/// Reinterprets little-endian bytes read back from the GPU as u32 values.
pub fn bytes_to_u32(b: &[u8]) -> Vec<u32> {
    b.chunks_exact(4)
        .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

/// f32 values as little-endian f16 bytes (round to nearest even), for f16 inputs and weights.
pub fn f32_to_f16_bytes(v: &[f32]) -> Vec<u8> {
    v.iter()
        .flat_map(|&x| half::f16::from_f32(x).to_le_bytes())
        .collect()
}

/// The first `len` elements of a tensor of element type `dtype` read back as bytes, as f32 values.
pub fn tensor_to_f32(b: &[u8], dtype: DType, len: usize) -> Vec<f32> {
    match dtype {
        DType::F32 => bytes_to_f32(b),
        DType::F16 => b
            .chunks_exact(2)
            .take(len)
            .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32())
            .collect(),
    }
}
