//! `nml pretrain`: pre-training of a ResNet or ViT on images whose labels (or captions) carry
//! controlled noise, checkpointed every epoch.

use std::path::PathBuf;

use nml_core::data::LoaderConfig;
use nml_core::models::{ComputePrecision, StandardModel};
use nml_core::pretrain::{
    ModelShape, Objective, PretrainConfig, pretrain, pretrain_contrastive, pretrain_data_parallel,
    pretrain_streamed, saved_run,
};
use nml_core::study::ObjectiveKind;
use nml_core::train::RunDir;
use nml_core::{NmlError, NoiseKind, OptimizerConfig, Result};

use super::{merge_toml, write_json};
use crate::args::{DevicesArg, describe};
use crate::progress::EpochBar;
use crate::sets::{read_images, report_skipped};
use nml_core::ImageSource;

#[derive(clap::Args)]
pub struct Args {
    /// Training images: `starter:mnist` (built in), `IMAGES.idx[.gz],LABELS.idx[.gz]`,
    /// `IMAGES.npy,LABELS.npy` or a folder of class subfolders, with an optional `@A..B` range.
    #[arg(long, default_value = "starter:mnist@0..8000")]
    data: String,
    /// Run directory: checkpoint (`model.safetensors`), optimiser state and `pretrain.json`.
    #[arg(long)]
    out: PathBuf,
    /// Share of training labels to corrupt.
    #[arg(long, default_value_t = 0.0)]
    noise_ratio: f64,
    /// symmetric (to another class), symmetric-all (the authors' variant) or pair-flip.
    #[arg(long, value_enum, default_value_t = NoiseKind::Symmetric)]
    noise_kind: NoiseKind,
    /// A TOML file with any of: model, objective, image_size, epochs, batch_size, optimizer,
    /// noise, augment, seed, precision (flags given explicitly win), e.g.
    /// `model = { kind = "vit", patch_size = 7, dim = 64, depth = 4, heads = 4, mlp_ratio = 4 }`.
    #[arg(long)]
    config: Option<PathBuf>,
    #[arg(long)]
    epochs: Option<usize>,
    #[arg(long)]
    batch_size: Option<usize>,
    #[arg(long)]
    lr: Option<f64>,
    /// supervised (cross-entropy on noisy labels), or contrastive (CLIP-style on captions built
    /// from the digit names, or from --captions; --noise-ratio then swaps captions between pairs).
    #[arg(long, value_enum)]
    objective: Option<ObjectiveKind>,
    /// With --objective contrastive: a text file with one caption per training image.
    #[arg(long)]
    captions: Option<PathBuf>,
    /// resnet (nml's small one) or vit (7-pixel patches, 64 wide, 4 blocks; other sizes through
    /// --config) for small images; resnet18, resnet34, resnet50 or resnet101 (torchvision's, in
    /// its key layout), efficientnet-lite0, or vit-ti16, vit-s16 or vit-b16 (timm's) at real
    /// size.
    #[arg(long, value_enum)]
    model: Option<ModelKind>,
    /// Channels of each ResNet stage, e.g. 16,32,64 (the last is the feature dimension).
    #[arg(long, value_delimiter = ',')]
    widths: Option<Vec<usize>>,
    #[arg(long)]
    image_size: Option<usize>,
    #[arg(long)]
    seed: Option<u64>,
    /// f32, or mixed precision: bf16 or f16 compute on f32 weights (norms and the loss in f32),
    /// where the backend has that arithmetic.
    #[arg(long, value_enum)]
    precision: Option<ComputePrecision>,
    /// Continue the run in --out from its last checkpoint.
    #[arg(long)]
    resume: bool,
    /// Read a folder --data file by file while training (a pool of threads decodes and
    /// augments the next batches) instead of loading it whole: for sets larger than memory.
    #[arg(long)]
    stream: bool,
    /// With --stream: threads decoding images (default: one per core).
    #[arg(long, requires = "stream")]
    loader_workers: Option<usize>,
    /// With --stream: batches prepared ahead of the training loop.
    #[arg(long, requires = "stream", default_value_t = 4)]
    prefetch: usize,
    #[command(flatten)]
    devices: DevicesArg,
}

