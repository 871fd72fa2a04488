//! `sonograd check`.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;

#[derive(Args, Debug, Clone)]
pub struct CheckArgs {
    /// Mapping files to validate.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
}

/// Validates every file; `Ok(true)` when all are valid.
pub fn run(args: &CheckArgs) -> Result<bool> {
    let mut all_valid = true;
    for file in &args.files {
        match sonograd::mapping::check(file) {
            Ok(m) => println!(
                "{}: ok ({} outputs, {} routes)",
                file.display(),
                m.outputs.len(),
                m.routes.len()
            ),
            Err(diags) => {
                all_valid = false;
                eprintln!("{diags}");
            }
        }
    }
    Ok(all_valid)
}
