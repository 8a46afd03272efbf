//! A measured, probabilistic bound on how far a fast (f32) Gram is from the exact one.
//!
//! The fast Gram's rounding error `E = G_fast - G` is symmetric, so `||E^q|| = ||E||^q`, and for
//! k independent standard Gaussian probes w_i (Halko, Martinsson and Tropp 2011, lemma 4.1)
//! `||E^q|| <= alpha sqrt(2/pi) max_i ||E^q w_i||` fails with probability at most `alpha^-k`.
//! `E^q w` costs q products with the exact Gram, each one pass over the features in f64
//! (`O(N D k)`, against the Gram's `O(N D^2)`); the power steps shrink the gap between what
//! the probes see (close to a Frobenius norm) and the spectral norm Weyl's inequality needs.

use faer::Mat;
use rand::rngs::ChaCha8Rng;
use rand::{RngExt, SeedableRng};

use super::linalg;

/// Gaussian probes. Twelve rather than six let ALPHA fall from 10 to sqrt(10) at the same
/// failure probability: on the benchmark's features the bound went from 2.3-2.9x the true
/// error to 1.6-2.0x, for about a third more time (one pass still serves every probe).
const PROBES: usize = 12;
/// Products with `E` before the probes are measured.
const POWER_STEPS: usize = 3;
/// sqrt(10): failure probability at most `ALPHA^-PROBES` = 1e-6.
const ALPHA: f64 = 3.162_277_660_168_379_5;

/// An upper bound on the spectral norm of `fast - G`, G the exact Gram of the row-major
/// `n x d` matrix `x` (as [`linalg::gram_f64`] orients it), holding with probability at least
/// 1 - 1e-6 over the probes. The probes are drawn from a fixed seed, so the bound is
/// reproducible; the rounding error they probe does not depend on them.
pub fn gram_error_bound(x: &[f32], n: usize, d: usize, fast: &Mat<f64>) -> f64 {
    let m = n.min(d);
    assert_eq!((fast.nrows(), fast.ncols()), (m, m));
    let mut rng = ChaCha8Rng::seed_from_u64(0x5eed_e44b);
    let mut probes = Mat::<f64>::from_fn(m, PROBES, |_, _| standard_normal(&mut rng));
    for _ in 0..POWER_STEPS {
        let exact = linalg::gram_times(x, n, d, probes.as_ref());
        probes = fast * &probes - exact;
    }
    let largest = (0..PROBES).map(|j| probes.col(j).norm_l2()).fold(0.0, f64::max);
    (ALPHA * (2.0 / std::f64::consts::PI).sqrt() * largest).powf(1.0 / POWER_STEPS as f64)
}

/// Box-Muller: one standard normal from two uniforms.
fn standard_normal(rng: &mut ChaCha8Rng) -> f64 {
    let u: f64 = 1.0 - rng.random::<f64>();
    let v: f64 = rng.random::<f64>();
    (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The bound holds against the true spectral norm of the fast Gram's error and is not so
    /// loose that it would reject what the f32 blocks make possible.
    #[test]
    fn bounds_the_f32_blocks_error_without_gross_slack() {
        let mut rng = ChaCha8Rng::seed_from_u64(9);
        for (n, d) in [(5000usize, 96usize), (80, 3000)] {
            let x: Vec<f32> =
                (0..n * d).map(|i| (rng.random::<f32>() + 0.2) / (1.0 + (i % d) as f32 / 16.0)).collect();
            let exact = linalg::gram_f64(&x, n, d);
            let fast = linalg::gram_f32_blocks(&x, n, d);
            let error = &fast - &exact;
            let true_norm = linalg::eigenvalues_desc(error.as_ref()).iter().fold(0.0f64, |a, v| a.max(v.abs()));
            let bound = gram_error_bound(&x, n, d, &fast);
            assert!(true_norm > 0.0);
            assert!(bound >= true_norm, "{n} x {d}: bound {bound:e} under the error {true_norm:e}");
            assert!(bound < 30.0 * true_norm, "{n} x {d}: bound {bound:e} vs error {true_norm:e}");
        }
    }

    /// An exact Gram has nothing to bound but the f64 rounding of the probe products.
    #[test]
    fn an_exact_gram_gets_a_negligible_bound() {
        let (n, d) = (700, 40);
        let x: Vec<f32> = (0..n * d).map(|i| ((i * 7919 % 1009) as f32 / 1009.0) - 0.3).collect();
        let exact = linalg::gram_f64(&x, n, d);
        let scale = (0..d).map(|i| exact[(i, i)]).fold(0.0, f64::max);
        assert!(gram_error_bound(&x, n, d, &exact) < 1e-12 * scale);
    }
}
