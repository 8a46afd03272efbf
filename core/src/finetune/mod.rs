//! Tuning the pre-trained encoder itself on an image task (or, in [`run_text`], a text task): LoRA adapters on its linears or full
//! fine-tuning, each with or without NMTune's covariance and singular-value terms on the
//! encoder's output features (the black-box head's own functions, reused). A new linear head
//! classifies the task's labels. WiSE-FT ([`interpolate`]) scores mixes of the fine-tuned and
//! the pre-trained weights.

mod config;
mod persist;
mod task;
mod text;
mod wise;

pub use config::{FinetuneConfig, FinetuneMethod, LoraConfig, LoraTargets};
pub use persist::{FinetuneMeta, load_merged, merged_bytes, read_finetune_meta, trained_bytes};
pub use task::{FinetuneOutcome, FinetuneReport, run};
pub use text::{TextFinetuneReport, run_text};
pub use wise::{WisePoint, interpolate, probe_head, sweep_alphas, validate_alphas};

use burn::module::{Lora, Module, ModuleMapper, ModuleVisitor, Param, ParamGroup};
use burn::nn::Linear;
use burn::nn::loss::CrossEntropyLossConfig;
use burn::tensor::{Device, Int, Tensor, TensorData};
use rand::RngExt;
use rand::rngs::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::data::ImageSet;
use crate::error::{NmlError, Result};
use crate::models::{Encoder, HostInit, InputTransform, image_tensor};
use crate::readback::{blocking, ints};
use crate::train::{
    self, EpochSums, Flow, Observer, OptimizerConfig, Plan, Shuffle, SplitOptimizer, StepLoss,
};
use crate::tune::regularizers::{covariance_penalty, top_k_singular_share_async};

/// The encoder (possibly carrying LoRA adapters) and the task's linear head.
#[derive(Module, Debug)]
pub struct Finetuner {
    pub encoder: Encoder,
    pub head: Linear,
}

impl Finetuner {
    /// Features `[B, D]` and class logits `[B, classes]`.
    pub fn forward(&self, images: Tensor<4>) -> (Tensor<2>, Tensor<2>) {
        let features = self.encoder.embed(images);
        let logits = self.head.forward(features.clone());
        (features, logits)
    }

    /// The same model with every LoRA update merged into its base weight (for inference and
    /// export); an encoder without adapters is returned as it is.
    pub fn merged(self) -> Self {
        self.valid().materialize()
    }
}

/// One finished epoch.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FinetuneEpoch {
    pub epoch: usize,
    /// Mean training loss, regularisers included.
    pub loss: f64,
    pub ce: f64,
    pub seconds: f64,
}

/// Parameters that train (`require_grad`), and all of them, adapters included.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParamCount {
    pub trainable: usize,
    pub total: usize,
}

pub fn count_params<M: Module>(model: &M) -> ParamCount {
    struct Count(ParamCount);
    impl ModuleVisitor for Count {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            let n = param.shape().num_elements();
            self.0.total += n;
            if param.is_require_grad() {
                self.0.trainable += n;
            }
        }
    }
    let mut count = Count(ParamCount { trainable: 0, total: 0 });
    model.visit(&mut count);
    count.0
}

/// The parameter paths LoRA adapts in a transformer: the MLP's two linears (a ViT's `fc1` and
/// `fc2`; a BERT layer's `intermediate.dense` and `output.dense`), and the attention's
/// projections (nml's small ViT: `query`, `key`, `value`, `output`; timm's: the fused `qkv` and
/// `proj`; BERT's: `self_attention.query|key|value` and `attention.output.dense`).
fn lora_group(targets: LoraTargets) -> ParamGroup {
    let mlp = r"mlp\.fc[12]|layer\.\d+\.(intermediate|output)\.dense";
    let pattern = match targets {
        LoraTargets::Mlp => format!(r"({mlp})\.weight$"),
        LoraTargets::MlpAndAttention => format!(
            r"({mlp}|attention\.(query|key|value|output)|attn\.(qkv|proj)|self_attention\.(query|key|value)|attention\.output\.dense)\.weight$"
        ),
    };
    ParamGroup::from_regex(&pattern).expect("a valid pattern")
}

