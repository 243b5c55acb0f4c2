//! A plot of any scenario's report, written beside its JSON (`--plot
//! FILE.svg`), with `plotters` (SVG only). Reports differ, so the plot
//! reads the JSON rather than each report type: every array of runs,
//! rounds or samples gives one series per numeric field, over its index
//! (run, round, kill: the scenario's time). Three panels:
//!
//! 1. latencies (fields in milliseconds or seconds) over the run;
//! 2. throughput (fields per second) over the run;
//! 3. the distribution of the key latency (the series the report names in
//!    `plot_key`, else the latency series with the most points) as a CDF:
//!    value against the share of samples at or below it.
//!
//! A report that keeps only summaries (no per-run values) gets bars
//! instead: its quantile summaries (`p50_ms`, `p99_ms`, …) in the
//! distribution panel, its scalar rates in the throughput panel. A panel
//! with nothing of its kind in the report says so.

use std::collections::BTreeMap;
use std::path::Path;

use plotters::prelude::*;

use crate::error::LoadError;

/// One named list of values, in order.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// Where in the report: `rounds[].takeover_ms`.
    pub name: String,
    /// The values, in order (missing ones left out).
    pub values: Vec<f64>,
}

/// What kind of figure a field holds, by its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Milliseconds (or seconds, converted).
    Latency,
    /// Per second.
    Throughput,
    /// Anything else: not plotted.
    Other,
}

/// The kind of a field named `name`.
pub fn kind_of(name: &str) -> Kind {
    let leaf = name.rsplit(['.', '/']).next().unwrap_or(name);
    if leaf.contains("per_s") || leaf.ends_with("_rate") || leaf.contains("qps") {
        Kind::Throughput
    } else if leaf.ends_with("_ms") || leaf.ends_with("_seconds") || leaf.ends_with("_s") {
        Kind::Latency
    } else {
        Kind::Other
    }
}

/// Every number under `value` by its path (`a.b`, tuples and short
/// arrays as `a/0` when `short_arrays` is set; other arrays are left out).
fn flatten(
    value: &serde_json::Value,
    path: String,
    short_arrays: bool,
    into: &mut BTreeMap<String, f64>,
) {
    match value {
        serde_json::Value::Number(n) => {
            if let Some(n) = n.as_f64() {
                into.insert(path, n);
            }
        }
        serde_json::Value::Object(map) => {
            for (key, value) in map {
                let path = if path.is_empty() {
                    key.clone()
                } else {
                    format!("{path}.{key}")
                };
                flatten(value, path, short_arrays, into);
            }
        }
        serde_json::Value::Array(items) if short_arrays && items.len() <= 8 => {
            for (i, value) in items.iter().enumerate() {
                flatten(value, format!("{path}/{i}"), short_arrays, into);
            }
        }
        _ => {}
    }
}

/// Every series of the report: each array of two or more numbers, and for
/// each array of two or more objects (or tuples), one series per numeric
/// field of its elements. Seconds are converted to milliseconds.
pub fn series(report: &serde_json::Value) -> Vec<Series> {
    let mut found = Vec::new();
    walk(report, "", &mut found);
    found
}

fn walk(value: &serde_json::Value, path: &str, found: &mut Vec<Series>) {
    match value {
        serde_json::Value::Object(map) => {
            for (key, value) in map {
                let path = if path.is_empty() {
                    key.clone()
                } else {
                    format!("{path}.{key}")
                };
                walk(value, &path, found);
            }
        }
        serde_json::Value::Array(items) if items.len() >= 2 => {
            if items.iter().all(serde_json::Value::is_number) {
                let values = items.iter().filter_map(serde_json::Value::as_f64).collect();
                found.push(scaled(path.to_owned(), values));
                return;
            }
            let mut fields: BTreeMap<String, Vec<f64>> = BTreeMap::new();
            for item in items {
                let mut leaves = BTreeMap::new();
                flatten(item, String::new(), true, &mut leaves);
                for (leaf, number) in leaves {
                    fields.entry(leaf).or_default().push(number);
                }
            }
            for (leaf, values) in fields {
                if values.len() >= 2 {
                    found.push(scaled(format!("{path}[].{leaf}"), values));
                }
            }
        }
        _ => {}
    }
}

fn scaled(name: String, values: Vec<f64>) -> Series {
    let leaf = name.rsplit(['.', '/']).next().unwrap_or(&name);
    let seconds = leaf.ends_with("_seconds") || (leaf.ends_with("_s") && !leaf.contains("per_s"));
    let values = if seconds {
        values.into_iter().map(|v| v * 1000.0).collect()
    } else {
        values
    };
    Series { name, values }
}

