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
//! assert!(report.sve > 0.0 && report.lsvr_ratio > 0.5);
//! # Ok::<(), nml_core::NmlError>(())
//! ```

mod eigen;
mod gram;
pub mod metrics;
mod preprocess;
mod verify;

pub use eigen::{ThinSvd, thin_svd};
pub use preprocess::Preprocess;
#[doc(hidden)]
pub use {eigen::eigenvalues_desc, gram::gram_f64, verify::gram_error_bound};

use std::collections::BTreeMap;

use burn::tensor::{Device, Tensor};
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
    /// Singular Value Entropy, -sum p_i ln p_i with p_i = s_i / sum s.
    pub sve: f64,
    /// s_1 / sum s (a share in (0, 1]).
    pub lsvr_ratio: f64,
    /// -ln(s_1 / sum s), the form the paper plots.
    pub lsvr_neglog: f64,
    /// exp(SVE).
    pub effective_rank: f64,
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
            sve: metrics::sve(&singular_values),
            lsvr_ratio: metrics::lsvr_ratio(&singular_values),
            lsvr_neglog: metrics::lsvr_neglog(&singular_values),
            effective_rank: metrics::effective_rank(&singular_values),
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
    // Where the spectrum is taken on the host anyway, the features are read where they lie:
    // a tensor of them would only be copied back out.
    let (n, d) = (set.n(), set.d());
    check_not_empty(n, d)?;
    let on_host = precision == GramPrecision::Exact || crate::device::is_host(device);
    let (values, method) = if on_host || d <= n {
        let values = mode.applied_host(set.features(), n, d);
        if on_host {
            host_spectrum(values, n, d, mode, precision).await?
        } else {
            // Uploaded a block at a time: one buffer of all the features may exceed what the
            // adapter can allocate or bind.
            checked_fast(Source::Staged { values, device: device.clone() }, mode, precision, n, d)
                .await?
        }
    } else {
        by_precision(set.features_tensor(device), mode, precision).await?
    };
    Ok(SpectrumReport::from_singular_values(set.name(), mode, n, d, values, method))
}

#[cfg(test)]
mod tests;
