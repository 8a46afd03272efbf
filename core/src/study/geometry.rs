//! Each noisy encoder against the clean one of the same seed, on the same evaluation inputs,
//! by `nml compare`'s measures ([`crate::spectrum::compare`]): noise can turn the dominant
//! subspace without changing either spectrum much.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::difference::Difference;
use super::results::{Eval, Results};
use super::run::{features_file, run_tag};
use crate::data::FeatureSet;
use crate::error::Result;
use crate::spectrum::Preprocess;
use crate::spectrum::compare::{FeatureMatrix, compare};
use crate::tune::Role;

/// The size of the principal subspaces compared (fewer where a set has fewer dimensions).
pub const GEOMETRY_K: usize = 10;

/// One evaluation set's features from a noisy encoder against the clean encoder's of the same
/// seed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GeometryRow {
    pub objective: String,
    pub ratio: f64,
    pub seed: u64,
    pub task: String,
    pub kind: Role,
    pub eval: String,
    pub k: usize,
    /// Mean principal angle between the top-k subspaces, degrees.
    pub mean_angle: f64,
    pub largest_angle: f64,
    pub linear_cka: f64,
    /// |u_1 · u_1'|: how well the most dominant directions agree.
    pub top_alignment: f64,
}

/// A measure of a [`GeometryRow`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GeometryMeasure {
    MeanAngle,
    LargestAngle,
    LinearCka,
    TopAlignment,
}

impl GeometryMeasure {
    pub const ALL: [Self; 4] =
        [Self::MeanAngle, Self::LargestAngle, Self::LinearCka, Self::TopAlignment];

    pub fn name(self) -> &'static str {
        match self {
            Self::MeanAngle => "mean angle (°)",
            Self::LargestAngle => "largest angle (°)",
            Self::LinearCka => "linear CKA",
            Self::TopAlignment => "top alignment",
        }
    }

    pub fn of(self, row: &GeometryRow) -> f64 {
        match self {
            Self::MeanAngle => row.mean_angle,
            Self::LargestAngle => row.largest_angle,
            Self::LinearCka => row.linear_cka,
            Self::TopAlignment => row.top_alignment,
        }
    }
}

/// Every noisy encoder of a study against its clean one, and the pairs not measured, each
/// with why (a features file not there yet, features of too low a rank).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Geometry {
    pub rows: Vec<GeometryRow>,
    pub skipped: Vec<String>,
}

impl Geometry {
    /// Reads the evaluation features a study saved under `out` (`features/TAG/TASK-EVAL`) for
    /// every cell of `results` and compares each noisy pre-training's with the cleanest one's
    /// of the same objective and seed, in paper mode.
    pub fn measure(out: &Path, results: &Results) -> Result<Self> {
        let clean = results.clean_ratio();
        let objectives = results.suite.objectives();
        let mut geometry = Self::default();
        for row in results.cells().filter(|r| r.ratio != clean) {
            let Some(&objective) = objectives.iter().find(|o| o.to_string() == row.objective)
            else {
                continue;
            };
            // A study of several objectives labels each task with its objective (`run.rs`);
            // the files go by the task's own name.
            let task = row.task.strip_suffix(&format!(" [{objective}]")).unwrap_or(&row.task);
            let path = |ratio: f64| {
                features_file(out, &run_tag(objective, ratio, row.seed), task, &row.eval)
            };
            let (noisy_path, clean_path) = (path(row.ratio), path(clean));
            if let Some(absent) = [&noisy_path, &clean_path].into_iter().find(|p| !p.is_file()) {
                let shown = absent.strip_prefix(out).unwrap_or(absent);
                geometry.skipped.push(format!("{} (not there yet)", shown.display()));
                continue;
            }
            let (noisy, clean) = (FeatureSet::read(&noisy_path)?, FeatureSet::read(&clean_path)?);
            let noisy_name = noisy_path.display().to_string();
            let clean_name = clean_path.display().to_string();
            // Paper mode centres rows and columns, so a set has rank below both its sizes.
            let smallest = noisy.d().min(clean.d()).min(noisy.n());
            let k = GEOMETRY_K.min(smallest.saturating_sub(1)).max(1);
            let compared = compare(
                FeatureMatrix { name: &clean_name, values: clean.features(), d: clean.d() },
                FeatureMatrix { name: &noisy_name, values: noisy.features(), d: noisy.d() },
                Preprocess::Paper,
                k,
            );
            let c = match compared {
                Ok(c) => c,
                // A collapsed encoder has no k-dimensional subspace to compare: named, and the
                // rest of the report goes on.
                Err(e) => {
                    geometry.skipped.push(e.to_string());
                    continue;
                }
            };
            geometry.rows.push(GeometryRow {
                objective: row.objective.clone(),
                ratio: row.ratio,
                seed: row.seed,
                task: row.task.clone(),
                kind: row.kind,
                eval: row.eval.clone(),
                k,
                mean_angle: c.mean_angle,
                largest_angle: c.largest_angle,
                linear_cka: c.linear_cka,
                top_alignment: c.top_alignment,
            });
        }
        Ok(geometry)
    }

