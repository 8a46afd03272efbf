//! What the page computes, kept apart from the UI so it is testable natively and in WASM: reading
//! the files a person picks, spectra, and one tuning run (the work of the page's Web Worker).

use nml_core::device::ComputeDevice;
use nml_core::spectrum::{GramPrecision, Preprocess, SpectrumReport, measure};
use nml_core::tune::{EpochStats, TuneConfig, TuneReport, tune_async};
use nml_core::{FeatureSet, NmlError, Observer, Result};
use serde::{Deserialize, Serialize};

/// Files larger than this are refused before they are read: the page holds every set in memory
/// (as f32, plus a copy per run in the worker).
pub const MAX_FILE_BYTES: f64 = 512.0 * 1024.0 * 1024.0;

/// A file the user picked: its name and bytes.
pub struct Picked {
    pub name: String,
    pub bytes: Vec<u8>,
}

/// Refuses a file too large to hold, by name, before reading it.
pub fn check_size(name: &str, bytes: f64) -> Result<()> {
    if bytes > MAX_FILE_BYTES {
        return Err(NmlError::format(
            name,
            format!(
                "{:.0} MiB is more than this page holds in memory ({:.0} MiB at most)",
                bytes / 1048576.0,
                MAX_FILE_BYTES / 1048576.0
            ),
        ));
    }
    Ok(())
}

/// One safetensors feature set, or a features `.npy` with its labels `.npy` (in either order:
/// the float array is taken as the features).
pub fn feature_set(files: &[Picked]) -> Result<FeatureSet> {
    match files {
        [one] => FeatureSet::from_safetensors(&one.bytes, &one.name),
        [a, b] => FeatureSet::from_npy(&a.bytes, &a.name, &b.bytes, &b.name).or_else(|first| {
            FeatureSet::from_npy(&b.bytes, &b.name, &a.bytes, &a.name).map_err(|_| first)
        }),
        _ => Err(NmlError::Invalid(
            "pick one .safetensors file, or a features .npy and a labels .npy".into(),
        )),
    }
}

/// The device of the page's own work, the spectra of loaded sets: Burn's CPU backend, compiled to
/// WASM. Tuning runs in the worker pick theirs ([`crate::backend::select`]).
pub fn device() -> ComputeDevice {
    ComputeDevice::cpu("in the browser")
}

/// The spectrum the page shows (paper mode: rows L2-normalised, then centred).
pub fn spectrum(set: &FeatureSet) -> Result<SpectrumReport> {
    measure(set, Preprocess::Paper, GramPrecision::Auto, &device().device)
}

/// Everything one tuning run needs; the worker receives it from the page.
pub struct TuneJob {
    pub config: TuneConfig,
    pub train: FeatureSet,
    pub test: FeatureSet,
    pub ood: Vec<(String, FeatureSet)>,
}

/// A finished run: the report, and the full spectra of the test and OOD sets after the head's
/// transform (MLP and NMTune; empty for a linear probe).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TuneResult {
    pub report: TuneReport,
    pub after: Vec<SpectrumReport>,
}

/// Runs `job` on `device` as `nml tune` does, reporting each epoch to `observer`.
pub async fn tune(
    job: &TuneJob,
    device: &ComputeDevice,
    observer: &mut dyn Observer<EpochStats>,
) -> Result<TuneResult> {
    let mut outcome =
        tune_async(&job.train, &job.test, &job.ood, &job.config, &device.device, observer).await?;
    outcome.report.backend = device.description.clone();
    Ok(TuneResult { report: outcome.report, after: outcome.transformed_spectra })
}
