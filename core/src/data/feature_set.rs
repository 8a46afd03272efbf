use burn::tensor::{Device, Int, Tensor, TensorData};
use rand::SeedableRng;
use rand::rngs::ChaCha8Rng;
use rand::seq::SliceRandom;

use crate::error::{NmlError, Result};

/// N feature vectors of dimension D (row-major) with one class label each: the one type that
/// spectra and tuning take, whatever file or model it came from. Built only through
/// [`FeatureSet::new`] (or a reader that calls it), so every set in nml is non-empty, finite and
/// labelled within its classes.
///
/// # Examples
///
/// ```
/// use nml_core::FeatureSet;
///
/// let set = FeatureSet::new("toy", vec![0.5, 1.0, -0.25, 2.0, 0.0, 1.5], 2, vec![0, 1, 1], None)?;
/// assert_eq!((set.n(), set.d(), set.num_classes()), (3, 2, 2));
/// assert_eq!(set.row(1), &[-0.25, 2.0]);
/// // A NaN is refused, naming the set, row and column.
/// let err = FeatureSet::new("bad.npy", vec![1.0, f32::NAN], 2, vec![0], None).unwrap_err();
/// assert!(err.to_string().contains("bad.npy") && err.to_string().contains("row 0, column 1"));
/// # Ok::<(), nml_core::NmlError>(())
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct FeatureSet {
    name: String,
    n: usize,
    d: usize,
    features: Vec<f32>,
    labels: Vec<u32>,
    num_classes: usize,
    class_names: Vec<String>,
    domain: Option<String>,
}

impl FeatureSet {
    /// Checks every invariant: non-empty, shapes agree, finite values, labels in range.
    /// `num_classes` defaults to the largest label plus one.
    pub fn new(
        name: impl Into<String>,
        features: Vec<f32>,
        d: usize,
        labels: Vec<i64>,
        num_classes: Option<usize>,
    ) -> Result<Self> {
        let name = name.into();
        if labels.is_empty() || features.is_empty() || d == 0 {
            return Err(NmlError::format(&name, "empty feature set (no samples or no dimensions)"));
        }
        if !features.len().is_multiple_of(d) {
            return Err(NmlError::format(
                &name,
                format!("{} values do not form rows of dimension {d}", features.len()),
            ));
        }
        let n = features.len() / d;
        if labels.len() != n {
            return Err(NmlError::format(
                &name,
                format!("{n} feature rows but {} labels", labels.len()),
            ));
        }
        if let Some(i) = features.iter().position(|v| !v.is_finite()) {
            return Err(NmlError::format(
                &name,
                format!(
                    "non-finite feature value {} at row {}, column {}",
                    features[i],
                    i / d,
                    i % d
                ),
            ));
        }
        if let Some(i) = labels.iter().position(|&l| l < 0) {
            return Err(NmlError::format(
                &name,
                format!("negative label {} at index {i}", labels[i]),
            ));
        }
        let max_label = *labels.iter().max().expect("non-empty") as usize;
        let num_classes = num_classes.unwrap_or(max_label + 1);
        if max_label >= num_classes {
            let i = labels.iter().position(|&l| l as usize >= num_classes).expect("exists");
            return Err(NmlError::format(
                &name,
                format!(
                    "label {} at index {i} is out of range for {num_classes} classes",
                    labels[i]
                ),
            ));
        }
        if num_classes > 1 << 20 {
            return Err(NmlError::format(&name, format!("{num_classes} classes is not plausible")));
        }
        Ok(Self {
            name,
            n,
            d,
            features,
            labels: labels.into_iter().map(|l| l as u32).collect(),
            num_classes,
            class_names: Vec::new(),
            domain: None,
        })
    }

    pub fn with_class_names(mut self, names: Vec<String>) -> Result<Self> {
        if !names.is_empty() && names.len() < self.num_classes {
            return Err(NmlError::format(
                &self.name,
                format!("{} class names for {} classes", names.len(), self.num_classes),
            ));
        }
        if names.len() > self.num_classes {
            self.num_classes = names.len();
        }
        self.class_names = names;
        Ok(self)
    }

