//! Compiles the XDP program (C) to a BPF object in `OUT_DIR`, and builds and runs a host probe
//! that prints the header's layout as Rust constants (`OUT_DIR/layout.rs`) for the mirror-type
//! test. Needs clang-19 (see ../../shared/ENVIRONMENT.md for why the program is C).

use std::{
    env,
    path::{Path, PathBuf},
    process::Command,
};

const CLANG: &str = "clang-19";

fn run(cmd: &mut Command, what: &str) -> Vec<u8> {
    let out = match cmd.output() {
        Ok(out) => out,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => panic!(
            "{CLANG} not found ({e}); it compiles the XDP program: run ./scripts/install-deps.sh"
        ),
        Err(e) => panic!("{what}: cannot run {cmd:?}: {e}"),
    };
    if !out.status.success() {
        panic!(
            "{what} failed ({}): {cmd:?}\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    out.stdout
}

fn main() {
    let crate_dir = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"));
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").expect("OUT_DIR"));
    let include = crate_dir.join("include");
    let prog = crate_dir.join("src/xtcp_xdp.c");
    let probe = crate_dir.join("src/layout_probe.c");
    for p in [&prog, &probe, &include.join("xtcp_maps.h")] {
        println!("cargo:rerun-if-changed={}", p.display());
    }
    println!("cargo:rerun-if-changed=build.rs");

    let inc = |p: &Path| format!("-I{}", p.display());
    run(
        Command::new(CLANG)
            .args(["-O2", "-g", "-target", "bpf", "-Wall", "-Werror"])
            // Debian keeps asm/types.h under the multiarch directory.
            .arg("-I/usr/include/x86_64-linux-gnu")
            .arg(inc(&include))
            .arg("-c")
            .arg(&prog)
            .arg("-o")
            .arg(out_dir.join("xtcp_xdp.o")),
        "compiling the XDP program",
    );

    let probe_bin = out_dir.join("layout_probe");
    run(
        Command::new(CLANG)
            .args(["-O1", "-Wall", "-Werror"])
            .arg(inc(&include))
            .arg(&probe)
            .arg("-o")
            .arg(&probe_bin),
        "compiling the layout probe",
    );
    let consts = run(&mut Command::new(&probe_bin), "running the layout probe");
    std::fs::write(out_dir.join("layout.rs"), consts).expect("write layout.rs");
}
