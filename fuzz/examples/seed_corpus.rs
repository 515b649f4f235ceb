//! Writes the seed corpora (from simulator captures) under `corpus/<target>/`:
//! `cargo run --example seed_corpus [DIR]` in `fuzz/`.

fn main() {
    let dir = std::env::args().nth(1).unwrap_or_else(|| "corpus".into());
    let n = xtcp_fuzz::seeds::write_corpora(std::path::Path::new(&dir)).expect("write corpora");
    println!("{n} seed files under {dir}/");
}
