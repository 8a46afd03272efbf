//! The `auto` precision's verification: whether an f32 Gram's spectrum is within the 1e-4
//! guarantee. By Weyl's inequality rounding in the Gram moves each eigenvalue by at most
//! `tau = ||G_fast - G||_2`, harmless for large singular values but a floor near `sqrt(tau)`
//! under tiny ones. The check bounds how much SVE and LSVR could move if every eigenvalue moved
//! by `tau` in the worst pattern of directions: first with a model of f32 rounding
//! (`tau = 16 eps_f32 max_j G_jj`, free; accepted under 1e-5 relative, ten times inside the
//! guarantee since it is a model), and where that is too coarse with `tau` measured
//! ([`gram_error_bound`]: twelve Gaussian probes through `(G_fast - G)^3`, one f64 pass over
//! the features per power, an upper bound with probability 1 - 1e-6; accepted under 1e-4).
//! Otherwise the Gram is recomputed exactly, in f64 on the host.

use faer::Mat;
use rand::rngs::ChaCha8Rng;
use rand::{RngExt, SeedableRng};

use super::eigen::{eigenvalues_desc, project_out_ones, singular_from_eigen};
use super::gram::{Source, fast_gram, gram_f64, gram_times};
use super::preprocess::preprocessed_values;
use super::{GramPrecision, Preprocess, metrics};
use crate::error::{NmlError, Result};

/// Tolerance on [`perturbation_bound`] for the modelled eigenvalue shift (a model of f32
/// rounding, not a bound): ten times inside the 1e-4 guarantee.
const MODEL_TOLERANCE: f64 = 1e-5;
/// Tolerance on [`perturbation_bound`] for the measured shift, which bounds the Gram's error
/// (with probability 1 - 1e-6): the guarantee itself.
const MEASURED_TOLERANCE: f64 = 1e-4;
/// Multiple of `eps_f32 * max_j G_jj` taken as the eigenvalue perturbation of an f32 Gram.
const TAU_FACTOR: f64 = 16.0;

/// Whether the modelled rounding of an f32 Gram whose largest diagonal entry is `max_diag`
/// leaves the spectrum `eigenvalues` within tolerance.
pub(super) fn model_accepts(eigenvalues: &[f64], max_diag: f64) -> bool {
    let modelled = TAU_FACTOR * f64::from(f32::EPSILON) * max_diag;
    perturbation_bound(eigenvalues, modelled) <= MODEL_TOLERANCE
}

/// Whether a measured bound `tau` on the Gram's error leaves `eigenvalues` within the guarantee.
pub(super) fn measured_accepts(eigenvalues: &[f64], tau: f64) -> bool {
    perturbation_bound(eigenvalues, tau) <= MEASURED_TOLERANCE
}

/// Largest relative change of SVE or LSVR if each eigenvalue moved by up to `tau`, in any
/// direction: the first-order worst case over every pattern of shifts Weyl's inequality allows.
/// Each singular value's own range `[sqrt(l - tau), sqrt(l + tau)]` is taken exactly, and each
/// metric's sensitivity to it at its worse end (integrated where the range reaches zero, where
/// the entropy's slope is unbounded); only the coupling between coordinates is linearised, a
/// second-order term of relative size `tau / l`.
pub(super) fn perturbation_bound(eigenvalues: &[f64], tau: f64) -> f64 {
    let nominal = singular_from_eigen(eigenvalues);
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
    let lsvr_change =
        first_change * (1.0 / first - 1.0 / total) + (sum_change - first_change) / total;
    let sve_relative = if sve > 0.0 { sve_change / sve } else { sve_change };
    sve_relative.max(lsvr_change)
}

/// The f32 Gram's spectrum from `source` (`n x d` features after `mode`), checked under
/// [`GramPrecision::Auto`] and recomputed exactly when the check cannot show the guarantee; the
/// name of the route that gave the values comes with them.
pub(super) async fn checked_fast(
    source: Source,
    mode: Preprocess,
    precision: GramPrecision,
    n: usize,
    d: usize,
) -> Result<(Vec<f64>, &'static str)> {
    let m = n.min(d);
    let (mut gram_host, method) = fast_gram(&source, mode, n, d).await?;
    let max_diag = (0..m).map(|i| gram_host[(i, i)]).fold(0.0, f64::max);
    let deflate = mode == Preprocess::Paper && d <= n && d > 1;
    // The measured bound compares the Gram before the ones direction is projected out: the
    // projection cannot enlarge the error.
    let undeflated = (precision == GramPrecision::Auto && deflate).then(|| gram_host.clone());
    if deflate {
        project_out_ones(&mut gram_host);
    }
    // Where the values are on the host and there are threads, `Auto` measures the Gram's error
    // while the eigen solver runs, which leaves the second core mostly idle. The check is what
    // features with small singular values go on to need; when the model alone accepts, the
    // measurement is dropped.
    let speculate = precision == GramPrecision::Auto && cfg!(not(target_arch = "wasm32"));
    let host_values = match &source {
        Source::Host(values) | Source::Staged { values, .. } => Some(values),
        Source::Device(_) => None,
    };
    let (mut eig, measured) = match host_values.filter(|_| speculate) {
        Some(values) => {
            let fast_gram = undeflated.as_ref().unwrap_or(&gram_host);
            let (eig, measured) = join(
                || eigenvalues_desc(gram_host.as_ref()),
                || gram_error_bound(values, n, d, fast_gram),
            );
            (eig, Some(measured))
        }
        None => (eigenvalues_desc(gram_host.as_ref()), None),
    };
    if eig.iter().any(|v| !v.is_finite()) {
        return Err(NmlError::Numerical("the eigenvalue solver did not converge".into()));
    }
    if deflate {
        // The projected Gram's eigenvalue nearest zero belongs to the ones direction.
        let null = (0..m).min_by(|&a, &b| eig[a].abs().total_cmp(&eig[b].abs())).expect("m > 1");
        eig.remove(null);
    }
    if precision == GramPrecision::Auto && !model_accepts(&eig, max_diag) {
        let values = match source {
            Source::Host(values) | Source::Staged { values, .. } => values,
            Source::Device(x) => preprocessed_values(x, mode).await?,
        };
        let fast_gram = undeflated.as_ref().unwrap_or(&gram_host);
        let measured = measured.unwrap_or_else(|| gram_error_bound(&values, n, d, fast_gram));
        if !measured_accepts(&eig, measured) {
            return Ok(exact_spectrum(&values, n, d));
        }
    }
    let mut values = singular_from_eigen(&eig);
    if deflate {
        values.push(0.0);
    }
    Ok((values, method))
}

