//! ARCHITECTURE.md stays true of the imports: each module uses exactly the
//! modules its line in the `arrows` block names.
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use crate::support::root;

/// The `arrows` block of ARCHITECTURE.md: module → the modules it may use.
fn declared() -> BTreeMap<String, BTreeSet<String>> {
    let text = std::fs::read_to_string(root().join("ARCHITECTURE.md")).unwrap();
    let block = text
        .split("```arrows\n")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .expect("ARCHITECTURE.md has an ```arrows block");
    block
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|line| {
            let (module, uses) = line.split_once("->").expect("`module -> uses`");
            (
                module.trim().to_string(),
                uses.split_whitespace().map(str::to_string).collect(),
            )
        })
        .collect()
}

/// Every `crate::<module>` a source file or directory mentions.
fn used(path: &Path, out: &mut BTreeSet<String>) {
    if path.is_dir() {
        for entry in std::fs::read_dir(path).unwrap() {
            used(&entry.unwrap().path(), out);
        }
        return;
    }
    let text = std::fs::read_to_string(path).unwrap();
    for (at, _) in text.match_indices("crate::") {
        let name: String = text[at + 7..]
            .chars()
            .take_while(|c| c.is_ascii_lowercase() || *c == '_')
            .collect();
        assert!(
            !name.is_empty(),
            "{}: `crate::{{…}}` hides which modules are used; name them one by one",
            path.display()
        );
        out.insert(name);
    }
}

#[test]
fn every_arrow_is_an_import_and_every_import_an_arrow() {
    let declared = declared();
    let src = root().join("src");
    let mut modules = BTreeSet::new();
    for entry in std::fs::read_dir(&src).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_stem().unwrap().to_string_lossy().into_owned();
        if ["lib", "main"].contains(&name.as_str()) {
            continue;
        }
        modules.insert(name.clone());
        let mut uses = BTreeSet::new();
        used(&path, &mut uses);
        uses.remove(&name);
        let allowed = declared
            .get(&name)
            .unwrap_or_else(|| panic!("module {name} has no line in ARCHITECTURE.md's arrows"));
        assert_eq!(
            &uses, allowed,
            "module {name}: imports (left) and ARCHITECTURE.md (right) disagree"
        );
    }
    let listed: BTreeSet<String> = declared.keys().cloned().collect();
    assert_eq!(
        listed, modules,
        "ARCHITECTURE.md lists exactly the modules of src/"
    );
}

/// Every source file under `path` whose text mentions `bollard`.
fn naming_bollard(path: &Path, out: &mut Vec<String>) {
    if path.is_dir() {
        for entry in std::fs::read_dir(path).unwrap() {
            naming_bollard(&entry.unwrap().path(), out);
        }
    } else if std::fs::read_to_string(path).unwrap().contains("bollard") {
        out.push(path.display().to_string());
    }
}

#[test]
fn only_the_docker_modules_name_bollard() {
    let src = root().join("src");
    let mut found = Vec::new();
    for entry in std::fs::read_dir(&src).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_stem().unwrap().to_string_lossy().into_owned();
        if !["docker", "nginx", "backends"].contains(&name.as_str()) {
            naming_bollard(&path, &mut found);
        }
    }
    assert!(
        found.is_empty(),
        "bollard is for docker/, nginx/ and backends/; these name it (use docker::Docker): {found:?}"
    );
}