/// Every scalar number of the report by its path, for the summary bars.
pub fn scalars(report: &serde_json::Value) -> Vec<(String, f64)> {
    let mut leaves = BTreeMap::new();
    flatten(report, String::new(), false, &mut leaves);
    leaves.into_iter().collect()
}

/// The quantile summaries among `scalars`: `p50_ms`, `p95_ms`, `p99_ms`,
/// `max_ms` fields, each as (path, ms).
pub fn quantile_bars(scalars: &[(String, f64)]) -> Vec<(String, f64)> {
    scalars
        .iter()
        .filter(|(name, _)| {
            let leaf = name.rsplit('.').next().unwrap_or(name);
            matches!(leaf, "p50_ms" | "p95_ms" | "p99_ms" | "max_ms")
        })
        .take(24)
        .cloned()
        .collect()
}

/// Writes the plot of `report` (the scenario's JSON) to `path` as SVG.
pub fn write_svg(report: &str, title: &str, path: &Path) -> Result<(), LoadError> {
    let value: serde_json::Value =
        serde_json::from_str(report).map_err(|e| LoadError::Report(e.to_string()))?;
    let all = series(&value);
    let of = |kind: Kind| -> Vec<&Series> {
        all.iter()
            .filter(|s| kind_of(&s.name) == kind)
            .take(10)
            .collect()
    };
    let latencies = of(Kind::Latency);
    let throughput = of(Kind::Throughput);
    // The report may name its key latency (`plot_key`); else the latency
    // series with the most points, the first of equals.
    let named = value["plot_key"].as_str();
    let key = all
        .iter()
        .find(|s| Some(s.name.as_str()) == named)
        .or_else(|| {
            all.iter()
                .filter(|s| kind_of(&s.name) == Kind::Latency)
                .rev()
                .max_by_key(|s| s.values.len())
        });
    let failed =
        |e: &dyn std::fmt::Display| LoadError::Report(format!("plot {}: {e}", path.display()));
    let root = SVGBackend::new(path, (1200, 1350)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| failed(&e))?;
    let root = root
        .titled(title, ("sans-serif", 26))
        .map_err(|e| failed(&e))?;
    let panels = root.split_evenly((3, 1));
    let scalars = scalars(&value);
    lines(&panels[0], "Latency over the run (ms)", &latencies).map_err(|e| failed(&e))?;
    if throughput.is_empty() {
        let rates: Vec<(String, f64)> = scalars
            .iter()
            .filter(|(name, _)| kind_of(name) == Kind::Throughput)
            .take(24)
            .cloned()
            .collect();
        bars(&panels[1], "Throughput (per second)", &rates).map_err(|e| failed(&e))?;
    } else {
        lines(
            &panels[1],
            "Throughput over the run (per second)",
            &throughput,
        )
        .map_err(|e| failed(&e))?;
    }
    if key.is_some_and(|k| k.values.len() >= 2) {
        cdf(&panels[2], key).map_err(|e| failed(&e))?;
    } else {
        bars(
            &panels[2],
            "Latency quantiles (ms)",
            &quantile_bars(&scalars),
        )
        .map_err(|e| failed(&e))?;
    }
    root.present().map_err(|e| failed(&e))?;
    Ok(())
}

type Area<'a> = DrawingArea<SVGBackend<'a>, plotters::coord::Shift>;
type DrawResult = Result<(), DrawingAreaErrorKind<std::io::Error>>;

fn nothing(area: &Area<'_>, caption: &str, what: &str) -> DrawResult {
    area.draw(&Text::new(
        format!("{caption}: {what}"),
        (40, 40),
        ("sans-serif", 18).into_font(),
    ))
}

