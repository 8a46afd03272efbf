//! One fine-tuning run on a text task: LoRA adapters on a BERT's attention and FFN linears (or
//! every weight), with or without NMTune's terms on the pooled features, and a new linear head;
//! then the in-domain test set and every out-of-domain set are scored.

use std::collections::BTreeMap;
use web_time::Instant;

use burn::module::{Lora, Module};
use burn::nn::loss::CrossEntropyLossConfig;
use burn::tensor::Device;
use rand::rngs::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::{
    FinetuneConfig, FinetuneEpoch, ParamCount, WisePoint, count_params, lora_group, probe_head,
    regularised, step_model, sweep_alphas, training_plan,
};
use crate::data::TextSet;
use crate::error::{NmlError, Result};
use crate::models::{SentenceEncoder, TextClassifier};
use crate::pretrain::{label_tensor, labelled, token_batch, tokenize};
use crate::readback::{blocking, ints};
use crate::train::{self, EpochSums, Flow, Observer, StepLoss};

/// What a text fine-tuning run reports.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TextFinetuneReport {
    pub accuracy: f64,
    pub ood: BTreeMap<String, f64>,
    pub params: ParamCount,
    pub config: FinetuneConfig,
    /// The most tokens a text had (longer ones were truncated).
    pub max_tokens: usize,
    pub train_samples: usize,
    pub train_seconds: f64,
    pub seconds: f64,
    pub history: Vec<FinetuneEpoch>,
    /// WiSE-FT's scores, one per `config.wise_alphas`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub wise: Vec<WisePoint>,
}

/// Texts per forward pass when scoring.
const SCORE_BATCH: usize = 64;

/// Share of `texts` the model labels correctly (longest texts batched together).
fn accuracy(
    model: &TextClassifier,
    encoder: &SentenceEncoder,
    texts: &TextSet,
    num_classes: usize,
    train: &str,
) -> Result<f64> {
    let (labels, _) = labelled(texts)?;
    if let Some(i) = labels.iter().position(|&l| l as usize >= num_classes) {
        return Err(NmlError::format(
            texts.location(i),
            format!("label {} is not one of the {num_classes} classes of {train}", labels[i]),
        ));
    }
    let tokens = tokenize(encoder, texts)?;
    let mut order: Vec<usize> = (0..texts.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(tokens[i].ids.len()));
    let mut correct = 0usize;
    for chunk in order.chunks(SCORE_BATCH) {
        let batch = token_batch(&tokens, chunk, encoder.tokenizer.pad_id());
        let predicted = blocking(ints(model.forward(&batch, encoder.normalize).1.argmax(1)))?;
        correct +=
            chunk.iter().zip(&predicted).filter(|&(&i, &p)| p == i64::from(labels[i])).count();
    }
    Ok(correct as f64 / texts.len() as f64)
}

