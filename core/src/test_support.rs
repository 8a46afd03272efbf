//! Helpers shared by the unit tests.

use burn::tensor::Device;

use crate::device::{BackendChoice, select};

/// The WGPU device when an adapter exists (a software one such as llvmpipe counts), or `None`
/// after saying why the WGPU half of a test is skipped; with `NML_REQUIRE_WGPU` set (as
/// scripts/test-all does where the software adapter is installed), a missing adapter fails.
pub fn wgpu_or_skip(test: &str) -> Option<Device> {
    match select(BackendChoice::Wgpu) {
        Ok(d) => {
            eprintln!("{test}: running on {}", d.description);
            Some(d.device)
        }
        Err(e) if std::env::var_os("NML_REQUIRE_WGPU").is_some() => {
            panic!("{test}: NML_REQUIRE_WGPU is set but WGPU is unavailable: {e}")
        }
        Err(e) => {
            eprintln!(
                "{test}: WGPU part skipped: {e} (install mesa-vulkan-drivers for a software adapter)"
            );
            None
        }
    }
}

/// `data/fetched/SET` (what scripts/fetch-data brings) when it is there, or `None` after saying
/// the test is skipped; with `NML_REQUIRE_FETCHED` set (as scripts/test-all does after fetching),
/// a missing set fails.
pub fn fetched_or_skip(test: &str, set: &str) -> Option<std::path::PathBuf> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../data/fetched");
    let dir = root.join(set);
    if dir.is_dir() {
        return Some(dir);
    }
    if std::env::var_os("NML_REQUIRE_FETCHED").is_some() {
        panic!("{test}: NML_REQUIRE_FETCHED is set but {} is missing", dir.display());
    }
    eprintln!("{test}: skipped: {} is missing (run scripts/fetch-data)", dir.display());
    None
}

/// A tokenizer.json of BERT's kind (normaliser, pre-tokeniser, WordPiece, [CLS]/[SEP]
/// template) over a tiny vocabulary, with a fixed padding of its own that nml replaces.
pub fn tiny_bert_tokenizer() -> String {
    include_str!("data/testdata/tiny-bert-tokenizer.json").to_string()
}

/// A labelled text set of three topics told apart by their words (over the tiny tokenizer's
/// vocabulary), `per_class` texts each, in a seeded order; with the tokenizer written as
/// `tokenizer.json` in `dir`, for text models trained from scratch.
pub fn topic_texts(dir: &std::path::Path, per_class: usize, seed: u64) -> crate::data::TextSet {
    use rand::seq::SliceRandom;
    use rand::{RngExt, SeedableRng};
    let topics = [
        ("sport", ["goal", "match", "win"]),
        ("business", ["bank", "rates", "profit"]),
        ("politics", ["vote", "party", "minister"]),
    ];
    let mut rng = rand::rngs::ChaCha8Rng::seed_from_u64(seed);
    let mut lines = Vec::new();
    for (topic, words) in topics {
        for _ in 0..per_class {
            let n = rng.random_range(2..6);
            let text: Vec<&str> =
                (0..n)
                    .map(|_| {
                        if rng.random::<f64>() < 0.7 {
                            words[rng.random_range(0..3)]
                        } else {
                            "the"
                        }
                    })
                    .collect();
            lines.push(format!("{{\"text\": \"{}\", \"label\": \"{topic}\"}}", text.join(" ")));
        }
    }
    lines.shuffle(&mut rng);
    std::fs::write(dir.join("tokenizer.json"), tiny_bert_tokenizer()).unwrap();
    let path = dir.join(format!("topics-{seed}.jsonl"));
    std::fs::write(&path, lines.join("\n")).unwrap();
    crate::data::TextSet::read(&path).unwrap()
}
