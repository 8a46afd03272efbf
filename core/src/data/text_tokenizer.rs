//! Text to token ids with Hugging Face's `tokenizers`, from a model's own `tokenizer.json`, and
//! batches of them padded to their longest text.

use std::path::Path;

use burn::tensor::{Device, Int, Tensor, TensorData};
use tokenizers::{Tokenizer, TruncationDirection, TruncationParams, TruncationStrategy};

use crate::error::{NmlError, Result};
use crate::io::read_file;

/// A `tokenizer.json` made to tokenise as sentence-transformers does: truncated at
/// `max_length` tokens (special tokens included), longest-first, and never padded by itself
/// (the file's own padding and truncation, e.g. a fixed 128, are replaced); batches are padded
/// to their longest text by [`TokenBatch::pad`].
#[derive(Clone)]
pub struct TextTokenizer {
    inner: Tokenizer,
    name: String,
    max_length: usize,
    pad_id: u32,
}

impl std::fmt::Debug for TextTokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TextTokenizer")
            .field("name", &self.name)
            .field("max_length", &self.max_length)
            .field("vocabulary", &self.inner.get_vocab_size(true))
            .finish()
    }
}

/// One text's tokens.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tokens {
    pub ids: Vec<u32>,
    pub type_ids: Vec<u32>,
}

/// Texts' tokens padded to the longest, row-major `[rows, length]`, with the attention mask
/// (1 at tokens, 0 at padding).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenBatch {
    pub rows: usize,
    pub length: usize,
    pub ids: Vec<i64>,
    pub type_ids: Vec<i64>,
    pub mask: Vec<i64>,
}

impl TextTokenizer {
    /// Reads a `tokenizer.json`; `name` names it in errors.
    pub fn from_bytes(bytes: &[u8], name: &str, max_length: usize) -> Result<Self> {
        let bad =
            |why: String| NmlError::format(name, format!("not a tokenizer.json nml reads: {why}"));
        // The library panics on some malformed files (a string escape that is no code point, in
        // its decoder section; found by fuzzing) instead of returning its error: JSON is
        // checked first, and a panic on native builds still becomes this error.
        serde_json::from_slice::<serde_json::Value>(bytes)
            .map_err(|e| bad(format!("not JSON: {e}")))?;
        #[cfg(not(target_arch = "wasm32"))]
        let parsed = std::panic::catch_unwind(|| Tokenizer::from_bytes(bytes))
            .map_err(|_| bad("the tokenizers library could not read it".into()))?;
        #[cfg(target_arch = "wasm32")]
        let parsed = Tokenizer::from_bytes(bytes);
        let mut inner = parsed.map_err(|e| bad(e.to_string()))?;
        // Checked as the library understood the file, in its own serialised form: it reads a
        // post-processor by shape, whatever its "type" says, so the file's text is no guide.
        if let Some(processor) = inner.get_post_processor() {
            let processor = serde_json::to_value(processor).map_err(|e| bad(e.to_string()))?;
            check_templates(&processor).map_err(bad)?;
        }
        inner.with_padding(None);
        // BERT's vocabularies name it [PAD]; sentence-transformers pads with the tokenizer's.
        let pad_id = ["[PAD]", "<pad>"]
            .iter()
            .find_map(|t| inner.token_to_id(t))
            .ok_or_else(|| NmlError::format(name, "has no [PAD] or <pad> token to pad with"))?;
        Self { inner, name: name.to_string(), max_length, pad_id }.with_max_length(max_length)
    }

    /// The same tokenizer truncating at `max_length` tokens instead.
    pub fn with_max_length(mut self, max_length: usize) -> Result<Self> {
        if max_length < 2 {
            return Err(NmlError::format(
                &self.name,
                "the longest text must allow two special tokens",
            ));
        }
        self.inner
            .with_truncation(Some(TruncationParams {
                max_length,
                strategy: TruncationStrategy::LongestFirst,
                stride: 0,
                direction: TruncationDirection::Right,
            }))
            .map_err(|e| {
                NmlError::format(&self.name, format!("cannot truncate at {max_length}: {e}"))
            })?;
        self.max_length = max_length;
        Ok(self)
    }

    /// Reads the `tokenizer.json` at `path`.
    pub fn read(path: &Path, max_length: usize) -> Result<Self> {
        Self::from_bytes(&read_file(path)?, &path.display().to_string(), max_length)
    }

    pub fn max_length(&self) -> usize {
        self.max_length
    }

    pub fn vocabulary_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }

    /// The tokens of `text` with the model's special tokens, at most `max_length` of them.
    pub fn encode(&self, text: &str) -> Result<Tokens> {
        let cannot =
            |why: String| NmlError::format(&self.name, format!("cannot tokenise a text: {why}"));
        // The library can also panic here on a malformed file (its template post-processor
        // indexes its special tokens unchecked; found by fuzzing).
        #[cfg(not(target_arch = "wasm32"))]
        let encoded = std::panic::catch_unwind(|| self.inner.encode(text, true))
            .map_err(|_| cannot("the tokenizers library failed on this tokenizer.json".into()))?;
        #[cfg(target_arch = "wasm32")]
        let encoded = self.inner.encode(text, true);
        let encoding = encoded.map_err(|e| cannot(e.to_string()))?;
        Ok(Tokens { ids: encoding.get_ids().to_vec(), type_ids: encoding.get_type_ids().to_vec() })
    }

    pub fn pad_id(&self) -> u32 {
        self.pad_id
    }
}

