//! The study's results: one row per number, with everything that produced it; the tables and
//! series the report shows are computed here (means and spreads over seeds, the change from
//! the cleanest pre-training), so every reader of a study sees the same numbers.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::difference::Difference;
use super::suite::{FinetuneSuite, StudySuite};
use crate::error::{NmlError, Result};
use crate::io::write_atomic;
use crate::spectrum::SpectralMetrics;
use crate::spectrum::metrics::Metric;
use crate::tune::Role;

/// One number of the study, with everything that produced it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ResultRow {
    /// `supervised` or `contrastive`.
    pub objective: String,
    pub ratio: f64,
    pub seed: u64,
    pub task: String,
    /// Whether `eval` is the task's own test set or a shifted one.
    pub kind: Role,
    /// The evaluation set: `test` or the OOD set's name.
    pub eval: String,
    /// lp, mlp, nmtune (heads on frozen features) or lora, lora-nmtune, ft, ft-nmtune.
    pub method: String,
    pub fraction: f64,
    pub accuracy: f64,
    /// Of the evaluation set's features from the pre-trained encoder (paper mode).
    #[serde(flatten)]
    pub metrics: SpectralMetrics,
    pub pretrain_noise_rate: f64,
    pub pretrain_train_accuracy: f64,
    pub tune_seconds: f64,
}

/// A metric that may be ill-defined: empty in CSV where it is.
fn optional(value: Option<f64>) -> String {
    value.map(|v| format!("{v:.6}")).unwrap_or_default()
}

/// An evaluation of a task: `(task, role, eval)`.
pub type Eval = (String, Role, String);

/// A study's rows with the suite (and fine-tuning plan) that made them.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Results {
    pub suite: StudySuite,
    pub finetune: Option<FinetuneSuite>,
    /// The device the study ran on, as described to the user.
    pub backend: String,
    pub rows: Vec<ResultRow>,
    /// The cells a report found missing (a sharded study not yet finished), each with why;
    /// empty for a whole study.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub missing: Vec<String>,
}

/// Mean and (sample) standard deviation; the spread is 0 for a single value.
pub fn mean_std(values: &[f64]) -> (f64, f64) {
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    let var = if values.len() > 1 {
        values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0)
    } else {
        0.0
    };
    (mean, var.sqrt())
}

/// A point of a figure's line, with the bar drawn through it (none where `low == high`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Point {
    pub x: f64,
    pub y: f64,
    pub low: f64,
    pub high: f64,
}

impl Point {
    /// A mean with a bar of one standard deviation either side.
    pub fn spread(x: f64, (mean, sd): (f64, f64)) -> Self {
        Self { x, y: mean, low: mean - sd, high: mean + sd }
    }

    /// A difference with its bootstrap interval as the bar.
    pub fn interval(x: f64, d: &Difference) -> Self {
        let (low, high) = if d.seeds > 1 { d.interval } else { (d.mean, d.mean) };
        Self { x, y: d.mean, low, high }
    }
}

/// A line of a figure.
#[derive(Clone, Debug, PartialEq)]
pub struct Curve {
    pub label: String,
    pub points: Vec<Point>,
}

/// One panel of a figure (small multiples share the figure's axes); a figure of one panel
/// leaves its title empty.
#[derive(Clone, Debug, PartialEq)]
pub struct Panel {
    pub title: String,
    pub series: Vec<Curve>,
}

/// A figure of the report: its file stem, labels and panels.
#[derive(Clone, Debug, PartialEq)]
pub struct Figure {
    pub file: &'static str,
    pub title: &'static str,
    pub x_label: &'static str,
    pub y_label: &'static str,
    pub log_x: bool,
    /// Points alone, unjoined (a scatter plot); else lines through them.
    pub scatter: bool,
    pub panels: Vec<Panel>,
}

impl Figure {
    /// Every line of every panel.
    pub fn series(&self) -> impl Iterator<Item = &Curve> {
        self.panels.iter().flat_map(|p| &p.series)
    }
}

impl Results {
    /// Writes `results.json` (every number with its suite) and `results.csv` into `out`.
    pub fn write_data(&self, out: &Path) -> Result<()> {
        let json = serde_json::to_string_pretty(self)
            .map_err(|e| NmlError::Invalid(format!("cannot serialise the results: {e}")))?;
        write_atomic(&out.join("results.json"), format!("{json}\n").as_bytes())?;
        write_atomic(&out.join("results.csv"), &self.csv()?)
    }

