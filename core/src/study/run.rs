//! Running a study: every pre-training run (reused when its checkpoint is finished), every
//! task's features (reused when the file holds the same source), every tuned cell (reused when
//! its file holds the same settings). Everything finished is kept under the output folder, so a
//! study that stops is continued by running it again.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use web_time::Instant;

use burn::tensor::Device;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::results::{ResultRow, Results};
use super::shard::Shard;
use super::suite::{
    FinetuneSuite, ObjectiveKind, StudySuite, Suite, Task, TextSuite, TextTask, TuneSuite,
};
use crate::data::{FeatureSet, ImageSet, ImageSource, TextSet, TextSource};
use crate::error::{NmlError, Result};
use crate::finetune::{self, FinetuneConfig, FinetuneMethod, ParamCount, WisePoint};
use crate::io::{read_file, write_atomic};
use crate::models::{Encoder, InputTransform, SentenceEncoder};
use crate::pretrain::{
    EpochRecord, finished_run, finished_text_run, pretrain, pretrain_data_parallel, pretrain_text,
    saved_run,
};
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
    /// Only this shard's pre-training runs (and their cells); all of them when `None`.
    pub shard: Option<Shard>,
    /// Whether missing steps are computed or only named.
    pub mode: StudyMode,
}

/// What a study does with a step that is not finished on disk.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum StudyMode {
    /// Computes it (and saves it).
    #[default]
    Run,
    /// Names it in [`Results::missing`] and reports what is there: the report of a sharded
    /// study, built from whatever its shards have finished.
    Report,
}

impl StudyOptions {
    fn owns(&self, run: usize) -> bool {
        self.shard.is_none_or(|s| s.owns(run))
    }
}

/// What an output folder was asked to hold: `study.json`, written by every run and shard of a
/// study, so that its report can be built from the folder alone.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct StudyFile {
    pub suite: StudySuite,
    pub finetune: Option<FinetuneSuite>,
}

impl StudyFile {
    /// The file's name inside the output folder.
    pub const NAME: &'static str = "study.json";

    pub fn write(&self, out: &Path) -> Result<()> {
        let text = serde_json::to_string_pretty(self).expect("plain data");
        write_atomic(&out.join(Self::NAME), format!("{text}\n").as_bytes())
    }

    /// The study of the output folder `out`, or an error naming the file.
    pub fn read(out: &Path) -> Result<Self> {
        let path = out.join(Self::NAME);
        if !path.exists() {
            return Err(NmlError::format(
                path.display().to_string(),
                "not found: no study has run into this folder (run `nml sweep --out` there first)",
            ));
        }
        Self::from_json(&read_file(&path)?, &path.display().to_string())
    }

    /// A study file's bytes; `name` is used in the error.
    pub fn from_json(bytes: &[u8], name: &str) -> Result<Self> {
        serde_json::from_slice(bytes).map_err(|e| NmlError::format(name, e.to_string()))
    }
}

