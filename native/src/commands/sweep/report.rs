//! The study's report: `results.json`, `results.csv`, `summary.md` (its tables, rendered from
//! core's results: every number in it is computed in `nml_core::study`) and the plots.

use std::fmt::Write as _;
use std::path::Path;

use nml_core::Result;
use nml_core::io::write_atomic;
use nml_core::spectrum::metrics::Metric;
use nml_core::study::{
    Difference, FINDING_SEEDS, GEOMETRY_K, Geometry, GeometryMeasure, MetricPrediction, Results,
};
use nml_core::tune::Role;

use super::figures;

/// Writes every file of the report into `out`; a whole sweep and `nml sweep report` both
/// come here.
pub fn write_all(out: &Path, results: &Results) -> Result<()> {
    results.write_data(out)?;
    let geometry = Geometry::measure(out, results)?;
    write_atomic(&out.join("geometry.csv"), geometry.to_csv().as_bytes())?;
    write_atomic(&out.join("summary.md"), summary(results, &geometry).as_bytes())?;
    figures::render_all(out, results)
}

/// A mean (± spread over seeds), or a dash where no cell is there yet; `signed` puts a sign
/// on the mean.
fn mean_spread((m, s): (f64, f64), seeds: usize, digits: usize, signed: bool) -> String {
    let mean = if signed { format!("{m:+.digits$}") } else { format!("{m:.digits$}") };
    if m.is_nan() {
        "–".to_string()
    } else if seeds > 1 {
        format!("{mean} ± {s:.digits$}")
    } else {
        mean
    }
}

/// A change from clean pre-training: mean ± sd and the 95% interval over seeds, the mean in
/// bold where it holds ([`Difference::holds`]); the mean alone for one seed.
fn difference_cell(d: &Difference, digits: usize) -> String {
    if d.mean.is_nan() {
        return "–".to_string();
    }
    let mean = format!("{:+.digits$}", d.mean);
    if d.seeds < 2 {
        return mean;
    }
    let mean = if d.holds() { format!("**{mean}**") } else { mean };
    format!("{mean} ± {:.digits$} [{:+.digits$}, {:+.digits$}]", d.sd, d.interval.0, d.interval.1)
}

/// What the bold in the difference tables means, for this study's seeds.
fn holds_rule(seeds: usize) -> String {
    if seeds >= FINDING_SEEDS {
        format!(
            "Each cell: the mean over seeds of each seed's change from its own clean pre-training, ± its standard deviation, [its 95% bootstrap interval over seeds]. **Bold**: the interval excludes zero, so the change holds over these {seeds} seeds; otherwise it is not a finding."
        )
    } else if seeds > 1 {
        format!(
            "Each cell: the mean over seeds of each seed's change from its own clean pre-training, ± its standard deviation, [its 95% bootstrap interval over seeds]. With {seeds} seeds (under {FINDING_SEEDS}) no change is called a finding."
        )
    } else {
        "One seed: each cell is that seed's change, an observation, not a finding.".to_string()
    }
}

