//! `--plot FILE.svg`: rate over time, TIME-WAIT over time, connect-latency distribution.

use crate::report::Report;
use hdrhistogram::Histogram;
use plotters::prelude::*;
use std::path::Path;

/// Writes the three panels, one above the other.
pub fn write_svg(path: &Path, r: &Report, connect: &Histogram<u64>) -> Result<(), String> {
    draw(path, r, connect).map_err(|e| format!("cannot write plot {}: {e}", path.display()))
}

fn draw(
    path: &Path,
    r: &Report,
    connect: &Histogram<u64>,
) -> Result<(), Box<dyn std::error::Error>> {
    let root = SVGBackend::new(path, (960, 1080)).into_drawing_area();
    root.fill(&WHITE)?;
    let panels = root.split_evenly((3, 1));
    let title = format!(
        "{} vs {} server ({} backend)",
        r.workload, r.server, r.backend
    );
    let tmax = r.timeline.last().map_or(1.0, |e| e.t).max(1e-3);

    // Rates: counts per interval normalised to per second.
    let per_s = |v: u64, dt: f64| v as f64 / dt.max(1e-9);
    let hs: Vec<(f64, f64)> = r
        .timeline
        .iter()
        .map(|e| (e.t, per_s(e.handshakes, e.interval_s)))
        .collect();
    let td: Vec<(f64, f64)> = r
        .timeline
        .iter()
        .map(|e| (e.t, per_s(e.teardowns, e.interval_s)))
        .collect();
    let ymax = hs.iter().chain(&td).map(|p| p.1).fold(1.0, f64::max) * 1.15;
    let mut c = ChartBuilder::on(&panels[0])
        .caption(format!("{title}: rate"), ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(35)
        .y_label_area_size(70)
        .build_cartesian_2d(0f64..tmax, 0f64..ymax)?;
    c.configure_mesh()
        .x_desc("time (s)")
        .y_desc("per second")
        .draw()?;
    c.draw_series(LineSeries::new(hs, BLUE.stroke_width(2)))?
        .label("handshakes/s")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLUE));
    c.draw_series(LineSeries::new(td, RED.stroke_width(2)))?
        .label("teardowns/s")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], RED));
    c.configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()?;

    // TIME-WAIT entries.
    let twc: Vec<(f64, f64)> = r
        .timeline
        .iter()
        .filter_map(|e| Some((e.t, e.time_wait_client? as f64)))
        .collect();
    let tws: Vec<(f64, f64)> = r
        .timeline
        .iter()
        .filter_map(|e| Some((e.t, e.time_wait_server? as f64)))
        .collect();
    let ymax = twc.iter().chain(&tws).map(|p| p.1).fold(1.0, f64::max) * 1.15;
    let mut c = ChartBuilder::on(&panels[1])
        .caption("TIME-WAIT entries", ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(35)
        .y_label_area_size(70)
        .build_cartesian_2d(0f64..tmax, 0f64..ymax)?;
    c.configure_mesh()
        .x_desc("time (s)")
        .y_desc("entries")
        .draw()?;
    c.draw_series(LineSeries::new(twc, GREEN.stroke_width(2)))?
        .label("client")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], GREEN));
    c.draw_series(LineSeries::new(tws, MAGENTA.stroke_width(2)))?
        .label("server")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], MAGENTA));
    c.configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()?;

    // Connect latency by percentile, on a "nines" axis: x = -log10(1 - q), so 1 is p90,
    // 2 is p99, 3 is p99.9; the tail gets as much room as the body.
    let max_nines = 4.0;
    let pts = nines_curve(connect, 0.01);
    let ymax = pts.iter().map(|p| p.1).fold(1.0, f64::max) * 1.15;
    let mut c = ChartBuilder::on(&panels[2])
        .caption("connect latency distribution", ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(35)
        .y_label_area_size(70)
        .build_cartesian_2d(0f64..max_nines, 0f64..ymax)?;
    c.configure_mesh()
        .x_desc("percentile")
        .y_desc("latency (us)")
        .x_labels(5)
        .x_label_formatter(&|x| {
            let p = 100.0 * (1.0 - 10f64.powf(-*x));
            format!("p{}", trim(p))
        })
        .draw()?;
    c.draw_series(LineSeries::new(pts, BLUE.stroke_width(2)))?;
    root.present()?;
    Ok(())
}

