//! A tiny sentence-transformers folder made in memory (a 1-layer BERT of width 16 over a
//! 20-word vocabulary), for the page's tests natively and in WASM.

use nml_core::Device;
use nml_core::models::{BertConfig, HF_BERT, pytorch_safetensors};

use crate::analysis::ModelFolder;

/// The folder's files as a person would pick them one by one (the pooling module's
/// `config.json` under the same bare name as the model's).
pub fn tiny_model_files() -> Vec<(String, Vec<u8>)> {
    let model =
        BertConfig::new(20, 16, 1, 2, 32).with_max_position_embeddings(32).init(5, &Device::flex());
    let weights = pytorch_safetensors(&model, &HF_BERT, &[]).expect("the model writes");
    let config = r#"{"vocab_size": 20, "hidden_size": 16, "num_hidden_layers": 1, "num_attention_heads": 2,
        "intermediate_size": 32, "max_position_embeddings": 32, "type_vocab_size": 2, "hidden_act": "gelu"}"#;
    let text = |s: &str| s.as_bytes().to_vec();
    vec![
        ("config.json".into(), text(config)),
        ("model.safetensors".into(), weights),
        (
            "tokenizer.json".into(),
            text(include_str!("../../core/src/data/testdata/tiny-bert-tokenizer.json")),
        ),
        ("sentence_bert_config.json".into(), text(r#"{"max_seq_length": 16}"#)),
        ("modules.json".into(), text(r#"[{"type": "sentence_transformers.models.Normalize"}]"#)),
        ("config.json".into(), text(r#"{"pooling_mode_mean_tokens": true}"#)),
    ]
}

pub fn tiny_model_folder() -> ModelFolder {
    ModelFolder::from_picked(tiny_model_files()).checked().expect("a complete folder")
}

/// Texts of two topics over the tiny vocabulary, as a JSONL file.
pub fn topic_jsonl() -> Vec<u8> {
    let rows = [
        ("the goal match win", "sport"),
        ("bank rates profit", "business"),
        ("win the match", "sport"),
        ("the profit", "business"),
        ("goal goal", "sport"),
        ("rates the bank", "business"),
    ];
    rows.iter()
        .map(|(t, l)| format!("{{\"text\": \"{t}\", \"label\": \"{l}\"}}\n"))
        .collect::<String>()
        .into_bytes()
}
