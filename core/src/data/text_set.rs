//! Labelled (or unlabelled) texts from the files people keep them in: JSON Lines (one object a
//! line with `text` and an optional `label`), CSV with named columns, plain text (one text a
//! line), or a folder of class subfolders with one text a file (as text corpora such as BBC
//! News ship).

use std::collections::BTreeSet;
use std::path::Path;

use crate::error::{NmlError, Result};
use crate::io::read_file;

/// Texts in input order, each with a class when the file gives them. Built only by the checked
/// readers: no text is empty, and either every row has a label or none has.
#[derive(Clone, Debug, PartialEq)]
pub struct TextSet {
    name: String,
    texts: Vec<String>,
    /// Where each text was read (`file:line`, or the file of a folder's text), for messages.
    locations: Vec<String>,
    labels: Option<Vec<u32>>,
    class_names: Vec<String>,
}

/// A row's label as written.
#[derive(Clone, Debug, PartialEq)]
enum RawLabel {
    Index(u32),
    Name(String),
}

impl TextSet {
    /// Reads `path` by its extension: `.jsonl` (or `.ndjson`), `.csv`, else plain text.
    pub fn read(path: &Path) -> Result<Self> {
        let name = path.display().to_string();
        Self::from_bytes(&read_file(path)?, &name, TextFormat::of(path))
    }

    /// Reads `bytes` in `format`; `name` names the file in errors (with the line).
    pub fn from_bytes(bytes: &[u8], name: &str, format: TextFormat) -> Result<Self> {
        let text = std::str::from_utf8(bytes).map_err(|e| {
            let line = 1 + bytes[..e.valid_up_to()].iter().filter(|&&b| b == b'\n').count();
            NmlError::format(format!("{name}:{line}"), "is not UTF-8 text")
        })?;
        let rows = match format {
            TextFormat::JsonLines => json_lines(text, name)?,
            TextFormat::Csv => csv_rows(bytes, name)?,
            TextFormat::Plain => plain_lines(text, name)?,
        };
        Self::from_rows(rows, name)
    }

    fn from_rows(rows: Vec<(usize, String, Option<RawLabel>)>, name: &str) -> Result<Self> {
        if rows.is_empty() {
            return Err(NmlError::format(name, "holds no texts"));
        }
        let at = |line: usize| format!("{name}:{line}");
        let labelled = rows[0].2.is_some();
        if let Some((line, _, _)) = rows.iter().find(|(_, _, l)| l.is_some() != labelled) {
            let (first, this) =
                if labelled { ("has", "has none") } else { ("has none", "has one") };
            return Err(NmlError::format(
                at(*line),
                format!(
                    "the first row {first} a label and this row {this}: label every row or none"
                ),
            ));
        }
        let named = |l: &Option<RawLabel>| matches!(l, Some(RawLabel::Name(_)));
        if let Some((line, _, _)) = rows.iter().find(|(_, _, l)| named(l) != named(&rows[0].2)) {
            return Err(NmlError::format(
                at(*line),
                "mixes class names and class numbers: use one kind of label",
            ));
        }
        let names: BTreeSet<&str> = rows
            .iter()
            .filter_map(|(_, _, l)| match l {
                Some(RawLabel::Name(n)) => Some(n.as_str()),
                _ => None,
            })
            .collect();
        let class_names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let labels = labelled.then(|| {
            rows.iter()
                .map(|(_, _, l)| match l {
                    Some(RawLabel::Index(i)) => *i,
                    Some(RawLabel::Name(n)) => {
                        class_names.binary_search(n).expect("collected above") as u32
                    }
                    None => unreachable!("checked: every row is labelled"),
                })
                .collect()
        });
        let locations = rows.iter().map(|(line, _, _)| at(*line)).collect();
        let texts = rows.into_iter().map(|(_, t, _)| t).collect();
        Ok(Self { name: name.to_string(), texts, locations, labels, class_names })
    }

