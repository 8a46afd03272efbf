//! Data-parallel pre-training over several devices through burn-train's multi-device strategy:
//! each device runs its share of every step on its own replica, the gradients meet on the first
//! device, and one optimiser step updates the model there. The run directory keeps burn-train's
//! own checkpoints (`learner/checkpoint/`) for `--resume`, and the finished model is saved as an
//! ordinary nml checkpoint, so `extract` and `sweep` read it like any single-device run.
//!
//! burn-train also has a DDP strategy (gradients all-reduced between replicas), but in Burn 0.22
//! only the CUDA runtime implements the collective it needs; WGPU and the CPU backend do not.

use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Sender};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use burn::data::dataloader::batcher::Batcher;
use burn::data::dataloader::{DataLoader, DataLoaderBuilder};
use burn::data::dataset::InMemDataset;
use burn::lr_scheduler::cosine::CosineAnnealingLrSchedulerConfig;
use burn::module::Module;
use burn::nn::loss::CrossEntropyLossConfig;
use burn::tensor::{Device, Int, Tensor, TensorData};
use burn::train::logger::{EvaluationProgressLogger, InMemoryMetricLogger, TrainingProgressLogger};
use burn::train::metric::{AccuracyMetric, LearningRateMetric, LossMetric, MetricDefinition, MetricId, NumericEntry};
use burn::train::renderer::{EvaluationName, MetricState, MetricsRenderer, MetricsRendererEvaluation, MetricsRendererTraining};
use burn::train::{
    ClassificationOutput, ExecutionStrategy, InferenceStep, Interrupter, Learner, LearnerSummary, MultiDeviceOptim, SupervisedTraining,
    TrainOutput, TrainStep,
};
use rand::SeedableRng;
use rand::rngs::ChaCha8Rng;

use super::checkpoint::{self, CheckpointMeta};
use super::contrastive::{ContrastiveModel, Vocabulary};
use super::{EpochRecord, Objective, PretrainConfig, Pretrained, image_batch, noisy_training_set, optimizer};
use crate::data::ImageSet;
use crate::error::{NmlError, Result};
use crate::io::{read_file, write_atomic};
use crate::models::Encoder;
use crate::tune::TrainObserver;

/// burn-train's directory inside the run directory.
const LEARNER_DIR: &str = "learner";
/// The epochs finished so far, kept beside burn-train's checkpoints for resuming.
const HISTORY_FILE: &str = "history.json";
/// Training images scored after each epoch (burn-train always validates; these carry the same
/// noisy labels as training, so the figure says how well the noise was fitted).
const VALID_IMAGES: usize = 512;

/// A batch of images with their (noisy) labels.
#[derive(Clone, Debug)]
pub struct LabelledImages {
    pub images: Tensor<4>,
    pub targets: Tensor<1, Int>,
}

/// A batch of images with their (possibly swapped) captions' word ids.
#[derive(Clone, Debug)]
pub struct CaptionedImages {
    pub images: Tensor<4>,
    pub tokens: Tensor<2, Int>,
}

/// Builds batches from image indices, augmenting when given an augmentation stream.
struct ImageBatcher {
    train: Arc<ImageSet>,
    config: PretrainConfig,
    /// `None` for validation batches, which are not augmented.
    rng: Option<Mutex<ChaCha8Rng>>,
    /// Word ids per image, for contrastive runs.
    tokens: Arc<Vec<Vec<i64>>>,
}

impl ImageBatcher {
    fn pixels(&self, items: &[usize], device: &Device) -> Tensor<4> {
        let pixels = match &self.rng {
            Some(rng) => image_batch(&self.train, items, Some((&self.config.augment, &mut *rng.lock().expect("batcher lock")))),
            None => image_batch(&self.train, items, None),
        };
        Tensor::from_data(TensorData::new(pixels, [items.len(), 1, self.train.height, self.train.width]), device)
    }
}

