//! A pretrained sentence encoder as sentence-transformers runs it: its tokenizer, a BERT, mean
//! pooling and (where the model has it) L2 normalisation, batches sorted by length so padding
//! stays small, embeddings returned in input order.

use std::path::Path;

use burn::tensor::{Device, Int, Tensor, TensorData};

use super::bert::{Bert, BertConfig, HF_BERT};
use super::pytorch_layout::load_pytorch_weights;
use crate::data::{TextTokenizer, TokenBatch, Tokens};
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
        let json = |file: &str| -> Result<serde_json::Value> {
            let path = dir.join(file);
            let text = String::from_utf8(read_file(&path)?)
                .map_err(|_| NmlError::format(path.display().to_string(), "not UTF-8 text"))?;
            serde_json::from_str(&text)
                .map_err(|e| NmlError::format(path.display().to_string(), format!("not JSON: {e}")))
        };
        let config_path = dir.join("config.json");
        let config =
            BertConfig::from_hf_json(&json("config.json")?, &config_path.display().to_string())?;
        let max_length = json("sentence_bert_config.json")?
            .get("max_seq_length")
            .and_then(serde_json::Value::as_u64)
            .map(|v| v as usize)
            .filter(|&v| (2..=config.max_position_embeddings).contains(&v))
            .ok_or_else(|| {
                NmlError::format(
                    dir.join("sentence_bert_config.json").display().to_string(),
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
                dir.join("1_Pooling/config.json").display().to_string(),
                "nml pools by the mean of the tokens only (pooling_mode_mean_tokens)",
            ));
        }
        let normalize = json("modules.json")?.as_array().is_some_and(|modules| {
            modules.iter().any(|m| {
                m.get("type").and_then(serde_json::Value::as_str)
                    == Some("sentence_transformers.models.Normalize")
            })
        });
        let tokenizer = TextTokenizer::read(&dir.join("tokenizer.json"), max_length)?;
        if tokenizer.vocabulary_size() > config.vocab_size {
            return Err(NmlError::format(
                dir.join("tokenizer.json").display().to_string(),
                format!(
                    "has {} tokens; the model embeds {}",
                    tokenizer.vocabulary_size(),
                    config.vocab_size
                ),
            ));
        }
        let weights = ["model.safetensors", "pytorch_model.bin"]
            .iter()
            .map(|f| dir.join(f))
            .find(|p| p.is_file())
            .ok_or_else(|| {
                NmlError::format(
                    dir.display().to_string(),
                    "holds neither model.safetensors nor pytorch_model.bin",
                )
            })?;
        let mut model = config.init(0, device);
        load_pytorch_weights(&mut model, &weights, &HF_BERT)?;
        Ok(Self { model, tokenizer, normalize })
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
            let ints = |v: Vec<i64>| {
                Tensor::<2, Int>::from_data(TensorData::new(v, [batch.rows, batch.length]), device)
            };
            let embedded = self.model.embed(
                ints(batch.ids),
                ints(batch.type_ids),
                ints(batch.mask),
                self.normalize,
            );
            let values = blocking(floats(embedded))?;
            for (row, &i) in values.chunks_exact(hidden).zip(rows) {
                out[i * hidden..(i + 1) * hidden].copy_from_slice(row);
            }
            done += rows.len();
            progress(done);
        }
        Ok(out)
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
