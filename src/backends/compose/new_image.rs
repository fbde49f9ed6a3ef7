//! A template container made for another image, as compose would make it:
//! its spec leaves out what repeats the old image's defaults, so Docker
//! fills in the new image's; what the service itself sets that the old
//! image repeated is put back, where that is known exactly.
use bollard::models::ImageConfig;
use serde_json::Value as Json;

use crate::backends::spec::ContainerSpec;

/// `template` as compose makes it from another image. Its spec leaves out
/// what repeats the old image's defaults (`old`), so Docker fills in the new
/// image's; what the service itself sets (`options`, as compose hashes them)
/// and the old image repeated is put back — environment entries, exposed
/// ports — or, for any other key, the template cannot follow (`Err`: which).
pub(super) fn for_new_image(
    template: &mut ContainerSpec,
    options: &Json,
    old: &ImageConfig,
) -> std::result::Result<(), String> {
    let set = |key: &str| options.get(key).is_some_and(|v| !v.is_null());
    let config = &mut template.config;
    let given = |v: &Option<String>| v.as_deref().is_some_and(|s| !s.is_empty());
    let lost = [
        (
            "command",
            config.cmd.is_none() && config.entrypoint.is_none() && old.cmd.is_some(),
        ),
        (
            "entrypoint",
            config.entrypoint.is_none() && old.entrypoint.is_some(),
        ),
        (
            "healthcheck",
            config.healthcheck.is_none() && old.healthcheck.is_some(),
        ),
        (
            "working_dir",
            config.working_dir.is_none() && given(&old.working_dir),
        ),
        ("user", config.user.is_none() && given(&old.user)),
        (
            "stop_signal",
            config.stop_signal.is_none() && old.stop_signal.is_some(),
        ),
    ];
    if let Some((key, _)) = lost.iter().find(|(key, lost)| *lost && set(key)) {
        return Err(format!("its {key} is the old image's"));
    }
    let object = |key: &str| options.get(key).and_then(Json::as_object);
    let array = |key: &str| options.get(key).and_then(Json::as_array);
    if let (Some(labels), Some(defaults)) = (object("labels"), &old.labels) {
        let kept = config.labels.as_ref();
        if labels
            .keys()
            .any(|k| defaults.contains_key(k) && !kept.is_some_and(|l| l.contains_key(k)))
        {
            return Err("a label of it is the old image's".into());
        }
    }
    if let Some(defaults) = &old.volumes {
        let inside = array("volumes")
            .into_iter()
            .flatten()
            .filter_map(|v| v.get(1)?.as_str());
        let kept = config.volumes.as_deref().unwrap_or_default();
        if inside
            .into_iter()
            .any(|p| defaults.iter().any(|d| d == p) && !kept.iter().any(|k| k == p))
        {
            return Err("a volume of it is the old image's".into());
        }
    }
    if let Some(env) = object("environment") {
        for (key, value) in env {
            let entry = match value {
                Json::String(v) => format!("{key}={v}"),
                Json::Null => key.clone(),
                _ => return Err(format!("its environment's {key} is not a string")),
            };
            let list = config.env.get_or_insert_with(Vec::new);
            let has = |e: &String| e == key || e.starts_with(&format!("{key}="));
            if list.iter().any(has) {
                continue;
            }
            if !old.env.as_ref().is_some_and(|d| d.contains(&entry)) {
                return Err(format!("its environment has no {key}"));
            }
            list.push(entry);
        }
    }
    let mut ports = Vec::new();
    for expose in array("expose").into_iter().flatten() {
        ports.push(exposed(expose.as_str(), None).ok_or("an `expose` of a form not followed")?);
    }
    for port in array("ports").into_iter().flatten() {
        let target = port.get(0).and_then(Json::as_u64).map(|t| t.to_string());
        let protocol = port.get(2).and_then(Json::as_str);
        ports.push(exposed(target.as_deref(), protocol).ok_or("a `ports` of a form not followed")?);
    }
    for port in ports {
        let list = config.exposed_ports.get_or_insert_with(Vec::new);
        if list.contains(&port) {
            continue;
        }
        if !old
            .exposed_ports
            .as_ref()
            .is_some_and(|d| d.contains(&port))
        {
            return Err(format!("it exposes {port}, which its template does not"));
        }
        list.push(port);
    }
    if config.env.as_ref().is_some_and(Vec::is_empty) {
        config.env = None;
    }
    if config.exposed_ports.as_ref().is_some_and(Vec::is_empty) {
        config.exposed_ports = None;
    }
    Ok(())
}

