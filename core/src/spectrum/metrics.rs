//! Scalar summaries of a spectrum. All take singular values sorted in descending order.
//!
//! Besides the paper's two (SVE and LSVR), the ones its neighbours read, all from the same
//! singular values s_i (no second decomposition), with eigenvalues λ_i = s_i²:
//! - RankMe (Garrido et al., 2023): exp(SVE). Its authors add ε = 1e-7 to each share, which
//!   moves it by less than D·1e-7 relative; nml leaves it out, so RankMe is exactly exp(SVE).
//! - alpha-ReQ (Agrawal et al., 2022): α in λ_k ∝ k^-α, fitted as its authors' code fits it, by
//!   least squares of ln λ_k against -ln k weighted by 1/k over ranks k = 6..=100
//!   ([`ALPHA_REQ_RANKS`]), clipped to the retained spectrum.
//! - NESum (He and Ozay, 2022): Σ λ_i / λ_1. With λ = s² this is the stable rank
//!   ‖X‖_F² / ‖X‖_2² of the preprocessed features: one number under two names.
//! - The condition number s_1 / s_r of the retained spectrum.
//!
//! The retained spectrum is the values above s_1 · max(N, D) · ε_f32 (numpy's `matrix_rank`
//! tolerance at the features' own precision, f32): below it a singular value cannot be told
//! from the rounding of the features. Where a metric is ill-defined it is `None` (`null` in
//! JSON): NESum and the condition number of an all-zero spectrum; alpha-ReQ with fewer than two
//! retained values in its ranks (fewer than 7 retained: under 7 samples, or D < 8 in the paper
//! mode, whose all-ones direction is null).

use serde::{Deserialize, Serialize};

/// The 1-based ranks alpha-ReQ is fitted over: the range its authors' code uses by default
/// (their `fit_range = np.arange(5, 100)`, 0-based), skipping the head of the spectrum.
pub const ALPHA_REQ_RANKS: std::ops::RangeInclusive<usize> = 6..=100;

/// Every scalar nml reports about a spectrum.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SpectralMetrics {
    /// Singular Value Entropy, -Σ p_i ln p_i with p_i = s_i / Σ s.
    pub sve: f64,
    /// s_1 / Σ s (a share in (0, 1]).
    pub lsvr_ratio: f64,
    /// -ln(s_1 / Σ s), the form the paper plots.
    pub lsvr_neglog: f64,
    /// exp(SVE), RankMe by name.
    #[serde(alias = "effective_rank")]
    pub rankme: f64,
    /// The power-law decay of the eigenvalues over [`ALPHA_REQ_RANKS`].
    #[serde(default)]
    pub alpha_req: Option<f64>,
    /// Σ λ_i / λ_1, the stable rank.
    #[serde(default)]
    pub nesum: Option<f64>,
    /// s_1 / s_r over the retained spectrum.
    #[serde(default)]
    pub condition_number: Option<f64>,
    /// How many singular values are retained (the numerical rank).
    #[serde(default)]
    pub retained: usize,
}

impl SpectralMetrics {
    /// The metrics of the singular values (descending) of an `n` x `d` matrix.
    pub fn of(singular_values: &[f64], n: usize, d: usize) -> Self {
        let retained = retained_count(singular_values, n, d);
        let kept = &singular_values[..retained];
        Self {
            sve: sve(singular_values),
            lsvr_ratio: lsvr_ratio(singular_values),
            lsvr_neglog: lsvr_neglog(singular_values),
            rankme: effective_rank(singular_values),
            alpha_req: alpha_req(kept),
            nesum: nesum(singular_values),
            condition_number: kept.last().map(|last| kept[0] / last),
            retained,
        }
    }
}

/// One of the scalars of [`SpectralMetrics`], by name: what the study tabulates and correlates.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Metric {
    Sve,
    LsvrNeglog,
    RankMe,
    AlphaReq,
    Nesum,
    ConditionNumber,
}

impl Metric {
    pub const ALL: [Metric; 6] = [
        Self::Sve,
        Self::LsvrNeglog,
        Self::RankMe,
        Self::AlphaReq,
        Self::Nesum,
        Self::ConditionNumber,
    ];

