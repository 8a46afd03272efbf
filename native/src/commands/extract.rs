//! `nml extract`: features of a pre-trained encoder for any image set, as a feature set file.

use std::path::{Path, PathBuf};

use nml_core::models::{ExtractRequest, StandardModel};
use nml_core::{EncoderFile, NmlError, Result};

use crate::args::BackendArg;
use crate::progress::StepBar;
use crate::sets::{read_images, write_features};

#[derive(clap::Args)]
pub struct Args {
    /// A model written by `nml pretrain` (its `model.safetensors`), or a fine-tuned one exported
    /// by `nml tune --export`.
    #[arg(long, required_unless_present = "weights", conflicts_with = "weights")]
    checkpoint: Option<PathBuf>,
    /// A standard architecture, whose PyTorch checkpoint --weights gives.
    #[arg(long, value_enum, requires = "weights")]
    model: Option<StandardModel>,
    /// A PyTorch checkpoint of --model (`.pth`, `.pt`, `.bin` or `.safetensors`, in its
    /// library's key layout, e.g. torchvision's). Images are fed as its ImageNet training fed
    /// them: 224 pixels (see --image-size), normalised by ImageNet's statistics (the ResNets) or
    /// as (x - 127) / 128 (EfficientNet-Lite).
    #[arg(long, requires = "model")]
    weights: Option<PathBuf>,
    /// With --weights: the input size, if not 224.
    #[arg(long, requires = "weights")]
    image_size: Option<usize>,
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
    /// Also write the classifier's outputs, as a `logits` tensor [N, classes] beside the
    /// features (safetensors output only).
    #[arg(long)]
    logits: bool,
    /// Domain name stored in the metadata (default: the data spec).
    #[arg(long)]
    domain: Option<String>,
    #[command(flatten)]
    backend: BackendArg,
}

pub fn run(args: Args) -> Result<()> {
    let device = args.backend.device()?;
    let (encoder, input) = match (&args.checkpoint, args.model, &args.weights) {
        (Some(checkpoint), _, _) => {
            let saved = EncoderFile::read(checkpoint, &device.device)?;
            (saved.encoder, saved.input)
        }
        (None, Some(model), Some(weights)) => {
            let mut input = model.imagenet_input();
            input.image_size = args.image_size.unwrap_or(input.image_size);
            (model.load_pytorch(weights, &device.device)?, input)
        }
        _ => {
            return Err(NmlError::Invalid("give --checkpoint, or --model with --weights".into()));
        }
    };
    // As the source's own transforms, so a folder's photos are cropped one by one as read.
    let mut spec = args.data.clone();
    if let Some(side) = args.resize {
        spec.push_str(&format!("|resize={side}"));
    }
    if let Some(size) = args.crop {
        spec.push_str(&format!("|crop={size}"));
    }
    let images = read_images(&spec)?;
    if args.logits && args.out.contains(',') {
        return Err(NmlError::Invalid(
            "--logits needs a .safetensors --out (the logits are a tensor beside the features)"
                .into(),
        ));
    }
    let bar = StepBar::new("extract", images.n());
    let mut progress = |done: usize, _total: usize| bar.set_position(done);
    let request = ExtractRequest { logits: args.logits, progress: &mut progress };
    let extracted = encoder.extract_with(&images, &input, &args.data, request, &device.device)?;
    bar.finish();
    let set = extracted
        .features
        .with_domain(Some(args.domain.clone().unwrap_or_else(|| args.data.clone())));
    match &extracted.logits {
        Some(logits) => {
            set.write_with_logits(Path::new(&args.out), logits, encoder.num_classes())?
        }
        None => write_features(&set, &args.out)?,
    }
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