/// The model a run starts from: the encoder as it is (full fine-tuning) or frozen with LoRA
/// adapters attached (which leave its outputs unchanged), plus a new head seeded from the
/// config. `device` should have autodiff for training.
pub fn prepare(
    encoder: Encoder,
    num_classes: usize,
    config: &FinetuneConfig,
    device: &Device,
) -> Result<Finetuner> {
    config.validate()?;
    let feature_dim = encoder.feature_dim();
    // A loaded or finished encoder is in inference mode; training needs its parameters tracked.
    let encoder = encoder.fork(device).train();
    let encoder = if config.method.uses_lora() {
        if !matches!(encoder, Encoder::Vit(_) | Encoder::TimmVit(_)) {
            return Err(NmlError::Invalid(
                "LoRA adapts a ViT's linears; this checkpoint is a convolutional network (use ft or ft-nmtune, or pre-train with --model vit or vit-ti16|vit-s16|vit-b16)".into(),
            ));
        }
        // The adapters' random factor is drawn from the backend's generator.
        device.seed(config.seed);
        let lora = Lora::new(config.lora.rank, config.lora.alpha)
            .set_param_group(lora_group(config.lora.targets));
        encoder.apply_lora(lora)
    } else {
        encoder
    };
    let head = HostInit::new(config.seed ^ 0x4ead).linear(feature_dim, num_classes, device);
    Ok(Finetuner { encoder, head })
}

/// Drops rows of every LoRA down-projection `a` (`[d_in, rank]`) for one step: the input
/// features the low-rank path sees, scaled to keep their expectation.
struct LoraDropout<'a> {
    keep: f64,
    rng: &'a mut ChaCha8Rng,
    in_adapter: usize,
    field: Vec<String>,
}

impl ModuleMapper for LoraDropout<'_> {
    fn enter_module(&mut self, name: &str, container_type: &str) {
        self.in_adapter += usize::from(container_type == "Reparameterization");
        self.field.push(name.to_string());
    }
    fn exit_module(&mut self, _name: &str, container_type: &str) {
        self.in_adapter -= usize::from(container_type == "Reparameterization");
        self.field.pop();
    }
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        if self.in_adapter == 0 || D != 2 || self.field.last().map(String::as_str) != Some("a") {
            return param;
        }
        let (id, tensor, mapper) = param.consume();
        let d_in = tensor.dims()[0];
        let mask: Vec<f32> =
            (0..d_in)
                .map(|_| {
                    if self.rng.random::<f64>() < self.keep {
                        (1.0 / self.keep) as f32
                    } else {
                        0.0
                    }
                })
                .collect();
        let mask = Tensor::<2>::from_data(TensorData::new(mask, [d_in, 1]), &tensor.device());
        let masked = tensor * mask.reshape(tensor_shape::<D>(d_in));
        Param::from_mapped_value(id, masked, mapper)
    }
}

/// The optimiser and the plan of a fine-tuning run over `samples`: the head at `config.lr`, and
/// the encoder (taken apart from the model by `split`) at the same rate for LoRA adapters, which
/// are new parameters, or more gently for a pre-trained encoder's own weights.
#[allow(clippy::type_complexity)]
fn training_plan<M, E: Module>(
    samples: usize,
    config: &FinetuneConfig,
    split: fn(M) -> (Linear, E),
    join: fn(Linear, E) -> M,
) -> (SplitOptimizer<M, Linear, E>, Plan) {
    let adamw = OptimizerConfig::Adamw { lr: config.lr, weight_decay: config.weight_decay };
    let ratio = if config.method.uses_lora() { 1.0 } else { config.encoder_lr_ratio };
    let optimizer =
        SplitOptimizer { first: adamw.init(), second: adamw.init(), ratio, split, join };
    let plan = Plan::new(
        samples,
        config.epochs,
        config.batch_size,
        config.lr,
        Shuffle::Continuing { seed: config.seed.wrapping_add(0xf17e) },
    );
    (optimizer, plan)
}

/// The model one step trains: with LoRA dropout, a copy whose adapters see a fresh mask.
fn step_model<M: Module>(model: &M, config: &FinetuneConfig, rng: &mut ChaCha8Rng) -> M {
    if config.method.uses_lora() && config.lora.dropout > 0.0 {
        let mut dropout =
            LoraDropout { keep: 1.0 - config.lora.dropout, rng, in_adapter: 0, field: Vec::new() };
        model.clone().map(&mut dropout)
    } else {
        model.clone()
    }
}

