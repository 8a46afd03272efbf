//! Where a text set comes from, in the one-line form suites and the command line use: a text
//! file (`.jsonl`, `.csv` or plain text, see [`TextSet::read`]) or a folder of class subfolders
//! of text files (see [`TextSet::read_folder`]), then any of these, applied in order:
//! - `|shuffle=SEED`: the rows in a seeded random order (the same on every machine);
//! - `|rows=A..B`: rows A to B-1;
//! - `|words=A..B`: the rows whose text has A to B-1 words (split at white space), in order: a
//!   shift in length with the same labels;
//! - `|part=title`, `|part=lead`, `|part=body`: of a text laid out as a news article (a title
//!   line, then the body's paragraphs), the title, the body's first paragraph, or the body.
//!
//! For example `data/fetched/bbc-news|shuffle=0|rows=1725..2225|part=title` is the headlines of
//! 500 articles the first 1,725 of the same shuffle leave out.

use std::fmt;
use std::ops::Range;
use std::path::PathBuf;
use std::str::FromStr;

use rand::SeedableRng;
use rand::rngs::ChaCha8Rng;
use rand::seq::SliceRandom;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::TextSet;
use crate::error::{NmlError, Result};

/// See the module documentation. Parsing checks the syntax; [`TextSource::load`] reads the files.
#[derive(Clone, Debug, PartialEq)]
pub struct TextSource {
    /// The source as written: its identity in caches, reports and messages.
    text: String,
    path: PathBuf,
    steps: Vec<TextStep>,
}

/// One step applied to the rows of a source.
#[derive(Clone, Debug, PartialEq)]
pub enum TextStep {
    Shuffle(u64),
    Rows(Range<usize>),
    Words(Range<usize>),
    Part(ArticlePart),
}

/// A part of a text laid out as a news article: a title line, then paragraphs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ArticlePart {
    /// The first line that is not blank.
    Title,
    /// The body's first paragraph (up to its first blank line).
    Lead,
    /// Everything after the title.
    Body,
}

impl ArticlePart {
    /// This part of `text`, trimmed (empty when the text has no such part).
    pub fn of(self, text: &str) -> String {
        let text = text.trim_start();
        let (title, body) = text.split_once('\n').unwrap_or((text, ""));
        match self {
            Self::Title => title.trim().to_string(),
            Self::Body => body.trim().to_string(),
            Self::Lead => {
                let body = body.trim_start();
                let lead = body
                    .split("\n\n")
                    .next()
                    .and_then(|p| p.split("\r\n\r\n").next())
                    .unwrap_or_default();
                lead.trim().to_string()
            }
        }
    }
}

impl TextSource {
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Reads the texts and applies the steps; the set is named by the source as written.
    pub fn load(&self) -> Result<TextSet> {
        let mut set = if self.path.is_dir() {
            TextSet::read_folder(&self.path)?
        } else {
            TextSet::read(&self.path)?
        };
        for step in &self.steps {
            set = match step {
                TextStep::Shuffle(seed) => {
                    let mut order: Vec<usize> = (0..set.len()).collect();
                    order.shuffle(&mut ChaCha8Rng::seed_from_u64(*seed));
                    set.subset(&order)
                }
                TextStep::Rows(range) => {
                    if range.end > set.len() {
                        return Err(NmlError::Invalid(format!(
                            "{}: rows={}..{} must end at most at {} (the rows there)",
                            self.text,
                            range.start,
                            range.end,
                            set.len()
                        )));
                    }
                    set.subset(&range.clone().collect::<Vec<_>>())
                }
                TextStep::Words(range) => {
                    let kept: Vec<usize> = (0..set.len())
                        .filter(|&i| range.contains(&set.texts()[i].split_whitespace().count()))
                        .collect();
                    if kept.is_empty() {
                        return Err(NmlError::Invalid(format!(
                            "{}: no text has {}..{} words",
                            self.text, range.start, range.end
                        )));
                    }
                    set.subset(&kept)
                }
                TextStep::Part(part) => set.map_texts(|t| part.of(t))?,
            };
        }
        Ok(set.with_name(self.text.clone()))
    }
}

impl FromStr for TextSource {
    type Err = NmlError;

    fn from_str(text: &str) -> Result<Self> {
        let mut pieces = text.split('|');
        let path = pieces.next().unwrap_or_default().trim();
        let bad = |m: String| NmlError::Invalid(format!("text source {text:?}: {m}"));
        if path.is_empty() {
            return Err(bad("starts with the path of a text file or folder".into()));
        }
        let steps = pieces
            .map(|piece| {
                let (key, value) = piece.split_once('=').unwrap_or((piece, ""));
                match key.trim() {
                    "shuffle" => value
                        .trim()
                        .parse()
                        .map(TextStep::Shuffle)
                        .map_err(|_| bad(format!("shuffle={value}: the seed is a whole number"))),
                    "rows" => range(value)
                        .map(TextStep::Rows)
                        .ok_or_else(|| bad(format!("rows={value}: write rows=A..B with A < B"))),
                    "words" => range(value)
                        .map(TextStep::Words)
                        .ok_or_else(|| bad(format!("words={value}: write words=A..B with A < B"))),
                    "part" => match value.trim() {
                        "title" => Ok(TextStep::Part(ArticlePart::Title)),
                        "lead" => Ok(TextStep::Part(ArticlePart::Lead)),
                        "body" => Ok(TextStep::Part(ArticlePart::Body)),
                        other => Err(bad(format!("part={other}: use title, lead or body"))),
                    },
                    other => Err(bad(format!(
                        "unknown step {other:?}; steps are shuffle=SEED, rows=A..B, words=A..B and part=title|lead|body"
                    ))),
                }
            })
            .collect::<Result<_>>()?;
        Ok(Self { text: text.to_string(), path: PathBuf::from(path), steps })
    }
}

