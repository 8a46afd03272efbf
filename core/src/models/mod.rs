//! Image encoders pre-trained on noisy labels (nml's small ResNet and ViT for the quick study;
//! torchvision's ResNets, EfficientNet-Lite0 and timm's ViTs at real size), the CLIP-style
//! model around them, a BERT-family sentence encoder, the host-seeded initialisers they share, their weights in PyTorch's key
//! layout, and the features they give downstream tasks.

mod bert;
mod clip;
mod efficientnet_lite;
mod init;
mod input;
mod precision;
mod pytorch_layout;
mod resnet;
mod sentence_encoder;
mod standard;
mod text_classifier;
mod timm_vit;
mod torchvision_resnet;
mod vit;

pub use bert::{
    Bert, BertAttention, BertConfig, BertEmbeddings, BertEncoder, BertIntermediate, BertLayer,
    BertResidual, BertSelfAttention, HF_BERT,
};
pub use clip::{ContrastiveModel, TextTower};
pub use efficientnet_lite::{EfficientNetLite, EfficientNetLiteConfig, MbConvBlock};
pub use init::{HostInit, stable_param_ids};
pub use input::InputTransform;
pub use precision::{ComputePrecision, compute_copy, norm_in_f32, to_dtype};
pub use pytorch_layout::{
    EFFICIENTNET_LITE, PytorchLayout, TIMM_VIT, TORCHVISION_RESNET, checkpoint_shapes,
    load_pytorch_safetensors, load_pytorch_weights, pytorch_safetensors,
};
pub use resnet::{BasicBlock, ResNet, ResNetConfig};
pub use sentence_encoder::SentenceEncoder;
pub use standard::StandardModel;
pub use text_classifier::TextClassifier;
pub use timm_vit::{PatchEmbed, TimmAttention, TimmBlock, TimmVit, TimmVitConfig};
pub use torchvision_resnet::{
    Downsample, TorchvisionBlock, TorchvisionResNet, TorchvisionResNetConfig,
};
pub use vit::{Vit, VitBlock, VitConfig, VitMlp};

use std::path::Path;

use burn::module::Module;
use burn::nn::Linear;
use burn::tensor::{DType, Device, Tensor, TensorData};

use crate::data::{FeatureSet, ImageSet, Normalize, image_batch};
use crate::error::{NmlError, Result};
use crate::readback::{blocking, floats};

fn no_pytorch_counterpart() -> NmlError {
    NmlError::Invalid(
        "nml's small ResNet and ViT have no PyTorch counterpart; PyTorch weights go in and out \
         of the standard architectures (resnet18, resnet34, resnet50, resnet101, \
         efficientnet-lite0, vit-ti16, vit-s16, vit-b16)"
            .into(),
    )
}

/// The mean of each channel over the image: a convolutional encoder's pooled features.
///
/// # Shapes
/// `[B, C, H, W]` -> `[B, C]`.
fn global_average_pool(h: Tensor<4>) -> Tensor<2> {
    let [b, c, _, _] = h.dims();
    h.mean_dim(3).mean_dim(2).reshape([b, c])
}

/// Images per forward pass when extracting features.
const EXTRACT_BATCH: usize = 256;

/// The images at `indices` as one `[B, C, H, W]` tensor on `device`, scaled to [0, 1] and
/// normalised by `normalize`, not augmented (see [`image_batch`]).
pub fn image_tensor(
    images: &ImageSet,
    indices: &[usize],
    normalize: Option<&Normalize>,
    device: &Device,
) -> Result<Tensor<4>> {
    let pixels = image_batch(images, indices, normalize, None)?;
    let shape = [indices.len(), images.channels(), images.height(), images.width()];
    Ok(Tensor::from_data(TensorData::new(pixels, shape), device))
}

/// What [`Encoder::extract_with`] is asked for besides the features.
pub struct ExtractRequest<'a> {
    /// Also the classifier's outputs.
    pub logits: bool,
    /// Called after every batch with the images done and the total.
    pub progress: &'a mut dyn FnMut(usize, usize),
}

