//! `nml pretrain`: supervised pre-training of a ResNet or ViT on images whose labels carry controlled
//! noise, checkpointed every epoch.

use std::path::PathBuf;

use nml_core::device::{BackendChoice, select_many};
use nml_core::models::Precision;
use nml_core::noise::LabelNoise;
use nml_core::pretrain::{EpochRecord, ModelShape, Objective, OptimizerChoice, PretrainConfig, checkpoint, pretrain, pretrain_contrastive, pretrain_multi_device, unfinished_multi_device_epochs};
use nml_core::tune::TrainObserver;
use nml_core::{NmlError, Result};

use super::{device, merge_toml, write_json};
use crate::progress::EpochBar;
use crate::starter::load_images;

#[derive(clap::Args)]
pub struct Args {
    /// Training images: `starter:mnist` (built in) or `IMAGES.idx[.gz],LABELS.idx[.gz]`, with an
    /// optional `@A..B` range.
    #[arg(long, default_value = "starter:mnist@0..8000")]
    data: String,
    /// Run directory: checkpoint (`model.safetensors`), optimiser state and `pretrain.json`.
    #[arg(long)]
    out: PathBuf,
    /// Share of training labels to corrupt.
    #[arg(long, default_value_t = 0.0)]
    noise_ratio: f64,
    /// symmetric (to another class), symmetric-all (the authors' variant) or pair-flip.
    #[arg(long, default_value = "symmetric")]
    noise_kind: String,
    /// A TOML file with any of: model, image_size, epochs, batch_size, optimizer, augment,
    /// seed (flags given explicitly win), e.g.
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
    #[arg(long)]
    objective: Option<String>,
    /// With --objective contrastive: a text file with one caption per training image.
    #[arg(long)]
    captions: Option<PathBuf>,
    /// resnet, or vit (7-pixel patches, 64 wide, 4 blocks; other sizes through --config).
    #[arg(long)]
    model: Option<String>,
    /// Channels of each ResNet stage, e.g. 16,32,64 (the last is the feature dimension).
    #[arg(long, value_delimiter = ',')]
    widths: Option<Vec<usize>>,
    #[arg(long)]
    image_size: Option<usize>,
    #[arg(long)]
    seed: Option<u64>,
    /// f32, or mixed precision: bf16 or f16 compute on f32 weights (norms and the loss in f32),
    /// where the backend has that arithmetic.
    #[arg(long)]
    precision: Option<Precision>,
    /// Continue the run in --out from its last checkpoint.
    #[arg(long)]
    resume: bool,
    #[arg(long, default_value = "auto")]
    backend: BackendChoice,
    /// Train data-parallel on several devices through burn-train (instead of --backend), e.g.
    /// `gpu:0,gpu:1`, or `cpu,cpu` / `wgpu-cpu,wgpu-cpu` on a machine without GPUs. Entries:
    /// cpu, wgpu, wgpu-cpu, gpu:N, igpu:N.
    #[arg(long)]
    devices: Option<String>,
}

pub fn noise(kind: &str, ratio: f64) -> Result<Option<LabelNoise>> {
    if ratio == 0.0 {
        return Ok(None);
    }
    Ok(Some(match kind {
        "symmetric" => LabelNoise::Symmetric { ratio },
        "symmetric-all" => LabelNoise::SymmetricAll { ratio },
        "pair-flip" => LabelNoise::PairFlip { ratio, mapping: None },
        other => return Err(NmlError::Invalid(format!("unknown noise kind {other:?} (symmetric, symmetric-all, pair-flip)"))),
    }))
}

fn config(args: &Args) -> Result<PretrainConfig> {
    let mut config = match &args.config {
        Some(path) => merge_toml(PretrainConfig::default(), path, &[])?,
        None => PretrainConfig::default(),
    };
    if let Some(v) = args.epochs { config.epochs = v; }
    if let Some(v) = args.batch_size { config.batch_size = v; }
    match args.model.as_deref() {
        None => {}
        Some("resnet") if matches!(config.model, ModelShape::Resnet { .. }) => {}
        Some("resnet") => config.model = PretrainConfig::default().model,
        Some("vit") if matches!(config.model, ModelShape::Vit { .. }) => {}
        Some("vit") => config.model = ModelShape::small_vit(),
        Some(other) => return Err(NmlError::Invalid(format!("unknown model {other:?} (resnet, vit)"))),
    }
    if let Some(v) = &args.widths {
        match &mut config.model {
            ModelShape::Resnet { widths, .. } => *widths = v.clone(),
            ModelShape::Vit { .. } => return Err(NmlError::Invalid("--widths sets a ResNet's stages; a ViT's width is `dim` in --config".into())),
        }
    }
    if let Some(v) = args.image_size { config.image_size = v; }
    if let Some(v) = args.seed { config.seed = v; }
    if let Some(v) = args.precision { config.precision = v; }
    if let Some(lr) = args.lr {
        match &mut config.optimizer {
            OptimizerChoice::Adamw { lr: l, .. } | OptimizerChoice::Sgd { lr: l, .. } => *l = lr,
        }
    }
    match args.objective.as_deref() {
        None => {}
        Some("supervised") => config.objective = Objective::Supervised,
        Some("contrastive") if matches!(config.objective, Objective::Contrastive { .. }) => {}
        Some("contrastive") => config.objective = Objective::digit_captions(0.0),
        Some(other) => return Err(NmlError::Invalid(format!("unknown objective {other:?} (supervised, contrastive)"))),
    }
    if let Objective::Contrastive { caption_noise, .. } = &mut config.objective {
        *caption_noise = args.noise_ratio;
        config.noise = None;
    } else if args.noise_ratio != 0.0 || config.noise.is_none() {
        config.noise = noise(&args.noise_kind, args.noise_ratio)?;
    }
    config.validate()?;
    Ok(config)
}

