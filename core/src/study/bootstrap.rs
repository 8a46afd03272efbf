//! The percentile bootstrap every interval of a study's report comes from: resample the units
//! (seeds, or cells) with replacement, recompute the statistic, read the 2.5th and 97.5th
//! percentiles. Seeded, so a report is the same on every run.

use rand::rngs::ChaCha8Rng;
use rand::{RngExt, SeedableRng};

/// Bootstrap resamples behind each interval.
pub const BOOTSTRAP_RESAMPLES: usize = 2000;

/// The 95% percentile bootstrap interval of `statistic` over `n` units: each resample hands it
/// `n` unit indices drawn with replacement; resamples where it is not finite are left out.
/// NaN bounds when `n` is 0 or no resample is left.
pub fn bootstrap_interval(
    n: usize,
    seed: u64,
    mut statistic: impl FnMut(&[usize]) -> f64,
) -> (f64, f64) {
    if n == 0 {
        return (f64::NAN, f64::NAN);
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut values = Vec::with_capacity(BOOTSTRAP_RESAMPLES);
    let mut picks = vec![0; n];
    for _ in 0..BOOTSTRAP_RESAMPLES {
        for pick in picks.iter_mut() {
            *pick = rng.random_range(0..n);
        }
        let value = statistic(&picks);
        if value.is_finite() {
            values.push(value);
        }
    }
    if values.is_empty() {
        return (f64::NAN, f64::NAN);
    }
    values.sort_by(f64::total_cmp);
    let at = |q: f64| values[((q * (values.len() - 1) as f64).round()) as usize];
    (at(0.025), at(0.975))
}

/// The 95% bootstrap interval of the mean of `values`.
///
/// # Examples
///
/// ```
/// use nml_core::study::mean_interval;
///
/// let (low, high) = mean_interval(&[1.0, 1.2, 0.9, 1.1, 1.3], 0);
/// assert!(low > 0.0 && low < 1.1 && high > 1.1 && high < 1.3);
/// ```
pub fn mean_interval(values: &[f64], seed: u64) -> (f64, f64) {
    bootstrap_interval(values.len(), seed, |picks| {
        picks.iter().map(|&i| values[i]).sum::<f64>() / picks.len() as f64
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mean_interval_brackets_the_mean_and_narrows_with_agreement() {
        let spread = [-2.0, 3.0, 0.5, -1.0, 2.5];
        let (low, high) = mean_interval(&spread, 0);
        let mean = spread.iter().sum::<f64>() / 5.0;
        assert!(low < mean && mean < high, "{low} {mean} {high}");
        assert!(low < 0.0 && high > 0.0, "a spread around zero must not exclude it");
        let agreeing = [1.9, 2.0, 2.1, 2.0, 1.95];
        let (low, high) = mean_interval(&agreeing, 0);
        assert!(low > 1.85 && high < 2.1, "{low} {high}");
        // One value: every resample is that value.
        assert_eq!(mean_interval(&[0.7], 0), (0.7, 0.7));
        assert!(mean_interval(&[], 0).0.is_nan());
        assert_eq!(mean_interval(&spread, 3), mean_interval(&spread, 3), "seeded");
    }
}
