//! Encoded images (bytes or paths): decoded on several threads a window ahead of the GPU, then detected in
//! equal-size batches. Memory stays bounded by two windows of decoded images whatever the list's length.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use sshface::{DetectOptions, Face};

use crate::detector::run_grouped;

const MAX_PIXELS: u64 = sshface::image_io::DEFAULT_MAX_PIXELS;

/// Per item its faces or why it could not be read, and the warnings of images that decoded only partly.
pub(crate) type Results = (Vec<sshface::Result<Vec<Face>>>, Vec<String>);

/// One input: an encoded image with the label its errors name, or a file.
pub(crate) enum Item {
    Bytes(String, Vec<u8>),
    Path(PathBuf),
}

type Decoded = sshface::Result<sshface::image_io::Decoded>;

impl Item {
    fn label(&self) -> String {
        match self {
            Item::Bytes(label, _) => label.clone(),
            Item::Path(p) => p.display().to_string(),
        }
    }
}

fn decode(item: &Item) -> Decoded {
    let run = || match item {
        Item::Bytes(label, b) => sshface::image_io::decode_rgb_checked(label, b, Some(MAX_PIXELS)),
        // Python callers tell a file that cannot be opened (OSError) from one that does not decode (ValueError).
        Item::Path(p) => match std::fs::File::open(p) {
            Err(cause) => Err(sshface::Error::Io {
                path: p.display().to_string(),
                cause,
            }),
            Ok(_) => sshface::image_io::load_rgb_checked(p, Some(MAX_PIXELS)),
        },
    };
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(run)).unwrap_or_else(|_| {
        Err(sshface::Error::Image {
            path: item.label(),
            msg: "the decoder failed".into(),
        })
    })
}

/// Decodes `items` on `threads` threads; results in input order.
fn decode_window(items: &[Item], threads: usize) -> Vec<Decoded> {
    let next = AtomicUsize::new(0);
    let slots: Mutex<Vec<Option<Decoded>>> = Mutex::new((0..items.len()).map(|_| None).collect());
    std::thread::scope(|s| {
        for _ in 0..threads.clamp(1, items.len().max(1)) {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(item) = items.get(i) else { break };
                let d = decode(item);
                slots.lock().unwrap_or_else(|p| p.into_inner())[i] = Some(d);
            });
        }
    });
    slots
        .into_inner()
        .unwrap_or_else(|p| p.into_inner())
        .into_iter()
        .zip(items)
        .map(|(d, item)| d.unwrap_or_else(|| decode(item)))
        .collect()
}

/// Per item its faces or why it could not be read (a GPU error ends the call), and a warning naming each image that
/// is truncated or broken part-way (detected on what decoded).
pub(crate) fn detect_encoded(
    det: &sshface::Detector,
    items: Vec<Item>,
    opts: &DetectOptions,
    batch: usize,
    threads: usize,
) -> sshface::Result<Results> {
    let window = (batch.max(1) * 4).max(threads * 2);
    let chunks: Vec<&[Item]> = items.chunks(window).collect();
    let mut out = Vec::with_capacity(items.len());
    let mut warnings = Vec::new();
    std::thread::scope(|s| {
        let mut ahead = chunks
            .first()
            .map(|&c| s.spawn(move || decode_window(c, threads)));
        for k in 0..chunks.len() {
            // A decoding thread cannot panic (decode catches it); were it to, decode here instead.
            let decoded = match ahead.take().map(|h| h.join()) {
                Some(Ok(d)) => d,
                _ => chunks[k].iter().map(decode).collect(),
            };
            ahead = chunks
                .get(k + 1)
                .map(|&c| s.spawn(move || decode_window(c, threads)));
            let mut images = Vec::new();
            let status: Vec<sshface::Result<()>> = decoded
                .into_iter()
                .zip(chunks[k])
                .map(|(d, item)| {
                    d.map(|d| {
                        if let Some(why) = d.partial {
                            warnings.push(format!(
                                "image {}: {why}; detected on what decoded",
                                item.label()
                            ));
                        }
                        images.push(d.image)
                    })
                })
                .collect();
            let mut faces = run_grouped(det, images, opts, batch)?.into_iter();
            out.extend(
                status
                    .into_iter()
                    .map(|r| r.map(|()| faces.next().unwrap_or_default())),
            );
        }
        Ok((out, warnings))
    })
}
