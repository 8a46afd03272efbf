//! Small SVG line charts drawn by the page itself (no plotting library in the WASM bundle).

use yew::{Html, Properties, function_component, html};

pub const COLOURS: [&str; 6] = ["#1f5fbf", "#d9480f", "#2b8a3e", "#862e9c", "#e67700", "#495057"];

/// One line: a label, a colour, points, and whether it is drawn dashed.
#[derive(Clone, Debug, PartialEq)]
pub struct Line {
    pub label: String,
    pub colour: &'static str,
    pub points: Vec<(f64, f64)>,
    pub dashed: bool,
}

#[derive(Properties, PartialEq)]
pub struct LineChartProps {
    pub id: &'static str,
    pub title: String,
    pub x_label: &'static str,
    pub lines: Vec<Line>,
    #[prop_or_default]
    pub log_y: bool,
}

/// A chart with axes' ranges printed at the corners and a legend; `log_y` plots log10(y).
#[function_component(LineChart)]
pub fn line_chart(props: &LineChartProps) -> Html {
    let LineChartProps { id, title, x_label, lines, log_y } = props;
    let (id, title, x_label, log_y) = (*id, title.as_str(), *x_label, *log_y);
    let transform = |y: f64| if log_y { y.max(1e-300).log10() } else { y };
    let all: Vec<(f64, f64)> = lines
        .iter()
        .flat_map(|l| l.points.iter().map(|&(x, y)| (x, transform(y))))
        .filter(|p| p.1.is_finite())
        .collect();
    if all.is_empty() {
        return html! { <div id={id.to_string()} class="chart empty">{ format!("{title}: nothing yet") }</div> };
    }
    let (x0, x1) = all.iter().fold((f64::MAX, f64::MIN), |(a, b), p| (a.min(p.0), b.max(p.0)));
    let (y0, y1) = all.iter().fold((f64::MAX, f64::MIN), |(a, b), p| (a.min(p.1), b.max(p.1)));
    let (xs, ys) = ((x1 - x0).max(1e-9), (y1 - y0).max(1e-9));
    let (w, h) = (520.0, 220.0);
    let polylines = lines.iter().map(|line| {
        let points: String = line
            .points
            .iter()
            .map(|&(x, y)| (x, transform(y)))
            .filter(|p| p.1.is_finite())
            .map(|(x, y)| format!("{:.1},{:.1} ", 50.0 + (x - x0) / xs * w, 10.0 + (y1 - y) / ys * h))
            .collect();
        html! { <polyline points={points} fill="none" stroke={line.colour} stroke-width="2" stroke-dasharray={if line.dashed { "6 4" } else { "" }} /> }
    });
    let legend = lines.iter().enumerate().map(|(i, line)| {
        let y = 14.0 + 16.0 * i as f64;
        html! {
            <g>
                <line x1="590" x2="612" y1={format!("{y}")} y2={format!("{y}")} stroke={line.colour} stroke-width="2" stroke-dasharray={if line.dashed { "6 4" } else { "" }} />
                <text x="616" y={format!("{}", y + 4.0)} font-size="11">{ line.label.clone() }</text>
            </g>
        }
    });
    let y_name = |v: f64| {
        if log_y { format!("{:.1e}", 10f64.powf(v)) } else { format!("{v:.3}") }
    };
    html! {
        <figure id={id.to_string()} class="chart">
            <figcaption>{ title }</figcaption>
            <svg width="820" height="260" viewBox="0 0 820 260">
                <rect x="50" y="10" width={format!("{w}")} height={format!("{h}")} fill="none" stroke="#ccc" />
                { for polylines }
                <text x="2" y="16" font-size="11">{ y_name(y1) }</text>
                <text x="2" y={format!("{}", 10.0 + h)} font-size="11">{ y_name(y0) }</text>
                <text x="50" y="248" font-size="11">{ format!("{x0:.0}") }</text>
                <text x={format!("{}", 50.0 + w - 30.0)} y="248" font-size="11">{ format!("{x1:.0}") }</text>
                <text x={format!("{}", 50.0 + w / 2.0 - 40.0)} y="248" font-size="11">{ x_label }</text>
                { for legend }
            </svg>
        </figure>
    }
}
