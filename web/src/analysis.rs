//! What the page computes, kept apart from the UI so it is testable natively and in WASM: reading
//! the files a person picks, spectra, text embedding and one tuning run (the work of the page's
//! Web Worker).

use nml_core::data::{TextFormat, TextSet};
use nml_core::device::ComputeDevice;
use nml_core::models::SentenceEncoder;
use nml_core::spectrum::{GramPrecision, Preprocess, SpectrumReport, measure};
use nml_core::tune::{EpochStats, TuneConfig, TuneReport, tune_async};
use nml_core::{FeatureSet, NmlError, Observer, Result};
use serde::{Deserialize, Serialize};

/// Files larger than this are refused before they are read: the page holds every set in memory
/// (as f32, plus a copy per run in the worker).
pub const MAX_FILE_BYTES: f64 = 512.0 * 1024.0 * 1024.0;

/// A file the user picked: its name and bytes.
pub struct Picked {
    pub name: String,
    pub bytes: Vec<u8>,
}

/// Refuses a file too large to hold, by name, before reading it.
pub fn check_size(name: &str, bytes: f64) -> Result<()> {
    if bytes > MAX_FILE_BYTES {
        return Err(NmlError::format(
            name,
            format!(
                "{:.0} MiB is more than this page holds in memory ({:.0} MiB at most)",
                bytes / 1048576.0,
                MAX_FILE_BYTES / 1048576.0
            ),
        ));
    }
    Ok(())
}

/// One safetensors feature set, or a features `.npy` with its labels `.npy` (in either order:
/// the float array is taken as the features).
pub fn feature_set(files: &[Picked]) -> Result<FeatureSet> {
    match files {
        [one] => FeatureSet::from_safetensors(&one.bytes, &one.name),
        [a, b] => FeatureSet::from_npy(&a.bytes, &a.name, &b.bytes, &b.name).or_else(|first| {
            FeatureSet::from_npy(&b.bytes, &b.name, &a.bytes, &a.name).map_err(|_| first)
        }),
        _ => Err(NmlError::Invalid(
            "pick one .safetensors file, or a features .npy and a labels .npy".into(),
        )),
    }
}

/// The device of the page's own work, the spectra of loaded sets: Burn's CPU backend, compiled to
/// WASM. Tuning runs in the worker pick theirs ([`crate::backend::select`]).
pub fn device() -> ComputeDevice {
    ComputeDevice::cpu("in the browser")
}

/// The spectrum the page shows (paper mode: rows L2-normalised, then centred).
pub fn spectrum(set: &FeatureSet) -> Result<SpectrumReport> {
    measure(set, Preprocess::Paper, GramPrecision::Auto, &device().device)
}

/// Everything one tuning run needs; the worker receives it from the page.
pub struct TuneJob {
    pub config: TuneConfig,
    pub train: FeatureSet,
    pub test: FeatureSet,
    pub ood: Vec<(String, FeatureSet)>,
}

/// A finished run: the report, and the full spectra of the test and OOD sets after the head's
/// transform (MLP and NMTune; empty for a linear probe).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TuneResult {
    pub report: TuneReport,
    pub after: Vec<SpectrumReport>,
}

/// Runs `job` on `device` as `nml tune` does, reporting each epoch to `observer`.
pub async fn tune(
    job: &TuneJob,
    device: &ComputeDevice,
    observer: &mut dyn Observer<EpochStats>,
) -> Result<TuneResult> {
    let mut outcome =
        tune_async(&job.train, &job.test, &job.ood, &job.config, &device.device, observer).await?;
    outcome.report.backend = device.description.clone();
    Ok(TuneResult { report: outcome.report, after: outcome.transformed_spectra })
}

/// Whether a picked file is texts to embed (`.jsonl`, `.ndjson`, `.csv`, `.txt`) rather than a
/// feature set.
pub fn is_text_file(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    [".jsonl", ".ndjson", ".csv", ".txt"].iter().any(|ext| lower.ends_with(ext))
}

/// A sentence-transformers model folder as a person picked it: each file under its path in the
/// folder (`config.json`, `1_Pooling/config.json`, ...).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ModelFolder {
    pub name: String,
    pub files: Vec<(String, Vec<u8>)>,
}

impl ModelFolder {
    /// The folder from picked files: `path` is the browser's path of each (the folder's own
    /// name first, when a folder was picked) or its bare name (when files were). Picked as
    /// files, the pooling module's `config.json` is told from the model's by its keys.
    pub fn from_picked(picked: Vec<(String, Vec<u8>)>) -> Self {
        let name = picked
            .iter()
            .find_map(|(p, _)| p.split_once('/').map(|(dir, _)| dir.to_string()))
            .unwrap_or_else(|| "picked model files".to_string());
        let files = picked
            .into_iter()
            .map(|(path, bytes)| {
                let inner = match path.split_once('/') {
                    Some((_, rest)) => rest.to_string(),
                    None if path == "config.json"
                        && std::str::from_utf8(&bytes)
                            .is_ok_and(|t| t.contains("pooling_mode_mean_tokens")) =>
                    {
                        "1_Pooling/config.json".to_string()
                    }
                    None => path,
                };
                (inner, bytes)
            })
            .collect();
        Self { name, files }
    }

