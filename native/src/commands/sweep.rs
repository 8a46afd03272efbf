//! `nml sweep`: the paper's study in one command. For every noise ratio and seed: pre-train (or
//! reuse the finished checkpoint), extract features for every task, measure SVE (in domain) and
//! LSVR (out of domain), tune LP / MLP / NMTune heads at every data fraction, with `--finetune`
//! also tune the encoder itself (LoRA, full fine-tuning), and write results.json, results.csv,
//! summary.md and the plots. Every finished step is kept on disk and not redone when the sweep
//! runs again.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

use nml_core::data::{FeatureSet, ImageSet, load_feature_set, save_feature_set};
use nml_core::finetune::{self, FinetuneConfig, FinetuneMethod, ParamCount};
use nml_core::device::{BackendChoice, select_many};
use nml_core::io::write_atomic;
use nml_core::pretrain::{EpochRecord, Objective, PretrainConfig, checkpoint, extract, pretrain, pretrain_multi_device};
use nml_core::tune::{Method, TrainObserver, TuneConfig, run as tune};
use nml_core::{NmlError, Result};
use serde::{Deserialize, Serialize};

use super::pretrain::noise;
use super::{Splits, device, write_json};
use crate::plot::{Curve, LineFigure, render};
use crate::progress::StepBar;
use crate::starter::load_images;

