//! Picking the Burn device: WGPU when a GPU adapter exists, the CPU backend (flex) otherwise.

use std::fmt;
use std::str::FromStr;

use burn::tensor::Device;
use serde::{Deserialize, Serialize};

use crate::error::{NmlError, Result};

/// What the user asked for on the command line (`--backend auto|wgpu|cpu`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum BackendChoice {
    /// WGPU if a hardware GPU adapter is present, else the CPU backend.
    #[default]
    Auto,
    /// WGPU on whatever adapter it finds, software adapters (llvmpipe, SwiftShader) included.
    #[cfg_attr(feature = "clap", value(alias = "gpu"))]
    Wgpu,
    /// Burn's pure-Rust CPU backend (flex).
    #[cfg_attr(feature = "clap", value(alias = "flex"))]
    Cpu,
}

impl FromStr for BackendChoice {
    type Err = NmlError;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "auto" => Ok(Self::Auto),
            "wgpu" | "gpu" => Ok(Self::Wgpu),
            "cpu" | "flex" => Ok(Self::Cpu),
            other => {
                Err(NmlError::Invalid(format!("unknown backend {other:?}; use auto, wgpu or cpu")))
            }
        }
    }
}

impl fmt::Display for BackendChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Auto => "auto",
            Self::Wgpu => "wgpu",
            Self::Cpu => "cpu",
        })
    }
}

/// A device with a human-readable account of what it is and why it was chosen.
#[derive(Clone, Debug)]
pub struct ComputeDevice {
    pub device: Device,
    /// `"wgpu"` or `"cpu"`.
    pub kind: &'static str,
    /// E.g. `"wgpu: NVIDIA H100 (Vulkan, discrete GPU)"` or `"cpu: flex (no GPU adapter)"`.
    pub description: String,
}

impl ComputeDevice {
    pub fn cpu(reason: &str) -> Self {
        let description = if reason.is_empty() {
            "cpu: flex".to_string()
        } else {
            format!("cpu: flex ({reason})")
        };
        Self { device: Device::flex(), kind: "cpu", description }
    }

    pub fn is_cpu(&self) -> bool {
        self.kind == "cpu"
    }
}

/// Whether tensors on `device` live in host memory (Burn's CPU backend, with or without
/// autodiff), so host-side numerics can read them without a transfer.
pub fn is_host(device: &Device) -> bool {
    device.clone().without_autodiff() == Device::flex()
}

/// Selects a device as `choice` says. Auto never fails: without a GPU it falls back to the CPU
/// and says so in the description.
#[cfg(not(target_arch = "wasm32"))]
pub fn select(choice: BackendChoice) -> Result<ComputeDevice> {
    match choice {
        BackendChoice::Cpu => Ok(ComputeDevice::cpu("")),
        BackendChoice::Wgpu => wgpu_device(false),
        BackendChoice::Auto => match wgpu_device(true) {
            Ok(device) => Ok(device),
            Err(why) => Ok(ComputeDevice::cpu(&why.to_string())),
        },
    }
}

/// The adapter WGPU would pick: its description and whether it is real hardware.
#[cfg(all(not(target_arch = "wasm32"), feature = "wgpu"))]
fn best_adapter() -> Option<(String, bool)> {
    use wgpu::{Backends, DeviceType, Instance};

    let adapters = pollster::block_on(Instance::default().enumerate_adapters(Backends::all()));
    let infos: Vec<wgpu::AdapterInfo> = adapters.iter().map(|a| a.get_info()).collect();
    let is_hardware = |t: DeviceType| !matches!(t, DeviceType::Cpu | DeviceType::Other);
    let best = infos
        .iter()
        .find(|i| i.device_type == DeviceType::DiscreteGpu)
        .or_else(|| infos.iter().find(|i| is_hardware(i.device_type)))
        .or_else(|| infos.first())?;
    Some((
        format!("wgpu: {} ({:?}, {:?})", best.name, best.backend, best.device_type),
        is_hardware(best.device_type),
    ))
}