/// The encoders `--model` names: nml's small ones, or any standard architecture by its name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ModelKind {
    Resnet,
    Vit,
    Standard(StandardModel),
}

impl clap::ValueEnum for ModelKind {
    fn value_variants<'a>() -> &'a [Self] {
        static ALL: std::sync::OnceLock<Vec<ModelKind>> = std::sync::OnceLock::new();
        ALL.get_or_init(|| {
            let standard = <StandardModel as clap::ValueEnum>::value_variants()
                .iter()
                .copied()
                .map(Self::Standard);
            [Self::Resnet, Self::Vit].into_iter().chain(standard).collect()
        })
    }

    fn to_possible_value(&self) -> Option<clap::builder::PossibleValue> {
        match self {
            Self::Resnet => Some(clap::builder::PossibleValue::new("resnet")),
            Self::Vit => Some(clap::builder::PossibleValue::new("vit")),
            Self::Standard(model) => clap::ValueEnum::to_possible_value(model),
        }
    }
}

fn config(args: &Args) -> Result<PretrainConfig> {
    let mut config = match &args.config {
        Some(path) => merge_toml(PretrainConfig::default(), path, &[])?,
        None => PretrainConfig::default(),
    };
    if let Some(v) = args.epochs {
        config.epochs = v;
    }
    if let Some(v) = args.batch_size {
        config.batch_size = v;
    }
    match args.model {
        None => {}
        Some(ModelKind::Resnet) if matches!(config.model, ModelShape::Resnet { .. }) => {}
        Some(ModelKind::Resnet) => config.model = PretrainConfig::default().model,
        Some(ModelKind::Vit) if matches!(config.model, ModelShape::Vit { .. }) => {}
        Some(ModelKind::Vit) => config.model = ModelShape::small_vit(),
        Some(ModelKind::Standard(model)) => config.model = ModelShape::Standard { model },
    }
    if let Some(v) = &args.widths {
        match &mut config.model {
            ModelShape::Resnet { widths, .. } => *widths = v.clone(),
            ModelShape::Vit { .. } | ModelShape::Standard { .. } => {
                return Err(NmlError::Invalid(
                    "--widths sets the stages of nml's small ResNet (--model resnet)".into(),
                ));
            }
        }
    }
    if let Some(v) = args.image_size {
        config.image_size = v;
    }
    if let Some(v) = args.seed {
        config.seed = v;
    }
    if let Some(v) = args.precision {
        config.precision = v;
    }
    if let Some(lr) = args.lr {
        match &mut config.optimizer {
            OptimizerConfig::Adamw { lr: l, .. } | OptimizerConfig::Sgd { lr: l, .. } => *l = lr,
        }
    }
    match args.objective {
        None => {}
        Some(ObjectiveKind::Supervised) => config.objective = Objective::Supervised,
        Some(ObjectiveKind::Contrastive)
            if matches!(config.objective, Objective::Contrastive { .. }) => {}
        Some(ObjectiveKind::Contrastive) => {
            config.objective = Objective::digit_captions(0.0);
            // The built-in captions' space is sized for the small towers; a standard tower
            // gets CLIP's width for it.
            if let (ModelShape::Standard { model }, Objective::Contrastive { embed_dim, .. }) =
                (&config.model, &mut config.objective)
            {
                *embed_dim = model.clip_embed_dim();
            }
        }
    }
    if let Objective::Contrastive { caption_noise, .. } = &mut config.objective {
        *caption_noise = args.noise_ratio;
        config.noise = None;
    } else if args.noise_ratio != 0.0 || config.noise.is_none() {
        config.noise = args.noise_kind.at(args.noise_ratio);
    }
    config.validate()?;
    Ok(config)
}

