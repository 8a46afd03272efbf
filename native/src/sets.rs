//! How the command line names feature sets: one `.safetensors` file, or a pair
//! `FEATURES.npy,LABELS.npy`. Image sets are named as core's `ImageSource` reads them.

use std::path::Path;

use nml_core::{FeatureSet, ImageSet, ImageSource, Result};

/// Reads the feature set `spec` names.
pub fn read_features(spec: &str) -> Result<FeatureSet> {
    match spec.split_once(',') {
        Some((features, labels)) => FeatureSet::read_npy(Path::new(features), Path::new(labels)),
        None => FeatureSet::read(Path::new(spec)),
    }
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
