//! The MAT-file reader (WIDER FACE ground truth) and the accessors `eval --gt` reads it with.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sshface::readers::mat::{parse, Value};

fn visit(v: &Value, depth: usize) {
    let _ = v.text("x");
    let _ = v.numbers("x");
    for cols in [1, 4, 10] {
        let _ = v.rows("x", cols);
    }
    if let Value::Num { dims, data } = v {
        if let [_, cols] = dims[..] {
            let _ = v.rows("x", cols);
        }
        let _ = data.len();
    }
    if let Ok(items) = v.cells("x") {
        for item in items {
            visit(item, depth + 1);
        }
    }
}

fuzz_target!(|data: &[u8]| {
    if let Ok(vars) = parse(data) {
        for v in vars.values() {
            visit(v, 0);
        }
    }
});
