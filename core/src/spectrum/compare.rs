//! Geometry between two encoders' features of the same inputs: how far apart their dominant
//! subspaces lie, which no spectrum of either one shows.
//!
//! Both matrices are preprocessed in the same [`Preprocess`] mode as a spectrum, then their
//! columns centred. Their principal subspaces live in sample space (the left singular vectors,
//! N-dimensional), so two encoders of different widths compare as well as two of one width:
//! - principal angles between the top-k subspaces: θ_i = arccos σ_i(U_Aᵀ U_B), in degrees,
//!   ascending; their mean and the largest;
//! - linear CKA (Kornblith et al., 2019): ‖AᵀB‖_F² / (‖AᵀA‖_F ‖BᵀB‖_F);
//! - the alignment of the top singular vectors: |u_1(A) · u_1(B)|, the cosine of the angle
//!   between the two most dominant directions.
//!
//! All in f64 on the host (faer), from the smaller of each matrix's two Gram matrices.

use faer::linalg::matmul::matmul;
use faer::{Accum, Mat};
use serde::{Deserialize, Serialize};

use super::Preprocess;
use super::eigen::eigen_desc;
use super::gram::parallelism;
use crate::error::{NmlError, Result};

/// One side of a comparison: an `n` x `d` row-major matrix with its name.
#[derive(Clone, Copy, Debug)]
pub struct FeatureMatrix<'a> {
    pub name: &'a str,
    pub values: &'a [f32],
    pub d: usize,
}

impl FeatureMatrix<'_> {
    pub fn n(&self) -> usize {
        self.values.len() / self.d.max(1)
    }
}

/// What `nml compare` reports.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Comparison {
    pub a: String,
    pub b: String,
    pub mode: Preprocess,
    pub n: usize,
    pub d_a: usize,
    pub d_b: usize,
    pub k: usize,
    /// Between the top-k principal subspaces, degrees, ascending.
    pub principal_angles: Vec<f64>,
    pub mean_angle: f64,
    pub largest_angle: f64,
    pub linear_cka: f64,
    /// |u_1(A) · u_1(B)|.
    pub top_alignment: f64,
}

/// Compares two matrices of the same rows (see the module documentation); `k` is the size of
/// the subspaces, at most either matrix's rank.
pub fn compare(
    a: FeatureMatrix<'_>,
    b: FeatureMatrix<'_>,
    mode: Preprocess,
    k: usize,
) -> Result<Comparison> {
    for m in [&a, &b] {
        if m.d == 0 || m.values.is_empty() || m.values.len() % m.d != 0 {
            return Err(NmlError::Invalid(format!(
                "{}: {} values are not a matrix of {} columns",
                m.name,
                m.values.len(),
                m.d
            )));
        }
    }
    let n = a.n();
    if b.n() != n {
        return Err(NmlError::Invalid(format!(
            "{} has {n} rows and {} has {}: a comparison needs the features of the same inputs, in the same order",
            a.name,
            b.name,
            b.n()
        )));
    }
    if k == 0 {
        return Err(NmlError::Invalid("compare: k must be at least 1".into()));
    }
    let (xa, xb) = (centred(a, mode), centred(b, mode));
    let ua = top_left_vectors(&xa, k, a.name)?;
    let ub = top_left_vectors(&xb, k, b.name)?;
    let overlap = ua.transpose() * &ub;
    let mut cosines: Vec<f64> = overlap
        .singular_values()
        .map_err(|_| NmlError::Invalid("compare: the subspace overlap did not converge".into()))?
        .into_iter()
        .map(|s| s.clamp(0.0, 1.0))
        .collect();
    cosines.sort_by(|x, y| y.total_cmp(x));
    let principal_angles: Vec<f64> = cosines.iter().map(|c| c.acos().to_degrees()).collect();
    let top_alignment = (0..n).map(|i| ua[(i, 0)] * ub[(i, 0)]).sum::<f64>().abs().min(1.0);
    Ok(Comparison {
        a: a.name.to_string(),
        b: b.name.to_string(),
        mode,
        n,
        d_a: a.d,
        d_b: b.d,
        k,
        mean_angle: principal_angles.iter().sum::<f64>() / k as f64,
        largest_angle: principal_angles.last().copied().unwrap_or(0.0),
        principal_angles,
        linear_cka: linear_cka(&xa, &xb),
        top_alignment,
    })
}

