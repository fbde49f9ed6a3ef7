//! The values a compose v1 reading follows, as the files set them: each
//! service's environment and image ([`Written`]), read from one compose file
//! with the rest of it, and its SHA-256 once they are left out ([`masked`];
//! that digest is among the reading's inputs, `inputs.rs`).
use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use serde_json::Value as Json;
use serde_norway::{Mapping, Value as Yaml};
use sha2::{Digest, Sha256};

use super::variables::{Values, follows, variables};
use super::yaml_typing::read_alike;

/// The values a reading follows, as the files set them (later files winning).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Written {
    /// Each service's environment: variable → value as written.
    pub(super) env: BTreeMap<String, BTreeMap<String, Json>>,
    /// Each service's image, where it is a string.
    pub(super) images: BTreeMap<String, String>,
    /// The variables these values interpolate, as compose sees them.
    pub(super) values: Values,
}

/// One compose file with its services' environment values and string images
/// left out.
pub(super) struct Masked {
    /// The SHA-256 of what is left.
    pub(super) digest: String,
    /// The values left out, as written.
    pub(super) written: Written,
    /// The variables the rest names, and the ones its services pass
    /// through from compose's environment (`- NAME`, `NAME:`), in their
    /// `environment` or their `build.args`.
    pub(super) names: BTreeSet<String>,
}

/// `text` [`Masked`]; `None` for a file that is not a v2/v3 compose file of
/// plain mappings, whose services read other files (`extends`, `env_file`),
/// or that compose's YAML could read otherwise ([`read_alike`]).
pub(super) fn masked(text: &str) -> Option<Masked> {
    if !read_alike(text) {
        return None;
    }
    let mut doc: Yaml = serde_norway::from_str(text).ok()?;
    let mut written = Written::default();
    let mut passed = BTreeSet::new();
    if let Some(Yaml::Mapping(services)) = doc.get_mut("services") {
        for (name, service) in services.iter_mut() {
            let name = name.as_str()?.to_string();
            let Yaml::Mapping(service) = service else {
                return None;
            };
            if service.contains_key("extends") || service.contains_key("env_file") {
                return None;
            }
            passed.extend(build_args_passed(service)?);
            if let Some(Yaml::String(image)) = service.get_mut("image") {
                written.images.insert(name.clone(), std::mem::take(image));
            }
            let vars = written.env.entry(name).or_default();
            match service.get_mut("environment") {
                None => {}
                Some(Yaml::Sequence(items)) => {
                    for item in items {
                        let Yaml::String(s) = item else { return None };
                        // A variable listed twice: compose checks (and may
                        // refuse) the value the later one shadows.
                        let again = match s.split_once('=') {
                            Some((k, v)) => {
                                let again = vars.insert(k.to_string(), Json::String(v.to_string()));
                                *s = format!("{k}=");
                                again
                            }
                            None => {
                                passed.insert(s.clone());
                                vars.insert(s.clone(), Json::Null)
                            }
                        };
                        if again.is_some() {
                            return None;
                        }
                    }
                }
                Some(Yaml::Mapping(map)) => {
                    for (k, v) in map.iter_mut() {
                        let k = k.as_str()?.to_string();
                        if v.is_null() {
                            passed.insert(k.clone());
                        }
                        vars.insert(k, serde_json::to_value(&*v).ok()?);
                        *v = Yaml::Null;
                    }
                }
                Some(_) => return None,
            }
        }
    } else if doc.get("services").is_some() {
        return None;
    }
    let text = serde_json::to_string(&doc).ok()?;
    let mut names = passed;
    names.extend(variables(&text));
    Some(Masked {
        digest: format!("{:x}", Sha256::digest(text)),
        written,
        names,
    })
}

/// The build arguments `service` passes through from compose's environment
/// (`args: [NAME]`, `NAME:`): compose fills each from it (or `.env`) and
/// hashes it with the service's options. `None` for `args` of a form compose
/// may refuse.
fn build_args_passed(service: &Mapping) -> Option<Vec<String>> {
    let args = match service.get("build") {
        Some(Yaml::Mapping(build)) => build.get("args"),
        _ => None,
    };
    let mut passed = Vec::new();
    match args {
        None | Some(Yaml::Null) => {}
        Some(Yaml::Sequence(items)) => {
            for item in items {
                let Yaml::String(s) = item else { return None };
                if !s.contains('=') {
                    passed.push(s.clone());
                }
            }
        }
        Some(Yaml::Mapping(map)) => {
            for (k, v) in map {
                if v.is_null() {
                    passed.push(k.as_str()?.to_string());
                }
            }
        }
        Some(_) => return None,
    }
    Some(passed)
}

