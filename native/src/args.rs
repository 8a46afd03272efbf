//! Flag groups several commands share, flattened into each.

use nml_core::device::{ComputeDevice, select, select_many};
use nml_core::{BackendChoice, Result};

/// `--backend`: where a command computes.
#[derive(clap::Args, Clone, Debug)]
pub struct BackendArg {
    /// auto (WGPU on a hardware GPU adapter, else the CPU backend), wgpu (software adapters
    /// included) or cpu.
    #[arg(long, value_enum, default_value_t = BackendChoice::Auto)]
    pub backend: BackendChoice,
}

impl BackendArg {
    /// Selects the device and tells the user which one runs.
    pub fn device(&self) -> Result<ComputeDevice> {
        let device = select(self.backend)?;
        eprintln!("backend: {}", device.description);
        Ok(device)
    }
}

/// `--backend` or `--devices`: one device, or several to split pre-training over.
#[derive(clap::Args, Clone, Debug)]
pub struct DevicesArg {
    #[command(flatten)]
    pub backend: BackendArg,
    /// Pre-train data-parallel over several devices instead (every batch split across them,
    /// the optimiser on the first), e.g. `gpu:0,gpu:1`, or `cpu,cpu` on a machine without GPUs.
    /// Entries: cpu, wgpu, wgpu-cpu, gpu:N, igpu:N.
    #[arg(long, conflicts_with = "backend")]
    pub devices: Option<String>,
}

impl DevicesArg {
    /// The devices chosen (the first computes everything but pre-training), said on stderr.
    pub fn devices(&self) -> Result<Vec<ComputeDevice>> {
        match &self.devices {
            Some(list) => {
                let devices = select_many(list)?;
                let names: Vec<&str> = devices.iter().map(|d| d.description.as_str()).collect();
                eprintln!(
                    "devices: {} (batches split across them, the optimiser on the first)",
                    names.join(" + ")
                );
                Ok(devices)
            }
            None => Ok(vec![self.backend.device()?]),
        }
    }
}

/// The devices' description, as reports record it.
pub fn describe(devices: &[ComputeDevice]) -> String {
    devices.iter().map(|d| d.description.as_str()).collect::<Vec<_>>().join(" + ")
}