    /// As the report writes it.
    pub fn name(self) -> &'static str {
        match self {
            Self::Sve => "SVE",
            Self::LsvrNeglog => "-ln LSVR",
            Self::RankMe => "RankMe",
            Self::AlphaReq => "alpha-ReQ",
            Self::Nesum => "NESum",
            Self::ConditionNumber => "condition number",
        }
    }

    /// The file stem of the sweep's scatter plot of accuracy against it.
    pub fn scatter_file(self) -> &'static str {
        match self {
            Self::Sve => "accuracy_vs_sve",
            Self::LsvrNeglog => "accuracy_vs_lsvr",
            Self::RankMe => "accuracy_vs_rankme",
            Self::AlphaReq => "accuracy_vs_alpha_req",
            Self::Nesum => "accuracy_vs_nesum",
            Self::ConditionNumber => "accuracy_vs_condition_number",
        }
    }

    /// That plot's title.
    pub fn scatter_title(self) -> &'static str {
        match self {
            Self::Sve => "Accuracy against SVE of the frozen features, a point per cell",
            Self::LsvrNeglog => {
                "Accuracy against -ln LSVR of the frozen features, a point per cell"
            }
            Self::RankMe => "Accuracy against RankMe of the frozen features, a point per cell",
            Self::AlphaReq => "Accuracy against alpha-ReQ of the frozen features, a point per cell",
            Self::Nesum => "Accuracy against NESum of the frozen features, a point per cell",
            Self::ConditionNumber => {
                "Accuracy against the condition number of the frozen features, a point per cell"
            }
        }
    }

    /// Its value in `metrics`, `None` where it is ill-defined.
    pub fn of(self, metrics: &SpectralMetrics) -> Option<f64> {
        match self {
            Self::Sve => Some(metrics.sve),
            Self::LsvrNeglog => Some(metrics.lsvr_neglog),
            Self::RankMe => Some(metrics.rankme),
            Self::AlphaReq => metrics.alpha_req,
            Self::Nesum => metrics.nesum,
            Self::ConditionNumber => metrics.condition_number,
        }
    }
}

/// The number of singular values above s_1 · max(n, d) · ε_f32 (none of an all-zero spectrum).
pub fn retained_count(singular_values: &[f64], n: usize, d: usize) -> usize {
    let Some(&first) = singular_values.first() else { return 0 };
    let tolerance = first * n.max(d) as f64 * f64::from(f32::EPSILON);
    singular_values.iter().take_while(|&&s| s > tolerance && s > 0.0).count()
}

/// Σ s_i² / s_1², or `None` when s_1 is zero.
pub fn nesum(singular_values: &[f64]) -> Option<f64> {
    let first = *singular_values.first()?;
    (first > 0.0).then(|| singular_values.iter().map(|s| (s / first).powi(2)).sum())
}

/// alpha-ReQ of retained singular values (descending, all positive): the weighted
/// least-squares slope of ln λ_k = -α ln k + c, weights 1/k, over the ranks in
/// [`ALPHA_REQ_RANKS`] that exist; `None` with fewer than two of them.
pub fn alpha_req(retained: &[f64]) -> Option<f64> {
    let points: Vec<(f64, f64, f64)> = ALPHA_REQ_RANKS
        .filter(|&k| k <= retained.len())
        .map(|k| {
            let lambda = retained[k - 1] * retained[k - 1];
            (-(k as f64).ln(), lambda.ln(), 1.0 / k as f64)
        })
        .collect();
    if points.len() < 2 {
        return None;
    }
    let weight: f64 = points.iter().map(|p| p.2).sum();
    let mean_x = points.iter().map(|p| p.2 * p.0).sum::<f64>() / weight;
    let mean_y = points.iter().map(|p| p.2 * p.1).sum::<f64>() / weight;
    let sxy: f64 = points.iter().map(|p| p.2 * (p.0 - mean_x) * (p.1 - mean_y)).sum();
    let sxx: f64 = points.iter().map(|p| p.2 * (p.0 - mean_x).powi(2)).sum();
    Some(sxy / sxx)
}

/// Shares p_i = s_i / sum_j s_j (all zero for an all-zero spectrum).
pub fn shares(singular_values: &[f64]) -> Vec<f64> {
    let total: f64 = singular_values.iter().sum();
    if total <= 0.0 {
        return vec![0.0; singular_values.len()];
    }
    singular_values.iter().map(|s| s / total).collect()
}

/// Singular Value Entropy: -sum p_i ln p_i, with 0 ln 0 = 0.
pub fn sve(singular_values: &[f64]) -> f64 {
    -shares(singular_values).iter().filter(|&&p| p > 0.0).map(|p| p * p.ln()).sum::<f64>()
}

