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
    let pts: Vec<(f64, f64)> = if connect.is_empty() {
        Vec::new()
    } else {
        (0..=400)
            .map(|i| {
                let x = f64::from(i) / 100.0;
                let q = 1.0 - 10f64.powf(-x);
                (x, connect.value_at_quantile(q) as f64 / 1000.0)
            })
            .collect()
    };
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

fn trim(p: f64) -> String {
    let s = format!("{p:.2}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}
