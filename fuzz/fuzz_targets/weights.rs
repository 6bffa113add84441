//! The safetensors weight loader: header and dtype checks, the non-finite check, then both networks' load path
//! (every shape-checked `get`, the unknown-tensor check, the uploads) on wgpu's no-op device.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sshface::gpu::DType;
use sshface::model::retinaface_mnv2::RetinaFaceMnv2;
use sshface::model::ssh_vgg16::SshVgg16;
use sshface::model::weights::WeightFile;

fuzz_target!(|data: &[u8]| {
    let Ok(wf) = WeightFile::from_bytes("fuzz.safetensors", data) else {
        return;
    };
    for name in wf.names() {
        let shape = wf
            .shape(&name)
            .expect("a listed tensor has a shape")
            .to_vec();
        let values = wf
            .get(&name, &shape)
            .expect("a tensor's own shape is accepted");
        assert_eq!(shape.iter().product::<usize>(), values.len(), "{name}");
        assert!(
            values.iter().all(|v| v.is_finite()),
            "{name} holds a non-finite value"
        );
        let mut wrong = shape.clone();
        wrong.push(1);
        assert!(wf.get(&name, &wrong).is_err());
    }
    let ctx = sshface_fuzz::noop();
    for maps in [DType::F32, DType::F16] {
        let _ = RetinaFaceMnv2::load(ctx, &wf, maps);
        let _ = SshVgg16::load(ctx, &wf, maps);
    }
});