/// Latency (µs) by percentile on the "nines" axis x = -log10(1 - q), from 0 to 4 in `step`.
pub fn nines_curve(h: &Histogram<u64>, step: f64) -> Vec<(f64, f64)> {
    if h.is_empty() || step <= 0.0 {
        return Vec::new();
    }
    let n = (4.0 / step).round() as u32;
    (0..=n)
        .map(|i| {
            let x = f64::from(i) * step;
            let q = 1.0 - 10f64.powf(-x);
            (x, h.value_at_quantile(q) as f64 / 1000.0)
        })
        .collect()
}

fn trim(p: f64) -> String {
    let s = format!("{p:.2}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// One server's runs for [`write_compare`]: its label, the closed-loop (`max`) report and the
/// open-loop (`lat`) report, as the JSON the `--json` flag writes.
pub struct CompareRun {
    pub label: String,
    pub max: Option<serde_json::Value>,
    pub lat: Option<serde_json::Value>,
}

const COLORS: [RGBColor; 4] = [BLUE, RED, GREEN, MAGENTA];

/// One picture per workload, every server on the same axes: rate over time (max runs),
/// connect latency by percentile (lat runs), and the server core's CPU breakdown (max runs).
pub fn write_compare(path: &Path, workload: &str, runs: &[CompareRun]) -> Result<(), String> {
    draw_compare(path, workload, runs)
        .map_err(|e| format!("cannot write plot {}: {e}", path.display()))
}

fn f(v: &serde_json::Value, path: &[&str]) -> Option<f64> {
    let mut v = v;
    for k in path {
        v = v.get(k)?;
    }
    v.as_f64()
}

fn draw_compare(
    path: &Path,
    workload: &str,
    runs: &[CompareRun],
) -> Result<(), Box<dyn std::error::Error>> {
    let root = SVGBackend::new(path, (960, 1080)).into_drawing_area();
    root.fill(&WHITE)?;
    let panels = root.split_evenly((3, 1));
    let key = if workload == "rr" {
        "transactions"
    } else {
        "handshakes"
    };

    // Rate over time.
    let series: Vec<Vec<(f64, f64)>> = runs
        .iter()
        .map(|r| {
            r.max
                .as_ref()
                .and_then(|m| m.get("timeline")?.as_array().cloned())
                .unwrap_or_default()
                .iter()
                .filter_map(|e| {
                    let dt = f(e, &["interval_s"])?.max(1e-9);
                    Some((f(e, &["t"])?, f(e, &[key])? / dt))
                })
                .collect()
        })
        .collect();
    let tmax = series.iter().flatten().map(|p| p.0).fold(1e-3, f64::max);
    let ymax = series.iter().flatten().map(|p| p.1).fold(1.0, f64::max) * 1.15;
    let mut c = ChartBuilder::on(&panels[0])
        .caption(
            format!("{workload}: {key}/s, closed loop"),
            ("sans-serif", 20),
        )
        .margin(12)
        .x_label_area_size(35)
        .y_label_area_size(70)
        .build_cartesian_2d(0f64..tmax, 0f64..ymax)?;
    c.configure_mesh()
        .x_desc("time (s)")
        .y_desc("per second")
        .draw()?;
    for (i, (r, s)) in runs.iter().zip(series).enumerate() {
        let col = COLORS[i % COLORS.len()];
        // Markers too: a 1-second run has a single point, which a line alone does not show.
        c.draw_series(s.iter().map(|&p| Circle::new(p, 4, col.filled())))?;
        c.draw_series(LineSeries::new(s, col.stroke_width(2)))?
            .label(r.label.clone())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], col));
    }
    c.configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()?;

    // Connect latency by percentile (open loop, same offered rate for every server).
    let curves: Vec<Vec<(f64, f64)>> = runs
        .iter()
        .map(|r| {
            r.lat
                .as_ref()
                .and_then(|m| m.get("connect_cdf_us")?.as_array().cloned())
                .unwrap_or_default()
                .iter()
                .filter_map(|p| Some((p.get(0)?.as_f64()?, p.get(1)?.as_f64()?)))
                .collect()
        })
        .collect();
    let ymax = curves.iter().flatten().map(|p| p.1).fold(1.0, f64::max) * 1.15;
    let offered = runs
        .iter()
        .find_map(|r| f(r.lat.as_ref()?, &["load", "rate"]))
        .map_or(String::new(), |v| format!(" at {v:.0}/s offered"));
    let mut c = ChartBuilder::on(&panels[1])
        .caption(
            format!("connect latency{offered}, open loop"),
            ("sans-serif", 20),
        )
        .margin(12)
        .x_label_area_size(35)
        .y_label_area_size(70)
        .build_cartesian_2d(0f64..4.0, 0f64..ymax)?;
    c.configure_mesh()
        .x_desc("percentile")
        .y_desc("latency (us)")
        .x_labels(5)
        .x_label_formatter(&|x| format!("p{}", trim(100.0 * (1.0 - 10f64.powf(-*x)))))
        .draw()?;
    for (i, (r, s)) in runs.iter().zip(curves).enumerate() {
        let col = COLORS[i % COLORS.len()];
        c.draw_series(LineSeries::new(s, col.stroke_width(2)))?
            .label(r.label.clone())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], col));
    }
    c.configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()?;

    // Server core CPU breakdown: stacked user/system/softirq/irq shares, with the work
    // share as a black tick, one bar per server.
    let parts = [
        ("user", BLUE),
        ("system", RED),
        ("softirq", GREEN),
        ("irq", MAGENTA),
    ];
    let n = runs.len().max(1);
    let mut c = ChartBuilder::on(&panels[2])
        .caption(
            "server core over the window (closed loop): stacked shares, black = work",
            ("sans-serif", 20),
        )
        .margin(12)
        .x_label_area_size(35)
        .y_label_area_size(70)
        .build_cartesian_2d(0f64..n as f64, 0f64..1.05)?;
    c.configure_mesh()
        .disable_x_mesh()
        .x_labels(0)
        .y_desc("share of the core")
        .draw()?;
    for (i, r) in runs.iter().enumerate() {
        let Some(cpu) = r.max.as_ref().and_then(|m| m.get("cpu")) else {
            continue;
        };
        let x0 = i as f64 + 0.25;
        let x1 = i as f64 + 0.75;
        c.draw_series(std::iter::once(Text::new(
            r.label.clone(),
            (x0, 1.04),
            ("sans-serif", 15),
        )))?;
        let mut y = 0.0;
        for (name, col) in parts {
            let v = f(cpu, &["server", name]).unwrap_or(0.0);
            c.draw_series(std::iter::once(Rectangle::new(
                [(x0, y), (x1, y + v)],
                col.mix(0.7).filled(),
            )))?;
            y += v;
        }
        if let Some(w) = f(cpu, &["server", "work"]) {
            c.draw_series(std::iter::once(PathElement::new(
                vec![(x0 - 0.05, w), (x1 + 0.05, w)],
                BLACK.stroke_width(3),
            )))?;
        }
    }
    for (name, col) in parts {
        c.draw_series(std::iter::empty::<Rectangle<(f64, f64)>>())?
            .label(name)
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 15, y + 5)], col.filled()));
    }
    c.configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()?;
    root.present()?;
    Ok(())
}
