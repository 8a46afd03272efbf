use std::path::PathBuf;

use nml_core::data::{FeatureSet, load_feature_set};
use nml_core::device::BackendChoice;
use nml_core::io::write_atomic;
use nml_core::tune::{Method, TuneConfig, TuneReport, head_to_bytes, run as tune};
use nml_core::Result;

use super::{device, merge_toml, write_json};
use crate::progress::EpochBar;

#[derive(clap::Args)]
pub struct Args {
    /// Training features: `set.safetensors` or `features.npy,labels.npy`.
    #[arg(long)]
    train: String,
    /// In-domain test features.
    #[arg(long)]
    test: String,
    /// Out-of-domain test sets, `NAME=FEATURES` (repeatable).
    #[arg(long, value_parser = parse_named)]
    ood: Vec<(String, String)>,
    #[arg(long, value_enum)]
    method: MethodArg,
    /// TOML file with any TuneConfig fields; flags given here override it.
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
    /// MLP width as a multiple of the feature dimension.
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
    /// Per-class fraction of the training set, in (0, 1].
    #[arg(long)]
    data_fraction: Option<f64>,
    /// Hold out this stratified share of the training set for validation.
    #[arg(long)]
    val_fraction: Option<f64>,
    /// Early stopping: epochs without a better validation accuracy before stopping.
    #[arg(long)]
    patience: Option<usize>,
    /// Pick regulariser weights and MLP width on the validation split.
    #[arg(long)]
    select: bool,
    /// Save the trained head (safetensors) for `nml predict`.
    #[arg(long)]
    save: Option<PathBuf>,
    /// Write the JSON report here.
    #[arg(long)]
    report: Option<PathBuf>,
    #[arg(long, default_value = "auto")]
    backend: BackendChoice,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum MethodArg {
    Lp,
    Mlp,
    Nmtune,
}

fn parse_named(s: &str) -> std::result::Result<(String, String), String> {
    match s.split_once('=') {
        Some((name, path)) if !name.is_empty() && !path.is_empty() => Ok((name.to_string(), path.to_string())),
        _ => Err(format!("expected NAME=FEATURES, got {s:?}")),
    }
}

/// The config: the method's defaults, then the TOML file, then the flags.
fn build_config(args: &Args) -> Result<TuneConfig> {
    let method = match args.method {
        MethodArg::Lp => Method::Lp,
        MethodArg::Mlp => Method::Mlp,
        MethodArg::Nmtune => Method::Nmtune,
    };
    let mut config = TuneConfig::for_method(method);
    if let Some(path) = &args.config {
        config = merge_toml(config, path, &["method"])?;
        config.method = method;
    }
    let c = &mut config;
    macro_rules! set {
        ($($field:ident),*) => { $( if let Some(v) = args.$field { c.$field = v; } )* };
    }
    set!(epochs, batch_size, lr, weight_decay, hidden_mult, w_mse, w_cov, w_svd, top_k, seed, data_fraction, val_fraction, patience);
    if args.select {
        c.select = true;
    }
    config.validate()?;
    Ok(config)
}

pub fn print_report(r: &TuneReport) {
    println!("method {}  seed {}  backend {}  {:.1} s", r.method.name(), r.seed, r.backend, r.seconds);
    println!("  accuracy (ID test): {:.2}%", r.accuracy * 100.0);
    for (name, acc) in &r.ood {
        println!("  accuracy (OOD {name}): {:.2}%", acc * 100.0);
    }
    for s in &r.spectra {
        println!(
            "  {:<4} {:<24} SVE {:.4} -> {:.4}   LSVR {:.5} -> {:.5}",
            s.role,
            super::spectrum::shorten(&s.set, 24),
            s.before.sve,
            s.after.sve,
            s.before.lsvr_ratio,
            s.after.lsvr_ratio
        );
    }
    if let Some(best) = r.best_epoch {
        println!("  early stopping kept epoch {best} of {} run", r.epochs_run);
    }
    if !r.selection.is_empty() {
        println!(
            "  selected w_mse {} w_cov {} w_svd {} hidden_mult {} from {} grid points",
            r.config.w_mse,
            r.config.w_cov,
            r.config.w_svd,
            r.config.hidden_mult,
            r.selection.len()
        );
    }
}

pub fn run(args: Args) -> Result<()> {
    let config = build_config(&args)?;
    let train = load_feature_set(&args.train)?;
    let test = load_feature_set(&args.test)?;
    let ood: Vec<(String, FeatureSet)> = args
        .ood
        .iter()
        .map(|(name, spec)| load_feature_set(spec).map(|s| (name.clone(), s)))
        .collect::<Result<_>>()?;
    let device = device(args.backend)?;
    let start = std::time::Instant::now();
    let mut bar = EpochBar::new(config.method.name(), config.epochs);
    let outcome = tune(&train, &test, &ood, &config, &device.device, &mut bar);
    bar.finish();
    let mut outcome = outcome?;
    outcome.report.seconds = start.elapsed().as_secs_f64();
    outcome.report.backend = device.description.clone();
    print_report(&outcome.report);
    if let Some(path) = &args.report {
        write_json(path, &outcome.report)?;
        eprintln!("wrote {}", path.display());
    }
    if let Some(path) = &args.save {
        let bytes = head_to_bytes(&outcome.head, &outcome.head_config, &outcome.report.config)?;
        write_atomic(path, &bytes)?;
        eprintln!("wrote {}", path.display());
    }
    Ok(())
}
