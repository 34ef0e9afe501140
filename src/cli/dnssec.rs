//! `failoverd dnssec keygen|ds`: key files for signed zones and the records their
//! parent needs.
//!
//! - `keygen ZONE`: a CSK (default) or, with `--split`, a KSK and a ZSK; or one key
//!   of `--role`. Ed25519 (algorithm 15) by default, `--algorithm ecdsa-p256` (13).
//!   Timing: `--publish`, `--activate`, `--inactive`, `--delete` take RFC 3339
//!   times, `now` or `+DURATION` (e.g. `+30d`).
//! - `ds ZONE`: DS (SHA-256), CDS and CDNSKEY lines for every published KSK/CSK that
//!   has not gone inactive, to hand to the parent.
//!
//! The key directory is `--directory`, else `[dnssec] key_directory` of `--config`,
//! else `keys`.

use std::path::PathBuf;
use std::process::ExitCode;

use crate::config::{Config, ConfigSource};
use crate::dnssec::keys::{self, Algorithm, Key, Role, Timing, parse_time_from, unix_now};
use anyhow::{Context, bail};
use clap::{Args, Subcommand, ValueEnum};

/// `failoverd dnssec …`.
#[derive(Args)]
pub(crate) struct DnssecArgs {
    #[command(subcommand)]
    action: DnssecAction,
}

#[derive(Subcommand)]
enum DnssecAction {
    /// Generate signing keys for a zone.
    Keygen {
        /// The zone (e.g. example.com).
        zone: String,
        #[command(flatten)]
        place: Place,
        /// Signing algorithm.
        #[arg(long, value_enum, default_value_t = AlgorithmArg::Ed25519)]
        algorithm: AlgorithmArg,
        /// A KSK and a ZSK instead of one combined key (CSK).
        #[arg(long, conflicts_with = "role")]
        split: bool,
        /// Generate one key of this role (rollovers: a new ZSK or KSK).
        #[arg(long, value_enum)]
        role: Option<RoleArg>,
        /// When the DNSKEY is first served (default now).
        #[arg(long, default_value = "now")]
        publish: String,
        /// When the key starts signing (default now).
        #[arg(long, default_value = "now")]
        activate: String,
        /// When the key stops signing (default never).
        #[arg(long)]
        inactive: Option<String>,
        /// When the DNSKEY is withdrawn (default never).
        #[arg(long)]
        delete: Option<String>,
    },
    /// Print DS, CDS and CDNSKEY records for the parent zone.
    Ds {
        /// The zone.
        zone: String,
        #[command(flatten)]
        place: Place,
        /// TTL printed on the records.
        #[arg(long, default_value_t = 3600)]
        ttl: u32,
    },
}

/// Where the key files are.
#[derive(Args)]
struct Place {
    /// Key directory.
    #[arg(long, short)]
    directory: Option<PathBuf>,
    /// Read the key directory from this configuration's `[dnssec] key_directory`.
    #[arg(long, short, conflicts_with = "directory")]
    config: Option<PathBuf>,
}

impl Place {
    fn directory(&self) -> anyhow::Result<PathBuf> {
        if let Some(d) = &self.directory {
            return Ok(d.clone());
        }
        if let Some(path) = &self.config {
            let source = ConfigSource::from_file(path)?;
            let (config, _) = Config::load(source).map_err(|d| anyhow::anyhow!("{d}"))?;
            return Ok(config.dnssec.key_directory);
        }
        Ok(PathBuf::from(crate::config::dnssec_defaults::KEY_DIRECTORY))
    }
}

#[derive(Clone, Copy, ValueEnum)]
enum AlgorithmArg {
    /// Ed25519 (algorithm 15).
    Ed25519,
    /// ECDSA P-256 SHA-256 (algorithm 13).
    EcdsaP256,
}

#[derive(Clone, Copy, ValueEnum)]
enum RoleArg {
    Csk,
    Ksk,
    Zsk,
}

fn absolute(zone: &str) -> String {
    let zone = zone.trim_end_matches('.').to_ascii_lowercase();
    format!("{zone}.")
}

/// Runs `failoverd dnssec …`.
pub(crate) fn run(args: DnssecArgs) -> anyhow::Result<ExitCode> {
    let now = unix_now();
    match args.action {
        DnssecAction::Keygen {
            zone,
            place,
            algorithm,
            split,
            role,
            publish,
            activate,
            inactive,
            delete,
        } => {
            let zone = absolute(&zone);
            let directory = place.directory()?;
            let time = |t: &str| parse_time_from(t, now).map_err(anyhow::Error::msg);
            let timing = Timing {
                created: now,
                publish: time(&publish)?,
                activate: time(&activate)?,
                inactive: inactive.as_deref().map(time).transpose()?,
                delete: delete.as_deref().map(time).transpose()?,
            };
            if timing.activate < timing.publish {
                bail!("--activate is before --publish");
            }
            let algorithm = match algorithm {
                AlgorithmArg::Ed25519 => Algorithm::Ed25519,
                AlgorithmArg::EcdsaP256 => Algorithm::EcdsaP256,
            };
            let roles = match (split, role) {
                (true, _) => vec![Role::Ksk, Role::Zsk],
                (false, Some(RoleArg::Csk) | None) => vec![Role::Csk],
                (false, Some(RoleArg::Ksk)) => vec![Role::Ksk],
                (false, Some(RoleArg::Zsk)) => vec![Role::Zsk],
            };
            for role in roles {
                let key = Key::generate(&zone, role, algorithm, timing)?;
                let (public, private) = key
                    .save(&directory)
                    .with_context(|| format!("writing keys into {}", directory.display()))?;
                println!(
                    "{} {role} tag {} algorithm {}: {} (private: {})",
                    zone,
                    key.tag,
                    algorithm.number(),
                    public.display(),
                    private.display()
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        DnssecAction::Ds { zone, place, ttl } => {
            let zone = absolute(&zone);
            let directory = place.directory()?;
            let keys = keys::load_zone_keys(&directory, &zone)?;
            let lines = keys::parent_records(&keys, now, ttl);
            if lines.is_empty() {
                bail!(
                    "no published key-signing key for {zone} in {} (run `failoverd dnssec keygen {zone}`)",
                    directory.display()
                );
            }
            for line in lines {
                println!("{line}");
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
