//! Supervised pre-training of a text encoder on labels corrupted by the core's noise
//! generators: a BERT (continued from a sentence encoder's weights, or from scratch at a small
//! size) with a linear head over its mean-pooled tokens, through the one training loop, with
//! per-epoch checkpoints a run resumes from exactly.

use std::path::{Path, PathBuf};

use burn::module::Module;
use burn::nn::loss::CrossEntropyLossConfig;
use burn::tensor::{Device, Int, Tensor, TensorData};
use rand::rngs::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::EpochRecord;
use crate::data::{TextSet, TextTokenizer, TokenBatch, Tokens};
use crate::error::{NmlError, Result};
use crate::models::{BertConfig, SentenceEncoder, TextClassifier};
use crate::noise::LabelNoise;
use crate::readback::blocking;
use crate::train::{
    self, EpochSums, Flow, Observer, OptimizerConfig, Plan, RunDir, Shuffle, SplitOptimizer,
    StepLoss,
};

/// The safetensors header entry of a text pre-training checkpoint.
pub const TEXT_META_KEY: &str = "nml.text-pretrain";

/// The encoder a text pre-training run starts from.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum TextModelSpec {
    /// A sentence-transformers model folder (such as all-MiniLM-L6-v2's), trained on from its
    /// weights; features are pooled and normalised as the model does.
    SentenceTransformers { weights: PathBuf },
    /// A BERT of these sizes from seeded random weights, with the `tokenizer.json` at
    /// `tokenizer`; features are mean-pooled and normalised.
    Bert { layers: usize, hidden: usize, heads: usize, intermediate: usize, tokenizer: PathBuf },
}

impl TextModelSpec {
    /// The encoder before training, its texts truncated at `max_tokens` tokens.
    pub fn load(&self, max_tokens: usize, seed: u64, device: &Device) -> Result<SentenceEncoder> {
        match self {
            Self::SentenceTransformers { weights } => {
                SentenceEncoder::read_dir(weights, device)?.with_max_tokens(max_tokens)
            }
            Self::Bert { layers, hidden, heads, intermediate, tokenizer } => {
                let tokenizer = TextTokenizer::read(tokenizer, max_tokens)?;
                if *heads == 0 || !hidden.is_multiple_of(*heads) {
                    return Err(NmlError::Invalid(format!(
                        "a BERT of width {hidden} needs a number of heads that divides it"
                    )));
                }
                let config = BertConfig::new(
                    tokenizer.vocabulary_size(),
                    *hidden,
                    *layers,
                    *heads,
                    *intermediate,
                )
                .with_max_position_embeddings(max_tokens);
                Ok(SentenceEncoder { model: config.init(seed, device), tokenizer, normalize: true })
            }
        }
    }
}

/// Every knob of a text pre-training run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TextPretrainConfig {
    pub model: TextModelSpec,
    /// Texts are truncated at this many tokens, in training and in the features after it.
    pub max_tokens: usize,
    pub epochs: usize,
    pub batch_size: usize,
    /// Peak AdamW learning rate of the new head; per-step cosine to 0.
    pub lr: f64,
    /// The encoder's learning rate as a share of `lr` (a pre-trained encoder trains gently).
    pub encoder_lr_ratio: f64,
    pub weight_decay: f64,
    pub seed: u64,
    /// Corruption applied to the training labels once, before training (`None`: clean).
    #[serde(default)]
    pub noise: Option<LabelNoise>,
}

impl TextPretrainConfig {
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(NmlError::Invalid(m));
        if self.epochs == 0 || self.batch_size < 2 || self.max_tokens < 2 {
            return bad(format!(
                "text pre-training needs epochs >= 1, batch_size >= 2 and max_tokens >= 2 (got {}, {}, {})",
                self.epochs, self.batch_size, self.max_tokens
            ));
        }
        OptimizerConfig::Adamw { lr: self.lr, weight_decay: self.weight_decay }.validate()?;
        if !(self.encoder_lr_ratio > 0.0 && self.encoder_lr_ratio <= 1.0) {
            return bad(format!(
                "encoder_lr_ratio must be in (0, 1], got {}",
                self.encoder_lr_ratio
            ));
        }
        Ok(())
    }
}

