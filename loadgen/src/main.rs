//! xtcp-loadgen: measures handshake rate, teardown rate and TIME-WAIT table pressure.
fn main() {
    eprintln!("xtcp-loadgen: not built yet");
    std::process::exit(2);
}
