//! Captions for contrastive pre-training: built from class names and templates, then a share
//! swapped between pairs (the core's `swap_captions`).

use rand::rngs::ChaCha8Rng;
use rand::{RngExt, SeedableRng};

use crate::data::Vocabulary;
use crate::error::{NmlError, Result};

/// One caption per image: a template (chosen per image from `seed`) with `{}` replaced by the
/// image's class name (`class_names[label]`, or the label itself when there are no names).
pub fn class_captions(
    labels: &[u32],
    templates: &[String],
    class_names: &[String],
    seed: u64,
) -> Result<Vec<String>> {
    if templates.is_empty() {
        return Err(NmlError::Invalid(
            "contrastive pre-training needs at least one caption template".into(),
        ));
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0xc1a9);
    labels
        .iter()
        .enumerate()
        .map(|(i, &label)| {
            let name = match class_names.get(label as usize) {
                Some(name) => name.clone(),
                None if class_names.is_empty() => label.to_string(),
                None => {
                    return Err(NmlError::Invalid(format!(
                        "image {i} has label {label} but only {} class names are given",
                        class_names.len()
                    )));
                }
            };
            let template = &templates[rng.random_range(0..templates.len())];
            Ok(template.replace("{}", &name))
        })
        .collect()
}

/// Each image's caption after swapping a share `caption_noise` of them between pairs, as word
/// ids over the captions' vocabulary, with the realised share of swapped captions.
pub(super) fn noisy_caption_tokens(
    captions: &[String],
    caption_noise: f64,
    max_words: usize,
    seed: u64,
) -> Result<(Vec<Vec<i64>>, f64, Vocabulary)> {
    let (caption_of, changed) = crate::noise::swap_captions(captions.len(), caption_noise, seed)?;
    let rate = changed.iter().filter(|&&c| c).count() as f64 / captions.len().max(1) as f64;
    let vocabulary = Vocabulary::build(captions);
    let tokens = caption_of.iter().map(|&c| vocabulary.encode(&captions[c], max_words)).collect();
    Ok((tokens, rate, vocabulary))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn captions_name_each_class() {
        let captions = class_captions(
            &[0, 1, 1],
            &["a photo of {}".into(), "the {} digit".into()],
            &["zero".into(), "one".into()],
            0,
        )
        .unwrap();
        assert!(captions[0].contains("zero") && captions[1].contains("one"));
        assert!(class_captions(&[2], &["{}".into()], &["a".into()], 0).is_err());
    }
}
