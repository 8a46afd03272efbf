//! Data in nml: feature sets, image sets (grey or RGB) and the files they come from, labelled
//! texts and their tokens, the starter pack built
//! into the library, text vocabularies, and the host-side image augmentation.

mod augment;
mod cifar;
mod feature_set;
pub mod idx;
mod image_folder;
mod image_source;
mod images;
pub mod npy_file;
pub mod safetensors_file;
mod starter;
#[cfg(not(target_arch = "wasm32"))]
mod streamed;
mod text_set;
mod text_source;
mod text_tokenizer;
mod vocabulary;

pub use augment::{
    AugmentConfig, CROP_FIELDS, Normalize, PixelMap, ResizedCrop, SUBPIXEL, SUBPIXEL_OFFSET,
    crop_coordinate, draw_crop, draw_crops, image_batch, resample_crop,
};
pub use cifar::CifarKind;
pub use feature_set::FeatureSet;
pub use image_folder::{FolderImage, ImageFolder};
pub use image_source::{ImageOrigin, ImageSource, ImageTransform};
pub use images::{BadImages, ImageSet};
pub use safetensors_file::FeatureDtype;
pub use starter::StarterSet;
#[cfg(not(target_arch = "wasm32"))]
pub use streamed::{BatchStream, BatchTransform, ImageBatch, LoaderConfig, StreamedImages};
pub use text_set::{TextFormat, TextSet};
pub use text_source::{ArticlePart, TextSource, TextStep};
pub use text_tokenizer::{TextTokenizer, TokenBatch, Tokens};
pub use vocabulary::Vocabulary;

use std::path::Path;

use crate::error::{NmlError, Result};
use crate::io::{read_file, write_atomic};

impl FeatureSet {
    /// Reads a feature set from a safetensors file: tensors `features` (N x D; f32, f64, f16
    /// or bf16) and `labels` (N; i64, i32 or u8), optional metadata `class_names` (a JSON
    /// list), `domain` and `num_classes`.
    pub fn read(path: &Path) -> Result<FeatureSet> {
        let bytes = read_file(path)?;
        safetensors_file::read_feature_set(&bytes, &path.display().to_string())
    }

    /// Reads a feature set from a features `.npy` (N x D; f32, f64 or f16) and a labels `.npy`
    /// (N; i64, i32 or u8), C order.
    pub fn read_npy(features: &Path, labels: &Path) -> Result<FeatureSet> {
        let (f_bytes, l_bytes) = (read_file(features)?, read_file(labels)?);
        Self::from_npy(
            &f_bytes,
            &features.display().to_string(),
            &l_bytes,
            &labels.display().to_string(),
        )
    }

    /// Builds a feature set from the bytes of a features `.npy` (N x D) and a labels `.npy` (N);
    /// the names are used in messages.
    pub fn from_npy(
        feature_bytes: &[u8],
        feature_name: &str,
        label_bytes: &[u8],
        label_name: &str,
    ) -> Result<FeatureSet> {
        let (features, n, d) = npy_file::read_matrix(feature_bytes, feature_name)?;
        let labels = npy_file::read_i64(label_bytes, label_name)?;
        if labels.shape != [n] {
            return Err(NmlError::format(
                label_name,
                format!("labels have shape {:?}; {feature_name} has {n} rows", labels.shape),
            ));
        }
        FeatureSet::new(format!("{feature_name},{label_name}"), features, d, labels.data, None)
    }

    /// Builds a feature set from safetensors bytes (see [`FeatureSet::read`]); `name` is used in
    /// messages and as the set's name.
    pub fn from_safetensors(bytes: &[u8], name: &str) -> Result<FeatureSet> {
        safetensors_file::read_feature_set(bytes, name)
    }

    /// The set as safetensors bytes (f32 features, i64 labels, metadata).
    pub fn to_safetensors(&self) -> Result<Vec<u8>> {
        safetensors_file::write_feature_set(self, None, FeatureDtype::F32)
    }

    /// Writes the set to a safetensors file, atomically, its features as `dtype`.
    pub fn write_as(&self, path: &Path, dtype: FeatureDtype) -> Result<()> {
        write_atomic(path, &safetensors_file::write_feature_set(self, None, dtype)?)
    }

    /// Writes the set to a safetensors file, atomically, with a classifier's outputs for its
    /// rows as a `logits` tensor `[N, classes]` beside the features.
    pub fn write_with_logits(&self, path: &Path, logits: &[f32], classes: usize) -> Result<()> {
        write_atomic(
            path,
            &safetensors_file::write_feature_set(self, Some((logits, classes)), FeatureDtype::F32)?,
        )
    }

    /// Writes the set to a safetensors file, atomically.
    pub fn write(&self, path: &Path) -> Result<()> {
        write_atomic(path, &self.to_safetensors()?)
    }

    /// Writes the set as a features `.npy` (f32) and a labels `.npy` (i64), each atomically.
    pub fn write_npy(&self, features: &Path, labels: &Path) -> Result<()> {
        let label_values: Vec<i64> = self.labels().iter().map(|&l| i64::from(l)).collect();
        write_atomic(features, &npy_file::write_f32(&[self.n(), self.d()], self.features()))?;
        write_atomic(labels, &npy_file::write_i64(&[self.n()], &label_values))
    }
}