fn lines(area: &Area<'_>, caption: &str, series: &[&Series]) -> DrawResult {
    let points: usize = series.iter().map(|s| s.values.len()).max().unwrap_or(0);
    if series.is_empty() || points < 2 {
        return nothing(area, caption, "none in this report");
    }
    let top = series
        .iter()
        .flat_map(|s| s.values.iter().copied())
        .fold(0.0_f64, f64::max)
        .max(1.0)
        * 1.1;
    let mut chart = ChartBuilder::on(area)
        .caption(caption, ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(80)
        .build_cartesian_2d(1.0..points as f64, 0.0..top)?;
    chart
        .configure_mesh()
        .x_desc("run / round")
        .disable_x_mesh()
        .draw()?;
    for (i, s) in series.iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        chart
            .draw_series(LineSeries::new(
                s.values
                    .iter()
                    .enumerate()
                    .map(|(x, y)| (x as f64 + 1.0, *y)),
                color.stroke_width(2),
            ))?
            .label(s.name.clone())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .position(SeriesLabelPosition::UpperRight)
        .draw()
}

fn bars(area: &Area<'_>, caption: &str, items: &[(String, f64)]) -> DrawResult {
    if items.is_empty() {
        return nothing(area, caption, "none in this report");
    }
    let top = items
        .iter()
        .map(|(_, v)| *v)
        .fold(0.0_f64, f64::max)
        .max(1.0)
        * 1.15;
    let mut chart = ChartBuilder::on(area)
        .caption(caption, ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(20)
        .y_label_area_size(80)
        .build_cartesian_2d(0.0..items.len() as f64, 0.0..top)?;
    chart.configure_mesh().disable_x_mesh().x_labels(0).draw()?;
    for (i, (name, value)) in items.iter().enumerate() {
        let x = i as f64;
        let color = Palette99::pick(i).to_rgba();
        chart.draw_series(std::iter::once(Rectangle::new(
            [(x + 0.1, 0.0), (x + 0.9, *value)],
            color.filled(),
        )))?;
        chart.draw_series(std::iter::once(Text::new(
            format!("{name} = {value}"),
            (x + 0.1, *value + top * 0.02),
            ("sans-serif", 11).into_font(),
        )))?;
    }
    Ok(())
}

fn cdf(area: &Area<'_>, key: Option<&Series>) -> DrawResult {
    let caption = "Distribution of the key latency (share at or below, ms)";
    let Some(key) = key.filter(|k| k.values.len() >= 2) else {
        return nothing(area, caption, "none in this report");
    };
    let mut sorted = key.values.clone();
    sorted.sort_by(f64::total_cmp);
    let top = sorted.last().copied().unwrap_or(1.0).max(1.0) * 1.1;
    let count = sorted.len() as f64;
    let mut chart = ChartBuilder::on(area)
        .caption(format!("{caption}: {}", key.name), ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(80)
        .build_cartesian_2d(0.0..top, 0.0..1.0)?;
    chart.configure_mesh().x_desc("ms").y_desc("share").draw()?;
    let steps = sorted
        .iter()
        .enumerate()
        .map(|(i, v)| (*v, (i as f64 + 1.0) / count));
    chart.draw_series(LineSeries::new(steps.clone(), BLUE.stroke_width(2)))?;
    chart.draw_series(steps.map(|p| Circle::new(p, 3, BLUE.filled())))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arrays_of_runs_become_series_by_field_and_seconds_become_ms() {
        let report = serde_json::json!({
            "runs": [
                {"run": 1, "rates": {"publish_msgs_per_s": 10.0}, "took_seconds": 0.5},
                {"run": 2, "rates": {"publish_msgs_per_s": 12.0}, "took_seconds": 0.25},
            ],
            "takeovers_ms": [100, 200, 300],
            "samples": [[{"sse_ms": 5}, {"sse_ms": 6}], [{"sse_ms": 7}, {"sse_ms": 8}]],
            "name": "x",
        });
        let found = series(&report);
        let get = |name: &str| {
            found
                .iter()
                .find(|s| s.name == name)
                .map(|s| s.values.clone())
        };
        assert_eq!(
            get("runs[].rates.publish_msgs_per_s"),
            Some(vec![10.0, 12.0])
        );
        assert_eq!(get("runs[].took_seconds"), Some(vec![500.0, 250.0]));
        assert_eq!(get("takeovers_ms"), Some(vec![100.0, 200.0, 300.0]));
        assert_eq!(get("samples[]./0.sse_ms"), Some(vec![5.0, 7.0]));
        assert_eq!(kind_of("runs[].rates.publish_msgs_per_s"), Kind::Throughput);
        assert_eq!(kind_of("takeovers_ms"), Kind::Latency);
        assert_eq!(kind_of("runs[].run"), Kind::Other);
    }

    #[test]
    fn a_plot_is_written_for_any_report() {
        let dir = tempfile::tempdir().expect("dir");
        for (n, report) in [
            r#"{"runs":[{"a_ms":1},{"a_ms":3},{"a_ms":2}],"rates":[{"x_per_s":5},{"x_per_s":6}]}"#,
            r#"{"scenario":"empty"}"#,
        ]
        .iter()
        .enumerate()
        {
            let path = dir.path().join(format!("{n}.svg"));
            write_svg(report, "test", &path).expect("plot");
            let svg = std::fs::read_to_string(&path).expect("svg");
            assert!(svg.starts_with("<svg"), "{svg}");
        }
    }
}
