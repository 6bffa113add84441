//! GPU faults through the API, injected with the test-only hook `DetectorBuilder::inject_fault`: a device destroyed
//! as a driver reset would lose it, a submit queued behind a shader that spins for minutes, an arena allocation
//! that fails as out of memory. Each ends in an error naming what happened; a lost or hung device keeps failing
//! fast; nothing hangs (the test finishing, and dropping the detector, is the check).

use std::time::{Duration, Instant};

use sshface::gpu::Fault;
use sshface::{Detector, Error};

use crate::common::gpu;
use crate::sample;

fn detector(fault: Fault, timeout: Option<Duration>) -> Detector {
    let mut b = Detector::builder().inject_fault(fault);
    if let Some(t) = timeout {
        b = b.gpu_timeout(t);
    }
    b.build().unwrap()
}

#[test]
fn a_lost_device_fails_this_and_every_later_call() {
    if gpu().is_none() {
        return;
    }
    let det = detector(Fault::LoseDevice { at: 2 }, None);
    let img = sample(0, 96, 96);
    det.detect(&img).expect("the call before the fault");
    let e = det.detect(&img).unwrap_err();
    assert!(matches!(e, Error::DeviceLost { .. }), "{e:?}");
    let msg = e.to_string();
    assert!(
        msg.contains("destroyed") && msg.contains(det.adapter_name()),
        "{msg}"
    );
    // A cached plan, a new plan, a batch: all fail at once with the same reason.
    let t = Instant::now();
    for r in [
        det.detect(&img).map(|_| ()),
        det.detect(&sample(1, 64, 80)).map(|_| ()),
        det.detect_batch(&[img.clone(), sample(2, 70, 50)])
            .map(|_| ()),
    ] {
        let e = r.unwrap_err();
        assert!(
            matches!(e, Error::DeviceLost { .. }) && e.to_string() == msg,
            "{e}"
        );
    }
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
    assert!(det.context().is_lost());
}

#[test]
fn a_stalled_submit_times_out_and_the_device_is_given_up() {
    if gpu().is_none() {
        return;
    }
    let timeout = Duration::from_secs(3);
    let det = detector(Fault::Stall { at: 2 }, Some(timeout));
    let img = sample(0, 96, 96);
    det.detect(&img).expect("the call before the stall");
    let t = Instant::now();
    let e = det.detect(&img).unwrap_err();
    let waited = t.elapsed();
    let Error::Timeout { secs, ref what, .. } = e else {
        panic!("{e:?}")
    };
    assert!(secs >= 3.0 && waited >= timeout, "{secs} s, {waited:?}");
    // The stall lasts minutes: returning well before it ends is the point.
    assert!(waited < Duration::from_secs(30), "{waited:?}");
    assert!(what.contains("plan"), "{what}");
    assert!(e.to_string().contains("did not complete within"), "{e}");
    let t = Instant::now();
    let again = det.detect(&img).unwrap_err();
    assert!(matches!(again, Error::DeviceLost { .. }), "{again:?}");
    assert!(
        again.to_string().contains("GPU timeout of 3.0 s"),
        "{again}"
    );
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
    // Dropping must not wait for the spinning shader.
    let t = Instant::now();
    drop(det);
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
}

#[test]
fn out_of_memory_names_the_size_and_the_detector_recovers() {
    let Some(ctx) = gpu() else { return };
    let det = detector(Fault::OutOfMemory { at: 1 }, None);
    let img = sample(0, 96, 96);
    let e = det.detect(&img).unwrap_err();
    let Error::OutOfMemory {
        bytes, ref what, ..
    } = e
    else {
        panic!("{e:?}")
    };
    assert!(
        bytes > 0 && what.contains("arena slot") && what.contains("plan of"),
        "{e}"
    );
    assert!(e.to_string().contains(&format!("{bytes} bytes")), "{e}");
    // Not a device failure: the next plan is allocated and runs.
    det.detect(&img).expect("the next plan");
    // A buffer beyond the device's largest: the same error, from the real check.
    let too_big = ctx.limits.max_buffer_size + 4;
    let e = ctx
        .create_buffer(
            "tensor 'huge'",
            too_big,
            sshface::wgpu::BufferUsages::STORAGE,
        )
        .unwrap_err();
    let msg = e.to_string();
    assert!(matches!(e, Error::OutOfMemory { .. }), "{e:?}");
    assert!(
        msg.contains(&too_big.to_string())
            && msg.contains("'huge'")
            && msg.contains("max_buffer_size"),
        "{msg}"
    );
}

#[test]
fn a_zero_timeout_is_refused() {
    let Err(e) = Detector::builder().gpu_timeout(Duration::ZERO).build() else {
        panic!("gpu_timeout(0) accepted")
    };
    assert!(
        matches!(e, Error::Config(_)) && e.to_string().contains("gpu_timeout"),
        "{e}"
    );
}

#[test]
fn fault_specs_parse() {
    assert_eq!(
        "lose-device".parse::<Fault>().unwrap(),
        Fault::LoseDevice { at: 1 }
    );
    assert_eq!("stall@7".parse::<Fault>().unwrap(), Fault::Stall { at: 7 });
    assert_eq!(
        "oom@2".parse::<Fault>().unwrap(),
        Fault::OutOfMemory { at: 2 }
    );
    for bad in ["", "stall@0", "stall@x", "melt@1"] {
        let e = bad.parse::<Fault>().unwrap_err().to_string();
        assert!(e.contains(&format!("'{bad}'")), "{e}");
    }
}