/// The matrix preprocessed as a spectrum would be, in f64, its columns centred.
fn centred(m: FeatureMatrix<'_>, mode: Preprocess) -> Mat<f64> {
    let (n, d) = (m.n(), m.d);
    let values = mode.applied_host(m.values, n, d);
    let mut x = Mat::<f64>::from_fn(n, d, |i, j| f64::from(values[i * d + j]));
    for j in 0..d {
        let column = x.col_as_slice_mut(j);
        let mean = column.iter().sum::<f64>() / n as f64;
        column.iter_mut().for_each(|v| *v -= mean);
    }
    x
}

/// `xᵀ y`.
fn cross(x: &Mat<f64>, y: &Mat<f64>) -> Mat<f64> {
    let mut out = Mat::<f64>::zeros(x.ncols(), y.ncols());
    matmul(out.as_mut(), Accum::Replace, x.transpose(), y.as_ref(), 1.0, parallelism());
    out
}

/// The `k` leading left singular vectors (N x k, orthonormal columns), from the eigenvectors
/// of the smaller Gram matrix; an error naming the matrix when its rank is below `k`.
fn top_left_vectors(x: &Mat<f64>, k: usize, name: &str) -> Result<Mat<f64>> {
    let (n, d) = (x.nrows(), x.ncols());
    let small_side = d <= n;
    let gram = if small_side {
        cross(x, x)
    } else {
        let mut g = Mat::<f64>::zeros(n, n);
        matmul(g.as_mut(), Accum::Replace, x.as_ref(), x.transpose(), 1.0, parallelism());
        g
    };
    let (values, vectors) = eigen_desc(gram.as_ref(), parallelism());
    // The spectrum's retention rule (s_1 · max(N, D) · ε_f32), on eigenvalues s².
    let first = values.first().copied().unwrap_or(0.0).max(0.0);
    let tolerance = first * (n.max(d) as f64 * f64::from(f32::EPSILON)).powi(2);
    let rank = values.iter().take_while(|&&v| v > tolerance && v > 0.0).count();
    if rank < k {
        return Err(NmlError::Invalid(format!(
            "{name}: its centred features have rank {rank}, below k = {k}: use a smaller --k"
        )));
    }
    if !small_side {
        return Ok(Mat::<f64>::from_fn(n, k, |i, j| vectors[(i, j)]));
    }
    // u_j = X v_j / s_j.
    let mut u = Mat::<f64>::zeros(n, k);
    let v = Mat::<f64>::from_fn(d, k, |i, j| vectors[(i, j)]);
    matmul(u.as_mut(), Accum::Replace, x.as_ref(), v.as_ref(), 1.0, parallelism());
    for (j, &lambda) in values.iter().take(k).enumerate() {
        let s = lambda.sqrt();
        u.col_as_slice_mut(j).iter_mut().for_each(|e| *e /= s);
    }
    Ok(u)
}

