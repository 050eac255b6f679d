//! `veil run` and `veil measure`.

use veil_attest::Tee;
use veil_launcher::{AttestOptions, ExecPlan, Retry};
use veil_provider::ProviderChoice;

use crate::cli::{CollectTee, MeasureArgs, RunArgs};
use crate::config::{client, veil_home};
use crate::failure::Failure;

fn choice(t: CollectTee) -> ProviderChoice {
    match t {
        CollectTee::Auto => ProviderChoice::Auto,
        CollectTee::Sim => ProviderChoice::Tee(Tee::Sim),
        CollectTee::Snp => ProviderChoice::Tee(Tee::Snp),
        CollectTee::Tdx => ProviderChoice::Tee(Tee::Tdx),
        CollectTee::Sgx => ProviderChoice::Tee(Tee::Sgx),
    }
}

/// Attests, starts the program, supervises it; returns its exit status.
pub fn run(args: RunArgs) -> Result<u8, Failure> {
    veil_launcher::harden()
        .map_err(|e| Failure::Isolation(format!("cannot make the launcher non-dumpable: {e}")))?;
    let opts = AttestOptions {
        session: args.session.clone(),
        service: args.service.clone(),
        tee: choice(args.tee),
        provider_root: args.provider_root.clone(),
        sim_dir: args
            .sim_dir
            .clone()
            .unwrap_or_else(|| veil_home().join("sim")),
        retry: Retry {
            attempts: args.attempts,
            ..Retry::default()
        },
        volumes_dir: args
            .volumes_dir
            .clone()
            .unwrap_or_else(|| veil_home().join("volumes")),
    };
    // Attest on a single-threaded runtime, then drop it: the launcher must be
    // one thread when it forks and waits for signals.
    let mut released = {
        let cas = client(&args.cas, false)?;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| Failure::Usage(format!("cannot start the async runtime: {e}")))?;
        let r = rt.block_on(veil_launcher::attest(&cas, &opts));
        drop(cas);
        drop(rt);
        r?
    };
    let network_rules = std::mem::take(&mut released.network);
    let plan = ExecPlan::new(&mut released, &args.host_args, std::env::vars_os())?;
    // The client that commits volume tags presents the attested
    // certificate; renewal swaps in one with the renewed certificate.
    let committer: Option<veil_launcher::SharedClient> = if released.volumes.is_empty() {
        None
    } else {
        Some(std::sync::Arc::new(std::sync::Mutex::new(
            crate::config::client_as(&args.cas, released.identity()?)?,
        )))
    };
    let volumes = match &committer {
        None => None,
        Some(c) => {
            let vols = std::mem::take(&mut released.volumes);
            Some(veil_launcher::mount_volumes(
                vols,
                &args.session,
                &args.service,
                c.clone(),
            )?)
        }
    };
    // The tunnels are bound before the program starts, so it can connect
    // (outbound) and be reached (inbound) at once. The same runtime renews
    // the attested certificate before it expires, for the tunnels and for
    // volume tag commits.
    let network = if network_rules.is_empty() && committer.is_none() {
        None
    } else {
        let attested = veil_launcher::attested_source(&released.certificate, &released.key_pkcs8)?;
        let mut on_renew: Vec<Box<dyn Fn(veil_client::ClientIdentity) + Send + Sync>> = Vec::new();
        if let Some(slot) = committer.clone() {
            let url = args.cas.clone();
            on_renew.push(Box::new(move |identity| {
                match crate::config::client_as(&url, identity) {
                    Ok(c) => *slot.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = c,
                    Err(e) => tracing::warn!(error = %e, "cannot use the renewed certificate for volume commits"),
                }
            }));
        }
        let renewal = veil_launcher::Renewal {
            client: client(&args.cas, false)?,
            options: opts.clone(),
            on_renew,
        };
        Some(veil_launcher::start_network(
            network_rules,
            attested,
            Some(renewal),
            veil_netshield::Limits::default(),
        )?)
    };
    tracing::info!(
        program = %plan.program().display(),
        argc = plan.argc(),
        env = ?plan.env_names(),
        files = ?plan.file_paths().collect::<Vec<_>>(),
        "starting the program"
    );
    let running = veil_launcher::spawn(&plan)?;
    tracing::info!(pid = running.pid(), "the program is running");
    let outcome = veil_launcher::supervise(running)?;
    if let Some(line) = outcome.report() {
        eprintln!("veil: {line}");
    }
    if let Some(n) = network {
        n.close(std::time::Duration::from_secs(1));
    }
    if let Some(v) = volumes {
        for problem in v.close() {
            eprintln!("veil: {problem}");
        }
    }
    Ok(outcome.exit_code())
}

/// What `veil measure` prints.
#[derive(Debug, serde::Serialize)]
struct Measured {
    program: String,
    executable: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    interpreter: Option<Interpreter>,
    launcher: String,
    sim_measurement: String,
}

#[derive(Debug, serde::Serialize)]
struct Interpreter {
    path: String,
    sha384: String,
}

/// Measures a program as `veil run` would.
pub fn measure(args: MeasureArgs) -> Result<(), Failure> {
    let m = measured(&args.program)?;
    if args.json {
        let text = serde_json::to_string_pretty(&m)
            .map_err(|e| Failure::Usage(format!("cannot encode JSON: {e}")))?;
        println!("{text}");
        return Ok(());
    }
    println!("program          {}", m.program);
    println!("executable       {}", m.executable);
    if let Some(i) = &m.interpreter {
        println!("interpreter      {} {}", i.sha384, i.path);
    }
    println!("launcher         {}", m.launcher);
    println!("sim measurement  {}", m.sim_measurement);
    println!();
    println!(
        "A `tee: sim` accept rule pins this program with `measurement: {}`;",
        m.sim_measurement
    );
    println!(
        "on a real TEE, pin the hardware measurement and `executable: {}`.",
        m.executable
    );
    Ok(())
}

fn measured(program: &std::path::Path) -> Result<Measured, Failure> {
    let path = veil_launcher::resolve_program(&program.to_string_lossy())?;
    let m = veil_launcher::measure_program(&path)?;
    let launcher = veil_launcher::launcher_measurement(Some(&veil_home().join("sim")))
        .map_err(|e| Failure::Usage(format!("cannot measure the veil binary: {e}")))?;
    Ok(Measured {
        program: m.path.display().to_string(),
        executable: hex::encode(m.executable),
        interpreter: m.interpreter.as_ref().map(|(p, d)| Interpreter {
            path: p.display().to_string(),
            sha384: hex::encode(d),
        }),
        launcher: hex::encode(launcher),
        sim_measurement: hex::encode(veil_launcher::sim_launch_measurement(&launcher, &m)),
    })
}
