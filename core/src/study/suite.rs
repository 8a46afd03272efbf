//! A study's definition: noise ratios, seeds, the pre-training recipe, the downstream tasks and
//! how each is tuned. Written as TOML (see the presets in `native/suites/`), checked on load.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::data::ImageSource;
use crate::error::{NmlError, Result};
use crate::finetune::{FinetuneConfig, FinetuneMethod};
use crate::noise::NoiseKind;
use crate::pretrain::{ModelShape, Objective, PretrainConfig};
use crate::tune::Method;

/// See the module documentation.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Suite {
    pub ratios: Vec<f64>,
    pub seeds: Vec<u64>,
    pub noise_kind: NoiseKind,
    pub pretrain_data: ImageSource,
    pub pretrain: PretrainConfig,
    /// Pre-training objectives to compare: noisy labels and/or CLIP-style noisy captions (the
    /// ratio is then the share of swapped captions).
    #[serde(default = "supervised_only")]
    pub objectives: Vec<ObjectiveKind>,
    /// The contrastive objective's settings (default: captions from the digit names).
    #[serde(default)]
    pub contrastive: Option<Objective>,
    pub tune: TuneSuite,
    /// Tuning of the encoder itself, run when the study is asked to fine-tune.
    #[serde(default)]
    pub finetune: Option<FinetuneSuite>,
    #[serde(rename = "task")]
    pub tasks: Vec<Task>,
}

/// What pre-training optimises, as a suite names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum ObjectiveKind {
    /// Cross-entropy on noisy class labels.
    Supervised,
    /// CLIP-style contrastive learning on captions, a share of them swapped.
    Contrastive,
}

impl fmt::Display for ObjectiveKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Supervised => "supervised",
            Self::Contrastive => "contrastive",
        })
    }
}

fn supervised_only() -> Vec<ObjectiveKind> {
    vec![ObjectiveKind::Supervised]
}

/// The heads every task's frozen features are tuned with.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TuneSuite {
    pub methods: Vec<Method>,
    pub epochs: usize,
    pub fractions: Vec<f64>,
}

/// The encoder tuning a study runs when asked to fine-tune.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FinetuneSuite {
    pub methods: Vec<FinetuneMethod>,
    pub epochs: usize,
    /// The head's (and adapters') peak learning rate; the method's default when absent.
    #[serde(default)]
    pub lr: Option<f64>,
    #[serde(default)]
    pub batch_size: Option<usize>,
}

impl FinetuneSuite {
    /// The config of `method` at `seed`.
    pub fn config(&self, method: FinetuneMethod, seed: u64) -> FinetuneConfig {
        let base = FinetuneConfig::for_method(method);
        FinetuneConfig {
            epochs: self.epochs,
            lr: self.lr.unwrap_or(base.lr),
            batch_size: self.batch_size.unwrap_or(base.batch_size),
            seed,
            ..base
        }
    }
}

/// A downstream task: a head is trained on `train`, tested on `test` (in domain) and on every
/// `ood` set (same labels, shifted images).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Task {
    pub name: String,
    pub train: ImageSource,
    pub test: ImageSource,
    #[serde(default)]
    pub ood: BTreeMap<String, ImageSource>,
}

impl Suite {
    /// Reads and checks a suite written as TOML; `name` (a path or a preset) is used in messages.
    pub fn from_toml(text: &str, name: &str) -> Result<Suite> {
        let suite: Suite =
            toml::from_str(text).map_err(|e| NmlError::format(name, e.to_string()))?;
        suite.validate().map_err(|e| NmlError::format(name, e.to_string()))?;
        Ok(suite)
    }

    /// The same suite with seeds `0..n`.
    pub fn with_seeds(mut self, n: u64) -> Suite {
        self.seeds = (0..n).collect();
        self
    }

    pub fn validate(&self) -> Result<()> {
        let bad = |m: &str| Err(NmlError::Invalid(m.to_string()));
        if self.ratios.is_empty()
            || self.seeds.is_empty()
            || self.tasks.is_empty()
            || self.tune.methods.is_empty()
        {
            return bad("needs at least one ratio, seed, task and method");
        }
        if self.ratios.iter().any(|r| !(0.0..=1.0).contains(r)) {
            return bad("ratios must be in [0, 1]");
        }
        if self.tune.fractions.is_empty()
            || self.tune.fractions.iter().any(|f| !(*f > 0.0 && *f <= 1.0))
        {
            return bad("fractions must be in (0, 1]");
        }
        if self.objectives.is_empty() {
            return bad("needs at least one objective");
        }
        self.pretrain.validate()
    }

