//! Pre-training an image encoder (or, in [`pretrain_text`], a text encoder) on labels corrupted by the core's noise generators
//! (supervised), or CLIP-style on captions of which a share is swapped (contrastive), through the
//! one training loop: per-epoch checkpoints a run resumes from exactly, on one device or split
//! over several.

mod config;
mod contrastive;
mod device_images;
mod run_dir;
mod text;

pub use config::{ModelShape, Objective, PretrainConfig};
pub use contrastive::class_captions;
pub use device_images::DeviceImages;
pub use run_dir::{CheckpointMeta, META_KEY, finished_run, saved_run};
pub use text::{
    TEXT_META_KEY, TextModelSpec, TextPretrainConfig, TextPretrained, finished_text_run,
    pretrain_text,
};
pub(crate) use text::{label_tensor, labelled, token_batch, tokenize};

use std::path::Path;

use burn::module::Module;
use burn::nn::loss::CrossEntropyLossConfig;
use burn::optim::ModuleOptimizer;
use burn::tensor::{Device, Int, Tensor, TensorData};
use rand::rngs::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::data::ImageSet;
use crate::error::{NmlError, Result};
use crate::models::{ContrastiveModel, Encoder, compute_copy};
use crate::readback::blocking;
use crate::train::{self, EpochSums, Flow, Observer, Plan, RunDir, Shuffle, StepLoss};

/// One finished pre-training epoch.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EpochRecord {
    pub epoch: usize,
    /// Mean cross-entropy against the (noisy) training labels.
    pub loss: f64,
    /// Share of training images whose prediction matched their (noisy) label.
    pub train_accuracy: f64,
    pub lr: f64,
    pub seconds: f64,
}

impl EpochRecord {
    /// The record of an epoch the training loop summed.
    pub fn of(sums: EpochSums) -> Self {
        Self {
            epoch: sums.epoch,
            loss: sums.loss,
            train_accuracy: sums.accuracy.unwrap_or(0.0),
            lr: sums.lr,
            seconds: sums.seconds,
        }
    }
}

/// A trained encoder and how it got there.
pub struct Pretrained {
    pub model: Encoder,
    pub config: PretrainConfig,
    pub num_classes: usize,
    pub history: Vec<EpochRecord>,
    /// Realised share of training labels (or captions) the noise changed.
    pub noise_rate: f64,
    /// Epochs this call trained (0 when a finished checkpoint was reused).
    pub epochs_trained: usize,
}

/// Pre-trains an encoder on `images` as `config.objective` says: on noisy labels (supervised) or
/// on noisy captions built from the labels' class names (contrastive). With `run_dir`, a
/// checkpoint is written after every epoch; an existing checkpoint of the same config is resumed
/// (or, when finished, simply loaded), and one of another config is an error rather than
/// silently overwritten.
pub fn pretrain(
    images: &ImageSet,
    config: &PretrainConfig,
    run_dir: Option<&Path>,
    device: &Device,
    observer: &mut dyn Observer<EpochRecord>,
) -> Result<Pretrained> {
    run(
        TrainingImages::Memory(images),
        None,
        config,
        run_dir,
        std::slice::from_ref(device),
        observer,
    )
}

/// [`pretrain`] with every batch split over `devices` (data parallel; the first holds the model
/// and the optimiser). The run directory is the same as a one-device run's, so either may resume
/// the other.
pub fn pretrain_data_parallel(
    images: &ImageSet,
    config: &PretrainConfig,
    run_dir: Option<&Path>,
    devices: &[Device],
    observer: &mut dyn Observer<EpochRecord>,
) -> Result<Pretrained> {
    run(TrainingImages::Memory(images), None, config, run_dir, devices, observer)
}

/// Contrastive pre-training on given captions (one per image, e.g. from a caption file), a
/// share `caption_noise` of them swapped between pairs. The recorded "train accuracy" is the
/// share of images whose own caption scored highest in their batch.
pub fn pretrain_contrastive(
    images: &ImageSet,
    captions: &[String],
    config: &PretrainConfig,
    run_dir: Option<&Path>,
    device: &Device,
    observer: &mut dyn Observer<EpochRecord>,
) -> Result<Pretrained> {
    if !matches!(config.objective, Objective::Contrastive { .. }) {
        return Err(NmlError::Invalid("captions need a contrastive objective".into()));
    }
    if captions.len() != images.n() {
        return Err(NmlError::Invalid(format!(
            "{} captions for {} images in {}",
            captions.len(),
            images.n(),
            images.name()
        )));
    }
    run(
        TrainingImages::Memory(images),
        Some(captions),
        config,
        run_dir,
        std::slice::from_ref(device),
        observer,
    )
}

