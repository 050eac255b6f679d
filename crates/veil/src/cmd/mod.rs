//! One module per noun; each verb is a function.

mod audit;
mod cas;
mod demo;
mod evidence;
mod fs;
mod identity;
mod job;
mod launch;
mod owner;
mod seal;
mod session;
mod tls;
mod volume;

pub use crate::config::veil_home;

use crate::cli::{
    AuditCommand, CasCommand, Cli, Command, EvidenceCommand, FsCommand, IdentityCommand,
    JobCommand, SecretCommand, SessionCommand, TlsCommand, VolumeCommand,
};
use crate::failure::Failure;

/// Runs the command; returns the process exit code (0, or the program's for `veil run`).
pub fn run(cli: Cli) -> Result<u8, Failure> {
    match cli.command {
        Command::Run(a) => return launch::run(a),
        Command::Measure(a) => launch::measure(a),
        Command::Demo(a) => return demo::demo(a),
        Command::Evidence(EvidenceCommand::Verify(a)) => evidence::verify(a),
        Command::Evidence(EvidenceCommand::Show(a)) => evidence::show(a),
        Command::Evidence(EvidenceCommand::Collect(a)) => evidence::collect(a),
        Command::Cas(CasCommand::Serve(a)) => cas::serve(a),
        Command::Cas(CasCommand::Verify(a)) => cas::verify(a),
        Command::Cas(CasCommand::Status(a)) => cas::status(a),
        Command::Cas(CasCommand::Init(a)) => cas::init(a),
        Command::Cas(CasCommand::Unseal(a)) => cas::unseal(a),
        Command::Identity(IdentityCommand::Create(a)) => identity::create(a),
        Command::Identity(IdentityCommand::Show(a)) => identity::show(a),
        Command::Session(SessionCommand::Apply(a)) => session::apply(a),
        Command::Session(SessionCommand::Get(a)) => session::get(a),
        Command::Session(SessionCommand::List(a)) => session::list(a),
        Command::Session(SessionCommand::Diff(a)) => session::diff(a),
        Command::Session(SessionCommand::Approve(a)) => session::approve(a),
        Command::Secret(SecretCommand::Put(a)) => session::put_secret(a),
        Command::Audit(AuditCommand::Show(a)) => audit::show(a),
        Command::Audit(AuditCommand::Verify(a)) => audit::verify(a),
        Command::Encrypt(a) => seal::encrypt(a),
        Command::Decrypt(a) => seal::decrypt(a),
        Command::Fs(FsCommand::Init(a)) => fs::init(a),
        Command::Fs(FsCommand::Encrypt(a)) => fs::encrypt(a),
        Command::Fs(FsCommand::Decrypt(a)) => fs::decrypt(a),
        Command::Fs(FsCommand::Verify(a)) => fs::verify(a),
        Command::Fs(FsCommand::Mount(a)) => fs::mount(a),
        Command::Fs(FsCommand::Tag(a)) => fs::tag(a),
        Command::Volume(VolumeCommand::Accept(a)) => volume::accept(a),
        Command::Volume(VolumeCommand::List(a)) => volume::list(a),
        Command::Job(JobCommand::Create(a)) => job::create(a),
        Command::Job(JobCommand::Fetch(a)) => job::fetch(a),
        Command::Tls(TlsCommand::Inspect(a)) => tls::inspect(a),
        Command::Tls(TlsCommand::Proxy(a)) => tls::proxy(a),
    }
    .map(|()| 0)
}

/// Reads a whole file, mapping errors to a usage failure naming the file.
pub fn read_file(path: &std::path::Path) -> Result<Vec<u8>, Failure> {
    std::fs::read(path).map_err(|e| Failure::io("cannot read", path, e))
}
