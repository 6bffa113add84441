//! The wire reader against the writer, and every kind of malformed input.

use sshface::convert::protobuf::write::{put_varint, Msg};
use sshface::convert::protobuf::{read_varint, Field, Reader, Value, WireError};

fn fields(buf: &[u8]) -> Result<Vec<Field<'_>>, WireError> {
    Reader::new(buf).collect()
}

fn err_of(buf: &[u8]) -> WireError {
    match fields(buf) {
        Ok(f) => panic!("expected an error for {buf:?}, got {f:?}"),
        Err(e) => e,
    }
}

#[test]
fn varint_round_trip_edges() {
    for v in [0, 1, 127, 128, 300, u32::MAX as u64, 1 << 63, u64::MAX] {
        let mut b = Vec::new();
        put_varint(&mut b, v);
        let mut pos = 0;
        assert_eq!(read_varint(&b, &mut pos, 0).unwrap(), v, "{v}");
        assert_eq!(pos, b.len());
    }
    // 300 = 0b10_0101100 → AC 02 (the protobuf docs' example), so the bit order is pinned.
    let mut b = Vec::new();
    put_varint(&mut b, 300);
    assert_eq!(b, [0xac, 0x02]);
}

#[test]
fn all_value_kinds_packed_and_unpacked() {
    let mut inner = Msg::new();
    inner.string(1, "inner");
    let mut m = Msg::new();
    m.varint(1, 150)
        .f32(2, 1.5)
        .f64(3, -2.25)
        .string(4, "héllo")
        .message(5, &inner)
        .packed_varints(6, &[1, 300, u64::MAX])
        .varint(6, 7) // unpacked element of the same repeated field
        .packed_f32(7, &[0.5, -1.0])
        .f32(7, 3.0)
        .packed_f64(8, &[1e300])
        .f64(8, -0.0)
        .varint(99, 5); // unknown to any reader: still iterates fine
    let buf = m.finish();
    let f = fields(&buf).unwrap();
    assert_eq!(f.len(), 12);
    assert_eq!(f[0].varint().unwrap(), 150);
    assert_eq!(f[1].f32().unwrap(), 1.5);
    assert_eq!(f[2].value, Value::Fixed64((-2.25f64).to_bits()));
    assert_eq!(f[3].str().unwrap(), "héllo");
    let sub: Vec<_> = f[4].message().unwrap().collect::<Result<_, _>>().unwrap();
    assert_eq!(sub[0].str().unwrap(), "inner");
    let mut vs = Vec::new();
    f[5].push_varints(&mut vs).unwrap();
    f[6].push_varints(&mut vs).unwrap();
    assert_eq!(vs, [1, 300, u64::MAX, 7]);
    let mut fs = Vec::new();
    f[7].push_f32s(&mut fs).unwrap();
    f[8].push_f32s(&mut fs).unwrap();
    assert_eq!(fs, [0.5, -1.0, 3.0]);
    let mut ds = Vec::new();
    f[9].push_f64s(&mut ds).unwrap();
    f[10].push_f64s(&mut ds).unwrap();
    assert_eq!(ds[0], 1e300);
    assert!(ds[1] == 0.0 && ds[1].is_sign_negative());
    assert_eq!(f[11].number, 99);
    // Accessors of the wrong kind are errors, not panics.
    assert!(f[0].bytes().is_err() && f[3].varint().is_err() && f[1].push_f64s(&mut ds).is_err());
}

