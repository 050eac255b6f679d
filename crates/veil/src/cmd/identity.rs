//! `veil identity create|show`.

use crate::cli::{IdentityCreateArgs, IdentityShowArgs};
use crate::config::{identity_path, load_identity, write_private};
use crate::failure::Failure;

pub fn create(args: IdentityCreateArgs) -> Result<(), Failure> {
    let path = identity_path();
    if path.exists() && !args.force {
        return Err(Failure::Usage(format!(
            "{} already exists; pass --force to replace it (sessions that list the old fingerprint as an owner will no longer accept you)",
            path.display()
        )));
    }
    let id = veil_ca::Identity::generate(&args.name, veil_attest::Time::now())
        .map_err(|e| Failure::Usage(format!("cannot make an identity: {e}")))?;
    write_private(&path, id.to_pem().as_bytes())?;
    println!("created {}", path.display());
    println!("fingerprint {}", id.fingerprint());
    Ok(())
}

pub fn show(args: IdentityShowArgs) -> Result<(), Failure> {
    let id = load_identity()?.ok_or_else(|| {
        Failure::Usage(format!(
            "no identity at {}: run `veil identity create`",
            identity_path().display()
        ))
    })?;
    if args.cert {
        print!("{}", id.cert_pem());
    } else if args.json {
        println!(
            "{}",
            serde_json::json!({
                "fingerprint": id.fingerprint().to_string(),
                "path": identity_path(),
            })
        );
    } else {
        println!("{}", id.fingerprint());
    }
    Ok(())
}
