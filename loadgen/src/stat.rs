//! `xtcp-stat FILE`: follows a stats file (the `--stats FILE` of the xtcp example servers, or
//! of `xtcp-loadgen kernel-server`) and prints what changed between consecutive snapshots,
//! per core, in the style of `nstat`: one line per counter that moved, the total first, then
//! one column per core (`q<queue>`). `-j` prints one JSON object per snapshot instead.
//!
//! The document is read as an untyped [`serde_json::Value`], so new keys show up without a
//! change here: every number is a counter, nested objects are flattened with dots
//! (`xsk.rx_frames`, `xdp.redirected`), the `cores` array gives the per-core columns, other
//! arrays and strings are ignored. Gauges (`connections`, `time_wait`, …) print as their
//! change, which may be negative.
//!
//! Timing: the server replaces the file atomically (write + rename) once per interval; a
//! snapshot is taken when the file's modification time changes, and the interval printed is
//! the difference of those times, so deltas are per snapshot period (1 s by default) whatever
//! the polling phase.

use serde_json::{Map, Value};
use std::fmt::Write as _;
use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

/// Counter name → value, in document order.
pub type Counters = Vec<(String, f64)>;

/// One parsed snapshot.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// Top-level numbers (the totals) and flattened nested objects, `cores` excluded.
    pub total: Counters,
    /// One entry per element of `cores`: its label (`q<queue>`, or `c<index>` when it has no
    /// `queue` key) and its flattened numbers.
    pub cores: Vec<(String, Counters)>,
}

fn flatten(obj: &Map<String, Value>, prefix: &str, out: &mut Counters) {
    for (k, v) in obj {
        let name = if prefix.is_empty() {
            k.clone()
        } else {
            format!("{prefix}.{k}")
        };
        match v {
            Value::Number(n) => {
                if let Some(x) = n.as_f64() {
                    out.push((name, x));
                }
            }
            Value::Object(o) => flatten(o, &name, out),
            _ => {}
        }
    }
}

impl Sample {
    /// Parses a stats document; `None` if it is not a JSON object.
    pub fn parse(doc: &str) -> Option<Sample> {
        let v: Value = serde_json::from_str(doc).ok()?;
        let obj = v.as_object()?;
        let mut total = Vec::new();
        flatten(obj, "", &mut total);
        let cores = obj
            .get("cores")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .enumerate()
                    .filter_map(|(i, c)| {
                        let o = c.as_object()?;
                        let label = match o.get("queue").and_then(Value::as_u64) {
                            Some(q) => format!("q{q}"),
                            None => format!("c{i}"),
                        };
                        let mut counters = Vec::new();
                        flatten(o, "", &mut counters);
                        // The queue number is a label, not a counter.
                        counters.retain(|(k, _)| k != "queue" && k != "core");
                        Some((label, counters))
                    })
                    .collect()
            })
            .unwrap_or_default();
        Some(Sample { total, cores })
    }
}

/// The change from one snapshot to the next.
#[derive(Debug, Clone, PartialEq)]
pub struct Delta {
    /// Seconds between the two snapshots.
    pub interval_s: f64,
    pub total: Counters,
    pub cores: Vec<(String, Counters)>,
}

fn diff(prev: &Counters, cur: &Counters) -> Counters {
    cur.iter()
        .map(|(k, v)| {
            // A key new in this snapshot counts from zero.
            let before = prev.iter().find(|(pk, _)| pk == k).map_or(0.0, |p| p.1);
            (k.clone(), v - before)
        })
        .collect()
}

impl Delta {
    pub fn between(prev: &Sample, cur: &Sample, interval_s: f64) -> Delta {
        let cores = cur
            .cores
            .iter()
            .map(|(label, c)| {
                let before = prev.cores.iter().find(|(l, _)| l == label).map(|p| &p.1);
                let empty = Vec::new();
                (label.clone(), diff(before.unwrap_or(&empty), c))
            })
            .collect();
        Delta {
            interval_s,
            total: diff(&prev.total, &cur.total),
            cores,
        }
    }

