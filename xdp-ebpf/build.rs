//! Compiles the XDP program (C) to a BPF object in `OUT_DIR`, and builds and runs a host probe
//! that prints the header's layout as Rust constants (`OUT_DIR/layout.rs`) for the mirror-type
//! checks. See ../../shared/ENVIRONMENT.md for why the program is C.
//!
//! No environment variable or cargo config is needed, so the crate builds as a dependency:
//! - BPF compiler: `$CLANG` if set, else the first of `clang-21` … `clang-14`, `clang` that
//!   runs and reports major version 14 or later. If none does, or compiling fails (headers
//!   missing), the object checked in at `prebuilt/xtcp_xdp.o` is used, with a warning.
//!   `tests/prebuilt.rs` checks the checked-in object against a fresh build.
//! - Layout probe (a host C program): the same clang, else `$CC`, `cc`, `gcc`; if none works,
//!   the checked-in `prebuilt/layout.rs` (the probe's output when the object was made).
//!
//! Exported to the crate: `XTCP_XDP_OBJECT_SOURCE` = `"<compiler> <major>"` or `"prebuilt"`.

use std::{
    env,
    path::{Path, PathBuf},
    process::Command,
};

/// Oldest clang whose BPF back end and BTF output the program and aya are known to need.
const MIN_CLANG: u32 = 14;

fn clang_major(cmd: &str) -> Option<u32> {
    let out = Command::new(cmd).arg("--version").output().ok()?;
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let rest = &text[text.find("clang version ")? + "clang version ".len()..];
    rest.split('.').next()?.trim().parse().ok()
}

fn candidates() -> Vec<String> {
    let mut v = Vec::new();
    if let Some(c) = env::var_os("CLANG") {
        v.push(c.to_string_lossy().into_owned());
    }
    v.extend((MIN_CLANG..=21).rev().map(|m| format!("clang-{m}")));
    v.push("clang".into());
    v
}

/// Runs `cmd`; Err(diagnostic) if it cannot start or fails.
fn run(cmd: &mut Command) -> Result<Vec<u8>, String> {
    let out = cmd
        .output()
        .map_err(|e| format!("cannot run {cmd:?}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "{cmd:?} failed ({}):\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(out.stdout)
}

fn compile_bpf(clang: &str, crate_dir: &Path, include: &Path, out: &Path) -> Result<(), String> {
    run(Command::new(clang)
        .args(["-O2", "-g", "-target", "bpf", "-Wall", "-Werror"])
        // Relative paths in the debug info, so the object does not depend on the checkout.
        .arg(format!("-fdebug-prefix-map={}=.", crate_dir.display()))
        // Debian keeps asm/types.h under the multiarch directory.
        .arg("-I/usr/include/x86_64-linux-gnu")
        .arg(format!("-I{}", include.display()))
        .arg("-c")
        .arg(crate_dir.join("src/xtcp_xdp.c"))
        .arg("-o")
        .arg(out))
    .map(drop)
}

fn main() {
    let crate_dir = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"));
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").expect("OUT_DIR"));
    let include = crate_dir.join("include");
    let prebuilt = crate_dir.join("prebuilt");
    for p in [
        crate_dir.join("src/xtcp_xdp.c"),
        crate_dir.join("src/layout_probe.c"),
        include.join("xtcp_maps.h"),
        prebuilt.join("xtcp_xdp.o"),
        prebuilt.join("layout.rs"),
    ] {
        println!("cargo:rerun-if-changed={}", p.display());
    }
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=CLANG");
    println!("cargo:rerun-if-env-changed=CC");

    // The BPF object.
    let object = out_dir.join("xtcp_xdp.o");
    let mut source = None;
    let mut errors = Vec::new();
    for clang in candidates() {
        let Some(major) = clang_major(&clang) else {
            continue;
        };
        if major < MIN_CLANG {
            errors.push(format!("{clang}: version {major} < {MIN_CLANG}"));
            continue;
        }
        match compile_bpf(&clang, &crate_dir, &include, &object) {
            Ok(()) => {
                source = Some((clang, major));
                break;
            }
            Err(e) => errors.push(e),
        }
    }
    let source_name = match &source {
        Some((clang, major)) => format!("{clang} {major}"),
        None => {
            std::fs::copy(prebuilt.join("xtcp_xdp.o"), &object).expect("copy the prebuilt object");
            println!(
                "cargo:warning=no usable clang >= {MIN_CLANG} found; using the prebuilt XDP object ({})",
                if errors.is_empty() {
                    "no clang on PATH".to_string()
                } else {
                    errors.join("; ")
                }
            );
            "prebuilt".into()
        }
    };
    println!("cargo:rustc-env=XTCP_XDP_OBJECT_SOURCE={source_name}");

    // The layout constants.
    let probe_bin = out_dir.join("layout_probe");
    let mut host_cc: Vec<String> = source.iter().map(|(c, _)| c.clone()).collect();
    if let Some(cc) = env::var_os("CC") {
        host_cc.push(cc.to_string_lossy().into_owned());
    }
    host_cc.extend(["cc".into(), "gcc".into()]);
    let layout = host_cc.iter().find_map(|cc| {
        run(Command::new(cc)
            .args(["-O1", "-Wall", "-Werror"])
            .arg(format!("-I{}", include.display()))
            .arg(crate_dir.join("src/layout_probe.c"))
            .arg("-o")
            .arg(&probe_bin))
        .ok()?;
        run(&mut Command::new(&probe_bin)).ok()
    });
    let layout = layout.unwrap_or_else(|| {
        println!("cargo:warning=no host C compiler ran the layout probe; using prebuilt/layout.rs");
        std::fs::read(prebuilt.join("layout.rs")).expect("read prebuilt/layout.rs")
    });
    std::fs::write(out_dir.join("layout.rs"), layout).expect("write layout.rs");
}