/// Pre-training on a class folder streamed by a background pool (see
/// [`crate::data::StreamedImages`]) instead of held in memory: supervised on noisy labels, or
/// contrastive on captions built from the class names, on one device or split over several.
/// Each image is cropped as decoded (a resized crop of the photo itself, where the in-memory
/// path crops the image already resampled to the run's size).
#[cfg(not(target_arch = "wasm32"))]
pub fn pretrain_streamed(
    images: &crate::data::StreamedImages,
    loader: crate::data::LoaderConfig,
    config: &PretrainConfig,
    run_dir: Option<&Path>,
    devices: &[Device],
    observer: &mut dyn Observer<EpochRecord>,
) -> Result<Pretrained> {
    run(TrainingImages::Streamed(images, loader), None, config, run_dir, devices, observer)
}

/// Training images resampled to the run's size, with their noisy labels and the realised rate.
pub fn noisy_training_set(images: &ImageSet, config: &PretrainConfig) -> Result<(ImageSet, f64)> {
    let set = images.resized(config.image_size, config.image_size);
    let (labels, rate) = noisy_labels(images.labels(), images.num_classes(), config)?;
    Ok((set.with_labels(labels)?, rate))
}

/// The labels a run trains on and the share the noise changed.
fn noisy_labels(
    labels: &[u32],
    classes: usize,
    config: &PretrainConfig,
) -> Result<(Vec<u32>, f64)> {
    match &config.noise {
        Some(noise) => {
            let noisy = noise.apply(labels, classes, config.seed)?;
            let rate = noisy.rate();
            Ok((noisy.labels, rate))
        }
        None => Ok((labels.to_vec(), 0.0)),
    }
}

/// What a run trains on.
enum TrainingImages<'a> {
    Memory(&'a ImageSet),
    #[cfg(not(target_arch = "wasm32"))]
    Streamed(&'a crate::data::StreamedImages, crate::data::LoaderConfig),
}

impl TrainingImages<'_> {
    fn n(&self) -> usize {
        match self {
            Self::Memory(images) => images.n(),
            #[cfg(not(target_arch = "wasm32"))]
            Self::Streamed(images, _) => images.n(),
        }
    }

    fn labels(&self) -> &[u32] {
        match self {
            Self::Memory(images) => images.labels(),
            #[cfg(not(target_arch = "wasm32"))]
            Self::Streamed(images, _) => images.labels(),
        }
    }

    fn num_classes(&self) -> usize {
        match self {
            Self::Memory(images) => images.num_classes(),
            #[cfg(not(target_arch = "wasm32"))]
            Self::Streamed(images, _) => images.num_classes(),
        }
    }

    fn channels(&self) -> usize {
        match self {
            Self::Memory(images) => images.channels(),
            #[cfg(not(target_arch = "wasm32"))]
            Self::Streamed(images, _) => images.channels(),
        }
    }

    /// The run's batches: the set uploaded once, or a stream from the epoch after the last
    /// one `run_dir` holds.
    // The browser build has no streams, so the plan and the run directory are for them only.
    #[cfg_attr(target_arch = "wasm32", allow(unused_variables))]
    fn batches(
        &self,
        plan: &Plan,
        config: &PretrainConfig,
        run_dir: Option<&Path>,
        device: &Device,
    ) -> Result<Batches> {
        match self {
            Self::Memory(images) => {
                let set = images.resized(config.image_size, config.image_size);
                Ok(Batches::Device(Box::new(DeviceImages::upload(&set, device))))
            }
            #[cfg(not(target_arch = "wasm32"))]
            Self::Streamed(images, loader) => {
                let done = match run_dir {
                    Some(dir) => saved_run(dir)?.map_or(0, |meta| meta.epochs_done),
                    None => 0,
                };
                let parts = plan.devices.len().max(1);
                let order =
                    Plan::new(plan.samples, plan.epochs, plan.batch_size, plan.lr, plan.shuffle);
                let batches_of = move |epoch| -> Result<Vec<Vec<usize>>> {
                    let batches = order.epoch_batches(epoch)?;
                    Ok(batches
                        .iter()
                        .flat_map(|b| train::device_parts(b, parts).map(<[usize]>::to_vec))
                        .collect())
                };
                let transform = crate::data::BatchTransform {
                    image_size: config.image_size,
                    augment: Some(config.augment.clone()),
                    normalize: config.augment.normalize.clone(),
                };
                let stream = images.stream(
                    done + 1..=config.epochs,
                    batches_of,
                    transform,
                    config.seed,
                    *loader,
                )?;
                Ok(Batches::Stream(stream))
            }
        }
    }
}

