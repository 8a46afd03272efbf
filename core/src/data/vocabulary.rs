//! Words and their ids for the CLIP-style text tower: lowercased runs of letters and digits.

use std::collections::BTreeMap;

/// Words of a caption: lowercased runs of letters and digits.
fn words(caption: &str) -> impl Iterator<Item = String> + '_ {
    caption.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()).map(str::to_lowercase)
}

/// The words of a caption collection, sorted; a word's id is its position plus one (0 pads).
#[derive(Clone, Debug, PartialEq)]
pub struct Vocabulary {
    index: BTreeMap<String, i64>,
}

impl Vocabulary {
    pub fn build(captions: &[String]) -> Self {
        let mut all: Vec<String> = captions.iter().flat_map(|c| words(c)).collect();
        all.sort();
        all.dedup();
        Self::from_words(all)
    }

    pub fn from_words(words: Vec<String>) -> Self {
        Self { index: words.into_iter().enumerate().map(|(i, w)| (w, i as i64 + 1)).collect() }
    }

    pub fn words(&self) -> Vec<String> {
        let mut by_id: Vec<(&String, &i64)> = self.index.iter().collect();
        by_id.sort_by_key(|(_, id)| **id);
        by_id.into_iter().map(|(w, _)| w.clone()).collect()
    }

    /// Number of ids, padding included.
    pub fn size(&self) -> usize {
        self.index.len() + 1
    }

    /// The first `max_words` known words of `caption` as ids, padded with 0 to `max_words`.
    pub fn encode(&self, caption: &str, max_words: usize) -> Vec<i64> {
        let mut ids: Vec<i64> =
            words(caption).filter_map(|w| self.index.get(&w).copied()).take(max_words).collect();
        ids.resize(max_words, 0);
        ids
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_and_unknown_words_pad() {
        let captions = vec!["a photo of zero".to_string(), "the one digit".to_string()];
        let vocab = Vocabulary::build(&captions);
        assert_eq!(Vocabulary::from_words(vocab.words()), vocab);
        let ids = vocab.encode("ONE, zero unseen", 4);
        assert_eq!(ids.len(), 4);
        assert!(
            ids[0] > 0 && ids[1] > 0 && ids[2] == 0,
            "unknown words and padding are 0: {ids:?}"
        );
    }
}
