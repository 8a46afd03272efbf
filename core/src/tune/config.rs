use serde::{Deserialize, Serialize};

use crate::error::{NmlError, Result};

/// The downstream tuning methods that work on frozen features.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Method {
    /// Linear probe: a linear classifier on the features.
    Lp,
    /// The NMTune residual MLP and linear classifier, trained with cross-entropy only.
    Mlp,
    /// The residual MLP with the consistency, covariance and singular-value regularisers.
    Nmtune,
    /// The k-nearest-neighbour vote by cosine similarity (see [`super::knn`]); nothing trains.
    Knn,
}

impl Method {
    pub fn name(self) -> &'static str {
        match self {
            Self::Lp => "lp",
            Self::Mlp => "mlp",
            Self::Nmtune => "nmtune",
            Self::Knn => "knn",
        }
    }

    /// Whether the head transforms the features before its classifier (the MLPs).
    pub fn has_transform(self) -> bool {
        matches!(self, Self::Mlp | Self::Nmtune)
    }

    /// Whether the method trains a head (all but the k-NN probe).
    pub fn trains(self) -> bool {
        self != Self::Knn
    }
}

impl std::str::FromStr for Method {
    type Err = NmlError;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "lp" => Ok(Self::Lp),
            "mlp" => Ok(Self::Mlp),
            "nmtune" => Ok(Self::Nmtune),
            "knn" => Ok(Self::Knn),
            other => Err(NmlError::Invalid(format!(
                "unknown method {other:?}; use lp, mlp, nmtune or knn"
            ))),
        }
    }
}

/// Every knob of a tuning run. The defaults are the paper's recipe for the method
/// ([`TuneConfig::for_method`]); validation, early stopping and selection are off by default.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TuneConfig {
    pub method: Method,
    pub epochs: usize,
    pub batch_size: usize,
    /// Peak learning rate of AdamW; the schedule is a per-step cosine down to zero.
    pub lr: f64,
    pub weight_decay: f64,
    /// Hidden width of the residual MLP as a multiple of D (the paper uses 4).
    pub hidden_mult: usize,
    /// Weight of MSE(normalize(Z), normalize(F)).
    pub w_mse: f64,
    /// Weight of the off-diagonal covariance penalty.
    pub w_cov: f64,
    /// Weight of the top-k singular value share (subtracted from the loss).
    pub w_svd: f64,
    pub top_k: usize,
    pub seed: u64,
    /// Per-class fraction of the training set to use, in (0, 1].
    pub data_fraction: f64,
    /// Stratified share of the (fraction of the) training set held out for validation; 0 = none.
    pub val_fraction: f64,
    /// Stop after this many epochs without a better validation accuracy and keep the best
    /// epoch's head; 0 = train all epochs. Needs `val_fraction > 0`.
    pub patience: usize,
    /// Pick the head's recipe from a small grid on the validation split (see
    /// [`super::select::grid`]); without a `val_fraction` it holds out
    /// [`SELECT_VAL_FRACTION`].
    pub select: bool,
    /// The residual MLP's per-dimension output scale at the start: 1 is the paper's; 0 starts
    /// the head as a linear probe on the features, which the MLP then has to earn its way from.
    #[serde(default = "default_residual_scale_init")]
    pub residual_scale_init: f64,
    /// The neighbours that vote in the k-NN probe (`knn` only).
    #[serde(default = "default_neighbours")]
    pub neighbours: usize,
}

/// The stratified validation share `select` holds out when none is given.
pub const SELECT_VAL_FRACTION: f64 = 0.1;

fn default_residual_scale_init() -> f64 {
    1.0
}

fn default_neighbours() -> usize {
    super::knn::DEFAULT_NEIGHBOURS
}

impl TuneConfig {
    pub fn for_method(method: Method) -> Self {
        let nmtune = method == Method::Nmtune;
        Self {
            method,
            epochs: 30,
            batch_size: 64,
            lr: if method == Method::Lp { 0.01 } else { 1e-3 },
            weight_decay: 1e-4,
            hidden_mult: 4,
            w_mse: if nmtune { 1.0 } else { 0.0 },
            w_cov: if nmtune { 0.04 } else { 0.0 },
            w_svd: if nmtune { 0.001 } else { 0.0 },
            top_k: 5,
            seed: 0,
            data_fraction: 1.0,
            val_fraction: 0.0,
            patience: 0,
            select: false,
            residual_scale_init: default_residual_scale_init(),
            neighbours: default_neighbours(),
        }
    }

