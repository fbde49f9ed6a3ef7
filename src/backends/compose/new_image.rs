//! A template made for another image, as compose would make it: a captured
//! template's spec leaves out what repeats the old image's defaults, so
//! Docker fills in the new image's; what the service itself sets that the
//! old image repeated is put back, where that is known exactly. (A template
//! that is compose's create request holds what compose asked for and no
//! more: there is nothing to put back.)
use bollard::models::{HealthConfig, ImageConfig};
use serde_json::Value as Json;

use crate::backends::spec::ContainerSpec;

/// `template` as compose makes it from another image. Its spec leaves out
/// what repeats the old image's defaults (`old`), so Docker fills in the new
/// image's; what the service itself sets (`options`, as compose hashes them)
/// and the old image repeated is put back — environment entries, exposed
/// ports — or, for any other key, the template cannot follow (`Err`: which);
/// nor can it a healthcheck the service sets in part, which Docker filled
/// from the old image's field by field.
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
    let healthcheck = options.get("healthcheck").filter(|h| h.is_object());
    if let (Some(healthcheck), Some(defaults)) = (healthcheck, &old.healthcheck)
        && partly_the_image(healthcheck, defaults)
    {
        return Err("its healthcheck is partly the old image's".into());
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

/// Whether Docker filled part of the healthcheck a service sets (`set`, as
/// compose hashes it) from the image's (`image`): it fills each field the
/// container leaves unset (no test, a number 0) from the image's, field by
/// field — `start_interval` always, compose never setting it. A disabled one
/// (test `NONE`) runs no check, whatever its timings.
fn partly_the_image(set: &Json, image: &HealthConfig) -> bool {
    let test = set.get("test").and_then(Json::as_array);
    if test.and_then(|t| t.first()).and_then(Json::as_str) == Some("NONE") {
        return false;
    }
    let unset = |key: &str| {
        set.get(key)
            .is_none_or(|v| v.is_null() || v.as_f64() == Some(0.0))
    };
    let given = |n: Option<i64>| n.is_some_and(|n| n != 0);
    [
        ("test", image.test.as_ref().is_some_and(|t| !t.is_empty())),
        ("interval", given(image.interval)),
        ("timeout", given(image.timeout)),
        ("retries", given(image.retries)),
        ("start_period", given(image.start_period)),
        ("start_interval", given(image.start_interval)),
    ]
    .into_iter()
    .any(|(key, filled)| filled && unset(key))
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
    fn a_healthcheck_the_old_image_filled_in_part_is_not_followed() {
        // Docker fills each field a healthcheck leaves unset from the image's:
        // the template has the old image's test, the new image's is wanted.
        let old = ImageConfig {
            healthcheck: Some(HealthConfig {
                test: strings(&["CMD", "/app", "health"]),
                interval: Some(30_000_000_000),
                ..Default::default()
            }),
            ..Default::default()
        };
        let merged = ContainerConfig {
            healthcheck: Some(HealthConfig {
                test: strings(&["CMD", "/app", "health"]),
                interval: Some(5_000_000_000),
                retries: Some(10),
                ..Default::default()
            }),
            ..Default::default()
        };
        let follows = |healthcheck: Json, old: &ImageConfig| {
            let options = serde_json::json!({ "healthcheck": healthcheck });
            for_new_image(&mut spec(merged.clone()), &options, old)
        };
        let partial = serde_json::json!({"interval": 5_000_000_000u64, "retries": 10});
        let err = follows(partial.clone(), &old).unwrap_err();
        assert!(err.contains("healthcheck"), "{err}");
        // A number 0 is unset too.
        let zero = serde_json::json!({"test": ["CMD", "true"], "interval": 0});
        assert!(follows(zero, &old).is_err());
        // Every field the old image set is the service's, or disabled: followed.
        let own = serde_json::json!({"test": ["CMD", "true"], "interval": 5_000_000_000u64});
        follows(own, &old).unwrap();
        follows(serde_json::json!({"test": ["NONE"]}), &old).unwrap();
        // An old image without one filled nothing: Docker fills from the new one.
        follows(partial, &ImageConfig::default()).unwrap();
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
