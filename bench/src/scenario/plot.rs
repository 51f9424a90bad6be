//! The SVG plots next to RESULTS.md, drawn with `plotters`' SVG backend: throughput per target
//! and load, latency percentiles, ops per server CPU-second, and hit ratio over time during a
//! rebalance.

use std::path::Path;

use plotters::coord::Shift;
use plotters::prelude::*;

use super::matrix::{Figures, Kind, Row};
use super::rebalance::Series;
use crate::error::{BenchError, Result};

/// Picks one figure of a target (`None`: no bar).
type Pick<'a> = &'a dyn Fn(&Figures) -> Option<f64>;

fn err<E: std::fmt::Display>(e: E) -> BenchError {
    BenchError::Io(std::io::Error::other(format!("plot: {e}")))
}

/// The legend every plot draws, at `at`.
fn legend<'a, DB: DrawingBackend + 'a, CT: CoordTranslate>(
    chart: &mut ChartContext<'a, DB, CT>,
    at: SeriesLabelPosition,
) -> Result<()> {
    chart
        .configure_series_labels()
        .position(at)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
        .map_err(err)
}

/// One colour per target kind, the same in every plot.
fn color(k: Kind) -> RGBColor {
    match k {
        Kind::Memcached => RGBColor(0x1f, 0x77, 0xb4),
        Kind::Node => RGBColor(0xff, 0x7f, 0x0e),
        Kind::Nutcracker => RGBColor(0x2c, 0xa0, 0x2c),
        Kind::Proxy => RGBColor(0xd6, 0x27, 0x28),
        Kind::Embedded => RGBColor(0x94, 0x67, 0xbd),
        Kind::MemcachedTls => RGBColor(0x17, 0xbe, 0xcf),
        Kind::NodeTls => RGBColor(0xbc, 0xbd, 0x22),
        Kind::ProxyTls => RGBColor(0x8c, 0x56, 0x4b),
        Kind::ProxyFlat => RGBColor(0xe3, 0x77, 0xc2),
        Kind::ProxyZones => RGBColor(0x7f, 0x7f, 0x7f),
    }
}

/// A log-scale range covering every value in `vals` with whole decades at both ends.
pub fn log_bounds(vals: &[f64]) -> (f64, f64) {
    let pos: Vec<f64> = vals
        .iter()
        .copied()
        .filter(|v| v.is_finite() && *v > 0.0)
        .collect();
    if pos.is_empty() {
        return (1.0, 10.0);
    }
    let lo = pos.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = pos.iter().copied().fold(0.0, f64::max);
    let lo = 10f64.powf(lo.log10().floor());
    let mut hi = 10f64.powf(hi.log10().ceil());
    if hi <= lo {
        hi = lo * 10.0;
    }
    (lo, hi)
}

/// Grouped bars on a log axis: one group per row, one bar per target kind present.
fn bars(
    area: &DrawingArea<SVGBackend<'_>, Shift>,
    title: &str,
    y_desc: &str,
    rows: &[Row],
    value: Pick<'_>,
) -> Result<()> {
    let kinds: Vec<Kind> = Kind::ALL
        .into_iter()
        .filter(|k| rows.iter().any(|r| r.get(*k).and_then(value).is_some()))
        .collect();
    let all: Vec<f64> = rows
        .iter()
        .flat_map(|r| r.figures.iter().filter_map(value))
        .collect();
    let (lo, hi) = log_bounds(&all);
    let n = rows.len().max(1);
    let names: Vec<String> = rows.iter().map(|r| r.load.name.clone()).collect();
    let label = move |x: &f64| -> String {
        let i = x.round();
        if (x - i).abs() < 1e-6 && i >= 0.0 {
            names.get(i as usize).cloned().unwrap_or_default()
        } else {
            String::new()
        }
    };
    let mut chart = ChartBuilder::on(area)
        .caption(title, ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(80)
        .build_cartesian_2d(-0.5f64..(n as f64 - 0.5), (lo..hi).log_scale())
        .map_err(err)?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(n)
        .x_label_formatter(&label)
        .x_label_style(("sans-serif", 11))
        .y_desc(y_desc)
        .y_label_formatter(&|v| fmt_si(*v))
        .draw()
        .map_err(err)?;
    let width = 0.8 / kinds.len().max(1) as f64;
    for (j, &k) in kinds.iter().enumerate() {
        let c = color(k);
        let rects: Vec<_> = rows
            .iter()
            .enumerate()
            .filter_map(|(i, r)| {
                let v = r.get(k).and_then(value)?;
                let x0 = i as f64 - 0.4 + j as f64 * width;
                Some(Rectangle::new(
                    [(x0, lo), (x0 + width * 0.9, v)],
                    c.filled(),
                ))
            })
            .collect();
        chart
            .draw_series(rects)
            .map_err(err)?
            .label(k.label())
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 12, y + 5)], c.filled()));
    }
    legend(&mut chart, SeriesLabelPosition::UpperRight)?;
    Ok(())
}