    /// The rows as CSV, a header line first.
    pub fn csv(&self) -> Result<Vec<u8>> {
        let mut writer = csv::Writer::from_writer(Vec::new());
        let bad =
            |e: csv::Error| NmlError::Invalid(format!("cannot write the results as CSV: {e}"));
        writer
            .write_record([
                "objective",
                "ratio",
                "seed",
                "task",
                "kind",
                "eval",
                "method",
                "fraction",
                "accuracy",
                "sve",
                "lsvr_ratio",
                "lsvr_neglog",
                "rankme",
                "alpha_req",
                "nesum",
                "condition_number",
                "pretrain_noise_rate",
                "pretrain_train_accuracy",
                "tune_seconds",
            ])
            .map_err(bad)?;
        for r in &self.rows {
            writer
                .write_record([
                    r.objective.clone(),
                    r.ratio.to_string(),
                    r.seed.to_string(),
                    r.task.clone(),
                    r.kind.name().to_string(),
                    r.eval.clone(),
                    r.method.clone(),
                    r.fraction.to_string(),
                    format!("{:.6}", r.accuracy),
                    format!("{:.6}", r.metrics.sve),
                    format!("{:.6}", r.metrics.lsvr_ratio),
                    format!("{:.6}", r.metrics.lsvr_neglog),
                    format!("{:.6}", r.metrics.rankme),
                    optional(r.metrics.alpha_req),
                    optional(r.metrics.nesum),
                    optional(r.metrics.condition_number),
                    format!("{:.6}", r.pretrain_noise_rate),
                    format!("{:.6}", r.pretrain_train_accuracy),
                    format!("{:.3}", r.tune_seconds),
                ])
                .map_err(bad)?;
        }
        writer
            .into_inner()
            .map_err(|e| NmlError::Invalid(format!("cannot write the results as CSV: {e}")))
    }

    /// Names of the head methods, in the suite's order.
    pub fn head_methods(&self) -> Vec<String> {
        self.suite.tune().methods.iter().map(|m| m.name().to_string()).collect()
    }

    /// Head methods, then the fine-tuning methods.
    pub fn methods(&self) -> Vec<String> {
        let mut methods = self.head_methods();
        methods.extend(self.finetune.iter().flat_map(FinetuneSuite::method_names));
        methods
    }

    /// The largest downstream data fraction: the headline one.
    pub fn full_fraction(&self) -> f64 {
        self.suite.tune().fractions.iter().copied().fold(0.0, f64::max)
    }

    /// The cleanest pre-training's noise ratio.
    pub fn clean_ratio(&self) -> f64 {
        self.suite.ratios().iter().copied().fold(f64::INFINITY, f64::min)
    }

    /// Whether a row is a headline number: a head at the largest data fraction, or a
    /// fine-tuned encoder (always on all data).
    pub fn is_headline(&self, r: &ResultRow) -> bool {
        let heads = self.head_methods();
        r.fraction == if heads.contains(&r.method) { self.full_fraction() } else { 1.0 }
    }

    /// One row per cell (an evaluation set after one pre-training run): the first head method's
    /// at the full data fraction, the row that speaks for the cell's features.
    pub fn cells(&self) -> impl Iterator<Item = &ResultRow> {
        let first = self.head_methods().into_iter().next().unwrap_or_default();
        let full = self.full_fraction();
        self.rows.iter().filter(move |r| r.method == first && r.fraction == full)
    }

    /// Every `(task, role, eval)`, sorted.
    pub fn evals(&self) -> Vec<Eval> {
        let mut v: Vec<Eval> =
            self.rows.iter().map(|r| (r.task.clone(), r.kind, r.eval.clone())).collect();
        v.sort();
        v.dedup();
        v
    }