/// Where a run's batches come from.
enum Batches {
    Device(Box<DeviceImages>),
    #[cfg(not(target_arch = "wasm32"))]
    Stream(crate::data::BatchStream),
}

impl Batches {
    /// The augmented batch of `chunk` on the replica's `device`, and the samples in it (all of
    /// `chunk`, unless the stream left out files that do not decode).
    fn next(
        &mut self,
        chunk: &[usize],
        config: &PretrainConfig,
        rng: &mut ChaCha8Rng,
        device: &Device,
        parallel: bool,
    ) -> Result<(Tensor<4>, Vec<usize>)> {
        match self {
            Self::Device(images) => {
                let x = images.batch(
                    chunk,
                    config.augment.normalize.as_ref(),
                    Some((&config.augment, rng)),
                )?;
                // The images live on the first device; replicas take their part from there.
                let x = if parallel { x.to_device(device) } else { x };
                Ok((x, chunk.to_vec()))
            }
            #[cfg(not(target_arch = "wasm32"))]
            Self::Stream(stream) => {
                let batch = stream.next(chunk)?;
                let (n, s) = (batch.indices.len(), config.image_size);
                let c = batch.pixels.len() / (n * s * s);
                let x = Tensor::from_data(TensorData::new(batch.pixels, [n, c, s, s]), device);
                Ok((x, batch.indices))
            }
        }
    }
}

fn run(
    images: TrainingImages<'_>,
    captions: Option<&[String]>,
    config: &PretrainConfig,
    run_dir: Option<&Path>,
    devices: &[Device],
    observer: &mut dyn Observer<EpochRecord>,
) -> Result<Pretrained> {
    config.validate()?;
    if devices.is_empty() {
        return Err(NmlError::Invalid("pre-training needs at least one device".into()));
    }
    for device in devices {
        config.precision.check(device)?;
    }
    let devices: Vec<Device> = devices.iter().map(|d| d.clone().autodiff()).collect();
    let ad = devices[0].clone();
    let (num_classes, in_channels) = (images.num_classes(), images.channels());
    let plan = Plan::new(
        images.n(),
        config.epochs,
        config.batch_size,
        config.optimizer.lr(),
        Shuffle::PerEpoch { seed: config.seed },
    )
    .with_loss_scale(config.precision.loss_scale())
    .with_devices(if devices.len() > 1 { devices.clone() } else { Vec::new() });
    let mut batches = images.batches(&plan, config, run_dir, &ad)?;
    let parallel = devices.len() > 1;
    let run_dir = run_dir.map(|dir| RunDir::new(dir, META_KEY));
    let image_tower = config.init_encoder(in_channels, num_classes, config.seed, &ad);
    match &config.objective {
        Objective::Supervised => {
            let (labels, noise_rate) = noisy_labels(images.labels(), num_classes, config)?;
            let loss_fn = CrossEntropyLossConfig::new().init(&ad);
            let step = async |model: &Encoder,
                              chunk: &[usize],
                              rng: &mut ChaCha8Rng|
                   -> Result<StepLoss> {
                let device = model_device(model, &ad);
                let (x, kept) = batches.next(chunk, config, rng, &device, parallel)?;
                let targets: Vec<i64> = kept.iter().map(|&i| i64::from(labels[i])).collect();
                let y =
                    Tensor::<1, Int>::from_data(TensorData::new(targets, [kept.len()]), &device);
                let logits = compute_copy(model, config.precision).forward(x);
                let correct =
                    logits.clone().argmax(1).reshape([kept.len()]).equal(y.clone()).int().sum();
                Ok(StepLoss::new(loss_fn.forward(logits, y))
                    .with_correct(correct)
                    .with_samples(kept.len()))
            };
            let (model, history, epochs_trained) = fit(
                image_tower,
                &plan,
                config,
                [in_channels, num_classes],
                Vec::new(),
                run_dir.as_ref(),
                step,
                observer,
            )?;
            Ok(Pretrained {
                model,
                config: config.clone(),
                num_classes,
                history,
                noise_rate,
                epochs_trained,
            })
        }
        Objective::Contrastive { embed_dim, templates, class_names, max_words, caption_noise } => {
            let built;
            let captions = match captions {
                Some(c) => c,
                None => {
                    built = class_captions(images.labels(), templates, class_names, config.seed)?;
                    &built
                }
            };
            let (tokens, noise_rate, vocabulary) = contrastive::noisy_caption_tokens(
                captions,
                *caption_noise,
                *max_words,
                config.seed,
            )?;
            let model = ContrastiveModel::new(
                image_tower,
                config.model.feature_dim(),
                *embed_dim,
                vocabulary.size(),
                config.seed,
                &ad,
            );
            let max_words = *max_words;
            let step = async |model: &ContrastiveModel,
                              chunk: &[usize],
                              rng: &mut ChaCha8Rng|
                   -> Result<StepLoss> {
                let device = model_device(model, &ad);
                let (x, kept) = batches.next(chunk, config, rng, &device, parallel)?;
                let ids: Vec<i64> = kept.iter().flat_map(|&i| tokens[i].iter().copied()).collect();
                let t = Tensor::<2, Int>::from_data(
                    TensorData::new(ids, [kept.len(), max_words]),
                    &device,
                );
                // Only the image tower computes in reduced precision; the text tower is a small embedding.
                let compute = ContrastiveModel {
                    image: compute_copy(&model.image, config.precision),
                    ..model.clone()
                };
                let (loss, correct) = compute.loss(x, t);
                Ok(StepLoss::new(loss).with_correct(correct).with_samples(kept.len()))
            };
            let (model, history, epochs_trained) = fit(
                model,
                &plan,
                config,
                [in_channels, num_classes],
                vocabulary.words(),
                run_dir.as_ref(),
                step,
                observer,
            )?;
            Ok(Pretrained {
                model: model.image,
                config: config.clone(),
                num_classes,
                history,
                noise_rate,
                epochs_trained,
            })
        }
    }
}

