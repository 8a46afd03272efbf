use burn::tensor::Tensor;
use serde::{Deserialize, Serialize};

use crate::error::{NmlError, Result};
use crate::ops::l2_normalize_rows;

/// How features are prepared before their singular values are taken. The name is written into
/// every report so numbers from different modes are never compared by accident.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Preprocess {
    /// As the authors' analysis code: each row L2-normalised, then each row minus its own mean
    /// over the D dimensions.
    #[default]
    Paper,
    /// Columns centred (the covariance spectrum).
    Centered,
    /// The features as they are.
    Raw,
}

impl Preprocess {
    pub fn name(self) -> &'static str {
        match self {
            Self::Paper => "paper",
            Self::Centered => "centered",
            Self::Raw => "raw",
        }
    }

    pub fn apply(self, x: Tensor<2>) -> Tensor<2> {
        match self {
            Self::Paper => {
                let unit = l2_normalize_rows(x);
                let row_mean = unit.clone().mean_dim(1);
                unit - row_mean
            }
            Self::Centered => {
                let col_mean = x.clone().mean_dim(0);
                x - col_mean
            }
            Self::Raw => x,
        }
    }
}

impl std::str::FromStr for Preprocess {
    type Err = NmlError;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "paper" => Ok(Self::Paper),
            "centered" | "centred" => Ok(Self::Centered),
            "raw" => Ok(Self::Raw),
            other => Err(NmlError::Invalid(format!(
                "unknown spectrum mode {other:?}; use paper, centered or raw"
            ))),
        }
    }
}