impl Batcher<usize, LabelledImages> for ImageBatcher {
    fn batch(&self, items: Vec<usize>, device: &Device) -> LabelledImages {
        let labels: Vec<i64> = items.iter().map(|&i| i64::from(self.train.labels[i])).collect();
        LabelledImages {
            images: self.pixels(&items, device),
            targets: Tensor::from_data(TensorData::new(labels, [items.len()]), device),
        }
    }
}

impl Batcher<usize, CaptionedImages> for ImageBatcher {
    fn batch(&self, items: Vec<usize>, device: &Device) -> CaptionedImages {
        let width = self.tokens[items[0]].len();
        let ids: Vec<i64> = items.iter().flat_map(|&i| self.tokens[i].iter().copied()).collect();
        CaptionedImages {
            images: self.pixels(&items, device),
            tokens: Tensor::from_data(TensorData::new(ids, [items.len(), width]), device),
        }
    }
}

fn classify(encoder: &Encoder, batch: LabelledImages) -> ClassificationOutput {
    let logits = encoder.forward(batch.images);
    let loss = CrossEntropyLossConfig::new().init(&logits.device()).forward(logits.clone(), batch.targets.clone());
    ClassificationOutput::new(loss, logits, batch.targets)
}

impl TrainStep for Encoder {
    type Input = LabelledImages;
    type Output = ClassificationOutput;
    fn step(&self, batch: LabelledImages) -> TrainOutput<ClassificationOutput> {
        let output = classify(self, batch);
        TrainOutput::new(self, output.loss.backward(), output)
    }
}

impl InferenceStep for Encoder {
    type Input = LabelledImages;
    type Output = ClassificationOutput;
    fn step(&self, batch: LabelledImages) -> ClassificationOutput {
        classify(self, batch)
    }
}

/// Image-to-caption retrieval as classification: row i of the logits should pick caption i.
fn retrieve(model: &ContrastiveModel, batch: CaptionedImages) -> ClassificationOutput {
    let (loss, logits) = model.loss_and_logits(batch.images, batch.tokens);
    let [b, _] = logits.dims();
    let targets = Tensor::<1, Int>::arange(0..b as i64, &logits.device());
    ClassificationOutput::new(loss, logits, targets)
}

impl TrainStep for ContrastiveModel {
    type Input = CaptionedImages;
    type Output = ClassificationOutput;
    fn step(&self, batch: CaptionedImages) -> TrainOutput<ClassificationOutput> {
        let output = retrieve(self, batch);
        TrainOutput::new(self, output.loss.backward(), output)
    }
}

impl InferenceStep for ContrastiveModel {
    type Input = CaptionedImages;
    type Output = ClassificationOutput;
    fn step(&self, batch: CaptionedImages) -> ClassificationOutput {
        retrieve(self, batch)
    }
}