    pub fn with_domain(mut self, domain: Option<String>) -> Self {
        self.domain = domain;
        self
    }

    pub fn with_name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// Other features for the same samples (e.g. a head's transform of these), `d` wide, with
    /// the labels, classes and domain kept; checked as [`FeatureSet::new`] checks.
    pub fn with_features(
        &self,
        name: impl Into<String>,
        features: Vec<f32>,
        d: usize,
    ) -> Result<FeatureSet> {
        let labels = self.labels.iter().map(|&l| i64::from(l)).collect();
        let set = FeatureSet::new(name, features, d, labels, Some(self.num_classes))?;
        if set.n != self.n {
            return Err(NmlError::format(
                &set.name,
                format!("{} rows for the {} samples of {}", set.n, self.n, self.name),
            ));
        }
        Ok(FeatureSet { class_names: self.class_names.clone(), domain: self.domain.clone(), ..set })
    }

    /// Where the set came from (a path or a name), used in every message about it.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The number of samples (rows).
    pub fn n(&self) -> usize {
        self.n
    }

    /// The feature dimension (columns).
    pub fn d(&self) -> usize {
        self.d
    }

    /// All features, row-major (`n x d`).
    pub fn features(&self) -> &[f32] {
        &self.features
    }

    /// One class index per row.
    pub fn labels(&self) -> &[u32] {
        &self.labels
    }

    pub fn num_classes(&self) -> usize {
        self.num_classes
    }

    /// One name per class when the file carried them; empty otherwise.
    pub fn class_names(&self) -> &[String] {
        &self.class_names
    }

    /// The data domain (e.g. "mnist", "opencv-digits") when known.
    pub fn domain(&self) -> Option<&str> {
        self.domain.as_deref()
    }

    pub fn row(&self, i: usize) -> &[f32] {
        &self.features[i * self.d..(i + 1) * self.d]
    }

    /// The rows at `indices`, in that order.
    pub fn subset(&self, indices: &[usize], name: impl Into<String>) -> FeatureSet {
        let mut features = Vec::with_capacity(indices.len() * self.d);
        for &i in indices {
            features.extend_from_slice(self.row(i));
        }
        FeatureSet {
            name: name.into(),
            n: indices.len(),
            d: self.d,
            features,
            labels: indices.iter().map(|&i| self.labels[i]).collect(),
            num_classes: self.num_classes,
            class_names: self.class_names.clone(),
            domain: self.domain.clone(),
        }
    }

    /// Indices of each class, shuffled with `seed`.
    fn shuffled_by_class(&self, seed: u64) -> Vec<Vec<usize>> {
        let mut by_class = vec![Vec::new(); self.num_classes];
        for (i, &l) in self.labels.iter().enumerate() {
            by_class[l as usize].push(i);
        }
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        for members in &mut by_class {
            members.shuffle(&mut rng);
        }
        by_class
    }

    /// A per-class fraction of the set (the paper's "percentage of data"): from each class,
    /// `round(fraction * count)` samples, at least one when the class has any.
    pub fn class_fraction(&self, fraction: f64, seed: u64) -> Result<FeatureSet> {
        if !(fraction > 0.0 && fraction <= 1.0) {
            return Err(NmlError::Invalid(format!(
                "data fraction must be in (0, 1], got {fraction}"
            )));
        }
        if fraction == 1.0 {
            return Ok(self.clone());
        }
        let mut keep = Vec::new();
        for members in self.shuffled_by_class(seed) {
            if members.is_empty() {
                continue;
            }
            let take = ((fraction * members.len() as f64).round() as usize).clamp(1, members.len());
            keep.extend_from_slice(&members[..take]);
        }
        keep.sort_unstable();
        Ok(self.subset(&keep, format!("{} ({:.0}%)", self.name, fraction * 100.0)))
    }

