//! The binary form of CIFAR-10 and CIFAR-100 (`data_batch_N.bin`, `test_batch.bin`;
//! `train.bin`, `test.bin`): how the sets ship without Python pickles. Each record is the label
//! byte(s) and then a 32 x 32 image as three 1024-byte planes (red, green, blue), row-major.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use super::ImageSet;
use crate::error::{NmlError, Result};
use crate::io::read_file;

const SIDE: usize = 32;
const PLANE: usize = SIDE * SIDE;

/// Which of the two CIFAR layouts a file is in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CifarKind {
    /// One label byte (10 classes) per record.
    Cifar10,
    /// A coarse (20 superclasses) and a fine (100 classes) label byte per record; nml keeps the
    /// fine label, as torchvision's `CIFAR100` does.
    Cifar100,
}

impl CifarKind {
    pub fn name(self) -> &'static str {
        match self {
            Self::Cifar10 => "cifar10",
            Self::Cifar100 => "cifar100",
        }
    }

    fn label_bytes(self) -> usize {
        match self {
            Self::Cifar10 => 1,
            Self::Cifar100 => 2,
        }
    }

    fn num_classes(self) -> usize {
        match self {
            Self::Cifar10 => 10,
            Self::Cifar100 => 100,
        }
    }

    /// The training files of the set in a folder, in order.
    fn training_files(self, dir: &Path) -> Vec<PathBuf> {
        match self {
            Self::Cifar10 => (1..=5).map(|k| dir.join(format!("data_batch_{k}.bin"))).collect(),
            Self::Cifar100 => vec![dir.join("train.bin")],
        }
    }
}

impl fmt::Display for CifarKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for CifarKind {
    type Err = NmlError;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "cifar10" => Ok(Self::Cifar10),
            "cifar100" => Ok(Self::Cifar100),
            _ => Err(NmlError::Invalid(format!("{s:?} is not cifar10 or cifar100"))),
        }
    }
}

impl ImageSet {
    /// Decodes one CIFAR binary file (any number of records); `name` names it in messages.
    pub fn from_cifar(bytes: &[u8], name: &str, kind: CifarKind) -> Result<ImageSet> {
        let record = kind.label_bytes() + 3 * PLANE;
        if bytes.is_empty() || !bytes.len().is_multiple_of(record) {
            return Err(NmlError::format(
                name,
                format!("{} bytes are not whole {kind} records of {record} bytes", bytes.len()),
            ));
        }
        let n = bytes.len() / record;
        let mut pixels = Vec::with_capacity(n * 3 * PLANE);
        let mut labels = Vec::with_capacity(n);
        for (i, rec) in bytes.chunks_exact(record).enumerate() {
            let label = rec[kind.label_bytes() - 1];
            if usize::from(label) >= kind.num_classes() {
                return Err(NmlError::format(
                    name,
                    format!(
                        "record {i} has label {label}; {kind} has {} classes",
                        kind.num_classes()
                    ),
                ));
            }
            if kind == CifarKind::Cifar100 && rec[0] >= 20 {
                return Err(NmlError::format(
                    name,
                    format!("record {i} has coarse label {}; cifar100 has 20 superclasses", rec[0]),
                ));
            }
            labels.push(u32::from(label));
            let planes = &rec[kind.label_bytes()..];
            for p in 0..PLANE {
                pixels.extend([planes[p], planes[PLANE + p], planes[2 * PLANE + p]]);
            }
        }
        ImageSet::new(name, [SIDE, SIDE, 3], pixels, labels, Some(kind.num_classes()))
    }

    /// Reads a CIFAR binary file, or a folder's training files (`data_batch_1.bin` to
    /// `data_batch_5.bin` for CIFAR-10, `train.bin` for CIFAR-100) one after another.
    pub fn read_cifar(path: &Path, kind: CifarKind) -> Result<ImageSet> {
        let files =
            if path.is_dir() { kind.training_files(path) } else { vec![path.to_path_buf()] };
        let (mut pixels, mut labels) = (Vec::new(), Vec::new());
        for file in &files {
            // Each file decoded alone, so a bad record is named in its own file.
            let set = ImageSet::from_cifar(&read_file(file)?, &file.display().to_string(), kind)?;
            pixels.extend_from_slice(set.pixels());
            labels.extend_from_slice(set.labels());
        }
        let name = path.display().to_string();
        ImageSet::new(name, [SIDE, SIDE, 3], pixels, labels, Some(kind.num_classes()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// CIFAR records with the given fine labels; pixel (y, x) of plane c is `y + x + 40 c`.
    fn records(kind: CifarKind, labels: &[u8]) -> Vec<u8> {
        let mut bytes = Vec::new();
        for &label in labels {
            if kind == CifarKind::Cifar100 {
                bytes.push(label / 5);
            }
            bytes.push(label);
            for c in 0..3 {
                bytes.extend((0..PLANE).map(|p| (p / SIDE + p % SIDE + 40 * c) as u8));
            }
        }
        bytes
    }

    #[test]
    fn records_become_rgb_images_with_their_labels() {
        for kind in [CifarKind::Cifar10, CifarKind::Cifar100] {
            let set = ImageSet::from_cifar(&records(kind, &[3, 7, 0]), "batch.bin", kind).unwrap();
            assert_eq!((set.n(), set.height(), set.channels()), (3, 32, 3));
            assert_eq!((set.labels(), set.num_classes()), (&[3, 7, 0][..], kind.num_classes()));
            // Pixel (2, 5) of image 1: planes interleaved into R, G, B.
            let at = (2 * SIDE + 5) * 3;
            assert_eq!(&set.image(1)[at..at + 3], &[7, 47, 87]);
        }
    }

    #[test]
    fn folders_read_the_training_files_in_order() {
        let dir = tempfile::tempdir().unwrap();
        for k in 1..=5u8 {
            let bytes = records(CifarKind::Cifar10, &[k, k + 1]);
            std::fs::write(dir.path().join(format!("data_batch_{k}.bin")), bytes).unwrap();
        }
        let set = ImageSet::read_cifar(dir.path(), CifarKind::Cifar10).unwrap();
        assert_eq!(set.labels(), &[1, 2, 2, 3, 3, 4, 4, 5, 5, 6]);
        std::fs::remove_file(dir.path().join("data_batch_4.bin")).unwrap();
        let err = ImageSet::read_cifar(dir.path(), CifarKind::Cifar10).unwrap_err().to_string();
        assert!(err.contains("data_batch_4.bin"), "{err}");
    }

    #[test]
    fn bad_files_name_the_file_and_record() {
        let mut bytes = records(CifarKind::Cifar10, &[1, 2]);
        let err = |bytes: &[u8], kind| {
            ImageSet::from_cifar(bytes, "b.bin", kind).unwrap_err().to_string()
        };
        assert!(err(&bytes[..100], CifarKind::Cifar10).contains("not whole cifar10 records"));
        // A CIFAR-10 file read as CIFAR-100 does not divide into its records.
        assert!(err(&bytes, CifarKind::Cifar100).contains("3074 bytes"));
        bytes[3073] = 10;
        assert!(err(&bytes, CifarKind::Cifar10).contains("b.bin: record 1 has label 10"));
        let mut hundred = records(CifarKind::Cifar100, &[99]);
        hundred[0] = 20;
        assert!(err(&hundred, CifarKind::Cifar100).contains("coarse label 20"));
        assert!(err(&[], CifarKind::Cifar10).contains("0 bytes"));
    }
}
