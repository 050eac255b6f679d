//! One module per noun; each verb is a function.

mod evidence;

use std::path::PathBuf;

use crate::cli::{Cli, Command, EvidenceCommand};
use crate::failure::Failure;

pub fn run(cli: Cli) -> Result<(), Failure> {
    match cli.command {
        Command::Evidence(EvidenceCommand::Verify(a)) => evidence::verify(a),
        Command::Evidence(EvidenceCommand::Show(a)) => evidence::show(a),
        Command::Evidence(EvidenceCommand::Collect(a)) => evidence::collect(a),
    }
}

/// `$VEIL_HOME`, default `~/.config/veil`.
pub fn veil_home() -> PathBuf {
    if let Some(h) = std::env::var_os("VEIL_HOME") {
        return PathBuf::from(h);
    }
    let home = std::env::var_os("HOME").map_or_else(|| PathBuf::from("/"), PathBuf::from);
    home.join(".config/veil")
}

/// Reads a whole file, mapping errors to a usage failure naming the file.
pub fn read_file(path: &std::path::Path) -> Result<Vec<u8>, Failure> {
    std::fs::read(path).map_err(|e| Failure::io("cannot read", path, e))
}
