//! Mapping files: the TOML that says which training events drive which sounds.
//!
//! [`check`] reads and validates a file and reports every problem at once; [`parse_str`] does
//! the same for text. [`watch`] re-validates a file whenever it changes. The format is
//! documented in `docs/mapping.md`.

pub mod controls;
pub mod parse;
pub mod patches;
pub(crate) mod problems;
pub mod schema;
pub mod watch;

use std::path::Path;

pub use parse::parse_str;
pub use problems::{Diagnostic, Diagnostics};
pub use schema::Mapping;

/// Reads and validates a mapping file. The error lists every problem found, each with file,
/// line, column and key path; an unreadable file gives one diagnostic at 1:1.
pub fn check(path: impl AsRef<Path>) -> Result<Mapping, Diagnostics> {
    let path = path.as_ref();
    let name = path.display().to_string();
    match std::fs::read_to_string(path) {
        Ok(src) => parse_str(&src, &name),
        Err(e) => Err(Diagnostics(vec![Diagnostic {
            file: name,
            line: 1,
            column: 1,
            path: String::new(),
            message: format!("cannot read the mapping file: {e}"),
        }])),
    }
}