/// `A..B` with A < B.
fn range(value: &str) -> Option<Range<usize>> {
    let (a, b) = value.trim().split_once("..")?;
    let (a, b): (usize, usize) = (a.trim().parse().ok()?, b.trim().parse().ok()?);
    (a < b).then_some(a..b)
}

impl fmt::Display for TextSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl Serialize for TextSource {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(&self.text)
    }
}

impl<'de> Deserialize<'de> for TextSource {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ARTICLE: &str =
        "Rates rise again\n\nThe bank raised rates.\nBy a quarter point.\n\nMarkets fell.\n";

    #[test]
    fn article_parts() {
        assert_eq!(ArticlePart::Title.of(ARTICLE), "Rates rise again");
        assert_eq!(ArticlePart::Lead.of(ARTICLE), "The bank raised rates.\nBy a quarter point.");
        assert_eq!(
            ArticlePart::Body.of(ARTICLE),
            "The bank raised rates.\nBy a quarter point.\n\nMarkets fell."
        );
        assert_eq!(ArticlePart::Body.of("only a title"), "");
    }

    #[test]
    fn steps_apply_in_order_and_keep_the_source_text() {
        let dir = tempfile::tempdir().unwrap();
        for class in ["business", "tech"] {
            std::fs::create_dir(dir.path().join(class)).unwrap();
            for i in 0..5 {
                let text = format!("{class} title {i}\n\n{class} lead {i}\n\nmore");
                std::fs::write(dir.path().join(class).join(format!("{i}.txt")), text).unwrap();
            }
        }
        let root = dir.path().display();
        let source: TextSource = format!("{root}|shuffle=3|rows=2..6|part=lead").parse().unwrap();
        let set = source.load().unwrap();
        assert_eq!((set.len(), set.name()), (4, source.as_str()));
        let all: TextSource = format!("{root}|shuffle=3|part=lead").parse().unwrap();
        let all = all.load().unwrap();
        assert_eq!(set.texts(), &all.texts()[2..6]);
        assert!(set.texts().iter().all(|t| t.contains(" lead ")));
        let labels = all.labels().unwrap();
        for (text, &label) in all.texts().iter().zip(labels) {
            assert!(text.starts_with(all.class_names()[label as usize].as_str()), "{text}");
        }
        assert_ne!(labels, [0, 0, 0, 0, 0, 1, 1, 1, 1, 1], "shuffled");
        let too_far: TextSource = format!("{root}|rows=0..11").parse().unwrap();
        assert!(too_far.load().unwrap_err().to_string().contains("at most at 10"));
    }

    #[test]
    fn words_keeps_the_texts_of_that_length_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("reviews.jsonl");
        let rows = [("good", "great"), ("not  very\tgood", "other"), ("good food here", "great")];
        let lines: Vec<String> = rows
            .iter()
            .map(|(t, l)| serde_json::json!({ "text": t, "label": l }).to_string())
            .collect();
        std::fs::write(&path, lines.join("\n")).unwrap();
        let load = |steps: &str| {
            format!("{}{steps}", path.display()).parse::<TextSource>().unwrap().load()
        };
        let long = load("|words=2..10").unwrap();
        assert_eq!(long.texts(), ["not  very\tgood", "good food here"]);
        assert_eq!(long.labels(), Some(&[1, 0][..]));
        assert_eq!(long.class_names(), ["great", "other"]);
        assert_eq!(load("|words=3..4|rows=0..1").unwrap().texts(), ["not  very\tgood"]);
        let none = load("|words=5..9").unwrap_err().to_string();
        assert!(none.contains("no text has 5..9 words"), "{none}");
    }

    #[test]
    fn bad_sources_say_what_is_wrong() {
        let err = |s: &str| s.parse::<TextSource>().unwrap_err().to_string();
        assert!(err("x|rows=5..2").contains("rows=A..B with A < B"));
        assert!(err("x|words=..9").contains("words=A..B with A < B"));
        assert!(err("x|part=summary").contains("use title, lead or body"));
        assert!(err("x|shuffle=a").contains("whole number"));
        assert!(err("x|lower").contains("unknown step \"lower\""));
        assert!(err("|rows=0..1").contains("starts with the path"));
        let missing: TextSource = "/no/such/texts.jsonl".parse().unwrap();
        assert!(missing.load().unwrap_err().to_string().contains("/no/such/texts.jsonl"));
    }
}