    fn over_seeds<'a>(
        &'a self,
        keep: impl Fn(&ResultRow) -> bool + 'a,
        value: impl Fn(&ResultRow) -> f64,
    ) -> (f64, f64) {
        let values: Vec<f64> = self.rows.iter().filter(|r| keep(r)).map(value).collect();
        mean_std(&values)
    }

    /// Headline accuracy (%) of `method` on an evaluation after pre-training at `ratio`: mean
    /// and spread over seeds.
    pub fn accuracy(&self, eval: &Eval, method: &str, ratio: f64) -> (f64, f64) {
        self.over_seeds(
            |r| {
                r.task == eval.0
                    && r.eval == eval.2
                    && r.method == method
                    && r.ratio == ratio
                    && self.is_headline(r)
            },
            |r| r.accuracy * 100.0,
        )
    }

    /// Accuracy (%) of a head method at one data fraction.
    pub fn fraction_accuracy(
        &self,
        eval: &Eval,
        method: &str,
        ratio: f64,
        fraction: f64,
    ) -> (f64, f64) {
        self.over_seeds(
            |r| {
                r.task == eval.0
                    && r.eval == eval.2
                    && r.method == method
                    && r.ratio == ratio
                    && r.fraction == fraction
            },
            |r| r.accuracy * 100.0,
        )
    }

    /// The frozen features' spectrum metric the paper reads for a role: SVE in domain, -ln LSVR
    /// out of domain; with its name.
    pub fn spectrum_metric(&self, eval: &Eval, ratio: f64) -> (&'static str, (f64, f64)) {
        let metric = match eval.1 {
            Role::Id => Metric::Sve,
            Role::Ood => Metric::LsvrNeglog,
        };
        (metric.name(), self.spectral(eval, ratio, metric))
    }

    /// A spectral metric of an evaluation's frozen features after pre-training at `ratio`:
    /// mean and spread over the seeds where it is defined (NaN where none).
    pub fn spectral(&self, eval: &Eval, ratio: f64, metric: Metric) -> (f64, f64) {
        let values: Vec<f64> = self
            .cells()
            .filter(|r| r.task == eval.0 && r.eval == eval.2 && r.ratio == ratio)
            .filter_map(|r| metric.of(&r.metrics))
            .collect();
        mean_std(&values)
    }

    /// Each seed's `value` after pre-training at `ratio` minus the same seed's after the
    /// cleanest pre-training, over the seeds that have both (see [`Difference`]).
    fn seed_difference(&self, ratio: f64, value: impl Fn(u64, f64) -> Option<f64>) -> Difference {
        let clean = self.clean_ratio();
        self.over_seed_pairs(|seed| Some(value(seed, ratio)? - value(seed, clean)?))
    }

    /// A [`Difference`] of each seed's `difference` (where it has one).
    fn over_seed_pairs(&self, difference: impl Fn(u64) -> Option<f64>) -> Difference {
        let per_seed: Vec<f64> =
            self.suite.seeds().iter().filter_map(|&seed| difference(seed)).collect();
        Difference::of(&per_seed)
    }

    /// How far `method`'s headline accuracy on one evaluation lies above `baseline`'s, in
    /// points, after pre-training at `ratio`; paired by seed (both tuned on the same features).
    pub fn method_difference(
        &self,
        eval: &Eval,
        method: &str,
        baseline: &str,
        ratio: f64,
    ) -> Difference {
        self.over_seed_pairs(|seed| {
            Some(
                self.seed_accuracy(eval, method, ratio, seed)?
                    - self.seed_accuracy(eval, baseline, ratio, seed)?,
            )
        })
    }

    /// The headline accuracy (%) of one seed's cell.
    fn seed_accuracy(&self, eval: &Eval, method: &str, ratio: f64, seed: u64) -> Option<f64> {
        self.rows
            .iter()
            .find(|r| {
                r.task == eval.0
                    && r.eval == eval.2
                    && r.method == method
                    && r.ratio == ratio
                    && r.seed == seed
                    && self.is_headline(r)
            })
            .map(|r| r.accuracy * 100.0)
    }

    /// The change of `method`'s headline accuracy on one evaluation from clean pre-training,
    /// in points, paired by seed.
    pub fn difference(&self, eval: &Eval, method: &str, ratio: f64) -> Difference {
        self.seed_difference(ratio, |seed, at| self.seed_accuracy(eval, method, at, seed))
    }

    /// The change of a spectral metric of one evaluation's frozen features from clean
    /// pre-training, paired by seed.
    pub fn spectral_difference(&self, eval: &Eval, ratio: f64, metric: Metric) -> Difference {
        self.seed_difference(ratio, |seed, at| {
            self.cells()
                .find(|r| r.task == eval.0 && r.eval == eval.2 && r.ratio == at && r.seed == seed)
                .and_then(|r| metric.of(&r.metrics))
        })
    }

    /// The paper's Figure 4: for `method`, the mean over every evaluation of `role` of the
    /// accuracy at `ratio` minus the accuracy at the cleanest ratio, in points, per seed; then
    /// over seeds (a seed counts where every evaluation of the role has both cells).
    pub fn gap(&self, method: &str, role: Role, ratio: f64) -> Difference {
        let evals: Vec<Eval> = self.evals().into_iter().filter(|e| e.1 == role).collect();
        self.seed_difference(ratio, |seed, at| {
            let values: Option<Vec<f64>> =
                evals.iter().map(|e| self.seed_accuracy(e, method, at, seed)).collect();
            values.filter(|v| !v.is_empty()).map(|v| v.iter().sum::<f64>() / v.len() as f64)
        })
    }

    /// The gap curves of `role`, one per method that has any, x in % noise.
    pub fn gap_series(&self, role: Role) -> Vec<Curve> {
        self.methods()
            .into_iter()
            .filter_map(|method| {
                let points: Vec<Point> = self
                    .suite
                    .ratios()
                    .iter()
                    .map(|&ratio| Point::interval(ratio * 100.0, &self.gap(&method, role, ratio)))
                    .collect();
                points.iter().any(|p| p.y.is_finite()).then_some(Curve { label: method, points })
            })
            .collect()
    }

    /// One panel per evaluation of `role`, each with a line per method (`per_method`) or the
    /// first head's line alone; a point is the mean over seeds with its standard deviation.
    fn panels_over_ratio(
        &self,
        role: Role,
        value: fn(&ResultRow) -> f64,
        per_method: bool,
    ) -> Vec<Panel> {
        let methods = self.methods();
        let chosen: &[String] = if per_method { &methods } else { &methods[..1] };
        self.evals()
            .iter()
            .filter(|e| e.1 == role)
            .map(|eval| {
                let series = chosen
                    .iter()
                    .map(|method| {
                        let points = self
                            .suite
                            .ratios()
                            .iter()
                            .map(|&ratio| {
                                let spread = self.over_seeds(
                                    |r| {
                                        r.task == eval.0
                                            && r.eval == eval.2
                                            && &r.method == method
                                            && r.ratio == ratio
                                            && self.is_headline(r)
                                    },
                                    value,
                                );
                                Point::spread(ratio * 100.0, spread)
                            })
                            .collect();
                        let label = if per_method { method.clone() } else { "frozen".into() };
                        Curve { label, points }
                    })
                    .collect();
                Panel { title: format!("{} / {} ({})", eval.0, eval.2, eval.1.name()), series }
            })
            .collect()
    }

    /// Every figure of the report. Accuracy and spectra: a panel per evaluation, bars of one
    /// standard deviation over seeds; the change from clean: a panel per role, bars of the
    /// 95% bootstrap interval.
    pub fn figures(&self) -> Vec<Figure> {
        let fraction_panels = self
            .evals()
            .iter()
            .filter(|e| e.1 == Role::Id)
            .map(|eval| {
                let mut series = Vec::new();
                for method in &self.head_methods() {
                    for &ratio in self.suite.ratios() {
                        let points = self
                            .suite
                            .tune()
                            .fractions
                            .iter()
                            .map(|&fraction| {
                                let spread = self.fraction_accuracy(eval, method, ratio, fraction);
                                Point::spread(fraction * 100.0, spread)
                            })
                            .collect();
                        series.push(Curve {
                            label: format!("{method} noise {:.0}%", ratio * 100.0),
                            points,
                        });
                    }
                }
                Panel { title: format!("{} / {}", eval.0, eval.2), series }
            })
            .collect();
        let over = |file, title, y_label, panels| Figure {
            file,
            title,
            x_label: "pre-training noise (%)",
            y_label,
            log_x: false,
            scatter: false,
            panels,
        };
        let gap_panels = [(Role::Id, "in domain"), (Role::Ood, "out of domain")]
            .into_iter()
            .map(|(role, name)| Panel {
                title: format!("{name}, mean over evaluations"),
                series: self.gap_series(role),
            })
            .filter(|p| !p.series.is_empty())
            .collect();
        vec![
            over(
                "gap_vs_noise",
                "Accuracy change from clean pre-training (95% interval over seeds)",
                "accuracy change (points)",
                gap_panels,
            ),
            over(
                "id_accuracy_vs_noise",
                "In-domain accuracy vs pre-training noise",
                "accuracy (%)",
                self.panels_over_ratio(Role::Id, |r| r.accuracy * 100.0, true),
            ),
            over(
                "ood_accuracy_vs_noise",
                "Out-of-domain accuracy vs pre-training noise",
                "accuracy (%)",
                self.panels_over_ratio(Role::Ood, |r| r.accuracy * 100.0, true),
            ),
            over(
                "sve_vs_noise",
                "SVE of in-domain features vs pre-training noise",
                "SVE",
                self.panels_over_ratio(Role::Id, |r| r.metrics.sve, false),
            ),
            over(
                "lsvr_vs_noise",
                "LSVR of out-of-domain features vs pre-training noise",
                "-ln(s1 / Σ s)",
                self.panels_over_ratio(Role::Ood, |r| r.metrics.lsvr_neglog, false),
            ),
            Figure {
                file: "accuracy_vs_fraction",
                title: "In-domain accuracy vs downstream data",
                x_label: "downstream training data (%)",
                y_label: "accuracy (%)",
                log_x: true,
                scatter: false,
                panels: fraction_panels,
            },
        ]
        .into_iter()
        .chain(Metric::ALL.into_iter().map(|metric| self.metric_scatter(metric)))
        .collect()
    }

    /// Accuracy against one spectral metric, a point per cell (see
    /// [`Results::metric_accuracy_pairs`]), a panel per role and a series per evaluation.
    pub fn metric_scatter(&self, metric: Metric) -> Figure {
        let evals = self.evals();
        let panels = [(Role::Id, "in domain"), (Role::Ood, "out of domain")]
            .into_iter()
            .map(|(role, name)| Panel {
                title: name.to_string(),
                series: evals
                    .iter()
                    .filter(|e| e.1 == role)
                    .map(|eval| Curve {
                        label: format!("{} / {}", eval.0, eval.2),
                        points: self
                            .metric_accuracy_pairs(metric, role, Some(eval))
                            .into_iter()
                            .map(|(x, y)| Point { x, y, low: y, high: y })
                            .collect(),
                    })
                    .collect(),
            })
            .filter(|p| !p.series.is_empty())
            .collect();
        Figure {
            file: metric.scatter_file(),
            title: metric.scatter_title(),
            x_label: metric.name(),
            y_label: "accuracy (%)",
            log_x: metric == Metric::ConditionNumber,
            scatter: true,
            panels,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::study::prediction::tests::falling_accuracy_study;

    /// Differences pair each seed with its own clean run: an offset a seed carries at every
    /// ratio (its downstream luck) cancels, so it adds no spread.
    #[test]
    fn differences_are_paired_by_seed() {
        let mut results = falling_accuracy_study();
        for r in results.rows.iter_mut().filter(|r| r.seed == 1) {
            r.accuracy += 0.05;
        }
        let eval = ("a".to_string(), Role::Id, "test".to_string());
        let d = results.difference(&eval, "lp", 0.2);
        assert!((d.mean + 10.0).abs() < 1e-9 && d.sd < 1e-9, "{d:?}");
        assert_eq!(d.seeds, 2);
        assert!(!d.holds(), "two seeds are too few for a finding");
        let (_, spread) = results.accuracy(&eval, "lp", 0.2);
        assert!((spread - 5.0 / 2f64.sqrt()).abs() < 1e-9, "unpaired: {spread}");
        let gap = results.gap("lp", Role::Id, 0.2);
        assert!((gap.mean + 10.0).abs() < 1e-9, "{gap:?}");
        assert!(results.gap("lp", Role::Id, 0.0).mean.abs() < 1e-12);
        // A seed missing its clean cell drops out of the difference.
        results.rows.retain(|r| !(r.seed == 0 && r.ratio == 0.0));
        assert_eq!(results.difference(&eval, "lp", 0.2).seeds, 1);
        let mlp = results.method_difference(&eval, "mlp", "lp", 0.3);
        assert_eq!(mlp.seeds, 2, "{mlp:?}");
        // The fixture's mlp scores `ratio`, its lp `base - ratio / 2`, seed 1 both 5 up.
        assert!((mlp.mean - (30.0 - 75.0)).abs() < 1e-9 && mlp.sd < 1e-9, "{mlp:?}");
        let sve = results.spectral_difference(&eval, 0.3, Metric::Sve);
        assert!(sve.mean > 0.0 && sve.seeds == 1, "flatter spectra with noise: {sve:?}");
    }

    /// Accuracy figures: a panel per evaluation, a line per method; the gap: a panel per role.
    #[test]
    fn figures_are_small_multiples() {
        let results = falling_accuracy_study();
        let figures = results.figures();
        let named = |file: &str| figures.iter().find(|f| f.file == file).unwrap();
        let id = named("id_accuracy_vs_noise");
        assert_eq!(id.panels.len(), 2);
        assert!(id.panels.iter().all(|p| p.series.len() == 2), "lp and mlp");
        let gap = named("gap_vs_noise");
        assert_eq!(gap.panels.len(), 2);
        let lp = &gap.panels[0].series[0];
        assert_eq!(lp.label, "lp");
        assert!((lp.points[2].y + 10.0).abs() < 1e-9);
    }
}
