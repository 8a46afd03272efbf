//! `nml extract`: features of a pre-trained encoder for any image set, as a feature set file.

use std::path::PathBuf;

use nml_core::data::save_feature_set;
use nml_core::device::BackendChoice;
use nml_core::pretrain::{extract, load_model};
use nml_core::Result;

use super::device;
use crate::starter::load_images;

#[derive(clap::Args)]
pub struct Args {
    /// A model written by `nml pretrain` (its `model.safetensors`).
    #[arg(long)]
    checkpoint: PathBuf,
    /// Images: `starter:NAME` or `IMAGES.idx[.gz],LABELS.idx[.gz]`, optional `@A..B` range.
    #[arg(long)]
    data: String,
    /// Where to write: `set.safetensors` or `features.npy,labels.npy`.
    #[arg(long)]
    out: String,
    /// Domain name stored in the metadata (default: the data spec).
    #[arg(long)]
    domain: Option<String>,
    #[arg(long, default_value = "auto")]
    backend: BackendChoice,
}

pub fn run(args: Args) -> Result<()> {
    let device = device(args.backend)?;
    let (model, meta) = load_model(&args.checkpoint, &device.device)?;
    let images = load_images(&args.data)?;
    let set = extract(&model, &images, meta.config.image_size, &args.data, &device.device)?
        .with_domain(Some(args.domain.clone().unwrap_or_else(|| args.data.clone())));
    save_feature_set(&set, &args.out)?;
    println!("{}: {} images -> {} x {} features -> {}", args.data, images.n, set.n, set.d, args.out);
    Ok(())
}
