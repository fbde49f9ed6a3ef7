//! What an nginx command line says: is it nginx, which config, which global options.
//!
//! Pure functions over `Path`/`Args` from `docker inspect` and the output of
//! `nginx -V`; unit-tested without Docker.
use std::path::{Path, PathBuf};

/// Prefix nginx uses when built without `--prefix`.
const DEFAULT_PREFIX: &str = "/usr/local/nginx/";

/// The nginx invocation found in a container's main command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NginxCommand {
    /// The nginx executable as the container runs it (`nginx`, `/usr/sbin/nginx`).
    pub binary: String,
    /// The `-c`, `-p`, `-g` and `-e` options it was started with, to pass again
    /// to `nginx -t` and `nginx -s` so they act on the same configuration.
    pub global_args: Vec<String>,
    /// The `-c` file, if one was given.
    pub conf: Option<String>,
    /// The `-p` prefix, if one was given.
    pub prefix: Option<String>,
}

impl NginxCommand {
    /// nginx as it was started: its binary, then its global options; the
    /// start of every `nginx -t` and `nginx -s` run on the same configuration.
    pub fn words(&self) -> impl Iterator<Item = &str> {
        std::iter::once(self.binary.as_str()).chain(self.global_args.iter().map(String::as_str))
    }
}

/// Recognises nginx as a container's main process, directly (`Path` is
/// nginx) or behind an entrypoint script (`/docker-entrypoint.sh nginx -g …`).
pub fn nginx_command(path: &str, args: &[String]) -> Option<NginxCommand> {
    let argv: Vec<&str> = std::iter::once(path)
        .chain(args.iter().map(String::as_str))
        .collect();
    let start = argv.iter().take(2).position(|a| is_nginx_binary(a))?;
    let mut cmd = NginxCommand {
        binary: argv[start].to_string(),
        global_args: Vec::new(),
        conf: None,
        prefix: None,
    };
    let mut rest = argv[start + 1..].iter();
    while let Some(arg) = rest.next() {
        let Some(flag @ ('c' | 'p' | 'g' | 'e')) = arg
            .strip_prefix('-')
            .and_then(|f| f.chars().next())
            .filter(|_| arg.len() >= 2)
        else {
            continue;
        };
        let value = match &arg[2..] {
            "" => match rest.next() {
                Some(v) => v.to_string(),
                None => break,
            },
            attached => attached.to_string(),
        };
        match flag {
            'c' => cmd.conf = Some(value.clone()),
            'p' => cmd.prefix = Some(value.clone()),
            _ => {}
        }
        cmd.global_args.push(format!("-{flag}"));
        cmd.global_args.push(value);
    }
    Some(cmd)
}

fn is_nginx_binary(arg: &str) -> bool {
    Path::new(arg)
        .file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n == "nginx" || n == "nginx-debug")
}

/// The configuration file nginx uses: the `-c` file if given, else the
/// compiled-in `--conf-path` from `nginx -V` output, relative paths resolved
/// against the prefix (`-p`, else `--prefix`).
pub fn conf_path(cmd: &NginxCommand, nginx_v_output: &str) -> PathBuf {
    let configure = |name: &str| {
        nginx_v_output
            .split_whitespace()
            .find_map(|w| w.strip_prefix(name))
            .map(str::to_string)
    };
    let prefix = cmd
        .prefix
        .clone()
        .or_else(|| configure("--prefix="))
        .unwrap_or_else(|| DEFAULT_PREFIX.to_string());
    let conf = cmd
        .conf
        .clone()
        .or_else(|| configure("--conf-path="))
        .unwrap_or_else(|| "conf/nginx.conf".to_string());
    Path::new(&prefix).join(conf)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn recognises_direct_and_entrypoint_nginx() {
        let direct = nginx_command("nginx", &args(&["-g", "daemon off;"])).unwrap();
        assert_eq!(direct.binary, "nginx");
        assert_eq!(direct.global_args, args(&["-g", "daemon off;"]));
        assert_eq!(direct.conf, None);

        let wrapped = nginx_command(
            "/docker-entrypoint.sh",
            &args(&["/usr/sbin/nginx", "-c", "/srv/n.conf", "-gdaemon off;"]),
        )
        .unwrap();
        assert_eq!(wrapped.binary, "/usr/sbin/nginx");
        assert_eq!(wrapped.conf.as_deref(), Some("/srv/n.conf"));
        assert_eq!(
            wrapped.global_args,
            args(&["-c", "/srv/n.conf", "-g", "daemon off;"])
        );

        assert!(nginx_command("/usr/bin/dumb-init", &args(&["nginx"])).is_some());
        assert!(nginx_command("/bin/sh", &args(&["-c", "echo nginx"])).is_none());
        assert!(nginx_command("/app", &[]).is_none());
        assert!(nginx_command("/usr/bin/nginx-exporter", &[]).is_none());
    }

    #[test]
    fn conf_path_prefers_dash_c_then_configure_args() {
        let debian = "nginx version: nginx/1.22.1\nconfigure arguments: --with-cc-opt=-O2 \
                      --prefix=/usr/share/nginx --conf-path=/etc/nginx/nginx.conf --with-debug";
        let plain = nginx_command("nginx", &[]).unwrap();
        assert_eq!(
            conf_path(&plain, debian),
            PathBuf::from("/etc/nginx/nginx.conf")
        );
        let with_c = nginx_command("nginx", &args(&["-c", "/x/y.conf"])).unwrap();
        assert_eq!(conf_path(&with_c, debian), PathBuf::from("/x/y.conf"));
        let relative = nginx_command("nginx", &args(&["-p", "/opt/ng/", "-c", "a.conf"])).unwrap();
        assert_eq!(conf_path(&relative, ""), PathBuf::from("/opt/ng/a.conf"));
        assert_eq!(
            conf_path(&plain, "configure arguments: --with-debug"),
            PathBuf::from("/usr/local/nginx/conf/nginx.conf")
        );
    }
}