impl Written {
    /// The values followed: each service's image and environment strings.
    pub(super) fn strings(&self) -> impl Iterator<Item = &str> {
        let env = self.env.values().flat_map(|vars| vars.values());
        (self.images.values().map(String::as_str)).chain(env.filter_map(Json::as_str))
    }

    /// The variables named by values here that `later` (a later file) sets
    /// again: compose interpolates them too, but they are not followed.
    /// `None` when one of those values is not a number, null, or a string
    /// in a form [`follows`] knows: compose checks each file before merging
    /// them, and may fail on it.
    pub(super) fn shadowed_by(&self, later: &Written) -> Option<BTreeSet<String>> {
        let images = later
            .images
            .keys()
            .filter_map(|s| self.images.get(s).map(String::as_str));
        let env = later.env.iter().flat_map(|(service, vars)| {
            let before = self.env.get(service);
            vars.keys().filter_map(move |k| before?.get(k))
        });
        let mut strings: Vec<&str> = images.collect();
        for value in env {
            match value {
                Json::String(s) => strings.push(s.as_str()),
                Json::Null | Json::Number(_) => {}
                _ => return None,
            }
        }
        if !strings.iter().all(|s| follows(s)) {
            return None;
        }
        Some(strings.into_iter().flat_map(variables).collect())
    }

    /// The variables whose values differ in `other`.
    pub(super) fn changed_values(&self, other: &Written) -> Vec<String> {
        let names: BTreeSet<&String> = self.values.keys().chain(other.values.keys()).collect();
        names
            .into_iter()
            .filter(|n| self.values.get(*n) != other.values.get(*n))
            .cloned()
            .collect()
    }