    /// Reads a folder of class subfolders (sorted by name; the names are the classes), every
    /// file in them one text, files in name order. A file that is not UTF-8 is read as Latin-1
    /// (ISO 8859-1), the encoding older corpora use; an empty file is an error naming it.
    pub fn read_folder(dir: &Path) -> Result<Self> {
        let name = dir.display().to_string();
        let sorted_entries = |path: &Path| -> Result<Vec<std::path::PathBuf>> {
            let mut entries = std::fs::read_dir(path)
                .map_err(|e| NmlError::io(path, e))?
                .map(|entry| entry.map(|e| e.path()).map_err(|e| NmlError::io(path, e)))
                .collect::<Result<Vec<_>>>()?;
            entries.sort();
            Ok(entries)
        };
        let mut class_names = Vec::new();
        let (mut texts, mut locations, mut labels) = (Vec::new(), Vec::new(), Vec::new());
        for class_dir in sorted_entries(dir)?.into_iter().filter(|p| p.is_dir()) {
            let label = class_names.len() as u32;
            class_names.push(class_dir.file_name().unwrap_or_default().to_string_lossy().into());
            for file in sorted_entries(&class_dir)?.into_iter().filter(|p| p.is_file()) {
                let at = file.display().to_string();
                texts.push(checked_text(decode_text(read_file(&file)?), &at)?);
                locations.push(at);
                labels.push(label);
            }
        }
        if class_names.len() < 2 || texts.is_empty() {
            return Err(NmlError::format(
                name,
                "needs at least two class subfolders with text files in them",
            ));
        }
        Ok(Self { name, texts, locations, labels: Some(labels), class_names })
    }

    /// The texts at `indices`, in that order, with their labels and locations.
    pub fn subset(&self, indices: &[usize]) -> TextSet {
        let pick = |v: &[String]| indices.iter().map(|&i| v[i].clone()).collect();
        TextSet {
            name: self.name.clone(),
            texts: pick(&self.texts),
            locations: pick(&self.locations),
            labels: self.labels.as_ref().map(|l| indices.iter().map(|&i| l[i]).collect()),
            class_names: self.class_names.clone(),
        }
    }

    /// Every text replaced by `f(text)`; a text it leaves empty is an error naming where the
    /// text was read.
    pub fn map_texts(mut self, f: impl Fn(&str) -> String) -> Result<TextSet> {
        for (text, at) in self.texts.iter_mut().zip(&self.locations) {
            *text = checked_text(f(text), at)?;
        }
        Ok(self)
    }

    pub fn with_name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// Where text `i` was read: `file:line`, or a folder's file.
    pub fn location(&self, i: usize) -> &str {
        &self.locations[i]
    }

    /// The number of classes: the named classes, or one more than the largest class number.
    pub fn num_classes(&self) -> usize {
        match &self.labels {
            _ if !self.class_names.is_empty() => self.class_names.len(),
            Some(labels) => labels.iter().max().map_or(0, |&m| m as usize + 1),
            None => 0,
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn len(&self) -> usize {
        self.texts.len()
    }

    /// Never true: an empty file is refused.
    pub fn is_empty(&self) -> bool {
        self.texts.is_empty()
    }

    pub fn texts(&self) -> &[String] {
        &self.texts
    }

    /// Each text's class, in input order, when the file labels them.
    pub fn labels(&self) -> Option<&[u32]> {
        self.labels.as_deref()
    }

    /// Class names in label order (sorted), when the labels were names; else empty.
    pub fn class_names(&self) -> &[String] {
        &self.class_names
    }
}

/// How a text file is laid out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TextFormat {
    JsonLines,
    Csv,
    Plain,
}

impl TextFormat {
    pub fn of(path: &Path) -> Self {
        match path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase).as_deref() {
            Some("jsonl" | "ndjson") => Self::JsonLines,
            Some("csv") => Self::Csv,
            _ => Self::Plain,
        }
    }
}

/// UTF-8 text (without a byte-order mark), or else the bytes as Latin-1.
fn decode_text(bytes: Vec<u8>) -> String {
    match String::from_utf8(bytes) {
        Ok(text) => text.strip_prefix('\u{feff}').map(str::to_string).unwrap_or(text),
        Err(e) => e.into_bytes().iter().map(|&b| char::from(b)).collect(),
    }
}

/// A text that is not only white space, or an error naming its line.
fn checked_text(text: String, at: &str) -> Result<String> {
    if text.trim().is_empty() {
        return Err(NmlError::format(at, "the text is empty"));
    }
    Ok(text)
}

