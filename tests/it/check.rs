//! `mapping::check`: the broken-mapping corpus gives the expected errors (and never panics),
//! every shipped mapping validates, and several problems are reported at once.

use std::fs;
use std::path::Path;

use sonograd::mapping::{self, parse_str};

use crate::common;
use common::toml_files;

#[test]
fn every_broken_mapping_gives_its_expected_error() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/mappings/broken");
    let files = toml_files(&dir);
    assert!(files.len() >= 25, "only {} broken mappings", files.len());
    for file in files {
        let text = fs::read_to_string(&file).unwrap();
        let first = text.lines().next().unwrap_or("");
        let expect = first
            .strip_prefix("# expect: ")
            .unwrap_or_else(|| panic!("{}: first line must be `# expect: ...`", file.display()));
        let result = std::panic::catch_unwind(|| mapping::check(&file));
        let diags = match result {
            Ok(Ok(_)) => panic!(
                "{}: accepted, expected an error containing {expect:?}",
                file.display()
            ),
            Ok(Err(d)) => d,
            Err(_) => panic!("{}: check panicked", file.display()),
        };
        let shown = diags.to_string();
        assert!(
            shown.contains(expect),
            "{}: expected {expect:?} in:\n{shown}",
            file.display()
        );
        // Every diagnostic names the file and a real position.
        let lines = text.lines().count();
        for d in diags.iter() {
            assert!(
                d.line >= 1 && d.line <= lines.max(1) && d.column >= 1,
                "{}: {d}",
                file.display()
            );
            assert!(d.to_string().starts_with(&format!(
                "{}:{}:{}: ",
                file.display(),
                d.line,
                d.column
            )));
        }
    }
}

#[test]
fn every_shipped_mapping_validates() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("config");
    let files = toml_files(&dir);
    assert!(files.len() >= 5);
    for file in files {
        let m = mapping::check(&file).unwrap_or_else(|d| panic!("{d}"));
        assert!(
            !m.routes.is_empty() && !m.outputs.is_empty(),
            "{}",
            file.display()
        );
        assert!(
            !m.description.is_empty(),
            "{} has no description",
            file.display()
        );
    }
}

#[test]
fn all_problems_are_reported_at_once_in_file_order() {
    let src = r#"[outputs.daw]
kind = "midi"

[[route]]
output = "daw"
match = { metric = "los" }
to = { cc = 1 }

[[route]]
output = "daw"
match = { metric = "loss" }

[[route]]
output = "daw"
match = { metric = "loss" }
to = { cc = 1, chanel = 3 }
"#;
    let d = parse_str(src, "config/x.toml").unwrap_err();
    let lines: Vec<String> = d.iter().map(|d| d.to_string()).collect();
    assert_eq!(lines.len(), 3, "{d}");
    assert_eq!(
        lines[0],
        "config/x.toml:6:20: route[0].match.metric: unknown metric `los`, did you mean `loss`? (expected one of `grad_norm`, `total_norm`, `loss`, `lr`, `weight_norm`, `update_ratio`, `nonfinite`, `epoch_end`, `eval`, `diagnosis`)"
    );
    assert!(
        lines[1].starts_with("config/x.toml:9:1: route[1]: missing key `to`"),
        "{}",
        lines[1]
    );
    assert_eq!(
        lines[2],
        "config/x.toml:16:16: route[2].to: unknown key `chanel`, did you mean `channel`?"
    );
}

#[test]
fn a_missing_file_is_one_diagnostic() {
    let d = mapping::check("/nonexistent/sonograd.toml").unwrap_err();
    assert_eq!(d.len(), 1);
    assert!(
        d.to_string()
            .starts_with("/nonexistent/sonograd.toml:1:1: cannot read"),
        "{d}"
    );
}

#[test]
fn syntax_errors_have_positions() {
    let d = parse_str("[outputs.a]\nkind = \"synth\"\nvoices = = 3\n", "s.toml").unwrap_err();
    assert_eq!(d.len(), 1);
    let first = &d.0[0];
    assert_eq!(first.line, 3, "{d}");
    assert!(first.message.starts_with("TOML syntax error"), "{d}");
}

#[test]
fn the_diagnose_table_sets_thresholds_over_the_defaults() {
    use sonograd::diagnose::Thresholds;
    use sonograd::event::DiagnosisKind;
    let base = "[outputs.s]\nkind = \"synth\"\n[[route]]\noutput = \"s\"\nmatch = { metric = \"diagnosis\", diagnosis = \"dead_layer\", layer = \"fc*\" }\nto = { param = \"trigger\" }\n";
    let m = parse_str(base, "d.toml").unwrap();
    assert_eq!(m.diagnose, Thresholds::default());
    assert_eq!(
        m.routes[0].matcher.diagnosis,
        Some(DiagnosisKind::DeadLayer)
    );
    let text = format!(
        "{base}[diagnose]\nenabled = false\nexploding_factor = 100\nexploding_steps = 3\nvanishing_ratio = 1e-4\nplateau_tolerance = 0.002\noscillation_steps = 30\ndead_steps = 7\nrearm_steps = 10\n"
    );
    let m = parse_str(&text, "d.toml").unwrap();
    assert_eq!(
        m.diagnose,
        Thresholds {
            enabled: false,
            exploding_factor: 100.0,
            exploding_steps: 3,
            vanishing_ratio: 1e-4,
            plateau_tolerance: 0.002,
            oscillation_steps: 30,
            dead_steps: 7,
            rearm_steps: 10,
            ..Thresholds::default()
        }
    );
    // Every bad value at once, each on its own line.
    let text = format!(
        "{base}[diagnose]\nenabled = 1\noscillation_steps = 1\noscillation_correlation = 1.5\n"
    );
    let d = parse_str(&text, "d.toml").unwrap_err();
    let shown = d.to_string();
    assert_eq!(d.iter().count(), 3, "{shown}");
    assert!(
        shown.contains("d.toml:8:11: diagnose.enabled: expected true or false"),
        "{shown}"
    );
    assert!(shown.contains("d.toml:9:"), "{shown}");
    assert!(shown.contains("d.toml:10:"), "{shown}");
}