/// ‖AᵀB‖_F² / (‖AᵀA‖_F ‖BᵀB‖_F) of column-centred matrices.
fn linear_cka(a: &Mat<f64>, b: &Mat<f64>) -> f64 {
    let frobenius = |m: &Mat<f64>| m.norm_l2();
    let ab = frobenius(&cross(a, b));
    let (aa, bb) = (frobenius(&cross(a, a)), frobenius(&cross(b, b)));
    if aa == 0.0 || bb == 0.0 { f64::NAN } else { ab * ab / (aa * bb) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::ChaCha8Rng;
    use rand::{RngExt, SeedableRng};

    fn random(n: usize, d: usize, seed: u64) -> Vec<f32> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        // Decaying column scales, so the principal directions are well separated.
        (0..n * d).map(|i| (rng.random::<f32>() - 0.5) / (1 + i % d) as f32).collect()
    }

    fn matrix<'a>(name: &'a str, values: &'a [f32], d: usize) -> FeatureMatrix<'a> {
        FeatureMatrix { name, values, d }
    }

    /// A rotated and rescaled copy spans the same subspaces (no angle, CKA 1, aligned top
    /// vectors), also at another width; unrelated features do not.
    #[test]
    fn rotations_are_invisible_and_unrelated_features_are_far() {
        let (n, d) = (200, 12);
        let a = random(n, d, 1);
        // A Givens rotation of every pair of columns, then a scale, then two zero columns.
        let (c, s) = (0.6f32, 0.8f32);
        let rotated: Vec<f32> = a
            .chunks(d)
            .flat_map(|row| {
                let mut out: Vec<f32> = row
                    .chunks(2)
                    .flat_map(|p| [3.0 * (c * p[0] - s * p[1]), 3.0 * (s * p[0] + c * p[1])])
                    .collect();
                out.extend([0.0, 0.0]);
                out
            })
            .collect();
        let same =
            compare(matrix("a", &a, d), matrix("r", &rotated, d + 2), Preprocess::Raw, 5).unwrap();
        assert!(same.largest_angle < 1e-3, "{:?}", same.principal_angles);
        assert!((same.linear_cka - 1.0).abs() < 1e-9, "{}", same.linear_cka);
        assert!((same.top_alignment - 1.0).abs() < 1e-9);
        assert_eq!((same.d_a, same.d_b, same.k), (12, 14, 5));
        let other = random(n, d, 2);
        let far = compare(matrix("a", &a, d), matrix("o", &other, d), Preprocess::Raw, 5).unwrap();
        assert!(far.mean_angle > 45.0, "{:?}", far.principal_angles);
        assert!(far.linear_cka < 0.2, "{}", far.linear_cka);
        let ascending = far.principal_angles.windows(2).all(|w| w[0] <= w[1]);
        assert!(ascending && far.largest_angle <= 90.0);
    }

    /// Against a numpy transcription of the definitions (scripts/make-spectrum-metric-fixtures).
    #[test]
    fn matches_a_numpy_transcription() {
        let fixtures: serde_json::Value =
            serde_json::from_str(include_str!("testdata/metric-fixtures.json")).unwrap();
        let case = &fixtures["comparisons"][0];
        let floats = |key: &str| -> Vec<f64> {
            case[key].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect()
        };
        let (a, b): (Vec<f32>, Vec<f32>) = (
            floats("a").into_iter().map(|v| v as f32).collect(),
            floats("b").into_iter().map(|v| v as f32).collect(),
        );
        let (d_a, d_b) =
            (case["d_a"].as_u64().unwrap() as usize, case["d_b"].as_u64().unwrap() as usize);
        let k = case["k"].as_u64().unwrap() as usize;
        let c = compare(matrix("a", &a, d_a), matrix("b", &b, d_b), Preprocess::Raw, k).unwrap();
        for (got, want) in c.principal_angles.iter().zip(floats("principal_angles")) {
            assert!((got - want).abs() < 1e-6, "{:?} vs {want}", c.principal_angles);
        }
        assert!((c.linear_cka - case["linear_cka"].as_f64().unwrap()).abs() < 1e-9);
        assert!((c.top_alignment - case["top_alignment"].as_f64().unwrap()).abs() < 1e-9);
    }

    #[test]
    fn mismatched_inputs_are_errors_naming_them() {
        let a = random(20, 4, 1);
        let short = random(10, 4, 2);
        let err = compare(matrix("a.npy", &a, 4), matrix("b.npy", &short, 4), Preprocess::Raw, 2);
        let err = err.unwrap_err().to_string();
        assert!(err.contains("a.npy has 20 rows") && err.contains("b.npy has 10"), "{err}");
        let err = compare(matrix("a.npy", &a, 4), matrix("c.npy", &a, 4), Preprocess::Raw, 5);
        assert!(err.unwrap_err().to_string().contains("rank 4, below k = 5"));
    }
}