/// The number of cells a study (or its shard) has: each is one tick of a progress display.
pub fn cell_count(
    suite: &StudySuite,
    finetune: Option<&FinetuneSuite>,
    shard: Option<Shard>,
) -> usize {
    let tune = suite.tune();
    let per_task =
        tune.methods.len() * tune.fractions.len() + finetune.map_or(0, |p| p.methods.len());
    let runs = (0..suite.runs().len()).filter(|&i| shard.is_none_or(|s| s.owns(i))).count();
    runs * suite.task_count() * per_task
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

/// Where a study in `out` keeps the features of one split (`train`, `test` or an OOD set's
/// name) of a task after the pre-training run `tag`.
pub(crate) fn features_file(out: &Path, tag: &str, task: &str, split: &str) -> PathBuf {
    out.join("features").join(tag).join(format!("{task}-{split}.safetensors"))
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
    /// WiSE-FT's mixes, one per the plan's alphas.
    #[serde(default)]
    wise: Vec<WisePoint>,
}

/// A finished cell saved at `path`, if it is there, readable, and of the same settings.
fn cached<T: DeserializeOwned>(path: &Path, same: impl Fn(&T) -> bool) -> Option<T> {
    std::fs::read(path).ok().and_then(|b| serde_json::from_slice(&b).ok()).filter(same)
}

fn write_cell(path: &Path, cell: &impl Serialize) -> Result<()> {
    let text = serde_json::to_string_pretty(cell).expect("plain data");
    write_atomic(path, format!("{text}\n").as_bytes())
}

/// Features of one set, reused when the file at `path` holds the same `source`; else made by
/// `extract` and saved there, or `None` when `extract` is `None` (a report names them missing).
fn cached_features(
    path: &Path,
    source: &str,
    extract: Option<impl FnOnce() -> Result<FeatureSet>>,
) -> Result<Option<FeatureSet>> {
    if path.exists() {
        let cached = FeatureSet::read(path)?;
        if cached.domain() == Some(source) {
            return Ok(Some(cached));
        }
    }
    let Some(extract) = extract else { return Ok(None) };
    let set = extract()?.with_domain(Some(source.to_string()));
    set.write(path)?;
    Ok(Some(set))
}

/// Texts per forward pass when a study embeds a text set.
const TEXT_BATCH: usize = 32;

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
    let study = StudySuite::Images(Box::new(suite.clone()));
    let device = options.devices.first().cloned().unwrap_or_else(Device::flex);
    let pretrain_images = suite.pretrain_data.load()?;
    let missing = RefCell::new(Vec::new());
    let mut rows = Vec::new();
    for (index, (objective, seed, ratio)) in study.runs().into_iter().enumerate() {
        if !options.owns(index) {
            continue;
        }
        let tag = run_tag(objective, ratio, seed);
        let config = suite.pretrain_config(objective, ratio, seed);
        let run_dir = options.out.join("runs").join(&tag);
        let unit = RunUnit { options, tag: &tag, tune: &suite.tune, missing: &missing };
        let tasks = suite.tasks.iter().map(|t| t.name.as_str());
        if !unit.pretrained(tasks, || finished_run(&run_dir, &config))? {
            continue;
        }
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
        let cell = RunCells::after(
            unit,
            &run.history,
            run.epochs_trained,
            (objective, ratio, seed),
            run.noise_rate,
            &device,
            observer,
        );
        // Tables and plots tell objectives apart by the task's label.
        let label = |task: &str| {
            if suite.objectives.len() > 1 {
                format!("{task} [{objective}]")
            } else {
                task.to_string()
            }
        };
        let input = run.config.input();
        for task in &suite.tasks {
            let Some(features) = image_features(&cell, task, &run.model, &input)? else {
                cell.unit.task_missing(&task.name, "features not extracted");
                continue;
            };
            let label = label(&task.name);
            cell.tune_heads(
                &task.name,
                task.train.as_str(),
                &features,
                &label,
                &mut rows,
                observer,
            )?;
            if let Some(plan) = &options.finetune {
                finetune_images(
                    &cell, plan, task, &run.model, &input, &features, &label, &mut rows, observer,
                )?;
            }
        }
    }
    Ok(Results {
        suite: study,
        finetune: options.finetune.clone(),
        backend: options.backend.clone(),
        rows,
        missing: missing.into_inner(),
    })
}

