//! Which spectral metric predicts transfer: the rank correlation (Spearman) between each metric
//! of the frozen features and the accuracy tuned on them, over a study's cells, with a
//! bootstrap interval over cells.
//!
//! A cell is one evaluation set (a task's test set or a shifted one) after one pre-training run
//! (a noise ratio and a seed), scored by the first head method at the full data fraction. Pooled
//! over tasks, a correlation can reflect which task a cell belongs to more than how noise moved
//! it, so [`Results::metric_predictions`] gives, beside the pooled ρ, the ρ within each
//! evaluation (its cells differ only in noise ratio and seed).

use super::bootstrap::bootstrap_interval;
use super::results::{Eval, Results};
use crate::spectrum::metrics::Metric;
use crate::tune::Role;

/// How well one metric ranks the cells of one role by accuracy.
#[derive(Clone, Debug, PartialEq)]
pub struct MetricPrediction {
    pub metric: Metric,
    pub role: Role,
    /// Cells where the metric is defined.
    pub cells: usize,
    /// Spearman's ρ over every such cell of the role (NaN under 3 cells or with no spread).
    pub rho: f64,
    /// The 95% percentile bootstrap interval of `rho`, resampling cells with replacement.
    pub interval: (f64, f64),
    /// ρ within each evaluation of the role, in [`Results::evals`] order.
    pub within: Vec<(Eval, f64)>,
}

impl MetricPrediction {
    /// Whether the interval lies wholly on one side of zero.
    pub fn excludes_zero(&self) -> bool {
        self.interval.0 > 0.0 || self.interval.1 < 0.0
    }
}

/// Ranks from 1, ties given their mean rank.
pub fn ranks(values: &[f64]) -> Vec<f64> {
    let mut order: Vec<usize> = (0..values.len()).collect();
    order.sort_by(|&a, &b| values[a].total_cmp(&values[b]));
    let mut ranks = vec![0.0; values.len()];
    let mut start = 0;
    while start < order.len() {
        let mut end = start + 1;
        while end < order.len() && values[order[end]] == values[order[start]] {
            end += 1;
        }
        let mean_rank = (start + end + 1) as f64 / 2.0;
        for &i in &order[start..end] {
            ranks[i] = mean_rank;
        }
        start = end;
    }
    ranks
}

/// Spearman's rank correlation: Pearson's correlation of the ranks (ties at their mean rank).
/// NaN with fewer than 3 pairs or where either side has no spread.
pub fn spearman(x: &[f64], y: &[f64]) -> f64 {
    assert_eq!(x.len(), y.len(), "pairs");
    if x.len() < 3 {
        return f64::NAN;
    }
    let (rx, ry) = (ranks(x), ranks(y));
    let n = x.len() as f64;
    let (mx, my) = (rx.iter().sum::<f64>() / n, ry.iter().sum::<f64>() / n);
    let cov: f64 = rx.iter().zip(&ry).map(|(a, b)| (a - mx) * (b - my)).sum();
    let vx: f64 = rx.iter().map(|a| (a - mx).powi(2)).sum();
    let vy: f64 = ry.iter().map(|b| (b - my).powi(2)).sum();
    if vx == 0.0 || vy == 0.0 {
        return f64::NAN;
    }
    cov / (vx * vy).sqrt()
}

/// The 95% percentile bootstrap interval of Spearman's ρ, resampling pairs with replacement
/// (see [`bootstrap_interval`]); resamples with no spread are left out. NaN bounds under 3
/// pairs.
pub fn spearman_interval(x: &[f64], y: &[f64], seed: u64) -> (f64, f64) {
    if x.len() < 3 {
        return (f64::NAN, f64::NAN);
    }
    let (mut bx, mut by) = (vec![0.0; x.len()], vec![0.0; x.len()]);
    bootstrap_interval(x.len(), seed, |picks| {
        for (k, &i) in picks.iter().enumerate() {
            (bx[k], by[k]) = (x[i], y[i]);
        }
        spearman(&bx, &by)
    })
}

impl Results {
    /// Every metric's prediction of accuracy for both roles, in [`Metric::ALL`] order, ID first.
    pub fn metric_predictions(&self) -> Vec<MetricPrediction> {
        let mut out = Vec::new();
        for role in [Role::Id, Role::Ood] {
            for metric in Metric::ALL {
                let pairs = self.metric_accuracy_pairs(metric, role, None);
                let (x, y): (Vec<f64>, Vec<f64>) = pairs.iter().copied().unzip();
                let within = self
                    .evals()
                    .into_iter()
                    .filter(|e| e.1 == role)
                    .map(|eval| {
                        let pairs = self.metric_accuracy_pairs(metric, role, Some(&eval));
                        let (x, y): (Vec<f64>, Vec<f64>) = pairs.into_iter().unzip();
                        (eval, spearman(&x, &y))
                    })
                    .collect();
                out.push(MetricPrediction {
                    metric,
                    role,
                    cells: x.len(),
                    rho: spearman(&x, &y),
                    interval: spearman_interval(&x, &y, 0),
                    within,
                });
            }
        }
        out
    }