/// Every other method against the linear probe on the same features, paired by seed: a table
/// per evaluation and noise ratio, and per method how often it is worse or better beyond the
/// interval.
fn probe_section(md: &mut String, results: &Results) {
    const PROBE: &str = "lp";
    let methods = results.methods();
    if !methods.iter().any(|m| m == PROBE) || methods.len() < 2 {
        return;
    }
    let suite = &results.suite;
    let seeds = suite.seeds().len();
    let header: String = suite.ratios().iter().map(|r| format!(" {:.0}% |", r * 100.0)).collect();
    let rule: String = suite.ratios().iter().map(|_| "---|").collect();
    let _ = writeln!(
        md,
        "\n## Each method against the linear probe\n\nAccuracy minus LP's on the same frozen features (fine-tuned encoders: on the same pre-trained encoder), in points, per pre-training noise ratio. {}\n\n| method | task | eval |{header}\n|---|---|---|{rule}",
        holds_rule(seeds).replace("change from its own clean pre-training", "difference from LP")
    );
    let mut tallies = Vec::new();
    for method in methods.iter().filter(|m| *m != PROBE) {
        let (mut cells, mut worse, mut better, mut above) = (0, 0, 0, 0);
        for eval in &results.evals() {
            let diffs: Vec<Difference> = suite
                .ratios()
                .iter()
                .map(|&ratio| results.method_difference(eval, method, PROBE, ratio))
                .collect();
            if diffs.iter().all(|d| d.mean.is_nan()) {
                continue;
            }
            for d in diffs.iter().filter(|d| !d.mean.is_nan()) {
                cells += 1;
                above += usize::from(d.mean > 0.0);
                worse += usize::from(d.holds() && d.mean < 0.0);
                better += usize::from(d.holds() && d.mean > 0.0);
            }
            let row: String =
                diffs.iter().map(|d| format!(" {} |", difference_cell(d, 2))).collect();
            let _ = writeln!(md, "| {method} | {} | {} ({}) |{row}", eval.0, eval.2, eval.1.name());
        }
        tallies.push(if seeds >= FINDING_SEEDS {
            format!(
                "- {method}: of {cells} cells (evaluations x noise ratios), worse than LP beyond the interval in {worse}, better beyond it in {better}; a higher mean in {above}."
            )
        } else {
            format!(
                "- {method}: a higher mean than LP in {above} of {cells} cells (too few seeds to call any a finding)."
            )
        });
    }
    let _ = writeln!(md, "\n{}", tallies.join("\n"));
}

/// Which metric predicts transfer: Spearman's ρ of each metric against accuracy over the cells,
/// pooled with its bootstrap interval and within each evaluation, and what that says.
fn prediction_section(md: &mut String, results: &Results) {
    let predictions = results.metric_predictions();
    let method = &results.head_methods()[0];
    let _ = writeln!(
        md,
        "\n## Which spectral metric predicts transfer\n\nSpearman's ρ between each metric of the frozen features and {method}'s accuracy at {:.0}% of the training data, over every cell (an evaluation set after one pre-training run: a task, a noise ratio, a seed), with a 95% bootstrap interval over cells ({} resamples). Pooled over tasks, ρ can reflect which task a cell is from more than what noise did to it; the columns after it give ρ within each evaluation, whose cells differ only in noise ratio and seed. Scatter plots: accuracy_vs_*.png.\n",
        results.full_fraction() * 100.0,
        nml_core::study::BOOTSTRAP_RESAMPLES,
    );
    for role in [Role::Id, Role::Ood] {
        let rows: Vec<_> = predictions.iter().filter(|p| p.role == role).collect();
        let Some(first) = rows.first() else { continue };
        let evals: String =
            first.within.iter().map(|(e, _)| format!(" ρ {} / {} |", e.0, e.2)).collect();
        let rule: String = first.within.iter().map(|_| "---|").collect();
        let _ = writeln!(
            md,
            "{} accuracy:\n\n| metric | cells | ρ pooled | 95% interval |{evals}\n|---|---|---|---|{rule}",
            if role == Role::Id { "In-domain" } else { "Out-of-domain" }
        );
        for p in &rows {
            let within: String =
                p.within.iter().map(|(_, rho)| format!(" {} |", signed(*rho))).collect();
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} to {} |{within}",
                p.metric.name(),
                p.cells,
                signed(p.rho),
                signed(p.interval.0),
                signed(p.interval.1)
            );
        }
        let paired = if role == Role::Id { Metric::Sve } else { Metric::LsvrNeglog };
        let _ = writeln!(md, "\n{}\n", prediction_verdict(&rows, paired));
    }
}

/// ρ with its sign, or a dash where it is undefined.
fn signed(rho: f64) -> String {
    if rho.is_finite() { format!("{rho:+.2}") } else { "–".to_string() }
}

