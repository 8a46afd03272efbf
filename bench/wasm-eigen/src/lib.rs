//! Exports plain C-ABI functions (no wasm-bindgen) so Node can time them directly.

fn gram(m: usize) -> Vec<f64> {
    // A deterministic symmetric positive semi-definite matrix: X^T X of a 4m x m matrix with
    // hashed entries scaled by decaying columns, like the spectrum benchmark's features.
    let n = 4 * m;
    let x: Vec<f64> = (0..n * m)
        .map(|i| {
            let h = (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 11;
            ((h as f64 / (1u64 << 53) as f64) - 0.5) / (1.0 + (i % m) as f64 / 16.0)
        })
        .collect();
    let mut g = vec![0.0; m * m];
    for r in 0..n {
        let row = &x[r * m..(r + 1) * m];
        for a in 0..m {
            for b in 0..=a {
                g[a * m + b] += row[a] * row[b];
            }
        }
    }
    for a in 0..m {
        for b in 0..a {
            g[b * m + a] = g[a * m + b];
        }
    }
    g
}

thread_local! {
    static GRAM: std::cell::RefCell<(usize, Vec<f64>)> = const { std::cell::RefCell::new((0, Vec::new())) };
}

/// Builds the m x m Gram once, so the timed calls below measure the eigen solvers alone.
#[unsafe(no_mangle)]
pub extern "C" fn prepare(m: usize) -> f64 {
    let g = gram(m);
    let trace = (0..m).map(|i| g[i * m + i]).sum();
    GRAM.with(|cell| *cell.borrow_mut() = (m, g));
    trace
}

/// Sum of the eigenvalues by faer (equals the trace: a check that both solvers agree).
#[unsafe(no_mangle)]
pub extern "C" fn faer_eigenvalues() -> f64 {
    GRAM.with(|cell| {
        let (m, g) = &*cell.borrow();
        let mat = faer::Mat::<f64>::from_fn(*m, *m, |r, c| g[r * m + c]);
        mat.self_adjoint_eigenvalues(faer::Side::Lower).unwrap().iter().sum()
    })
}

#[unsafe(no_mangle)]
pub extern "C" fn nalgebra_eigenvalues() -> f64 {
    GRAM.with(|cell| {
        let (m, g) = &*cell.borrow();
        nalgebra::DMatrix::<f64>::from_row_slice(*m, *m, g).symmetric_eigenvalues().iter().sum()
    })
}