    /// `(metric, accuracy in %)` of every cell of `role` (of one evaluation, when given) where
    /// the metric is defined, scored by the first head method at the full data fraction.
    pub fn metric_accuracy_pairs(
        &self,
        metric: Metric,
        role: Role,
        eval: Option<&Eval>,
    ) -> Vec<(f64, f64)> {
        self.cells()
            .filter(|r| r.kind == role)
            .filter(|r| eval.is_none_or(|e| r.task == e.0 && r.eval == e.2))
            .filter_map(|r| Some((metric.of(&r.metrics)?, r.accuracy * 100.0)))
            .collect()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::spectrum::SpectralMetrics;
    use crate::study::{ResultRow, StudySuite};

    /// A study's rows where accuracy falls and SVE rises with the noise on every evaluation,
    /// beside rows of another head and fraction that must not count.
    pub(crate) fn falling_accuracy_study() -> Results {
        let toml = r#"
modality = "text"
ratios = [0.0, 0.1, 0.2, 0.3]
seeds = [0, 1]
noise_kind = "symmetric"
pretrain_data = "texts.jsonl"

[pretrain]
model = { kind = "sentence-transformers", weights = "model" }
max_tokens = 8
epochs = 1
batch_size = 2
lr = 0.01
encoder_lr_ratio = 1.0
weight_decay = 0.0
seed = 0

[tune]
methods = ["lp", "mlp"]
epochs = 1
fractions = [0.5, 1.0]

[[task]]
name = "a"
train = "a.jsonl"
test = "a.jsonl"
ood = { shifted = "a.jsonl" }

[[task]]
name = "b"
train = "b.jsonl"
test = "b.jsonl"
"#;
        let suite = StudySuite::from_toml(toml, "t.toml").unwrap();
        let mut rows = Vec::new();
        for (task, kind, eval, base) in [
            ("a", Role::Id, "test", 0.9),
            ("a", Role::Ood, "shifted", 0.7),
            ("b", Role::Id, "test", 0.6),
        ] {
            for seed in [0, 1] {
                for ratio in [0.0, 0.1, 0.2, 0.3] {
                    // Flatter spectra (higher SVE) with more noise; accuracy falls.
                    let s: Vec<f64> = (1..=20).map(|k| (k as f64).powf(-(1.0 - ratio))).collect();
                    for (method, fraction, accuracy) in
                        [("lp", 1.0, base - ratio * 0.5), ("lp", 0.5, ratio), ("mlp", 1.0, ratio)]
                    {
                        rows.push(ResultRow {
                            objective: "supervised".into(),
                            ratio,
                            seed,
                            task: task.into(),
                            kind,
                            eval: eval.into(),
                            method: method.into(),
                            fraction,
                            accuracy,
                            metrics: SpectralMetrics::of(&s, 100, 20),
                            pretrain_noise_rate: ratio,
                            pretrain_train_accuracy: 1.0 - ratio,
                            tune_seconds: 0.0,
                        });
                    }
                }
            }
        }
        Results { suite, finetune: None, backend: "cpu".into(), rows, missing: Vec::new() }
    }

    #[test]
    fn predictions_rank_the_first_heads_cells() {
        let results = falling_accuracy_study();
        let pairs = results.metric_accuracy_pairs(Metric::Sve, Role::Id, None);
        assert_eq!(pairs.len(), 16, "2 evaluations x 4 ratios x 2 seeds, LP at 100% only");
        let predictions = results.metric_predictions();
        assert_eq!(predictions.len(), 2 * Metric::ALL.len());
        let sve_id = predictions.iter().find(|p| p.metric == Metric::Sve && p.role == Role::Id);
        let sve_id = sve_id.unwrap();
        assert_eq!(sve_id.within.len(), 2);
        for (eval, rho) in &sve_id.within {
            assert!((rho + 1.0).abs() < 1e-12, "{eval:?}: {rho}");
        }
        // Pooled over two tasks whose accuracies differ by 0.3, ρ is weaker than within.
        assert!(sve_id.rho > -1.0 && sve_id.rho < 0.0, "{}", sve_id.rho);
        let figure = results.metric_scatter(Metric::Sve);
        assert!(figure.scatter && figure.panels.len() == 2, "a panel per role");
        assert_eq!(figure.series().count(), 3);
        assert!(figure.series().all(|c| c.points.len() == 8));
    }

    /// Against values scipy.stats.spearmanr gives for the same data (ties included).
    #[test]
    fn spearman_matches_its_definition() {
        let x = [1.0, 2.0, 3.0, 4.0, 5.0];
        assert!((spearman(&x, &[2.0, 4.0, 6.0, 8.0, 10.0]) - 1.0).abs() < 1e-12);
        assert!((spearman(&x, &[5.0, 4.0, 3.0, 2.0, 1.0]) + 1.0).abs() < 1e-12);
        // spearmanr([1, 2, 3, 4, 5], [5, 6, 7, 8, 7]) = 0.8207826816681233
        let tied = spearman(&x, &[5.0, 6.0, 7.0, 8.0, 7.0]);
        assert!((tied - 0.820_782_681_668_123_3).abs() < 1e-12, "{tied}");
        assert_eq!(ranks(&[3.0, 1.0, 3.0, 2.0]), [3.5, 1.0, 3.5, 2.0]);
        assert!(spearman(&x, &[1.0; 5]).is_nan(), "no spread");
        assert!(spearman(&x[..2], &x[..2]).is_nan(), "too few");
    }

    /// A strong monotone relation's interval excludes zero; independent values' does not.
    #[test]
    fn bootstrap_intervals_cover_what_they_should() {
        let x: Vec<f64> = (0..40).map(f64::from).collect();
        let noisy: Vec<f64> = x.iter().map(|v| v + 8.0 * (v * 12.9898).sin()).collect();
        let (low, high) = spearman_interval(&x, &noisy, 0);
        let rho = spearman(&x, &noisy);
        assert!(low > 0.5 && low <= rho && rho <= high && high <= 1.0, "{low} {rho} {high}");
        let other: Vec<f64> = x.iter().map(|v| (v * 78.233).sin()).collect();
        let (low, high) = spearman_interval(&x, &other, 0);
        assert!(low < 0.0 && high > 0.0, "{low} {high}");
        assert_eq!(spearman_interval(&x, &noisy, 0), spearman_interval(&x, &noisy, 0));
    }
}
