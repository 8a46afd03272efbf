//! A pretrained sentence encoder as sentence-transformers runs it: its tokenizer, a BERT, mean
//! pooling and (where the model has it) L2 normalisation, batches sorted by length so padding
//! stays small, embeddings returned in input order.

use std::path::Path;

use burn::tensor::Device;

use super::bert::{Bert, BertConfig, HF_BERT};
use super::pytorch_layout::{load_pytorch_safetensors, load_pytorch_weights};
use crate::data::{FeatureSet, TextSet, TextTokenizer, TokenBatch, Tokens};
use crate::error::{NmlError, Result};
use crate::io::read_file;
use crate::readback::{blocking, floats};

/// A tokenizer and a BERT, with how sentence-transformers pools and normalises their output.
#[derive(Debug)]
pub struct SentenceEncoder {
    pub model: Bert,
    pub tokenizer: TextTokenizer,
    /// Whether embeddings are scaled to unit length (the model's `Normalize` module).
    pub normalize: bool,
}

impl SentenceEncoder {
    /// Reads a sentence-transformers model folder (as all-MiniLM-L6-v2 ships): `config.json`,
    /// `model.safetensors` (or `pytorch_model.bin`), `tokenizer.json`,
    /// `sentence_bert_config.json` (its `max_seq_length`), `1_Pooling/config.json` (which must
    /// ask for mean pooling) and `modules.json` (whether a `Normalize` module follows).
    pub fn read_dir(dir: &Path, device: &Device) -> Result<Self> {
        let file = |name: &str| -> Result<Option<Vec<u8>>> {
            let path = dir.join(name);
            if path.is_file() { read_file(&path).map(Some) } else { Ok(None) }
        };
        let pickle = dir.join("pytorch_model.bin");
        if !dir.join("model.safetensors").is_file() && pickle.is_file() {
            let mut encoder = Self::from_files(
                &|name: &str| match name {
                    "model.safetensors" => Ok(None),
                    other => file(other),
                },
                &dir.display().to_string(),
                device,
                false,
            )?;
            load_pytorch_weights(&mut encoder.model, &pickle, &HF_BERT)?;
            return Ok(encoder);
        }
        Self::from_files(&file, &dir.display().to_string(), device, true)
    }

    /// Reads a sentence-transformers model folder's files as [`SentenceEncoder::read_dir`]
    /// does, each got by its name in the folder (`config.json`, `1_Pooling/config.json`, ...;
    /// `None` where the folder has no such file): how the browser reads a folder a person
    /// picked. `dir` names the folder in messages; without `weights` the model keeps its
    /// seeded weights (for a caller that loads them another way).
    pub fn from_files(
        file: &dyn Fn(&str) -> Result<Option<Vec<u8>>>,
        dir: &str,
        device: &Device,
        weights: bool,
    ) -> Result<Self> {
        let at = |name: &str| format!("{dir}/{name}");
        let bytes = |name: &str| -> Result<Vec<u8>> {
            file(name)?
                .ok_or_else(|| NmlError::format(at(name), "is missing from the model folder"))
        };
        let json = |name: &str| -> Result<serde_json::Value> {
            let text = String::from_utf8(bytes(name)?)
                .map_err(|_| NmlError::format(at(name), "not UTF-8 text"))?;
            serde_json::from_str(&text)
                .map_err(|e| NmlError::format(at(name), format!("not JSON: {e}")))
        };
        let config = BertConfig::from_hf_json(&json("config.json")?, &at("config.json"))?;
        let max_length = json("sentence_bert_config.json")?
            .get("max_seq_length")
            .and_then(serde_json::Value::as_u64)
            .map(|v| v as usize)
            .filter(|&v| (2..=config.max_position_embeddings).contains(&v))
            .ok_or_else(|| {
                NmlError::format(
                    at("sentence_bert_config.json"),
                    format!(
                        "`max_seq_length` must be 2 to {} (the model's positions)",
                        config.max_position_embeddings
                    ),
                )
            })?;
        let pooling = json("1_Pooling/config.json")?;
        let mean = pooling.get("pooling_mode_mean_tokens").and_then(serde_json::Value::as_bool);
        let others = [
            "pooling_mode_cls_token",
            "pooling_mode_max_tokens",
            "pooling_mode_mean_sqrt_len_tokens",
        ]
        .iter()
        .any(|k| pooling.get(*k).and_then(serde_json::Value::as_bool) == Some(true));
        if mean != Some(true) || others {
            return Err(NmlError::format(
                at("1_Pooling/config.json"),
                "nml pools by the mean of the tokens only (pooling_mode_mean_tokens)",
            ));
        }
        let normalize = json("modules.json")?.as_array().is_some_and(|modules| {
            modules.iter().any(|m| {
                m.get("type").and_then(serde_json::Value::as_str)
                    == Some("sentence_transformers.models.Normalize")
            })
        });
        let tokenizer = TextTokenizer::from_bytes(
            &bytes("tokenizer.json")?,
            &at("tokenizer.json"),
            max_length,
        )?;
        if tokenizer.vocabulary_size() > config.vocab_size {
            return Err(NmlError::format(
                at("tokenizer.json"),
                format!(
                    "has {} tokens; the model embeds {}",
                    tokenizer.vocabulary_size(),
                    config.vocab_size
                ),
            ));
        }
        let mut model = config.init(0, device);
        if weights {
            let name = at("model.safetensors");
            load_pytorch_safetensors(&mut model, bytes("model.safetensors")?, &name, &HF_BERT)?;
        }
        Ok(Self { model, tokenizer, normalize })
    }

