//! Running a study: every pre-training run (reused when its checkpoint is finished), every
//! task's features (reused when the file holds the same source), every tuned cell (reused when
//! its file holds the same settings). Everything finished is kept under the output folder, so a
//! study that stops is continued by running it again.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use web_time::Instant;

use burn::tensor::Device;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::results::{ResultRow, Results};
use super::suite::{FinetuneSuite, ObjectiveKind, Suite, Task};
use crate::data::{FeatureSet, ImageSet, ImageSource};
use crate::error::Result;
use crate::finetune::{self, FinetuneConfig, ParamCount};
use crate::io::write_atomic;
use crate::models::{Encoder, InputTransform};
use crate::pretrain::{EpochRecord, Pretrained, pretrain, pretrain_data_parallel, saved_run};
use crate::spectrum::{self, GramPrecision, Preprocess, SpectrumReport};
use crate::train::Observer;
use crate::tune::{Role, TuneConfig, tune};

/// What a running study reports, for progress displays.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum StudyEvent<'a> {
    /// A pre-training run starts (or is looked up).
    Pretraining { tag: &'a str },
    /// A pre-training epoch finished.
    PretrainEpoch { tag: &'a str, record: &'a EpochRecord, epochs: usize },
    /// A pre-training run is ready: `epochs_trained` now, `epochs_reused` from its checkpoint.
    Pretrained { tag: &'a str, epochs_trained: usize, epochs_reused: usize, train_accuracy: f64 },
    /// A cell starts being tuned (it was not found finished on disk).
    Tuning { tag: &'a str, task: &'a str, method: &'a str },
    /// A cell is done (tuned now or reused): its accuracy in and out of domain.
    Cell {
        tag: &'a str,
        task: &'a str,
        method: &'a str,
        fraction: f64,
        accuracy: f64,
        ood: &'a BTreeMap<String, f64>,
        params: Option<ParamCount>,
    },
}

/// Hooks into a running study.
pub trait StudyObserver {
    fn on_event(&mut self, _event: StudyEvent<'_>) {}
}

impl StudyObserver for () {}

/// Where a study runs and what it adds to the suite.
#[derive(Clone, Debug)]
pub struct StudyOptions {
    /// Output folder: `runs/`, `features/`, `tuned/`, and the results.
    pub out: PathBuf,
    /// Extraction and tuning run on the first; pre-training is split over all of them.
    pub devices: Vec<Device>,
    /// How the devices are described in the results.
    pub backend: String,
    /// Also tune each pre-trained encoder itself, as planned (see [`Suite::finetune_plan`]).
    pub finetune: Option<FinetuneSuite>,
}

/// The number of cells a study has: each is one tick of a progress display.
pub fn cell_count(suite: &Suite, finetune: Option<&FinetuneSuite>) -> usize {
    let per_task = suite.tune.methods.len() * suite.tune.fractions.len()
        + finetune.map_or(0, |p| p.methods.len());
    suite.objectives.len() * suite.seeds.len() * suite.ratios.len() * suite.tasks.len() * per_task
}

/// The folder name of one pre-training run: `noise20-seed0`, `contrastive-noise20-seed0`.
pub fn run_tag(objective: ObjectiveKind, ratio: f64, seed: u64) -> String {
    let prefix = match objective {
        ObjectiveKind::Supervised => String::new(),
        ObjectiveKind::Contrastive => format!("{objective}-"),
    };
    format!("{prefix}noise{:02}-seed{seed}", (ratio * 100.0).round() as u32)
}

#[derive(Serialize, Deserialize)]
struct TunedCell {
    config: TuneConfig,
    train: String,
    accuracy: f64,
    ood: BTreeMap<String, f64>,
    seconds: f64,
}

#[derive(Serialize, Deserialize)]
struct FinetunedCell {
    config: FinetuneConfig,
    train: String,
    accuracy: f64,
    ood: BTreeMap<String, f64>,
    params: ParamCount,
    seconds_per_epoch: f64,
    seconds: f64,
}

/// A finished cell saved at `path`, if it is there, readable, and of the same settings.
fn cached<T: DeserializeOwned>(path: &Path, same: impl Fn(&T) -> bool) -> Option<T> {
    std::fs::read(path).ok().and_then(|b| serde_json::from_slice(&b).ok()).filter(same)
}

fn write_cell(path: &Path, cell: &impl Serialize) -> Result<()> {
    let text = serde_json::to_string_pretty(cell).expect("plain data");
    write_atomic(path, format!("{text}\n").as_bytes())
}

/// Features of one image set under one model, reused when the file holds the same source.
fn features_for(
    path: &Path,
    source: &ImageSource,
    model: &Encoder,
    input: &InputTransform,
    device: &Device,
) -> Result<FeatureSet> {
    if path.exists() {
        let cached = FeatureSet::read(path)?;
        if cached.domain() == Some(source.as_str()) {
            return Ok(cached);
        }
    }
    let images = source.load()?;
    let set = model
        .extract(&images, input, source.as_str(), device)?
        .with_domain(Some(source.to_string()));
    set.write(path)?;
    Ok(set)
}

fn spectrum_of(set: &FeatureSet, device: &Device) -> Result<SpectrumReport> {
    spectrum::measure(set, Preprocess::Paper, GramPrecision::Auto, device)
}

/// Pre-training epochs passed on as study events.
struct PretrainEvents<'a> {
    observer: &'a mut dyn StudyObserver,
    tag: &'a str,
    epochs: usize,
}

impl Observer<EpochRecord> for PretrainEvents<'_> {
    fn on_epoch(&mut self, record: &EpochRecord) {
        self.observer.on_event(StudyEvent::PretrainEpoch {
            tag: self.tag,
            record,
            epochs: self.epochs,
        });
    }
}

/// Runs `suite` as `options` say and returns every number it produced.
pub fn run_study(
    suite: &Suite,
    options: &StudyOptions,
    observer: &mut dyn StudyObserver,
) -> Result<Results> {
    suite.validate()?;
    let device = options.devices.first().cloned().unwrap_or_else(Device::flex);
    let pretrain_images = suite.pretrain_data.load()?;
    let mut rows = Vec::new();
    for &objective in &suite.objectives {
        for &seed in &suite.seeds {
            for &ratio in &suite.ratios {
                let tag = run_tag(objective, ratio, seed);
                let config = suite.pretrain_config(objective, ratio, seed);
                let run_dir = options.out.join("runs").join(&tag);
                observer.on_event(StudyEvent::Pretraining { tag: &tag });
                let mut events = PretrainEvents { observer, tag: &tag, epochs: config.epochs };
                // A run already begun on one device is continued there.
                let run = if options.devices.len() > 1 && saved_run(&run_dir)?.is_none() {
                    pretrain_data_parallel(
                        &pretrain_images,
                        &config,
                        Some(&run_dir),
                        &options.devices,
                        &mut events,
                    )?
                } else {
                    pretrain(&pretrain_images, &config, Some(&run_dir), &device, &mut events)?
                };
                let train_accuracy = run.history.last().map_or(0.0, |r| r.train_accuracy);
                observer.on_event(StudyEvent::Pretrained {
                    tag: &tag,
                    epochs_trained: run.epochs_trained,
                    epochs_reused: run.history.len() - run.epochs_trained,
                    train_accuracy,
                });
                // Tables and plots tell objectives apart by the task's label.
                let label = |task: &str| {
                    if suite.objectives.len() > 1 {
                        format!("{task} [{objective}]")
                    } else {
                        task.to_string()
                    }
                };
                let cell = Cell {
                    suite,
                    options,
                    tag: &tag,
                    objective,
                    ratio,
                    seed,
                    run: &run,
                    train_accuracy,
                    device: &device,
                };
                for task in &suite.tasks {
                    cell.task(task, &label(&task.name), &mut rows, observer)?;
                }
            }
        }
    }
    Ok(Results {
        suite: suite.clone(),
        finetune: options.finetune.clone(),
        backend: options.backend.clone(),
        rows,
    })
}

/// A task's training, test and OOD images, read when an encoder is fine-tuned on them.
type TaskImages = (ImageSet, ImageSet, Vec<(String, ImageSet)>);

/// One pre-training run's part of the study.
struct Cell<'a> {
    suite: &'a Suite,
    options: &'a StudyOptions,
    tag: &'a str,
    objective: ObjectiveKind,
    ratio: f64,
    seed: u64,
    run: &'a Pretrained,
    train_accuracy: f64,
    device: &'a Device,
}