/// Which metric ranks the cells best (largest |ρ| pooled), whether its interval excludes zero,
/// and where the paper's metric for this role stands.
fn prediction_verdict(rows: &[&MetricPrediction], paired: Metric) -> String {
    let mut ranked: Vec<&MetricPrediction> =
        rows.iter().copied().filter(|p| p.rho.is_finite()).collect();
    ranked.sort_by(|a, b| b.rho.abs().total_cmp(&a.rho.abs()));
    let Some(best) = ranked.first() else {
        return "No metric could be correlated here (too few cells, or no spread).".to_string();
    };
    let held = |p: &MetricPrediction| {
        if p.excludes_zero() {
            "its interval excludes zero"
        } else {
            "its interval includes zero, so this is not a finding"
        }
    };
    let mut line =
        format!("Best pooled: {} (ρ = {}; {}).", best.metric.name(), signed(best.rho), held(best));
    match ranked.iter().position(|p| p.metric == paired) {
        Some(0) => line.push_str(" That is the paper's metric for this role."),
        Some(i) => {
            let _ = write!(
                line,
                " The paper's metric for this role, {}, ranks {} of {} (ρ = {}; {}).",
                paired.name(),
                i + 1,
                ranked.len(),
                signed(ranked[i].rho),
                held(ranked[i])
            );
        }
        None => {
            let _ = write!(line, " The paper's metric, {}, is undefined here.", paired.name());
        }
    }
    line
}

/// Each noisy encoder against the clean one of its seed, per evaluation and noise ratio.
fn geometry_section(md: &mut String, results: &Results, geometry: &Geometry) {
    if geometry.rows.is_empty() && geometry.skipped.is_empty() {
        return;
    }
    let seeds = results.suite.seeds().len();
    let clean = results.clean_ratio();
    let noisy: Vec<f64> = results.suite.ratios().iter().copied().filter(|&r| r != clean).collect();
    let header: String = noisy.iter().map(|r| format!(" {:.0}% |", r * 100.0)).collect();
    let rule: String = noisy.iter().map(|_| "---|").collect();
    let _ = writeln!(
        md,
        "\n## How far noise moves the features' geometry\n\nEach noisy encoder's frozen features of an evaluation set against the {:.0}%-noise encoder's of the same seed, on the same inputs (`nml compare`, paper mode): principal angles between their top-{GEOMETRY_K} subspaces, linear CKA (1 = the same up to rotation and scale), and |u₁·u₁'|, the agreement of the most dominant directions. {}Per pair: geometry.csv.\n\n| task | eval | measure |{header}\n|---|---|---|{rule}",
        clean * 100.0,
        if seeds > 1 {
            "Each cell: mean ± sd over seeds [95% bootstrap interval of the mean]. "
        } else {
            ""
        }
    );
    for eval in results.evals() {
        for measure in GeometryMeasure::ALL {
            let digits =
                if matches!(measure, GeometryMeasure::MeanAngle | GeometryMeasure::LargestAngle) {
                    1
                } else {
                    3
                };
            let cells: String = noisy
                .iter()
                .map(|&ratio| {
                    let d = geometry.over_seeds(&eval, ratio, measure);
                    let cell = if d.mean.is_nan() {
                        "–".to_string()
                    } else if d.seeds < 2 {
                        format!("{:.digits$}", d.mean)
                    } else {
                        format!(
                            "{:.digits$} ± {:.digits$} [{:.digits$}, {:.digits$}]",
                            d.mean, d.sd, d.interval.0, d.interval.1
                        )
                    };
                    format!(" {cell} |")
                })
                .collect();
            let _ = writeln!(
                md,
                "| {} | {} ({}) | {} |{cells}",
                eval.0,
                eval.2,
                eval.1.name(),
                measure.name()
            );
        }
    }
    if !geometry.skipped.is_empty() {
        let _ = writeln!(
            md,
            "\n{} pairs not measured: {}",
            geometry.skipped.len(),
            geometry.skipped.join("; ")
        );
    }
}