/// Pre-trains as [`super::pretrain`] does, with each step split across `devices` (at least
/// two; the first holds the model and the optimiser). Unlike the single-device loop, a resumed
/// run is not bit-identical to an uninterrupted one: the data loaders' threads interleave the
/// augmentation stream differently.
pub fn pretrain_multi_device(
    images: &ImageSet,
    config: &PretrainConfig,
    run_dir: &Path,
    devices: &[Device],
    observer: &mut dyn TrainObserver<EpochRecord>,
) -> Result<Pretrained> {
    config.validate()?;
    if config.precision != crate::models::Precision::F32 {
        return Err(NmlError::Invalid("mixed precision is not available with several devices yet; use precision f32".into()));
    }
    if devices.len() < 2 {
        return Err(NmlError::Invalid("multi-device pre-training needs at least two devices".into()));
    }
    let devices: Vec<Device> = devices.iter().map(|d| d.clone().autodiff()).collect();
    let main = devices[0].clone();
    let (train, noise_rate, tokens, vocabulary) = match &config.objective {
        Objective::Supervised => {
            let (train, rate) = noisy_training_set(images, config)?;
            (train, rate, Vec::new(), None)
        }
        Objective::Contrastive { templates, class_names, max_words, caption_noise, .. } => {
            let captions = super::contrastive::class_captions(&images.labels, templates, class_names, config.seed)?;
            let (tokens, rate, vocabulary) = super::noisy_caption_tokens(&captions, *caption_noise, *max_words, config.seed)?;
            (images.resized(config.image_size, config.image_size), rate, tokens, Some(vocabulary))
        }
    };
    if train.n < 2 * devices.len() {
        return Err(NmlError::Invalid(format!("{} training images cannot be split over {} devices", train.n, devices.len())));
    }
    let learner_dir = run_dir.join(LEARNER_DIR);
    std::fs::create_dir_all(&learner_dir).map_err(|e| NmlError::Io { path: learner_dir.clone(), source: e })?;
    let words = vocabulary.as_ref().map(Vocabulary::words).unwrap_or_default();
    let history = resume_history(run_dir, config, images.num_classes, &words)?;
    let done = history.len();
    let num_classes = images.num_classes;
    if done >= config.epochs {
        let (model, meta) = super::load_model(&run_dir.join(checkpoint::MODEL_FILE), &main.clone().without_autodiff())?;
        return Ok(Pretrained { model, config: config.clone(), num_classes, history: meta.history, noise_rate, epochs_trained: 0 });
    }

    let setup = Setup { train: Arc::new(train), config, tokens: Arc::new(tokens), devices: &devices, history, learner_dir };
    let encoder = config.init_encoder(num_classes, config.seed, &main);
    let (model, history) = match &config.objective {
        Objective::Supervised => {
            let (model, history) = setup.fit::<Encoder, LabelledImages>(encoder, observer)?;
            (model, history)
        }
        Objective::Contrastive { embed_dim, .. } => {
            let size = vocabulary.as_ref().map_or(1, Vocabulary::size);
            let model = ContrastiveModel::new(encoder, config.model.feature_dim(), *embed_dim, size, config.seed, &main);
            let (model, history) = setup.fit::<ContrastiveModel, CaptionedImages>(model, observer)?;
            (model.image, history)
        }
    };
    let meta = CheckpointMeta { config: config.clone(), num_classes, epochs_done: history.len(), history: history.clone(), vocabulary: words };
    let model = model.fork(&main.clone().without_autodiff());
    write_atomic(&run_dir.join(checkpoint::MODEL_FILE), &checkpoint::model_bytes(&model, &meta)?)?;
    let epochs_trained = history.len() - done;
    Ok(Pretrained { model, config: config.clone(), num_classes, history, noise_rate, epochs_trained })
}

/// Epochs finished by an interrupted multi-device run in `run_dir` (one that has not yet
/// written its model), if there is one.
pub fn unfinished_multi_device_epochs(run_dir: &Path) -> Option<usize> {
    if run_dir.join(checkpoint::MODEL_FILE).exists() {
        return None;
    }
    let bytes = read_file(&run_dir.join(LEARNER_DIR).join(HISTORY_FILE)).ok()?;
    let (_, history): (PretrainConfig, Vec<EpochRecord>) = serde_json::from_slice(&bytes).ok()?;
    Some(history.len())
}

/// The epochs a previous multi-device run in `run_dir` finished, if it was of this config.
fn resume_history(run_dir: &Path, config: &PretrainConfig, num_classes: usize, vocabulary: &[String]) -> Result<Vec<EpochRecord>> {
    if let Some((_, meta)) = checkpoint::find(run_dir)? {
        let name = run_dir.join(checkpoint::MODEL_FILE).display().to_string();
        if meta.config != *config || meta.num_classes != num_classes || meta.vocabulary != vocabulary {
            return Err(NmlError::format(name, "holds a run of another config; choose another directory or delete it"));
        }
        return Ok(meta.history);
    }
    let path = run_dir.join(LEARNER_DIR).join(HISTORY_FILE);
    if !path.exists() {
        return Ok(Vec::new());
    }
    let name = path.display().to_string();
    let (saved, history): (PretrainConfig, Vec<EpochRecord>) =
        serde_json::from_slice(&read_file(&path)?).map_err(|e| NmlError::format(&name, format!("not a run history: {e}")))?;
    if saved != *config {
        return Err(NmlError::format(name, "is the history of a run of another config; choose another directory or delete it"));
    }
    Ok(history)
}