/// Runs a text suite as `options` say: for every seed and noise ratio, pre-train the text
/// encoder on the noisy labels of `pretrain_data` (or reuse the finished run), embed every
/// task's texts, and tune heads (and, when asked, the encoder) as [`run_study`] does.
pub fn run_text_study(
    suite: &TextSuite,
    options: &StudyOptions,
    observer: &mut dyn StudyObserver,
) -> Result<Results> {
    suite.validate()?;
    let study = StudySuite::Text(Box::new(suite.clone()));
    let device = options.devices.first().cloned().unwrap_or_else(Device::flex);
    let pretrain_texts = suite.pretrain_data.load()?;
    // Each task's texts are read once, for every pre-training run that embeds them.
    let task_texts: Vec<TaskTexts> = suite.tasks.iter().map(|_| TaskTexts::default()).collect();
    let missing = RefCell::new(Vec::new());
    let mut rows = Vec::new();
    for (index, (objective, seed, ratio)) in study.runs().into_iter().enumerate() {
        if !options.owns(index) {
            continue;
        }
        let tag = run_tag(objective, ratio, seed);
        let config = suite.pretrain_config(ratio, seed);
        let run_dir = options.out.join("runs").join(&tag);
        let unit = RunUnit { options, tag: &tag, tune: &suite.tune, missing: &missing };
        let tasks = suite.tasks.iter().map(|t| t.name.as_str());
        if !unit.pretrained(tasks, || finished_text_run(&run_dir, &config))? {
            continue;
        }
        observer.on_event(StudyEvent::Pretraining { tag: &tag });
        let mut events = PretrainEvents { observer, tag: &tag, epochs: config.epochs };
        let run = pretrain_text(&pretrain_texts, &config, Some(&run_dir), &device, &mut events)?;
        let cell = RunCells::after(
            unit,
            &run.history,
            run.epochs_trained,
            (objective, ratio, seed),
            run.noise_rate,
            &device,
            observer,
        );
        for (task, texts) in suite.tasks.iter().zip(&task_texts) {
            let Some(features) = text_features(&cell, task, &run.encoder, texts)? else {
                cell.unit.task_missing(&task.name, "features not extracted");
                continue;
            };
            cell.tune_heads(
                &task.name,
                task.train.as_str(),
                &features,
                &task.name,
                &mut rows,
                observer,
            )?;
            let Some(plan) = &options.finetune else { continue };
            for &method in &plan.methods {
                let config = plan.config(method, seed);
                let record = cell.finetuned(
                    &task.name,
                    task.train.as_str(),
                    method,
                    &config,
                    observer,
                    || {
                        let (train, test, ood) = texts.get(task)?;
                        let r = finetune::run_text(
                            &run.encoder,
                            train,
                            test,
                            ood,
                            &config,
                            &device,
                            &mut (),
                        )?;
                        Ok(FinetunedCell {
                            config: config.clone(),
                            train: task.train.to_string(),
                            accuracy: r.accuracy,
                            ood: r.ood,
                            params: r.params,
                            seconds_per_epoch: mean_epoch_seconds(
                                r.history.iter().map(|e| e.seconds),
                            ),
                            seconds: r.seconds,
                            wise: r.wise,
                        })
                    },
                )?;
                if let Some(record) = record {
                    cell.record_finetuned(&features, &task.name, method, &record, &mut rows);
                }
            }
        }
    }
    Ok(Results {
        suite: study,
        finetune: options.finetune.clone(),
        backend: options.backend.clone(),
        rows,
        missing: missing.into_inner(),
    })
}

impl StudySuite {
    /// Runs the study of this suite (see [`run_study`] and [`run_text_study`]).
    pub fn run(&self, options: &StudyOptions, observer: &mut dyn StudyObserver) -> Result<Results> {
        match self {
            Self::Images(suite) => run_study(suite, options, observer),
            Self::Text(suite) => run_text_study(suite, options, observer),
        }
    }
}

fn mean_epoch_seconds(seconds: impl ExactSizeIterator<Item = f64>) -> f64 {
    let n = seconds.len().max(1) as f64;
    seconds.sum::<f64>() / n
}

/// A task's frozen features under one pre-trained encoder, with their spectra (measured once
/// per task: they depend only on the set).
struct TaskFeatures {
    train: FeatureSet,
    test: FeatureSet,
    ood: Vec<(String, FeatureSet)>,
    test_spectrum: SpectrumReport,
    ood_spectra: Vec<SpectrumReport>,
}