/// The device a replica's parameters are on.
fn model_device<M: Module>(model: &M, fallback: &Device) -> Device {
    model.devices().into_iter().next().unwrap_or_else(|| fallback.clone())
}

/// Trains `model` through the loop, resuming from and checkpointing into `run_dir`; returns the
/// model in inference mode, the whole history and the epochs trained now.
#[allow(clippy::too_many_arguments)]
fn fit<M: Module>(
    mut model: M,
    plan: &Plan,
    config: &PretrainConfig,
    [in_channels, num_classes]: [usize; 2],
    vocabulary: Vec<String>,
    run_dir: Option<&RunDir>,
    step: impl AsyncFnMut(&M, &[usize], &mut ChaCha8Rng) -> Result<StepLoss>,
    observer: &mut dyn Observer<EpochRecord>,
) -> Result<(M, Vec<EpochRecord>, usize)> {
    let mut optim = config.optimizer.init();
    let mut history = Vec::new();
    if let Some(dir) = run_dir {
        let same = |meta: &CheckpointMeta| {
            meta.config == *config
                && meta.num_classes == num_classes
                && meta.in_channels == in_channels
                && meta.vocabulary == vocabulary
        };
        let done = |meta: &CheckpointMeta| meta.epochs_done;
        if let Some(meta) = dir.resume(&mut model, &mut optim, config.epochs, same, done)? {
            history = meta.history;
        }
    }
    let end_epoch = async |_: &M, sums: EpochSums| -> Result<(EpochRecord, Flow)> {
        Ok((EpochRecord::of(sums), Flow::Continue))
    };
    let mut save = |model: &M, optim: &ModuleOptimizer, history: &[EpochRecord]| -> Result<()> {
        let Some(dir) = run_dir else { return Ok(()) };
        let meta = CheckpointMeta {
            config: config.clone(),
            num_classes,
            in_channels,
            epochs_done: history.len(),
            history: history.to_vec(),
            vocabulary: vocabulary.clone(),
        };
        // `valid()` folds the last batch's pending batch-norm statistics into the saved ones.
        dir.save(&model.valid(), optim, &meta, history.len())
    };
    let trained = blocking(train::train(
        model,
        plan,
        &mut optim,
        history,
        step,
        end_epoch,
        observer,
        Some(&mut save),
    ))?;
    Ok((trained.model.valid(), trained.history, trained.epochs_trained))
}

#[cfg(test)]
mod tests;
