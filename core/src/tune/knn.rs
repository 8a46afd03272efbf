//! The k-nearest-neighbour probe: nothing is trained; a feature's class is the vote of the k
//! training features most similar to it by cosine (k = 20 by default, the k of the k-NN
//! evaluations self-supervised work reports beside linear probes).
//!
//! Each of the k neighbours casts one vote for its class. A tie goes to the class whose voters
//! are more similar in sum, then to the lower class number, so the probe is deterministic.

use burn::tensor::{Device, Tensor, TensorData};

use crate::data::FeatureSet;
use crate::error::{NmlError, Result};
use crate::readback::floats;

/// The neighbours that vote when none is asked for.
pub const DEFAULT_NEIGHBOURS: usize = 20;

/// Rows compared against the training set at a time (their similarities are read back whole).
const QUERY_ROWS: usize = 512;

/// Rows scaled to unit length (a zero row stays zero: it is similar to nothing).
fn unit_rows(features: &[f32], d: usize) -> Vec<f32> {
    let mut out = features.to_vec();
    for row in out.chunks_mut(d) {
        let norm = row.iter().map(|v| v * v).sum::<f32>().sqrt();
        if norm > 0.0 {
            row.iter_mut().for_each(|v| *v /= norm);
        }
    }
    out
}

/// The class `k` neighbours vote for, given one query's similarities to every training row.
fn vote(similarities: &[f32], labels: &[u32], classes: usize, k: usize) -> u32 {
    let mut order: Vec<usize> = (0..similarities.len()).collect();
    let k = k.min(order.len());
    // Most similar first; equal similarities by training row, so the choice is deterministic.
    let by_similarity =
        |a: &usize, b: &usize| similarities[*b].total_cmp(&similarities[*a]).then_with(|| a.cmp(b));
    if k < order.len() {
        order.select_nth_unstable_by(k - 1, by_similarity);
    }
    let mut votes = vec![(0usize, 0f64); classes];
    for &i in &order[..k] {
        let entry = &mut votes[labels[i] as usize];
        entry.0 += 1;
        entry.1 += f64::from(similarities[i]);
    }
    let best = (0..classes).max_by(|&a, &b| {
        let (va, vb) = (votes[a], votes[b]);
        va.0.cmp(&vb.0).then(va.1.total_cmp(&vb.1)).then(b.cmp(&a))
    });
    best.unwrap_or(0) as u32
}

/// Classes of `features` (rows of `train`'s width) by the vote of their `k` most
/// cosine-similar rows of `train`; the similarities are computed on `device`.
pub async fn knn_predict_async(
    train: &FeatureSet,
    features: &[f32],
    k: usize,
    device: &Device,
) -> Result<Vec<u32>> {
    let d = train.d();
    if k == 0 {
        return Err(NmlError::Invalid("the k-NN probe needs at least 1 neighbour".into()));
    }
    if !features.len().is_multiple_of(d) {
        return Err(NmlError::Invalid(format!(
            "{} values are not rows of the training set's {d} dimensions",
            features.len()
        )));
    }
    let bank: Tensor<2> =
        Tensor::from_data(TensorData::new(unit_rows(train.features(), d), [train.n(), d]), device)
            .transpose();
    let queries = unit_rows(features, d);
    let n = queries.len() / d;
    let mut out = Vec::with_capacity(n);
    for start in (0..n).step_by(QUERY_ROWS) {
        let rows = QUERY_ROWS.min(n - start);
        let chunk = queries[start * d..(start + rows) * d].to_vec();
        let q: Tensor<2> = Tensor::from_data(TensorData::new(chunk, [rows, d]), device);
        let similarities = floats(q.matmul(bank.clone())).await?;
        for row in similarities.chunks(train.n()) {
            out.push(vote(row, train.labels(), train.num_classes(), k));
        }
    }
    Ok(out)
}

/// Share of `set`'s rows the k-NN vote over `train` classifies as labelled.
pub async fn knn_accuracy_async(
    train: &FeatureSet,
    set: &FeatureSet,
    k: usize,
    device: &Device,
) -> Result<f64> {
    let predicted = knn_predict_async(train, set.features(), k, device).await?;
    let correct = predicted.iter().zip(set.labels()).filter(|(p, l)| p == l).count();
    Ok(correct as f64 / set.n() as f64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::readback::blocking;
    use crate::{ImageSet, StarterSet};

    /// The majority wins; a tie goes to the more similar voters, then the lower class.
    #[test]
    fn votes_are_majority_then_similarity_then_class() {
        let labels = [0, 1, 1, 2];
        assert_eq!(vote(&[0.9, 0.5, 0.4, 0.1], &labels, 3, 3), 1);
        assert_eq!(vote(&[0.9, 0.5, 0.1, 0.8], &labels, 3, 2), 0, "one vote each: 0.9 beats 0.8");
        assert_eq!(vote(&[0.5, 0.5, 0.0, 0.0], &labels, 3, 2), 0, "equal sums: the lower class");
        assert_eq!(vote(&[0.1, 0.2, 0.3, 0.4], &labels, 3, 10), 1, "k beyond the set: all vote");
    }

    /// On real digits (scikit-learn's 8x8 pixels) the probe classifies held-out digits well,
    /// every training digit as itself at k = 1, and matches a host computation of the vote.
    #[test]
    fn classifies_real_digits() {
        let digits =
            ImageSet::starter(StarterSet::SklearnDigits).unwrap().pixel_features().unwrap();
        let train = digits.subset(&(0..1000).collect::<Vec<_>>(), "train");
        let test = digits.subset(&(1000..1797).collect::<Vec<_>>(), "test");
        let device = Device::flex();
        let accuracy = blocking(knn_accuracy_async(&train, &test, DEFAULT_NEIGHBOURS, &device));
        let accuracy = accuracy.unwrap();
        assert!(accuracy > 0.9, "{accuracy}");
        let itself = blocking(knn_accuracy_async(&train, &train, 1, &device)).unwrap();
        assert_eq!(itself, 1.0);
        let d = train.d();
        let (bank, queries) = (unit_rows(train.features(), d), unit_rows(test.features(), d));
        let predicted = blocking(knn_predict_async(&train, test.features(), 5, &device)).unwrap();
        // Rounding may order two nearly equal similarities differently, so a rare row may differ.
        let agree = queries
            .chunks(d)
            .zip(&predicted)
            .take(100)
            .filter(|&(query, &p)| {
                let sims: Vec<f32> = bank
                    .chunks(d)
                    .map(|t| t.iter().zip(query.iter()).map(|(a, b)| a * b).sum())
                    .collect();
                p == vote(&sims, train.labels(), train.num_classes(), 5)
            })
            .count();
        assert!(agree >= 98, "{agree} of 100");
        let err = blocking(knn_predict_async(&train, test.features(), 0, &device)).unwrap_err();
        assert!(err.to_string().contains("at least 1 neighbour"));
    }
}