impl TaskFeatures {
    /// A task's features with their spectra, or `None` when a set's features are missing.
    fn new(
        train: Option<FeatureSet>,
        test: Option<FeatureSet>,
        ood: Vec<(String, Option<FeatureSet>)>,
        device: &Device,
    ) -> Result<Option<Self>> {
        let ood: Option<Vec<_>> = ood.into_iter().map(|(n, s)| s.map(|s| (n, s))).collect();
        let (Some(train), Some(test), Some(ood)) = (train, test, ood) else { return Ok(None) };
        let test_spectrum = spectrum_of(&test, device)?;
        let ood_spectra = ood.iter().map(|(_, s)| spectrum_of(s, device)).collect::<Result<_>>()?;
        Ok(Some(Self { train, test, ood, test_spectrum, ood_spectra }))
    }
}

fn image_features(
    cell: &RunCells<'_>,
    task: &Task,
    model: &Encoder,
    input: &InputTransform,
) -> Result<Option<TaskFeatures>> {
    let get = |split: &str, source: &ImageSource| {
        let extract = || model.extract(&source.load()?, input, source.as_str(), cell.device);
        cached_features(
            &cell.unit.features_path(&task.name, split),
            source.as_str(),
            cell.unit.computes().then_some(extract),
        )
    };
    let ood = task
        .ood
        .iter()
        .map(|(name, source)| Ok((name.clone(), get(name, source)?)))
        .collect::<Result<_>>()?;
    TaskFeatures::new(get("train", &task.train)?, get("test", &task.test)?, ood, cell.device)
}

/// A text task's training, test and OOD texts.
type TaskSets = (TextSet, TextSet, Vec<(String, TextSet)>);

/// A text task's sets, read once when first needed (for features, or to fine-tune on).
#[derive(Default)]
struct TaskTexts {
    sets: std::cell::OnceCell<TaskSets>,
}

impl TaskTexts {
    fn get(&self, task: &TextTask) -> Result<&TaskSets> {
        if self.sets.get().is_none() {
            let ood =
                task.ood.iter().map(|(n, s)| Ok((n.clone(), s.load()?))).collect::<Result<_>>()?;
            let _ = self.sets.set((task.train.load()?, task.test.load()?, ood));
        }
        Ok(self.sets.get().expect("read above"))
    }
}

fn text_features(
    cell: &RunCells<'_>,
    task: &TextTask,
    encoder: &SentenceEncoder,
    texts: &TaskTexts,
) -> Result<Option<TaskFeatures>> {
    let get = |split: &str, source: &TextSource, pick: &dyn Fn(&TaskSets) -> &TextSet| {
        let extract =
            || encoder.features(pick(texts.get(task)?), TEXT_BATCH, cell.device, &mut |_| {});
        cached_features(
            &cell.unit.features_path(&task.name, split),
            source.as_str(),
            cell.unit.computes().then_some(extract),
        )
    };
    let ood = task
        .ood
        .iter()
        .enumerate()
        .map(|(i, (name, source))| Ok((name.clone(), get(name, source, &|sets| &sets.2[i].1)?)))
        .collect::<Result<_>>()?;
    TaskFeatures::new(
        get("train", &task.train, &|sets| &sets.0)?,
        get("test", &task.test, &|sets| &sets.1)?,
        ood,
        cell.device,
    )
}

