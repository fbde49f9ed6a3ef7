//! A [`Scope`]: unique names for containers, networks, images and compose
//! projects a test makes with the docker CLI, and their removal when dropped,
//! even on panic.
use std::path::PathBuf;
use std::process::Command;
use std::sync::RwLockReadGuard;
use std::sync::atomic::{AtomicUsize, Ordering};

use super::{APP_IMAGE, docker};

/// A compose project of a [`Scope`] in a temp dir, for a test to write and
/// bring up with `docker-compose`; the scope removes what it ran when dropped.
pub struct ComposeDir {
    /// The project directory.
    pub dir: tempfile::TempDir,
    /// The project name: the scope's prefix without dashes.
    pub project: String,
    /// Its docker-compose.yml (for the test to write).
    pub file: PathBuf,
}

impl ComposeDir {
    /// `docker-compose -p PROJECT up -d`, panicking with compose's stderr on failure.
    pub fn up(&self) {
        let up = Command::new("docker-compose")
            .current_dir(self.dir.path())
            .args(["-p", &self.project, "up", "-d"])
            .output()
            .unwrap();
        assert!(
            up.status.success(),
            "{}",
            String::from_utf8_lossy(&up.stderr)
        );
    }
}

/// Everything one test created; removed when dropped.
pub struct Scope {
    /// Unique prefix for every name this test creates.
    pub prefix: String,
    containers: Vec<String>,
    networks: Vec<String>,
    images: Vec<String>,
    volumes: Vec<String>,
    /// Compose projects to remove.
    compose: Vec<String>,
    _turn: RwLockReadGuard<'static, ()>,
}

impl Scope {
    /// A new scope named after the test.
    pub fn new(test: &str) -> Self {
        static N: AtomicUsize = AtomicUsize::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        let prefix = format!(
            "nrbk-{test}-{}-{}-{:x}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed),
            nanos % 0xffff
        );
        Scope {
            prefix,
            containers: vec![],
            networks: vec![],
            images: vec![],
            volumes: vec![],
            compose: vec![],
            _turn: super::shared(),
        }
    }

    /// `PREFIX-suffix`.
    pub fn name(&self, suffix: &str) -> String {
        format!("{}-{suffix}", self.prefix)
    }

    /// Creates a bridge network `PREFIX-suffix`.
    pub fn network(&mut self, suffix: &str) -> String {
        let name = self.name(suffix);
        docker(&["network", "create", &name]);
        self.networks.push(name.clone());
        name
    }

    /// `docker run -d --name PREFIX-suffix ARGS…`; returns the container name.
    pub fn run(&mut self, suffix: &str, args: &[&str]) -> String {
        let name = self.name(suffix);
        self.containers.push(name.clone());
        let mut argv = vec!["run", "-d", "--name", &name];
        argv.extend_from_slice(args);
        docker(&argv);
        name
    }

    /// Remembers a volume to remove.
    pub fn track_volume(&mut self, name: &str) {
        self.volumes.push(name.to_string());
    }

    /// Commits a stopped app container with `changes` (Dockerfile lines) as
    /// image `PREFIX-suffix:latest`.
    pub fn image_with(&mut self, suffix: &str, changes: &[&str]) -> String {
        let image = format!("{}:latest", self.name(suffix));
        let tmp = self.name(&format!("{suffix}-src"));
        docker(&["create", "--name", &tmp, APP_IMAGE]);
        let mut argv = vec!["commit".to_string()];
        for c in changes {
            argv.push("--change".into());
            argv.push(c.to_string());
        }
        argv.push(tmp.clone());
        argv.push(image.clone());
        let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
        docker(&argv);
        docker(&["rm", &tmp]);
        self.images.push(image.clone());
        image
    }

    /// A new compose project directory of this scope, remembered to remove.
    pub fn compose_dir(&mut self) -> ComposeDir {
        let dir = tempfile::tempdir().unwrap();
        let project = self.prefix.replace('-', "");
        self.track_compose(&project);
        let file = dir.path().join("docker-compose.yml");
        ComposeDir { dir, project, file }
    }

    /// Remembers a compose project to remove.
    pub fn track_compose(&mut self, project: &str) {
        self.compose.push(project.to_string());
    }
}

impl Drop for Scope {
    fn drop(&mut self) {
        let quiet = |args: &[&str]| {
            let _ = Command::new("docker").args(args).output();
        };
        for project in &self.compose {
            super::remove_compose_project(project);
        }
        for c in &self.containers {
            quiet(&["rm", "-f", "-v", c]);
        }
        // Containers made by the code under test carry our prefix too.
        let leftovers = Command::new("docker")
            .args(["ps", "-aq", "--filter", &format!("name={}", self.prefix)])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).to_string())
            .unwrap_or_default();
        for id in leftovers.split_whitespace() {
            quiet(&["rm", "-f", "-v", id]);
        }
        for n in &self.networks {
            quiet(&["network", "rm", n]);
        }
        for v in &self.volumes {
            quiet(&["volume", "rm", "-f", v]);
        }
        for i in &self.images {
            quiet(&["rmi", "-f", i]);
        }
    }
}