fn json_lines(text: &str, name: &str) -> Result<Vec<(usize, String, Option<RawLabel>)>> {
    let mut rows = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let at = format!("{name}:{}", i + 1);
        if line.trim().is_empty() {
            continue;
        }
        let value: serde_json::Value = serde_json::from_str(line)
            .map_err(|e| NmlError::format(&at, format!("not a JSON object: {e}")))?;
        let object = value
            .as_object()
            .ok_or_else(|| NmlError::format(&at, "not a JSON object with a \"text\""))?;
        let text = match object.get("text") {
            Some(serde_json::Value::String(t)) => checked_text(t.clone(), &at)?,
            Some(_) => return Err(NmlError::format(&at, "\"text\" must be a string")),
            None => return Err(NmlError::format(&at, "has no \"text\"")),
        };
        let label = match object.get("label") {
            None | Some(serde_json::Value::Null) => None,
            Some(serde_json::Value::String(n)) if !n.trim().is_empty() => {
                Some(RawLabel::Name(n.clone()))
            }
            Some(serde_json::Value::Number(n)) => {
                Some(RawLabel::Index(label_index(n.as_u64(), &n.to_string(), &at)?))
            }
            Some(other) => {
                return Err(NmlError::format(
                    &at,
                    format!("\"label\" must be a class name or a class number, not {other}"),
                ));
            }
        };
        rows.push((i + 1, text, label));
    }
    Ok(rows)
}

/// A class number below 2^20, or an error naming the line.
fn label_index(value: Option<u64>, written: &str, at: &str) -> Result<u32> {
    value.and_then(|v| u32::try_from(v).ok()).filter(|&v| v < 1 << 20).ok_or_else(|| {
        NmlError::format(at, format!("label {written} is not a class number (0, 1, ...)"))
    })
}

fn csv_rows(bytes: &[u8], name: &str) -> Result<Vec<(usize, String, Option<RawLabel>)>> {
    let mut reader = csv::ReaderBuilder::new().flexible(false).from_reader(bytes);
    let header = reader
        .headers()
        .map_err(|e| NmlError::format(format!("{name}:1"), format!("cannot read the header: {e}")))?
        .clone();
    let column = |wanted: &str| header.iter().position(|h| h.trim() == wanted);
    let text_column = column("text").ok_or_else(|| {
        NmlError::format(format!("{name}:1"), "has no `text` column in its header")
    })?;
    let label_column = column("label");
    let mut rows = Vec::new();
    for record in reader.records() {
        let record = record.map_err(|e| {
            let line = e.position().map_or(0, |p| p.line());
            NmlError::format(format!("{name}:{line}"), format!("not a CSV row: {e}"))
        })?;
        let line = record.position().map_or(0, |p| p.line()) as usize;
        let at = format!("{name}:{line}");
        let text = checked_text(record.get(text_column).unwrap_or_default().to_string(), &at)?;
        let label = match label_column.map(|c| record.get(c).unwrap_or_default().trim()) {
            None | Some("") => None,
            Some(written) if written.bytes().all(|b| b.is_ascii_digit()) => {
                Some(RawLabel::Index(label_index(written.parse().ok(), written, &at)?))
            }
            Some(written) => Some(RawLabel::Name(written.to_string())),
        };
        rows.push((line, text, label));
    }
    Ok(rows)
}