/// Largest Singular Value Ratio as a share: s_1 / sum_j s_j.
pub fn lsvr_ratio(singular_values: &[f64]) -> f64 {
    shares(singular_values).first().copied().unwrap_or(0.0)
}

/// Largest Singular Value Ratio as the paper plots it: -ln(s_1 / sum_j s_j).
pub fn lsvr_neglog(singular_values: &[f64]) -> f64 {
    -lsvr_ratio(singular_values).ln()
}

/// exp(SVE): the number of equally strong directions with the same entropy.
pub fn effective_rank(singular_values: &[f64]) -> f64 {
    sve(singular_values).exp()
}

/// Share of the k largest singular values in the total.
pub fn top_k_share(singular_values: &[f64], k: usize) -> f64 {
    shares(singular_values).iter().take(k).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn closed_forms() {
        let flat = vec![2.0; 8];
        assert!((sve(&flat) - 8f64.ln()).abs() < 1e-12);
        assert!((effective_rank(&flat) - 8.0).abs() < 1e-9);
        assert!((lsvr_ratio(&flat) - 0.125).abs() < 1e-12);
        assert!((lsvr_neglog(&flat) - 8f64.ln()).abs() < 1e-12);
        let one = vec![5.0, 0.0, 0.0];
        assert_eq!(sve(&one), 0.0);
        assert_eq!(lsvr_ratio(&one), 1.0);
        let s = vec![3.0, 1.0];
        let expected = -(0.75f64 * 0.75f64.ln() + 0.25 * 0.25f64.ln());
        assert!((sve(&s) - expected).abs() < 1e-12);
        assert!((top_k_share(&[4.0, 3.0, 2.0, 1.0], 2) - 0.7).abs() < 1e-12);
    }

    /// A power law λ_k = k^-1.5 gives back its exponent; a flat spectrum has NESum D, the
    /// condition number 1 and alpha 0.
    #[test]
    fn field_metrics_closed_forms() {
        let power: Vec<f64> = (1..=200).map(|k| (k as f64).powf(-0.75)).collect();
        let m = SpectralMetrics::of(&power, 1000, 200);
        assert!((m.alpha_req.unwrap() - 1.5).abs() < 1e-12, "{:?}", m.alpha_req);
        assert_eq!(m.retained, 200);
        assert!((m.condition_number.unwrap() - 200f64.powf(0.75)).abs() < 1e-9);
        let flat = SpectralMetrics::of(&[2.0; 8], 100, 8);
        assert_eq!(flat.nesum, Some(8.0));
        assert_eq!(flat.condition_number, Some(1.0));
        assert!(flat.alpha_req.unwrap().abs() < 1e-12, "three ranks 6..=8");
        assert!((flat.rankme - 8.0).abs() < 1e-9);
    }

    /// Values under the tolerance are not retained; too few ranks or an all-zero spectrum give
    /// `None`, which JSON writes as null.
    #[test]
    fn ill_defined_metrics_are_none() {
        let tiny = f64::from(f32::EPSILON) * 10.0 * 1.0 * 0.5;
        let m = SpectralMetrics::of(&[1.0, 0.5, 0.25, 0.1, 0.05, 0.02, tiny, 0.0], 10, 8);
        assert_eq!(m.retained, 6);
        assert!((m.condition_number.unwrap() - 50.0).abs() < 1e-9);
        assert_eq!(m.alpha_req, None, "one retained value at ranks 6..");
        let seven = SpectralMetrics::of(&[1.0, 0.5, 0.25, 0.1, 0.05, 0.02, 0.01], 10, 7);
        assert!(seven.alpha_req.is_some());
        let zero = SpectralMetrics::of(&[0.0; 4], 10, 4);
        assert_eq!((zero.retained, zero.nesum, zero.condition_number), (0, None, None));
        let json = serde_json::to_value(&zero).unwrap();
        assert!(json["alpha_req"].is_null() && json["nesum"].is_null());
        let old = r#"{"sve": 1.0, "lsvr_ratio": 0.5, "lsvr_neglog": 0.69, "effective_rank": 2.7}"#;
        let read: SpectralMetrics = serde_json::from_str(old).unwrap();
        assert_eq!((read.rankme, read.alpha_req), (2.7, None));
    }
}
