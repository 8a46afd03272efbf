//! How features are prepared before their spectrum is taken: the modes, on tensors and on host
//! values, and as the affine statistics nml's Gram kernel applies while it reads.

use burn::tensor::Tensor;
use serde::{Deserialize, Serialize};

use crate::error::{NmlError, Result};
use crate::kernels::AffineStats;
use crate::ops::l2_normalize_rows;
use crate::readback::floats;

/// How features are prepared before their singular values are taken. The name is written into
/// every report so numbers from different modes are never compared by accident.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum Preprocess {
    /// As the authors' analysis code: each row L2-normalised, then each row minus its own mean
    /// over the D dimensions.
    #[default]
    Paper,
    /// Columns centred (the covariance spectrum).
    Centered,
    /// The features as they are.
    Raw,
}

impl Preprocess {
    pub fn name(self) -> &'static str {
        match self {
            Self::Paper => "paper",
            Self::Centered => "centered",
            Self::Raw => "raw",
        }
    }

    pub fn apply(self, x: Tensor<2>) -> Tensor<2> {
        match self {
            Self::Paper => {
                let unit = l2_normalize_rows(x);
                let row_mean = unit.clone().mean_dim(1);
                unit - row_mean
            }
            Self::Centered => {
                let col_mean = x.clone().mean_dim(0);
                x - col_mean
            }
            Self::Raw => x,
        }
    }

    /// The mode as an affine map of each element of `x` (N x D), for [`crate::kernels::affine_gram`].
    pub fn affine_stats(self, x: Tensor<2>) -> AffineStats {
        let [n, d] = x.dims();
        let device = x.device();
        match self {
            Self::Paper => {
                // The row mean of x / |x| is the row sum over |x| over D.
                let norms = x.clone().square().sum_dim(1).sqrt().clamp_min(1e-12);
                let row_offset = x.sum_dim(1) / norms.clone() / d as f64;
                AffineStats {
                    row_scale: norms,
                    row_offset,
                    col_offset: Tensor::zeros([1, d], &device),
                }
            }
            Self::Centered => {
                AffineStats { col_offset: x.mean_dim(0), ..AffineStats::identity(n, d, &device) }
            }
            Self::Raw => AffineStats::identity(n, d, &device),
        }
    }

    /// [`Preprocess::apply`] on row-major host values, in place: one pass per row (two for
    /// `Centered`), rows shared among threads, sums in f64. The spectrum's CPU path uses it
    /// instead of Burn's composed ops, each of which reads and writes the whole matrix.
    pub fn apply_host(self, x: &mut [f32], n: usize, d: usize) {
        assert_eq!(x.len(), n * d);
        if d == 0 || self == Self::Raw {
            return;
        }
        let means = self.column_means(x, n, d);
        for_each_row(x, d, |row| self.prepare_row(row, &means));
    }

    /// [`Preprocess::apply_host`] into a new vector, for values the caller keeps: each row is
    /// copied and prepared while it is in cache, instead of a copy followed by a second pass.
    pub fn applied_host(self, x: &[f32], n: usize, d: usize) -> Vec<f32> {
        assert_eq!(x.len(), n * d);
        let mut out = vec![0f32; n * d];
        if d == 0 {
            return out;
        }
        let means = self.column_means(x, n, d);
        for_each_row_copied(x, &mut out, d, |row| self.prepare_row(row, &means));
        out
    }

    /// The column means `Centered` subtracts (empty for the other modes).
    fn column_means(self, x: &[f32], n: usize, d: usize) -> Vec<f32> {
        if self != Self::Centered {
            return Vec::new();
        }
        let mut sums = vec![0f64; d];
        for row in x.chunks(d) {
            for (s, &v) in sums.iter_mut().zip(row) {
                *s += f64::from(v);
            }
        }
        sums.iter().map(|s| (s / n as f64) as f32).collect()
    }

    fn prepare_row(self, row: &mut [f32], column_means: &[f32]) {
        match self {
            Self::Paper => {
                let norm = (sum_f64(row, |v| f64::from(v) * f64::from(v)).sqrt() as f32).max(1e-12);
                row.iter_mut().for_each(|v| *v /= norm);
                let mean = (sum_f64(row, f64::from) / row.len() as f64) as f32;
                row.iter_mut().for_each(|v| *v -= mean);
            }
            Self::Centered => row.iter_mut().zip(column_means).for_each(|(v, m)| *v -= m),
            Self::Raw => {}
        }
    }
}

/// Lanes of [`sum_f64`].
const LANES: usize = 8;

