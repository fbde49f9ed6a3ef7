//! A [`Sandbox`] gives a test a unique name prefix, its own bridge network,
//! a temp dir for bind-mount sources, and helpers to create containers
//! through the API; on drop (also when the test panics) it removes every
//! container and the network it made, and nothing else.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, RwLockReadGuard};
use std::time::Duration;

use bollard::Docker;
use bollard::models::{
    ContainerCreateBody, EndpointSettings, HostConfig, NetworkCreateRequest, NetworkingConfig,
    PortBinding,
};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, RemoveContainerOptions, UploadToContainerOptions,
};

use super::{APP_IMAGE, NGINX_IMAGE};

/// Label put on everything a test creates, so leftovers can be found.
pub const TEST_LABEL: &str = "nginx-rollout-test";

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// One test's Docker resources; cleaned up on drop.
pub struct Sandbox {
    /// Client for the daemon.
    pub docker: Docker,
    /// Unique prefix of every name this sandbox makes (`nrt-<pid>-<n>-<tag>`).
    pub prefix: String,
    /// Name of the sandbox's own bridge network.
    pub network: String,
    /// Temporary directory for files to bind-mount.
    pub dir: tempfile::TempDir,
    containers: Mutex<Vec<String>>,
    _turn: RwLockReadGuard<'static, ()>,
}

/// A container to create in a [`Sandbox`].
#[derive(Debug, Clone, Default)]
pub struct Spec {
    what: String,
    image: String,
    cmd: Option<Vec<String>>,
    env: Vec<String>,
    labels: HashMap<String, String>,
    binds: Vec<String>,
    aliases: Vec<String>,
    publish: Option<u16>,
    files: Vec<(String, Vec<u8>, u32)>,
}

impl Spec {
    /// A container named `<prefix>-<what>` running `image`.
    pub fn new(what: &str, image: &str) -> Self {
        Spec {
            what: what.into(),
            image: image.into(),
            ..Default::default()
        }
    }
    /// Overrides the image's command.
    pub fn cmd(mut self, argv: &[&str]) -> Self {
        self.cmd = Some(argv.iter().map(|s| s.to_string()).collect());
        self
    }
    /// Adds an environment variable `K=V`.
    pub fn env(mut self, kv: &str) -> Self {
        self.env.push(kv.into());
        self
    }
    /// Adds a label.
    pub fn label(mut self, key: &str, value: &str) -> Self {
        self.labels.insert(key.into(), value.into());
        self
    }
    /// Bind-mounts host path `host` at `container` (file or directory).
    pub fn bind(mut self, host: &Path, container: &str) -> Self {
        self.binds.push(format!("{}:{container}", host.display()));
        self
    }
    /// Adds a network alias on the sandbox network.
    pub fn alias(mut self, alias: &str) -> Self {
        self.aliases.push(alias.into());
        self
    }
    /// Publishes container TCP `port` on a random port of 127.0.0.1.
    pub fn publish(mut self, port: u16) -> Self {
        self.publish = Some(port);
        self
    }
    /// Puts a file (absolute path, mode) into the container before it starts.
    pub fn file(mut self, path: &str, bytes: &[u8], mode: u32) -> Self {
        self.files.push((path.into(), bytes.to_vec(), mode));
        self
    }
}

impl Sandbox {
    /// A new sandbox with its own network, or `None` (after saying why) when
    /// `NGINX_ROLLOUT_SKIP_DOCKER=1`. Panics with a pointer to
    /// `scripts/dev-env.sh` when the daemon or the fixture images are missing.
    pub async fn new(tag: &str) -> Option<Self> {
        if super::skip() {
            return None;
        }
        let docker = super::connect()
            .await
            .expect("Docker daemon (run scripts/dev-env.sh)");
        for image in [NGINX_IMAGE, APP_IMAGE] {
            docker.inspect_image(image).await.unwrap_or_else(|e| {
                panic!("fixture image {image} missing ({e}); run scripts/dev-env.sh")
            });
        }
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let prefix = format!("nrt-{}-{n}-{tag}", std::process::id());
        let network = format!("{prefix}-net");
        docker
            .create_network(NetworkCreateRequest {
                name: network.clone(),
                driver: Some("bridge".into()),
                labels: Some(HashMap::from([(TEST_LABEL.into(), prefix.clone())])),
                ..Default::default()
            })
            .await
            .expect("create test network");
        // The turn is taken last: a sync guard must not be held across an await.
        let turn = super::shared();
        Some(Sandbox {
            docker,
            prefix,
            network,
            dir: tempfile::tempdir().expect("temp dir"),
            containers: Mutex::new(Vec::new()),
            _turn: turn,
        })
    }

    /// The sandbox name for `what`: `<prefix>-<what>`.
    pub fn name(&self, what: &str) -> String {
        format!("{}-{what}", self.prefix)
    }

