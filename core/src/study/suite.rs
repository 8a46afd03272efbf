//! A study's definition: noise ratios, seeds, the pre-training recipe, the downstream tasks and
//! how each is tuned. Written as TOML (see the presets in `native/suites/`), checked on load.
//! A suite is of images ([`Suite`]) or, with `modality = "text"`, of texts ([`TextSuite`]).

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::data::{ImageSource, TextSource};
use crate::error::{NmlError, Result};
use crate::finetune::{FinetuneConfig, FinetuneMethod, LoraTargets};
use crate::noise::NoiseKind;
use crate::pretrain::{ModelShape, Objective, PretrainConfig, TextPretrainConfig};
use crate::tune::{Method, TuneConfig};

/// What a suite's encoders read.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Modality {
    #[default]
    Images,
    Text,
}

fn is_images(m: &Modality) -> bool {
    *m == Modality::Images
}

/// A study of image encoders. See the module documentation.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Suite {
    /// `images` (the default) for this kind of suite.
    #[serde(default, skip_serializing_if = "is_images")]
    pub modality: Modality,
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
    pub methods: Vec<StudyHead>,
    pub epochs: usize,
    pub fractions: Vec<f64>,
}

impl TuneSuite {
    /// The config of `head` at one data fraction and seed: the method's recipe with the
    /// suite's epochs.
    pub fn config(&self, head: StudyHead, fraction: f64, seed: u64) -> TuneConfig {
        TuneConfig {
            epochs: self.epochs,
            data_fraction: fraction,
            seed,
            select: head.select,
            ..TuneConfig::for_method(head.method)
        }
    }
}

/// A head a study tunes: a method as the paper runs it (`lp`, `mlp`, `nmtune`, `knn`), or
/// with its recipe picked on a validation split (`mlp-select`, `nmtune-select`; see
/// [`crate::tune::grid`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StudyHead {
    pub method: Method,
    pub select: bool,
}

impl StudyHead {
    pub fn name(self) -> &'static str {
        match (self.method, self.select) {
            (Method::Mlp, true) => "mlp-select",
            (Method::Nmtune, true) => "nmtune-select",
            (method, _) => method.name(),
        }
    }
}

impl From<Method> for StudyHead {
    fn from(method: Method) -> Self {
        Self { method, select: false }
    }
}

impl std::str::FromStr for StudyHead {
    type Err = NmlError;
    fn from_str(s: &str) -> Result<Self> {
        match s.strip_suffix("-select") {
            Some("mlp") => Ok(Self { method: Method::Mlp, select: true }),
            Some("nmtune") => Ok(Self { method: Method::Nmtune, select: true }),
            Some(other) => Err(NmlError::Invalid(format!(
                "{other}-select: only mlp and nmtune have a recipe to select"
            ))),
            None => s.parse::<Method>().map(Self::from).map_err(|_| {
                NmlError::Invalid(format!(
                    "unknown head {s:?}; use lp, mlp, nmtune, knn, mlp-select or nmtune-select"
                ))
            }),
        }
    }
}

impl Serialize for StudyHead {
    fn serialize<S: serde::Serializer>(
        &self,
        serializer: S,
    ) -> std::result::Result<S::Ok, S::Error> {
        serializer.serialize_str(self.name())
    }
}

impl<'de> Deserialize<'de> for StudyHead {
    fn deserialize<D: serde::Deserializer<'de>>(
        deserializer: D,
    ) -> std::result::Result<Self, D::Error> {
        let name = String::deserialize(deserializer)?;
        name.parse().map_err(serde::de::Error::custom)
    }
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
    /// The linears LoRA adapts; the method's default (the MLP's) when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lora_targets: Option<LoraTargets>,
    /// WiSE-FT: each fine-tuned encoder also scored mixed with its pre-trained weights at these
    /// shares (see [`crate::finetune::interpolate`]), as methods named like `ft-wise0.5`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub wise_alphas: Vec<f64>,
}

impl FinetuneSuite {
    /// The config of `method` at `seed`.
    pub fn config(&self, method: FinetuneMethod, seed: u64) -> FinetuneConfig {
        let mut base = FinetuneConfig::for_method(method);
        if let Some(targets) = self.lora_targets {
            base.lora.targets = targets;
        }
        FinetuneConfig {
            epochs: self.epochs,
            lr: self.lr.unwrap_or(base.lr),
            batch_size: self.batch_size.unwrap_or(base.batch_size),
            seed,
            wise_alphas: self.wise_alphas.clone(),
            ..base
        }
    }

    /// The name of `method`'s WiSE-FT mix at `alpha`, as its rows carry it.
    pub fn wise_name(method: FinetuneMethod, alpha: f64) -> String {
        format!("{}-wise{alpha}", method.name())
    }

    /// The methods' names as rows carry them: each method, then its WiSE-FT mixes.
    pub fn method_names(&self) -> Vec<String> {
        self.methods
            .iter()
            .flat_map(|&m| {
                std::iter::once(m.name().to_string())
                    .chain(self.wise_alphas.iter().map(move |&a| Self::wise_name(m, a)))
            })
            .collect()
    }