    /// The files nml reads from a sentence-transformers folder.
    pub const FILES: [&str; 6] = [
        "config.json",
        "model.safetensors",
        "tokenizer.json",
        "sentence_bert_config.json",
        "modules.json",
        "1_Pooling/config.json",
    ];

    /// The folder with only the files nml reads, or an error naming the first one missing.
    pub fn checked(mut self) -> Result<Self> {
        self.files.retain(|(n, _)| Self::FILES.contains(&n.as_str()));
        match Self::FILES.iter().find(|f| !self.files.iter().any(|(n, _)| n == *f)) {
            Some(missing) => Err(NmlError::format(
                &self.name,
                format!("is not a sentence-transformers model folder: it has no {missing}"),
            )),
            None => Ok(self),
        }
    }

    pub fn bytes(&self) -> usize {
        self.files.iter().map(|(_, b)| b.len()).sum()
    }

    /// The encoder these files hold, on `device`.
    pub fn encoder(&self, device: &ComputeDevice) -> Result<SentenceEncoder> {
        let file = |name: &str| -> Result<Option<Vec<u8>>> {
            Ok(self.files.iter().find(|(n, _)| n == name).map(|(_, b)| b.clone()))
        };
        SentenceEncoder::from_files(&file, &self.name, &device.device, true)
    }
}

/// Texts per forward pass in the page.
pub const EMBED_BATCH: usize = 16;

/// A text file's texts embedded by `encoder`, and the spectrum of the result; `progress` hears
/// how many texts are done after each batch.
pub async fn embed_texts(
    encoder: &SentenceEncoder,
    text: &Picked,
    device: &ComputeDevice,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<(FeatureSet, SpectrumReport)> {
    let texts = TextSet::from_bytes(
        &text.bytes,
        &text.name,
        TextFormat::of(std::path::Path::new(&text.name)),
    )?;
    let total = texts.len();
    let set = encoder
        .features_async(&texts, EMBED_BATCH, &device.device, &mut |done| progress(done, total))
        .await?
        .with_domain(Some(text.name.clone()));
    let report = measure(&set, Preprocess::Paper, GramPrecision::Auto, &device.device)?;
    Ok((set, report))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::{tiny_model_files, tiny_model_folder, topic_jsonl};

    /// A folder picked as bare files is read as a folder picked whole; the page embeds a text
    /// file exactly as `nml embed` does, and a folder that lacks a file is refused by name.
    #[test]
    fn the_page_embeds_texts_as_the_command_line_does() {
        let folder = tiny_model_folder();
        assert!(folder.files.iter().any(|(n, _)| n == "1_Pooling/config.json"));
        let whole = ModelFolder::from_picked(
            folder.files.iter().map(|(n, b)| (format!("tiny/{n}"), b.clone())).collect(),
        )
        .checked()
        .unwrap();
        assert_eq!((whole.name.as_str(), whole.files.len()), ("tiny", 6));
        let device = device();
        let encoder = folder.encoder(&device).unwrap();
        let text = Picked { name: "topics.jsonl".into(), bytes: topic_jsonl() };
        let mut seen = Vec::new();
        let (set, report) = nml_core::readback::blocking(embed_texts(
            &encoder,
            &text,
            &device,
            &mut |done, total| seen.push((done, total)),
        ))
        .unwrap();
        assert_eq!((set.n(), set.d(), set.class_names().len()), (6, 16, 2));
        assert_eq!(seen.last(), Some(&(6, 6)));
        assert!(report.metrics.sve > 0.0);
        let texts =
            TextSet::from_bytes(&topic_jsonl(), "topics.jsonl", TextFormat::JsonLines).unwrap();
        let native = encoder.features(&texts, 32, &device.device, &mut |_| {}).unwrap();
        assert_eq!(set.features(), native.features());
        let partial = ModelFolder::from_picked(tiny_model_files()[..4].to_vec());
        let err = partial.checked().unwrap_err().to_string();
        assert!(err.contains("has no modules.json"), "{err}");
        let bad = Picked { name: "bad.jsonl".into(), bytes: b"{\"text\": \"win\"}\n{}\n".to_vec() };
        let err =
            nml_core::readback::blocking(embed_texts(&encoder, &bad, &device, &mut |_, _| {}))
                .unwrap_err()
                .to_string();
        assert!(err.contains("bad.jsonl:2"), "{err}");
    }
}
