//! Draining and undraining any server of any parsable config: never a panic;
//! a drained server is `down`, an undrained one has no `down` left; only the
//! server's own statement changes; drain then undrain of a server that was
//! up gives back the input byte for byte. The input's first byte picks the
//! server (and whether an arbitrary name is tried instead), the rest is the config.
#![no_main]
use libfuzzer_sys::fuzz_target;
use nginx_rollout::conf::{ConfigSet, Edit, EditOptions, Fs};
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

/// Bytes before the first and after the last difference of `a` and `b` are
/// shared; returns the differing window of `a` (start, end).
fn window(a: &[u8], b: &[u8]) -> (usize, usize) {
    let pre = a.iter().zip(b).take_while(|(x, y)| x == y).count();
    let max = a.len().min(b.len()) - pre;
    let suf = a
        .iter()
        .rev()
        .zip(b.iter().rev())
        .take(max)
        .take_while(|(x, y)| x == y)
        .count();
    (pre, a.len() - suf)
}

fuzz_target!(|data: &[u8]| {
    let Some((&pick, config)) = data.split_first() else {
        return;
    };
    let path = Path::new("fuzz.conf");
    let Ok(set) = ConfigSet::load_single(path, &MemFs(config.to_vec())) else {
        return;
    };
    let force = EditOptions { force: true };
    let servers: Vec<(String, String)> = set
        .upstreams()
        .iter()
        .flat_map(|u| u.servers.iter().map(|s| (u.name.clone(), s.address.clone())))
        .collect();
    if servers.is_empty() || pick & 0x80 != 0 {
        // An arbitrary name: an error or an edit, never a panic.
        let name = String::from_utf8_lossy(&config[..config.len().min(16)]).into_owned();
        let mut e = set.clone();
        let _ = e.apply(&name, &name, Edit::MarkDown, force);
        let _ = e.apply("u", &name, Edit::Restore, force);
        return;
    }
    let (upstream, server) = &servers[pick as usize % servers.len()];
    let up = set.upstream(upstream);
    let Ok(target) = up.as_ref().map(|u| u.server(server)) else {
        return;
    };
    let Ok(target) = target else {
        return; // twins and ambiguous names are refused, as they must be
    };
    let (line, was_down) = (target.line, target.is_down());
    let mut drained = set.clone();
    let Ok(_) = drained.apply(upstream, server, Edit::MarkDown, force) else {
        return;
    };
    let after = drained.upstream(upstream).unwrap();
    let s = after.server(server).unwrap();
    assert!(s.is_down(), "{server} drained but not down");
    assert_eq!(s.line, line, "the server stays on its line");
    let before_bytes = set.files().next().unwrap().1;
    let drained_bytes = drained.files().next().unwrap().1.to_vec();
    if before_bytes != drained_bytes.as_slice() {
        let (start, end) = window(before_bytes, &drained_bytes);
        let stmt_line_start = before_bytes[..start].iter().filter(|&&b| b == b'\n').count() + 1;
        assert!(stmt_line_start >= line, "a change before the server's line");
        assert!(end <= before_bytes.len());
    }
    let mut restored = drained.clone();
    restored
        .apply(upstream, server, Edit::Restore, force)
        .expect("a drained server undrains");
    let up = restored.upstream(upstream).unwrap();
    assert!(!up.server(server).unwrap().is_down(), "{server}: a down is left");
    if !was_down {
        assert_eq!(
            restored.files().next().unwrap().1,
            config,
            "drain + undrain of a live server is the identity"
        );
    }
});