    /// The same encoder truncating texts at `max_tokens` tokens (at most the model's
    /// positions).
    pub fn with_max_tokens(mut self, max_tokens: usize) -> Result<Self> {
        let positions = self.model.embeddings.position_embeddings.weight.dims()[0];
        if max_tokens > positions {
            return Err(NmlError::Invalid(format!(
                "{max_tokens} tokens a text: the model has {positions} positions"
            )));
        }
        self.tokenizer = self.tokenizer.with_max_length(max_tokens)?;
        Ok(self)
    }

    /// Embeds `texts` in batches of `batch_size`, longest first (so each batch pads little),
    /// and returns their embeddings row by row in input order, `[texts.len(), hidden]`.
    /// `progress` hears how many texts are done after each batch.
    pub fn embed(
        &self,
        texts: &[String],
        batch_size: usize,
        device: &Device,
        progress: &mut dyn FnMut(usize),
    ) -> Result<Vec<f32>> {
        blocking(self.embed_async(texts, batch_size, device, progress))
    }

    /// [`SentenceEncoder::embed`] for a caller that must not block (the browser's main thread
    /// on WebGPU): each batch's embeddings are awaited.
    pub async fn embed_async(
        &self,
        texts: &[String],
        batch_size: usize,
        device: &Device,
        progress: &mut dyn FnMut(usize),
    ) -> Result<Vec<f32>> {
        let tokens: Vec<Tokens> =
            texts.iter().map(|t| self.tokenizer.encode(t)).collect::<Result<_>>()?;
        let mut order: Vec<usize> = (0..texts.len()).collect();
        // Stable, so texts of one length keep their order and a run is repeatable.
        order.sort_by_key(|&i| std::cmp::Reverse(tokens[i].ids.len()));
        let hidden = self.model.hidden_size();
        let mut out = vec![0.0f32; texts.len() * hidden];
        let mut done = 0;
        for rows in order.chunks(batch_size.max(1)) {
            let batch = TokenBatch::pad(
                &rows.iter().map(|&i| &tokens[i]).collect::<Vec<_>>(),
                self.tokenizer.pad_id(),
            );
            let [ids, type_ids, mask] = batch.tensors(device);
            let embedded = self.model.embed(ids, type_ids, mask, self.normalize);
            let values = floats(embedded).await?;
            for (row, &i) in values.chunks_exact(hidden).zip(rows) {
                out[i * hidden..(i + 1) * hidden].copy_from_slice(row);
            }
            done += rows.len();
            progress(done);
        }
        Ok(out)
    }