    pub fn validate(&self) -> Result<()> {
        if self.methods.is_empty() || self.epochs == 0 {
            return Err(NmlError::Invalid(
                "fine-tuning needs at least one method and one epoch".into(),
            ));
        }
        for &m in &self.methods {
            self.config(m, 0).validate()?;
        }
        Ok(())
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
        if self.modality != Modality::Images {
            return Err(NmlError::Invalid("a suite of images has modality = \"images\"".into()));
        }
        check_grid(&self.ratios, &self.seeds, self.tasks.len(), &self.tune)?;
        if self.objectives.is_empty() {
            return Err(NmlError::Invalid("needs at least one objective".into()));
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
            lora_targets: None,
            wise_alphas: Vec::new(),
        });
        if let Some(methods) = methods {
            plan.methods = methods;
        }
        plan.validate()?;
        if let Some(m) = plan.methods.iter().find(|m| m.uses_lora() && !vit) {
            return Err(NmlError::Invalid(format!(
                "{}: LoRA adapts a ViT's linears, and this suite pre-trains a ResNet (use ft, ft-nmtune, or a ViT suite such as the vit preset)",
                m.name()
            )));
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

/// The checks every suite shares: its grid of ratios, seeds, tasks, heads and fractions.
fn check_grid(ratios: &[f64], seeds: &[u64], tasks: usize, tune: &TuneSuite) -> Result<()> {
    let bad = |m: &str| Err(NmlError::Invalid(m.to_string()));
    if ratios.is_empty() || seeds.is_empty() || tasks == 0 || tune.methods.is_empty() {
        return bad("needs at least one ratio, seed, task and method");
    }
    if ratios.iter().any(|r| !(0.0..=1.0).contains(r)) {
        return bad("ratios must be in [0, 1]");
    }
    if tune.fractions.is_empty() || tune.fractions.iter().any(|f| !(*f > 0.0 && *f <= 1.0)) {
        return bad("fractions must be in (0, 1]");
    }
    Ok(())
}

/// A study of text encoders: supervised pre-training on noisy labels of `pretrain_data`, then
/// every text task's frozen features tuned as for images, and, when asked, the encoder itself
/// (LoRA on its attention and FFN linears, or every weight).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TextSuite {
    /// `text` for this kind of suite.
    pub modality: Modality,
    pub ratios: Vec<f64>,
    pub seeds: Vec<u64>,
    pub noise_kind: NoiseKind,
    pub pretrain_data: TextSource,
    pub pretrain: TextPretrainConfig,
    pub tune: TuneSuite,
    #[serde(default)]
    pub finetune: Option<FinetuneSuite>,
    #[serde(rename = "task")]
    pub tasks: Vec<TextTask>,
}

/// A downstream text task: a head is trained on `train`, tested on `test` (in domain) and on
/// every `ood` set (same labels, shifted texts).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TextTask {
    pub name: String,
    pub train: TextSource,
    pub test: TextSource,
    #[serde(default)]
    pub ood: BTreeMap<String, TextSource>,
}

impl TextSuite {
    pub fn validate(&self) -> Result<()> {
        if self.modality != Modality::Text {
            return Err(NmlError::Invalid("a suite of texts has modality = \"text\"".into()));
        }
        check_grid(&self.ratios, &self.seeds, self.tasks.len(), &self.tune)?;
        self.pretrain.validate()
    }

    /// The fine-tuning a study runs: the suite's own `[finetune]` section, or LoRA with and
    /// without NMTune's terms on the attention and FFN linears, with `methods` replacing its
    /// methods when given.
    pub fn finetune_plan(&self, methods: Option<Vec<FinetuneMethod>>) -> Result<FinetuneSuite> {
        let mut plan = self.finetune.clone().unwrap_or_else(|| FinetuneSuite {
            methods: vec![FinetuneMethod::Lora, FinetuneMethod::LoraNmtune],
            epochs: 2,
            lr: None,
            batch_size: Some(16),
            lora_targets: Some(LoraTargets::MlpAndAttention),
            wise_alphas: Vec::new(),
        });
        if let Some(methods) = methods {
            plan.methods = methods;
        }
        plan.validate()?;
        Ok(plan)
    }

    /// The pre-training config of one run of the study.
    pub fn pretrain_config(&self, ratio: f64, seed: u64) -> TextPretrainConfig {
        TextPretrainConfig { noise: self.noise_kind.at(ratio), seed, ..self.pretrain.clone() }
    }
}

/// A suite of either kind, as a study runs it and its results record it.
#[derive(Clone, Debug, Serialize, Deserialize)]
// Text first: an image suite's JSON has no `modality`, which a text suite requires, so
// reading never takes one kind for the other.
#[serde(untagged)]
pub enum StudySuite {
    Text(Box<TextSuite>),
    Images(Box<Suite>),
}