pub fn run(args: Args) -> Result<()> {
    let config = config(&args)?;
    let devices = args.devices.devices()?;
    let device = devices[0].clone();
    if let Some(meta) = saved_run(&args.out)?
        && !args.resume
        && meta.epochs_done < meta.config.epochs
    {
        return Err(NmlError::Invalid(format!(
            "{} holds an unfinished run ({} of {} epochs); pass --resume to continue it",
            args.out.display(),
            meta.epochs_done,
            meta.config.epochs
        )));
    }
    let mut bar = EpochBar::new("pretrain", config.epochs);
    if args.stream {
        if args.captions.is_some() {
            return Err(NmlError::Invalid(
                "--captions pairs captions with images held in memory; leave out --stream".into(),
            ));
        }
        let images = args.data.parse::<ImageSource>()?.streamed()?;
        let mut loader = LoaderConfig { prefetch: args.prefetch, ..LoaderConfig::default() };
        if let Some(workers) = args.loader_workers {
            loader.workers = workers;
        }
        let list: Vec<_> = devices.iter().map(|d| d.device.clone()).collect();
        let run = pretrain_streamed(&images, loader, &config, Some(&args.out), &list, &mut bar);
        bar.finish();
        report_skipped(images.name(), &images.skipped());
        return finish(&args, run?, images.n(), &devices);
    }
    let images = read_images(&args.data)?;
    let run = match &args.captions {
        Some(path) => {
            let name = path.display().to_string();
            let text = String::from_utf8(nml_core::io::read_file(path)?)
                .map_err(|_| NmlError::format(&name, "not UTF-8 text"))?;
            let captions: Vec<String> = text.lines().map(str::to_string).collect();
            if !matches!(config.objective, Objective::Contrastive { .. }) {
                return Err(NmlError::Invalid("--captions needs --objective contrastive".into()));
            }
            if captions.len() != images.n() {
                return Err(NmlError::format(
                    &name,
                    format!(
                        "has {} captions; {} holds {} images",
                        captions.len(),
                        args.data,
                        images.n()
                    ),
                ));
            }
            if devices.len() > 1 {
                return Err(NmlError::Invalid(
                    "--captions trains on one device; leave out --devices".into(),
                ));
            }
            pretrain_contrastive(
                &images,
                &captions,
                &config,
                Some(&args.out),
                &device.device,
                &mut bar,
            )
        }
        None if devices.len() > 1 => {
            let list: Vec<_> = devices.iter().map(|d| d.device.clone()).collect();
            pretrain_data_parallel(&images, &config, Some(&args.out), &list, &mut bar)
        }
        None => pretrain(&images, &config, Some(&args.out), &device.device, &mut bar),
    };
    bar.finish();
    finish(&args, run?, images.n(), &devices)
}

/// Prints the run's epochs and writes its summary beside the checkpoint.
fn finish(
    args: &Args,
    run: nml_core::pretrain::Pretrained,
    n: usize,
    devices: &[nml_core::device::ComputeDevice],
) -> Result<()> {
    for r in &run.history {
        println!(
            "epoch {:>3}  loss {:.4}  train acc (against the noisy targets) {:.2}%  {:.1} s",
            r.epoch,
            r.loss,
            r.train_accuracy * 100.0,
            r.seconds
        );
    }
    let summary = serde_json::json!({
        "data": args.data,
        "n": n,
        "noise_rate": run.noise_rate,
        "config": run.config,
        "history": run.history,
        "backend": describe(devices),
    });
    write_json(&args.out.join("pretrain.json"), &summary)?;
    println!(
        "{}: {} images, realised noise {:.1}%, {} epochs trained now -> {}",
        args.data,
        n,
        run.noise_rate * 100.0,
        run.epochs_trained,
        args.out.join(RunDir::MODEL_FILE).display()
    );
    Ok(())
}