/// `1.5M`, `230k`, `12`.
pub fn fmt_si(v: f64) -> String {
    if v >= 1e6 {
        format!("{}M", trim(v / 1e6))
    } else if v >= 1e3 {
        format!("{}k", trim(v / 1e3))
    } else {
        trim(v)
    }
}

fn trim(v: f64) -> String {
    let s = format!("{v:.1}");
    s.strip_suffix(".0").map(str::to_string).unwrap_or(s)
}

/// `throughput.svg`: median ops/s per target and load.
pub fn throughput(path: &Path, rows: &[Row]) -> Result<()> {
    let root = SVGBackend::new(path, (1280, 520)).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    bars(
        &root,
        "Throughput (median ops/s over rounds, log scale)",
        "ops/s",
        rows,
        &|f| Some(f.ops_per_sec),
    )?;
    root.present().map_err(err)
}

/// `cpu.svg`: median ops per CPU-second of the charged processes.
pub fn efficiency(path: &Path, rows: &[Row]) -> Result<()> {
    let root = SVGBackend::new(path, (1280, 520)).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    bars(
        &root,
        "Ops per server CPU-second (memcached, node: the server; nutcracker, proxy: the proxy only; \
         embedded: the 3 nodes)",
        "ops per CPU-s",
        rows,
        &|f| f.ops_per_cpu_sec,
    )?;
    root.present().map_err(err)
}

/// `latency.svg`: median p50, p99 and p99.9 per target and load, one panel each.
pub fn latency(path: &Path, rows: &[Row]) -> Result<()> {
    let root = SVGBackend::new(path, (1280, 1380)).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let panels = root.split_evenly((3, 1));
    let specs: [(&str, Pick<'_>); 3] = [
        ("p50 latency (µs, median over rounds)", &|f| Some(f.p50_us)),
        ("p99 latency (µs, median over rounds)", &|f| Some(f.p99_us)),
        ("p99.9 latency (µs, median over rounds)", &|f| {
            Some(f.p999_us)
        }),
    ];
    for (area, (title, value)) in panels.iter().zip(specs) {
        bars(area, title, "µs", rows, value)?;
    }
    root.present().map_err(err)
}

/// `rebalance.svg`: share of the loaded keys read back right, per second, for each system;
/// a dashed line where membership changed.
pub fn rebalance(path: &Path, series: &[Series]) -> Result<()> {
    let root = SVGBackend::new(path, (1000, 480)).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let t_max = series
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.t_s + 1.0))
        .fold(1.0, f64::max);
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "Rebalance: share of 20 000 loaded keys read back right, per second (3 → 4 servers)",
            ("sans-serif", 17),
        )
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(0f64..t_max, 0f64..1.05)
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc("seconds since reading began")
        .y_desc("hit ratio")
        .y_label_formatter(&|v| format!("{:.0}%", v * 100.0))
        .draw()
        .map_err(err)?;
    let palette = [color(Kind::Proxy), color(Kind::Nutcracker), BLUE, BLACK];
    for (i, s) in series.iter().enumerate() {
        let c = palette[i % palette.len()];
        // Each point is drawn at the end of its one-second bucket.
        let pts: Vec<(f64, f64)> = s
            .points
            .iter()
            .filter_map(|p| p.ratio().map(|r| (p.t_s + 1.0, r)))
            .collect();
        chart
            .draw_series(LineSeries::new(pts.clone(), c.stroke_width(2)))
            .map_err(err)?
            .label(s.system.clone())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], c.stroke_width(2)));
        chart
            .draw_series(pts.into_iter().map(|p| Circle::new(p, 3, c.filled())))
            .map_err(err)?;
        let x = s.change_at_s;
        chart
            .draw_series(DashedLineSeries::new(
                vec![(x, 0.0), (x, 1.05)],
                6,
                4,
                c.stroke_width(1),
            ))
            .map_err(err)?;
    }
    legend(&mut chart, SeriesLabelPosition::LowerLeft)?;
    root.present().map_err(err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_and_labels() {
        assert_eq!(log_bounds(&[]), (1.0, 10.0));
        assert_eq!(log_bounds(&[150.0, 42_000.0]), (100.0, 100_000.0));
        assert_eq!(log_bounds(&[1000.0]), (1000.0, 10_000.0));
        assert_eq!(log_bounds(&[0.0, f64::NAN, 5.0]), (1.0, 10.0));
        assert_eq!(fmt_si(1_500_000.0), "1.5M");
        assert_eq!(fmt_si(230_000.0), "230k");
        assert_eq!(fmt_si(12.0), "12");
    }
}