impl Cell<'_> {
    /// Features, spectra, heads and fine-tuned encoders of one task, as rows.
    fn task(
        &self,
        task: &Task,
        label: &str,
        rows: &mut Vec<ResultRow>,
        observer: &mut dyn StudyObserver,
    ) -> Result<()> {
        let input = self.run.config.input();
        let feature_dir = self.options.out.join("features").join(self.tag);
        let get = |split: &str, source: &ImageSource| {
            features_for(
                &feature_dir.join(format!("{}-{split}.safetensors", task.name)),
                source,
                &self.run.model,
                &input,
                self.device,
            )
        };
        let train = get("train", &task.train)?;
        let test = get("test", &task.test)?;
        let ood: Vec<(String, FeatureSet)> = task
            .ood
            .iter()
            .map(|(name, source)| Ok((name.clone(), get(name, source)?)))
            .collect::<Result<_>>()?;
        // The frozen features' spectra depend only on the set: measured once per task.
        let test_spectrum = spectrum_of(&test, self.device)?;
        let ood_spectra: Vec<SpectrumReport> =
            ood.iter().map(|(_, s)| spectrum_of(s, self.device)).collect::<Result<_>>()?;
        // One row per evaluation set of a tuned cell, with the frozen features' spectrum.
        let mut record = |method: &str,
                          fraction: f64,
                          accuracy: f64,
                          ood_accuracy: &BTreeMap<String, f64>,
                          seconds: f64| {
            let evals = std::iter::once(("test".to_string(), Role::Id, accuracy, &test_spectrum))
                .chain(
                    ood.iter()
                        .zip(&ood_spectra)
                        .map(|((n, _), sp)| (n.clone(), Role::Ood, ood_accuracy[n], sp)),
                );
            for (eval, kind, accuracy, spectrum) in evals {
                rows.push(ResultRow {
                    objective: self.objective.to_string(),
                    ratio: self.ratio,
                    seed: self.seed,
                    task: label.to_string(),
                    kind,
                    eval,
                    method: method.to_string(),
                    fraction,
                    accuracy,
                    sve: spectrum.sve,
                    lsvr_ratio: spectrum.lsvr_ratio,
                    lsvr_neglog: spectrum.lsvr_neglog,
                    pretrain_noise_rate: self.run.noise_rate,
                    pretrain_train_accuracy: self.train_accuracy,
                    tune_seconds: seconds,
                });
            }
        };
        let tuned_dir = self.options.out.join("tuned").join(self.tag);
        for &method in &self.suite.tune.methods {
            for &fraction in &self.suite.tune.fractions {
                let config = TuneConfig {
                    epochs: self.suite.tune.epochs,
                    data_fraction: fraction,
                    seed: self.seed,
                    ..TuneConfig::for_method(method)
                };
                let path =
                    tuned_dir.join(format!("{}-{}-f{fraction}.json", task.name, method.name()));
                let cell = match cached(&path, |c: &TunedCell| {
                    c.config == config && c.train == task.train.as_str()
                }) {
                    Some(c) => c,
                    None => {
                        observer.on_event(StudyEvent::Tuning {
                            tag: self.tag,
                            task: &task.name,
                            method: method.name(),
                        });
                        let started = Instant::now();
                        let out = tune(&train, &test, &ood, &config, self.device, &mut ())?;
                        let cell = TunedCell {
                            config,
                            train: task.train.to_string(),
                            accuracy: out.report.accuracy,
                            ood: out.report.ood.clone(),
                            seconds: started.elapsed().as_secs_f64(),
                        };
                        write_cell(&path, &cell)?;
                        cell
                    }
                };
                observer.on_event(StudyEvent::Cell {
                    tag: self.tag,
                    task: &task.name,
                    method: method.name(),
                    fraction,
                    accuracy: cell.accuracy,
                    ood: &cell.ood,
                    params: None,
                });
                record(method.name(), fraction, cell.accuracy, &cell.ood, cell.seconds);
            }
        }
        let Some(plan) = &self.options.finetune else {
            return Ok(());
        };
        // The encoder itself, tuned on the task's images (the whole training set).
        let mut images: Option<TaskImages> = None;
        for &method in &plan.methods {
            let config = plan.config(method, self.seed);
            let path = tuned_dir.join(format!("{}-{}.json", task.name, method.name()));
            let cell = match cached(&path, |c: &FinetunedCell| {
                c.config == config && c.train == task.train.as_str()
            }) {
                Some(c) => c,
                None => {
                    if images.is_none() {
                        let ood = task
                            .ood
                            .iter()
                            .map(|(n, s)| Ok((n.clone(), s.load()?)))
                            .collect::<Result<_>>()?;
                        images = Some((task.train.load()?, task.test.load()?, ood));
                    }
                    let (train_images, test_images, ood_images) =
                        images.as_ref().expect("loaded above");
                    observer.on_event(StudyEvent::Tuning {
                        tag: self.tag,
                        task: &task.name,
                        method: method.name(),
                    });
                    let out = finetune::run(
                        self.run.model.clone(),
                        &input,
                        train_images,
                        test_images,
                        ood_images,
                        &config,
                        self.device,
                        &mut (),
                    )?;
                    let r = out.report;
                    let cell = FinetunedCell {
                        config,
                        train: task.train.to_string(),
                        accuracy: r.accuracy,
                        ood: r.ood,
                        params: r.params,
                        seconds_per_epoch: r.history.iter().map(|e| e.seconds).sum::<f64>()
                            / r.history.len().max(1) as f64,
                        seconds: r.seconds,
                    };
                    write_cell(&path, &cell)?;
                    cell
                }
            };
            observer.on_event(StudyEvent::Cell {
                tag: self.tag,
                task: &task.name,
                method: method.name(),
                fraction: 1.0,
                accuracy: cell.accuracy,
                ood: &cell.ood,
                params: Some(cell.params),
            });
            record(method.name(), 1.0, cell.accuracy, &cell.ood, cell.seconds);
        }
        Ok(())
    }
}