#[derive(clap::Args)]
pub struct Args {
    /// Built-in suite: quick (starter digits, minutes on a 2-core CPU), vit (the same with a small
    /// ViT, for --finetune lora) or full (for a GPU).
    #[arg(long, default_value = "quick", conflicts_with = "suite")]
    preset: String,
    /// A suite file (TOML) of your own; see native/suites/quick.toml for the fields.
    #[arg(long)]
    suite: Option<PathBuf>,
    /// Output folder: runs/, features/, tuned/, results.json, results.csv, summary.md, plots.
    #[arg(long, default_value = "nml-sweep")]
    out: PathBuf,
    /// Override the suite's seeds with 0..N (mean and spread are reported over seeds).
    #[arg(long)]
    seeds: Option<u64>,
    /// Also tune each pre-trained encoder itself: the suite's [finetune] methods, or the ones
    /// listed (lora, lora-nmtune, ft, ft-nmtune; LoRA needs a ViT suite such as --preset vit).
    #[arg(long, num_args = 0..=1, default_missing_value = "", value_name = "METHODS")]
    finetune: Option<String>,
    #[arg(long, default_value = "auto")]
    backend: BackendChoice,
    /// Pre-train data-parallel on several devices (as `nml pretrain --devices`, e.g.
    /// gpu:0,gpu:1); extraction and tuning run on the first.
    #[arg(long, conflicts_with = "backend")]
    devices: Option<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Suite {
    pub ratios: Vec<f64>,
    pub seeds: Vec<u64>,
    pub noise_kind: String,
    pub pretrain_data: String,
    pub pretrain: PretrainConfig,
    /// Pre-training objectives to compare: `supervised` (noisy labels) and/or `contrastive`
    /// (CLIP-style, noisy captions; the ratio is then the share of swapped captions).
    #[serde(default = "supervised_only")]
    pub objectives: Vec<String>,
    /// The contrastive objective's settings (default: captions from the digit names).
    #[serde(default)]
    pub contrastive: Option<Objective>,
    pub tune: TuneSuite,
    /// Tuning of the encoder itself, run when the sweep is given `--finetune`.
    #[serde(default)]
    pub finetune: Option<FinetuneSuite>,
    #[serde(rename = "task")]
    pub tasks: Vec<Task>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TuneSuite {
    pub methods: Vec<Method>,
    pub epochs: usize,
    pub fractions: Vec<f64>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FinetuneSuite {
    pub methods: Vec<FinetuneMethod>,
    pub epochs: usize,
    /// The head's (and adapters') peak learning rate; the method's default when absent.
    #[serde(default)]
    pub lr: Option<f64>,
    #[serde(default)]
    pub batch_size: Option<usize>,
}

impl FinetuneSuite {
    /// The suite's own section, or LoRA and full fine-tuning (full only for a ResNet).
    fn or_default(section: Option<&FinetuneSuite>, vit: bool) -> FinetuneSuite {
        section.cloned().unwrap_or_else(|| FinetuneSuite {
            methods: if vit { vec![FinetuneMethod::Lora, FinetuneMethod::Ft] } else { vec![FinetuneMethod::Ft] },
            epochs: 3,
            lr: None,
            batch_size: None,
        })
    }

    fn config(&self, method: FinetuneMethod, seed: u64) -> FinetuneConfig {
        let base = FinetuneConfig::for_method(method);
        FinetuneConfig {
            epochs: self.epochs,
            lr: self.lr.unwrap_or(base.lr),
            batch_size: self.batch_size.unwrap_or(base.batch_size),
            seed,
            ..base
        }
    }
}

/// The fine-tuning the sweep runs for `--finetune LIST` (empty: the suite's own choice); LoRA on
/// a ResNet is refused before any work starts.
fn finetune_plan(suite: &Suite, flag: Option<&str>) -> Result<Option<FinetuneSuite>> {
    let Some(list) = flag else { return Ok(None) };
    let vit = matches!(suite.pretrain.model, nml_core::pretrain::ModelShape::Vit { .. });
    let mut plan = FinetuneSuite::or_default(suite.finetune.as_ref(), vit);
    if !list.trim().is_empty() {
        plan.methods = list.split(',').map(|m| m.trim().parse()).collect::<Result<_>>()?;
    }
    if plan.methods.is_empty() || plan.epochs == 0 {
        return Err(NmlError::Invalid("--finetune needs at least one method and one epoch".into()));
    }
    if let Some(m) = plan.methods.iter().find(|m| m.uses_lora() && !vit) {
        return Err(NmlError::Invalid(format!(
            "--finetune {}: LoRA adapts a ViT's linears, and this suite pre-trains a ResNet (use ft, ft-nmtune, or a ViT suite such as --preset vit)",
            m.name()
        )));
    }
    for &m in &plan.methods {
        plan.config(m, 0).validate()?;
    }
    Ok(Some(plan))
}

/// A downstream task: a head is trained on `train`, tested on `test` (in domain) and on every
/// `ood` set (same labels, shifted images).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Task {
    pub name: String,
    pub train: String,
    pub test: String,
    #[serde(default)]
    pub ood: BTreeMap<String, String>,
}

impl Task {
    pub fn splits(&self) -> Splits<String> {
        Splits { train: self.train.clone(), test: self.test.clone(), ood: self.ood.iter().map(|(n, s)| (n.clone(), s.clone())).collect() }
    }
}

fn supervised_only() -> Vec<String> {
    vec!["supervised".into()]
}

const QUICK: &str = include_str!("../../suites/quick.toml");
const FULL: &str = include_str!("../../suites/full.toml");
const VIT: &str = include_str!("../../suites/vit.toml");

/// The suite file at `path`, or the built-in `preset` (quick, full) when there is none.
pub fn load_suite(preset: &str, path: Option<&Path>, seeds: Option<u64>) -> Result<Suite> {
    let (text, name) = match path {
        Some(path) => (
            std::fs::read_to_string(path).map_err(|e| NmlError::io(path, e))?,
            path.display().to_string(),
        ),
        None => match preset {
            "quick" => (QUICK.to_string(), "preset quick".to_string()),
            "full" => (FULL.to_string(), "preset full".to_string()),
            "vit" => (VIT.to_string(), "preset vit".to_string()),
            other => return Err(NmlError::Invalid(format!("unknown preset {other:?} (quick, vit, full)"))),
        },
    };
    let mut suite: Suite = toml::from_str(&text).map_err(|e| NmlError::format(&name, e.to_string()))?;
    if let Some(n) = seeds {
        suite.seeds = (0..n).collect();
    }
    let bad = |m: &str| Err(NmlError::format(&name, m));
    if suite.ratios.is_empty() || suite.seeds.is_empty() || suite.tasks.is_empty() || suite.tune.methods.is_empty() {
        return bad("needs at least one ratio, seed, task and method");
    }
    if suite.ratios.iter().any(|r| !(0.0..=1.0).contains(r)) {
        return bad("ratios must be in [0, 1]");
    }
    if suite.tune.fractions.iter().any(|f| !(*f > 0.0 && *f <= 1.0)) {
        return bad("fractions must be in (0, 1]");
    }
    suite.pretrain.validate().map_err(|e| NmlError::format(&name, e.to_string()))?;
    if let Some(bad_name) = suite.objectives.iter().find(|o| !["supervised", "contrastive"].contains(&o.as_str())) {
        return bad(&format!("unknown objective {bad_name:?} (supervised, contrastive)"));
    }
    if suite.objectives.is_empty() {
        return bad("needs at least one objective");
    }
    Ok(suite)
}

/// One number of the study, with everything that produced it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ResultRow {
    /// `supervised` or `contrastive`.
    pub objective: String,
    pub ratio: f64,
    pub seed: u64,
    pub task: String,
    /// `id` for the task's own test set, `ood` for a shifted one.
    pub kind: String,
    /// The evaluation set: `test` or the OOD set's name.
    pub eval: String,
    /// lp, mlp, nmtune (heads on frozen features) or lora, lora-nmtune, ft, ft-nmtune.
    pub method: String,
    pub fraction: f64,
    pub accuracy: f64,
    /// Of the evaluation set's features from the pre-trained encoder (paper mode).
    pub sve: f64,
    pub lsvr_ratio: f64,
    pub lsvr_neglog: f64,
    pub pretrain_noise_rate: f64,
    pub pretrain_train_accuracy: f64,
    pub tune_seconds: f64,
}

fn ratio_tag(objective: &str, ratio: f64, seed: u64) -> String {
    let prefix = if objective == "supervised" { String::new() } else { format!("{objective}-") };
    format!("{prefix}noise{:02}-seed{seed}", (ratio * 100.0).round() as u32)
}

/// Features of one image set under one model, reused when the file holds the same source.
fn features_for(feature_path: &Path, spec: &str, model: &nml_core::models::Encoder, image_size: usize, device: &nml_core::Device) -> Result<FeatureSet> {
    let path = feature_path.display().to_string();
    if feature_path.exists() {
        let cached = load_feature_set(&path)?;
        if cached.domain.as_deref() == Some(spec) {
            return Ok(cached);
        }
    }
    let images = load_images(spec)?;
    let set = extract(model, &images, image_size, spec, device)?.with_domain(Some(spec.to_string()));
    save_feature_set(&set, &path)?;
    Ok(set)
}

/// Pre-training epochs shown in the sweep's one progress bar.
struct PretrainStatus<'a> {
    bar: &'a StepBar,
    tag: &'a str,
    epochs: usize,
}

