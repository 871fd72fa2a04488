//! The detector's sweep: trains every run of the corpus (`tests/it/corpus/`) and the healthy
//! runs beyond it (other seeds, widths, depths and settings), and prints a table of
//! precision and recall per diagnosis kind.
//!
//! ```text
//! cargo run --example diagnose_sweep            # everything (a few minutes on one core)
//! cargo run --example diagnose_sweep -- NAME    # only runs whose name contains NAME
//! ```
//!
//! A run's expected kind counts as found when it is named with the right first layer in its
//! window; a kind named on a run that neither expects nor allows it is a false alarm.

#[path = "../tests/it/corpus/mod.rs"]
mod corpus;

use sonograd::event::DiagnosisKind;

#[derive(Default, Clone, Copy)]
struct Tally {
    found: u32,
    missed: u32,
    false_alarms: u32,
}

fn main() {
    let filter = std::env::args().nth(1);
    let mut cases = corpus::healthy();
    cases.extend(corpus::beyond());
    cases.extend(corpus::pathological());
    let mut tally = [Tally::default(); DiagnosisKind::ALL.len()];
    let (mut healthy, mut noisy) = (0, 0);
    let started = std::time::Instant::now();
    for case in &cases {
        if filter
            .as_ref()
            .is_some_and(|f| !case.name.contains(f.as_str()))
        {
            continue;
        }
        let t = std::time::Instant::now();
        let (_, found) = corpus::diagnose(case);
        let verdict = corpus::judge(case, &found);
        println!(
            "{:48} {:6.1} s  {}",
            case.name,
            t.elapsed().as_secs_f64(),
            if verdict.is_ok() { "ok" } else { "WRONG" }
        );
        for f in &found {
            println!(
                "    step {} {} {:?}: {}",
                f.step, f.kind, f.layers, f.reason
            );
        }
        if case.expect.is_empty() {
            healthy += 1;
            noisy += u32::from(!found.is_empty());
        }
        for kind in DiagnosisKind::ALL {
            let t = &mut tally[kind as usize];
            let named = found.iter().any(|f| f.kind == kind);
            match case.expect.iter().find(|x| x.kind == kind) {
                Some(x) => {
                    let right = found.iter().any(|f| {
                        f.kind == kind
                            && x.steps.contains(&f.step)
                            && x.layer
                                .is_none_or(|l| f.layers.first().map(String::as_str) == Some(l))
                    });
                    if right {
                        t.found += 1;
                    } else {
                        t.missed += 1;
                    }
                }
                None if named && !case.allowed.contains(&kind) => t.false_alarms += 1,
                None => {}
            }
        }
    }
    println!(
        "\n{} runs in {:.0} s; healthy runs with any alarm: {noisy} of {healthy}\n",
        cases.len(),
        started.elapsed().as_secs_f64()
    );
    println!("| kind | runs that must name it | named right | missed | false alarms (runs) | precision | recall |");
    println!("| --- | --- | --- | --- | --- | --- | --- |");
    let pct = |a: u32, b: u32| {
        if b == 0 {
            "-".to_string()
        } else {
            format!("{:.0} %", 100.0 * a as f64 / b as f64)
        }
    };
    for kind in DiagnosisKind::ALL {
        let t = tally[kind as usize];
        println!(
            "| `{kind}` | {} | {} | {} | {} | {} | {} |",
            t.found + t.missed,
            t.found,
            t.missed,
            t.false_alarms,
            pct(t.found, t.found + t.false_alarms),
            pct(t.found, t.found + t.missed)
        );
    }
}