    /// The nstat-style table: a header line, then one line per counter that changed (all of
    /// them with `zeros`), total then one column per core. Counters that exist only per core
    /// get `-` as total.
    pub fn to_text(&self, elapsed_s: f64, zeros: bool) -> String {
        let mut names: Vec<&str> = self.total.iter().map(|(k, _)| k.as_str()).collect();
        for (_, c) in &self.cores {
            for (k, _) in c {
                if !names.contains(&k.as_str()) {
                    names.push(k);
                }
            }
        }
        let mut out = String::new();
        let _ = write!(
            out,
            "#{:>9.2} s  (+{:.2} s)\n{:<28}{:>14}",
            elapsed_s, self.interval_s, "counter", "total"
        );
        for (label, _) in &self.cores {
            let _ = write!(out, "{label:>12}");
        }
        out.push('\n');
        let get = |c: &Counters, k: &str| c.iter().find(|(n, _)| n == k).map(|p| p.1);
        for name in names {
            let total = get(&self.total, name);
            let per: Vec<Option<f64>> = self.cores.iter().map(|(_, c)| get(c, name)).collect();
            let moved = total.is_some_and(|v| v != 0.0) || per.iter().flatten().any(|&v| v != 0.0);
            if !moved && !zeros {
                continue;
            }
            let _ = write!(out, "{name:<28}{:>14}", num(total));
            for v in per {
                let _ = write!(out, "{:>12}", num(v));
            }
            out.push('\n');
        }
        out
    }

    /// One JSON line: `{"t": …, "interval_s": …, "total": {…}, "cores": {"q0": {…}, …}}`.
    pub fn to_json(&self, elapsed_s: f64) -> String {
        let obj = |c: &Counters| {
            Value::Object(
                c.iter()
                    .map(|(k, v)| (k.clone(), json_num(*v)))
                    .collect::<Map<String, Value>>(),
            )
        };
        let cores: Map<String, Value> = self
            .cores
            .iter()
            .map(|(l, c)| (l.clone(), obj(c)))
            .collect();
        let v = serde_json::json!({
            "t": (elapsed_s * 1000.0).round() / 1000.0,
            "interval_s": (self.interval_s * 1000.0).round() / 1000.0,
            "total": obj(&self.total),
            "cores": cores,
        });
        v.to_string()
    }
}

fn num(v: Option<f64>) -> String {
    match v {
        None => "-".into(),
        Some(x) if x.fract() == 0.0 && x.abs() < 1e15 => format!("{}", x as i64),
        Some(x) => format!("{x:.3}"),
    }
}

fn json_num(x: f64) -> Value {
    if x.fract() == 0.0 && x.abs() < 9.0e15 {
        Value::from(x as i64)
    } else {
        Value::from(x)
    }
}

/// What `follow` does.
#[derive(Debug, Clone)]
pub struct FollowConfig {
    /// JSON lines instead of the table.
    pub json: bool,
    /// Print counters that did not move too.
    pub zeros: bool,
    /// Stop after this many printed deltas (`None`: until the file goes stale).
    pub count: Option<u64>,
    /// Give up when the file has not changed for this long.
    pub stale_after: Duration,
    /// How often the file's modification time is checked.
    pub poll: Duration,
}

fn read(path: &Path) -> Option<(SystemTime, Sample)> {
    let mtime = std::fs::metadata(path).ok()?.modified().ok()?;
    let doc = std::fs::read_to_string(path).ok()?;
    Some((mtime, Sample::parse(&doc)?))
}

