//! Reading a saved encoder, whatever wrote it: a pre-training run's `model.safetensors`, or a
//! fine-tuned model exported with its adapters merged. Sits above pre-training and fine-tuning,
//! which each know only their own files.
//!
//! # Examples
//!
//! Pre-train a tiny encoder into a run directory, then load it back for extraction:
//!
//! ```
//! use nml_core::pretrain::{ModelShape, PretrainConfig, pretrain};
//! use nml_core::{Device, EncoderFile, ImageSet, StarterSet};
//!
//! let digits = ImageSet::starter(StarterSet::SklearnDigits)?;
//! let config = PretrainConfig {
//!     model: ModelShape::Resnet { widths: vec![4, 8], blocks_per_stage: 1 },
//!     image_size: 8,
//!     epochs: 1,
//!     ..PretrainConfig::default()
//! };
//! let dir = std::env::temp_dir().join(format!("nml-doc-encoder-file-{}", std::process::id()));
//! pretrain(&digits, &config, Some(&dir), &Device::flex(), &mut ())?;
//! let saved = EncoderFile::read(&dir.join("model.safetensors"), &Device::flex())?;
//! assert_eq!(saved.input.image_size, 8);
//! let features = saved.encoder.extract(&digits, &saved.input, "digits", &Device::flex())?;
//! assert_eq!((features.n(), features.d()), (1797, 8));
//! # std::fs::remove_dir_all(&dir).ok();
//! # Ok::<(), nml_core::NmlError>(())
//! ```

use std::path::Path;

use burn::tensor::Device;

use crate::error::{NmlError, Result};
use crate::finetune::{FinetuneMeta, load_merged, read_finetune_meta};
use crate::models::{ContrastiveModel, Encoder, InputTransform};
use crate::pretrain::{CheckpointMeta, META_KEY, Objective};
use crate::train::RunDir;

/// A saved encoder and what it is.
pub struct EncoderFile {
    pub encoder: Encoder,
    /// How the encoder was fed in training, so how it must be fed now.
    pub input: InputTransform,
    /// The pre-training run behind the encoder (for a fine-tuned model, its base's).
    pub pretraining: CheckpointMeta,
    /// Present when the encoder was fine-tuned after pre-training.
    pub finetuning: Option<FinetuneMeta>,
}

impl EncoderFile {
    /// Reads a finished (or partial) pre-training run's model file, or a fine-tuned model
    /// exported by `nml tune --export` (its encoder, with the base checkpoint's metadata).
    pub fn read(path: &Path, device: &Device) -> Result<EncoderFile> {
        let bytes = crate::io::read_file(path)?;
        let name = path.display().to_string();
        if read_finetune_meta(&bytes, &name)?.is_some() {
            let (model, meta) = load_merged(&bytes, &name, device)?;
            let input = InputTransform { image_size: meta.image_size, ..meta.base.config.input() };
            return Ok(EncoderFile {
                encoder: model.encoder,
                input,
                pretraining: meta.base.clone(),
                finetuning: Some(meta),
            });
        }
        let meta: CheckpointMeta = crate::train::read_meta(&bytes, &name, META_KEY)?;
        meta.config.validate().map_err(|e| NmlError::format(&name, e.to_string()))?;
        let encoder = meta.config.init_encoder(meta.in_channels, meta.num_classes, 0, device);
        let encoder = match meta.config.objective {
            Objective::Supervised => {
                let mut model = encoder;
                crate::store::load_module(&mut model, &bytes, &name)?;
                model
            }
            Objective::Contrastive { embed_dim, .. } => {
                let feature_dim = meta.config.model.feature_dim();
                let vocabulary = meta.vocabulary.len() + 1;
                let mut model =
                    ContrastiveModel::new(encoder, feature_dim, embed_dim, vocabulary, 0, device);
                crate::store::load_module(&mut model, &bytes, &name)?;
                model.image
            }
        };
        Ok(EncoderFile { encoder, input: meta.config.input(), pretraining: meta, finetuning: None })
    }

