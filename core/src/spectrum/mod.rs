//! Feature spectra: singular values of a feature matrix and the metrics the paper reads off them.
//!
//! # Method and accuracy
//! The fast path forms the Gram matrix (`X^T X`, or `X X^T` when N < D) in f32 (on a GPU, on the
//! device, a feature set uploaded in blocks of at most 64 MiB whose Grams are summed in f64; on
//! the CPU, on the host from blocks of 1024 rows summed in f64) and takes its
//! eigenvalues in f64 on the host; singular values are their square roots. By Weyl's
//! inequality rounding in the Gram moves each eigenvalue by at most `tau = ||G_fast - G||_2`,
//! which is harmless for large singular values but leaves a floor near `sqrt(tau)` under tiny
//! ones. [`Precision::Auto`] bounds how much SVE and LSVR could move if every eigenvalue moved
//! by `tau` in the worst pattern of directions, first with a model of f32 rounding
//! (`tau = 16 eps_f32 max_j G_jj`, free; accepted under 1e-5 relative, ten times inside the
//! guarantee since it is a model), and where that is too coarse with `tau` measured
//! ([`gram_error_bound`]: twelve Gaussian probes through `(G_fast - G)^3`, one f64 pass over
//! the features per power, an upper bound with probability 1 - 1e-6; accepted under 1e-4). Otherwise it
//! recomputes the Gram exactly in f64 on the host (blocked, only the lower triangle). The
//! guarantee: SVE and LSVR within 1e-4 relative of an f64 SVD of the same (preprocessed)
//! matrix; tested on spectra decaying over seven orders of magnitude.

mod error_bound;
mod linalg;
pub mod metrics;
mod preprocess;

pub use error_bound::gram_error_bound;
pub use linalg::{ThinSvd, gram_f64, gram_times, thin_svd};
pub use preprocess::Preprocess;

use std::collections::BTreeMap;

use burn::tensor::{Device, Tensor};
use serde::{Deserialize, Serialize};

use crate::data::FeatureSet;
use crate::error::{NmlError, Result};
use crate::readback::{blocking, floats};

/// How the Gram matrix is accumulated.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    /// Fast path, verified; exact path when the fast one could miss 1e-4.
    #[default]
    Auto,
    /// f32 Gram only (on the device, or from f32 blocks on the CPU), unchecked.
    Fast,
    /// f64 Gram on the host only.
    Exact,
}