fn plain_lines(text: &str, name: &str) -> Result<Vec<(usize, String, Option<RawLabel>)>> {
    let lines: Vec<&str> = text.lines().collect();
    // A file's final newline does not make an empty last text; any other blank line is one.
    let mut rows = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        rows.push((i + 1, checked_text(line.to_string(), &format!("{name}:{}", i + 1))?, None));
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(text: &str, format: TextFormat) -> Result<TextSet> {
        TextSet::from_bytes(text.as_bytes(), "t", format)
    }

    #[test]
    fn json_lines_keep_order_and_name_classes() {
        let set = read(
            "{\"text\": \"a goal\", \"label\": \"sport\"}\n\n{\"text\": \"rates rise\", \"label\": \"business\"}\n{\"text\": \"a win\", \"label\": \"sport\"}\n",
            TextFormat::JsonLines,
        )
        .unwrap();
        assert_eq!(set.texts(), ["a goal", "rates rise", "a win"]);
        assert_eq!(set.labels(), Some(&[1, 0, 1][..]));
        assert_eq!(set.class_names(), ["business", "sport"]);
        let numbered = read(
            "{\"text\": \"x\", \"label\": 3}\n{\"text\": \"y\", \"label\": 0}",
            TextFormat::JsonLines,
        )
        .unwrap();
        assert_eq!((numbered.labels(), numbered.class_names().len()), (Some(&[3, 0][..]), 0));
        let unlabelled = read("{\"text\": \"x\"}", TextFormat::JsonLines).unwrap();
        assert_eq!(unlabelled.labels(), None);
    }

    #[test]
    fn csv_and_plain_text_read_too() {
        let set =
            read("id,text,label\n1,\"hello, world\",greeting\n2,bye,farewell\n", TextFormat::Csv)
                .unwrap();
        assert_eq!(set.texts(), ["hello, world", "bye"]);
        assert_eq!(
            (set.labels(), set.class_names()),
            (Some(&[1, 0][..]), &["farewell".to_string(), "greeting".to_string()][..])
        );
        let plain = read("one\ntwo\n", TextFormat::Plain).unwrap();
        assert_eq!(
            (plain.texts(), plain.labels()),
            (&["one".to_string(), "two".to_string()][..], None)
        );
    }

    #[test]
    fn bad_rows_are_errors_naming_the_line() {
        let err = |text: &str, format| read(text, format).unwrap_err().to_string();
        let jsonl = TextFormat::JsonLines;
        assert!(
            err("{\"text\": \"a\", \"label\": \"x\"}\n{\"text\": \"b\"}", jsonl)
                .contains("t:2: the first row has a label")
        );
        assert!(err("{\"text\": \"  \"}", jsonl).contains("t:1: the text is empty"));
        assert!(err("{\"text\": \"a\"}\n[1, 2]", jsonl).contains("t:2: not a JSON object"));
        assert!(err("{\"txt\": \"a\"}", jsonl).contains("t:1: has no \"text\""));
        assert!(
            err("{\"text\": \"a\", \"label\": -1}", jsonl)
                .contains("t:1: label -1 is not a class number")
        );
        assert!(
            err("{\"text\": \"a\", \"label\": 1}\n{\"text\": \"b\", \"label\": \"x\"}", jsonl)
                .contains("t:2: mixes class names and class numbers")
        );
        assert!(err("name,label\na,b\n", TextFormat::Csv).contains("t:1: has no `text` column"));
        assert!(err("text,label\na,x\nb\n", TextFormat::Csv).contains("t:3: not a CSV row"));
        assert!(err("text\n\"\"\n", TextFormat::Csv).contains("t:2: the text is empty"));
        assert!(err("one\n\nthree\n", TextFormat::Plain).contains("t:2: the text is empty"));
        assert!(err("", TextFormat::Plain).contains("holds no texts"));
        let latin1 =
            TextSet::from_bytes(b"caf\xe9\n", "t", TextFormat::Plain).unwrap_err().to_string();
        assert!(latin1.contains("t:1: is not UTF-8"), "{latin1}");
    }

    #[test]
    fn a_folder_of_class_folders_reads_one_text_a_file() {
        let dir = tempfile::tempdir().unwrap();
        for (class, file, bytes) in [
            ("sport", "002.txt", &b"Second\n\nmatch"[..]),
            ("sport", "001.txt", b"\xef\xbb\xbfFirst\n\ngoal"),
            ("business", "001.txt", b"Caf\xe9 profits"),
        ] {
            std::fs::create_dir_all(dir.path().join(class)).unwrap();
            std::fs::write(dir.path().join(class).join(file), bytes).unwrap();
        }
        let set = TextSet::read_folder(dir.path()).unwrap();
        assert_eq!(set.texts(), ["Café profits", "First\n\ngoal", "Second\n\nmatch"]);
        assert_eq!((set.labels(), set.class_names()[1].as_str()), (Some(&[0, 1, 1][..]), "sport"));
        assert!(set.location(1).ends_with("001.txt"));
        let picked = set.subset(&[2, 0]);
        assert_eq!(
            (picked.texts()[0].as_str(), picked.labels()),
            ("Second\n\nmatch", Some(&[1, 0][..]))
        );
        let err = set
            .map_texts(|t| if t.contains("goal") { String::new() } else { t.into() })
            .unwrap_err()
            .to_string();
        assert!(err.contains("001.txt") && err.contains("empty"), "{err}");
        std::fs::write(dir.path().join("business/empty.txt"), b"  \n").unwrap();
        let err = TextSet::read_folder(dir.path()).unwrap_err().to_string();
        assert!(err.contains("empty.txt: the text is empty"), "{err}");
    }
}
