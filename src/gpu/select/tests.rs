//! The adapter mapping on fake adapter lists: nodes with GPUs out of bus order, several backends, other vendors.

use super::*;

fn gpu(name: &str, vendor: u32, bus: &str, backend: Backend) -> AdapterFacts {
    AdapterFacts {
        name: name.into(),
        vendor,
        device_type: DeviceType::DiscreteGpu,
        pci_bus_id: bus.into(),
        backend,
    }
}

fn lavapipe() -> AdapterFacts {
    AdapterFacts {
        device_type: DeviceType::Cpu,
        ..gpu("llvmpipe (LLVM 19)", 0x10005, "", Backend::Vulkan)
    }
}

/// Four NVIDIA GPUs enumerated out of bus order on Vulkan and again on GL, plus lavapipe.
fn node() -> Vec<AdapterFacts> {
    let mut v = vec![lavapipe()];
    for bus in [
        "0000:c1:00.0",
        "0000:41:00.0",
        "0000:01:00.0",
        "0000:81:00.0",
    ] {
        v.push(gpu("NVIDIA H200", 0x10de, bus, Backend::Vulkan));
    }
    for bus in ["0000:01:00.0", "0000:41:00.0"] {
        v.push(gpu("NVIDIA H200/PCIe", 0x10de, bus, Backend::Gl));
    }
    v
}

fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
    let owned: Vec<(String, String)> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    move |k| owned.iter().find(|p| p.0 == k).map(|p| p.1.clone())
}

fn pick(adapters: &[AdapterFacts], pairs: &[(&str, &str)]) -> Result<Chosen> {
    choose(
        adapters,
        None,
        DeviceChoice::Auto,
        visible_from_env(env(pairs)).as_ref(),
    )
}

#[test]
fn cuda_ordinal_maps_by_pci_bus_on_vulkan() {
    let a = node();
    for (value, bus) in [
        ("0", "0000:01:00.0"),
        ("1", "0000:41:00.0"),
        ("3,0", "0000:c1:00.0"),
        ("2", "0000:81:00.0"),
    ] {
        let c = pick(&a, &[("CUDA_VISIBLE_DEVICES", value)]).unwrap();
        assert_eq!(
            a[c.index].pci_bus_id, bus,
            "CUDA_VISIBLE_DEVICES={value}: {c:?}"
        );
        assert_eq!(a[c.index].backend, Backend::Vulkan);
        assert!(
            c.why.contains("CUDA_VISIBLE_DEVICES") && c.why.contains(bus),
            "{}",
            c.why
        );
    }
}

#[test]
fn without_bus_ids_enumeration_order_is_the_fallback() {
    let mut a = node();
    a.iter_mut().for_each(|x| x.pci_bus_id.clear());
    let c = pick(&a, &[("CUDA_VISIBLE_DEVICES", "2")]).unwrap();
    assert_eq!(c.index, 3, "{c:?}");
    assert!(c.why.contains("enumeration order"));
    // A UUID cannot be matched: the vendor's first adapter.
    let c = pick(&a, &[("CUDA_VISIBLE_DEVICES", "GPU-5d0f3a1e-aaaa")]).unwrap();
    assert_eq!(c.index, 1);
}

#[test]
fn amd_and_intel_variables() {
    let a = vec![
        lavapipe(),
        gpu(
            "AMD Instinct MI300X",
            0x1002,
            "0000:9c:00.0",
            Backend::Vulkan,
        ),
        gpu(
            "AMD Instinct MI300X",
            0x1002,
            "0000:1b:00.0",
            Backend::Vulkan,
        ),
        gpu(
            "Intel Data Center GPU Max",
            0x8086,
            "0000:3a:00.0",
            Backend::Vulkan,
        ),
    ];
    assert_eq!(pick(&a, &[("ROCR_VISIBLE_DEVICES", "1")]).unwrap().index, 1);
    assert_eq!(pick(&a, &[("HIP_VISIBLE_DEVICES", "0")]).unwrap().index, 2);
    // ROCR is the physical index and is read before HIP.
    let both = [("HIP_VISIBLE_DEVICES", "0"), ("ROCR_VISIBLE_DEVICES", "1")];
    assert_eq!(pick(&a, &both).unwrap().index, 1);
    assert_eq!(pick(&a, &[("ZE_AFFINITY_MASK", "0.1")]).unwrap().index, 3);
}