/// The whole summary; its first line says how many seeds it rests on.
pub fn summary(results: &Results, geometry: &Geometry) -> String {
    let suite = &results.suite;
    let seeds = suite.seeds().len();
    let full = results.full_fraction();
    let evals = results.evals();
    let methods = results.methods();
    let heads = results.head_methods();
    let pm = |value: (f64, f64)| mean_spread(value, seeds, 2, false);
    let objectives: Vec<String> = suite.objectives().iter().map(|o| o.to_string()).collect();
    let mut md = String::new();
    let _ = writeln!(
        md,
        "{}\n\nBackend: {}. Seeds: {:?}. Objectives: {}. Noise: {} on the pre-training labels (supervised) or swapped captions (contrastive), pre-training on {}. Tuning: {} epochs; accuracies in % at {:.0}% of the downstream training data unless noted. SVE / LSVR of the frozen features (paper mode).{}\n",
        if seeds == 1 {
            "# nml sweep: one seed, so every number below is an observation, not a finding (--seeds 5 gives intervals)".to_string()
        } else {
            format!("# nml sweep: {seeds} seeds, mean ± standard deviation over them")
        },
        results.backend,
        suite.seeds(),
        objectives.join(", "),
        suite.noise_kind(),
        suite.pretrain_data(),
        suite.tune().epochs,
        full * 100.0,
        if results.finetune.is_some() {
            " Fine-tuned encoders (LoRA, FT) always train on all of it."
        } else {
            ""
        }
    );
    let header: String = suite.ratios().iter().map(|r| format!(" {:.0}% |", r * 100.0)).collect();
    let rule: String = suite.ratios().iter().map(|_| "---|").collect();
    let _ = writeln!(
        md,
        "## Accuracy vs pre-training noise\n\n| task | eval | method |{header}\n|---|---|---|{rule}"
    );
    for eval in &evals {
        for method in &methods {
            let cells: String = suite
                .ratios()
                .iter()
                .map(|&ratio| format!(" {} |", pm(results.accuracy(eval, method, ratio))))
                .collect();
            let _ =
                writeln!(md, "| {} | {} ({}) | {method} |{cells}", eval.0, eval.2, eval.1.name());
        }
    }
    let clean = results.clean_ratio();
    let noisy: Vec<f64> = suite.ratios().iter().copied().filter(|&r| r != clean).collect();
    let noisy_header: String = noisy.iter().map(|r| format!(" {:.0}% |", r * 100.0)).collect();
    let noisy_rule: String = noisy.iter().map(|_| "---|").collect();
    let _ = writeln!(
        md,
        "\n## Accuracy change from clean pre-training, per evaluation\n\nIn points against {:.0}% noise. {}\n\n| task | eval | method |{noisy_header}\n|---|---|---|{noisy_rule}",
        clean * 100.0,
        holds_rule(seeds)
    );
    for eval in &evals {
        for method in &methods {
            let cells: String = noisy
                .iter()
                .map(|&ratio| {
                    format!(" {} |", difference_cell(&results.difference(eval, method, ratio), 2))
                })
                .collect();
            let _ =
                writeln!(md, "| {} | {} ({}) | {method} |{cells}", eval.0, eval.2, eval.1.name());
        }
    }
    let _ = writeln!(
        md,
        "\n## Feature spectrum vs pre-training noise\n\nSVE on in-domain test features (higher = richer); LSVR as -ln(s1/Σs) on out-of-domain features (higher = less dominated by one direction).\n\n| task | eval | metric |{header}\n|---|---|---|{rule}"
    );
    for eval in &evals {
        let metric = results.spectrum_metric(eval, suite.ratios()[0]).0;
        let cells: String = suite
            .ratios()
            .iter()
            .map(|&ratio| {
                format!(
                    " {} |",
                    mean_spread(results.spectrum_metric(eval, ratio).1, seeds, 4, false)
                )
            })
            .collect();
        let _ = writeln!(md, "| {} | {} ({}) | {metric} |{cells}", eval.0, eval.2, eval.1.name());
    }
    let _ = writeln!(
        md,
        "\nTheir change from clean pre-training: {}\n\n| task | eval | metric |{noisy_header}\n|---|---|---|{noisy_rule}",
        holds_rule(seeds)
    );
    for eval in &evals {
        let metric = if eval.1 == Role::Id { Metric::Sve } else { Metric::LsvrNeglog };
        let cells: String = noisy
            .iter()
            .map(|&ratio| {
                format!(
                    " {} |",
                    difference_cell(&results.spectral_difference(eval, ratio, metric), 4)
                )
            })
            .collect();
        let _ = writeln!(
            md,
            "| {} | {} ({}) | {} |{cells}",
            eval.0,
            eval.2,
            eval.1.name(),
            metric.name()
        );
    }
    let _ = writeln!(
        md,
        "\n## The field's other spectral metrics\n\nOf the same frozen features and spectrum (paper mode), on every evaluation: RankMe = exp(SVE); alpha-ReQ, the power-law decay of the eigenvalues s² over ranks 6 to 100 (higher = faster decay); NESum = Σ s_i² / s_1², the stable rank; the condition number s_1 / s_r of the retained spectrum. Definitions: docs/guide/spectrum.md.\n\n| task | eval | metric |{header}\n|---|---|---|{rule}"
    );
    for eval in &evals {
        for metric in [Metric::RankMe, Metric::AlphaReq, Metric::Nesum, Metric::ConditionNumber] {
            let digits = if metric == Metric::AlphaReq { 4 } else { 2 };
            let cells: String = suite
                .ratios()
                .iter()
                .map(|&ratio| {
                    let value = results.spectral(eval, ratio, metric);
                    format!(" {} |", mean_spread(value, seeds, digits, false))
                })
                .collect();
            let name = metric.name();
            let _ = writeln!(md, "| {} | {} ({}) | {name} |{cells}", eval.0, eval.2, eval.1.name());
        }
    }
    geometry_section(&mut md, results, geometry);
    prediction_section(&mut md, results);
    let fractions = &suite.tune().fractions;
    let _ = writeln!(
        md,
        "\n## Accuracy vs downstream data fraction (in domain)\n\n| task | method | ratio |{}\n|---|---|---|{}",
        fractions.iter().map(|f| format!(" {:.0}% data |", f * 100.0)).collect::<String>(),
        fractions.iter().map(|_| "---|").collect::<String>()
    );
    for eval in evals.iter().filter(|e| e.1 == Role::Id) {
        for method in &heads {
            for &ratio in suite.ratios() {
                let cells: String = fractions
                    .iter()
                    .map(|&fraction| {
                        format!(
                            " {} |",
                            pm(results.fraction_accuracy(eval, method, ratio, fraction))
                        )
                    })
                    .collect();
                let _ = writeln!(md, "| {} | {method} | {:.0}% |{cells}", eval.0, ratio * 100.0);
            }
        }
    }
    let _ = writeln!(
        md,
        "\n## Accuracy change from the cleanest pre-training (the paper's Figure 4)\n\nFor each tuning method, the mean over every in-domain (ID) or out-of-domain (OOD) evaluation of the accuracy at each noise ratio minus the accuracy at {:.0}% noise, in points (positive: the noise helped). {}\n\n| method | eval |{noisy_header}\n|---|---|{noisy_rule}",
        clean * 100.0,
        holds_rule(seeds)
    );
    let mut held = Vec::new();
    for (role, name) in [(Role::Id, "ID"), (Role::Ood, "OOD")] {
        for method in &methods {
            let gaps: Vec<(f64, Difference)> =
                noisy.iter().map(|&ratio| (ratio, results.gap(method, role, ratio))).collect();
            if gaps.iter().all(|(_, d)| d.mean.is_nan()) {
                continue;
            }
            let cells: String =
                gaps.iter().map(|(_, d)| format!(" {} |", difference_cell(d, 2))).collect();
            let _ = writeln!(md, "| {method} | {name} |{cells}");
            held.extend(gaps.into_iter().filter(|(_, d)| d.holds()).map(|(ratio, d)| {
                format!(
                    "- {method} {name} at {:.0}% noise: {} ({:+.2} to {:+.2})",
                    ratio * 100.0,
                    if d.mean > 0.0 { "helped" } else { "hurt" },
                    d.interval.0,
                    d.interval.1
                )
            }));
        }
    }
    if seeds >= FINDING_SEEDS {
        let _ = writeln!(
            md,
            "\nWhat holds over these {seeds} seeds (the interval excludes zero):\n\n{}",
            if held.is_empty() { "- nothing".to_string() } else { held.join("\n") }
        );
    }
    probe_section(&mut md, results);
    if !results.missing.is_empty() {
        let _ = writeln!(
            md,
            "\n## Missing cells\n\n{} cells are not in the output folder yet (a shard still running, stopped or failed); the tables above leave them out. Running the sweep or its shards again finishes them, then `nml sweep report` rebuilds this report.\n",
            results.missing.len()
        );
        for cell in &results.missing {
            let _ = writeln!(md, "- `{cell}`");
        }
    }
    md
}