/// The encoder of an image task fine-tuned by every method of `plan`, as rows.
#[allow(clippy::too_many_arguments)]
fn finetune_images(
    cell: &RunCells<'_>,
    plan: &FinetuneSuite,
    task: &Task,
    model: &Encoder,
    input: &InputTransform,
    features: &TaskFeatures,
    label: &str,
    rows: &mut Vec<ResultRow>,
    observer: &mut dyn StudyObserver,
) -> Result<()> {
    // The task's images, read when the first encoder is fine-tuned on them.
    let mut images: Option<TaskImages> = None;
    for &method in &plan.methods {
        let config = plan.config(method, cell.seed);
        let record =
            cell.finetuned(&task.name, task.train.as_str(), method, &config, observer, || {
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
                let out = finetune::run(
                    model.clone(),
                    input,
                    train_images,
                    test_images,
                    ood_images,
                    &config,
                    cell.device,
                    &mut (),
                )?;
                let r = out.report;
                Ok(FinetunedCell {
                    config: config.clone(),
                    train: task.train.to_string(),
                    accuracy: r.accuracy,
                    ood: r.ood,
                    params: r.params,
                    seconds_per_epoch: mean_epoch_seconds(r.history.iter().map(|e| e.seconds)),
                    seconds: r.seconds,
                    wise: r.wise,
                })
            })?;
        if let Some(record) = record {
            cell.record_finetuned(features, label, method, &record, rows);
        }
    }
    Ok(())
}

/// A task's training, test and OOD images, read when an encoder is fine-tuned on them.
type TaskImages = (ImageSet, ImageSet, Vec<(String, ImageSet)>);

/// Where one pre-training run's steps are kept on disk, and the study's list of those a report
/// found missing.
struct RunUnit<'a> {
    options: &'a StudyOptions,
    tag: &'a str,
    tune: &'a TuneSuite,
    missing: &'a RefCell<Vec<String>>,
}

impl RunUnit<'_> {
    /// Whether missing steps are computed (else only named).
    fn computes(&self) -> bool {
        self.options.mode == StudyMode::Run
    }

    fn features_path(&self, task: &str, split: &str) -> PathBuf {
        features_file(&self.options.out, self.tag, task, split)
    }

    fn head_cell_path(&self, task: &str, method: &str, fraction: f64) -> PathBuf {
        self.tuned_path(&format!("{task}-{method}-f{fraction}.json"))
    }

    fn finetune_cell_path(&self, task: &str, method: FinetuneMethod) -> PathBuf {
        self.tuned_path(&format!("{task}-{}.json", method.name()))
    }

    fn tuned_path(&self, file: &str) -> PathBuf {
        self.options.out.join("tuned").join(self.tag).join(file)
    }

    /// Names the cell at `path` (inside the output folder) as missing, and why.
    fn miss(&self, path: &Path, why: &str) {
        let shown = path.strip_prefix(&self.options.out).unwrap_or(path);
        self.missing.borrow_mut().push(format!("{} ({why})", shown.display()));
    }

    /// Whether the run's pre-training goes ahead: always when missing steps are computed;
    /// in a report only when `finished`, else every cell of `tasks` is named missing.
    fn pretrained<'t>(
        &self,
        tasks: impl Iterator<Item = &'t str>,
        finished: impl FnOnce() -> Result<bool>,
    ) -> Result<bool> {
        if self.computes() || finished()? {
            return Ok(true);
        }
        for task in tasks {
            self.task_missing(task, "pre-training not finished");
        }
        Ok(false)
    }

    /// Names every cell of `task` in this run as missing.
    fn task_missing(&self, task: &str, why: &str) {
        for method in &self.tune.methods {
            for &fraction in &self.tune.fractions {
                self.miss(&self.head_cell_path(task, method.name(), fraction), why);
            }
        }
        for &method in self.options.finetune.iter().flat_map(|p| &p.methods) {
            self.miss(&self.finetune_cell_path(task, method), why);
        }
    }
}

/// One pre-training run's part of the study: where its cells go and what its rows record.
struct RunCells<'a> {
    unit: RunUnit<'a>,
    objective: ObjectiveKind,
    ratio: f64,
    seed: u64,
    noise_rate: f64,
    train_accuracy: f64,
    device: &'a Device,
}

