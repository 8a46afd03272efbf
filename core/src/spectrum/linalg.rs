//! Host-side f64 linear algebra (faer) behind every singular value nml reports: the spectrum of
//! a feature matrix and the SVD of a training batch both come through here.

use faer::linalg::matmul::triangular::{BlockStructure, matmul};
use faer::{Accum, Mat, MatRef, Par, Side};

/// Rows converted to f64 at a time, so the exact Gram never holds the whole matrix in f64.
const BLOCK_ROWS: usize = 2048;

fn parallelism() -> Par {
    #[cfg(target_arch = "wasm32")]
    {
        Par::Seq
    }
    #[cfg(not(target_arch = "wasm32"))]
    {
        Par::rayon(0)
    }
}

/// The Gram matrix of a row-major `n x d` f32 matrix X, accumulated in f64: `X^T X` (d x d) when
/// `d <= n`, else `X X^T` (n x n). Only the lower triangle is computed, then mirrored.
pub fn gram_f64(x: &[f32], n: usize, d: usize) -> Mat<f64> {
    assert_eq!(x.len(), n * d);
    let par = parallelism();
    let mut gram;
    if d <= n {
        gram = Mat::<f64>::zeros(d, d);
        let mut block = Mat::<f64>::zeros(BLOCK_ROWS.min(n), d);
        for start in (0..n).step_by(BLOCK_ROWS) {
            let rows = BLOCK_ROWS.min(n - start);
            for r in 0..rows {
                for c in 0..d {
                    block[(r, c)] = f64::from(x[(start + r) * d + c]);
                }
            }
            let b = block.as_ref().subrows(0, rows);
            matmul(
                gram.as_mut(),
                BlockStructure::TriangularLower,
                Accum::Add,
                b.transpose(),
                BlockStructure::Rectangular,
                b,
                BlockStructure::Rectangular,
                1.0,
                par,
            );
        }
    } else {
        let full = Mat::<f64>::from_fn(n, d, |r, c| f64::from(x[r * d + c]));
        gram = Mat::<f64>::zeros(n, n);
        matmul(
            gram.as_mut(),
            BlockStructure::TriangularLower,
            Accum::Replace,
            full.as_ref(),
            BlockStructure::Rectangular,
            full.transpose(),
            BlockStructure::Rectangular,
            1.0,
            par,
        );
    }
    mirror_lower(&mut gram);
    gram
}

fn mirror_lower(m: &mut Mat<f64>) {
    for c in 0..m.ncols() {
        for r in 0..c {
            m[(r, c)] = m[(c, r)];
        }
    }
}

/// `P G P` with `P = I - 11^T / m`: removes the all-ones direction from a symmetric matrix.
pub fn project_out_ones(g: &mut Mat<f64>) {
    let m = g.nrows();
    let row_sums: Vec<f64> = (0..m).map(|r| (0..m).map(|c| g[(r, c)]).sum()).collect();
    let total: f64 = row_sums.iter().sum();
    let inv = 1.0 / m as f64;
    for r in 0..m {
        for c in 0..m {
            g[(r, c)] += -(row_sums[r] + row_sums[c]) * inv + total * inv * inv;
        }
    }
}

/// Converts a row-major f32 square matrix into f64.
pub fn square_from_f32(values: &[f32], size: usize) -> Mat<f64> {
    Mat::<f64>::from_fn(size, size, |r, c| f64::from(values[r * size + c]))
}

/// Eigenvalues of a symmetric matrix, in descending order.
pub fn eigenvalues_desc(m: MatRef<'_, f64>) -> Vec<f64> {
    let mut values = m
        .self_adjoint_eigenvalues(Side::Lower)
        .unwrap_or_else(|_| vec![f64::NAN; m.nrows()]);
    values.reverse();
    values
}

/// Eigenvalues (descending) and their eigenvectors (as columns, same order).
pub fn eigen_desc(m: MatRef<'_, f64>) -> (Vec<f64>, Mat<f64>) {
    let size = m.nrows();
    match m.self_adjoint_eigen(Side::Lower) {
        Ok(evd) => {
            let s = evd.S().column_vector();
            let u = evd.U();
            let values = (0..size).rev().map(|i| s[i]).collect();
            let vectors = Mat::<f64>::from_fn(size, size, |r, c| u[(r, size - 1 - c)]);
            (values, vectors)
        }
        Err(_) => (vec![f64::NAN; size], Mat::<f64>::zeros(size, size)),
    }
}

