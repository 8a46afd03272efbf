//! How the command line names feature sets: one `.safetensors` file, or a pair
//! `FEATURES.npy,LABELS.npy`. Image sets are named as core's `ImageSource` reads them.

use std::path::Path;

use nml_core::data::npy_file;
use nml_core::io::read_file;
use nml_core::{FeatureSet, ImageSet, ImageSource, Result};

/// Reads the feature set `spec` names.
pub fn read_features(spec: &str) -> Result<FeatureSet> {
    match spec.split_once(',') {
        Some((features, labels)) => FeatureSet::read_npy(Path::new(features), Path::new(labels)),
        None => FeatureSet::read(Path::new(spec)),
    }
}

/// Features as a matrix, with labels where the file has them.
pub struct Features {
    pub name: String,
    pub values: Vec<f32>,
    pub n: usize,
    pub d: usize,
    pub labels: Option<Vec<u32>>,
}

/// Reads the features `spec` names: a feature set as [`read_features`] reads it, or a bare
/// features `.npy` (N x D) alone, for what needs no labels (a spectrum, a comparison).
pub fn read_matrix(spec: &str) -> Result<Features> {
    if !spec.contains(',') && spec.ends_with(".npy") {
        let (values, n, d) = npy_file::read_matrix(&read_file(Path::new(spec))?, spec)?;
        return Ok(Features { name: spec.to_string(), values, n, d, labels: None });
    }
    let set = read_features(spec)?;
    Ok(Features {
        name: set.name().to_string(),
        n: set.n(),
        d: set.d(),
        labels: Some(set.labels().to_vec()),
        values: set.features().to_vec(),
    })
}

/// Writes `set` where `spec` says, atomically.
pub fn write_features(set: &FeatureSet, spec: &str) -> Result<()> {
    match spec.split_once(',') {
        Some((features, labels)) => set.write_npy(Path::new(features), Path::new(labels)),
        None => set.write(Path::new(spec)),
    }
}

/// Says how many unreadable files a `|skip-bad` source (named `name`) left out, and the first
/// few.
pub fn report_skipped(name: &str, skipped: &[String]) {
    if skipped.is_empty() {
        return;
    }
    eprintln!("{name}: skipped {} unreadable files:", skipped.len());
    for line in skipped.iter().take(5) {
        eprintln!("  {line}");
    }
    if skipped.len() > 5 {
        eprintln!("  and {} more", skipped.len() - 5);
    }
}

/// Reads the image set `spec` names (see [`ImageSource`]), saying what `|skip-bad` left out.
pub fn read_images(spec: &str) -> Result<ImageSet> {
    let images = spec.parse::<ImageSource>()?.load()?;
    report_skipped(images.name(), images.skipped());
    Ok(images)
}