struct Setup<'a> {
    train: Arc<ImageSet>,
    config: &'a PretrainConfig,
    tokens: Arc<Vec<Vec<i64>>>,
    devices: &'a [Device],
    history: Vec<EpochRecord>,
    learner_dir: PathBuf,
}

impl Setup<'_> {
    fn loader<O: Send + Clone + std::fmt::Debug + 'static>(&self, indices: Vec<usize>, augment: bool, shuffle: bool) -> Arc<dyn DataLoader<O>>
    where
        ImageBatcher: Batcher<usize, O>,
    {
        let batcher = ImageBatcher {
            train: self.train.clone(),
            config: self.config.clone(),
            rng: augment.then(|| Mutex::new(ChaCha8Rng::seed_from_u64(self.config.seed ^ 0xa11c))),
            tokens: self.tokens.clone(),
        };
        let builder = DataLoaderBuilder::new(batcher).batch_size(self.config.batch_size.min(indices.len()));
        let builder = if shuffle { builder.shuffle(self.config.seed) } else { builder };
        builder.build(InMemDataset::new(indices))
    }

    /// Runs burn-train's multi-device strategy from the last finished epoch, reporting each
    /// epoch to `observer` as it ends.
    fn fit<M, O>(self, model: M, observer: &mut dyn TrainObserver<EpochRecord>) -> Result<(M, Vec<EpochRecord>)>
    where
        M: burn::train::LearnerModel
            + TrainStep<Input = O, Output = ClassificationOutput>
            + InferenceStep<Input = O, Output = ClassificationOutput>,
        O: Send + Clone + std::fmt::Debug + 'static,
        ImageBatcher: Batcher<usize, O>,
    {
        let config = self.config;
        let mut history = self.history.clone();
        let done = history.len();
        if done >= config.epochs {
            return Err(NmlError::Invalid(format!(
                "{} holds a finished run's history but no model; delete it to train again",
                self.learner_dir.display()
            )));
        }
        let n = self.train.n;
        let train = self.loader::<O>((0..n).collect(), true, true);
        let valid = self.loader::<O>((0..n.min(VALID_IMAGES)).collect(), false, false);
        let per_device = n.div_ceil(self.devices.len());
        let steps = per_device.div_ceil(config.batch_size.min(per_device)) * config.epochs + 1;
        let scheduler = CosineAnnealingLrSchedulerConfig::new(config.optimizer.lr(), steps)
            .init()
            .map_err(|e| NmlError::Invalid(format!("learning-rate schedule: {e}")))?;
        let learner = Learner::new(model, optimizer(&config.optimizer), scheduler);

        let (sender, receiver) = mpsc::channel();
        let reporter = EpochReporter { sender, metrics: Vec::new(), latest: Default::default(), started: Instant::now() };
        let interrupter = Interrupter::new();
        let (dir, devices, epochs) = (self.learner_dir.clone(), self.devices.to_vec(), config.epochs);
        let worker_interrupter = interrupter.clone();
        // burn-train's trainer is not `Send`, so it is built on the thread that runs it.
        let launch = move || {
            let mut training = SupervisedTraining::new(&dir, train, valid)
                .with_training_strategy(ExecutionStrategy::multi(devices, MultiDeviceOptim::OptimMainDevice).into())
                .metrics((LossMetric::new(), AccuracyMetric::new()))
                .metric_train_numeric(LearningRateMetric::new())
                .with_metric_logger(InMemoryMetricLogger::new())
                .with_application_logger(None)
                .renderer(Box::new(reporter))
                .with_default_checkpointers()
                .with_interrupter(worker_interrupter)
                .num_epochs(epochs);
            if done > 0 {
                training = training.checkpoint(done);
            }
            let result = training.launch(learner);
            // Dropping the renderer (our reporter) closes the channel the caller's loop reads.
            (result.model, result.error)
        };
        let history_path = self.learner_dir.join(HISTORY_FILE);
        let result = std::thread::scope(|scope| {
            let worker = scope.spawn(launch);
            // The reporter's sender goes away with the training, which ends this loop.
            for (loss, accuracy, lr, seconds) in receiver {
                let record = EpochRecord { epoch: history.len() + 1, loss, train_accuracy: accuracy, lr, seconds };
                observer.on_epoch(&record);
                history.push(record);
                let json = serde_json::to_vec(&(config, &history)).expect("plain data");
                if let Err(e) = write_atomic(&history_path, &json) {
                    interrupter.stop(Some(&e.to_string()));
                }
                if observer.should_stop() {
                    interrupter.stop(Some("stopped by the caller"));
                }
            }
            worker.join()
        });
        let (model, error) = result.map_err(|_| NmlError::Invalid("multi-device training panicked".into()))?;
        if let Some(error) = error {
            return Err(NmlError::Backend(format!("multi-device training failed: {error}")));
        }
        if history.iter().any(|r| !r.loss.is_finite()) {
            return Err(NmlError::Invalid("pre-training diverged; lower the learning rate".into()));
        }
        Ok((model, history))
    }
}

