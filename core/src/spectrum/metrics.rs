//! Scalar summaries of a spectrum. All take singular values sorted in descending order.

/// Shares p_i = s_i / sum_j s_j (all zero for an all-zero spectrum).
pub fn shares(singular_values: &[f64]) -> Vec<f64> {
    let total: f64 = singular_values.iter().sum();
    if total <= 0.0 {
        return vec![0.0; singular_values.len()];
    }
    singular_values.iter().map(|s| s / total).collect()
}

/// Singular Value Entropy: -sum p_i ln p_i, with 0 ln 0 = 0.
pub fn sve(singular_values: &[f64]) -> f64 {
    -shares(singular_values).iter().filter(|&&p| p > 0.0).map(|p| p * p.ln()).sum::<f64>()
}

/// Largest Singular Value Ratio as a share: s_1 / sum_j s_j.
pub fn lsvr_ratio(singular_values: &[f64]) -> f64 {
    shares(singular_values).first().copied().unwrap_or(0.0)
}

/// Largest Singular Value Ratio as the paper plots it: -ln(s_1 / sum_j s_j).
pub fn lsvr_neglog(singular_values: &[f64]) -> f64 {
    -lsvr_ratio(singular_values).ln()
}

/// exp(SVE): the number of equally strong directions with the same entropy.
pub fn effective_rank(singular_values: &[f64]) -> f64 {
    sve(singular_values).exp()
}

/// Share of the k largest singular values in the total.
pub fn top_k_share(singular_values: &[f64], k: usize) -> f64 {
    shares(singular_values).iter().take(k).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn closed_forms() {
        let flat = vec![2.0; 8];
        assert!((sve(&flat) - 8f64.ln()).abs() < 1e-12);
        assert!((effective_rank(&flat) - 8.0).abs() < 1e-9);
        assert!((lsvr_ratio(&flat) - 0.125).abs() < 1e-12);
        assert!((lsvr_neglog(&flat) - 8f64.ln()).abs() < 1e-12);
        let one = vec![5.0, 0.0, 0.0];
        assert_eq!(sve(&one), 0.0);
        assert_eq!(lsvr_ratio(&one), 1.0);
        let s = vec![3.0, 1.0];
        let expected = -(0.75f64 * 0.75f64.ln() + 0.25 * 0.25f64.ln());
        assert!((sve(&s) - expected).abs() < 1e-12);
        assert!((top_k_share(&[4.0, 3.0, 2.0, 1.0], 2) - 0.7).abs() < 1e-12);
    }
}
