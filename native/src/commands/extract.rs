//! `nml extract`: features of a pre-trained encoder for any image set, as a feature set file.

use std::path::PathBuf;

use nml_core::{EncoderFile, Result};

use crate::args::BackendArg;
use crate::sets::{read_images, write_features};

#[derive(clap::Args)]
pub struct Args {
    /// A model written by `nml pretrain` (its `model.safetensors`), or a fine-tuned one exported
    /// by `nml tune --export`.
    #[arg(long)]
    checkpoint: PathBuf,
    /// Images: `starter:NAME`, `IMAGES.idx[.gz],LABELS.idx[.gz]`, `IMAGES.npy,LABELS.npy`,
    /// `cifar10:PATH`, `cifar100:PATH` or a folder of class subfolders, optional `@A..B` range
    /// and `|...` transforms.
    #[arg(long)]
    data: String,
    /// Evaluation transform, first half: the shorter side of every image to S pixels
    /// (bilinear, aspect kept).
    #[arg(long, value_name = "S")]
    resize: Option<usize>,
    /// Evaluation transform, second half: the central C x C crop. The images are then
    /// resampled to the model's input size (nothing to do when C is that size).
    #[arg(long, value_name = "C")]
    crop: Option<usize>,
    /// Where to write: `set.safetensors` or `features.npy,labels.npy`.
    #[arg(long)]
    out: String,
    /// Domain name stored in the metadata (default: the data spec).
    #[arg(long)]
    domain: Option<String>,
    #[command(flatten)]
    backend: BackendArg,
}

pub fn run(args: Args) -> Result<()> {
    let device = args.backend.device()?;
    let saved = EncoderFile::read(&args.checkpoint, &device.device)?;
    let mut images = read_images(&args.data)?;
    if let Some(side) = args.resize {
        images = images.resized_shorter_side(side);
    }
    if let Some(size) = args.crop {
        images = images.center_cropped(size)?;
    }
    let set = saved
        .encoder
        .extract(&images, saved.image_size, &args.data, &device.device)?
        .with_domain(Some(args.domain.clone().unwrap_or_else(|| args.data.clone())));
    write_features(&set, &args.out)?;
    println!(
        "{}: {} images -> {} x {} features -> {}",
        args.data,
        images.n(),
        set.n(),
        set.d(),
        args.out
    );
    Ok(())
}