/// Singular values from Gram eigenvalues: square roots, negatives (rounding) clamped to zero.
pub fn singular_from_eigen(eigenvalues: &[f64]) -> Vec<f64> {
    eigenvalues.iter().map(|&l| l.max(0.0).sqrt()).collect()
}

/// A thin SVD `Z = U diag(s) V^T` of a small row-major `b x d` matrix, keeping the components
/// whose singular value is above `rel_tol * s_1` (the rest carry no direction worth a gradient).
#[derive(Clone, Debug)]
pub struct ThinSvd {
    pub s: Vec<f64>,
    /// `b x r`, row-major.
    pub u: Vec<f32>,
    /// `d x r`, row-major.
    pub v: Vec<f32>,
    pub rank: usize,
}

pub fn thin_svd(z: &[f32], b: usize, d: usize, rel_tol: f64) -> ThinSvd {
    let gram = gram_f64(z, b, d);
    let (eigenvalues, vectors) = eigen_desc(gram.as_ref());
    let s_all = singular_from_eigen(&eigenvalues);
    let top = s_all.first().copied().unwrap_or(0.0);
    let rank = s_all
        .iter()
        .take_while(|&&s| s > rel_tol * top && s > 0.0)
        .count();
    let s: Vec<f64> = s_all[..rank].to_vec();
    let (mut u, mut v) = (vec![0f32; b * rank], vec![0f32; d * rank]);
    if d <= b {
        // Gram is Z^T Z: its eigenvectors are V, and U = Z V / s.
        for k in 0..rank {
            for j in 0..d {
                v[j * rank + k] = vectors[(j, k)] as f32;
            }
            for i in 0..b {
                let dot: f64 = (0..d).map(|j| f64::from(z[i * d + j]) * vectors[(j, k)]).sum();
                u[i * rank + k] = (dot / s[k]) as f32;
            }
        }
    } else {
        // Gram is Z Z^T: its eigenvectors are U, and V = Z^T U / s.
        for k in 0..rank {
            for i in 0..b {
                u[i * rank + k] = vectors[(i, k)] as f32;
            }
            for j in 0..d {
                let dot: f64 = (0..b).map(|i| f64::from(z[i * d + j]) * vectors[(i, k)]).sum();
                v[j * rank + k] = (dot / s[k]) as f32;
            }
        }
    }
    ThinSvd { s, u, v, rank }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gram_matches_naive_in_both_orientations() {
        for (n, d) in [(5usize, 3usize), (3, 5), (4100, 3)] {
            let x: Vec<f32> = (0..n * d).map(|i| ((i * 37 % 11) as f32 - 5.0) * 0.3).collect();
            let g = gram_f64(&x, n, d);
            let m = n.min(d);
            assert_eq!((g.nrows(), g.ncols()), (m, m));
            for a in 0..m {
                for b in 0..m {
                    let naive: f64 = if d <= n {
                        (0..n).map(|r| f64::from(x[r * d + a]) * f64::from(x[r * d + b])).sum()
                    } else {
                        (0..d).map(|c| f64::from(x[a * d + c]) * f64::from(x[b * d + c])).sum()
                    };
                    assert!((g[(a, b)] - naive).abs() < 1e-9 * naive.abs().max(1.0));
                }
            }
        }
    }

    #[test]
    fn thin_svd_reconstructs() {
        for (b, d) in [(6usize, 4usize), (4, 6)] {
            let z: Vec<f32> = (0..b * d).map(|i| ((i * 7919 % 13) as f32 - 6.0) / 3.0).collect();
            let svd = thin_svd(&z, b, d, 1e-9);
            for i in 0..b {
                for j in 0..d {
                    let rec: f64 = (0..svd.rank)
                        .map(|k| f64::from(svd.u[i * svd.rank + k]) * svd.s[k] * f64::from(svd.v[j * svd.rank + k]))
                        .sum();
                    assert!((rec - f64::from(z[i * d + j])).abs() < 1e-4, "({i},{j}) {rec} vs {}", z[i * d + j]);
                }
            }
        }
    }
}