/// A template post-processor (alone or in a `Sequence`) must define every special token its
/// templates name: the library indexes them unchecked when encoding, and panics (on the page
/// too, where no panic can be caught) where one is missing.
fn check_templates(processor: &serde_json::Value) -> std::result::Result<(), String> {
    if let Some(inner) = processor.get("processors").and_then(|p| p.as_array()) {
        return inner.iter().try_for_each(check_templates);
    }
    if processor.get("type").and_then(|t| t.as_str()) != Some("TemplateProcessing") {
        return Ok(());
    }
    let defined = processor.get("special_tokens").and_then(|t| t.as_object());
    for template in ["single", "pair"] {
        let pieces = processor.get(template).and_then(|t| t.as_array()).into_iter().flatten();
        for piece in pieces {
            let Some(token) = piece.pointer("/SpecialToken/id") else { continue };
            let known = token.as_str().is_some_and(|t| defined.is_some_and(|d| d.contains_key(t)));
            if !known {
                return Err(format!(
                    "post_processor: the {template} template names special token {token}, which its special_tokens do not define"
                ));
            }
        }
    }
    Ok(())
}

impl TokenBatch {
    /// The ids, type ids and mask as `[rows, length]` tensors on `device`.
    pub fn tensors(&self, device: &Device) -> [Tensor<2, Int>; 3] {
        let tensor = |v: &[i64]| {
            Tensor::<2, Int>::from_data(
                TensorData::new(v.to_vec(), [self.rows, self.length]),
                device,
            )
        };
        [tensor(&self.ids), tensor(&self.type_ids), tensor(&self.mask)]
    }

    /// `texts` padded with `pad_id` (type 0, mask 0) to the longest of them.
    pub fn pad(texts: &[&Tokens], pad_id: u32) -> Self {
        let length = texts.iter().map(|t| t.ids.len()).max().unwrap_or(0);
        let mut batch = Self {
            rows: texts.len(),
            length,
            ids: Vec::with_capacity(texts.len() * length),
            type_ids: Vec::with_capacity(texts.len() * length),
            mask: Vec::with_capacity(texts.len() * length),
        };
        for text in texts {
            let pad = length - text.ids.len();
            batch.ids.extend(text.ids.iter().map(|&i| i64::from(i)));
            batch.ids.extend(std::iter::repeat_n(i64::from(pad_id), pad));
            batch.type_ids.extend(text.type_ids.iter().map(|&i| i64::from(i)));
            batch.type_ids.extend(std::iter::repeat_n(0, pad));
            batch.mask.extend(std::iter::repeat_n(1, text.ids.len()));
            batch.mask.extend(std::iter::repeat_n(0, pad));
        }
        batch
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::tiny_bert_tokenizer;

    #[test]
    fn texts_are_lowercased_split_wrapped_truncated_and_padded() {
        let tokenizer =
            TextTokenizer::from_bytes(tiny_bert_tokenizer().as_bytes(), "t", 6).unwrap();
        let cats = tokenizer.encode("The CATS sat.").unwrap();
        assert_eq!(cats.ids, [2, 4, 5, 9, 6, 3], "[CLS] the cat ##s sat [SEP]: cut at 6");
        let dog = tokenizer.encode("the dog").unwrap();
        assert_eq!(dog.ids, [2, 4, 1, 3], "an unknown word is [UNK], and no padding of its own");
        let batch = TokenBatch::pad(&[&cats, &dog], tokenizer.pad_id());
        assert_eq!((batch.rows, batch.length), (2, 6));
        assert_eq!(&batch.ids[6..], &[2, 4, 1, 3, 0, 0]);
        assert_eq!(&batch.mask[6..], &[1, 1, 1, 1, 0, 0]);
        assert_eq!(batch.type_ids, vec![0; 12]);
    }

    #[test]
    fn a_file_that_is_not_a_tokenizer_is_an_error_naming_it() {
        for bad in [&b"{}"[..], b"not json", b"{\"model\": {\"type\": \"WordPiece\"}}"] {
            let err = TextTokenizer::from_bytes(bad, "tok.json", 16).unwrap_err().to_string();
            assert!(err.contains("tok.json") && err.contains("tokenizer.json"), "{err}");
        }
        // What fuzzing found: the library panicked on it; now an error naming the file.
        let crash = include_bytes!("testdata/tokenizer-fuzz-crash.json");
        let err = TextTokenizer::from_bytes(crash, "tok.json", 16).unwrap_err().to_string();
        assert!(err.contains("tok.json: not a tokenizer.json nml reads"), "{err}");
        // Ones whose template names a special token they do not define, which panicked the
        // library when encoding: refused when read, also where the processor's "type" is
        // misspelt (the library reads it by shape all the same).
        let crash = include_str!("testdata/tokenizer-fuzz-crash-encode.json");
        let misspelt = include_str!("testdata/tokenizer-fuzz-crash-type.json");
        let renamed = tiny_bert_tokenizer().replace("\"[SEP]\": {", "\"[SUP]\": {");
        for file in [crash.to_string(), misspelt.to_string(), renamed] {
            let err = TextTokenizer::from_bytes(file.as_bytes(), "tok.json", 16).unwrap_err();
            assert!(err.to_string().contains("special_tokens do not define"), "{err}");
        }
        let no_pad = tiny_bert_tokenizer().replace("[PAD]", "[NOPE]");
        let err = TextTokenizer::from_bytes(no_pad.as_bytes(), "tok.json", 16).unwrap_err();
        assert!(err.to_string().contains("no [PAD]"), "{err}");
    }
}
