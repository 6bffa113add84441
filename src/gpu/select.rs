//! Which adapter a process opens: `--device N`, a name, the GPU a scheduler assigned, or the best one.
//!
//! Schedulers (Slurm, Kubernetes device plugins, Ray, Spark) tell a worker its GPU through
//! `CUDA_VISIBLE_DEVICES`, `ROCR_VISIBLE_DEVICES`/`HIP_VISIBLE_DEVICES` or `ZE_AFFINITY_MASK`. Vulkan ignores them,
//! so without this mapping every worker on an 8-GPU node would open the same GPU. The logic is pure (facts in,
//! index out) so it is tested with fake adapter lists.

use std::str::FromStr;

use wgpu::{Backend, DeviceType};

use crate::error::{Error, Result};

/// The adapter choice beyond backend and name.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum DeviceChoice {
    /// The GPU named by the first entry of a scheduler variable when one is set, else the best adapter.
    #[default]
    Auto,
    /// Adapter N in the order `sshface adapters` prints (wgpu's enumeration order).
    Index(usize),
}

impl FromStr for DeviceChoice {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        if s == "auto" {
            return Ok(DeviceChoice::Auto);
        }
        s.parse().map(DeviceChoice::Index).map_err(|_| {
            Error::Config(format!(
                "--device '{s}': expected auto or an adapter index of `sshface adapters`"
            ))
        })
    }
}

/// What selection needs of an adapter: `wgpu::AdapterInfo`'s fields, so tests can build fake lists.
#[derive(Clone, Debug)]
pub struct AdapterFacts {
    pub name: String,
    pub vendor: u32,
    pub device_type: DeviceType,
    /// `bus:device.function` such as `0000:41:00.0`; empty when the driver does not report it.
    pub pci_bus_id: String,
    pub backend: Backend,
}

impl From<&wgpu::AdapterInfo> for AdapterFacts {
    fn from(i: &wgpu::AdapterInfo) -> Self {
        AdapterFacts {
            name: i.name.clone(),
            vendor: i.vendor,
            device_type: i.device_type,
            pci_bus_id: i.device_pci_bus_id.clone(),
            backend: i.backend,
        }
    }
}

/// Scheduler variables in the order they are consulted, with the PCI vendor they address.
pub const SCHEDULER_VARS: [(&str, u32, &str); 4] = [
    ("CUDA_VISIBLE_DEVICES", 0x10de, "NVIDIA"),
    // ROCR indexes physical GPUs; HIP's indexes are relative to ROCR's list, so ROCR is read first.
    ("ROCR_VISIBLE_DEVICES", 0x1002, "AMD"),
    ("HIP_VISIBLE_DEVICES", 0x1002, "AMD"),
    ("ZE_AFFINITY_MASK", 0x8086, "Intel"),
];

/// A GPU assigned through a scheduler variable.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Visible {
    pub var: &'static str,
    pub value: String,
    pub vendor: u32,
    pub vendor_name: &'static str,
    /// The first entry as an index; `None` for a UUID (`GPU-…`, `MIG-…`), which wgpu cannot match.
    pub ordinal: Option<usize>,
}

/// The first scheduler variable that assigns a GPU. Empty values, `-1` and Slurm's `NoDevFiles` assign none.
pub fn visible_from_env(env: impl Fn(&str) -> Option<String>) -> Option<Visible> {
    SCHEDULER_VARS
        .iter()
        .find_map(|&(var, vendor, vendor_name)| {
            let value = env(var)?;
            let first = value.split(',').next().unwrap_or("").trim();
            if first.is_empty() || first == "-1" || first == "NoDevFiles" {
                return None;
            }
            // ZE_AFFINITY_MASK entries are `device` or `device.subdevice`.
            let ordinal = first.split('.').next().and_then(|d| d.parse().ok());
            Some(Visible {
                var,
                value,
                vendor,
                vendor_name,
                ordinal,
            })
        })
}

/// The adapter chosen and, for logs, why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Chosen {
    pub index: usize,
    pub why: String,
}

fn type_rank(t: DeviceType) -> u8 {
    match t {
        DeviceType::DiscreteGpu => 0,
        DeviceType::IntegratedGpu => 1,
        DeviceType::VirtualGpu => 2,
        DeviceType::Other => 3,
        DeviceType::Cpu => 4,
    }
}

fn backend_rank(b: Backend) -> u8 {
    match b {
        Backend::Vulkan => 0,
        Backend::Metal => 1,
        Backend::Dx12 => 2,
        _ => 3,
    }
}