/// The sum of `term` over `values` in eight interleaved f64 sums. One running sum waits on
/// each addition: summing a row's squares that way took 0.16 s per 10^8 values on one core
/// here, against 0.06 s in lanes. The order is fixed, so the result is reproducible.
#[inline]
fn sum_f64(values: &[f32], term: impl Fn(f32) -> f64) -> f64 {
    let mut lanes = [0f64; LANES];
    let mut chunks = values.chunks_exact(LANES);
    for chunk in &mut chunks {
        let chunk: &[f32; LANES] = chunk.try_into().expect("chunks_exact yields whole chunks");
        for (lane, &v) in lanes.iter_mut().zip(chunk) {
            *lane += term(v);
        }
    }
    let tail: f64 = chunks.remainder().iter().map(|&v| term(v)).sum();
    lanes.iter().sum::<f64>() + tail
}

/// Runs `work` on every row of a row-major matrix with `d` columns, on the thread pool where
/// there is one.
fn for_each_row(x: &mut [f32], d: usize, work: impl Fn(&mut [f32]) + Send + Sync) {
    #[cfg(not(target_arch = "wasm32"))]
    {
        use rayon::prelude::*;
        x.par_chunks_mut(d).with_min_len(64).for_each(work);
    }
    #[cfg(target_arch = "wasm32")]
    x.chunks_mut(d).for_each(work);
}

/// Copies each row of `src` into `dst` and runs `work` on the copy, like [`for_each_row`].
fn for_each_row_copied(
    src: &[f32],
    dst: &mut [f32],
    d: usize,
    work: impl Fn(&mut [f32]) + Send + Sync,
) {
    let copy = |(to, from): (&mut [f32], &[f32])| {
        to.copy_from_slice(from);
        work(to);
    };
    #[cfg(not(target_arch = "wasm32"))]
    {
        use rayon::prelude::*;
        dst.par_chunks_mut(d).zip(src.par_chunks(d)).with_min_len(64).for_each(copy);
    }
    #[cfg(target_arch = "wasm32")]
    dst.chunks_mut(d).zip(src.chunks(d)).for_each(copy);
}

/// The preprocessed features on the host: on a host device one fused pass over the values,
/// on a GPU the device's own ops before the read.
pub(super) async fn preprocessed_values(x: Tensor<2>, mode: Preprocess) -> Result<Vec<f32>> {
    let [n, d] = x.dims();
    if crate::device::is_host(&x.device()) {
        let mut values = floats(x).await?;
        mode.apply_host(&mut values, n, d);
        Ok(values)
    } else {
        floats(mode.apply(x)).await
    }
}

impl std::str::FromStr for Preprocess {
    type Err = NmlError;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "paper" => Ok(Self::Paper),
            "centered" | "centred" => Ok(Self::Centered),
            "raw" => Ok(Self::Raw),
            other => Err(NmlError::Invalid(format!(
                "unknown spectrum mode {other:?}; use paper, centered or raw"
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn affine_stats_reproduce_every_mode() {
        use burn::tensor::{Device, Distribution};
        let device = Device::flex();
        let base = Tensor::<2>::random([300, 70], Distribution::Normal(0.5, 1.0), &device);
        let x = base * Tensor::<2>::random([300, 1], Distribution::Uniform(0.1, 10.0), &device);
        for mode in [Preprocess::Paper, Preprocess::Centered, Preprocess::Raw] {
            let s = mode.affine_stats(x.clone());
            let affine = x.clone() / s.row_scale - s.row_offset - s.col_offset;
            let diff = (affine - mode.apply(x.clone())).abs().max().into_scalar::<f32>();
            assert!(diff < 1e-6, "{mode:?}: {diff}");
        }
    }

    use burn::tensor::{Device, TensorData};

    use super::*;
    use crate::readback::{blocking, floats};

    /// The host pass agrees with the composed ops in every mode, a row of zeros included.
    #[test]
    fn host_pass_matches_the_tensor_ops() {
        let (n, d) = (300, 37);
        let mut x: Vec<f32> = (0..n * d)
            .map(|i| ((i * 7919 % 1013) as f32 / 1013.0 - 0.3) * (1.0 + (i % d) as f32))
            .collect();
        x[5 * d..6 * d].fill(0.0);
        for mode in [Preprocess::Paper, Preprocess::Centered, Preprocess::Raw] {
            let tensor =
                Tensor::<2>::from_data(TensorData::new(x.clone(), [n, d]), &Device::flex());
            let expected = blocking(floats(mode.apply(tensor))).unwrap();
            let copied = mode.applied_host(&x, n, d);
            let mut host = x.clone();
            mode.apply_host(&mut host, n, d);
            assert_eq!(copied, host, "{mode:?}: the copying pass differs from the in-place one");
            let scale = expected.iter().fold(0f32, |a, v| a.max(v.abs()));
            for (i, (a, b)) in host.iter().zip(&expected).enumerate() {
                assert!((a - b).abs() <= 1e-6 * scale, "{mode:?} [{i}]: {a} vs {b}");
            }
            assert!(host[5 * d..6 * d].iter().all(|v| v.is_finite()));
        }
    }
}