    /// Whether `raw` interpolates to the same here as in `other`: every
    /// variable it names has the same value.
    pub(super) fn same_values(&self, other: &Written, raw: &str) -> bool {
        variables(raw)
            .iter()
            .all(|n| self.values.get(n) == other.values.get(n))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masking_keeps_everything_but_environment_values_and_images() {
        let a = "version: '2.4'\nservices:\n  web:\n    image: a\n    environment:\n      - M=1\n      - PASS\n  db:\n    environment:\n      X: 'y'\n";
        let b = a
            .replace("M=1", "M=2")
            .replace("'y'", "'z'")
            .replace("image: a", "image: b");
        let Masked {
            digest: da,
            written: wa,
            names,
        } = masked(a).unwrap();
        let Masked {
            digest: db,
            written: wb,
            ..
        } = masked(&b).unwrap();
        assert_eq!(da, db);
        assert_eq!(wa.env["web"]["M"], Json::String("1".into()));
        assert_eq!(wb.env["web"]["M"], Json::String("2".into()));
        assert_eq!(wa.env["web"]["PASS"], Json::Null);
        assert_eq!(wb.env["db"]["X"], Json::String("z".into()));
        assert_eq!(
            (wa.images["web"].as_str(), wb.images["web"].as_str()),
            ("a", "b")
        );
        assert_eq!(names, ["PASS".to_string()].into());
        // Any other change, or a new variable, shows.
        let digest = |text: &str| masked(text).unwrap().digest;
        assert_ne!(da, digest(&a.replace("image: a", "image: a\n    user: x")));
        assert_ne!(da, digest(&a.replace("- M=1", "- M=1\n      - N=1")));
        // Variables: those of the values left out are theirs; the rest's are named.
        let v = a
            .replace("image: a", "image: a:${TAG}\n    user: ${USER_ID:-0}")
            .replace("M=1", "M=${M:-1}");
        let m = masked(&v).unwrap();
        assert_eq!(m.names, ["PASS", "USER_ID"].map(String::from).into());
        let strings: Vec<&str> = m.written.strings().collect();
        assert!(strings.contains(&"a:${TAG}") && strings.contains(&"${M:-1}"));
        // Files compose reads besides: not derivable.
        assert!(masked(&a.replace("image: a", "image: a\n    env_file: x.env")).is_none());
        assert!(masked(&a.replace("image: a", "image: a\n    extends: {service: db}")).is_none());
    }

    #[test]
    fn build_args_passed_through_from_the_environment_are_named() {
        // Compose fills `args` written without a value from its environment
        // (or `.env`) and hashes them: their values are inputs, as an
        // environment entry passed through is.
        let a = "services:\n  web:\n    image: a\n    build:\n      context: .\n      args: [GIT_SHA, MODE=prod]\n";
        assert_eq!(masked(a).unwrap().names, ["GIT_SHA".to_string()].into());
        let b = a.replace(
            "args: [GIT_SHA, MODE=prod]",
            "args:\n        GIT_SHA:\n        REV: null\n        MODE: prod",
        );
        assert_eq!(
            masked(&b).unwrap().names,
            ["GIT_SHA", "REV"].map(String::from).into()
        );
        assert!(masked(&a.replace("[GIT_SHA, MODE=prod]", "[1]")).is_none());
        assert!(masked(&a.replace("[GIT_SHA, MODE=prod]", "x")).is_none());
        let context_only = "services:\n  web:\n    image: a\n    build: .\n";
        assert!(masked(context_only).unwrap().names.is_empty());
    }

    #[test]
    fn a_variable_listed_twice_is_not_followed() {
        let a = "services:\n  web:\n    environment:\n      - FOO=a\n      - BAR=b\n";
        assert!(masked(a).is_some());
        assert!(masked(&a.replace("BAR=b", "FOO=b")).is_none());
        assert!(masked(&a.replace("BAR=b", "FOO")).is_none());
    }

    #[test]
    fn a_file_compose_could_read_otherwise_is_not_followed() {
        // PyYAML reads plain 0123 as 83 and 22:22 as 1342; quoted, both are strings.
        let a = "services:\n  web:\n    image: a\n    environment:\n      FOO: '0123'\n    ports: ['22:22']\n";
        assert!(masked(a).is_some());
        assert!(masked(&a.replace("'0123'", "0123")).is_none(), "a value");
        assert!(
            masked(&a.replace("'22:22'", "22:22")).is_none(),
            "its quoting"
        );
    }

    fn written(images: &[(&str, &str)], values: &[(&str, Option<&str>)]) -> Written {
        Written {
            env: BTreeMap::new(),
            images: images
                .iter()
                .map(|(s, i)| (s.to_string(), i.to_string()))
                .collect(),
            values: values
                .iter()
                .map(|(k, v)| (k.to_string(), v.map(str::to_string)))
                .collect(),
        }
    }

    #[test]
    fn variables_of_values_a_later_file_sets_again_are_not_followed() {
        let first = written(&[("web", "app:${OLD}"), ("db", "db:${DB}")], &[]);
        let later = written(&[("web", "app:${TAG}")], &[]);
        assert_eq!(
            first.shadowed_by(&later).unwrap(),
            ["OLD".to_string()].into()
        );
    }

    #[test]
    fn a_value_a_later_file_sets_again_must_be_one_compose_checks_as_this_follows() {
        // Compose v1 interpolates and validates each file before merging:
        // `FOO: cost $5` under an override `FOO: x` fails ("Invalid
        // interpolation format"), as do `${X:?err}` with X unset, `true`,
        // a list or a mapping; a number or null does not.
        let env = |value: Json| {
            let mut w = written(&[], &[]);
            w.env
                .insert("web".into(), [("FOO".to_string(), value)].into());
            w
        };
        let later = env(Json::String("x".into()));
        for (value, named) in [
            (Json::String("${OLD:-a}b".into()), Some(vec!["OLD"])),
            (Json::from(8080), Some(vec![])),
            (Json::from(1.5), Some(vec![])),
            (Json::Null, Some(vec![])),
            (Json::String("cost $5".into()), None),
            (Json::String("${X:?err}".into()), None),
            (Json::Bool(true), None),
            (Json::from(vec![1, 2]), None),
            (serde_json::json!({"a": "b"}), None),
        ] {
            let shadowed = env(value.clone()).shadowed_by(&later);
            let named: Option<BTreeSet<String>> =
                named.map(|n| n.into_iter().map(String::from).collect());
            assert_eq!(shadowed, named, "{value}");
        }
        // Another service's, or an image.
        let mut other = later.clone();
        other.env = [("db".to_string(), later.env["web"].clone())].into();
        assert!(env(Json::String("$".into())).shadowed_by(&other).is_some());
        let image = |i: &str| written(&[("web", i)], &[]);
        assert!(image("a$5").shadowed_by(&image("b")).is_none());
    }

    #[test]
    fn tells_which_variables_changed() {
        let a = written(&[], &[("TAG", Some("v1")), ("M", None), ("K", Some("x"))]);
        let b = written(
            &[],
            &[("TAG", Some("v2")), ("M", Some("")), ("K", Some("x"))],
        );
        assert_eq!(a.changed_values(&b), ["M", "TAG"]);
        assert!(a.same_values(&b, "${K}-$K") && !a.same_values(&b, "${TAG:-x}"));
    }
}
