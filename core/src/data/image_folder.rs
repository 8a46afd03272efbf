//! The files of a class folder (torchvision's `ImageFolder` layout, `ROOT/CLASS/IMAGE.jpg`),
//! listed without being decoded: what both the in-memory reader and the streaming loader start
//! from.

use std::ops::Range;
use std::path::{Path, PathBuf};

use super::{BadImages, ImageSet};
use crate::error::{NmlError, Result};
use crate::io::read_file;

/// The image files of a folder of class subfolders and the class of each: sorted subfolder
/// names are the classes 0, 1, ..., and each class's files are taken in sorted order.
#[derive(Clone, Debug, PartialEq)]
pub struct ImageFolder {
    name: String,
    files: Vec<PathBuf>,
    labels: Vec<u32>,
    class_names: Vec<String>,
}

/// One file of a folder, read.
#[derive(Debug)]
pub enum FolderImage {
    Image(ImageSet),
    /// Left out under [`BadImages::Skip`], as `path: reason`.
    Skipped(String),
}

impl ImageFolder {
    /// Lists `dir`; an unreadable folder, one without class subfolders, or subfolders without
    /// files are errors naming the folder.
    pub fn scan(dir: &Path) -> Result<Self> {
        let name = dir.display().to_string();
        let classes: Vec<_> = sorted_entries(dir)?.into_iter().filter(|p| p.is_dir()).collect();
        if classes.is_empty() {
            return Err(NmlError::format(
                &name,
                "no class subfolders (expected DIR/CLASS/IMAGE.png)",
            ));
        }
        let (mut files, mut labels) = (Vec::new(), Vec::new());
        for (class, folder) in classes.iter().enumerate() {
            for file in sorted_entries(folder)?.into_iter().filter(|f| !f.is_dir()) {
                files.push(file);
                labels.push(class as u32);
            }
        }
        if files.is_empty() {
            return Err(NmlError::format(&name, "no PNG or JPEG images in the class subfolders"));
        }
        let class_names = classes
            .iter()
            .map(|c| c.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default())
            .collect();
        Ok(Self { name, files, labels, class_names })
    }

    /// The files at `range` of the listing (classes keep their numbers and names).
    pub fn range(mut self, range: Range<usize>) -> Result<Self> {
        if range.start >= range.end || range.end > self.files.len() {
            return Err(NmlError::Invalid(format!(
                "{}: range must be A..B with A < B <= {} (the folder's files)",
                self.name,
                self.files.len()
            )));
        }
        self.files = self.files[range.clone()].to_vec();
        self.labels = self.labels[range].to_vec();
        Ok(self)
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The number of files.
    pub fn len(&self) -> usize {
        self.files.len()
    }

    /// Never true: a folder without files is refused by [`ImageFolder::scan`].
    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }

    pub fn file(&self, i: usize) -> &Path {
        &self.files[i]
    }

    pub fn labels(&self) -> &[u32] {
        &self.labels
    }

    pub fn num_classes(&self) -> usize {
        self.class_names.len()
    }

    /// The subfolder names, in label order.
    pub fn class_names(&self) -> &[String] {
        &self.class_names
    }

    /// Reads and decodes file `i` (grey or RGB as the file is, label 0). A file that does not
    /// decode is an error naming it, or under [`BadImages::Skip`] comes back as skipped; a file
    /// that cannot be read at all is always an error.
    pub fn read(&self, i: usize, bad: BadImages) -> Result<FolderImage> {
        let file = &self.files[i];
        let file_name = file.display().to_string();
        match ImageSet::decoded(&read_file(file)?) {
            Ok(image) => Ok(FolderImage::Image(ImageSet::from_decoded(image, &file_name)?)),
            Err(reason) if bad == BadImages::Skip => {
                Ok(FolderImage::Skipped(format!("{file_name}: {reason}")))
            }
            Err(reason) => Err(NmlError::format(
                &file_name,
                format!(
                    "{reason} (add |skip-bad to the source to leave such files out and count them)"
                ),
            )),
        }
    }
}

fn sorted_entries(path: &Path) -> Result<Vec<PathBuf>> {
    let mut entries: Vec<_> = std::fs::read_dir(path)
        .map_err(|e| NmlError::io(path, e))?
        .map(|e| e.map(|e| e.path()).map_err(|e| NmlError::io(path, e)))
        .collect::<Result<_>>()?;
    entries.sort();
    Ok(entries)
}