    /// `measure` over the seeds of one evaluation after pre-training at `ratio`: mean, sd and
    /// the 95% bootstrap interval of the mean (its `holds` is not meaningful here: angles are
    /// never negative).
    pub fn over_seeds(&self, eval: &Eval, ratio: f64, measure: GeometryMeasure) -> Difference {
        let values: Vec<f64> = self
            .rows
            .iter()
            .filter(|r| r.task == eval.0 && r.eval == eval.2 && r.ratio == ratio)
            .map(|r| measure.of(r))
            .collect();
        Difference::of(&values)
    }

    /// One line per row, with a header.
    pub fn to_csv(&self) -> String {
        let mut csv = String::from(
            "objective,ratio,seed,task,kind,eval,k,mean_angle,largest_angle,linear_cka,top_alignment\n",
        );
        for r in &self.rows {
            csv.push_str(&format!(
                "{},{},{},{},{},{},{},{:.6},{:.6},{:.6},{:.6}\n",
                r.objective,
                r.ratio,
                r.seed,
                r.task,
                r.kind.name(),
                r.eval,
                r.k,
                r.mean_angle,
                r.largest_angle,
                r.linear_cka,
                r.top_alignment
            ));
        }
        csv
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::study::ObjectiveKind;
    use crate::study::prediction::tests::falling_accuracy_study;

    fn features(seed: u64, n: usize, d: usize) -> Vec<f32> {
        use rand::{RngExt, SeedableRng};
        let mut rng = rand::rngs::ChaCha8Rng::seed_from_u64(seed);
        (0..n * d).map(|_| rng.random::<f32>() - 0.5).collect()
    }

    /// A noisy encoder that gives the clean one's features is at angle 0 and CKA 1 from it;
    /// one that gives other features is not; a pair without its file is named missing.
    #[test]
    fn each_noisy_encoder_is_measured_against_the_clean_one_of_its_seed() {
        let results = falling_accuracy_study();
        let out = tempfile::tempdir().unwrap();
        let (n, d) = (60, 8);
        for row in results.cells() {
            if row.ratio == 0.3 && row.seed == 1 && row.task == "b" {
                continue;
            }
            let values = match row.ratio {
                0.1 => features(row.seed, n, d),
                r => features(row.seed + (r * 100.0) as u64, n, d),
            };
            let set = FeatureSet::new("f", values, d, vec![0; n], Some(2)).unwrap();
            let tag = run_tag(ObjectiveKind::Supervised, row.ratio, row.seed);
            set.write(&features_file(out.path(), &tag, &row.task, &row.eval)).unwrap();
        }
        let geometry = Geometry::measure(out.path(), &results).unwrap();
        // 3 evaluations x 3 noisy ratios x 2 seeds, but one pair lacks its noisy file.
        assert_eq!(geometry.rows.len(), 17);
        assert_eq!(geometry.skipped, ["features/noise30-seed1/b-test.safetensors (not there yet)"]);
        // At 10% the "noisy" features are those of the seed's clean run (seed + 0).
        for r in geometry.rows.iter().filter(|r| r.ratio == 0.1) {
            assert!(r.mean_angle < 1e-3 && (r.linear_cka - 1.0).abs() < 1e-9, "{r:?}");
            assert!((r.top_alignment - 1.0).abs() < 1e-9);
        }
        for r in geometry.rows.iter().filter(|r| r.ratio == 0.2) {
            assert!(r.mean_angle > 10.0 && r.linear_cka < 0.9, "{r:?}");
            assert_eq!(r.k, d - 1, "paper mode leaves rank d - 1");
        }
        let eval = ("a".to_string(), Role::Ood, "shifted".to_string());
        let cka = geometry.over_seeds(&eval, 0.1, GeometryMeasure::LinearCka);
        assert_eq!(cka.seeds, 2);
        assert!((cka.mean - 1.0).abs() < 1e-9);
        let csv = geometry.to_csv();
        assert_eq!(csv.lines().count(), 18);
        assert!(csv.lines().nth(1).unwrap().starts_with("supervised,0.1,0,a,id,test,7,"), "{csv}");
    }
}
