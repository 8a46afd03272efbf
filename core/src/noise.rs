//! Controlled, seeded label noise. Every generator returns the noisy labels together with the
//! mask of indices whose label changed, so experiments can tell clean from corrupted samples.
//!
//! Exact counts (n samples, ratio r, `m = round(r * n)`):
//! - [`LabelNoise::Symmetric`]: exactly `m` labels change, each to a class drawn uniformly from
//!   the other `C - 1` classes.
//! - [`LabelNoise::SymmetricAll`] (the authors' variant): exactly `m` samples are drawn and each
//!   receives a label uniform over all `C` classes, so about `m / C` of them keep their label;
//!   the changed count is `m` minus those.
//! - [`LabelNoise::PairFlip`]: exactly `m` samples get `mapping[label]` (default `label + 1 mod C`);
//!   all of them change unless the mapping sends a class to itself.
//! - [`LabelNoise::Transition`]: per class c with `n_c` samples, exactly
//!   `round_largest_remainder(n_c * T[c][j])` samples go to each class j.
//! - [`swap_captions`]: exactly `m` pairs (raised to 2 when `m` is 1 and `n >= 2`, since one
//!   pair cannot swap with itself) receive another selected pair's caption.
//!
//! # Examples
//!
//! ```
//! use nml_core::noise::LabelNoise;
//!
//! let labels: Vec<u32> = (0..100).map(|i| i % 10).collect();
//! let noisy = LabelNoise::Symmetric { ratio: 0.2 }.apply(&labels, 10, 7)?;
//! assert_eq!(noisy.changed_count(), 20);
//! assert!((noisy.rate() - 0.2).abs() < 1e-12);
//! // The same seed gives the same noise.
//! assert_eq!(LabelNoise::Symmetric { ratio: 0.2 }.apply(&labels, 10, 7)?, noisy);
//! # Ok::<(), nml_core::NmlError>(())
//! ```

use rand::rngs::ChaCha8Rng;
use rand::seq::SliceRandom;
use rand::{RngExt, SeedableRng};
use serde::{Deserialize, Serialize};

use crate::error::{NmlError, Result};

/// Which corruption to apply.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum LabelNoise {
    Symmetric {
        ratio: f64,
    },
    SymmetricAll {
        ratio: f64,
    },
    PairFlip {
        ratio: f64,
        mapping: Option<Vec<u32>>,
    },
    /// A row-stochastic matrix: `matrix[c][j]` is the probability that class c becomes j.
    Transition {
        matrix: Vec<Vec<f64>>,
    },
}

/// The corruptions that take a single ratio: what a study sweeps over.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum NoiseKind {
    /// Each corrupted label moves to one of the other classes, uniformly.
    #[default]
    Symmetric,
    /// The authors' variant: each drawn label is redrawn over all classes (its own included).
    SymmetricAll,
    /// Each corrupted label moves to the next class.
    PairFlip,
}

impl NoiseKind {
    /// The corruption of this kind at `ratio`; `None` (clean) at 0.
    pub fn at(self, ratio: f64) -> Option<LabelNoise> {
        if ratio == 0.0 {
            return None;
        }
        Some(match self {
            Self::Symmetric => LabelNoise::Symmetric { ratio },
            Self::SymmetricAll => LabelNoise::SymmetricAll { ratio },
            Self::PairFlip => LabelNoise::PairFlip { ratio, mapping: None },
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Symmetric => "symmetric",
            Self::SymmetricAll => "symmetric-all",
            Self::PairFlip => "pair-flip",
        }
    }
}

impl std::fmt::Display for NoiseKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Labels after corruption and the mask of those that changed.
#[derive(Clone, Debug, PartialEq)]
pub struct NoisyLabels {
    pub labels: Vec<u32>,
    pub changed: Vec<bool>,
}

impl NoisyLabels {
    pub fn changed_count(&self) -> usize {
        self.changed.iter().filter(|&&c| c).count()
    }