impl<'a> RunCells<'a> {
    /// The cells of a finished pre-training run, announced to `observer`.
    fn after(
        unit: RunUnit<'a>,
        history: &[EpochRecord],
        epochs_trained: usize,
        (objective, ratio, seed): (ObjectiveKind, f64, u64),
        noise_rate: f64,
        device: &'a Device,
        observer: &mut dyn StudyObserver,
    ) -> Self {
        let train_accuracy = history.last().map_or(0.0, |r| r.train_accuracy);
        observer.on_event(StudyEvent::Pretrained {
            tag: unit.tag,
            epochs_trained,
            epochs_reused: history.len() - epochs_trained,
            train_accuracy,
        });
        Self { unit, objective, ratio, seed, noise_rate, train_accuracy, device }
    }

    /// A fine-tuned encoder's rows: the method's, then one per WiSE-FT mix (whose time is
    /// the run's, as the mixes come with it).
    fn record_finetuned(
        &self,
        features: &TaskFeatures,
        label: &str,
        method: FinetuneMethod,
        cell: &FinetunedCell,
        rows: &mut Vec<ResultRow>,
    ) {
        let (name, accuracy, ood) = (method.name().to_string(), cell.accuracy, &cell.ood);
        let mixes = cell
            .wise
            .iter()
            .map(|p| (FinetuneSuite::wise_name(method, p.alpha), p.accuracy, &p.ood));
        for (name, accuracy, ood) in std::iter::once((name, accuracy, ood)).chain(mixes) {
            self.record(features, label, &name, 1.0, accuracy, ood, cell.seconds, rows);
        }
    }

