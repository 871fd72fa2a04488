//! The detector's sweep: trains the corpus of `tests/corpus/` and more seeds and settings
//! beyond it, and prints precision and recall per diagnosis kind.
//!
//! ```text
//! cargo run --release --example diagnose_sweep            # corpus + extra runs
//! cargo run --release --example diagnose_sweep -- NAME    # only runs whose name contains NAME
//! ```

#[path = "../tests/corpus/mod.rs"]
mod corpus;

fn main() {
    let filter = std::env::args().nth(1);
    let mut cases = corpus::healthy();
    cases.extend(corpus::pathological());
    cases.extend(corpus::beyond());
    for case in cases {
        if filter.as_ref().is_some_and(|f| !case.name.contains(f.as_str())) {
            continue;
        }
        let t = std::time::Instant::now();
        let (events, found) = corpus::diagnose(&case);
        if let Ok(dir) = std::env::var("SWEEP_DUMP") {
            use std::io::Write;
            let mut f = std::fs::File::create(format!("{dir}/{}.csv", case.name)).unwrap();
            let mut rows: std::collections::BTreeMap<u64, (f64, f64)> = Default::default();
            for e in &events {
                match &e.payload {
                    sonograd::event::Payload::Loss { value } => rows.entry(e.step).or_insert((f64::NAN, f64::NAN)).0 = *value,
                    sonograd::event::Payload::TotalNorm { value } => rows.entry(e.step).or_insert((f64::NAN, f64::NAN)).1 = *value,
                    _ => {}
                }
            }
            for (s, (l, t)) in rows { writeln!(f, "{s},{l},{t}").unwrap(); }
        }
        let verdict = corpus::judge(&case, &found);
        println!("{:30} {:6.1}s {}", case.name, t.elapsed().as_secs_f64(), if verdict.is_ok() {"ok"} else {"FAIL"});
        for f in &found {
            println!("    step {} {} {:?}: {}", f.step, f.kind, f.layers, f.reason);
        }
    }
}
