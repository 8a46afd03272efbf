//! Feature spectra: singular values of a feature matrix and the metrics the paper reads off them.
//!
//! This file is the API and the report; the modules below it read in order: [`Preprocess`]
//! (what is measured), `gram` (how the Gram matrix is formed: in f64 on the host, in f32 from
//! blocks on the host, or in f32 on a GPU), `verify` (the `auto` precision's check that an f32
//! Gram keeps the guarantee) and `eigen` (the f64 eigen solve, and the thin SVD NMTune
//! differentiates).
//!
//! # Method and accuracy
//! Singular values are the square roots of the Gram's eigenvalues, taken in f64. The fast path
//! forms the Gram in f32 (summing blocks in f64); [`GramPrecision::Auto`] checks it and falls
//! back to the exact f64 Gram when it cannot show the guarantee: SVE and LSVR within 1e-4
//! relative of an f64 SVD of the same (preprocessed) matrix, tested on spectra decaying over
//! seven orders of magnitude.
//!
//! # Examples
//!
//! ```
//! use nml_core::spectrum::{GramPrecision, Preprocess, measure};
//! use nml_core::{Device, FeatureSet};
//!
//! // Four samples of three features: two independent directions and one that repeats.
//! let features = vec![1.0, 0.0, 1.0, 0.0, 1.0, 0.0, 2.0, 0.0, 2.0, 0.0, 2.0, 0.0];
//! let set = FeatureSet::new("toy", features, 3, vec![0, 1, 0, 1], None)?;
//! let report = measure(&set, Preprocess::Raw, GramPrecision::Auto, &Device::flex())?;
//! assert_eq!(report.singular_values.len(), 3);
//! assert!(report.singular_values[2] < 1e-6, "rank two");
//! assert!(report.metrics.sve > 0.0 && report.metrics.lsvr_ratio > 0.5);
//! # Ok::<(), nml_core::NmlError>(())
//! ```

pub mod compare;
mod eigen;
mod gram;
pub mod metrics;
mod preprocess;
mod verify;

pub use eigen::{ThinSvd, thin_svd};
pub use metrics::SpectralMetrics;
pub use preprocess::Preprocess;
#[doc(hidden)]
pub use {eigen::eigenvalues_desc, gram::gram_f64, verify::gram_error_bound};

use std::collections::BTreeMap;

use burn::tensor::{Device, Tensor, TensorData};
use serde::{Deserialize, Serialize};

use crate::data::FeatureSet;
use crate::error::{NmlError, Result};
use crate::readback::blocking;
use gram::Source;
use preprocess::preprocessed_values;
use verify::{checked_fast, exact_spectrum};

/// How the Gram matrix is accumulated.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum GramPrecision {
    /// Fast path, verified; exact path when the fast one could miss 1e-4.
    #[default]
    Auto,
    /// f32 Gram only (on the device, or from f32 blocks on the CPU), unchecked.
    Fast,
    /// f64 Gram on the host only.
    Exact,
}

impl std::str::FromStr for GramPrecision {
    type Err = NmlError;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "auto" => Ok(Self::Auto),
            "fast" => Ok(Self::Fast),
            "exact" => Ok(Self::Exact),
            other => Err(NmlError::Invalid(format!(
                "unknown precision {other:?}; use auto, fast or exact"
            ))),
        }
    }
}

/// Everything nml reports about one feature matrix's spectrum.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SpectrumReport {
    pub name: String,
    pub mode: Preprocess,
    pub n: usize,
    pub d: usize,
    /// SVE, LSVR and the field's other metrics (written beside the other fields in JSON).
    #[serde(flatten)]
    pub metrics: SpectralMetrics,
    /// Share of the k largest singular values, for k = 1, 5, 10, 50.
    pub top_k_share: BTreeMap<usize, f64>,
    /// All min(N, D) singular values, descending.
    pub singular_values: Vec<f64>,
    /// `gram-f32-device` or `gram-f64-host`.
    pub method: String,
}

impl SpectrumReport {
    pub fn from_singular_values(
        name: impl Into<String>,
        mode: Preprocess,
        n: usize,
        d: usize,
        singular_values: Vec<f64>,
        method: &str,
    ) -> Self {
        let top_k_share = [1, 5, 10, 50]
            .into_iter()
            .map(|k| (k, metrics::top_k_share(&singular_values, k)))
            .collect();
        Self {
            name: name.into(),
            mode,
            n,
            d,
            metrics: SpectralMetrics::of(&singular_values, n, d),
            top_k_share,
            singular_values,
            method: method.to_string(),
        }
    }
}