    /// The config as it runs: `select` without a validation split holds out
    /// [`SELECT_VAL_FRACTION`] of the training set.
    pub fn resolved(&self) -> Self {
        let mut c = self.clone();
        if c.select && c.val_fraction == 0.0 {
            c.val_fraction = SELECT_VAL_FRACTION;
        }
        c
    }

    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(NmlError::Invalid(m));
        if self.epochs == 0 {
            return bad("epochs must be at least 1".into());
        }
        if self.batch_size < 2 {
            return bad(
                "batch_size must be at least 2 (batch norm and the batch covariance need two rows)"
                    .into(),
            );
        }
        if !(self.lr > 0.0 && self.lr.is_finite()) {
            return bad(format!("lr must be positive, got {}", self.lr));
        }
        for (name, v) in [
            ("weight_decay", self.weight_decay),
            ("w_mse", self.w_mse),
            ("w_cov", self.w_cov),
            ("w_svd", self.w_svd),
            ("residual_scale_init", self.residual_scale_init),
        ] {
            if !(v >= 0.0 && v.is_finite()) {
                return bad(format!("{name} must be a non-negative number, got {v}"));
            }
        }
        if self.hidden_mult == 0 || self.top_k == 0 {
            return bad("hidden_mult and top_k must be at least 1".into());
        }
        if !(self.data_fraction > 0.0 && self.data_fraction <= 1.0) {
            return bad(format!("data_fraction must be in (0, 1], got {}", self.data_fraction));
        }
        if !(0.0..1.0).contains(&self.val_fraction) {
            return bad(format!("val_fraction must be in [0, 1), got {}", self.val_fraction));
        }
        if self.patience > 0 && self.val_fraction == 0.0 {
            return bad(
                "early stopping (patience) needs a validation split (val_fraction > 0)".into()
            );
        }
        if self.method == Method::Knn {
            if self.neighbours == 0 {
                return bad("the k-NN probe needs at least 1 neighbour".into());
            }
            if self.select || self.patience > 0 || self.val_fraction > 0.0 {
                return bad(
                    "the k-NN probe trains nothing: --select, patience and a validation split do not apply"
                        .into(),
                );
            }
        }
        if self.select && self.method == Method::Lp {
            return bad(
                "--select chooses NMTune's weights and MLP width; it does not apply to lp".into()
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_papers_recipe() {
        let lp = TuneConfig::for_method(Method::Lp);
        assert_eq!((lp.lr, lp.weight_decay, lp.batch_size, lp.epochs), (0.01, 1e-4, 64, 30));
        let nm = TuneConfig::for_method(Method::Nmtune);
        assert_eq!((nm.lr, nm.w_mse, nm.w_cov, nm.w_svd, nm.top_k), (1e-3, 1.0, 0.04, 0.001, 5));
        let mlp = TuneConfig::for_method(Method::Mlp);
        assert_eq!((mlp.w_mse, mlp.w_cov, mlp.w_svd), (0.0, 0.0, 0.0));
        let knn = TuneConfig::for_method(Method::Knn);
        assert_eq!(knn.neighbours, 20);
        for c in [lp, nm, mlp, knn] {
            c.validate().unwrap();
        }
    }

    #[test]
    fn rejects_unusable_settings() {
        let mut c = TuneConfig::for_method(Method::Nmtune);
        let select = TuneConfig { select: true, ..c.clone() };
        select.validate().unwrap();
        assert_eq!(select.resolved().val_fraction, SELECT_VAL_FRACTION, "select implies a split");
        let given = TuneConfig { val_fraction: 0.3, ..select };
        assert_eq!(given.resolved().val_fraction, 0.3);
        assert_eq!(c.resolved(), c, "nothing changes without select");
        c.patience = 3;
        assert!(c.validate().unwrap_err().to_string().contains("validation split"));
        c.val_fraction = 0.1;
        c.validate().unwrap();
        c.batch_size = 1;
        assert!(c.validate().is_err());
        let knn = TuneConfig { val_fraction: 0.1, ..TuneConfig::for_method(Method::Knn) };
        assert!(knn.validate().unwrap_err().to_string().contains("trains nothing"));
        let none = TuneConfig { neighbours: 0, ..TuneConfig::for_method(Method::Knn) };
        assert!(none.validate().unwrap_err().to_string().contains("at least 1 neighbour"));
    }

    /// A config saved before the k-NN probe and the residual scale's start existed reads with
    /// their defaults.
    #[test]
    fn older_configs_read_with_the_default_neighbours() {
        let mut json = serde_json::to_value(TuneConfig::for_method(Method::Lp)).unwrap();
        json.as_object_mut().unwrap().remove("neighbours");
        json.as_object_mut().unwrap().remove("residual_scale_init");
        let read: TuneConfig = serde_json::from_value(json).unwrap();
        assert_eq!(read, TuneConfig::for_method(Method::Lp));
    }
}