    /// A stratified split: `fraction` of each class (at least one sample of classes with two or
    /// more) goes to the second set.
    pub fn stratified_split(&self, fraction: f64, seed: u64) -> Result<(FeatureSet, FeatureSet)> {
        if !(fraction > 0.0 && fraction < 1.0) {
            return Err(NmlError::Invalid(format!(
                "validation fraction must be in (0, 1), got {fraction}"
            )));
        }
        let (mut keep, mut held) = (Vec::new(), Vec::new());
        for members in self.shuffled_by_class(seed) {
            let m = members.len();
            let take =
                if m >= 2 { ((fraction * m as f64).round() as usize).clamp(1, m - 1) } else { 0 };
            held.extend_from_slice(&members[..take]);
            keep.extend_from_slice(&members[take..]);
        }
        if held.is_empty() {
            return Err(NmlError::Invalid(format!(
                "{}: too few samples per class for a validation split",
                self.name
            )));
        }
        keep.sort_unstable();
        held.sort_unstable();
        Ok((
            self.subset(&keep, format!("{} (train part)", self.name)),
            self.subset(&held, format!("{} (validation part)", self.name)),
        ))
    }

    /// Count of samples per class.
    pub fn class_counts(&self) -> Vec<usize> {
        let mut counts = vec![0; self.num_classes];
        for &l in &self.labels {
            counts[l as usize] += 1;
        }
        counts
    }

    pub fn features_tensor(&self, device: &Device) -> Tensor<2> {
        Tensor::from_data(TensorData::new(self.features.clone(), [self.n, self.d]), device)
    }

    pub fn labels_tensor(&self, device: &Device) -> Tensor<1, Int> {
        let labels: Vec<i64> = self.labels.iter().map(|&l| l as i64).collect();
        Tensor::from_data(TensorData::new(labels, [self.n]), device)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toy() -> FeatureSet {
        let features: Vec<f32> = (0..40).map(|v| v as f32).collect();
        let labels = vec![0, 1, 0, 1, 0, 1, 0, 1, 2, 2];
        FeatureSet::new("toy", features, 4, labels, None).unwrap()
    }

    #[test]
    fn rejects_bad_sets_naming_the_place() {
        let err = FeatureSet::new("f.npy", vec![1.0, f32::NAN], 2, vec![0], None).unwrap_err();
        assert!(
            err.to_string().contains("f.npy") && err.to_string().contains("row 0, column 1"),
            "{err}"
        );
        let err = FeatureSet::new("f", vec![1.0; 4], 2, vec![0], None).unwrap_err();
        assert!(err.to_string().contains("2 feature rows but 1 labels"), "{err}");
        let err = FeatureSet::new("f", vec![1.0; 4], 2, vec![0, 5], Some(3)).unwrap_err();
        assert!(err.to_string().contains("label 5 at index 1"), "{err}");
        let err = FeatureSet::new("f", vec![1.0; 4], 2, vec![0, -1], None).unwrap_err();
        assert!(err.to_string().contains("negative label -1 at index 1"), "{err}");
        assert!(FeatureSet::new("f", vec![], 2, vec![], None).is_err());
    }

    #[test]
    fn class_fraction_keeps_each_class() {
        let set = toy();
        let half = set.class_fraction(0.5, 7).unwrap();
        assert_eq!(half.class_counts(), vec![2, 2, 1]);
        let tiny = set.class_fraction(0.01, 7).unwrap();
        assert_eq!(tiny.class_counts(), vec![1, 1, 1]);
        for i in 0..half.n {
            let row = half.row(i);
            let original = (row[0] as usize) / 4;
            assert_eq!(set.labels[original], half.labels[i]);
        }
    }

    #[test]
    fn stratified_split_is_disjoint_and_complete() {
        let set = toy();
        let (train, val) = set.stratified_split(0.25, 1).unwrap();
        assert_eq!(train.n + val.n, set.n);
        assert_eq!(val.class_counts(), vec![1, 1, 1]);
        let mut firsts: Vec<i64> =
            train.features.chunks(4).chain(val.features.chunks(4)).map(|r| r[0] as i64).collect();
        firsts.sort();
        assert_eq!(firsts, (0..10).map(|i| i * 4).collect::<Vec<_>>());
    }
}
