//! The eigen solve behind every singular value nml reports (faer, in f64): a Gram's spectrum,
//! and the thin SVD of a training batch that NMTune's singular-value term differentiates.

use faer::linalg::matmul::matmul;
use faer::{Accum, Mat, MatRef, Par, Side};

/// `P G P` with `P = I - 11^T / m`: removes the all-ones direction from a symmetric matrix.
pub fn project_out_ones(g: &mut Mat<f64>) {
    let m = g.nrows();
    // Symmetric, so its row sums are its column sums, read down contiguous columns.
    let sums: Vec<f64> = (0..m).map(|c| g.col_as_slice(c).iter().sum()).collect();
    let total: f64 = sums.iter().sum();
    let inv = 1.0 / m as f64;
    let shift = total * inv * inv;
    for (c, &column_sum) in sums.iter().enumerate() {
        for (v, &row_sum) in g.col_as_slice_mut(c).iter_mut().zip(&sums) {
            *v += -(row_sum + column_sum) * inv + shift;
        }
    }
}

/// Eigenvalues of a symmetric matrix, in descending order.
pub fn eigenvalues_desc(m: MatRef<'_, f64>) -> Vec<f64> {
    let mut values =
        m.self_adjoint_eigenvalues(Side::Lower).unwrap_or_else(|_| vec![f64::NAN; m.nrows()]);
    values.reverse();
    values
}

/// Eigenvalues (descending) and their eigenvectors (as columns, same order), the solver run
/// with `par`.
pub fn eigen_desc(m: MatRef<'_, f64>, par: Par) -> (Vec<f64>, Mat<f64>) {
    use faer::dyn_stack::{MemBuffer, MemStack};
    use faer::linalg::evd::{ComputeEigenvectors, self_adjoint_evd, self_adjoint_evd_scratch};
    let size = m.nrows();
    let mut s = faer::diag::Diag::<f64>::zeros(size);
    let mut u = Mat::<f64>::zeros(size, size);
    let mut scratch = MemBuffer::new(self_adjoint_evd_scratch::<f64>(
        size,
        ComputeEigenvectors::Yes,
        par,
        Default::default(),
    ));
    match self_adjoint_evd(
        m,
        s.as_mut(),
        Some(u.as_mut()),
        par,
        MemStack::new(&mut scratch),
        Default::default(),
    ) {
        Ok(()) => {
            let s = s.column_vector();
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

/// The [`ThinSvd`] of a row-major `b x d` batch, from the eigenvectors of its smaller Gram.
/// A batch is small, so everything runs on the calling thread: for 64 x 512 the thread pool's
/// hand-offs cost more than the arithmetic (1.1 ms per call with them).
pub fn thin_svd(z: &[f32], b: usize, d: usize, rel_tol: f64) -> ThinSvd {
    let zm = Mat::<f64>::from_fn(b, d, |i, j| f64::from(z[i * d + j]));
    let tall = d <= b;
    // The smaller Gram: Z^T Z (d x d) when tall, else Z Z^T (b x b).
    let (left, right) =
        if tall { (zm.transpose(), zm.as_ref()) } else { (zm.as_ref(), zm.transpose()) };
    let mut gram = Mat::<f64>::zeros(b.min(d), b.min(d));
    matmul(gram.as_mut(), Accum::Replace, left, right, 1.0, Par::Seq);
    let (eigenvalues, vectors) = eigen_desc(gram.as_ref(), Par::Seq);
    let s_all = singular_from_eigen(&eigenvalues);
    let top = s_all.first().copied().unwrap_or(0.0);
    let rank = s_all.iter().take_while(|&&s| s > rel_tol * top && s > 0.0).count();
    let s: Vec<f64> = s_all[..rank].to_vec();
    // The other side's vectors from one product: V = Z^T U / s (Gram Z Z^T) or U = Z V / s.
    let known = vectors.as_ref().subcols(0, rank);
    let mut other = Mat::<f64>::zeros(if tall { b } else { d }, rank);
    matmul(other.as_mut(), Accum::Replace, right, known, 1.0, Par::Seq);
    let row_major = |m: MatRef<'_, f64>, scale: bool| -> Vec<f32> {
        let mut out = Vec::with_capacity(m.nrows() * rank);
        for r in 0..m.nrows() {
            out.extend(
                (0..rank).map(|k| (if scale { m[(r, k)] / s[k] } else { m[(r, k)] }) as f32),
            );
        }
        out
    };
    let (u, v) = if tall {
        (row_major(other.as_ref(), true), row_major(known, false))
    } else {
        (row_major(known, false), row_major(other.as_ref(), true))
    };
    ThinSvd { s, u, v, rank }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thin_svd_reconstructs() {
        for (b, d) in [(6usize, 4usize), (4, 6)] {
            let z: Vec<f32> = (0..b * d).map(|i| ((i * 7919 % 13) as f32 - 6.0) / 3.0).collect();
            let svd = thin_svd(&z, b, d, 1e-9);
            for i in 0..b {
                for j in 0..d {
                    let rec: f64 = (0..svd.rank)
                        .map(|k| {
                            f64::from(svd.u[i * svd.rank + k])
                                * svd.s[k]
                                * f64::from(svd.v[j * svd.rank + k])
                        })
                        .sum();
                    assert!(
                        (rec - f64::from(z[i * d + j])).abs() < 1e-4,
                        "({i},{j}) {rec} vs {}",
                        z[i * d + j]
                    );
                }
            }
        }
    }
}