fn listing(adapters: &[AdapterFacts]) -> String {
    if adapters.is_empty() {
        return "none".into();
    }
    let v: Vec<String> = adapters
        .iter()
        .enumerate()
        .map(|(i, a)| format!("{i}: {} ({:?})", a.name, a.backend))
        .collect();
    v.join(", ")
}

/// Picks the adapter: `Index(n)` wins, then a name substring (case-insensitive), then the scheduler's GPU, then the
/// best type (discrete, integrated, virtual, other, CPU; ties in enumeration order).
///
/// The scheduler's ordinal k maps to the k-th adapter of that vendor on the most preferred backend that has one
/// (Vulkan, Metal, DX12, GL), ordered by PCI bus id, which is nvidia-smi's, ROCm's and Level Zero's order; when the
/// driver does not report bus ids, enumeration order is used instead. A UUID entry takes the vendor's first adapter
/// (right where the container sees only its own GPU).
pub fn choose(
    adapters: &[AdapterFacts],
    name: Option<&str>,
    choice: DeviceChoice,
    visible: Option<&Visible>,
) -> Result<Chosen> {
    if let DeviceChoice::Index(n) = choice {
        if n >= adapters.len() {
            return Err(Error::Config(format!(
                "--device {n}: there are {} adapters ({})",
                adapters.len(),
                listing(adapters)
            )));
        }
        return Ok(Chosen {
            index: n,
            why: format!("--device {n}"),
        });
    }
    let best = |idx: &mut Vec<usize>| {
        idx.sort_by_key(|&i| type_rank(adapters[i].device_type));
        idx.first().copied()
    };
    if let Some(n) = name {
        let low = n.to_lowercase();
        let mut idx: Vec<usize> = (0..adapters.len())
            .filter(|&i| adapters[i].name.to_lowercase().contains(&low))
            .collect();
        return match best(&mut idx) {
            Some(index) => Ok(Chosen {
                index,
                why: format!("name containing '{n}'"),
            }),
            None => Err(Error::NoAdapter {
                tried: format!(
                    "name containing '{n}'; adapters present: {}",
                    listing(adapters)
                ),
            }),
        };
    }
    if let Some(v) = visible {
        return map_visible(adapters, v);
    }
    match best(&mut (0..adapters.len()).collect()) {
        Some(index) => Ok(Chosen {
            index,
            why: "best adapter".into(),
        }),
        None => Err(Error::NoAdapter {
            tried: "adapters present: none".into(),
        }),
    }
}

fn map_visible(adapters: &[AdapterFacts], v: &Visible) -> Result<Chosen> {
    let assigned = format!("{}={}", v.var, v.value);
    let mut idx: Vec<usize> = (0..adapters.len())
        .filter(|&i| adapters[i].vendor == v.vendor && adapters[i].device_type != DeviceType::Cpu)
        .collect();
    let Some(backend) = idx
        .iter()
        .map(|&i| adapters[i].backend)
        .min_by_key(|&b| backend_rank(b))
    else {
        return Err(Error::NoAdapter {
            tried: format!(
                "{assigned} assigns an {} GPU but wgpu sees no {} adapter (adapters present: {}); install the \
                 vendor's Vulkan driver, or choose explicitly with --device N or --adapter NAME",
                v.vendor_name,
                v.vendor_name,
                listing(adapters)
            ),
        });
    };
    idx.retain(|&i| adapters[i].backend == backend);
    let by_bus = idx.iter().all(|&i| !adapters[i].pci_bus_id.is_empty());
    if by_bus {
        idx.sort_by_key(|&i| adapters[i].pci_bus_id.to_lowercase());
    }
    let k = v.ordinal.unwrap_or(0);
    let Some(&index) = idx.get(k) else {
        return Err(Error::NoAdapter {
            tried: format!(
                "{assigned} asks for {} GPU {k}, but {} has only {} (adapters present: {})",
                v.vendor_name,
                format!("{backend:?}").to_lowercase(),
                idx.len(),
                listing(adapters)
            ),
        });
    };
    let how = match (v.ordinal, by_bus) {
        (None, _) => "a UUID entry: the vendor's first adapter".to_string(),
        (Some(_), true) => format!("PCI bus id {}", adapters[index].pci_bus_id),
        (Some(_), false) => "enumeration order (no PCI bus ids reported)".to_string(),
    };
    Ok(Chosen {
        index,
        why: format!("{assigned} → {} GPU {k} by {how}", v.vendor_name),
    })
}

#[cfg(test)]
mod tests {
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
}