    /// The features of a text set, named by it, with its labels and class names (unlabelled
    /// texts are one class: their features are for spectra and comparison).
    pub fn features(
        &self,
        texts: &TextSet,
        batch_size: usize,
        device: &Device,
        progress: &mut dyn FnMut(usize),
    ) -> Result<FeatureSet> {
        blocking(self.features_async(texts, batch_size, device, progress))
    }

    /// [`SentenceEncoder::features`], each batch awaited.
    pub async fn features_async(
        &self,
        texts: &TextSet,
        batch_size: usize,
        device: &Device,
        progress: &mut dyn FnMut(usize),
    ) -> Result<FeatureSet> {
        let embedded = self.embed_async(texts.texts(), batch_size, device, progress).await?;
        let labels = match texts.labels() {
            Some(labels) => labels.iter().map(|&l| i64::from(l)).collect(),
            None => vec![0; texts.len()],
        };
        let classes = texts.labels().map_or(1, |_| texts.num_classes());
        let set = FeatureSet::new(
            texts.name(),
            embedded,
            self.model.hidden_size(),
            labels,
            Some(classes),
        )?;
        if texts.class_names().is_empty() {
            Ok(set)
        } else {
            set.with_class_names(texts.class_names().to_vec())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::fetched_or_skip;

    #[derive(serde::Deserialize)]
    struct Fixture {
        texts: Vec<String>,
        ids: Vec<Vec<u32>>,
        embeddings: Vec<Vec<f32>>,
    }

    /// all-MiniLM-L6-v2 from its package folder: the tokens of Hugging Face's Python tokenizers,
    /// embeddings within 1e-5 of a PyTorch forward of the same weights (a text past 256 tokens
    /// included: truncated as sentence-transformers truncates), and sentence-transformers'
    /// published quickstart similarities to their four printed decimals.
    #[test]
    fn minilm_embeds_as_sentence_transformers_does() {
        let Some(dir) =
            fetched_or_skip("minilm_embeds_as_sentence_transformers_does", "all-minilm-l6-v2")
        else {
            return;
        };
        let fixture: Fixture =
            serde_json::from_str(include_str!("testdata/minilm-embeddings.json")).unwrap();
        let device = Device::flex();
        let encoder = SentenceEncoder::read_dir(&dir, &device).unwrap();
        assert!(encoder.normalize);
        for (text, ids) in fixture.texts.iter().zip(&fixture.ids) {
            assert_eq!(&encoder.tokenizer.encode(text).unwrap().ids, ids, "{text}");
        }
        assert_eq!(fixture.ids.last().unwrap().len(), 256, "the long text reaches the limit");
        let mut seen = Vec::new();
        // Batches of 3: other paddings than the reference's one batch, the same embeddings.
        let got = encoder.embed(&fixture.texts, 3, &device, &mut |done| seen.push(done)).unwrap();
        assert_eq!(seen, [3, 6, 7]);
        let mut worst = 0.0f32;
        for (row, want) in got.chunks_exact(384).zip(&fixture.embeddings) {
            for (g, w) in row.iter().zip(want) {
                worst = worst.max((g - w).abs());
            }
        }
        assert!(worst < 1e-5, "largest difference from PyTorch {worst}");
        let cosine = |a: usize, b: usize| -> f32 {
            got[a * 384..(a + 1) * 384]
                .iter()
                .zip(&got[b * 384..(b + 1) * 384])
                .map(|(x, y)| x * y)
                .sum()
        };
        for ((a, b), published) in [((0, 1), 0.6660), ((0, 2), 0.1046), ((1, 2), 0.1411)] {
            let similarity = cosine(a, b);
            assert!((similarity - published).abs() < 6e-4, "{a}-{b}: {similarity} vs {published}");
        }
    }
}