impl std::str::FromStr for Precision {
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

/// Largest relative change of SVE or LSVR if each eigenvalue moved by up to `tau`, in any
/// direction: the first-order worst case over every pattern of shifts Weyl's inequality allows.
/// Each singular value's own range `[sqrt(l - tau), sqrt(l + tau)]` is taken exactly, and each
/// metric's sensitivity to it at its worse end (integrated where the range reaches zero, where
/// the entropy's slope is unbounded); only the coupling between coordinates is linearised, a
/// second-order term of relative size `tau / l`.
fn perturbation_bound(eigenvalues: &[f64], tau: f64) -> f64 {
    let nominal = linalg::singular_from_eigen(eigenvalues);
    let total: f64 = nominal.iter().sum();
    if total <= 0.0 {
        return if tau > 0.0 { f64::INFINITY } else { 0.0 };
    }
    let sve = metrics::sve(&nominal);
    let (mut sve_change, mut sum_change) = (0.0, 0.0);
    let mut first_change = 0.0;
    for (i, (&l, &s)) in eigenvalues.iter().zip(&nominal).enumerate() {
        let (lo, hi) = ((l - tau).max(0.0).sqrt(), (l.max(0.0) + tau).sqrt());
        let delta = (hi - s).max(s - lo);
        sum_change += delta;
        if i == 0 {
            first_change = delta;
        }
        // d SVE / d s_i = -(ln p_i + SVE) / S, monotone in s_i.
        let slope = |sigma: f64| ((sigma / total).ln() + sve).abs() / total;
        sve_change += if lo > 0.0 {
            slope(lo).max(slope(hi)) * delta
        } else {
            // The integral of |slope| from 0 to hi: (a / S)(1 - ln(a / S) - SVE), a = hi, while
            // the slope keeps its sign there (hi / S below exp(-SVE)); else the end value bound.
            let a = hi / total;
            if a < (-sve).exp() { a * (1.0 - a.ln() - sve) } else { f64::INFINITY }
        };
    }
    let first = nominal[0];
    // LSVR = s_1 / S: its relative change is ds_1 (1/s_1 - 1/S) - sum_{i>1} ds_i / S.
    let lsvr_change = first_change * (1.0 / first - 1.0 / total) + (sum_change - first_change) / total;
    let sve_relative = if sve > 0.0 { sve_change / sve } else { sve_change };
    sve_relative.max(lsvr_change)
}

/// Tolerance on [`perturbation_bound`] for the modelled eigenvalue shift (a model of f32
/// rounding, not a bound): ten times inside the 1e-4 guarantee.
const AUTO_TOLERANCE: f64 = 1e-5;
/// Tolerance on [`perturbation_bound`] for the measured shift, which bounds the Gram's error
/// (with probability 1 - 1e-6): the guarantee itself.
const MEASURED_TOLERANCE: f64 = 1e-4;
/// Multiple of `eps_f32 * max_j G_jj` taken as the eigenvalue perturbation of an f32 Gram.
const TAU_FACTOR: f64 = 16.0;

/// Singular values (descending) of a matrix taken as it is, with the method used.
pub fn singular_values(x: Tensor<2>, precision: Precision) -> Result<(Vec<f64>, &'static str)> {
    blocking(by_precision(x, Preprocess::Raw, precision))
}

/// The spectrum by the path `precision` names, on whatever device `x` lives. The fast Gram is
/// f32: on a GPU formed on the device (with nml's fused kernel where the device has it), on the
/// CPU formed on the host from f32 blocks summed in f64 ([`linalg::gram_f32_blocks`]). `Auto`
/// checks it (the model bound, then the measured one) and falls back to the exact path when
/// neither shows the 1e-4 guarantee holds. In the paper mode every row sums to zero, so the
/// all-ones direction is an exact null vector: the fast path projects it out of the Gram and
/// reports its singular value as exactly zero instead of as rounding noise.
async fn by_precision(x: Tensor<2>, mode: Preprocess, precision: Precision) -> Result<(Vec<f64>, &'static str)> {
    let [n, d] = x.dims();
    check_not_empty(n, d)?;
    if precision == Precision::Exact || crate::device::is_host(&x.device()) {
        let values = preprocessed_values(x, mode).await?;
        return host_spectrum(values, n, d, mode, precision).await;
    }
    checked_fast(Features::Device(x), mode, precision, n, d).await
}

fn check_not_empty(n: usize, d: usize) -> Result<()> {
    if n == 0 || d == 0 {
        return Err(NmlError::Invalid("spectrum of an empty matrix".into()));
    }
    Ok(())
}

/// The spectrum of preprocessed values on the host, by the path `precision` names.
async fn host_spectrum(values: Vec<f32>, n: usize, d: usize, mode: Preprocess, precision: Precision) -> Result<(Vec<f64>, &'static str)> {
    if precision == Precision::Exact {
        return Ok(exact_spectrum(&values, n, d));
    }
    checked_fast(Features::Host(values), mode, precision, n, d).await
}

/// Singular values from the Gram accumulated in f64.
fn exact_spectrum(values: &[f32], n: usize, d: usize) -> (Vec<f64>, &'static str) {
    let gram = linalg::gram_f64(values, n, d);
    let eig = linalg::eigenvalues_desc(gram.as_ref());
    (linalg::singular_from_eigen(&eig), "gram-f64-host")
}

/// Where the fast Gram is formed from.
enum Features {
    /// Preprocessed values on the host (the CPU backend).
    Host(Vec<f32>),
    /// The raw features on a GPU.
    Device(Tensor<2>),
    /// Preprocessed values on the host whose Gram a GPU forms, uploaded by [`staged_gram`].
    Staged { values: Vec<f32>, device: Device },
}

/// Most feature bytes [`staged_gram`] uploads at once: half of WebGPU's default 128 MiB limit
/// on a storage binding, so a browser's adapter takes every block (a 50000 x 2048 matrix is
/// 410 MB in f32, more than llvmpipe allocates in one buffer).
const STAGE_BYTES: usize = 64 << 20;

/// The Gram (N >= D) of row-major host values, formed on `device` from blocks of
/// `rows_per_stage` rows: each block's f32 Gram comes from nml's kernel (its composed reference
/// where there is none), and the blocks are summed in f64 on the host, which adds no f32
/// rounding. The next block is queued before the last one is read back, so the device does
/// not wait on the host.
///
/// The values come preprocessed, not raw with the kernel's fused preprocessing: then the
/// Gram's only error is the one the `Auto` check bounds against these same values. Fused, the
/// device's rounding of the preprocessing was a second error the check counts against the
/// Gram: at 50000 x 2048 on llvmpipe it took the true error from 1.4e-4 to 2.4e-4 and the
/// measured bound past what the 1e-4 guarantee allows.
async fn staged_gram(values: &[f32], n: usize, d: usize, device: &Device, rows_per_stage: usize) -> Result<faer::Mat<f64>> {
    use burn::tensor::TensorData;
    let rows_per_stage = rows_per_stage.max(1);
    let mut gram = faer::Mat::<f64>::zeros(d, d);
    let mut add = |part: Vec<f32>| {
        // Row-major, but symmetric: row j is column j.
        for (j, column) in part.chunks_exact(d).enumerate() {
            for (g, &v) in gram.col_as_slice_mut(j).iter_mut().zip(column) {
                *g += f64::from(v);
            }
        }
    };
    let mut queued: Option<Tensor<2>> = None;
    for start in (0..n).step_by(rows_per_stage) {
        let end = (start + rows_per_stage).min(n);
        let block = Tensor::<2>::from_data(TensorData::new(values[start * d..end * d].to_vec(), [end - start, d]), device);
        let part = crate::kernels::preprocessed_gram(block, Preprocess::Raw);
        if let Some(previous) = queued.replace(part) {
            add(floats(previous).await?);
        }
    }
    if let Some(last) = queued {
        add(floats(last).await?);
    }
    Ok(gram)
}

/// The preprocessed features on the host: on a host device one fused pass over the values,
/// on a GPU the device's own ops before the read.
async fn preprocessed_values(x: Tensor<2>, mode: Preprocess) -> Result<Vec<f32>> {
    let [n, d] = x.dims();
    if crate::device::is_host(&x.device()) {
        let mut values = floats(x).await?;
        mode.apply_host(&mut values, n, d);
        Ok(values)
    } else {
        floats(mode.apply(x)).await
    }
}

/// The f32 Gram's spectrum, checked under `Auto`.
async fn checked_fast(
    features: Features,
    mode: Preprocess,
    precision: Precision,
    n: usize,
    d: usize,
) -> Result<(Vec<f64>, &'static str)> {
    let m = n.min(d);
    let (mut gram_host, method) = match &features {
        Features::Host(values) => (linalg::gram_f32_blocks(values, n, d), "gram-f32-blocks-host"),
        Features::Device(x) => {
            let gram = if d <= n {
                crate::kernels::preprocessed_gram(x.clone(), mode)
            } else {
                let v = mode.apply(x.clone());
                v.clone().matmul(v.transpose())
            };
            (linalg::square_from_f32(&floats(gram).await?, m), "gram-f32-device")
        }
        Features::Staged { values, device } => {
            let rows = STAGE_BYTES / (d * size_of::<f32>());
            (staged_gram(values, n, d, device, rows).await?, "gram-f32-device")
        }
    };
    let max_diag = (0..m).map(|i| gram_host[(i, i)]).fold(0.0, f64::max);
    let deflate = mode == Preprocess::Paper && d <= n && d > 1;
    // The measured bound compares the Gram before the ones direction is projected out: the
    // projection cannot enlarge the error.
    let undeflated = (precision == Precision::Auto && deflate).then(|| gram_host.clone());
    if deflate {
        linalg::project_out_ones(&mut gram_host);
    }
    // Where the values are on the host and there are threads, `Auto` measures the Gram's error
    // while the eigen solver runs, which leaves the second core mostly idle: on 2 cores, for
    // 1024 x 1024 the solver took 0.08-0.10 s alone and 0.08 s with the 0.04 s check beside
    // it; for 2048 x 2048, 0.49 s alone and 0.58-0.60 s with the 0.22-0.27 s check. The check
    // is what the benchmark's features, like most with small singular values, go on to need;
    // when the model alone accepts, the measurement is dropped.
    let speculate = precision == Precision::Auto && cfg!(not(target_arch = "wasm32"));
    let host_values = match &features {
        Features::Host(values) | Features::Staged { values, .. } => Some(values),
        Features::Device(_) => None,
    };
    let (mut eig, measured) = match host_values.filter(|_| speculate) {
        Some(values) => {
            let fast_gram = undeflated.as_ref().unwrap_or(&gram_host);
            let (eig, measured) = join(|| linalg::eigenvalues_desc(gram_host.as_ref()), || gram_error_bound(values, n, d, fast_gram));
            (eig, Some(measured))
        }
        None => (linalg::eigenvalues_desc(gram_host.as_ref()), None),
    };
    if eig.iter().any(|v| !v.is_finite()) {
        return Err(NmlError::Invalid("eigenvalue solver did not converge".into()));
    }
    if deflate {
        // The projected Gram's eigenvalue nearest zero belongs to the ones direction.
        let null = (0..m).min_by(|&a, &b| eig[a].abs().total_cmp(&eig[b].abs())).expect("m > 1");
        eig.remove(null);
    }
    if precision == Precision::Auto {
        let modelled = TAU_FACTOR * f64::from(f32::EPSILON) * max_diag;
        if perturbation_bound(&eig, modelled) > AUTO_TOLERANCE {
            let values = match features {
                Features::Host(values) => values,
                Features::Device(x) => preprocessed_values(x, mode).await?,
                Features::Staged { values, .. } => values,
            };
            let fast_gram = undeflated.as_ref().unwrap_or(&gram_host);
            let measured = measured.unwrap_or_else(|| gram_error_bound(&values, n, d, fast_gram));
            if perturbation_bound(&eig, measured) > MEASURED_TOLERANCE {
                return Ok(exact_spectrum(&values, n, d));
            }
        }
    }
    let mut values = linalg::singular_from_eigen(&eig);
    if deflate {
        values.push(0.0);
    }
    Ok((values, method))
}

/// Runs `a` and `b` on two threads where there are threads, else one after the other.
fn join<A: Send, B: Send>(a: impl FnOnce() -> A + Send, b: impl FnOnce() -> B + Send) -> (A, B) {
    #[cfg(not(target_arch = "wasm32"))]
    {
        rayon::join(a, b)
    }
    #[cfg(target_arch = "wasm32")]
    {
        (a(), b())
    }
}

/// Preprocesses a feature tensor and measures its spectrum.
pub fn measure_tensor(x: Tensor<2>, name: &str, mode: Preprocess, precision: Precision) -> Result<SpectrumReport> {
    blocking(measure_tensor_async(x, name, mode, precision))
}

/// [`measure_tensor`] for devices that can only be read asynchronously (WebGPU in a browser).
pub async fn measure_tensor_async(x: Tensor<2>, name: &str, mode: Preprocess, precision: Precision) -> Result<SpectrumReport> {
    let [n, d] = x.dims();
    let (values, method) = by_precision(x, mode, precision).await?;
    Ok(SpectrumReport::from_singular_values(name, mode, n, d, values, method))
}

/// Measures the spectrum of a feature set on `device`.
pub fn measure(set: &FeatureSet, mode: Preprocess, precision: Precision, device: &Device) -> Result<SpectrumReport> {
    blocking(measure_async(set, mode, precision, device))
}

/// [`measure`] for devices that can only be read asynchronously (WebGPU in a browser).
pub async fn measure_async(set: &FeatureSet, mode: Preprocess, precision: Precision, device: &Device) -> Result<SpectrumReport> {
    // Where the spectrum is taken on the host anyway, the features are read where they lie:
    // a tensor of them would only be copied back out.
    let (n, d) = (set.n, set.d);
    check_not_empty(n, d)?;
    let on_host = precision == Precision::Exact || crate::device::is_host(device);
    let (values, method) = if on_host || d <= n {
        let values = mode.applied_host(&set.features, n, d);
        if on_host {
            host_spectrum(values, n, d, mode, precision).await?
        } else {
            // Uploaded a block at a time: one buffer of all the features may exceed what the
            // adapter can allocate or bind.
            checked_fast(Features::Staged { values, device: device.clone() }, mode, precision, n, d).await?
        }
    } else {
        by_precision(set.features_tensor(device), mode, precision).await?
    };
    Ok(SpectrumReport::from_singular_values(&set.name, mode, n, d, values, method))
}

#[cfg(test)]
mod tests;
