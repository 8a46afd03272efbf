//! `nml tune`: a head on frozen features (lp, mlp, nmtune), or the encoder itself tuned on an
//! image task (lora, lora-nmtune, ft, ft-nmtune). With `--checkpoint`, every method reads images
//! and runs them through the pre-trained model, so all seven compare on the same task.

use std::path::PathBuf;

use nml_core::finetune::{
    self, FinetuneConfig, FinetuneMeta, FinetuneMethod, FinetuneReport, LoraTargets,
};
use nml_core::io::write_atomic;
use nml_core::study::StudySuite;
use nml_core::tune::{Method, TuneConfig, TuneReport, head_to_bytes, tune};
use nml_core::{EncoderFile, FeatureSet, NmlError, Result};
use serde::Serialize;

use super::sweep::load_suite;
use super::{Splits, merge_toml, peak_memory_mib, write_json};
use crate::args::BackendArg;
use crate::progress::EpochBar;
use crate::sets::{read_features, read_images};

#[derive(clap::Args)]
pub struct Args {
    /// Training set: features (`set.safetensors` or `features.npy,labels.npy`); with
    /// --checkpoint, images (`starter:NAME`, `IMAGES.idx[.gz],LABELS.idx[.gz]`, ...).
    #[arg(long, required_unless_present = "task")]
    train: Option<String>,
    /// In-domain test set (features, or images with --checkpoint).
    #[arg(long, required_unless_present = "task")]
    test: Option<String>,
    /// Out-of-domain test sets, `NAME=SET` (repeatable).
    #[arg(long, value_parser = parse_named)]
    ood: Vec<(String, String)>,
    #[arg(long, value_enum)]
    method: MethodArg,
    /// A pre-trained model (`nml pretrain`'s model.safetensors): the sets are images, run through
    /// it. Required by lora, lora-nmtune, ft and ft-nmtune.
    #[arg(long)]
    checkpoint: Option<PathBuf>,
    /// A task of a sweep suite (its train, test and OOD images) instead of --train/--test/--ood.
    #[arg(long, requires = "checkpoint", conflicts_with_all = ["train", "test", "ood"])]
    task: Option<String>,
    /// The suite file that defines --task (default: the built-in suite named by --preset).
    #[arg(long, requires = "task")]
    suite: Option<PathBuf>,
    /// Built-in suite that defines --task: quick (default) or full.
    #[arg(long, requires = "task", conflicts_with = "suite")]
    preset: Option<String>,
    /// TOML file with any of the method's config fields; flags given here override it.
    #[arg(long)]
    config: Option<PathBuf>,
    #[arg(long)]
    epochs: Option<usize>,
    #[arg(long)]
    batch_size: Option<usize>,
    #[arg(long)]
    lr: Option<f64>,
    #[arg(long)]
    weight_decay: Option<f64>,
    /// MLP width as a multiple of the feature dimension (mlp, nmtune).
    #[arg(long)]
    hidden_mult: Option<usize>,
    #[arg(long)]
    w_mse: Option<f64>,
    #[arg(long)]
    w_cov: Option<f64>,
    #[arg(long)]
    w_svd: Option<f64>,
    #[arg(long)]
    top_k: Option<usize>,
    #[arg(long)]
    seed: Option<u64>,
    /// Per-class fraction of the training set, in (0, 1] (lp, mlp, nmtune).
    #[arg(long)]
    data_fraction: Option<f64>,
    /// Hold out this stratified share of the training set for validation (lp, mlp, nmtune).
    #[arg(long)]
    val_fraction: Option<f64>,
    /// Early stopping: epochs without a better validation accuracy before stopping.
    #[arg(long)]
    patience: Option<usize>,
    /// Pick the head's recipe (regulariser weights, MLP width, and settings that can fall back
    /// towards the linear probe) by validation accuracy; holds out 10% when no --val-fraction.
    #[arg(long)]
    select: bool,
    /// The residual MLP's output scale at the start (mlp, nmtune): 1 is the paper's, 0 starts
    /// the head as a linear probe.
    #[arg(long)]
    residual_scale_init: Option<f64>,
    /// The neighbours that vote in the k-NN probe (knn; default 20).
    #[arg(long)]
    neighbours: Option<usize>,
    /// Full fine-tuning: the encoder's learning rate as a share of --lr.
    #[arg(long)]
    encoder_lr_ratio: Option<f64>,
    #[arg(long)]
    lora_rank: Option<usize>,
    /// The LoRA update is scaled by alpha / rank.
    #[arg(long)]
    lora_alpha: Option<f64>,
    #[arg(long)]
    lora_dropout: Option<f64>,
    /// Where LoRA adapters go: the transformer MLPs (default) or the attention projections too.
    #[arg(long, value_enum)]
    lora_targets: Option<LoraTargets>,
    /// WiSE-FT (lora, lora-nmtune, ft, ft-nmtune): also score the fine-tuned weights mixed
    /// with the pre-trained ones, `A` the fine-tuned share (0 = the pre-trained encoder with a
    /// linear probe, 1 = the fine-tuned model), in and out of domain, e.g. `0,0.25,0.5,0.75,1`.
    #[arg(long, value_delimiter = ',', value_name = "A")]
    wise_alpha: Vec<f64>,
    /// Save what trained: the head (lp, mlp, nmtune; for `nml predict`), the LoRA adapters and
    /// head, or the fine-tuned encoder and head.
    #[arg(long)]
    save: Option<PathBuf>,
    /// Fine-tuning: write the whole model with adapters merged (`nml extract` reads it).
    #[arg(long)]
    export: Option<PathBuf>,
    /// Write the JSON report here.
    #[arg(long)]
    report: Option<PathBuf>,
    #[command(flatten)]
    backend: BackendArg,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum MethodArg {
    Lp,
    Mlp,
    Nmtune,
    Knn,
    Lora,
    LoraNmtune,
    Ft,
    FtNmtune,
}

/// What `--method` names: a head on frozen features, or tuning of the encoder.
enum Chosen {
    Head(Method),
    Encoder(FinetuneMethod),
}

fn chosen(method: MethodArg) -> Chosen {
    match method {
        MethodArg::Lp => Chosen::Head(Method::Lp),
        MethodArg::Mlp => Chosen::Head(Method::Mlp),
        MethodArg::Nmtune => Chosen::Head(Method::Nmtune),
        MethodArg::Knn => Chosen::Head(Method::Knn),
        MethodArg::Lora => Chosen::Encoder(FinetuneMethod::Lora),
        MethodArg::LoraNmtune => Chosen::Encoder(FinetuneMethod::LoraNmtune),
        MethodArg::Ft => Chosen::Encoder(FinetuneMethod::Ft),
        MethodArg::FtNmtune => Chosen::Encoder(FinetuneMethod::FtNmtune),
    }
}

fn parse_named(s: &str) -> std::result::Result<(String, String), String> {
    match s.split_once('=') {
        Some((name, path)) if !name.is_empty() && !path.is_empty() => {
            Ok((name.to_string(), path.to_string()))
        }
        _ => Err(format!("expected NAME=SET, got {s:?}")),
    }
}

/// Flags that belong to the other family of methods are refused, not silently ignored.
fn refuse_flags(method: &str, flags: &[(&str, bool)]) -> Result<()> {
    match flags.iter().find(|(_, given)| *given) {
        Some((flag, _)) => {
            Err(NmlError::Invalid(format!("--{flag} does not apply to --method {method}")))
        }
        None => Ok(()),
    }
}

/// Copies each flag that was given onto the config field of the same name.
macro_rules! set_given {
    ($args:expr, $config:expr, $($field:ident),*) => { $( if let Some(v) = $args.$field { $config.$field = v; } )* };
}

fn lora_flags(args: &Args) -> [(&'static str, bool); 4] {
    [
        ("lora-rank", args.lora_rank.is_some()),
        ("lora-alpha", args.lora_alpha.is_some()),
        ("lora-dropout", args.lora_dropout.is_some()),
        ("lora-targets", args.lora_targets.is_some()),
    ]
}

/// A head's config: the method's defaults, then the TOML file (its `method` is ignored), then
/// the flags.
fn head_config(args: &Args, method: Method) -> Result<TuneConfig> {
    refuse_flags(method.name(), &lora_flags(args))?;
    refuse_flags(
        method.name(),
        &[
            ("encoder-lr-ratio", args.encoder_lr_ratio.is_some()),
            ("export", args.export.is_some()),
            ("wise-alpha", !args.wise_alpha.is_empty()),
        ],
    )?;
    if method.trains() {
        refuse_flags(method.name(), &[("neighbours", args.neighbours.is_some())])?;
    } else {
        // The k-NN probe trains nothing: a flag that sets training would be silently ignored.
        let training = [
            ("epochs", args.epochs.is_some()),
            ("batch-size", args.batch_size.is_some()),
            ("lr", args.lr.is_some()),
            ("weight-decay", args.weight_decay.is_some()),
            ("hidden-mult", args.hidden_mult.is_some()),
            ("w-mse", args.w_mse.is_some()),
            ("w-cov", args.w_cov.is_some()),
            ("w-svd", args.w_svd.is_some()),
            ("top-k", args.top_k.is_some()),
            ("residual-scale-init", args.residual_scale_init.is_some()),
            ("save", args.save.is_some()),
        ];
        refuse_flags(method.name(), &training)?;
    }
    let mut config = TuneConfig::for_method(method);
    if let Some(path) = &args.config {
        config = merge_toml(config, path, &["method"])?;
    }
    set_given!(
        args,
        config,
        epochs,
        batch_size,
        lr,
        weight_decay,
        hidden_mult,
        w_mse,
        w_cov,
        w_svd,
        top_k,
        seed,
        data_fraction,
        val_fraction,
        patience,
        residual_scale_init,
        neighbours
    );
    if args.select {
        config.select = true;
    }
    config.validate()?;
    Ok(config)
}

/// A fine-tuning config: the method's defaults, then the TOML file, then the flags.
fn finetune_config(args: &Args, method: FinetuneMethod) -> Result<FinetuneConfig> {
    refuse_flags(
        method.name(),
        &[
            ("neighbours", args.neighbours.is_some()),
            ("hidden-mult", args.hidden_mult.is_some()),
            ("residual-scale-init", args.residual_scale_init.is_some()),
            ("w-mse", args.w_mse.is_some()),
            ("data-fraction", args.data_fraction.is_some()),
            ("val-fraction", args.val_fraction.is_some()),
            ("patience", args.patience.is_some()),
            ("select", args.select),
        ],
    )?;
    if !method.uses_lora() {
        refuse_flags(method.name(), &lora_flags(args))?;
    }
    let mut config = FinetuneConfig::for_method(method);
    if let Some(path) = &args.config {
        config = merge_toml(config, path, &["method"])?;
    }
    set_given!(
        args,
        config,
        epochs,
        batch_size,
        lr,
        weight_decay,
        w_cov,
        w_svd,
        top_k,
        seed,
        encoder_lr_ratio
    );
    if let Some(v) = args.lora_rank {
        config.lora.rank = v;
    }
    if let Some(v) = args.lora_alpha {
        config.lora.alpha = v;
    }
    if let Some(v) = args.lora_dropout {
        config.lora.dropout = v;
    }
    if let Some(targets) = args.lora_targets {
        config.lora.targets = targets;
    }
    if !args.wise_alpha.is_empty() {
        config.wise_alphas = args.wise_alpha.clone();
    }
    config.validate()?;
    Ok(config)
}

/// The train, test and OOD specs: a suite's task, or the flags.
fn set_specs(args: &Args) -> Result<Splits<String>> {
    match &args.task {
        Some(name) => {
            let preset = args.preset.as_deref().unwrap_or("quick");
            let StudySuite::Images(suite) = load_suite(preset, args.suite.as_deref(), None)? else {
                return Err(NmlError::Invalid(format!(
                    "--task {name}: the suite is of texts; its tasks are tuned by `nml sweep`, or `nml embed` a task's texts and tune the features"
                )));
            };
            let task = suite.tasks.iter().find(|t| &t.name == name).ok_or_else(|| {
                let names: Vec<&str> = suite.tasks.iter().map(|t| t.name.as_str()).collect();
                NmlError::Invalid(format!(
                    "no task {name:?} in the suite (it has {})",
                    names.join(", ")
                ))
            })?;
            Ok(Splits {
                train: task.train.to_string(),
                test: task.test.to_string(),
                ood: task.ood.iter().map(|(n, s)| (n.clone(), s.to_string())).collect(),
            })
        }
        None => Ok(Splits {
            train: args.train.clone().expect("clap requires --train without --task"),
            test: args.test.clone().expect("clap requires --test without --task"),
            ood: args.ood.clone(),
        }),
    }
}

/// A JSON report with the process's peak memory beside it.
#[derive(Serialize)]
struct WithMemory<'a, R: Serialize> {
    #[serde(flatten)]
    report: &'a R,
    peak_memory_mib: Option<f64>,
}

fn print_memory() {
    if let Some(mib) = peak_memory_mib() {
        println!("  peak memory (resident) {mib:.0} MiB");
    }
}

pub fn print_report(r: &TuneReport) {
    println!(
        "method {}  seed {}  backend {}  {:.1} s",
        r.method.name(),
        r.seed,
        r.backend,
        r.seconds
    );
    println!("  accuracy (ID test): {:.2}%", r.accuracy * 100.0);
    for (name, acc) in &r.ood {
        println!("  accuracy (OOD {name}): {:.2}%", acc * 100.0);
    }
    for s in &r.spectra {
        println!(
            "  {:<4} {:<24} SVE {:.4} -> {:.4}   LSVR {:.5} -> {:.5}",
            s.role.name(),
            super::spectrum::shorten(&s.set, 24),
            s.before.metrics.sve,
            s.after.metrics.sve,
            s.before.metrics.lsvr_ratio,
            s.after.metrics.lsvr_ratio
        );
    }
    if let Some(best) = r.best_epoch {
        println!("  early stopping kept epoch {best} of {} run", r.epochs_run);
    }
    if !r.selection.is_empty() {
        println!(
            "  selected w_mse {} w_cov {} w_svd {} hidden_mult {} residual_scale_init {} weight_decay {} lr {} from {} grid points on {} validation samples",
            r.config.w_mse,
            r.config.w_cov,
            r.config.w_svd,
            r.config.hidden_mult,
            r.config.residual_scale_init,
            r.config.weight_decay,
            r.config.lr,
            r.selection.len(),
            r.val_samples
        );
    }
}

pub fn run(args: Args) -> Result<()> {
    match chosen(args.method) {
        Chosen::Head(method) => run_head(&args, method),
        Chosen::Encoder(method) => run_finetune(&args, method),
    }
}

fn run_head(args: &Args, method: Method) -> Result<()> {
    let config = head_config(args, method)?;
    let specs = set_specs(args)?;
    let device = args.backend.device()?;
    let start = std::time::Instant::now();
    let Splits { train, test, ood } = match &args.checkpoint {
        // Frozen features of the images, as `nml extract` writes them.
        Some(checkpoint) => {
            let saved = EncoderFile::read(checkpoint, &device.device)?;
            let sets = specs.load(|spec| -> Result<FeatureSet> {
                saved.encoder.extract(&read_images(spec)?, &saved.input, spec, &device.device)
            })?;
            eprintln!("extracted features in {:.1} s", start.elapsed().as_secs_f64());
            sets
        }
        None => specs.load(read_features)?,
    };
    let outcome = if method.trains() {
        let mut bar = EpochBar::new(config.method.name(), config.epochs);
        let outcome = tune(&train, &test, &ood, &config, &device.device, &mut bar);
        bar.finish();
        outcome
    } else {
        tune(&train, &test, &ood, &config, &device.device, &mut ())
    };
    let mut outcome = outcome?;
    outcome.report.seconds = start.elapsed().as_secs_f64();
    outcome.report.backend = device.description.clone();
    print_report(&outcome.report);
    print_memory();
    if let Some(path) = &args.report {
        write_json(
            path,
            &WithMemory { report: &outcome.report, peak_memory_mib: peak_memory_mib() },
        )?;
        eprintln!("wrote {}", path.display());
    }
    if let (Some(path), Some(head), Some(shape)) = (&args.save, &outcome.head, &outcome.head_config)
    {
        write_atomic(path, &head_to_bytes(head, shape, &outcome.report.config)?)?;
        eprintln!("wrote {}", path.display());
    }
    Ok(())
}

fn print_finetune_report(r: &FinetuneReport) {
    let per_epoch =
        r.history.iter().map(|e| e.seconds).sum::<f64>() / r.history.len().max(1) as f64;
    println!(
        "method {}  seed {}  backend {}  {:.1} s ({per_epoch:.2} s per epoch)",
        r.method.name(),
        r.config.seed,
        r.backend,
        r.seconds
    );
    println!(
        "  parameters trained {} of {} ({:.2}%)",
        r.params.trainable,
        r.params.total,
        100.0 * r.params.trainable as f64 / r.params.total.max(1) as f64
    );
    if let (Some(first), Some(last)) = (r.history.first(), r.history.last()) {
        println!(
            "  cross-entropy {:.4} (epoch 1) -> {:.4} (epoch {})",
            first.ce, last.ce, last.epoch
        );
    }
    println!("  accuracy (ID test): {:.2}%", r.accuracy * 100.0);
    for (name, acc) in &r.ood {
        println!("  accuracy (OOD {name}): {:.2}%", acc * 100.0);
    }
    for point in &r.wise {
        let ood: Vec<String> =
            point.ood.iter().map(|(n, a)| format!("OOD {n} {:.2}%", a * 100.0)).collect();
        println!(
            "  WiSE-FT alpha {:.2}: ID {:.2}%  {}",
            point.alpha,
            point.accuracy * 100.0,
            ood.join("  ")
        );
    }
}

fn run_finetune(args: &Args, method: FinetuneMethod) -> Result<()> {
    let config = finetune_config(args, method)?;
    let checkpoint = args.checkpoint.as_deref().ok_or_else(|| {
        NmlError::Invalid(format!(
            "--method {} tunes a pre-trained encoder: give it with --checkpoint",
            method.name()
        ))
    })?;
    let specs = set_specs(args)?;
    let device = args.backend.device()?;
    let saved = EncoderFile::read(checkpoint, &device.device)?;
    let Splits { train, test, ood } = specs.load(read_images)?;
    let (encoder, input, meta) = (saved.encoder, saved.input, saved.pretraining);
    let mut bar = EpochBar::new(method.name(), config.epochs);
    let outcome =
        finetune::run(encoder, &input, &train, &test, &ood, &config, &device.device, &mut bar);
    bar.finish();
    let mut outcome = outcome?;
    outcome.report.backend = device.description.clone();
    print_finetune_report(&outcome.report);
    print_memory();
    if let Some(path) = &args.report {
        write_json(
            path,
            &WithMemory { report: &outcome.report, peak_memory_mib: peak_memory_mib() },
        )?;
        eprintln!("wrote {}", path.display());
    }
    let finetune_meta = FinetuneMeta {
        config,
        base: meta,
        num_classes: train.num_classes(),
        image_size: input.image_size,
        merged: false,
    };
    if let Some(path) = &args.save {
        write_atomic(path, &finetune::trained_bytes(&outcome.model, &finetune_meta)?)?;
        eprintln!("wrote {}", path.display());
    }
    if let Some(path) = &args.export {
        write_atomic(path, &finetune::merged_bytes(outcome.model, &finetune_meta)?)?;
        eprintln!("wrote {}", path.display());
    }
    Ok(())
}
