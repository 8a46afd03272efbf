/// Per-step cosine annealing from `base` at step 0 to zero after `total` steps.
pub fn cosine_lr(base: f64, step: usize, total: usize) -> f64 {
    if total == 0 {
        return base;
    }
    let t = (step as f64 / total as f64).min(1.0);
    base * 0.5 * (1.0 + (std::f64::consts::PI * t).cos())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn starts_at_base_halves_midway_ends_at_zero() {
        assert_eq!(cosine_lr(0.1, 0, 100), 0.1);
        assert!((cosine_lr(0.1, 50, 100) - 0.05).abs() < 1e-12);
        assert!(cosine_lr(0.1, 100, 100).abs() < 1e-12);
        assert!(cosine_lr(0.1, 30, 100) > cosine_lr(0.1, 31, 100));
    }
}