/// Singular values from the Gram accumulated in f64.
pub(super) fn exact_spectrum(values: &[f32], n: usize, d: usize) -> (Vec<f64>, &'static str) {
    let gram = gram_f64(values, n, d);
    (singular_from_eigen(&eigenvalues_desc(gram.as_ref())), "gram-f64-host")
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

// A measured, probabilistic bound on how far a fast (f32) Gram is from the exact one.
//
// The fast Gram's rounding error `E = G_fast - G` is symmetric, so `||E^q|| = ||E||^q`, and for
// k independent standard Gaussian probes w_i (Halko, Martinsson and Tropp 2011, lemma 4.1)
// `||E^q|| <= alpha sqrt(2/pi) max_i ||E^q w_i||` fails with probability at most `alpha^-k`.
// `E^q w` costs q products with the exact Gram, each one pass over the features in f64
// (`O(N D k)`, against the Gram's `O(N D^2)`); the power steps shrink the gap between what
// the probes see (close to a Frobenius norm) and the spectral norm Weyl's inequality needs.

/// Gaussian probes. Twelve rather than six let ALPHA fall from 10 to sqrt(10) at the same
/// failure probability: on the benchmark's features the bound went from 2.3-2.9x the true
/// error to 1.6-2.0x, for about a third more time (one pass still serves every probe).
const PROBES: usize = 12;
/// Products with `E` before the probes are measured.
const POWER_STEPS: usize = 3;
/// sqrt(10): failure probability at most `ALPHA^-PROBES` = 1e-6.
const ALPHA: f64 = 3.162_277_660_168_379_5;

/// An upper bound on the spectral norm of `fast - G`, G the exact Gram of the row-major
/// `n x d` matrix `x` (as [`super::gram::gram_f64`] orients it), holding with probability at
/// least 1 - 1e-6 over the probes. The probes are drawn from a fixed seed, so the bound is
/// reproducible; the rounding error they probe does not depend on them.
pub fn gram_error_bound(x: &[f32], n: usize, d: usize, fast: &Mat<f64>) -> f64 {
    let m = n.min(d);
    assert_eq!((fast.nrows(), fast.ncols()), (m, m));
    let mut rng = ChaCha8Rng::seed_from_u64(0x5eed_e44b);
    let mut probes = Mat::<f64>::from_fn(m, PROBES, |_, _| standard_normal(&mut rng));
    for _ in 0..POWER_STEPS {
        let exact = gram_times(x, n, d, probes.as_ref());
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
    use crate::spectrum::eigen::eigenvalues_desc;
    use crate::spectrum::gram::{gram_f32_blocks, gram_f64};

    /// The bound holds against the true spectral norm of the fast Gram's error and is not so
    /// loose that it would reject what the f32 blocks make possible.
    #[test]
    fn bounds_the_f32_blocks_error_without_gross_slack() {
        let mut rng = ChaCha8Rng::seed_from_u64(9);
        for (n, d) in [(5000usize, 96usize), (80, 3000)] {
            let x: Vec<f32> = (0..n * d)
                .map(|i| (rng.random::<f32>() + 0.2) / (1.0 + (i % d) as f32 / 16.0))
                .collect();
            let exact = gram_f64(&x, n, d);
            let fast = gram_f32_blocks(&x, n, d);
            let error = &fast - &exact;
            let true_norm =
                eigenvalues_desc(error.as_ref()).iter().fold(0.0f64, |a, v| a.max(v.abs()));
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
        let exact = gram_f64(&x, n, d);
        let scale = (0..d).map(|i| exact[(i, i)]).fold(0.0, f64::max);
        assert!(gram_error_bound(&x, n, d, &exact) < 1e-12 * scale);
    }
}
