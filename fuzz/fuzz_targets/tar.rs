//! The tar stream of `detect`'s `.tar` units: entry headers, names, sizes, data.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sshface::readers::tar::read_images;

fuzz_target!(|data: &[u8]| {
    let mut total = 0;
    let _ = read_images("fuzz.tar", data, |name, bytes| {
        assert!(name.starts_with("fuzz.tar/"));
        if let Ok(b) = bytes {
            total += b.len();
        }
        true
    });
    assert!(
        total <= data.len(),
        "{total} entry bytes from a {}-byte tar",
        data.len()
    );
});