/// Singular values (descending) of a matrix taken as it is, with the method used.
pub fn singular_values(x: Tensor<2>, precision: GramPrecision) -> Result<(Vec<f64>, &'static str)> {
    blocking(by_precision(x, Preprocess::Raw, precision))
}

/// The spectrum by the path `precision` names, on whatever device `x` lives: on the host from
/// the preprocessed values, on a GPU from the features where they are.
async fn by_precision(
    x: Tensor<2>,
    mode: Preprocess,
    precision: GramPrecision,
) -> Result<(Vec<f64>, &'static str)> {
    let [n, d] = x.dims();
    check_not_empty(n, d)?;
    if precision == GramPrecision::Exact || crate::device::is_host(&x.device()) {
        let values = preprocessed_values(x, mode).await?;
        return host_spectrum(values, n, d, mode, precision).await;
    }
    checked_fast(Source::Device(x), mode, precision, n, d).await
}

fn check_not_empty(n: usize, d: usize) -> Result<()> {
    if n == 0 || d == 0 {
        return Err(NmlError::Invalid("spectrum of an empty matrix".into()));
    }
    Ok(())
}

/// The spectrum of preprocessed values on the host, by the path `precision` names.
async fn host_spectrum(
    values: Vec<f32>,
    n: usize,
    d: usize,
    mode: Preprocess,
    precision: GramPrecision,
) -> Result<(Vec<f64>, &'static str)> {
    if precision == GramPrecision::Exact {
        return Ok(exact_spectrum(&values, n, d));
    }
    checked_fast(Source::Host(values), mode, precision, n, d).await
}

/// Preprocesses a feature tensor and measures its spectrum.
pub fn measure_tensor(
    x: Tensor<2>,
    name: &str,
    mode: Preprocess,
    precision: GramPrecision,
) -> Result<SpectrumReport> {
    blocking(measure_tensor_async(x, name, mode, precision))
}

/// [`measure_tensor`] for devices that can only be read asynchronously (WebGPU in a browser).
pub async fn measure_tensor_async(
    x: Tensor<2>,
    name: &str,
    mode: Preprocess,
    precision: GramPrecision,
) -> Result<SpectrumReport> {
    let [n, d] = x.dims();
    let (values, method) = by_precision(x, mode, precision).await?;
    Ok(SpectrumReport::from_singular_values(name, mode, n, d, values, method))
}

/// Measures the spectrum of a feature set on `device`.
pub fn measure(
    set: &FeatureSet,
    mode: Preprocess,
    precision: GramPrecision,
    device: &Device,
) -> Result<SpectrumReport> {
    blocking(measure_async(set, mode, precision, device))
}

/// [`measure`] for devices that can only be read asynchronously (WebGPU in a browser).
pub async fn measure_async(
    set: &FeatureSet,
    mode: Preprocess,
    precision: GramPrecision,
    device: &Device,
) -> Result<SpectrumReport> {
    measure_matrix_async(set.name(), set.features(), set.n(), set.d(), mode, precision, device)
        .await
}

/// Measures the spectrum of an `n` x `d` row-major matrix: features without labels, which a
/// spectrum does not need.
pub fn measure_matrix(
    name: &str,
    features: &[f32],
    n: usize,
    d: usize,
    mode: Preprocess,
    precision: GramPrecision,
    device: &Device,
) -> Result<SpectrumReport> {
    blocking(measure_matrix_async(name, features, n, d, mode, precision, device))
}

/// [`measure_matrix`] for devices that can only be read asynchronously.
pub async fn measure_matrix_async(
    name: &str,
    features: &[f32],
    n: usize,
    d: usize,
    mode: Preprocess,
    precision: GramPrecision,
    device: &Device,
) -> Result<SpectrumReport> {
    check_not_empty(n, d)?;
    if features.len() != n * d {
        return Err(NmlError::Invalid(format!(
            "{name}: {} values are not an {n} x {d} matrix",
            features.len()
        )));
    }
    // Where the spectrum is taken on the host anyway, the features are read where they lie:
    // a tensor of them would only be copied back out.
    let on_host = precision == GramPrecision::Exact || crate::device::is_host(device);
    let (values, method) = if on_host || d <= n {
        let values = mode.applied_host(features, n, d);
        if on_host {
            host_spectrum(values, n, d, mode, precision).await?
        } else {
            // Uploaded a block at a time: one buffer of all the features may exceed what the
            // adapter can allocate or bind.
            checked_fast(Source::Staged { values, device: device.clone() }, mode, precision, n, d)
                .await?
        }
    } else {
        let x = Tensor::from_data(TensorData::new(features.to_vec(), [n, d]), device);
        by_precision(x, mode, precision).await?
    };
    Ok(SpectrumReport::from_singular_values(name, mode, n, d, values, method))
}

#[cfg(test)]
mod tests;
