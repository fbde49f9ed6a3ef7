//! Throughput of parse + print and of one drain edit on the generated config.
#[path = "support/gen_conf.rs"]
mod gen_conf;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use nginx_rollout::conf::{ConfigSet, Doc, Edit, EditOptions, Fs};
use std::hint::black_box;
use std::io;
use std::path::{Path, PathBuf};

/// One in-memory file.
struct MemFs(Vec<u8>);

impl Fs for MemFs {
    fn read(&self, _: &Path) -> io::Result<Vec<u8>> {
        Ok(self.0.clone())
    }
    fn glob(&self, _: &Path) -> io::Result<Vec<PathBuf>> {
        Ok(Vec::new())
    }
}

fn bench(c: &mut Criterion) {
    let text = gen_conf::generate(5000).into_bytes();
    let mut g = c.benchmark_group("conf");
    g.sample_size(20);
    g.throughput(Throughput::Bytes(text.len() as u64));
    g.bench_function("parse+print 10MB", |b| {
        b.iter(|| {
            let doc = Doc::parse(black_box(text.clone())).unwrap();
            black_box(doc.bytes().len())
        })
    });
    let fs = MemFs(text.clone());
    let set = ConfigSet::load_single(Path::new("nginx.conf"), &fs).unwrap();
    g.bench_function("drain one server 10MB", |b| {
        b.iter(|| {
            let mut s = set.clone();
            s.apply(
                "up2500",
                "10.10.0.1:8080",
                Edit::MarkDown,
                EditOptions::default(),
            )
            .unwrap()
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