/// The cross-entropy `ce` plus NMTune's covariance and singular-value terms on `features`
/// `[B, D]`, as `config` weighs them.
async fn regularised(
    ce: Tensor<1>,
    features: Tensor<2>,
    config: &FinetuneConfig,
) -> Result<Tensor<1>> {
    let mut loss = ce;
    if config.w_cov > 0.0 {
        loss = loss + covariance_penalty(features.clone()).mul_scalar(config.w_cov);
    }
    if config.w_svd > 0.0 {
        loss = loss
            - top_k_singular_share_async(features, config.top_k).await?.mul_scalar(config.w_svd);
    }
    Ok(loss)
}

/// `[d_in, 1]` as a `D`-dimensional shape (D is 2 wherever this is used).
fn tensor_shape<const D: usize>(d_in: usize) -> [usize; D] {
    let mut shape = [1; D];
    shape[0] = d_in;
    shape
}

/// Trains `model` (from [`prepare`], on an autodiff device) on `train`, images fed as `input`
/// says, through the one training loop. Returns the model in inference mode (adapters
/// not merged) and its history.
pub fn finetune(
    model: Finetuner,
    train: &ImageSet,
    input: &InputTransform,
    config: &FinetuneConfig,
    device: &Device,
    observer: &mut dyn Observer<FinetuneEpoch>,
) -> Result<(Finetuner, Vec<FinetuneEpoch>)> {
    config.validate()?;
    if train.n() < 2 {
        return Err(NmlError::Invalid(format!(
            "{}: need at least two training images",
            train.name()
        )));
    }
    let train = model.encoder.input_images(train, input.image_size)?;
    let ce_loss = CrossEntropyLossConfig::new().init(device);
    let (mut optimizer, plan) = training_plan(
        train.n(),
        config,
        |m: Finetuner| (m.head, m.encoder),
        |head, encoder| Finetuner { encoder, head },
    );
    let step =
        async |model: &Finetuner, chunk: &[usize], rng: &mut ChaCha8Rng| -> Result<StepLoss> {
            let x = image_tensor(&train, chunk, input.normalize.as_ref(), device)?;
            let labels: Vec<i64> = chunk.iter().map(|&i| i64::from(train.labels()[i])).collect();
            let y = Tensor::<1, Int>::from_data(TensorData::new(labels, [chunk.len()]), device);
            let (features, logits) = step_model(model, config, rng).forward(x);
            let ce = ce_loss.forward(logits, y);
            Ok(StepLoss::new(regularised(ce.clone(), features, config).await?).with_terms(vec![ce]))
        };
    let end_epoch = async |_: &Finetuner, sums: EpochSums| -> Result<(FinetuneEpoch, Flow)> {
        Ok((
            FinetuneEpoch {
                epoch: sums.epoch,
                loss: sums.loss,
                ce: sums.terms[0],
                seconds: sums.seconds,
            },
            Flow::Continue,
        ))
    };
    let trained = blocking(train::train(
        model,
        &plan,
        &mut optimizer,
        Vec::new(),
        step,
        end_epoch,
        observer,
        None,
    ))?;
    Ok((trained.model.valid(), trained.history))
}

/// Share of `images` (fed as `input` says) the model labels correctly.
pub fn accuracy(
    model: &Finetuner,
    images: &ImageSet,
    input: &InputTransform,
    device: &Device,
) -> Result<f64> {
    let set = model.encoder.input_images(images, input.image_size)?;
    let indices: Vec<usize> = (0..set.n()).collect();
    let mut correct = 0usize;
    for chunk in indices.chunks(256) {
        let x = image_tensor(&set, chunk, input.normalize.as_ref(), device)?;
        let predicted = blocking(ints(model.forward(x).1.argmax(1)))?;
        correct += chunk
            .iter()
            .zip(&predicted)
            .filter(|&(&i, &p)| p == i64::from(set.labels()[i]))
            .count();
    }
    Ok(correct as f64 / set.n() as f64)
}

#[cfg(test)]
mod tests;