    /// The model file of a run directory.
    pub fn in_run_dir(dir: &Path, device: &Device) -> Result<EncoderFile> {
        Self::read(&dir.join(RunDir::MODEL_FILE), device)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::ImageSet;
    use crate::finetune::{
        FinetuneConfig, FinetuneMethod, finetune, merged_bytes, prepare, trained_bytes,
    };
    use crate::pretrain::{ModelShape, PretrainConfig, pretrain};
    use crate::readback::{blocking, floats};

    fn digits(range: std::ops::Range<usize>) -> ImageSet {
        ImageSet::starter(crate::data::StarterSet::SklearnDigits)
            .unwrap()
            .subset(&range.collect::<Vec<_>>())
    }

    fn embedded(encoder: &Encoder, images: &ImageSet, size: usize) -> Vec<f32> {
        let input = InputTransform::new(size);
        encoder.extract(images, &input, "x", &Device::flex()).unwrap().features().to_vec()
    }

    /// A contrastive run's file is read as its image tower, with the run's metadata.
    #[test]
    fn a_contrastive_run_reads_as_its_image_tower() {
        let config = PretrainConfig {
            model: ModelShape::Resnet { widths: vec![4, 8], blocks_per_stage: 1 },
            objective: Objective::digit_captions(0.1),
            image_size: 8,
            epochs: 1,
            ..PretrainConfig::default()
        };
        let dir = tempfile::tempdir().unwrap();
        let run =
            pretrain(&digits(0..300), &config, Some(dir.path()), &Device::flex(), &mut ()).unwrap();
        let saved = EncoderFile::in_run_dir(dir.path(), &Device::flex()).unwrap();
        assert!(!saved.pretraining.vocabulary.is_empty() && saved.finetuning.is_none());
        let probe = digits(300..310);
        assert_eq!(embedded(&saved.encoder, &probe, 8), embedded(&run.model, &probe, 8));
    }

    /// A fine-tuned ViT exported with its adapters merged reads as an encoder giving the tuned
    /// model's features; the adapters alone are refused, saying how to export.
    #[test]
    fn a_merged_export_reads_and_adapters_alone_are_refused() {
        let base = PretrainConfig {
            model: ModelShape::Vit { patch_size: 4, dim: 16, depth: 1, heads: 2, mlp_ratio: 2 },
            image_size: 8,
            epochs: 1,
            ..PretrainConfig::default()
        };
        let dir = tempfile::tempdir().unwrap();
        pretrain(&digits(0..200), &base, Some(dir.path()), &Device::flex(), &mut ()).unwrap();
        let saved = EncoderFile::in_run_dir(dir.path(), &Device::flex()).unwrap();
        let config =
            FinetuneConfig { epochs: 1, ..FinetuneConfig::for_method(FinetuneMethod::Lora) };
        let ad = Device::flex().autodiff();
        let model = prepare(saved.encoder, 10, &config, &ad).unwrap();
        let input = InputTransform::new(8);
        let (tuned, _) = finetune(model, &digits(200..400), &input, &config, &ad, &mut ()).unwrap();
        let meta = crate::finetune::FinetuneMeta {
            config,
            base: saved.pretraining,
            num_classes: 10,
            image_size: 8,
            merged: false,
        };
        let probe = digits(400..410);
        let x = crate::models::image_tensor(
            &probe.resized(8, 8),
            &(0..10).collect::<Vec<_>>(),
            None,
            &ad,
        )
        .unwrap();
        let tuned_features = blocking(floats(tuned.forward(x).0)).unwrap();
        let (merged_path, adapters_path) =
            (dir.path().join("merged.safetensors"), dir.path().join("adapters.safetensors"));
        std::fs::write(&adapters_path, trained_bytes(&tuned, &meta).unwrap()).unwrap();
        std::fs::write(&merged_path, merged_bytes(tuned, &meta).unwrap()).unwrap();
        let read = EncoderFile::read(&merged_path, &Device::flex()).unwrap();
        assert_eq!(read.input, InputTransform::new(8));
        assert!(read.finetuning.as_ref().is_some_and(|f| f.merged));
        let got = embedded(&read.encoder, &probe, 8);
        assert!(
            got.iter().zip(&tuned_features).all(|(a, b)| (a - b).abs() < 1e-4),
            "merged features differ"
        );
        let err = EncoderFile::read(&adapters_path, &Device::flex()).err().unwrap().to_string();
        assert!(err.contains("adapters.safetensors") && err.contains("--export"), "{err}");
    }
}