impl TrainObserver<EpochRecord> for PretrainStatus<'_> {
    fn on_epoch(&mut self, r: &EpochRecord) {
        self.bar.message(&format!("{}: pre-training epoch {}/{} loss {:.3}", self.tag, r.epoch, self.epochs, r.loss));
    }
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

pub fn run(args: Args) -> Result<()> {
    let suite = load_suite(&args.preset, args.suite.as_deref(), args.seeds)?;
    let plan = finetune_plan(&suite, args.finetune.as_deref())?;
    let finetune_methods: Vec<FinetuneMethod> = plan.as_ref().map(|p| p.methods.clone()).unwrap_or_default();
    let devices = match &args.devices {
        Some(list) => select_many(list)?,
        None => vec![device(args.backend)?],
    };
    if devices.len() > 1 {
        if suite.pretrain.precision != nml_core::models::Precision::F32 {
            return Err(NmlError::Invalid("--devices needs the suite's pre-training in f32 (mixed precision is single-device for now)".into()));
        }
        eprintln!("pre-training on {} (burn-train multi-device)", devices.iter().map(|d| d.description.as_str()).collect::<Vec<_>>().join(" + "));
    }
    let device = devices[0].clone();
    let started = Instant::now();
    let pretrain_images = load_images(&suite.pretrain_data)?;
    let mut rows = Vec::new();
    let cells = suite.objectives.len() * suite.seeds.len() * suite.ratios.len() * suite.tasks.len() * (suite.tune.methods.len() * suite.tune.fractions.len() + finetune_methods.len());
    let progress = StepBar::new("sweep", cells);
    for objective in &suite.objectives {
    for &seed in &suite.seeds {
        for &ratio in &suite.ratios {
            let tag = ratio_tag(objective, ratio, seed);
            let config = if objective == "contrastive" {
                let mut contrastive = suite.contrastive.clone().unwrap_or_else(|| Objective::digit_captions(0.0));
                if let Objective::Contrastive { caption_noise, .. } = &mut contrastive {
                    *caption_noise = ratio;
                }
                PretrainConfig { noise: None, objective: contrastive, seed, ..suite.pretrain.clone() }
            } else {
                PretrainConfig { noise: noise(&suite.noise_kind, ratio)?, objective: Objective::Supervised, seed, ..suite.pretrain.clone() }
            };
            // Tables and plots tell objectives apart by the task's label.
            let label = |task: &str| if suite.objectives.len() > 1 { format!("{task} [{objective}]") } else { task.to_string() };
            let run_dir = args.out.join("runs").join(&tag);
            let mut observer = PretrainStatus { bar: &progress, tag: &tag, epochs: config.epochs };
            progress.message(&format!("{tag}: pre-training"));
            // A run already finished (or begun) on one device is reused by the one-device path.
            let run = if devices.len() > 1 && checkpoint::find(&run_dir)?.is_none() {
                let list: Vec<_> = devices.iter().map(|d| d.device.clone()).collect();
                pretrain_multi_device(&pretrain_images, &config, &run_dir, &list, &mut observer)?
            } else {
                pretrain(&pretrain_images, &config, Some(&run_dir), &device.device, &mut observer)?
            };
            let last = run.history.last().map_or(0.0, |r| r.train_accuracy);
            progress.line(&format!(
                "{tag}: pre-trained ({} epochs now, {} reused), train accuracy on noisy labels {:.1}%",
                run.epochs_trained,
                run.history.len() - run.epochs_trained,
                last * 100.0
            ));
            let feature_dir = args.out.join("features").join(&tag);
            for task in &suite.tasks {
                let get = |split: &str, spec: &str| {
                    features_for(&feature_dir.join(format!("{}-{split}.safetensors", task.name)), spec, &run.model, config.image_size, &device.device)
                };
                let train = get("train", &task.train)?;
                let test = get("test", &task.test)?;
                let ood: Vec<(String, FeatureSet)> = task
                    .ood
                    .iter()
                    .map(|(name, spec)| Ok((name.clone(), get(name, spec)?)))
                    .collect::<Result<_>>()?;
                // The frozen features' spectra depend only on the set: measured once per task.
                let test_spectrum = spectrum_of(&test, &device.device)?;
                let ood_spectra: Vec<_> = ood.iter().map(|(_, s)| spectrum_of(s, &device.device)).collect::<Result<_>>()?;
                // One row per evaluation set of a tuned cell, with the frozen features' spectrum.
                let mut record = |method: &str, fraction: f64, accuracy: f64, ood_accuracy: &BTreeMap<String, f64>, seconds: f64| {
                    let evals = std::iter::once(("test".to_string(), "id", accuracy, &test_spectrum))
                        .chain(ood.iter().zip(&ood_spectra).map(|((n, _), sp)| (n.clone(), "ood", ood_accuracy[n], sp)));
                    for (eval, kind, accuracy, spectrum) in evals {
                        rows.push(ResultRow {
                            ratio,
                            seed,
                            objective: objective.clone(),
                            task: label(&task.name),
                            kind: kind.to_string(),
                            eval,
                            method: method.to_string(),
                            fraction,
                            accuracy,
                            sve: spectrum.sve,
                            lsvr_ratio: spectrum.lsvr_ratio,
                            lsvr_neglog: spectrum.lsvr_neglog,
                            pretrain_noise_rate: run.noise_rate,
                            pretrain_train_accuracy: last,
                            tune_seconds: seconds,
                        });
                    }
                };
                for &method in &suite.tune.methods {
                    for &fraction in &suite.tune.fractions {
                        let tune_config = TuneConfig {
                            epochs: suite.tune.epochs,
                            data_fraction: fraction,
                            seed,
                            ..TuneConfig::for_method(method)
                        };
                        let cell_path = args.out.join("tuned").join(&tag).join(format!("{}-{}-f{fraction}.json", task.name, method.name()));
                        let cell = match cached(&cell_path, |c: &TunedCell| c.config == tune_config && c.train == task.train) {
                            Some(c) => c,
                            None => {
                                let t = Instant::now();
                                let out = tune(&train, &test, &ood, &tune_config, &device.device, &mut ())?;
                                let cell = TunedCell {
                                    config: tune_config,
                                    train: task.train.clone(),
                                    accuracy: out.report.accuracy,
                                    ood: out.report.ood.clone(),
                                    seconds: t.elapsed().as_secs_f64(),
                                };
                                write_json(&cell_path, &cell)?;
                                cell
                            }
                        };
                        progress.line(&format!("{tag} {:<12} {:<7} {:>5.0}% data: {}", task.name, method.name(), fraction * 100.0, accuracies(cell.accuracy, &cell.ood)));
                        progress.advance(&format!("{tag} {} {}", task.name, method.name()));
                        record(method.name(), fraction, cell.accuracy, &cell.ood, cell.seconds);
                    }
                }
                // The encoder itself, tuned on the task's images (the whole training set).
                let mut images: Option<Splits<ImageSet>> = None;
                for &method in &finetune_methods {
                    let plan = plan.as_ref().expect("methods come from the plan");
                    let ft_config = plan.config(method, seed);
                    let cell_path = args.out.join("tuned").join(&tag).join(format!("{}-{}.json", task.name, method.name()));
                    let cell = match cached(&cell_path, |c: &FinetunedCell| c.config == ft_config && c.train == task.train) {
                        Some(c) => c,
                        None => {
                            if images.is_none() {
                                images = Some(task.splits().load(load_images)?);
                            }
                            let Splits { train: train_images, test: test_images, ood: ood_images } = images.as_ref().expect("loaded above");
                            progress.message(&format!("{tag} {} {}: fine-tuning", task.name, method.name()));
                            let out = finetune::run(run.model.clone(), config.image_size, train_images, test_images, ood_images, &ft_config, &device.device, &mut ())?;
                            let r = out.report;
                            let cell = FinetunedCell {
                                config: ft_config,
                                train: task.train.clone(),
                                accuracy: r.accuracy,
                                ood: r.ood,
                                params: r.params,
                                seconds_per_epoch: r.history.iter().map(|e| e.seconds).sum::<f64>() / r.history.len().max(1) as f64,
                                seconds: r.seconds,
                            };
                            write_json(&cell_path, &cell)?;
                            cell
                        }
                    };
                    progress.line(&format!(
                        "{tag} {:<12} {:<11} ({} of {} parameters trained): {}",
                        task.name,
                        method.name(),
                        cell.params.trainable,
                        cell.params.total,
                        accuracies(cell.accuracy, &cell.ood)
                    ));
                    progress.advance(&format!("{tag} {} {}", task.name, method.name()));
                    record(method.name(), 1.0, cell.accuracy, &cell.ood, cell.seconds);
                }
            }
        }
    }
    }
    progress.finish();
    write_outputs(&args.out, &suite, plan.as_ref(), &rows, &device.description)?;
    eprintln!("sweep done in {:.0} s; results in {}", started.elapsed().as_secs_f64(), args.out.display());
    Ok(())
}