/// A port compose exposes, as Docker keys it (`3000/tcp`): `port` a number
/// with or without `/protocol`, `protocol` given apart (`None`: tcp).
fn exposed(port: Option<&str>, protocol: Option<&str>) -> Option<String> {
    let (number, inline) = match port?.split_once('/') {
        Some((n, p)) => (n, Some(p)),
        None => (port?, None),
    };
    number.parse::<u16>().ok()?;
    let protocol = inline.or(protocol).unwrap_or("tcp");
    matches!(protocol, "tcp" | "udp" | "sctp").then(|| format!("{number}/{protocol}"))
}

#[cfg(test)]
mod tests {
    use bollard::models::ContainerConfig;

    use super::*;

    fn spec(config: ContainerConfig) -> ContainerSpec {
        ContainerSpec {
            name: "p_web_1".into(),
            image: "app:v1".into(),
            config,
            host_config: Default::default(),
            networks: Vec::new(),
        }
    }

    fn strings(items: &[&str]) -> Option<Vec<String>> {
        Some(items.iter().map(|s| s.to_string()).collect())
    }

    #[test]
    fn a_template_for_another_image_gets_back_what_the_service_sets_and_the_old_image_repeated() {
        let old = ImageConfig {
            env: strings(&["PATH=/bin", "PORT=3000"]),
            exposed_ports: strings(&["3000/tcp"]),
            cmd: strings(&["/app"]),
            ..Default::default()
        };
        // The service sets PORT=3000 and exposes 3000 (both the old image's
        // too, so its spec left them out), and MESSAGE, 9000/udp by ports.
        let options = serde_json::json!({
            "environment": {"MESSAGE": "v1", "PORT": "3000"},
            "expose": ["3000"],
            "ports": [[9000, null, "udp", null, "127.0.0.1"]],
        });
        let mut template = spec(ContainerConfig {
            env: strings(&["MESSAGE=v1"]),
            exposed_ports: strings(&["9000/udp"]),
            ..Default::default()
        });
        for_new_image(&mut template, &options, &old).unwrap();
        assert_eq!(template.config.env, strings(&["MESSAGE=v1", "PORT=3000"]));
        assert_eq!(
            template.config.exposed_ports,
            strings(&["9000/udp", "3000/tcp"])
        );

        // A command the service sets that the old image repeated: not followed.
        let options = serde_json::json!({"command": ["/app"]});
        let err = for_new_image(&mut spec(ContainerConfig::default()), &options, &old).unwrap_err();
        assert!(err.contains("command"), "{err}");
        // Without an entrypoint of its own the image's Cmd was only a default
        // while the entrypoint was one too.
        let template = ContainerConfig {
            entrypoint: strings(&["/sh", "-c"]),
            ..Default::default()
        };
        for_new_image(&mut spec(template), &options, &old).unwrap();
        // An expose of a form not followed (a range).
        let options = serde_json::json!({"expose": ["3000-3002"]});
        assert!(for_new_image(&mut spec(ContainerConfig::default()), &options, &old).is_err());
    }

    #[test]
    fn exposed_ports_as_docker_keys_them() {
        assert_eq!(exposed(Some("3000"), None).as_deref(), Some("3000/tcp"));
        assert_eq!(exposed(Some("53/udp"), None).as_deref(), Some("53/udp"));
        assert_eq!(exposed(Some("53"), Some("udp")).as_deref(), Some("53/udp"));
        assert_eq!(exposed(Some("3000-3002"), None), None);
        assert_eq!(exposed(Some("x"), None), None);
    }
}