/// Features of an image set, and the classifier's logits (`[N, num_classes]` row-major) when
/// they were asked for.
pub struct Extracted {
    pub features: FeatureSet,
    pub logits: Option<Vec<f32>>,
}

/// Any of the encoders, so training, checkpoints and extraction take one type.
// A process holds a handful of encoders, so their size does not matter; boxing the large ones
// is not open to us, as Burn's `Module` is not implemented for `Box`.
#[allow(clippy::large_enum_variant)]
#[derive(Module, Debug)]
pub enum Encoder {
    ResNet(ResNet),
    Vit(Vit),
    TorchvisionResNet(TorchvisionResNet),
    EfficientNetLite(EfficientNetLite),
    TimmVit(TimmVit),
}

impl Encoder {
    /// Features of a batch of images, `[B, C, H, W]` -> `[B, D]`, in f32 whatever precision
    /// the encoder's weights are in (see [`compute_copy`]).
    pub fn embed(&self, images: Tensor<4>) -> Tensor<2> {
        let images = to_dtype(images, self.compute_dtype());
        let features = match self {
            Self::ResNet(m) => m.embed(images),
            Self::Vit(m) => m.embed(images),
            Self::TorchvisionResNet(m) => m.embed(images),
            Self::EfficientNetLite(m) => m.embed(images),
            Self::TimmVit(m) => m.embed(images),
        };
        to_dtype(features, DType::F32)
    }

    /// Class logits, in f32.
    pub fn forward(&self, images: Tensor<4>) -> Tensor<2> {
        self.classify(self.embed(images))
    }

    /// The classifier's logits of features [`Encoder::embed`] gave, in f32.
    fn classify(&self, features: Tensor<2>) -> Tensor<2> {
        let classifier = self.classifier();
        let features = to_dtype(features, classifier.weight.val().dtype());
        to_dtype(classifier.forward(features), DType::F32)
    }

    /// Width of the features [`Encoder::embed`] gives.
    pub fn feature_dim(&self) -> usize {
        self.classifier().weight.shape().dims::<2>()[0]
    }

    /// Channels of the images the encoder takes: 1 (grey) or 3 (RGB).
    pub fn in_channels(&self) -> usize {
        let weight = match self {
            Self::ResNet(m) => m.stem.weight.shape(),
            Self::Vit(m) => m.patch_embedding.weight.shape(),
            Self::TorchvisionResNet(m) => m.conv1.weight.shape(),
            Self::EfficientNetLite(m) => m.conv_stem.weight.shape(),
            Self::TimmVit(m) => m.patch_embed.proj.weight.shape(),
        };
        weight.dims::<4>()[1]
    }

    /// `images` as this encoder takes them: resampled to `image_size` square and with its
    /// channels (grey repeated over three for a colour encoder, colour made grey for a grey one;
    /// see [`ImageSet::with_channels`]).
    pub fn input_images(&self, images: &ImageSet, image_size: usize) -> Result<ImageSet> {
        // Each step copies the whole set, so the usual case (channels already right) skips one.
        if images.channels() == self.in_channels() {
            return Ok(images.resized(image_size, image_size));
        }
        images.with_channels(self.in_channels()).map(|set| set.resized(image_size, image_size))
    }

    /// The encoder's features of every image (fed to it as `input` says), with the images'
    /// labels and class names: what downstream heads are tuned on. `name` names the set.
    pub fn extract(
        &self,
        images: &ImageSet,
        input: &InputTransform,
        name: &str,
        device: &Device,
    ) -> Result<FeatureSet> {
        let request = ExtractRequest { logits: false, progress: &mut |_, _| {} };
        Ok(self.extract_with(images, input, name, request, device)?.features)
    }

