//! Feature sets and the files they come from.

mod feature_set;
pub mod idx;
mod images;
pub mod npy_file;
pub mod safetensors_file;

pub use feature_set::FeatureSet;
pub use images::ImageSet;

use std::path::Path;

use crate::error::{NmlError, Result};
use crate::io::{read_file, write_atomic};

/// Reads a feature set named the way the command line names one: a `.safetensors` file, or
/// `FEATURES.npy,LABELS.npy`.
pub fn load_feature_set(spec: &str) -> Result<FeatureSet> {
    match spec.split_once(',') {
        Some((features, labels)) => {
            let f_bytes = read_file(Path::new(features))?;
            let l_bytes = read_file(Path::new(labels))?;
            feature_set_from_npy(&f_bytes, features, &l_bytes, labels)
        }
        None => {
            let bytes = read_file(Path::new(spec))?;
            safetensors_file::read_feature_set(&bytes, spec)
        }
    }
}

/// Builds a feature set from the bytes of a features `.npy` (N x D) and a labels `.npy` (N).
pub fn feature_set_from_npy(
    feature_bytes: &[u8],
    feature_name: &str,
    label_bytes: &[u8],
    label_name: &str,
) -> Result<FeatureSet> {
    let features = npy_file::read_f32(feature_bytes, feature_name)?;
    let labels = npy_file::read_i64(label_bytes, label_name)?;
    let &[n, d] = features.shape.as_slice() else {
        return Err(NmlError::format(
            feature_name,
            format!("features must be 2-D [N, D], found shape {:?}", features.shape),
        ));
    };
    if labels.shape != [n] {
        return Err(NmlError::format(
            label_name,
            format!("labels have shape {:?}; {feature_name} has {n} rows", labels.shape),
        ));
    }
    FeatureSet::new(format!("{feature_name},{label_name}"), features.data, d, labels.data, None)
}

/// Writes a feature set where the spec says: one `.safetensors` file, or a `.npy` pair.
pub fn save_feature_set(set: &FeatureSet, spec: &str) -> Result<()> {
    match spec.split_once(',') {
        Some((features, labels)) => {
            let label_values: Vec<i64> = set.labels.iter().map(|&l| i64::from(l)).collect();
            write_atomic(Path::new(features), &npy_file::write_f32(&[set.n, set.d], &set.features))?;
            write_atomic(Path::new(labels), &npy_file::write_i64(&[set.n], &label_values))
        }
        None => write_atomic(Path::new(spec), &safetensors_file::write_feature_set(set)?),
    }
}