/// Shows epochs of a pre-training run with the latest loss and (noisy-label) accuracy.
pub struct PretrainBar(pub EpochBar);

impl TrainObserver<EpochRecord> for PretrainBar {
    fn on_epoch(&mut self, r: &EpochRecord) {
        self.0.show(r.epoch, &format!("loss {:.4} acc {:.1}%", r.loss, r.train_accuracy * 100.0));
    }
}

pub fn run(args: Args) -> Result<()> {
    let config = config(&args)?;
    let devices = match &args.devices {
        Some(list) => select_many(list)?,
        None => vec![device(args.backend)?],
    };
    let device = devices[0].clone();
    let description = devices.iter().map(|d| d.description.as_str()).collect::<Vec<_>>().join(" + ");
    if devices.len() > 1 {
        eprintln!("devices: {description} (burn-train multi-device, optimiser on the first)");
    }
    let images = load_images(&args.data)?;
    if let Some((_, meta)) = checkpoint::find(&args.out)? {
        if !args.resume && meta.epochs_done < meta.config.epochs {
            return Err(NmlError::Invalid(format!(
                "{} holds an unfinished run ({} of {} epochs); pass --resume to continue it",
                args.out.display(),
                meta.epochs_done,
                meta.config.epochs
            )));
        }
    }
    if let Some(done) = unfinished_multi_device_epochs(&args.out) {
        if !args.resume {
            return Err(NmlError::Invalid(format!(
                "{} holds an unfinished multi-device run ({done} of {} epochs); pass --resume to continue it",
                args.out.display(),
                config.epochs
            )));
        }
    }
    let mut bar = PretrainBar(EpochBar::new("pretrain", config.epochs));
    let run = match &args.captions {
        Some(_) if devices.len() > 1 => return Err(NmlError::Invalid("--captions is not supported with several --devices yet; captions come from the class names there".into())),
        Some(path) => {
            let name = path.display().to_string();
            let text = String::from_utf8(nml_core::io::read_file(path)?).map_err(|_| NmlError::format(&name, "not UTF-8 text"))?;
            let captions: Vec<String> = text.lines().map(str::to_string).collect();
            if !matches!(config.objective, Objective::Contrastive { .. }) {
                return Err(NmlError::Invalid("--captions needs --objective contrastive".into()));
            }
            if captions.len() != images.n {
                return Err(NmlError::format(&name, format!("has {} captions; {} holds {} images", captions.len(), args.data, images.n)));
            }
            pretrain_contrastive(&images, &captions, &config, Some(&args.out), &device.device, &mut bar)?
        }
        None if devices.len() > 1 => {
            let list: Vec<_> = devices.iter().map(|d| d.device.clone()).collect();
            pretrain_multi_device(&images, &config, &args.out, &list, &mut bar)?
        }
        None => pretrain(&images, &config, Some(&args.out), &device.device, &mut bar)?,
    };
    bar.0.finish();
    for r in &run.history {
        println!("epoch {:>3}  loss {:.4}  train acc (against the noisy targets) {:.2}%  {:.1} s", r.epoch, r.loss, r.train_accuracy * 100.0, r.seconds);
    }
    let summary = serde_json::json!({
        "data": args.data,
        "n": images.n,
        "noise_rate": run.noise_rate,
        "config": run.config,
        "history": run.history,
        "backend": description,
    });
    write_json(&args.out.join("pretrain.json"), &summary)?;
    println!(
        "{}: {} images, realised noise {:.1}%, {} epochs trained now -> {}",
        args.data,
        images.n,
        run.noise_rate * 100.0,
        run.epochs_trained,
        args.out.join(checkpoint::MODEL_FILE).display()
    );
    Ok(())
}