impl StudySuite {
    /// Reads and checks a suite written as TOML, of images or (with `modality = "text"`) of
    /// texts; `name` (a path or a preset) is used in messages.
    pub fn from_toml(text: &str, name: &str) -> Result<StudySuite> {
        let table: toml::Table =
            toml::from_str(text).map_err(|e| NmlError::format(name, e.to_string()))?;
        match table.get("modality").and_then(toml::Value::as_str) {
            Some("text") => {
                let suite: TextSuite =
                    toml::from_str(text).map_err(|e| NmlError::format(name, e.to_string()))?;
                suite.validate().map_err(|e| NmlError::format(name, e.to_string()))?;
                Ok(Self::Text(Box::new(suite)))
            }
            None | Some("images") => Ok(Self::Images(Box::new(Suite::from_toml(text, name)?))),
            Some(other) => Err(NmlError::format(
                name,
                format!("modality {other:?}: a suite is of \"images\" or \"text\""),
            )),
        }
    }

    /// The same suite with seeds `0..n`.
    pub fn with_seeds(self, n: u64) -> StudySuite {
        match self {
            Self::Images(s) => Self::Images(Box::new(s.with_seeds(n))),
            Self::Text(mut s) => {
                s.seeds = (0..n).collect();
                Self::Text(s)
            }
        }
    }

    pub fn ratios(&self) -> &[f64] {
        match self {
            Self::Images(s) => &s.ratios,
            Self::Text(s) => &s.ratios,
        }
    }

    pub fn seeds(&self) -> &[u64] {
        match self {
            Self::Images(s) => &s.seeds,
            Self::Text(s) => &s.seeds,
        }
    }

    pub fn noise_kind(&self) -> NoiseKind {
        match self {
            Self::Images(s) => s.noise_kind,
            Self::Text(s) => s.noise_kind,
        }
    }

    pub fn tune(&self) -> &TuneSuite {
        match self {
            Self::Images(s) => &s.tune,
            Self::Text(s) => &s.tune,
        }
    }

    /// The same suite tuning `heads` on the frozen features instead of its own.
    pub fn with_heads(mut self, heads: Vec<StudyHead>) -> Result<StudySuite> {
        if heads.is_empty() {
            return Err(NmlError::Invalid("a study needs at least one head".into()));
        }
        match &mut self {
            Self::Images(s) => s.tune.methods = heads,
            Self::Text(s) => s.tune.methods = heads,
        }
        Ok(self)
    }

    /// The pre-training objectives compared (text suites pre-train on labels only).
    pub fn objectives(&self) -> Vec<ObjectiveKind> {
        match self {
            Self::Images(s) => s.objectives.clone(),
            Self::Text(_) => vec![ObjectiveKind::Supervised],
        }
    }

    /// Every pre-training run of the study as `(objective, seed, ratio)`, in the order the
    /// study runs them (and [`crate::study::Shard`] numbers them).
    pub fn runs(&self) -> Vec<(ObjectiveKind, u64, f64)> {
        let mut runs = Vec::new();
        for objective in self.objectives() {
            for &seed in self.seeds() {
                runs.extend(self.ratios().iter().map(|&ratio| (objective, seed, ratio)));
            }
        }
        runs
    }

    /// The pre-training data as written.
    pub fn pretrain_data(&self) -> &str {
        match self {
            Self::Images(s) => s.pretrain_data.as_str(),
            Self::Text(s) => s.pretrain_data.as_str(),
        }
    }

    pub fn task_count(&self) -> usize {
        match self {
            Self::Images(s) => s.tasks.len(),
            Self::Text(s) => s.tasks.len(),
        }
    }

    /// The fine-tuning a study of this suite runs when asked (see [`Suite::finetune_plan`] and
    /// [`TextSuite::finetune_plan`]).
    pub fn finetune_plan(&self, methods: Option<Vec<FinetuneMethod>>) -> Result<FinetuneSuite> {
        match self {
            Self::Images(s) => s.finetune_plan(methods),
            Self::Text(s) => s.finetune_plan(methods),
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

    /// Heads read by name; a selected recipe is its own head with its own config.
    #[test]
    fn study_heads_read_by_name() {
        let with_select =
            SMALL.replace(r#"methods = ["lp"]"#, r#"methods = ["lp", "nmtune", "nmtune-select"]"#);
        let suite = Suite::from_toml(&with_select, "s.toml").unwrap();
        let names: Vec<&str> = suite.tune.methods.iter().map(|h| h.name()).collect();
        assert_eq!(names, ["lp", "nmtune", "nmtune-select"]);
        let select = suite.tune.config(suite.tune.methods[2], 0.5, 3);
        assert!(select.select && select.method == Method::Nmtune && select.seed == 3);
        assert!(!suite.tune.config(suite.tune.methods[1], 0.5, 3).select);
        let err = Suite::from_toml(&with_select.replace("nmtune-select", "knn-select"), "s.toml")
            .unwrap_err()
            .to_string();
        assert!(err.contains("knn-select: only mlp and nmtune"), "{err}");
        let json = serde_json::to_string(&suite.tune).unwrap();
        assert!(json.contains(r#""nmtune-select""#), "{json}");
    }
}