    /// The realised noise rate: changed labels over all labels.
    pub fn rate(&self) -> f64 {
        self.changed_count() as f64 / self.labels.len().max(1) as f64
    }
}

fn check_ratio(ratio: f64) -> Result<()> {
    if (0.0..=1.0).contains(&ratio) {
        Ok(())
    } else {
        Err(NmlError::Invalid(format!("noise ratio must be in [0, 1], got {ratio}")))
    }
}

fn chosen(n: usize, ratio: f64, rng: &mut ChaCha8Rng) -> Vec<usize> {
    let m = ((ratio * n as f64).round() as usize).min(n);
    let mut indices: Vec<usize> = (0..n).collect();
    indices.shuffle(rng);
    indices.truncate(m);
    indices.sort_unstable();
    indices
}

impl LabelNoise {
    /// Corrupts `labels` (each below `num_classes`) reproducibly from `seed`.
    pub fn apply(&self, labels: &[u32], num_classes: usize, seed: u64) -> Result<NoisyLabels> {
        if num_classes < 2 {
            return Err(NmlError::Invalid("label noise needs at least two classes".into()));
        }
        if let Some(i) = labels.iter().position(|&l| l as usize >= num_classes) {
            return Err(NmlError::Invalid(format!(
                "label {} at index {i} is out of range for {num_classes} classes",
                labels[i]
            )));
        }
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut noisy = labels.to_vec();
        let c = num_classes as u32;
        match self {
            LabelNoise::Symmetric { ratio } => {
                check_ratio(*ratio)?;
                for i in chosen(labels.len(), *ratio, &mut rng) {
                    // Uniform over the other classes: draw from C-1 and skip the true one.
                    let draw = rng.random_range(0..c - 1);
                    noisy[i] = if draw >= labels[i] { draw + 1 } else { draw };
                }
            }
            LabelNoise::SymmetricAll { ratio } => {
                check_ratio(*ratio)?;
                for i in chosen(labels.len(), *ratio, &mut rng) {
                    noisy[i] = rng.random_range(0..c);
                }
            }
            LabelNoise::PairFlip { ratio, mapping } => {
                check_ratio(*ratio)?;
                if let Some(map) = mapping
                    && (map.len() != num_classes || map.iter().any(|&t| t >= c))
                {
                    return Err(NmlError::Invalid(format!(
                        "pair-flip mapping must list one target below {num_classes} per class, got {map:?}"
                    )));
                }
                for i in chosen(labels.len(), *ratio, &mut rng) {
                    noisy[i] = match mapping {
                        Some(map) => map[labels[i] as usize],
                        None => (labels[i] + 1) % c,
                    };
                }
            }
            LabelNoise::Transition { matrix } => {
                check_transition(matrix, num_classes)?;
                let mut by_class = vec![Vec::new(); num_classes];
                for (i, &l) in labels.iter().enumerate() {
                    by_class[l as usize].push(i);
                }
                for (class, members) in by_class.iter_mut().enumerate() {
                    members.shuffle(&mut rng);
                    let counts = largest_remainder(members.len(), &matrix[class]);
                    let mut start = 0;
                    for (target, count) in counts.into_iter().enumerate() {
                        for &i in &members[start..start + count] {
                            noisy[i] = target as u32;
                        }
                        start += count;
                    }
                }
            }
        }
        let changed = labels.iter().zip(&noisy).map(|(a, b)| a != b).collect();
        Ok(NoisyLabels { labels: noisy, changed })
    }
}

fn check_transition(matrix: &[Vec<f64>], num_classes: usize) -> Result<()> {
    if matrix.len() != num_classes {
        return Err(NmlError::Invalid(format!(
            "transition matrix has {} rows for {num_classes} classes",
            matrix.len()
        )));
    }
    for (r, row) in matrix.iter().enumerate() {
        if row.len() != num_classes {
            return Err(NmlError::Invalid(format!(
                "transition matrix row {r} has {} entries for {num_classes} classes",
                row.len()
            )));
        }
        if row.iter().any(|&p| !(p >= 0.0 && p.is_finite())) {
            return Err(NmlError::Invalid(format!(
                "transition matrix row {r} has a negative or non-finite entry"
            )));
        }
        let sum: f64 = row.iter().sum();
        if (sum - 1.0).abs() > 1e-6 {
            return Err(NmlError::Invalid(format!(
                "transition matrix row {r} sums to {sum}, not 1"
            )));
        }
    }
    Ok(())
}

/// Splits `n` into integer counts proportional to `weights` (which sum to 1), rounding by
/// largest remainder so the counts sum to exactly `n`.
fn largest_remainder(n: usize, weights: &[f64]) -> Vec<usize> {
    let total: f64 = weights.iter().sum();
    let exact: Vec<f64> = weights.iter().map(|w| w / total * n as f64).collect();
    let mut counts: Vec<usize> = exact.iter().map(|e| e.floor() as usize).collect();
    let mut order: Vec<usize> = (0..weights.len()).collect();
    order.sort_by(|&a, &b| {
        let (ra, rb) = (exact[a] - exact[a].floor(), exact[b] - exact[b].floor());
        rb.total_cmp(&ra).then(a.cmp(&b))
    });
    let short = n.saturating_sub(counts.iter().sum::<usize>());
    for &i in order.iter().take(short) {
        counts[i] += 1;
    }
    counts
}

/// Caption noise for image-text pairs: returns, for each pair, the index of the caption it now
/// carries, and the mask of pairs whose caption is another pair's.
pub fn swap_captions(n: usize, ratio: f64, seed: u64) -> Result<(Vec<usize>, Vec<bool>)> {
    check_ratio(ratio)?;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut picked = chosen(n, ratio, &mut rng);
    if picked.len() == 1 && n >= 2 {
        let other = (0..n).find(|i| *i != picked[0]).expect("n >= 2");
        picked.push(other);
    }
    picked.shuffle(&mut rng);
    let mut caption: Vec<usize> = (0..n).collect();
    // A cyclic shift over a shuffled selection is a derangement: every picked pair gets a caption
    // from a different picked pair.
    for (k, &i) in picked.iter().enumerate() {
        caption[i] = picked[(k + 1) % picked.len()];
    }
    let changed = caption.iter().enumerate().map(|(i, &c)| i != c).collect();
    Ok((caption, changed))
}

/// `confusion[clean][noisy]` counts.
pub fn confusion(clean: &[u32], noisy: &[u32], num_classes: usize) -> Vec<Vec<usize>> {
    let mut m = vec![vec![0; num_classes]; num_classes];
    for (&a, &b) in clean.iter().zip(noisy) {
        m[a as usize][b as usize] += 1;
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn balanced(n: usize, c: u32) -> Vec<u32> {
        (0..n as u32).map(|i| i % c).collect()
    }

    #[test]
    fn symmetric_changes_exactly_the_ratio() {
        let labels = balanced(1000, 10);
        let noisy = LabelNoise::Symmetric { ratio: 0.2 }.apply(&labels, 10, 0).unwrap();
        assert_eq!(noisy.changed_count(), 200);
        assert_eq!(noisy.rate(), 0.2);
        // Off-diagonal spread: every wrong class receives some of the flips.
        let m = confusion(&labels, &noisy.labels, 10);
        let off: Vec<usize> = (0..10)
            .flat_map(|a| (0..10).filter(move |&b| b != a).map(move |b| (a, b)))
            .map(|(a, b)| m[a][b])
            .collect();
        assert_eq!(off.iter().sum::<usize>(), 200);
        assert!(off.iter().filter(|&&x| x > 0).count() > 60);
    }

    #[test]
    fn same_seed_same_noise_other_seed_other_noise() {
        let labels = balanced(500, 5);
        let a = LabelNoise::Symmetric { ratio: 0.3 }.apply(&labels, 5, 42).unwrap();
        let b = LabelNoise::Symmetric { ratio: 0.3 }.apply(&labels, 5, 42).unwrap();
        let c = LabelNoise::Symmetric { ratio: 0.3 }.apply(&labels, 5, 43).unwrap();
        assert_eq!(a, b);
        assert_ne!(a.labels, c.labels);
    }

    #[test]
    fn authors_variant_keeps_about_one_in_c() {
        let labels = balanced(10000, 10);
        let noisy = LabelNoise::SymmetricAll { ratio: 0.5 }.apply(&labels, 10, 3).unwrap();
        // 5000 drawn, about 500 of them land on their own class: binomial sd ~ 21.
        let kept = 5000 - noisy.changed_count();
        assert!((400..600).contains(&kept), "kept {kept}");
    }

    #[test]
    fn pair_flip_goes_to_the_next_class_or_the_mapping() {
        let labels = balanced(100, 4);
        let noisy =
            LabelNoise::PairFlip { ratio: 0.4, mapping: None }.apply(&labels, 4, 1).unwrap();
        assert_eq!(noisy.changed_count(), 40);
        for ((&changed, &noisy), &clean) in noisy.changed.iter().zip(&noisy.labels).zip(&labels) {
            if changed {
                assert_eq!(noisy, (clean + 1) % 4);
            }
        }
        let mapping = Some(vec![1, 0, 3, 3]);
        let noisy = LabelNoise::PairFlip { ratio: 1.0, mapping }.apply(&labels, 4, 1).unwrap();
        assert_eq!(noisy.changed_count(), 75, "class 3 maps to itself");
        assert!(
            LabelNoise::PairFlip { ratio: 0.1, mapping: Some(vec![9, 0, 1, 2]) }
                .apply(&labels, 4, 1)
                .is_err()
        );
    }

    #[test]
    fn transition_matrix_counts_are_exact() {
        let labels = balanced(300, 3); // 100 a class
        let matrix = vec![vec![0.8, 0.15, 0.05], vec![0.0, 1.0, 0.0], vec![0.333, 0.333, 0.334]];
        let noisy = LabelNoise::Transition { matrix }.apply(&labels, 3, 9).unwrap();
        let m = confusion(&labels, &noisy.labels, 3);
        assert_eq!(m, vec![vec![80, 15, 5], vec![0, 100, 0], vec![33, 33, 34]]);
        assert_eq!(noisy.changed_count(), 20 + 66);
        let bad = LabelNoise::Transition { matrix: vec![vec![0.5, 0.4], vec![0.0, 1.0]] };
        assert!(bad.apply(&[0, 1], 2, 0).unwrap_err().to_string().contains("row 0 sums to 0.9"));
    }

    #[test]
    fn bad_arguments_are_errors() {
        assert!(LabelNoise::Symmetric { ratio: 1.5 }.apply(&[0, 1], 2, 0).is_err());
        assert!(
            LabelNoise::Symmetric { ratio: 0.1 }
                .apply(&[0, 7], 2, 0)
                .unwrap_err()
                .to_string()
                .contains("index 1")
        );
        assert!(LabelNoise::Symmetric { ratio: 0.1 }.apply(&[0, 0], 1, 0).is_err());
    }

    #[test]
    fn caption_swap_moves_exactly_the_ratio() {
        let (caption, changed) = swap_captions(1000, 0.3, 5).unwrap();
        assert_eq!(changed.iter().filter(|&&c| c).count(), 300);
        let mut sorted = caption.clone();
        sorted.sort_unstable();
        assert_eq!(
            sorted,
            (0..1000).collect::<Vec<_>>(),
            "a permutation: no caption lost or doubled"
        );
        let (_, changed) = swap_captions(10, 0.1, 0).unwrap();
        assert_eq!(changed.iter().filter(|&&c| c).count(), 2);
    }

    proptest! {
        #[test]
        fn symmetric_count_is_round_of_ratio(n in 1usize..400, classes in 2u32..12, ratio in 0.0f64..=1.0, seed in 0u64..1000) {
            let labels: Vec<u32> = (0..n as u32).map(|i| (i * 7) % classes).collect();
            let noisy = LabelNoise::Symmetric { ratio }.apply(&labels, classes as usize, seed).unwrap();
            prop_assert_eq!(noisy.changed_count(), (ratio * n as f64).round() as usize);
            prop_assert!(noisy.labels.iter().all(|&l| l < classes));
        }

        #[test]
        fn largest_remainder_sums_to_n(n in 0usize..10000, raw in proptest::collection::vec(0.0f64..1.0, 1..12)) {
            let total: f64 = raw.iter().sum();
            prop_assume!(total > 0.0);
            let weights: Vec<f64> = raw.iter().map(|w| w / total).collect();
            let counts = largest_remainder(n, &weights);
            prop_assert_eq!(counts.iter().sum::<usize>(), n);
            for (c, w) in counts.iter().zip(&weights) {
                prop_assert!((*c as f64 - w * n as f64).abs() < 1.0 + 1e-9);
            }
        }
    }
}