/// A finished cell saved at `path`, if it is there, readable, and of the same settings.
fn cached<T: serde::de::DeserializeOwned>(path: &Path, same: impl Fn(&T) -> bool) -> Option<T> {
    std::fs::read(path).ok().and_then(|b| serde_json::from_slice(&b).ok()).filter(same)
}

/// `ID 97.40%  rotated-30 79.50% ...` for a progress line.
fn accuracies(id: f64, ood: &BTreeMap<String, f64>) -> String {
    format!("ID {:.2}%{}", id * 100.0, ood.iter().map(|(n, a)| format!("  {n} {:.2}%", a * 100.0)).collect::<String>())
}

fn spectrum_of(set: &FeatureSet, device: &nml_core::Device) -> Result<nml_core::spectrum::SpectrumReport> {
    nml_core::spectrum::measure(set, nml_core::spectrum::Preprocess::Paper, nml_core::spectrum::Precision::Auto, device)
}

/// Mean and (sample) standard deviation; the spread is 0 for a single value.
fn mean_std(values: &[f64]) -> (f64, f64) {
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    let var = if values.len() > 1 { values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0) } else { 0.0 };
    (mean, var.sqrt())
}

/// Rows grouped by everything but the seed, with the mean and spread over seeds.
fn aggregate<'a>(rows: impl Iterator<Item = &'a ResultRow>, value: impl Fn(&ResultRow) -> f64) -> (f64, f64) {
    let values: Vec<f64> = rows.map(|r| value(r)).collect();
    mean_std(&values)
}