    /// One row per evaluation set of a tuned cell, with the frozen features' spectrum.
    #[allow(clippy::too_many_arguments)]
    fn record(
        &self,
        features: &TaskFeatures,
        label: &str,
        method: &str,
        fraction: f64,
        accuracy: f64,
        ood_accuracy: &BTreeMap<String, f64>,
        seconds: f64,
        rows: &mut Vec<ResultRow>,
    ) {
        let evals =
            std::iter::once(("test".to_string(), Role::Id, accuracy, &features.test_spectrum))
                .chain(
                    features
                        .ood
                        .iter()
                        .zip(&features.ood_spectra)
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
                metrics: spectrum.metrics.clone(),
                pretrain_noise_rate: self.noise_rate,
                pretrain_train_accuracy: self.train_accuracy,
                tune_seconds: seconds,
            });
        }
    }

    /// Every head at every data fraction on a task's frozen features (each reused when its
    /// file holds the same settings), as rows.
    fn tune_heads(
        &self,
        task: &str,
        train_source: &str,
        features: &TaskFeatures,
        label: &str,
        rows: &mut Vec<ResultRow>,
        observer: &mut dyn StudyObserver,
    ) -> Result<()> {
        let suite = self.unit.tune;
        for &method in &suite.methods {
            for &fraction in &suite.fractions {
                let config = suite.config(method, fraction, self.seed);
                let path = self.unit.head_cell_path(task, method.name(), fraction);
                let same = |c: &TunedCell| c.config == config && c.train == train_source;
                let cell = match cached(&path, same) {
                    Some(c) => c,
                    None if !self.unit.computes() => {
                        self.unit.miss(&path, "not tuned");
                        continue;
                    }
                    None => {
                        observer.on_event(StudyEvent::Tuning {
                            tag: self.unit.tag,
                            task,
                            method: method.name(),
                        });
                        let started = Instant::now();
                        let out = tune(
                            &features.train,
                            &features.test,
                            &features.ood,
                            &config,
                            self.device,
                            &mut (),
                        )?;
                        let cell = TunedCell {
                            config,
                            train: train_source.to_string(),
                            accuracy: out.report.accuracy,
                            ood: out.report.ood.clone(),
                            seconds: started.elapsed().as_secs_f64(),
                        };
                        write_cell(&path, &cell)?;
                        cell
                    }
                };
                observer.on_event(StudyEvent::Cell {
                    tag: self.unit.tag,
                    task,
                    method: method.name(),
                    fraction,
                    accuracy: cell.accuracy,
                    ood: &cell.ood,
                    params: None,
                });
                self.record(
                    features,
                    label,
                    method.name(),
                    fraction,
                    cell.accuracy,
                    &cell.ood,
                    cell.seconds,
                    rows,
                );
            }
        }
        Ok(())
    }

    /// A fine-tuned encoder's cell: reused when its file holds the same settings, else made by
    /// `run` and saved (or, in a report, named missing: `None`).
    fn finetuned(
        &self,
        task: &str,
        train_source: &str,
        method: FinetuneMethod,
        config: &FinetuneConfig,
        observer: &mut dyn StudyObserver,
        run: impl FnOnce() -> Result<FinetunedCell>,
    ) -> Result<Option<FinetunedCell>> {
        let path = self.unit.finetune_cell_path(task, method);
        let same = |c: &FinetunedCell| c.config == *config && c.train == train_source;
        let cell = match cached(&path, same) {
            Some(c) => c,
            None if !self.unit.computes() => {
                self.unit.miss(&path, "not fine-tuned");
                return Ok(None);
            }
            None => {
                observer.on_event(StudyEvent::Tuning {
                    tag: self.unit.tag,
                    task,
                    method: method.name(),
                });
                let cell = run()?;
                write_cell(&path, &cell)?;
                cell
            }
        };
        observer.on_event(StudyEvent::Cell {
            tag: self.unit.tag,
            task,
            method: method.name(),
            fraction: 1.0,
            accuracy: cell.accuracy,
            ood: &cell.ood,
            params: Some(cell.params),
        });
        Ok(Some(cell))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::topic_texts;

    /// A text suite runs end to end: a small BERT pre-trained at two noise ratios, its features
    /// of a task in and out of domain, a head and LoRA on each; a second run reuses everything.
    #[test]
    fn a_text_study_runs_and_is_reused() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        for (seed, per_class) in [(10, 30), (11, 15), (12, 10)] {
            topic_texts(root, per_class, seed);
        }
        let file = |seed: u64| root.join(format!("topics-{seed}.jsonl")).display().to_string();
        let text = format!(
            r#"
modality = "text"
ratios = [0.0, 0.3]
seeds = [0]
noise_kind = "symmetric"
pretrain_data = "{}"

[pretrain]
model = {{ kind = "bert", layers = 1, hidden = 16, heads = 2, intermediate = 32, tokenizer = "{}" }}
max_tokens = 8
epochs = 3
batch_size = 8
lr = 0.01
encoder_lr_ratio = 1.0
weight_decay = 0.0
seed = 0

[tune]
methods = ["lp"]
epochs = 200
fractions = [1.0]

[finetune]
methods = ["lora"]
epochs = 1
batch_size = 8
lora_targets = "mlp-and-attention"

[[task]]
name = "topics"
train = "{}"
test = "{}|rows=0..20"
ood = {{ short = "{}|rows=20..30" }}
"#,
            file(10),
            root.join("tokenizer.json").display(),
            file(11),
            file(12),
            file(12),
        );
        let StudySuite::Text(suite) = StudySuite::from_toml(&text, "text.toml").unwrap() else {
            panic!("a text suite")
        };
        let out = root.join("study");
        let options = StudyOptions {
            out: out.clone(),
            devices: vec![Device::flex()],
            backend: "cpu".into(),
            finetune: Some(suite.finetune_plan(None).unwrap()),
            shard: None,
            mode: StudyMode::Run,
        };
        struct Count(usize);
        impl StudyObserver for Count {
            fn on_event(&mut self, event: StudyEvent<'_>) {
                self.0 += usize::from(matches!(event, StudyEvent::Tuning { .. }));
            }
        }
        let mut first = Count(0);
        let results = run_text_study(&suite, &options, &mut first).unwrap();
        // Two runs x (LP + LoRA) x (test + short).
        assert_eq!((results.rows.len(), first.0), (8, 4));
        assert!(
            results.rows.iter().all(|r| (0.0..=1.0).contains(&r.accuracy) && r.metrics.sve > 0.0)
        );
        let clean_lp = results
            .rows
            .iter()
            .find(|r| r.ratio == 0.0 && r.method == "lp" && r.eval == "test")
            .unwrap();
        assert!(clean_lp.accuracy > 0.5, "{clean_lp:?}");
        assert!(out.join("features/noise30-seed0/topics-short.safetensors").is_file());
        let mut again = Count(0);
        let reused = StudySuite::Text(suite.clone()).run(&options, &mut again).unwrap();
        assert_eq!(again.0, 0, "every cell is reused");
        let numbers = |r: &Results| -> Vec<(f64, String, String, f64, f64)> {
            r.rows
                .iter()
                .map(|r| (r.ratio, r.eval.clone(), r.method.clone(), r.accuracy, r.metrics.sve))
                .collect()
        };
        assert_eq!(numbers(&reused), numbers(&results));

        // The same study in two shards into another folder, reported after each.
        let sharded = StudyOptions { out: root.join("sharded"), ..options.clone() };
        let shard = |k| StudyOptions { shard: Some(Shard::new(k, 2).unwrap()), ..sharded.clone() };
        let report = StudyOptions { mode: StudyMode::Report, ..sharded.clone() };
        let first_half = run_text_study(&suite, &shard(0), &mut ()).unwrap();
        assert!(first_half.rows.iter().all(|r| r.ratio == 0.0));
        let partial = run_text_study(&suite, &report, &mut ()).unwrap();
        assert_eq!(
            partial.missing,
            [
                "tuned/noise30-seed0/topics-lp-f1.json (pre-training not finished)",
                "tuned/noise30-seed0/topics-lora.json (pre-training not finished)",
            ]
        );
        assert_eq!(numbers(&partial), numbers(&first_half));
        run_text_study(&suite, &shard(1), &mut ()).unwrap();
        let whole = run_text_study(&suite, &report, &mut ()).unwrap();
        assert!(whole.missing.is_empty(), "{:?}", whole.missing);
        assert_eq!(numbers(&whole), numbers(&results), "shards give the unsharded study");

        // A cell lost after the run is named, not silently dropped.
        std::fs::remove_file(root.join("sharded/tuned/noise30-seed0/topics-lora.json")).unwrap();
        let lost = run_text_study(&suite, &report, &mut ()).unwrap();
        assert_eq!(lost.missing, ["tuned/noise30-seed0/topics-lora.json (not fine-tuned)"]);
        assert_eq!(lost.rows.len(), 6);
    }

    #[test]
    fn the_study_file_reads_back_as_written() {
        let dir = tempfile::tempdir().unwrap();
        let err = StudyFile::read(dir.path()).unwrap_err().to_string();
        assert!(err.contains("study.json") && err.contains("not found"), "{err}");
        for (name, text) in [
            ("quick", include_str!("../../../native/suites/quick.toml")),
            ("text", include_str!("../../../native/suites/text.toml")),
        ] {
            let suite = StudySuite::from_toml(text, name).unwrap();
            let file = StudyFile { finetune: suite.finetune_plan(None).ok(), suite };
            file.write(dir.path()).unwrap();
            let back = StudyFile::read(dir.path()).unwrap();
            let json = |f: &StudyFile| serde_json::to_string(f).unwrap();
            assert_eq!(json(&back), json(&file), "{name}");
            assert_eq!(
                matches!(back.suite, StudySuite::Text(_)),
                name == "text",
                "{name} read back as the other kind"
            );
        }
        std::fs::write(dir.path().join(StudyFile::NAME), "{\"suite\": 3}").unwrap();
        let err = StudyFile::read(dir.path()).unwrap_err().to_string();
        assert!(err.contains("study.json"), "{err}");
    }
}
