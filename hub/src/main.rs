//! `hub`: the Oracle Hub binary (docs/HUB.md).

use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use fleet::InstanceId;

use hub::broker::{self, BrokerFiles, InstanceLink};

#[derive(Debug, Parser)]
#[command(
    name = "hub",
    version,
    about = "Oracle Hub: the fleet's dashboard, storage and commands"
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Debug, clap::Args)]
struct BrokerArgs {
    /// Mosquitto's password_file.
    #[arg(long, default_value = "/etc/mosquitto/oracle/passwd")]
    passwd_file: PathBuf,
    /// Where the hub keeps one <id>.token per instance (0600).
    #[arg(long, default_value = "/etc/oracle-hub/instances")]
    token_dir: PathBuf,
    /// The hub's own broker username (refused as an instance id).
    #[arg(long, default_value = "hub")]
    hub_username: String,
    #[arg(long, default_value = "mosquitto_passwd")]
    mosquitto_passwd: PathBuf,
}

impl BrokerArgs {
    fn files(&self) -> BrokerFiles {
        BrokerFiles {
            password_file: self.passwd_file.clone(),
            token_dir: self.token_dir.clone(),
            hub_username: self.hub_username.clone(),
            mosquitto_passwd: self.mosquitto_passwd.clone(),
        }
    }
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Run the hub: ingest from the broker, store, serve the dashboard.
    Serve {
        #[arg(long, default_value = "/etc/oracle-hub/hub.json")]
        config: PathBuf,
    },
    /// Create an instance's broker credential and 0600 token file; print the executor config
    /// snippet. The broker reads its password file again on SIGHUP: `systemctl reload mosquitto`.
    AddInstance {
        id: String,
        #[command(flatten)]
        broker: BrokerArgs,
        /// Replace an existing instance's token (rotation).
        #[arg(long)]
        rotate: bool,
        /// The broker as the instance reaches it.
        #[arg(long, default_value = "mqtts://broker.example:8883")]
        broker_url: String,
        /// The fleet CA as the instance will find it.
        #[arg(long, default_value = "/etc/oracle-trader/hub-ca.pem")]
        instance_ca_file: String,
        /// Where the token file goes on the instance.
        #[arg(long, default_value = "/etc/oracle-trader/secrets/hub_token")]
        instance_token_file: String,
        /// The hub's signing key (its public half goes into the snippet).
        #[arg(long, default_value = "/etc/oracle-hub/hub_key")]
        key_file: PathBuf,
        #[arg(long, default_value_t = 10)]
        telemetry_secs: u64,
    },
    /// Delete an instance's broker credential and token file.
    RemoveInstance {
        id: String,
        #[command(flatten)]
        broker: BrokerArgs,
    },
    /// Give the hub its broker credential (its line in the password file, its 0600 password file).
    SetHubUser {
        #[command(flatten)]
        broker: BrokerArgs,
        #[arg(long, default_value = "/etc/oracle-hub/broker_password")]
        password_file: PathBuf,
    },
    /// Create the hub's ed25519 signing key (0600); refuses to replace one.
    GenKey {
        #[arg(long, default_value = "/etc/oracle-hub/hub_key")]
        key_file: PathBuf,
    },
    /// Write a throwaway fleet CA and a broker certificate for NAME (tests, the demo; a real
    /// deployment uses its own CA): fleet-ca.pem, oracle-broker.crt, oracle-broker.key (0600).
    DevCerts {
        #[arg(long)]
        dir: PathBuf,
        #[arg(long, default_value = "localhost")]
        name: Vec<String>,
    },
    /// Read a password on standard input, print its argon2 hash for `operator.password_hash`.
    HashPassword,
    /// Write the recorded bars of one instance/symbol/timeframe as the bars CSV that
    /// `preditor backtest`, the executor's paper replay and ctrader-sim read (scripts/ENV.md §1).
    ExportBars {
        #[arg(long, default_value = "/etc/oracle-hub/hub.json")]
        config: PathBuf,
        #[arg(long)]
        instance: String,
        #[arg(long)]
        symbol: String,
        #[arg(long, default_value = "M15")]
        timeframe: String,
        /// Output file (default: standard output).
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

fn instance_id(s: &str) -> anyhow::Result<InstanceId> {
    InstanceId::new(s).with_context(|| format!("instance id {s:?}"))
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    match cli.command {
        Cmd::Serve { config } => hub::serve::run(&config),
        Cmd::AddInstance {
            id,
            broker: b,
            rotate,
            broker_url,
            instance_ca_file,
            instance_token_file,
            key_file,
            telemetry_secs,
        } => {
            let id = instance_id(&id)?;
            let key = hub::keys::load_signing_key(&key_file)
                .map_err(anyhow::Error::msg)
                .context("the hub's signing key (create it with `hub gen-key`)")?;
            let token = broker::add_instance(&b.files(), &id, rotate)?;
            let link = InstanceLink {
                broker: broker_url,
                ca_file: Some(instance_ca_file.clone()),
                token_file: instance_token_file.clone(),
                hub_public_key: fleet::signed::encode_public_key(&key.verifying_key()),
                telemetry_secs,
            };
            println!("{}", broker::executor_snippet(&id, &link));
            eprintln!(
                "hub: instance {id}: token in {} (0600). Copy it to the instance as {instance_token_file} (0600, owner oracle),\n\
                 the fleet CA as {instance_ca_file}, and merge the snippet above into its executor config.\n\
                 The broker reads the new credential on SIGHUP: systemctl reload mosquitto",
                token.display()
            );
            Ok(())
        }
        Cmd::RemoveInstance { id, broker: b } => {
            let id = instance_id(&id)?;
            broker::remove_instance(&b.files(), &id)?;
            eprintln!(
                "hub: instance {id} removed. systemctl reload mosquitto refuses its next login; a connection \
                 already open stays until it drops (mosquitto.conf(5)): systemctl restart mosquitto cuts it now"
            );
            Ok(())
        }
        Cmd::SetHubUser {
            broker: b,
            password_file,
        } => {
            broker::set_hub_user(&b.files(), &password_file)?;
            eprintln!(
                "hub: broker user {} set; password in {} (0600). systemctl reload mosquitto",
                b.hub_username,
                password_file.display()
            );
            Ok(())
        }
        Cmd::GenKey { key_file } => {
            let key = hub::keys::create_signing_key(&key_file)
                .with_context(|| format!("creating {}", key_file.display()))?;
            println!("{}", fleet::signed::encode_public_key(&key.verifying_key()));
            eprintln!(
                "hub: signing key in {} (0600); its public key above goes into every instance's hub_public_key",
                key_file.display()
            );
            Ok(())
        }
        Cmd::DevCerts { dir, name } => {
            hub::keys::dev_certs(&dir, &name)?;
            eprintln!(
                "hub: fleet-ca.pem, oracle-broker.crt, oracle-broker.key in {} (for tests and demos only)",
                dir.display()
            );
            Ok(())
        }
        Cmd::HashPassword => {
            let mut line = String::new();
            std::io::stdin().read_line(&mut line)?;
            let pw = line.trim_end_matches(['\n', '\r']);
            if pw.len() < 12 {
                bail!("a password of at least 12 characters, please");
            }
            println!("{}", hub::auth::hash_password(pw)?);
            Ok(())
        }
        Cmd::ExportBars {
            config,
            instance,
            symbol,
            timeframe,
            out,
        } => hub::export::run(
            &config,
            &instance_id(&instance)?,
            &symbol,
            &timeframe,
            out.as_deref(),
        ),
    }
}