fn write_outputs(out: &Path, suite: &Suite, plan: Option<&FinetuneSuite>, rows: &[ResultRow], backend: &str) -> Result<()> {
    write_json(&out.join("results.json"), &serde_json::json!({ "suite": suite, "finetune": plan, "backend": backend, "rows": rows }))?;
    let head_methods: Vec<String> = suite.tune.methods.iter().map(|m| m.name().to_string()).collect();
    let methods: Vec<String> = head_methods
        .iter()
        .cloned()
        .chain(plan.iter().flat_map(|p| p.methods.iter().map(|m| m.name().to_string())))
        .collect();
    let mut csv = String::from("objective,ratio,seed,task,kind,eval,method,fraction,accuracy,sve,lsvr_ratio,lsvr_neglog,pretrain_noise_rate,pretrain_train_accuracy,tune_seconds\n");
    for r in rows {
        let _ = writeln!(
            csv,
            "{},{},{},{},{},{},{},{},{:.6},{:.6},{:.6},{:.6},{:.6},{:.6},{:.3}",
            r.objective,
            r.ratio, r.seed, r.task, r.kind, r.eval, r.method, r.fraction, r.accuracy, r.sve, r.lsvr_ratio, r.lsvr_neglog, r.pretrain_noise_rate, r.pretrain_train_accuracy, r.tune_seconds
        );
    }
    write_atomic(&out.join("results.csv"), csv.as_bytes())?;

    let full = suite.tune.fractions.iter().copied().fold(0.0, f64::max);
    // The headline rows: heads at the largest data fraction, fine-tuning (always on all data).
    let headline = |r: &ResultRow| r.fraction == if head_methods.contains(&r.method) { full } else { 1.0 };
    let evals: Vec<(String, String, String)> = {
        let mut v: Vec<(String, String, String)> = rows.iter().map(|r| (r.task.clone(), r.kind.clone(), r.eval.clone())).collect();
        v.sort();
        v.dedup();
        v
    };
    let pm = |(m, s): (f64, f64)| if suite.seeds.len() > 1 { format!("{m:.2} ± {s:.2}") } else { format!("{m:.2}") };
    let mut md = String::new();
    let _ = writeln!(md, "# nml sweep\n\nBackend: {backend}. Seeds: {:?}. Objectives: {}. Noise: {} on the pre-training labels (supervised) or swapped captions (contrastive), pre-training on {}. Tuning: {} epochs; accuracies in % at {:.0}% of the downstream training data unless noted. SVE / LSVR of the frozen features (paper mode).{}\n", suite.seeds, suite.objectives.join(", "), suite.noise_kind, suite.pretrain_data, suite.tune.epochs, full * 100.0, if plan.is_some() { " Fine-tuned encoders (LoRA, FT) always train on all of it." } else { "" });
    let header: String = suite.ratios.iter().map(|r| format!(" {:.0}% |", r * 100.0)).collect();
    let rule: String = suite.ratios.iter().map(|_| "---|").collect();
    let _ = writeln!(md, "## Accuracy vs pre-training noise\n\n| task | eval | method |{header}\n|---|---|---|{rule}");
    for (task, kind, eval) in &evals {
        for method in &methods {
            let cells: String = suite
                .ratios
                .iter()
                .map(|&ratio| {
                    let sel = rows.iter().filter(|r| &r.task == task && &r.eval == eval && &r.method == method && r.ratio == ratio && headline(r));
                    format!(" {} |", pm(aggregate(sel, |r| r.accuracy * 100.0)))
                })
                .collect();
            let _ = writeln!(md, "| {task} | {eval} ({kind}) | {method} |{cells}");
        }
    }
    let _ = writeln!(md, "\n## Feature spectrum vs pre-training noise\n\nSVE on in-domain test features (higher = richer); LSVR as -ln(s1/Σs) on out-of-domain features (higher = less dominated by one direction).\n\n| task | eval | metric |{header}\n|---|---|---|{rule}");
    for (task, kind, eval) in &evals {
        let (metric, f): (&str, fn(&ResultRow) -> f64) = if kind == "id" { ("SVE", |r| r.sve) } else { ("-ln LSVR", |r| r.lsvr_neglog) };
        let cells: String = suite
            .ratios
            .iter()
            .map(|&ratio| {
                let first = &head_methods[0];
                let sel = rows.iter().filter(|r| &r.task == task && &r.eval == eval && r.ratio == ratio && &r.method == first && r.fraction == full);
                let (m, s) = aggregate(sel, f);
                format!(" {} |", if suite.seeds.len() > 1 { format!("{m:.4} ± {s:.4}") } else { format!("{m:.4}") })
            })
            .collect();
        let _ = writeln!(md, "| {task} | {eval} ({kind}) | {metric} |{cells}");
    }
    let _ = writeln!(md, "\n## Accuracy vs downstream data fraction (in domain)\n\n| task | method | ratio |{}\n|---|---|---|{}", suite.tune.fractions.iter().map(|f| format!(" {:.0}% data |", f * 100.0)).collect::<String>(), suite.tune.fractions.iter().map(|_| "---|").collect::<String>());
    for (task, _, eval) in evals.iter().filter(|e| e.1 == "id") {
        for method in &head_methods {
            for &ratio in &suite.ratios {
                let cells: String = suite
                    .tune
                    .fractions
                    .iter()
                    .map(|&fraction| {
                        let sel = rows.iter().filter(|r| &r.task == task && &r.eval == eval && &r.method == method && r.ratio == ratio && r.fraction == fraction);
                        format!(" {} |", pm(aggregate(sel, |r| r.accuracy * 100.0)))
                    })
                    .collect();
                let _ = writeln!(md, "| {task} | {method} | {:.0}% |{cells}", ratio * 100.0);
            }
        }
    }
    // The paper's Figure 4: how far each tuning method moves from the cleanest pre-training.
    let clean = suite.ratios.iter().copied().fold(f64::INFINITY, f64::min);
    let gap = |method: &str, kind: &str, ratio: f64| -> (f64, f64) {
        let per_seed: Vec<f64> = suite
            .seeds
            .iter()
            .filter_map(|&seed| {
                let diffs: Vec<f64> = evals
                    .iter()
                    .filter(|e| e.1 == kind)
                    .filter_map(|(task, _, eval)| {
                        let acc = |at: f64| {
                            rows.iter()
                                .find(|r| &r.task == task && &r.eval == eval && r.method == method && r.ratio == at && r.seed == seed && headline(r))
                                .map(|r| r.accuracy * 100.0)
                        };
                        Some(acc(ratio)? - acc(clean)?)
                    })
                    .collect();
                (!diffs.is_empty()).then(|| diffs.iter().sum::<f64>() / diffs.len() as f64)
            })
            .collect();
        if per_seed.is_empty() { (f64::NAN, 0.0) } else { mean_std(&per_seed) }
    };
    let _ = writeln!(
        md,
        "\n## Accuracy change from the cleanest pre-training (the paper's Figure 4)\n\nFor each tuning method, the mean over every in-domain (ID) or out-of-domain (OOD) evaluation of the accuracy at each noise ratio minus the accuracy at {:.0}% noise, in points (positive: the noise helped).\n\n| method | eval |{header}\n|---|---|{rule}",
        clean * 100.0
    );
    let mut gap_series = Vec::new();
    for method in &methods {
        for (kind, name) in [("id", "ID"), ("ood", "OOD")] {
            let points: Vec<(f64, f64, f64)> = suite.ratios.iter().map(|&ratio| {
                let (m, s) = gap(method, kind, ratio);
                (ratio * 100.0, m, s)
            }).collect();
            if points.iter().all(|p| p.1.is_nan()) {
                continue;
            }
            let cells: String = points
                .iter()
                .map(|&(_, m, s)| if suite.seeds.len() > 1 { format!(" {m:+.2} ± {s:.2} |") } else { format!(" {m:+.2} |") })
                .collect();
            let _ = writeln!(md, "| {method} | {name} |{cells}");
            gap_series.push(Curve { label: format!("{method} {name}"), points });
        }
    }
    write_atomic(&out.join("summary.md"), md.as_bytes())?;
    let figure = LineFigure {
        title: "Accuracy change from clean pre-training, per tuning method",
        x_label: "pre-training noise (%)",
        y_label: "accuracy change (points)",
        series: &gap_series,
        log_x: false,
    };
    render(&out.join("gap_vs_noise.png"), &figure)?;
    render(&out.join("gap_vs_noise.svg"), &figure)?;

    // Plots, each as PNG and SVG.
    let series_over_ratio = |kind: &str, value: fn(&ResultRow) -> f64, per_method: bool| -> Vec<Curve> {
        let mut series = Vec::new();
        for (task, k, eval) in evals.iter().filter(|e| e.1 == kind) {
            let chosen: &[String] = if per_method { &methods } else { &head_methods[..1] };
            for method in chosen {
                let points = suite
                    .ratios
                    .iter()
                    .map(|&ratio| {
                        let sel = rows.iter().filter(|r| &r.task == task && &r.eval == eval && &r.method == method && r.ratio == ratio && headline(r));
                        let (m, s) = aggregate(sel, value);
                        (ratio * 100.0, m, s)
                    })
                    .collect();
                let label = if per_method { format!("{task} / {eval} ({k}) {method}") } else { format!("{task} / {eval}") };
                series.push(Curve { label, points });
            }
        }
        series
    };
    let figures = [
        ("id_accuracy_vs_noise", "In-domain accuracy vs pre-training noise", "accuracy (%)", series_over_ratio("id", |r| r.accuracy * 100.0, true)),
        ("ood_accuracy_vs_noise", "Out-of-domain accuracy vs pre-training noise", "accuracy (%)", series_over_ratio("ood", |r| r.accuracy * 100.0, true)),
        ("sve_vs_noise", "SVE of in-domain features vs pre-training noise", "SVE", series_over_ratio("id", |r| r.sve, false)),
        ("lsvr_vs_noise", "LSVR of out-of-domain features vs pre-training noise", "-ln(s1 / Σ s)", series_over_ratio("ood", |r| r.lsvr_neglog, false)),
    ];
    for (file, title, y, series) in &figures {
        let figure = LineFigure { title, x_label: "pre-training noise (%)", y_label: y, series, log_x: false };
        render(&out.join(format!("{file}.png")), &figure)?;
        render(&out.join(format!("{file}.svg")), &figure)?;
    }
    let mut fraction_series = Vec::new();
    for (task, _, eval) in evals.iter().filter(|e| e.1 == "id") {
        for method in &head_methods {
            for &ratio in &suite.ratios {
                let points = suite
                    .tune
                    .fractions
                    .iter()
                    .map(|&fraction| {
                        let sel = rows.iter().filter(|r| &r.task == task && &r.eval == eval && &r.method == method && r.ratio == ratio && r.fraction == fraction);
                        let (m, s) = aggregate(sel, |r| r.accuracy * 100.0);
                        (fraction * 100.0, m, s)
                    })
                    .collect();
                fraction_series.push(Curve { label: format!("{task} {method} noise {:.0}%", ratio * 100.0), points });
            }
        }
    }
    let figure = LineFigure { title: "In-domain accuracy vs downstream data", x_label: "downstream training data (%)", y_label: "accuracy (%)", series: &fraction_series, log_x: true };
    render(&out.join("accuracy_vs_fraction.png"), &figure)?;
    render(&out.join("accuracy_vs_fraction.svg"), &figure)?;
    Ok(())
}
