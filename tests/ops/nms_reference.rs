//! CPU-only checks of the selection reference (`reference::nms`) on hand-computed boxes, and of the integer
//! threshold test that `shaders/nms_mask.wgsl` uses instead of a division. Exact comparisons throughout: the values
//! are float32 results the spec defines bit for bit.

use rand::Rng;
use sshface::reference::nms as reference;

use crate::common::rng;
use crate::nms::row;

#[test]
fn iou_hand_computed() {
    let a = row([0.0, 0.0, 9.0, 9.0], 1.0);
    let b = row([5.0, 0.0, 14.0, 9.0], 1.0);
    // +1: inter 5·10 = 50, areas 100 + 100: 50 / 150.
    assert_eq!(reference::iou(&a, &b, true), 50.0 / 150.0);
    // TF: inter 4·9 = 36, areas 81 + 81: 36 / 126.
    assert_eq!(reference::iou(&a, &b, false), 36.0 / 126.0);
    // TF normalises swapped corners.
    let swapped = row([9.0, 9.0, 0.0, 0.0], 1.0);
    assert_eq!(reference::iou(&swapped, &b, false), 36.0 / 126.0);
    // TF: a zero-area box has IoU 0 even with itself.
    let flat = row([3.0, 0.0, 3.0, 9.0], 1.0);
    assert_eq!(reference::iou(&flat, &flat, false), 0.0);
    // +1: the same box is 1 wide: area 10, IoU with itself 1; with `a`: 10 / 100.
    assert_eq!(reference::iou(&flat, &flat, true), 1.0);
    assert_eq!(reference::iou(&flat, &a, true), 0.1);
    // +1: width −4 gives a negative area and an empty intersection: 0 / −80 = −0, never above a threshold.
    let neg = row([0.0, 0.0, -5.0, 9.0], 1.0);
    let v = reference::iou(&neg, &neg, true);
    assert!(v == 0.0 && v.is_sign_negative(), "{v}");
    // Disjoint boxes.
    let far = row([50.0, 50.0, 60.0, 60.0], 1.0);
    assert_eq!(reference::iou(&a, &far, true), 0.0);
    assert_eq!(reference::iou(&a, &far, false), 0.0);
}

#[test]
fn greedy_nms_hand_computed() {
    // +1 IoUs: (A, B) = 60 / 140 > 0.3, (B, C) = 60 / 140, (A, C) = 20 / 180. B is suppressed by A, so B cannot
    // suppress C: the chain keeps A and C.
    let rows = vec![
        row([8.0, 0.0, 17.0, 9.0], 0.7),
        row([0.0, 0.0, 9.0, 9.0], 0.9),
        row([4.0, 0.0, 13.0, 9.0], 0.8),
    ];
    assert_eq!(reference::greedy_nms(&rows, 0.3, true), vec![1, 0]);
    // A threshold above 3/7 keeps all three, in score order.
    assert_eq!(reference::greedy_nms(&rows, 0.45, true), vec![1, 2, 0]);
    // Equal scores: the lower index is visited first and suppresses the other.
    let tie = vec![
        row([1.0, 1.0, 11.0, 11.0], 0.5),
        row([0.0, 0.0, 10.0, 10.0], 0.5),
    ];
    assert_eq!(reference::greedy_nms(&tie, 0.3, false), vec![0]);
    assert!(reference::greedy_nms(&[], 0.3, true).is_empty());
}

/// The shader's division-free test of fl(a / u) > t (`above` in shaders/nms_mask.wgsl), mirrored on the CPU so that
/// the integer algorithm itself is checked against IEEE division on many values, most of them near the threshold.
fn above_mirror(a: f32, u: f32, t: f32) -> bool {
    let (ib, ub, tb) = (a.to_bits(), u.to_bits(), t.to_bits());
    if ub & 0x7fff_ffff == 0 {
        return ib & 0x7fff_ffff != 0;
    }
    if ub >> 31 != 0 || ib & 0x7fff_ffff == 0 {
        return false;
    }
    let (ea, eu, et) = ((ib >> 23) & 0xff, (ub >> 23) & 0xff, (tb >> 23) & 0xff);
    if [ea, eu, et].iter().any(|&e| e == 0 || e == 255) {
        return a / u > t;
    }
    let ma = (ib & 0x7f_ffff) | 0x80_0000;
    let mu = (ub & 0x7f_ffff) | 0x80_0000;
    let mt = (tb & 0x7f_ffff) | 0x80_0000;
    let s = ea as i32 - eu as i32 - et as i32 + 151;
    if s >= 26 {
        return true;
    }
    if s <= 23 {
        return false;
    }
    let v = 2 * mt + 1;
    let (v0, v1, m0, m1) = (v & 0xffff, v >> 16, mu & 0xffff, mu >> 16);
    let low = v0 * m0;
    let mid = v1 * m0 + v0 * m1;
    let lo = low.wrapping_add((mid & 0xffff) << 16);
    let hi = v1 * m1 + (mid >> 16) + (lo < low) as u32;
    let (xlo, xhi) = (ma << s, ma >> (32 - s));
    if xhi != hi {
        return xhi > hi;
    }
    if xlo != lo {
        return xlo > lo;
    }
    mt & 1 == 1
}

#[test]
fn division_free_threshold_test_matches_ieee() {
    let mut r = rng(12);
    let mut near = 0;
    for k in 0..2_000_000 {
        let t: f32 = match k % 4 {
            0 => 0.3,
            1 => 0.4,
            2 => 0.5,
            _ => r.random_range(1e-3..2.0),
        };
        let u: f32 = r.random_range(1e-2..1e5);
        // a chosen so that a / u lands within a few ulps of t, or anywhere.
        let a = if k % 3 == 0 {
            r.random_range(0.0..2.0 * u)
        } else {
            f32::from_bits(
                (t * u)
                    .to_bits()
                    .wrapping_add(r.random_range(0..7))
                    .wrapping_sub(3),
            )
        };
        let a = if k % 5 == 0 { a.round() } else { a };
        let u = if k % 5 == 0 { u.round().max(1.0) } else { u };
        let want = a / u > t;
        near += ((a / u).to_bits().abs_diff(t.to_bits()) <= 1) as u32;
        assert_eq!(
            above_mirror(a, u, t),
            want,
            "a {a:e} u {u:e} t {t:e}: a/u = {:e}",
            a / u
        );
    }
    assert!(near > 100_000, "only {near} quotients near the threshold");
    for (a, u, t) in [
        (30.0, 100.0, 0.3f32),
        (0.0, 5.0, 0.0),
        (1.0, 0.0, 0.3),
        (0.0, 0.0, 0.3),
        (3.0, -2.0, 0.1),
    ] {
        assert_eq!(above_mirror(a, u, t), a / u > t, "{a} / {u} > {t}");
    }
}