/// WGPU's runtime can be registered once per process, so the adapter and the started device
/// are each found once and kept.
#[cfg(all(not(target_arch = "wasm32"), feature = "wgpu"))]
fn wgpu_device(hardware_only: bool) -> Result<ComputeDevice> {
    use std::sync::OnceLock;
    static ADAPTER: OnceLock<Option<(String, bool)>> = OnceLock::new();
    static DEVICE: OnceLock<std::result::Result<Device, String>> = OnceLock::new();

    let Some((description, is_hardware)) = ADAPTER.get_or_init(best_adapter) else {
        return Err(NmlError::Backend("no GPU adapter".into()));
    };
    if hardware_only && !is_hardware {
        return Err(NmlError::Backend(format!(
            "only a software adapter ({description}); use --backend wgpu to run on it"
        )));
    }
    let device = DEVICE
        .get_or_init(|| Device::wgpu_options().init().map_err(|e| e.to_string()))
        .clone()
        .map_err(|e| NmlError::Backend(format!("WGPU failed to start: {e}")))?;
    Ok(ComputeDevice { device, kind: "wgpu", description: description.clone() })
}

#[cfg(all(not(target_arch = "wasm32"), not(feature = "wgpu")))]
fn wgpu_device(_hardware_only: bool) -> Result<ComputeDevice> {
    Err(NmlError::Backend("built without the wgpu feature".into()))
}

/// Several devices for data-parallel training, from a comma-separated list (`--devices`):
/// `cpu` (the flex backend), `wgpu` (WGPU's default adapter), `wgpu-cpu` (WGPU's software
/// adapter, e.g. llvmpipe), `gpu:N`, `igpu:N` (the N-th discrete or integrated GPU).
/// An entry may repeat: `cpu,cpu` runs two replicas on the host.
#[cfg(not(target_arch = "wasm32"))]
pub fn select_many(list: &str) -> Result<Vec<ComputeDevice>> {
    let entries: Vec<&str> = list.split(',').map(str::trim).filter(|e| !e.is_empty()).collect();
    if entries.is_empty() {
        return Err(NmlError::Invalid("--devices needs at least one device".into()));
    }
    entries.into_iter().map(one_device).collect()
}

#[cfg(not(target_arch = "wasm32"))]
fn one_device(entry: &str) -> Result<ComputeDevice> {
    let bad = || {
        NmlError::Invalid(format!(
            "unknown device {entry:?}; use cpu, wgpu, wgpu-cpu, gpu:N or igpu:N"
        ))
    };
    let (kind, index) = match entry.split_once(':') {
        Some((kind, index)) => (kind, Some(index.parse::<usize>().map_err(|_| bad())?)),
        None => (entry, None),
    };
    match (kind, index) {
        ("cpu", None) => Ok(ComputeDevice::cpu("")),
        #[cfg(feature = "wgpu")]
        (kind @ ("wgpu" | "wgpu-cpu" | "gpu" | "igpu"), index) => {
            use burn::tensor::DeviceKind;
            let device_kind = match (kind, index) {
                ("wgpu", None) => DeviceKind::DefaultDevice,
                ("wgpu-cpu", None) => DeviceKind::Cpu,
                ("gpu", Some(i)) => DeviceKind::DiscreteGpu(i),
                ("igpu", Some(i)) => DeviceKind::IntegratedGpu(i),
                _ => return Err(bad()),
            };
            Ok(ComputeDevice {
                device: Device::wgpu(device_kind),
                kind: "wgpu",
                description: format!("wgpu: {entry}"),
            })
        }
        #[cfg(not(feature = "wgpu"))]
        ("wgpu" | "wgpu-cpu" | "gpu" | "igpu", _) => {
            Err(NmlError::Backend("built without the wgpu feature".into()))
        }
        _ => Err(bad()),
    }
}