/// Follows `path`, writing one delta per snapshot to `out`. Returns the number printed, or an
/// error when the file never appears or goes stale before anything was printed.
pub fn follow(
    path: &Path,
    cfg: &FollowConfig,
    out: &mut dyn std::io::Write,
) -> Result<u64, String> {
    let start = Instant::now();
    let mut last_change = Instant::now();
    let mut prev: Option<(SystemTime, Sample)> = None;
    let mut printed = 0u64;
    loop {
        if cfg.count.is_some_and(|c| printed >= c) || crate::util::stop_requested() {
            return Ok(printed);
        }
        let cur = read(path);
        match (cur, &prev) {
            (Some((mtime, sample)), Some((pt, ps))) if mtime != *pt => {
                let dt = mtime.duration_since(*pt).unwrap_or_default().as_secs_f64();
                let d = Delta::between(ps, &sample, dt);
                let t = start.elapsed().as_secs_f64();
                let line = if cfg.json {
                    d.to_json(t) + "\n"
                } else {
                    d.to_text(t, cfg.zeros)
                };
                out.write_all(line.as_bytes())
                    .and_then(|()| out.flush())
                    .map_err(|e| format!("writing output: {e}"))?;
                printed += 1;
                prev = Some((mtime, sample));
                last_change = Instant::now();
            }
            (Some(s), None) => {
                prev = Some(s);
                last_change = Instant::now();
            }
            _ => {}
        }
        if last_change.elapsed() >= cfg.stale_after {
            return if printed > 0 {
                Ok(printed)
            } else {
                Err(format!(
                    "{}: no new snapshot for {:.0} s (is the server running with --stats?)",
                    path.display(),
                    cfg.stale_after.as_secs_f64()
                ))
            };
        }
        std::thread::sleep(cfg.poll);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = r#"{"server": "xtcp", "queues": 2, "connections": 3, "rx_frames": 100,
        "xdp": {"redirected": 10, "passed": 1},
        "cores": [{"queue": 0, "core": 1, "rx_frames": 60, "zero_copy": false, "xsk": {"kicks": 5}},
                  {"queue": 1, "core": null, "rx_frames": 40, "xsk": {"kicks": 7}}]}"#;
    const B: &str = r#"{"server": "xtcp", "queues": 2, "connections": 1, "rx_frames": 150,
        "xdp": {"redirected": 10, "passed": 1}, "brand_new": 4,
        "cores": [{"queue": 0, "core": 1, "rx_frames": 90, "zero_copy": false, "xsk": {"kicks": 5}},
                  {"queue": 1, "core": null, "rx_frames": 60, "xsk": {"kicks": 9}}]}"#;

    #[test]
    fn flattens_and_diffs_unknown_keys_too() {
        let (a, b) = (Sample::parse(A).unwrap(), Sample::parse(B).unwrap());
        assert!(a.total.contains(&("xdp.redirected".into(), 10.0)));
        assert_eq!(a.cores[1].0, "q1");
        assert!(a.cores[0].1.contains(&("xsk.kicks".into(), 5.0)));
        assert!(
            !a.cores[0]
                .1
                .iter()
                .any(|(k, _)| k == "queue" || k == "core")
        );
        let d = Delta::between(&a, &b, 1.0);
        let get = |c: &Counters, k: &str| c.iter().find(|(n, _)| n == k).unwrap().1;
        assert_eq!(get(&d.total, "rx_frames"), 50.0);
        assert_eq!(get(&d.total, "connections"), -2.0);
        assert_eq!(get(&d.total, "brand_new"), 4.0);
        assert_eq!(get(&d.cores[0].1, "rx_frames"), 30.0);
        assert_eq!(get(&d.cores[1].1, "xsk.kicks"), 2.0);

        let text = d.to_text(2.0, false);
        let row = text.lines().find(|l| l.starts_with("rx_frames")).unwrap();
        assert_eq!(
            row.split_whitespace().collect::<Vec<_>>(),
            ["rx_frames", "50", "30", "20"]
        );
        assert!(
            !text.contains("xdp.redirected"),
            "unchanged counters hidden"
        );
        assert!(d.to_text(2.0, true).contains("xdp.redirected"));
        let xsk = text.lines().find(|l| l.starts_with("xsk.kicks")).unwrap();
        assert_eq!(
            xsk.split_whitespace().collect::<Vec<_>>(),
            ["xsk.kicks", "-", "0", "2"]
        );

        let j: Value = serde_json::from_str(&d.to_json(2.0)).unwrap();
        assert_eq!(j["total"]["rx_frames"], 50);
        assert_eq!(j["cores"]["q1"]["xsk.kicks"], 2);
        assert_eq!(j["interval_s"], 1.0);
    }

    #[test]
    fn not_an_object_is_refused() {
        assert!(Sample::parse("[1, 2]").is_none());
        assert!(Sample::parse("{\"a\": ").is_none());
    }

    #[test]
    fn follows_a_file_that_is_replaced() {
        let dir = std::env::temp_dir().join(format!("xtcp-stat-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("s.json");
        std::fs::write(&path, A).unwrap();
        let writer = {
            let path = path.clone();
            std::thread::spawn(move || {
                for doc in [B, A] {
                    std::thread::sleep(Duration::from_millis(120));
                    let tmp = path.with_extension("tmp");
                    std::fs::write(&tmp, doc).unwrap();
                    std::fs::rename(&tmp, &path).unwrap();
                }
            })
        };
        let cfg = FollowConfig {
            json: true,
            zeros: false,
            count: Some(2),
            stale_after: Duration::from_secs(5),
            poll: Duration::from_millis(10),
        };
        let mut out = Vec::new();
        assert_eq!(follow(&path, &cfg, &mut out).unwrap(), 2);
        writer.join().unwrap();
        let lines: Vec<Value> = String::from_utf8(out)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines[0]["total"]["rx_frames"], 50);
        assert_eq!(lines[1]["total"]["rx_frames"], -50);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn stale_file_is_an_error() {
        let cfg = FollowConfig {
            json: false,
            zeros: false,
            count: None,
            stale_after: Duration::from_millis(50),
            poll: Duration::from_millis(10),
        };
        let e = follow(Path::new("/nonexistent/x.json"), &cfg, &mut Vec::new()).unwrap_err();
        assert!(e.contains("no new snapshot"));
    }
}