#[test]
fn malformed_inputs_name_the_offset() {
    // (case, bytes, expected offset, words in the message)
    let cases: &[(&str, Vec<u8>, usize, &str)] = &[
        (
            "truncated varint value",
            vec![0x08, 0x80],
            1,
            "truncated varint",
        ),
        (
            "truncated key",
            vec![0x08, 0x01, 0x88],
            2,
            "truncated varint",
        ),
        (
            "varint over 64 bits",
            [vec![0x08], vec![0xff; 9], vec![0x02]].concat(),
            1,
            "overflows",
        ),
        (
            "varint over 10 bytes",
            [vec![0x08], vec![0x80; 11]].concat(),
            1,
            "overflows",
        ),
        (
            "length past the end",
            vec![0x08, 0x01, 0x12, 0x05, b'a', b'b'],
            3,
            "past the end",
        ),
        (
            "huge length",
            [vec![0x12], vec![0xff; 9], vec![0x01]].concat(),
            1,
            "past the end",
        ),
        (
            "truncated fixed32",
            vec![0x15, 1, 2, 3],
            1,
            "truncated fixed32",
        ),
        (
            "truncated fixed64",
            vec![0x09, 1, 2, 3, 4, 5, 6, 7],
            1,
            "truncated fixed64",
        ),
        (
            "wire type 3 (start group)",
            vec![0x08, 0x01, 0x0b],
            2,
            "wire type 3",
        ),
        ("wire type 4 (end group)", vec![0x0c], 0, "wire type 4"),
        ("wire type 6", vec![0x0e], 0, "invalid wire type 6"),
        (
            "wire type 7",
            vec![0x08, 0x00, 0x0f],
            2,
            "invalid wire type 7",
        ),
        ("field number 0", vec![0x00, 0x01], 0, "field number 0"),
    ];
    for (case, buf, offset, words) in cases {
        let e = err_of(buf);
        assert_eq!(e.offset, *offset, "{case}: {e}");
        assert!(e.to_string().contains(words), "{case}: {e}");
        assert!(
            e.to_string().contains(&format!("byte {offset}")),
            "{case}: {e}"
        );
    }
}

#[test]
fn nested_and_packed_errors_use_absolute_offsets() {
    // Sub-message at offset 2 (after key 0x0a and length) holding a truncated varint.
    let mut m = Msg::new();
    m.bytes(1, &[0x08, 0x80]);
    let buf = m.finish();
    let f = fields(&buf).unwrap();
    let e = f[0].message().unwrap().next().unwrap().unwrap_err();
    assert_eq!(e.offset, 3, "{e}");
    // Packed floats whose length is not a multiple of 4.
    let mut m = Msg::new();
    m.varint(1, 1).bytes(2, &[0, 0, 128]);
    let buf = m.finish();
    let f = fields(&buf).unwrap();
    let e = f[1].push_f32s(&mut Vec::new()).unwrap_err();
    assert_eq!(e.offset, 4, "{e}");
    assert!(e.to_string().contains("multiple of 4"), "{e}");
    // A truncated varint inside a packed run.
    let e = Field {
        number: 1,
        value: Value::Len(&[0x01, 0x80]),
        offset: 10,
    }
    .push_varints(&mut Vec::new())
    .unwrap_err();
    assert_eq!(e.offset, 11, "{e}");
}

#[test]
fn iteration_stops_after_the_first_error() {
    let mut r = Reader::new(&[0x0e, 0x08, 0x01]);
    assert!(r.next().unwrap().is_err());
    assert!(r.next().is_none());
}

#[test]
fn truncations_and_random_bytes_never_panic() {
    let mut inner = Msg::new();
    inner.packed_f32(5, &[1.0; 7]).varint(1, 1 << 40);
    let mut m = Msg::new();
    m.message(1, &inner)
        .string(2, "abc")
        .f64(3, 1.0)
        .message(1, &inner);
    let buf = m.finish();
    let walk = |b: &[u8]| {
        for f in Reader::new(b).flatten() {
            if let Ok(sub) = f.message() {
                for g in sub.flatten() {
                    let _ = g.push_f32s(&mut Vec::new());
                    let _ = g.push_varints(&mut Vec::new());
                }
            }
        }
    };
    let mut errors = 0;
    for n in 0..buf.len() {
        walk(&buf[..n]);
        errors += usize::from(fields(&buf[..n]).is_err());
    }
    // Most prefixes cut a field; cutting exactly between fields is fine.
    assert!(
        errors >= buf.len() - 5,
        "{errors} of {} prefixes failed",
        buf.len()
    );
    let mut state = 0x2545_f491_4f6c_dd1du64;
    for _ in 0..2000 {
        let b: Vec<u8> = (0..24)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state as u8
            })
            .collect();
        walk(&b);
    }
}
