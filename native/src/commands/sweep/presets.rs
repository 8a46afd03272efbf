//! The built-in suites (`native/suites/*.toml`): `nml sweep --preset NAME`.

use std::path::Path;

use nml_core::study::StudySuite;
use nml_core::{NmlError, Result};

/// The presets, by name, with what each is for.
pub const PRESETS: [(&str, &str, &str); 5] = [
    (
        "quick",
        include_str!("../../../suites/quick.toml"),
        "the starter digits, minutes on a 2-core CPU",
    ),
    (
        "vit",
        include_str!("../../../suites/vit.toml"),
        "the same with a small ViT, for --finetune lora",
    ),
    ("full", include_str!("../../../suites/full.toml"), "Fashion-MNIST pre-training, for a GPU"),
    (
        "gpu",
        include_str!("../../../suites/gpu.toml"),
        "torchvision's ResNet-18 on CIFAR-100, for a desktop GPU",
    ),
    (
        "text",
        include_str!("../../../suites/text.toml"),
        "all-MiniLM-L6-v2 pre-trained on BBC News topics, transferred to news and food reviews (scripts/fetch-data first), over an hour a seed with --finetune on a 2-core CPU",
    ),
];

/// The suite file at `path`, or the built-in `preset` when there is none; `seeds` replaces the
/// suite's seeds with 0..N.
pub fn load_suite(preset: &str, path: Option<&Path>, seeds: Option<u64>) -> Result<StudySuite> {
    let suite = match path {
        Some(path) => {
            let text = std::fs::read_to_string(path).map_err(|e| NmlError::io(path, e))?;
            StudySuite::from_toml(&text, &path.display().to_string())?
        }
        None => {
            let (_, text, _) =
                PRESETS.iter().find(|(name, _, _)| *name == preset).ok_or_else(|| {
                    let names: Vec<&str> = PRESETS.iter().map(|p| p.0).collect();
                    NmlError::Invalid(format!("unknown preset {preset:?} ({})", names.join(", ")))
                })?;
            StudySuite::from_toml(text, &format!("preset {preset}"))?
        }
    };
    Ok(match seeds {
        Some(n) => suite.with_seeds(n),
        None => suite,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_preset_parses() {
        for (name, _, _) in PRESETS {
            load_suite(name, None, None).unwrap();
        }
        assert!(
            load_suite("huge", None, None)
                .unwrap_err()
                .to_string()
                .contains("quick, vit, full, gpu, text")
        );
    }
}
