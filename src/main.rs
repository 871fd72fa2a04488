//! The `sonograd` binary. Every command runs here except `train` and `demo`, which it hands to
//! the companion binary `sonograd-train`, the only one that links libtorch, so that no other
//! command pays for loading it. A build without the `train` feature has no trainer, and the
//! two commands say how to get one.

mod cli;

use std::path::PathBuf;
use std::process::ExitCode;

use cli::Command;

fn main() -> ExitCode {
    cli::run(hand_over)
}

/// The companion binary's file name.
const COMPANION: &str = "sonograd-train";

/// Hands `train` or `demo` to `sonograd-train` beside this binary (or on `PATH`) with this
/// process's own arguments. On Unix the companion replaces this process, so signals, the exit
/// code and the terminal are its own.
fn hand_over(command: &Command) -> anyhow::Result<bool> {
    if !cfg!(feature = "train") {
        let name = match command {
            Command::Demo(_) => "demo",
            _ => "train",
        };
        anyhow::bail!(
            "`sonograd {name}` is not in this build, which was made without the trainer \
             (--no-default-features). Install the full build with `cargo install --path .` \
             (it needs libtorch: `bash scripts/setup.sh` fetches it), or train in Python with \
             the client (`pip install ./clients/python`) and hear it with `sonograd listen`"
        );
    }
    let companion = find_companion().ok_or_else(|| {
        anyhow::anyhow!(
            "`{COMPANION}` was not found beside this binary or on PATH; it runs `train` and \
             `demo`: build it with `cargo build --release`, or `cargo install --path .` to \
             install both binaries"
        )
    })?;
    let mut child = std::process::Command::new(&companion);
    child.args(std::env::args_os().skip(1));
    #[cfg(unix)]
    {
        use std::os::unix::process::CommandExt;
        // Help and errors name `sonograd`, the command the user typed.
        let err = child.arg0("sonograd").exec();
        anyhow::bail!("cannot start {}: {err}", companion.display())
    }
    #[cfg(not(unix))]
    {
        let status = child.status()?;
        std::process::exit(status.code().unwrap_or(2));
    }
}

/// `sonograd-train` in this binary's folder, else the first on `PATH`.
fn find_companion() -> Option<PathBuf> {
    let beside = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|dir| dir.join(COMPANION)))
        .filter(|p| p.is_file());
    beside.or_else(|| {
        std::env::split_paths(&std::env::var_os("PATH")?)
            .map(|dir| dir.join(COMPANION))
            .find(|p| p.is_file())
    })
}
