pub mod demo;
pub mod export;
pub mod noise;
pub mod predict;
pub mod spectrum;
pub mod tune;

use std::path::Path;

use nml_core::device::{BackendChoice, ComputeDevice, select};
use nml_core::io::write_atomic;
use nml_core::{NmlError, Result};
use serde::Serialize;

/// Selects the device and tells the user which one runs.
pub fn device(choice: BackendChoice) -> Result<ComputeDevice> {
    let device = select(choice)?;
    eprintln!("backend: {}", device.description);
    Ok(device)
}

/// Writes pretty JSON atomically.
pub fn write_json(path: &Path, value: &impl Serialize) -> Result<()> {
    let text = serde_json::to_string_pretty(value)
        .map_err(|e| NmlError::Invalid(format!("cannot serialise {}: {e}", path.display())))?;
    write_atomic(path, format!("{text}\n").as_bytes())
}