#[test]
fn unset_empty_and_none_values_give_the_best_adapter() {
    let a = node();
    for pairs in [
        &[][..],
        &[("CUDA_VISIBLE_DEVICES", "")][..],
        &[("CUDA_VISIBLE_DEVICES", "-1")][..],
        &[("CUDA_VISIBLE_DEVICES", "NoDevFiles")][..],
    ] {
        let c = pick(&a, pairs).unwrap();
        assert_eq!(
            c.index, 1,
            "{pairs:?}: first discrete GPU in enumeration order"
        );
        assert_eq!(c.why, "best adapter");
    }
}

#[test]
fn missing_vendor_or_ordinal_is_an_error_naming_the_variable() {
    let only_cpu = vec![lavapipe()];
    let e = pick(&only_cpu, &[("CUDA_VISIBLE_DEVICES", "0")])
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("CUDA_VISIBLE_DEVICES=0")
            && e.contains("no NVIDIA adapter")
            && e.contains("llvmpipe"),
        "{e}"
    );
    let e = pick(&node(), &[("CUDA_VISIBLE_DEVICES", "7")])
        .unwrap_err()
        .to_string();
    assert!(e.contains("GPU 7") && e.contains("only 4"), "{e}");
}

#[test]
fn explicit_index_and_name_win_over_the_environment() {
    let a = node();
    let v = visible_from_env(env(&[("CUDA_VISIBLE_DEVICES", "3")]));
    assert_eq!(
        choose(&a, None, DeviceChoice::Index(0), v.as_ref())
            .unwrap()
            .index,
        0
    );
    assert_eq!(
        choose(&a, Some("pcie"), DeviceChoice::Auto, v.as_ref())
            .unwrap()
            .index,
        5
    );
    let e = choose(&a, None, DeviceChoice::Index(9), None)
        .unwrap_err()
        .to_string();
    assert!(e.contains("--device 9") && e.contains("7 adapters"), "{e}");
    assert_eq!("auto".parse::<DeviceChoice>().unwrap(), DeviceChoice::Auto);
    assert_eq!("2".parse::<DeviceChoice>().unwrap(), DeviceChoice::Index(2));
    assert!("gpu0".parse::<DeviceChoice>().is_err());
}

#[test]
fn auto_or_best_falls_back_with_a_warning_where_auto_fails() {
    let v = visible_from_env(env(&[("CUDA_VISIBLE_DEVICES", "1")]));
    // Ray's logical GPUs on a machine with lavapipe only: the one adapter, with a warning naming the variable.
    let only_cpu = vec![lavapipe()];
    assert!(choose(&only_cpu, None, DeviceChoice::Auto, v.as_ref()).is_err());
    let c = choose(&only_cpu, None, DeviceChoice::AutoOrBest, v.as_ref()).unwrap();
    assert_eq!(c.index, 0);
    let w = c.warning.expect("a warning");
    assert!(
        w.contains("CUDA_VISIBLE_DEVICES=1") && w.contains("using adapter 0 (llvmpipe"),
        "{w}"
    );
    // Where the assigned GPU exists, the same mapping as Auto and no warning.
    let a = node();
    let strict = choose(&a, None, DeviceChoice::Auto, v.as_ref()).unwrap();
    let lenient = choose(&a, None, DeviceChoice::AutoOrBest, v.as_ref()).unwrap();
    assert_eq!((strict.index, lenient.warning), (lenient.index, None));
    // An index past the count falls back too; no adapters at all stays an error.
    let v7 = visible_from_env(env(&[("CUDA_VISIBLE_DEVICES", "7")]));
    assert!(choose(&a, None, DeviceChoice::AutoOrBest, v7.as_ref())
        .unwrap()
        .warning
        .is_some_and(|w| w.contains("only 4")));
    assert!(choose(&[], None, DeviceChoice::AutoOrBest, v.as_ref()).is_err());
}