    /// Creates and starts a container on the sandbox network; returns its id.
    pub async fn start(&self, spec: Spec) -> String {
        let name = self.name(&spec.what);
        let mut labels = spec.labels.clone();
        labels.insert(TEST_LABEL.into(), self.prefix.clone());
        let port_bindings = spec.publish.map(|p| {
            HashMap::from([(
                format!("{p}/tcp"),
                Some(vec![PortBinding {
                    host_ip: Some("127.0.0.1".into()),
                    host_port: Some(String::new()),
                }]),
            )])
        });
        let body = ContainerCreateBody {
            image: Some(spec.image.clone()),
            cmd: spec.cmd.clone(),
            env: Some(spec.env.clone()),
            labels: Some(labels),
            host_config: Some(HostConfig {
                binds: Some(spec.binds.clone()),
                network_mode: Some(self.network.clone()),
                port_bindings,
                ..Default::default()
            }),
            networking_config: Some(NetworkingConfig {
                endpoints_config: Some(HashMap::from([(
                    self.network.clone(),
                    EndpointSettings {
                        aliases: Some(spec.aliases.clone()),
                        ..Default::default()
                    },
                )])),
            }),
            ..Default::default()
        };
        let id = self
            .docker
            .create_container(
                Some(CreateContainerOptionsBuilder::default().name(&name).build()),
                body,
            )
            .await
            .unwrap_or_else(|e| panic!("create container {name}: {e}"))
            .id;
        self.adopt(&id);
        for (path, bytes, mode) in &spec.files {
            self.upload(&id, path, bytes, mode & 0o7777).await;
        }
        self.docker
            .start_container(&id, None)
            .await
            .unwrap_or_else(|e| panic!("start container {name}: {e}"));
        id
    }

    /// Registers a container made by the code under test for cleanup.
    pub fn adopt(&self, id: &str) {
        self.containers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(id.into());
    }

    /// Runs `argv` in `container` until it exits 0, at most `attempts` times
    /// 100 ms apart; panics with the last output otherwise.
    pub async fn exec_until_ok(&self, container: &str, argv: &[&str], attempts: u32) -> String {
        let mut last = String::new();
        for _ in 0..attempts {
            match nginx_rollout::docker::exec_in(&self.docker, container, argv).await {
                Ok(out) if out.success() => return out.stdout,
                Ok(out) => last = format!("exit {}: {}{}", out.exit_code, out.stdout, out.stderr),
                Err(e) => last = format!("{e:#}"),
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!(
            "`{}` in {container} never succeeded: {last}",
            argv.join(" ")
        );
    }

    /// Runs `argv` in `container` once and returns its stdout; panics unless it exits 0.
    pub async fn exec_ok(&self, container: &str, argv: &[&str]) -> String {
        self.exec_until_ok(container, argv, 1).await
    }

    /// The 127.0.0.1 port a published container port was bound to.
    pub async fn host_port(&self, container: &str, port: u16) -> u16 {
        let info = self
            .docker
            .inspect_container(container, None)
            .await
            .expect("inspect");
        info.network_settings
            .and_then(|n| n.ports)
            .and_then(|p| p.get(&format!("{port}/tcp")).cloned().flatten())
            .and_then(|b| b.first().and_then(|b| b.host_port.clone()))
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("{container}: port {port} not published"))
    }

    async fn upload(&self, id: &str, path: &str, bytes: &[u8], mode: u32) {
        let path = Path::new(path);
        let mut header = tar::Header::new_gnu();
        header.set_size(bytes.len() as u64);
        header.set_mode(mode);
        header.set_uid(0);
        header.set_gid(0);
        header.set_mtime(0);
        let mut tar = tar::Builder::new(Vec::new());
        tar.append_data(&mut header, path.file_name().expect("file name"), bytes)
            .expect("tar");
        let tar = tar.into_inner().expect("tar");
        self.docker
            .upload_to_container(
                id,
                Some(UploadToContainerOptions {
                    path: path
                        .parent()
                        .expect("parent")
                        .to_string_lossy()
                        .into_owned(),
                    ..Default::default()
                }),
                bollard::body_full(tar.into()),
            )
            .await
            .unwrap_or_else(|e| panic!("upload {} to {id}: {e}", path.display()));
    }
}

impl Drop for Sandbox {
    /// Removes the sandbox's containers (with their anonymous volumes) and
    /// network, on a thread of its own so it also works while unwinding
    /// inside the test's runtime.
    fn drop(&mut self) {
        let containers =
            std::mem::take(&mut *self.containers.lock().unwrap_or_else(|e| e.into_inner()));
        let network = self.network.clone();
        let cleanup = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async {
                let Ok(docker) = Docker::connect_with_defaults() else {
                    return;
                };
                for id in &containers {
                    let options = RemoveContainerOptions {
                        force: true,
                        v: true,
                        ..Default::default()
                    };
                    if let Err(e) = docker.remove_container(id, Some(options)).await {
                        eprintln!("cleanup: removing container {id}: {e}");
                    }
                }
                if let Err(e) = docker.remove_network(&network).await {
                    eprintln!("cleanup: removing network {network}: {e}");
                }
            });
        });
        let _ = cleanup.join();
    }
}
