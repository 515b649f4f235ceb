//! xtcp-loadgen: measures handshake rate, teardown rate and TIME-WAIT table pressure.

use clap::Parser;
use std::process::ExitCode;
use xtcp_loadgen::cli::{Cli, Cmd};
use xtcp_loadgen::{plot, reflector, run, server, util};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.cmd {
        Cmd::Run(args) => run_cmd(args),
        Cmd::ComparePlot(a) => compare_cmd(a),
        Cmd::Reflector(a) => reflector::serve(reflector::ReflectorConfig {
            iface: a.iface,
            ip: a.ip,
            port: a.port,
            mode: a.mode,
            core: a.core,
            stats: a.stats,
        }),
        Cmd::KernelServer(a) => (|| {
            let cores = match &a.cores {
                Some(s) => util::parse_cores(s).map_err(|e| format!("--cores {s}: {e}"))?,
                None => Vec::new(),
            };
            if a.threads == Some(0) {
                return Err("--threads must be > 0".to_string());
            }
            server::serve(server::ServerConfig {
                ip: a.ip,
                port: a.port,
                mode: a.mode,
                threads: a.threads.unwrap_or(cores.len().max(1)),
                cores,
                stats: a.stats,
                body_bytes: a.body_bytes,
            })
        })(),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtcp-loadgen: error: {e}");
            ExitCode::from(2)
        }
    }
}

fn run_cmd(args: xtcp_loadgen::cli::RunArgs) -> Result<(), String> {
    let json = args.json.clone();
    let plot_path = args.plot.clone();
    let out = run::run(args)?;
    print!("{}", out.report.table());
    if let Some(p) = json {
        let text = serde_json::to_string_pretty(&out.report).map_err(|e| e.to_string())?;
        std::fs::write(&p, text + "\n")
            .map_err(|e| format!("cannot write {}: {e}", p.display()))?;
    }
    if let Some(p) = plot_path {
        plot::write_svg(&p, &out.report, &out.hists.connect)?;
    }
    Ok(())
}

fn compare_cmd(a: xtcp_loadgen::cli::CompareArgs) -> Result<(), String> {
    let read = |p: &str| -> Option<serde_json::Value> {
        serde_json::from_str(&std::fs::read_to_string(p).ok()?).ok()
    };
    let mut runs = Vec::new();
    for spec in &a.runs {
        let (label, files) = spec
            .split_once('=')
            .ok_or_else(|| format!("--run {spec}: want LABEL=MAX.json[,LAT.json]"))?;
        let (max, lat) = files.split_once(',').unwrap_or((files, ""));
        runs.push(plot::CompareRun {
            label: label.to_string(),
            max: read(max),
            lat: (!lat.is_empty()).then(|| read(lat)).flatten(),
        });
    }
    plot::write_compare(&a.out, &a.workload, &runs)
}