/// A trained text encoder and how it got there.
#[derive(Debug)]
pub struct TextPretrained {
    pub encoder: SentenceEncoder,
    pub config: TextPretrainConfig,
    pub num_classes: usize,
    pub history: Vec<EpochRecord>,
    /// Realised share of training labels the noise changed.
    pub noise_rate: f64,
    /// Epochs this call trained (0 when a finished checkpoint was reused).
    pub epochs_trained: usize,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct TextCheckpointMeta {
    config: TextPretrainConfig,
    num_classes: usize,
    epochs_done: usize,
    history: Vec<EpochRecord>,
}

/// Whether `dir` holds a finished text run of `config` (every epoch done), which
/// [`pretrain_text`] would load rather than train.
pub fn finished_text_run(dir: &Path, config: &TextPretrainConfig) -> Result<bool> {
    let saved = RunDir::new(dir, TEXT_META_KEY).saved::<TextCheckpointMeta>()?;
    Ok(saved.is_some_and(|(_, m)| m.config == *config && m.epochs_done == config.epochs))
}

/// The tokens of every text of a set, for training.
pub(crate) fn tokenize(encoder: &SentenceEncoder, texts: &TextSet) -> Result<Vec<Tokens>> {
    texts
        .texts()
        .iter()
        .enumerate()
        .map(|(i, t)| {
            encoder
                .tokenizer
                .encode(t)
                .map_err(|e| NmlError::format(texts.location(i), e.to_string()))
        })
        .collect()
}

/// The texts at `chunk` as one padded batch.
pub(crate) fn token_batch(tokens: &[Tokens], chunk: &[usize], pad_id: u32) -> TokenBatch {
    TokenBatch::pad(&chunk.iter().map(|&i| &tokens[i]).collect::<Vec<_>>(), pad_id)
}

/// The labels at `chunk` as a tensor on `device`.
pub(crate) fn label_tensor(labels: &[u32], chunk: &[usize], device: &Device) -> Tensor<1, Int> {
    let picked: Vec<i64> = chunk.iter().map(|&i| i64::from(labels[i])).collect();
    Tensor::from_data(TensorData::new(picked, [chunk.len()]), device)
}

/// The labelled texts' class count, or an error naming the set when it is unlabelled.
pub(crate) fn labelled(texts: &TextSet) -> Result<(&[u32], usize)> {
    let labels = texts.labels().ok_or_else(|| {
        NmlError::format(texts.name(), "has no labels; training on texts needs a label for each")
    })?;
    Ok((labels, texts.num_classes()))
}

/// Pre-trains a text encoder on `texts` (labelled), its labels corrupted as `config.noise`
/// says. With `run_dir`, a checkpoint is written after every epoch; an existing checkpoint of
/// the same config is resumed (or, when finished, simply loaded), and one of another config is
/// an error rather than silently overwritten.
pub fn pretrain_text(
    texts: &TextSet,
    config: &TextPretrainConfig,
    run_dir: Option<&Path>,
    device: &Device,
    observer: &mut dyn Observer<EpochRecord>,
) -> Result<TextPretrained> {
    config.validate()?;
    let (clean, num_classes) = labelled(texts)?;
    let (labels, noise_rate) = match &config.noise {
        Some(noise) => {
            let noisy = noise.apply(clean, num_classes, config.seed)?;
            let rate = noisy.rate();
            (noisy.labels, rate)
        }
        None => (clean.to_vec(), 0.0),
    };
    let ad = device.clone().autodiff();
    let base = config.model.load(config.max_tokens, config.seed, &ad)?;
    let tokens = tokenize(&base, texts)?;
    let pad_id = base.tokenizer.pad_id();
    let mut model = TextClassifier::new(base.model.clone().train(), num_classes, config.seed, &ad);
    let adamw = OptimizerConfig::Adamw { lr: config.lr, weight_decay: config.weight_decay };
    let mut optimizer = SplitOptimizer {
        first: adamw.init(),
        second: adamw.init(),
        ratio: config.encoder_lr_ratio,
        split: |m: TextClassifier| (m.head, m.encoder),
        join: |head, encoder| TextClassifier { encoder, head },
    };
    let run_dir = run_dir.map(|dir| RunDir::new(dir, TEXT_META_KEY));
    let mut history = Vec::new();
    if let Some(dir) = &run_dir {
        let same = |m: &TextCheckpointMeta| m.config == *config && m.num_classes == num_classes;
        let done = |m: &TextCheckpointMeta| m.epochs_done;
        if let Some(meta) = dir.resume(&mut model, &mut optimizer, config.epochs, same, done)? {
            history = meta.history;
        }
    }
    let plan = Plan::new(
        texts.len(),
        config.epochs,
        config.batch_size,
        config.lr,
        Shuffle::PerEpoch { seed: config.seed },
    );
    let loss_fn = CrossEntropyLossConfig::new().init(&ad);
    let step = async |model: &TextClassifier, chunk: &[usize], _: &mut ChaCha8Rng| {
        let y = label_tensor(&labels, chunk, &ad);
        let (_, logits) = model.forward(&token_batch(&tokens, chunk, pad_id), false);
        let correct = logits.clone().argmax(1).reshape([chunk.len()]).equal(y.clone()).int().sum();
        Ok(StepLoss::new(loss_fn.forward(logits, y)).with_correct(correct))
    };
    let end_epoch = async |_: &TextClassifier, sums: EpochSums| -> Result<(EpochRecord, Flow)> {
        Ok((EpochRecord::of(sums), Flow::Continue))
    };
    let mut save = |model: &TextClassifier,
                    optimizer: &SplitOptimizer<TextClassifier, _, _>,
                    history: &[EpochRecord]|
     -> Result<()> {
        let Some(dir) = &run_dir else { return Ok(()) };
        let meta = TextCheckpointMeta {
            config: config.clone(),
            num_classes,
            epochs_done: history.len(),
            history: history.to_vec(),
        };
        dir.save(&model.valid(), optimizer, &meta, history.len())
    };
    let trained = blocking(train::train(
        model,
        &plan,
        &mut optimizer,
        history,
        step,
        end_epoch,
        observer,
        Some(&mut save),
    ))?;
    let encoder = SentenceEncoder {
        model: trained.model.valid().encoder.fork(device),
        tokenizer: base.tokenizer,
        normalize: base.normalize,
    };
    Ok(TextPretrained {
        encoder,
        config: config.clone(),
        num_classes,
        history: trained.history,
        noise_rate,
        epochs_trained: trained.epochs_trained,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::topic_texts;

    fn config(dir: &Path) -> TextPretrainConfig {
        TextPretrainConfig {
            model: TextModelSpec::Bert {
                layers: 1,
                hidden: 16,
                heads: 2,
                intermediate: 32,
                tokenizer: dir.join("tokenizer.json"),
            },
            max_tokens: 8,
            epochs: 6,
            batch_size: 8,
            lr: 0.01,
            encoder_lr_ratio: 1.0,
            weight_decay: 0.0,
            seed: 1,
            noise: None,
        }
    }

    /// A small BERT from scratch learns the topics; its run is reused when finished and
    /// refused for another config; noise changes the realised share of labels it asks for.
    #[test]
    fn a_text_encoder_learns_noisy_topics_and_its_run_is_reused() {
        let dir = tempfile::tempdir().unwrap();
        let texts = topic_texts(dir.path(), 30, 0);
        let device = Device::flex();
        let run_dir = dir.path().join("run");
        let config = config(dir.path());
        let run = pretrain_text(&texts, &config, Some(&run_dir), &device, &mut ()).unwrap();
        let last = run.history.last().unwrap();
        assert!(last.train_accuracy > 0.9, "{:?}", run.history);
        assert!(last.loss < run.history[0].loss);
        assert_eq!((run.epochs_trained, run.noise_rate, run.num_classes), (6, 0.0, 3));
        let features = run.encoder.features(&texts, 16, &device, &mut |_| {}).unwrap();
        assert_eq!((features.n(), features.d(), features.class_names().len()), (90, 16, 3));
        let again = pretrain_text(&texts, &config, Some(&run_dir), &device, &mut ()).unwrap();
        assert_eq!(again.epochs_trained, 0);
        let same = again.encoder.features(&texts, 16, &device, &mut |_| {}).unwrap();
        assert_eq!(same.features(), features.features(), "the saved run is the trained one");
        let other = TextPretrainConfig { lr: 0.02, ..config.clone() };
        let err = pretrain_text(&texts, &other, Some(&run_dir), &device, &mut ()).unwrap_err();
        assert!(err.to_string().contains("holds a run of another config"), "{err}");
        let noisy =
            TextPretrainConfig { noise: crate::NoiseKind::Symmetric.at(0.3), epochs: 1, ..config };
        let run = pretrain_text(&texts, &noisy, None, &device, &mut ()).unwrap();
        assert!((run.noise_rate - 0.3).abs() < 0.02, "{}", run.noise_rate);
    }
}