/// Fine-tunes `encoder` on `train` by `config.method` (LoRA on the linears `config.lora.targets`
/// names, or every weight) and scores the result on `test` and every `ood` set. `device` is
/// the plain compute device; training runs on its autodiff counterpart.
pub fn run_text(
    encoder: &SentenceEncoder,
    train: &TextSet,
    test: &TextSet,
    ood: &[(String, TextSet)],
    config: &FinetuneConfig,
    device: &Device,
    observer: &mut dyn Observer<FinetuneEpoch>,
) -> Result<TextFinetuneReport> {
    config.validate()?;
    let started = Instant::now();
    let (labels, num_classes) = labelled(train)?;
    if train.len() < 2 {
        return Err(NmlError::format(train.name(), "need at least two training texts"));
    }
    // WiSE-FT's pre-trained end: the encoder as it comes, with a linear probe on its features.
    let pretrained = if config.wise_alphas.is_empty() {
        None
    } else {
        let features = encoder.features(train, SCORE_BATCH, device, &mut |_| {})?;
        let head = probe_head(&features, config.seed, device)?;
        Some(TextClassifier { encoder: encoder.model.clone(), head })
    };
    let ad = device.clone().autodiff();
    let bert = encoder.model.clone().fork(&ad).train();
    let bert = if config.method.uses_lora() {
        // The adapters' random factor is drawn from the backend's generator.
        ad.seed(config.seed);
        bert.apply_lora(
            Lora::new(config.lora.rank, config.lora.alpha)
                .set_param_group(lora_group(config.lora.targets)),
        )
    } else {
        bert
    };
    let model = TextClassifier::new(bert, num_classes, config.seed ^ 0x4ead, &ad);
    let params = count_params(&model);
    let tokens = tokenize(encoder, train)?;
    let pad_id = encoder.tokenizer.pad_id();
    let (mut optimizer, plan) = training_plan(
        train.len(),
        config,
        |m: TextClassifier| (m.head, m.encoder),
        |head, encoder| TextClassifier { encoder, head },
    );
    let ce_loss = CrossEntropyLossConfig::new().init(&ad);
    let step = async |model: &TextClassifier, chunk: &[usize], rng: &mut ChaCha8Rng| {
        let y = label_tensor(labels, chunk, &ad);
        let batch = token_batch(&tokens, chunk, pad_id);
        let (features, logits) = step_model(model, config, rng).forward(&batch, encoder.normalize);
        let ce = ce_loss.forward(logits, y);
        Ok(StepLoss::new(regularised(ce.clone(), features, config).await?).with_terms(vec![ce]))
    };
    let end_epoch = async |_: &TextClassifier, sums: EpochSums| -> Result<(FinetuneEpoch, Flow)> {
        let record = FinetuneEpoch {
            epoch: sums.epoch,
            loss: sums.loss,
            ce: sums.terms[0],
            seconds: sums.seconds,
        };
        Ok((record, Flow::Continue))
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
    let train_seconds = started.elapsed().as_secs_f64();
    let model = trained.model.valid().materialize();
    let score = |model: &TextClassifier| -> Result<(f64, BTreeMap<String, f64>)> {
        let on = |set: &TextSet| accuracy(model, encoder, set, num_classes, train.name());
        let ood = ood
            .iter()
            .map(|(name, set)| Ok((name.clone(), on(set)?)))
            .collect::<Result<BTreeMap<_, _>>>()?;
        Ok((on(test)?, ood))
    };
    let (accuracy_id, ood) = score(&model)?;
    let wise = match &pretrained {
        Some(start) => sweep_alphas(start, &model, &config.wise_alphas, score)?,
        None => Vec::new(),
    };
    Ok(TextFinetuneReport {
        accuracy: accuracy_id,
        ood,
        params,
        config: config.clone(),
        max_tokens: encoder.tokenizer.max_length(),
        train_samples: train.len(),
        train_seconds,
        seconds: started.elapsed().as_secs_f64(),
        history: trained.history,
        wise,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::finetune::{FinetuneMethod, LoraTargets};
    use crate::pretrain::TextModelSpec;
    use crate::test_support::topic_texts;

    /// LoRA on every attention and FFN linear of a small BERT trains only its adapters and the
    /// head, leaves the encoder's own weights as they were, and learns the topics; with NMTune's
    /// terms it runs too.
    #[test]
    fn lora_adapts_a_text_encoder() {
        let dir = tempfile::tempdir().unwrap();
        let (train, test) = (topic_texts(dir.path(), 20, 1), topic_texts(dir.path(), 10, 2));
        let device = Device::flex();
        let spec = TextModelSpec::Bert {
            layers: 1,
            hidden: 16,
            heads: 2,
            intermediate: 32,
            tokenizer: dir.path().join("tokenizer.json"),
        };
        let encoder = spec.load(8, 3, &device).unwrap();
        let before = encoder.features(&test, 16, &device, &mut |_| {}).unwrap();
        let mut config = FinetuneConfig::for_method(FinetuneMethod::Lora);
        config.lora.targets = LoraTargets::MlpAndAttention;
        (config.epochs, config.batch_size, config.lr) = (8, 8, 0.02);
        let ood = vec![("again".to_string(), test.clone())];
        let report = run_text(&encoder, &train, &test, &ood, &config, &device, &mut ()).unwrap();
        // Rank 8 on six 16 x 16 attention linears and two 16 x 32 FFN linears, and the head.
        let adapters = 8 * (4 * (16 + 16) + 2 * (16 + 32));
        assert_eq!(report.params.trainable, adapters + 16 * 3 + 3, "{:?}", report.params);
        assert!(report.accuracy > 0.6, "{report:?}");
        assert_eq!(report.ood["again"], report.accuracy);
        let after = encoder.features(&test, 16, &device, &mut |_| {}).unwrap();
        assert_eq!(before.features(), after.features(), "the base encoder is not changed");
        // NMTune's terms enter the loss and change where the adapters go.
        let plain = FinetuneConfig { epochs: 2, ..config.clone() };
        let regularised = FinetuneConfig {
            method: FinetuneMethod::LoraNmtune,
            w_cov: 0.1,
            w_svd: 0.1,
            ..plain.clone()
        };
        let runs: Vec<TextFinetuneReport> = [plain, regularised]
            .iter()
            .map(|c| run_text(&encoder, &train, &test, &[], c, &device, &mut ()).unwrap())
            .collect();
        let [plain, regularised] = [&runs[0].history, &runs[1].history];
        assert_eq!(plain[1].loss, plain[1].ce);
        assert_ne!(regularised[1].loss, regularised[1].ce);
        assert_ne!(plain[1].ce, regularised[1].ce, "{plain:?} {regularised:?}");
    }
}
