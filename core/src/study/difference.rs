//! The change a noise ratio makes, measured the way the findings claim it: for each seed, the
//! value after pre-training at that ratio minus the value after the cleanest pre-training of
//! the same seed, then the mean of those differences over seeds with a bootstrap interval.
//! Pairing by seed keeps what the seeds share (the downstream data, the tuning recipe) out of
//! the spread.

use super::bootstrap::mean_interval;
use super::results::mean_std;

/// Seeds a difference needs before the report calls it a finding; under this many a bootstrap
/// over seeds has too few distinct resamples to mean much.
pub const FINDING_SEEDS: usize = 5;

/// The change from clean pre-training over the seeds that have both values.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Difference {
    /// Mean over seeds of the per-seed difference (NaN where no seed has both values).
    pub mean: f64,
    /// Sample standard deviation of the per-seed differences (0 for one seed).
    pub sd: f64,
    /// The 95% percentile bootstrap interval of the mean, resampling seeds.
    pub interval: (f64, f64),
    /// Seeds behind it.
    pub seeds: usize,
}

impl Difference {
    /// Of the per-seed differences.
    ///
    /// # Examples
    ///
    /// ```
    /// use nml_core::study::Difference;
    ///
    /// let d = Difference::of(&[-2.1, -1.8, -2.4, -1.9, -2.2]);
    /// assert!(d.holds() && d.interval.1 < 0.0);
    /// assert!(!Difference::of(&[-2.1, 1.8, -2.4, 1.9, 0.2]).holds());
    /// assert!(!Difference::of(&[-2.1, -1.8]).holds(), "too few seeds");
    /// ```
    pub fn of(per_seed: &[f64]) -> Self {
        if per_seed.is_empty() {
            return Self { mean: f64::NAN, sd: 0.0, interval: (f64::NAN, f64::NAN), seeds: 0 };
        }
        let (mean, sd) = mean_std(per_seed);
        Self { mean, sd, interval: mean_interval(per_seed, 0), seeds: per_seed.len() }
    }

    /// Whether the difference is a finding: at least [`FINDING_SEEDS`] seeds and an interval
    /// wholly on one side of zero.
    pub fn holds(&self) -> bool {
        self.seeds >= FINDING_SEEDS && (self.interval.0 > 0.0 || self.interval.1 < 0.0)
    }
}
