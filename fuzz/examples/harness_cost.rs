//! How long one `Harness::new()` takes (the fixed cost of every `stack_receive` input).
fn main() {
    let t = std::time::Instant::now();
    for _ in 0..2000 {
        std::hint::black_box(xtcp_fuzz::Harness::new());
    }
    println!("{:?} per harness", t.elapsed() / 2000);
}
