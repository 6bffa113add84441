//! The protobuf wire reader: every field of every nested message, read as each type it could be.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sshface::convert::protobuf::Reader;

fn walk(r: Reader, depth: usize, len: usize) {
    for f in r {
        let Ok(f) = f else { return };
        assert!(
            f.offset <= len,
            "field offset {} past the input's {len} bytes",
            f.offset
        );
        let _ = f.varint();
        let _ = f.f32();
        let _ = f.str();
        let (mut v, mut s, mut d) = (Vec::new(), Vec::new(), Vec::new());
        let _ = f.push_varints(&mut v);
        let _ = f.push_f32s(&mut s);
        let _ = f.push_f64s(&mut d);
        // A packed field holds at most one value per byte.
        assert!(v.len() <= len && s.len() <= len && d.len() <= len);
        if depth < 16 {
            if let Ok(m) = f.message() {
                walk(m, depth + 1, len);
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    walk(Reader::new(data), 0, data.len());
});
