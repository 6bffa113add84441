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
    /// As `Auto`, but a scheduler variable naming a GPU that wgpu cannot see (no driver for that vendor, an index
    /// past the count) falls back to the best adapter with a warning in [`Chosen::warning`] instead of an error.
    /// The Python package's default: Ray hands actors `CUDA_VISIBLE_DEVICES` even on machines whose `num_gpus`
    /// are logical. The CLI keeps `Auto`, where such a worker exits 3 and is retried elsewhere.
    AutoOrBest,
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
    /// Set when [`DeviceChoice::AutoOrBest`] fell back: what the scheduler assigned and what was opened instead.
    pub warning: Option<String>,
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
            warning: None,
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
                warning: None,
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
        return match (map_visible(adapters, v), choice) {
            (Err(Error::NoAdapter { tried }), DeviceChoice::AutoOrBest) if !adapters.is_empty() => {
                let mut c = choose(adapters, None, DeviceChoice::Auto, None)?;
                c.warning = Some(format!(
                    "{tried}; using adapter {} ({}) instead",
                    c.index, adapters[c.index].name
                ));
                c.why = format!("best adapter: {}={} not visible to wgpu", v.var, v.value);
                Ok(c)
            }
            (r, _) => r,
        };
    }
    match best(&mut (0..adapters.len()).collect()) {
        Some(index) => Ok(Chosen {
            index,
            why: "best adapter".into(),
            warning: None,
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
        warning: None,
    })
}

#[cfg(test)]
mod tests;
