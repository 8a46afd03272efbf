//! What the page computes, kept apart from the UI so it is testable natively and in WASM.

use nml_core::Result;
use nml_core::device::ComputeDevice;
use nml_core::data::{FeatureSet, feature_set_from_npy, safetensors_file};
use nml_core::spectrum::{Precision, Preprocess, SpectrumReport, measure};

/// A file the user picked: its name and bytes.
pub struct Picked {
    pub name: String,
    pub bytes: Vec<u8>,
}

/// One safetensors feature set, or a features `.npy` with its labels `.npy` (in either order:
/// the float array is taken as the features).
pub fn feature_set(files: &[Picked]) -> Result<FeatureSet> {
    match files {
        [one] => safetensors_file::read_feature_set(&one.bytes, &one.name),
        [a, b] => feature_set_from_npy(&a.bytes, &a.name, &b.bytes, &b.name)
            .or_else(|first| feature_set_from_npy(&b.bytes, &b.name, &a.bytes, &a.name).map_err(|_| first)),
        _ => Err(nml_core::NmlError::Invalid(
            "pick one .safetensors file, or a features .npy and a labels .npy".into(),
        )),
    }
}

/// The spectrum the page shows, measured on the CPU backend.
pub fn spectrum(set: &FeatureSet, mode: Preprocess) -> Result<SpectrumReport> {
    measure(set, mode, Precision::Auto, &ComputeDevice::cpu("").device)
}