    /// [`Encoder::extract`], with the classifier's outputs too if asked for, reporting
    /// progress after every batch.
    pub fn extract_with(
        &self,
        images: &ImageSet,
        input: &InputTransform,
        name: &str,
        request: ExtractRequest<'_>,
        device: &Device,
    ) -> Result<Extracted> {
        let set = self.input_images(images, input.image_size)?;
        let normalize = input.normalize.as_ref();
        let mut features = Vec::with_capacity(set.n() * self.feature_dim());
        let mut logits = Vec::new();
        let all: Vec<usize> = (0..set.n()).collect();
        for chunk in all.chunks(EXTRACT_BATCH) {
            let batch = image_tensor(&set, chunk, normalize, device)?;
            let embedded = self.embed(batch);
            if request.logits {
                logits.extend(blocking(floats(self.classify(embedded.clone())))?);
            }
            features.extend(blocking(floats(embedded))?);
            (request.progress)(features.len() / self.feature_dim(), set.n());
        }
        let labels = set.labels().iter().map(|&l| i64::from(l)).collect();
        let features =
            FeatureSet::new(name, features, self.feature_dim(), labels, Some(set.num_classes()))?
                .with_class_names(set.class_names().to_vec())?;
        Ok(Extracted { features, logits: request.logits.then_some(logits) })
    }

    /// Classes of the encoder's classifier.
    pub fn num_classes(&self) -> usize {
        self.classifier().weight.shape().dims::<2>()[1]
    }

    /// The key layout of this architecture in the PyTorch library it comes from; `None` for
    /// nml's own small encoders, which have no PyTorch counterpart.
    pub fn pytorch_layout(&self) -> Option<&'static PytorchLayout> {
        match self {
            Self::TorchvisionResNet(_) => Some(&TORCHVISION_RESNET),
            Self::EfficientNetLite(_) => Some(&EFFICIENTNET_LITE),
            Self::TimmVit(_) => Some(&TIMM_VIT),
            Self::ResNet(_) | Self::Vit(_) => None,
        }
    }

    /// Loads a PyTorch checkpoint of this architecture (`.pth`, `.pt`, `.bin` or
    /// `.safetensors`, in its library's key layout; see [`load_pytorch_weights`]).
    pub fn load_pytorch(&mut self, path: &Path) -> Result<()> {
        match self {
            Self::TorchvisionResNet(m) => load_pytorch_weights(m, path, &TORCHVISION_RESNET),
            Self::EfficientNetLite(m) => load_pytorch_weights(m, path, &EFFICIENTNET_LITE),
            Self::TimmVit(m) => load_pytorch_weights(m, path, &TIMM_VIT),
            Self::ResNet(_) | Self::Vit(_) => Err(no_pytorch_counterpart()),
        }
    }

    /// The weights as a safetensors file in the key layout of the architecture's PyTorch
    /// library, which its model there loads with `load_state_dict` (see
    /// [`pytorch_safetensors`]).
    pub fn to_pytorch_safetensors(&self, metadata: &[(&str, String)]) -> Result<Vec<u8>> {
        match self {
            Self::TorchvisionResNet(m) => pytorch_safetensors(m, &TORCHVISION_RESNET, metadata),
            Self::EfficientNetLite(m) => pytorch_safetensors(m, &EFFICIENTNET_LITE, metadata),
            Self::TimmVit(m) => pytorch_safetensors(m, &TIMM_VIT, metadata),
            Self::ResNet(_) | Self::Vit(_) => Err(no_pytorch_counterpart()),
        }
    }

    fn classifier(&self) -> &Linear {
        match self {
            Self::ResNet(m) => &m.classifier,
            Self::Vit(m) => &m.classifier,
            Self::TorchvisionResNet(m) => &m.fc,
            Self::EfficientNetLite(m) => &m.fc,
            Self::TimmVit(m) => &m.head,
        }
    }

    /// The float type the encoder's first layer computes in.
    fn compute_dtype(&self) -> DType {
        match self {
            Self::ResNet(m) => m.stem.weight.val().dtype(),
            Self::Vit(m) => m.patch_embedding.weight.val().dtype(),
            Self::TorchvisionResNet(m) => m.conv1.weight.val().dtype(),
            Self::EfficientNetLite(m) => m.conv_stem.weight.val().dtype(),
            Self::TimmVit(m) => m.patch_embed.proj.weight.val().dtype(),
        }
    }
}
