//! Writes the benchmark configuration to stdout: `gen-conf [UNITS]`
//! (default 5000 upstreams and server blocks, about 10 MB).
#[path = "../benches/support/gen_conf.rs"]
mod gen_conf;

use std::io::Write;

fn main() {
    let n = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(5000);
    std::io::stdout()
        .write_all(gen_conf::generate(n).as_bytes())
        .expect("write to stdout");
}
