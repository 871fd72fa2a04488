//! libtorch only where training happens: `sonograd` never loads it (it hands `train` and
//! `demo` to `sonograd-train`), and a build without the `train` feature says how to get them.

use crate::common::{run_cli, run_ok, sonograd};

/// The shared libraries the dynamic loader would load for `sonograd` (what `ldd` prints).
fn loaded_libraries() -> String {
    let out = sonograd(&["check", "config/default.toml"])
        .env("LD_TRACE_LOADED_OBJECTS", "1")
        .output()
        .unwrap();
    assert!(out.status.success());
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn sonograd_itself_loads_no_libtorch() {
    let libs = loaded_libraries();
    assert!(libs.contains("libc.so"), "not a loader listing: {libs}");
    for torch in ["libtorch", "libc10", "libstdc++"] {
        assert!(!libs.contains(torch), "sonograd loads {torch}:\n{libs}");
    }
    // And the commands that do not train work.
    let out = run_ok(&["check", "config/default.toml"]);
    assert!(out.stdout.contains("ok"), "{}", out.stdout);
}

#[cfg(feature = "train")]
#[test]
fn train_is_handed_to_the_companion_with_its_flags() {
    let out = run_ok(&["train", "--steps", "3", "--batch-size", "8", "--json"]);
    let totals = out.stdout.matches(r#""kind":"total_norm""#).count();
    assert_eq!(totals, 3, "{}", out.stdout);
    // Its own flags are checked there, and an error names `sonograd`.
    let bad = run_cli(&["train", "--lr", "fast"]);
    assert_eq!(bad.code, Some(2));
    assert!(bad.stderr.contains("--lr"), "{}", bad.stderr);
    assert!(!bad.stderr.contains("sonograd-train"), "{}", bad.stderr);
}

#[cfg(not(feature = "train"))]
#[test]
fn a_build_without_the_trainer_says_how_to_get_it() {
    for cmd in ["train", "demo"] {
        let out = run_cli(&[cmd, "--steps", "3"]);
        assert_eq!(out.code, Some(2), "{cmd}: {}", out.stderr);
        assert!(
            out.stderr.contains("cargo install --path .")
                && out.stderr.contains("pip install ./clients/python"),
            "{cmd}: {}",
            out.stderr
        );
    }
}

/// Whether `text` names crate `name` in code: as a whole word (not `patch` for `tch`)
/// outside comments.
fn names_crate(text: &str, name: &str) -> bool {
    let ident = |c: char| c.is_alphanumeric() || c == '_';
    text.lines()
        .map(|line| line.split("//").next().unwrap_or(""))
        .any(|code| {
            code.match_indices(name).any(|(at, _)| {
                !code[..at].chars().next_back().is_some_and(ident)
                    && !code[at + name.len()..].chars().next().is_some_and(ident)
            })
        })
}

/// The library and `sonograd`'s own code never name the trainer's crates. A single
/// `pub use sonograd_trainer` in the library once put tch's objects into the release
/// `sonograd` (not the test profile's), which then loaded libtorch for every command.
#[test]
fn only_the_companion_names_the_trainer() {
    fn walk(dir: &std::path::Path, found: &mut Vec<String>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.ends_with("bin/sonograd-train") {
                continue;
            }
            if path.is_dir() {
                walk(&path, found);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path).unwrap();
                for name in ["sonograd_trainer", "tch", "torch_sys"] {
                    if names_crate(&text, name) {
                        found.push(format!("{} names {name}", path.display()));
                    }
                }
            }
        }
    }
    let mut found = Vec::new();
    walk(
        &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
        &mut found,
    );
    assert!(found.is_empty(), "{found:#?}");
}
