//! Image decoding up to the packed input: format sniffing, the pixel limit, every decoder, EXIF orientation, RGB8,
//! partial (truncated) decodes, and the u32 packing uploaded to the GPU.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sshface::image_io::decode_rgb_checked;
use sshface::ops::preprocess::pack_rgb8;

/// Small enough that the fuzzer spends its time on parsing, not on allocating large canvases.
const MAX_PIXELS: u64 = 1 << 22;

fuzz_target!(|data: &[u8]| {
    let Ok(d) = decode_rgb_checked("fuzz", data, Some(MAX_PIXELS)) else {
        return;
    };
    let (w, h) = d.image.dimensions();
    assert!(u64::from(w) * u64::from(h) <= MAX_PIXELS);
    let raw = d.image.as_raw();
    assert_eq!(raw.len(), w as usize * h as usize * 3);
    assert_eq!(pack_rgb8(raw).len(), raw.len().div_ceil(4));
});