    pub fn is_vit(&self) -> bool {
        matches!(self.pretrain.model, ModelShape::Vit { .. })
    }

    /// The fine-tuning a study runs: the suite's own `[finetune]` section, or LoRA and full
    /// fine-tuning (full only for a ResNet), with `methods` replacing its methods when given.
    /// LoRA on a ResNet is refused before any work starts.
    pub fn finetune_plan(&self, methods: Option<Vec<FinetuneMethod>>) -> Result<FinetuneSuite> {
        let vit = self.is_vit();
        let mut plan = self.finetune.clone().unwrap_or_else(|| FinetuneSuite {
            methods: if vit {
                vec![FinetuneMethod::Lora, FinetuneMethod::Ft]
            } else {
                vec![FinetuneMethod::Ft]
            },
            epochs: 3,
            lr: None,
            batch_size: None,
        });
        if let Some(methods) = methods {
            plan.methods = methods;
        }
        if plan.methods.is_empty() || plan.epochs == 0 {
            return Err(NmlError::Invalid(
                "fine-tuning needs at least one method and one epoch".into(),
            ));
        }
        if let Some(m) = plan.methods.iter().find(|m| m.uses_lora() && !vit) {
            return Err(NmlError::Invalid(format!(
                "{}: LoRA adapts a ViT's linears, and this suite pre-trains a ResNet (use ft, ft-nmtune, or a ViT suite such as the vit preset)",
                m.name()
            )));
        }
        for &m in &plan.methods {
            plan.config(m, 0).validate()?;
        }
        Ok(plan)
    }

    /// The pre-training config of one run of the study.
    pub fn pretrain_config(
        &self,
        objective: ObjectiveKind,
        ratio: f64,
        seed: u64,
    ) -> PretrainConfig {
        match objective {
            ObjectiveKind::Contrastive => {
                let mut contrastive =
                    self.contrastive.clone().unwrap_or_else(|| Objective::digit_captions(0.0));
                if let Objective::Contrastive { caption_noise, .. } = &mut contrastive {
                    *caption_noise = ratio;
                }
                PretrainConfig {
                    noise: None,
                    objective: contrastive,
                    seed,
                    ..self.pretrain.clone()
                }
            }
            ObjectiveKind::Supervised => PretrainConfig {
                noise: self.noise_kind.at(ratio),
                objective: Objective::Supervised,
                seed,
                ..self.pretrain.clone()
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SMALL: &str = r#"
ratios = [0.0, 0.2]
seeds = [0]
noise_kind = "symmetric"
pretrain_data = "starter:mnist@0..600"

[pretrain]
model = { kind = "resnet", widths = [8, 16], blocks_per_stage = 1 }
image_size = 14
epochs = 1
batch_size = 64
seed = 0
optimizer = { kind = "adamw", lr = 0.005, weight_decay = 0.0005 }
augment = { pad = 1, flip = false }

[tune]
methods = ["lp"]
epochs = 2
fractions = [1.0]

[[task]]
name = "digits"
train = "starter:sklearn-digits@0..300|frame=20/28"
test = "starter:sklearn-digits@300..600|frame=20/28"
"#;

    #[test]
    fn suites_parse_and_bad_ones_are_named() {
        let suite = Suite::from_toml(SMALL, "small.toml").unwrap();
        assert_eq!(suite.tasks[0].train.as_str(), "starter:sklearn-digits@0..300|frame=20/28");
        assert_eq!(
            suite.pretrain_config(ObjectiveKind::Supervised, 0.2, 3).noise,
            NoiseKind::Symmetric.at(0.2)
        );
        let err =
            Suite::from_toml(&SMALL.replace("ratios = [0.0, 0.2]", "ratios = [1.5]"), "s.toml")
                .unwrap_err()
                .to_string();
        assert!(err.starts_with("s.toml: ") && err.contains("ratios must be in [0, 1]"), "{err}");
        let err =
            Suite::from_toml(&SMALL.replace("starter:mnist@0..600", "starter:cifar"), "s.toml")
                .unwrap_err()
                .to_string();
        assert!(err.contains("no built-in image set"), "{err}");
        let err =
            Suite::from_toml(&format!("{SMALL}\nbogus = 1"), "s.toml").unwrap_err().to_string();
        assert!(err.contains("bogus"), "{err}");
        assert!(
            suite
                .finetune_plan(Some(vec![FinetuneMethod::Lora]))
                .unwrap_err()
                .to_string()
                .contains("LoRA adapts a ViT")
        );
    }
}