/// burn-train's renderer slot, used to pass each epoch's training loss and accuracy back to the
/// caller's thread instead of drawing them.
struct EpochReporter {
    sender: Sender<(f64, f64, f64, f64)>,
    metrics: Vec<(MetricId, String)>,
    /// Latest loss, accuracy (0-1) and learning rate of the current epoch.
    latest: (f64, f64, f64),
    started: Instant,
}

impl MetricsRendererTraining for EpochReporter {
    fn update_train(&mut self, state: MetricState) {
        let MetricState::Numeric(entry, Some(value)) = state else { return };
        let value = match value {
            NumericEntry::Value(v) | NumericEntry::Final(v) => v,
            NumericEntry::Aggregated { aggregated_value, .. } => aggregated_value,
        };
        match self.metrics.iter().find(|(id, _)| *id == entry.metric_id).map(|(_, name)| name.as_str()) {
            Some("Loss") => self.latest.0 = value,
            Some("Accuracy") => self.latest.1 = value / 100.0,
            Some("Learning Rate") => self.latest.2 = value,
            _ => {}
        }
    }
    fn update_valid(&mut self, _state: MetricState) {}
    fn on_train_end(&mut self, _summary: Option<LearnerSummary>) -> std::result::Result<(), Box<dyn core::error::Error>> {
        Ok(())
    }
}

impl TrainingProgressLogger for EpochReporter {
    fn start(&mut self, _total_epochs: usize, _starting_epoch: usize, _total_items: Option<usize>, _label: Option<&str>) {}
    fn update_epoch(&mut self, _epoch: usize) {
        let (loss, accuracy, lr) = self.latest;
        let _ = self.sender.send((loss, accuracy, lr, self.started.elapsed().as_secs_f64()));
        self.started = Instant::now();
    }
    fn start_split(&mut self, _split: &str, _total_items: usize) {}
    fn update_split(&mut self, _items_processed: usize) {}
    fn end_split(&mut self) {}
    fn end(&mut self) {}
    fn log_event_training(&mut self, _event: String) {}
}

impl EvaluationProgressLogger for EpochReporter {
    fn start_global_progress(&mut self, _total_tests: usize) {}
    fn start_test(&mut self, _name: &str, _total_items: usize) {}
    fn update_test_progress(&mut self, _items_processed: usize) {}
    fn end_test(&mut self) {}
    fn end_global_progress(&mut self) {}
    fn log_event_evaluation(&mut self, _event: String) {}
}

impl MetricsRendererEvaluation for EpochReporter {
    fn update_test(&mut self, _name: EvaluationName, _state: MetricState) {}
}

impl MetricsRenderer for EpochReporter {
    fn manual_close(&mut self) {}
    fn register_metric(&mut self, definition: MetricDefinition) {
        self.metrics.push((definition.metric_id, definition.name.to_string()));
    }
}
