//! The `rgmerge` command line: every flag of every command is defined here
//! (clap), turned into the library's plain option structs, and the answer
//! printed. No library module knows clap.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use crate::settings_file;
use clap::{CommandFactory, FromArgMatches, Parser, Subcommand, ValueEnum};

use indicatif::{ProgressBar, ProgressStyle};
use rayon::prelude::*;

use rgmerge::batch::{self, BatchError, Bundle};
use rgmerge::intern::Interner;
use rgmerge::report::{Report, State, text};

#[derive(Parser)]
#[command(
    name = "rgmerge",
    version,
    about = "Merge Kong runtime-group configs into composite runtime groups and detect every conflict"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Validate member configs as one composite (each file is a member named by its stem).
    Validate {
        #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
        format: OutputFormat,
        /// Exit 1 on conflicts and member errors (`conflict`), or on warnings too (`warning`).
        #[arg(long, default_value = "conflict", value_name = "conflict|warning")]
        fail_on: String,
        #[command(flatten)]
        kong: KongArgs,
        /// Validate every composite of a bundle manifest instead.
        #[arg(long, value_name = "MANIFEST", conflicts_with = "inputs")]
        bundle: Option<PathBuf>,
        /// Member config files or directories of them.
        #[arg(value_name = "FILE_OR_DIR", required_unless_present = "bundle")]
        inputs: Vec<PathBuf>,
    },
    /// Print the merged snapshot (decK 3.0 JSON) of the given members.
    Merge {
        /// `kong`: Kong's declarative form, what data planes load; `deck`: decK's form.
        #[arg(long, default_value = "kong", value_name = "kong|deck")]
        format: String,
        #[command(flatten)]
        kong: KongArgs,
        #[arg(value_name = "FILE_OR_DIR", required = true)]
        inputs: Vec<PathBuf>,
    },
    /// Run the daemon: groups, composites and snapshots over HTTP on a Unix socket.
    Serve(Box<ServeArgs>),
    /// Follow a group's snapshot beside a Kong data plane: write it for Kong, heartbeat its hash.
    Sidecar(SidecarArgs),
    /// Write certificates for the cluster endpoint (`kong hybrid gen_cert`'s job):
    /// a CA, a server certificate for `*.DOMAIN`, and with `--dp-cn` a data-plane
    /// certificate to pin.
    ClusterCert {
        /// The endpoint's domain: group G is `<label of G>.DOMAIN`.
        #[arg(long)]
        domain: String,
        /// A directory (created); existing files are never overwritten.
        #[arg(long)]
        out: PathBuf,
        /// Also write a self-signed data-plane certificate (`dp.crt`, `dp.key`) with this CN.
        #[arg(long, value_name = "CN")]
        dp_cn: Option<String>,
    },
    /// Write the whole state — control planes, configs, what each served, teams with
    /// their token hashes and grants, certificates, nodes, the audit log — as files
    /// with a manifest: of a running daemon (`--socket`, org admins), of a stopped
    /// daemon's data directory, or of PostgreSQL. It holds token hashes: keep it secret.
    Export {
        #[arg(long, default_value = "rgmerge-data", conflicts_with_all = ["store", "socket"])]
        data_dir: PathBuf,
        /// Export from PostgreSQL instead (daemons may keep running).
        #[arg(long, value_name = "postgres://…", conflicts_with = "socket")]
        store: Option<String>,
        /// Ask the daemon on this socket for one point in time while it runs.
        #[arg(long, value_name = "SOCK")]
        socket: Option<PathBuf>,
        /// With `--socket`: a bearer token of an org admin (else the daemon
        /// knows you by your Unix user).
        #[arg(long, env = "RGMERGE_TOKEN", hide_env_values = true)]
        token: Option<String>,
        /// A new, empty directory.
        out: PathBuf,
    },
    /// Load an export into an empty data directory (or PostgreSQL): everything it
    /// holds, all or nothing, after checking each file against its manifest.
    Import {
        #[arg(long, default_value = "rgmerge-data")]
        data_dir: PathBuf,
        /// Import into PostgreSQL instead (empty, or holding only what a
        /// daemon made at its first start); running daemons follow.
        #[arg(long, value_name = "postgres://…")]
        store: Option<String>,
        /// A directory written by `rgmerge export`.
        dir: PathBuf,
    },
    /// Move a (stopped) daemon's embedded store into PostgreSQL, which must hold no state yet.
    Migrate {
        #[arg(long, default_value = "rgmerge-data")]
        data_dir: PathBuf,
        /// The database to move it to.
        #[arg(long, value_name = "postgres://…")]
        to: String,
    },
    /// Write synthetic member configs for benchmarks and tests.
    Gen(GenArgs),
    /// Measure the engine's key figures in one process and print them.
    Bench(BenchArgs),
    /// Manage access (teams, tokens, grants) and read the audit log, over the daemon's socket (org admins only).
    Admin(AdminArgs),
}

#[derive(clap::Args)]
struct AdminArgs {
    /// The daemon's socket.
    #[arg(long, default_value = "rgmerge-data/rgmerge.sock", global = true)]
    socket: PathBuf,
    /// A bearer token (else the daemon knows you by your Unix user).
    #[arg(long, env = "RGMERGE_TOKEN", hide_env_values = true, global = true)]
    token: Option<String>,
    #[command(subcommand)]
    command: AdminCommand,
}

#[derive(Subcommand)]
enum AdminCommand {
    /// Who the daemon takes you for: teams, credential, grants.
    Whoami,
    /// Teams and their Unix credentials.
    #[command(subcommand)]
    Teams(TeamsCommand),
    /// Bearer tokens of a team.
    #[command(subcommand)]
    Tokens(TokensCommand),
    /// A team's roles on control planes.
    #[command(subcommand)]
    Grants(GrantsCommand),
    /// Read the audit log, newest first.
    Audit {
        /// Only entries about this control plane (id or name).
        #[arg(long)]
        group: Option<String>,
        /// Only entries of this team.
        #[arg(long)]
        team: Option<String>,
        /// RFC 3339; entries at or after it.
        #[arg(long)]
        since: Option<String>,
        /// RFC 3339; entries at or before it.
        #[arg(long)]
        until: Option<String>,
        /// Entries older than this sequence number (the next page).
        #[arg(long)]
        before: Option<u64>,
        /// At most this many (1 to 1000).
        #[arg(long)]
        limit: Option<usize>,
    },
}

#[derive(Subcommand)]
enum TeamsCommand {
    List,
    Create {
        name: String,
        #[arg(long)]
        description: Option<String>,
        /// Every right on every group, and this admin API.
        #[arg(long)]
        org_admin: bool,
        /// A Unix user id whose processes act as this team (repeatable).
        #[arg(long = "uid")]
        uids: Vec<u32>,
        /// A Unix group id whose members (by primary group) act as this team (repeatable).
        #[arg(long = "gid")]
        gids: Vec<u32>,
    },
    Show {
        team: String,
    },
    Delete {
        team: String,
    },
    AddUid {
        team: String,
        uid: u32,
    },
    AddGid {
        team: String,
        gid: u32,
    },
    RemoveUid {
        team: String,
        uid: u32,
    },
    RemoveGid {
        team: String,
        gid: u32,
    },
}

#[derive(Subcommand)]
enum TokensCommand {
    /// A new token, printed once.
    Issue {
        team: String,
        #[arg(long, default_value = "")]
        name: String,
        /// Lifetime in days [default: 90; at most 730].
        #[arg(long)]
        expires_in_days: Option<u64>,
    },
    List {
        team: String,
    },
    Revoke {
        team: String,
        id: String,
    },
}

#[derive(Subcommand)]
enum GrantsCommand {
    List {
        team: String,
    },
    /// Give a team a role on a control plane (viewer, editor, admin, node).
    Set {
        team: String,
        /// Control plane id or name.
        group: String,
        role: String,
    },
    Remove {
        team: String,
        group: String,
    },
}

impl From<AdminArgs> for rgmerge::commands::admin::AdminOptions {
    fn from(a: AdminArgs) -> Self {
        use rgmerge::commands::admin::AdminAction as A;
        let action = match a.command {
            AdminCommand::Whoami => A::Whoami,
            AdminCommand::Teams(t) => match t {
                TeamsCommand::List => A::ListTeams,
                TeamsCommand::Create {
                    name,
                    description,
                    org_admin,
                    uids,
                    gids,
                } => A::CreateTeam {
                    name,
                    description,
                    org_admin,
                    uids,
                    gids,
                },
                TeamsCommand::Show { team } => A::ShowTeam { team },
                TeamsCommand::Delete { team } => A::DeleteTeam { team },
                TeamsCommand::AddUid { team, uid } => A::AddUid { team, uid },
                TeamsCommand::AddGid { team, gid } => A::AddGid { team, gid },
                TeamsCommand::RemoveUid { team, uid } => A::RemoveUid { team, uid },
                TeamsCommand::RemoveGid { team, gid } => A::RemoveGid { team, gid },
            },
            AdminCommand::Tokens(t) => match t {
                TokensCommand::Issue {
                    team,
                    name,
                    expires_in_days,
                } => A::IssueToken {
                    team,
                    name,
                    expires_in_days,
                },
                TokensCommand::List { team } => A::ListTokens { team },
                TokensCommand::Revoke { team, id } => A::RevokeToken { team, id },
            },
            AdminCommand::Grants(g) => match g {
                GrantsCommand::List { team } => A::ListGrants { team },
                GrantsCommand::Set { team, group, role } => A::SetGrant { team, group, role },
                GrantsCommand::Remove { team, group } => A::RemoveGrant { team, group },
            },
            AdminCommand::Audit {
                group,
                team,
                since,
                until,
                before,
                limit,
            } => A::Audit {
                group,
                team,
                since,
                until,
                before,
                limit,
            },
        };
        rgmerge::commands::admin::AdminOptions {
            socket: a.socket,
            token: a.token,
            action,
        }
    }
}

/// `rgmerge admin …`: the answer as JSON on stdout; a refusal exits 1, a
/// daemon that can't be reached 2.
fn admin(args: AdminArgs) -> ExitCode {
    use rgmerge::commands::admin::{AdminError, run};
    match run(args.into()) {
        Ok(serde_json::Value::Null) => ExitCode::SUCCESS,
        Ok(v) => {
            if v.get("token").is_some() {
                eprintln!("rgmerge: the token below is shown only this once: store it now");
            }
            println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
            ExitCode::SUCCESS
        }
        Err(e @ AdminError::Refused { .. }) => {
            eprintln!("rgmerge admin: {e}");
            ExitCode::from(1)
        }
        Err(e) => {
            eprintln!("rgmerge admin: {e}");
            ExitCode::from(2)
        }
    }
}

/// What the target data planes run; configs are judged against it.
#[derive(clap::Args)]
struct KongArgs {
    /// Kong Gateway edition of the data planes (Konnect runs Enterprise).
    #[arg(long, env = "RGMERGE_KONG_EDITION", value_name = "enterprise|oss")]
    kong_edition: Option<String>,
    /// Plugins the data planes run, as Kong's own `plugins` setting:
    /// `bundled` and/or custom plugin names, comma-separated.
    #[arg(long, env = "RGMERGE_PLUGINS", value_name = "bundled,NAME,…")]
    plugins: Option<String>,
}

impl KongArgs {
    fn target(&self) -> Result<rgmerge::config::KongTarget, BatchError> {
        rgmerge::config::KongTarget::from_flags(
            self.kong_edition.as_deref(),
            self.plugins.as_deref(),
        )
        .map_err(BatchError::Usage)
    }
}

#[derive(clap::Args)]
struct ServeArgs {
    /// Where state is kept (an embedded redb store, created on first start).
    #[arg(env = "RGMERGE_DATA_DIR", long, default_value = "rgmerge-data")]
    data_dir: PathBuf,
    /// Keep state in PostgreSQL (15 or later) instead, shared with other
    /// daemons: `postgres://user@host/db?sslrootcert=ca.pem` or
    /// `postgres:///db?host=/run/postgresql`. TLS as libpq's `sslmode`
    /// (`disable`, `allow`, `prefer`, `require`, `verify-ca`, `verify-full`);
    /// a host on the network defaults to `verify-full`, a local one to `disable`.
    /// DATA_DIR then holds only the default socket.
    #[arg(long, value_name = "postgres://…", env = "RGMERGE_STORE")]
    store: Option<String>,
    /// The Unix socket to serve on [default: DATA_DIR/rgmerge.sock].
    #[arg(env = "RGMERGE_SOCKET", long)]
    socket: Option<PathBuf>,
    /// Also serve the Runtime Manager page (only `/ui/…`) on this loopback
    /// address, e.g. 127.0.0.1:8080 (port 0 picks a free one). The page is
    /// always on the socket too.
    #[arg(env = "RGMERGE_HTTP", long, value_name = "127.0.0.1:PORT")]
    http: Option<std::net::SocketAddr>,
    /// Most groups the organisation may hold (3 reproduces Konnect's Enterprise plan).
    #[arg(env = "RGMERGE_MAX_GROUPS", long)]
    max_groups: Option<usize>,
    /// Largest request body accepted, in bytes.
    #[arg(env = "RGMERGE_MAX_BODY_BYTES", long, default_value_t = 64 * 1024 * 1024)]
    max_body_bytes: usize,
    /// A node seen within this many seconds counts as connected.
    #[arg(env = "RGMERGE_ACTIVE_WINDOW_SECS", long, default_value_t = 30)]
    active_window_secs: u64,
    /// Requests handled at once (snapshot reads excepted); more wait their turn.
    #[arg(env = "RGMERGE_MAX_IN_FLIGHT", long, default_value_t = 1024)]
    max_in_flight: usize,
    /// Connections open at once (idle keep-alive ones included); more wait
    /// in the socket's backlog until one closes.
    #[arg(env = "RGMERGE_MAX_CONNECTIONS", long, default_value_t = 4096)]
    max_connections: usize,
    #[command(flatten)]
    kong: KongArgs,
    /// Longest long-poll (`?wait=`) in seconds.
    #[arg(env = "RGMERGE_MAX_WAIT_SECS", long, default_value_t = 300)]
    max_wait_secs: u64,
    /// A connection that has not sent a whole request head this many seconds
    /// after connecting (or after the first byte of its next request) is closed.
    #[arg(env = "RGMERGE_HEADER_READ_TIMEOUT_SECS", long, default_value_t = 10)]
    header_read_timeout_secs: u64,
    /// A request body not read in full within this many seconds gets 408.
    #[arg(env = "RGMERGE_BODY_READ_TIMEOUT_SECS", long, default_value_t = 30)]
    body_read_timeout_secs: u64,
    /// A keep-alive connection idle this many seconds between requests is closed.
    #[arg(env = "RGMERGE_IDLE_TIMEOUT_SECS", long, default_value_t = 60)]
    idle_timeout_secs: u64,
    /// Snapshot versions kept per group (served by `?version=`, pinnable).
    #[arg(env = "RGMERGE_SNAPSHOT_HISTORY", long, default_value_t = rgmerge::registry::DEFAULT_SNAPSHOT_HISTORY as u64,
          value_parser = clap::value_parser!(u64).range(1..=10_000))]
    snapshot_history: u64,
    /// DATA_DIR/audit.log is rotated to audit.log.1 before it passes this many bytes.
    #[arg(env = "RGMERGE_AUDIT_MAX_BYTES", long, default_value_t = 64 * 1024 * 1024)]
    audit_max_bytes: u64,
    /// The store keeps the newest this many audit entries.
    #[arg(env = "RGMERGE_AUDIT_MAX_ENTRIES", long, default_value_t = 1_000_000)]
    audit_max_entries: u64,
    /// Open the cluster endpoint for Kong data planes in hybrid mode (mTLS,
    /// WebSocket) on this address, e.g. 0.0.0.0:8005. Needs --cluster-cert,
    /// --cluster-cert-key and --cluster-domain.
    #[arg(env = "RGMERGE_CLUSTER_LISTEN", long, value_name = "ADDR:PORT", requires_all = ["cluster_cert", "cluster_cert_key", "cluster_domain"])]
    cluster_listen: Option<std::net::SocketAddr>,
    /// The endpoint's certificate chain (PEM) for `*.DOMAIN` (`rgmerge cluster-cert` makes one).
    #[arg(env = "RGMERGE_CLUSTER_CERT", long, value_name = "PEM")]
    cluster_cert: Option<PathBuf>,
    /// Its private key (PEM).
    #[arg(env = "RGMERGE_CLUSTER_CERT_KEY", long, value_name = "PEM")]
    cluster_cert_key: Option<PathBuf>,
    /// Group G's endpoint is `https://<label of G>.DOMAIN[:PORT]`; data planes
    /// send that host as their TLS server name (`cluster_server_name`).
    #[arg(env = "RGMERGE_CLUSTER_DOMAIN", long, value_name = "DOMAIN")]
    cluster_domain: Option<String>,
    /// The port data planes reach the endpoint on, when it is not the listening
    /// one (behind a load balancer); 443 is left out of the URL.
    #[arg(env = "RGMERGE_CLUSTER_PUBLIC_PORT", long, value_name = "PORT")]
    cluster_public_port: Option<u16>,
    /// Data-plane connections open at once; more are closed at once.
    #[arg(
        env = "RGMERGE_CLUSTER_MAX_CONNECTIONS",
        long,
        default_value_t = 20_000
    )]
    cluster_max_connections: usize,
    /// A data-plane connection must finish TLS and its upgrade request within this many seconds.
    #[arg(
        env = "RGMERGE_CLUSTER_HANDSHAKE_TIMEOUT_SECS",
        long,
        default_value_t = 10
    )]
    cluster_handshake_timeout_secs: u64,
    /// Serve the whole API (Konnect's, with bearer tokens) and the page on the
    /// network, e.g. 0.0.0.0:8443: HTTPS with --api-cert and --api-cert-key;
    /// plain HTTP only on a loopback address.
    #[arg(env = "RGMERGE_API_LISTEN", long, value_name = "ADDR:PORT")]
    api_listen: Option<std::net::SocketAddr>,
    /// The API listener's certificate chain (PEM).
    #[arg(
        env = "RGMERGE_API_CERT",
        long,
        value_name = "PEM",
        requires = "api_cert_key"
    )]
    api_cert: Option<PathBuf>,
    /// Its private key (PEM).
    #[arg(
        env = "RGMERGE_API_CERT_KEY",
        long,
        value_name = "PEM",
        requires = "api_cert"
    )]
    api_cert_key: Option<PathBuf>,
    /// Requests per second for each token (or address, without one) on the
    /// API listener; past it, 429 with Retry-After.
    #[arg(env = "RGMERGE_API_RATE_LIMIT", long, default_value_t = 100)]
    api_rate_limit: u32,
    /// Read settings from this TOML file (`key = value`, keys as the flags
    /// without `--`). A flag wins over RGMERGE_… in the environment, which
    /// wins over the file, which wins over the default.
    #[arg(env = "RGMERGE_CONFIG", long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Print the settings `serve` would run with, each with where it came
    /// from, secrets masked, and exit.
    #[arg(long)]
    print_config: bool,
}

#[derive(Copy, Clone, ValueEnum, PartialEq, Eq)]
enum OutputFormat {
    Text,
    Json,
}

pub fn main() -> ExitCode {
    // `serve --config FILE`: its settings become RGMERGE_… variables where
    // the environment has none, so clap's order is flag, environment, file, default.
    let from_file = match settings_file::apply(&Cli::command()) {
        Ok(keys) => keys,
        Err(e) => {
            eprintln!("rgmerge serve: {e}");
            return ExitCode::from(2);
        }
    };
    let matches = Cli::command().get_matches();
    if let Some(("serve", serve)) = matches.subcommand()
        && serve.get_flag("print_config")
    {
        print!(
            "{}",
            settings_file::render(&Cli::command(), serve, &from_file)
        );
        return ExitCode::SUCCESS;
    }
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(c) => c,
        Err(e) => e.exit(),
    };
    let result = match cli.command {
        Command::Validate {
            format,
            fail_on,
            kong,
            bundle,
            inputs,
        } => (|| {
            let fail_on = batch::FailOn::parse(&fail_on).map_err(BatchError::Usage)?;
            let target = kong.target()?;
            match bundle {
                Some(manifest) => validate_bundle(&manifest, format, fail_on, &target),
                None => validate(&inputs, format, fail_on, &target),
            }
        })(),
        Command::Merge {
            format,
            kong,
            inputs,
        } => (|| {
            let form = rgmerge::compose::Form::parse(&format).ok_or_else(|| {
                BatchError::Usage(format!("--format must be kong or deck, not '{format}'"))
            })?;
            merge(&inputs, form, &kong.target()?)
        })(),
        Command::Serve(args) => return serve(*args),
        Command::ClusterCert { domain, out, dp_cn } => {
            return match rgmerge::commands::cluster_cert::write(&domain, &out, dp_cn.as_deref()) {
                Ok(files) => {
                    for f in files {
                        println!("{}", f.display());
                    }
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("rgmerge cluster-cert: {e}");
                    ExitCode::from(2)
                }
            };
        }
        Command::Admin(args) => return admin(args),
        Command::Sidecar(args) => {
            init_tracing();
            rgmerge::sidecar::run(args.into())
                .map(|()| ExitCode::SUCCESS)
                .map_err(|e| BatchError::Usage(e.to_string()))
        }
        Command::Export {
            data_dir,
            store,
            socket,
            token,
            out,
        } => {
            let source = match &store {
                Some(url) => rgmerge::transfer::Source::Postgres(url),
                None => rgmerge::transfer::Source::Dir(&data_dir),
            };
            match &socket {
                Some(sock) => rgmerge::transfer::export_online(sock, token.as_deref(), &out),
                None => rgmerge::transfer::export_from(source, &out),
            }
            .map(|n| {
                eprintln!("exported {n} control plane(s) to {}", out.display());
                ExitCode::SUCCESS
            })
            .map_err(|e| BatchError::Usage(e.to_string()))
        }
        Command::Import {
            data_dir,
            store,
            dir,
        } => {
            let target = match &store {
                Some(url) => rgmerge::transfer::Source::Postgres(url),
                None => rgmerge::transfer::Source::Dir(&data_dir),
            };
            rgmerge::transfer::import_into(&dir, target)
                .map(|n| {
                    eprintln!("imported {n} control plane(s) into {target}");
                    ExitCode::SUCCESS
                })
                .map_err(|e| BatchError::Usage(e.to_string()))
        }
        Command::Migrate { data_dir, to } => rgmerge::transfer::migrate(&data_dir, &to)
            .map(|n| {
                eprintln!(
                    "moved {n} control plane(s) from {} to {}; start the daemons with --store",
                    data_dir.display(),
                    rgmerge::store::postgres::redact(&to)
                );
                ExitCode::SUCCESS
            })
            .map_err(|e| BatchError::Usage(e.to_string())),
        Command::Gen(args) => rgmerge::synth::run(&args.into()).map(|()| ExitCode::SUCCESS),
        Command::Bench(args) => rgmerge::bench::run(&args.into()).map(|()| ExitCode::SUCCESS),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("rgmerge: {e}");
            ExitCode::from(2)
        }
    }
}

fn exit_for(fail_on: batch::FailOn, report: &Report) -> ExitCode {
    if fail_on.fails(report) {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

fn print(report: &Report, format: OutputFormat) {
    let out = match format {
        OutputFormat::Json => report.to_json() + "\n",
        OutputFormat::Text => text::render(report),
    };
    let _ = std::io::stdout().write_all(out.as_bytes());
}

fn validate(
    inputs: &[PathBuf],
    format: OutputFormat,
    fail_on: batch::FailOn,
    target: &rgmerge::config::KongTarget,
) -> Result<ExitCode, BatchError> {
    let composite = batch::composite_for(inputs, None, Arc::new(Interner::new()), target)?;
    let report = composite.report();
    print(&report, format);
    Ok(exit_for(fail_on, &report))
}

fn validate_bundle(
    manifest: &std::path::Path,
    format: OutputFormat,
    fail_on: batch::FailOn,
    target: &rgmerge::config::KongTarget,
) -> Result<ExitCode, BatchError> {
    let bundle = Bundle::read(manifest)?;
    let interner = Arc::new(Interner::new());
    let bar = ProgressBar::new(bundle.composites.len() as u64);
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} validating composites {pos}/{len} {wide_bar} {eta}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    // Only worth drawing when the run is long enough for a person to wait.
    bar.enable_steady_tick(std::time::Duration::from_millis(250));
    let results: Result<Vec<(String, Report)>, BatchError> = bundle
        .composites
        .par_iter()
        .map(|c| {
            let composite = batch::composite_for(
                &c.members,
                bundle.default_member.as_deref(),
                interner.clone(),
                target,
            )?;
            bar.inc(1);
            Ok((c.name.clone(), composite.report()))
        })
        .collect();
    bar.finish_and_clear();
    let results = results?;
    let worst = results
        .iter()
        .map(|(_, r)| r.state)
        .max_by_key(|s| match s {
            State::Ok => 0,
            State::Conflict => 1,
            State::Invalid => 2,
        });
    match format {
        OutputFormat::Json => {
            let composites: Vec<serde_json::Value> = results
                .iter()
                .map(|(name, r)| {
                    let mut v = serde_json::to_value(r).unwrap_or_default();
                    if let Some(o) = v.as_object_mut() {
                        o.insert("name".into(), name.clone().into());
                    }
                    v
                })
                .collect();
            // Every state any composite is in: a member error somewhere and
            // a conflict elsewhere are both said.
            let states = State::all(
                results
                    .iter()
                    .any(|(_, r)| r.states.contains(&State::Invalid)),
                results
                    .iter()
                    .any(|(_, r)| r.states.contains(&State::Conflict)),
            );
            let doc = serde_json::json!({
                "state": worst.unwrap_or(State::Ok),
                "states": states,
                "composites": composites,
            });
            println!("{}", serde_json::to_string_pretty(&doc).unwrap_or_default());
        }
        OutputFormat::Text => {
            for (name, r) in &results {
                println!("== composite '{name}'");
                print!("{}", text::render(r));
                println!();
            }
        }
    }
    let failed = results.iter().any(|(_, r)| fail_on.fails(r));
    Ok(if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

fn merge(
    inputs: &[PathBuf],
    form: rgmerge::compose::Form,
    target: &rgmerge::config::KongTarget,
) -> Result<ExitCode, BatchError> {
    let composite = batch::composite_for(inputs, None, Arc::new(Interner::new()), target)?;
    let report = composite.report();
    if report.state != State::Ok {
        eprint!("{}", text::render(&report));
        eprintln!(
            "rgmerge: no snapshot: the composite is {}",
            report.states_words()
        );
        return Ok(ExitCode::from(1));
    }
    let body = composite.assemble_form(form);
    let mut out = std::io::stdout().lock();
    for part in body.parts() {
        out.write_all(part).map_err(|e| BatchError::Io {
            path: "<stdout>".into(),
            source: e,
        })?;
    }
    let _ = out.write_all(b"\n");
    Ok(ExitCode::SUCCESS)
}

fn init_tracing() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
}

fn serve(args: ServeArgs) -> ExitCode {
    init_tracing();
    raise_open_files_limit();
    rgmerge::metrics::install();
    let fail = |msg: String| {
        eprintln!("rgmerge serve: {msg}");
        ExitCode::from(2)
    };
    let kong = match args.kong.target() {
        Ok(t) => t,
        Err(e) => return fail(e.to_string()),
    };
    let settings = rgmerge::registry::Settings {
        kong,
        max_groups: args.max_groups,
        active_window_ms: args.active_window_secs.saturating_mul(1000),
        snapshot_history: usize::try_from(args.snapshot_history)
            .unwrap_or(rgmerge::registry::DEFAULT_SNAPSHOT_HISTORY),
    };
    let audit = rgmerge::engine::AuditOptions {
        max_file_bytes: args.audit_max_bytes,
        max_entries: args.audit_max_entries.max(1),
    };
    let started = match &args.store {
        Some(url) => rgmerge::store::postgres::PgStore::open(url)
            .map_err(|e| e.to_string())
            .and_then(|s| {
                rgmerge::engine::Engine::start_postgres(s, settings, audit)
                    .map_err(|e| e.to_string())
            }),
        None => rgmerge::store::Store::open(&args.data_dir)
            .map_err(|e| e.to_string())
            .and_then(|s| {
                rgmerge::engine::Engine::start_with(Some(s), settings, audit)
                    .map_err(|e| e.to_string())
            }),
    };
    let engine = match started {
        Ok(e) => e,
        Err(e) => return fail(e),
    };
    // Start-up read the whole store through buffers and a page cache that
    // are dropped now: give that memory back to the system at once rather
    // than keep it mapped (the daemon's allocator is mimalloc, `main.rs`).
    // SAFETY: mi_collect has no preconditions.
    unsafe { libmimalloc_sys::mi_collect(true) };
    // `*.cp.example.com` and `CP.example.com` name the same domain: normalized once.
    let cluster_domain = args
        .cluster_domain
        .as_deref()
        .map(|d| d.trim().trim_start_matches("*.").to_ascii_lowercase());
    let api = match args.api_listen {
        None => None,
        Some(addr) => {
            let tls = match (&args.api_cert, &args.api_cert_key) {
                (Some(c), Some(k)) => match (std::fs::read(c), std::fs::read(k)) {
                    (Ok(c), Ok(k)) => Some((c, k)),
                    (Err(e), _) => return fail(format!("--api-cert {}: {e}", c.display())),
                    (_, Err(e)) => return fail(format!("--api-cert-key {}: {e}", k.display())),
                },
                _ => None,
            };
            Some(rgmerge::server::ApiListen {
                addr,
                tls,
                rate_limit: args.api_rate_limit.max(1),
            })
        }
    };
    let opts = rgmerge::server::ServeOptions {
        socket: args
            .socket
            .unwrap_or_else(|| args.data_dir.join("rgmerge.sock")),
        max_body_bytes: args.max_body_bytes,
        max_in_flight: args.max_in_flight.max(1),
        max_wait: std::time::Duration::from_secs(args.max_wait_secs),
        max_connections: args.max_connections.max(1),
        timeouts: rgmerge::server::Timeouts {
            header_read: std::time::Duration::from_secs(args.header_read_timeout_secs.max(1)),
            body_read: std::time::Duration::from_secs(args.body_read_timeout_secs.max(1)),
            idle: std::time::Duration::from_secs(args.idle_timeout_secs.max(1)),
        },
        http: args.http,
        api,
        cluster: cluster_domain
            .clone()
            .zip(args.cluster_listen)
            .map(|(domain, listen)| rgmerge::server::ClusterEndpoint {
                domain,
                port: args.cluster_public_port.unwrap_or(listen.port()),
            }),
    };
    let cluster = match (
        &args.cluster_listen,
        &args.cluster_cert,
        &args.cluster_cert_key,
        cluster_domain,
    ) {
        (Some(listen), Some(cert), Some(key), Some(domain)) => {
            let read = |p: &PathBuf, flag: &str| {
                std::fs::read(p).map_err(|e| format!("{flag} {}: {e}", p.display()))
            };
            let (cert_pem, key_pem) = match (
                read(cert, "--cluster-cert"),
                read(key, "--cluster-cert-key"),
            ) {
                (Ok(c), Ok(k)) => (c, k),
                (Err(e), _) | (_, Err(e)) => return fail(e),
            };
            Some(rgmerge::cluster::ClusterOptions {
                listen: *listen,
                cert_pem,
                key_pem,
                domain,
                limits: rgmerge::cluster::listener::Limits {
                    handshake_timeout: std::time::Duration::from_secs(
                        args.cluster_handshake_timeout_secs.max(1),
                    ),
                    max_connections: args.cluster_max_connections.max(1),
                },
                kong_version: rgmerge::cluster::compat::KongVersion {
                    major: 3,
                    minor: 10,
                    patch: 0,
                },
            })
        }
        _ => None,
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => return fail(format!("can't start the async runtime: {e}")),
    };
    let served = runtime.block_on(async move {
        // Bound after the engine restored every group's served snapshot, so
        // nothing less is ever sent; a bad certificate or address fails the start.
        let cluster = match cluster {
            Some(c) => {
                let bound = rgmerge::cluster::Cluster::bind(engine.clone(), c)
                    .await
                    .map_err(|e| e.to_string())?;
                if let Ok(addr) = bound.local_addr() {
                    tracing::info!(%addr, "cluster endpoint for Kong data planes");
                }
                Some(bound)
            }
            None => None,
        };
        rgmerge::server::serve_with(engine, opts, move |stop| async move {
            if let Some(c) = cluster {
                c.run(stop).await;
            }
        })
        .await
        .map_err(|e| e.to_string())
    });
    match served {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(e),
    }
}

/// Every data plane on the cluster endpoint holds a connection, and every
/// sidecar one on the socket: take the hard limit on open files, as servers do.
fn raise_open_files_limit() {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read and write the struct given.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < lim.rlim_max {
            lim.rlim_cur = lim.rlim_max;
            let _ = libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}

#[derive(clap::Args, Debug, Clone)]
struct GenArgs {
    /// Directory to write the member configs to (created if missing).
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// Number of member configs.
    #[arg(long, default_value_t = 8)]
    members: usize,
    /// Entities per member, nested ones included.
    #[arg(long, default_value_t = 1000)]
    entities: usize,
    /// Share (0..=1) of services and consumers planted as conflicts between
    /// member 2k and member 2k+1.
    #[arg(long, default_value_t = 0.0)]
    conflicts: f64,
    /// The same seed and sizes give byte-identical files.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Written as decK writes them: pretty JSON, or YAML.
    #[arg(long, value_enum, default_value_t = GenFormatArg::Json)]
    format: GenFormatArg,
    /// `mixed`: realistic members (services, routes, plugins, consumers, …);
    /// `key-auth-consumers`: only tiny consumers, each with one key-auth
    /// credential (`--entities` counts both, so 2,000,000 is a million consumers).
    #[arg(long, value_enum, default_value_t = GenShapeArg::Mixed)]
    shape: GenShapeArg,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum GenShapeArg {
    Mixed,
    KeyAuthConsumers,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum GenFormatArg {
    Json,
    Yaml,
}

#[derive(clap::Args, Debug, Clone)]
struct BenchArgs {
    /// Members in the composite.
    #[arg(long, default_value_t = 256)]
    members: usize,
    /// Entities per member, nested ones included.
    #[arg(long, default_value_t = 1000)]
    entities: usize,
    /// Share of planted conflicts (see `rgmerge gen`).
    #[arg(long, default_value_t = 0.0)]
    conflicts: f64,
    /// Seed of the generated members (see `rgmerge gen`).
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    json: bool,
    /// Start-ups to time (store written once, then opened and restored this
    /// many times; the median is reported). 0 skips the start-up figures.
    #[arg(long, default_value_t = 3)]
    startup_runs: usize,
    /// Tiny consumers (each with one key-auth credential) in the dense file
    /// whose `rgmerge validate` peak memory is measured. 0 skips it.
    #[arg(long, default_value_t = 1_000_000)]
    dense_consumers: usize,
    /// Skip the peak-memory figures of `rgmerge validate` (child processes).
    #[arg(long)]
    no_validate_memory: bool,
    /// Also measure durable writes/s on this PostgreSQL database
    /// (`postgres://…`); the benchmark makes its own groups there.
    #[arg(long, value_name = "URL")]
    postgres: Option<String>,
    /// Concurrent writers for `--postgres`, each on its own group.
    #[arg(long, default_value_t = 32)]
    postgres_writers: usize,
    /// Seconds the `--postgres` writers write.
    #[arg(long, default_value_t = 10.0)]
    postgres_seconds: f64,
}

#[derive(clap::Args, Debug, Clone)]
struct SidecarArgs {
    /// The daemon's socket. Repeat it for daemons sharing one PostgreSQL
    /// store: the first that answers is used, the next when it stops.
    #[arg(long = "socket", default_value = "rgmerge-data/rgmerge.sock")]
    sockets: Vec<PathBuf>,
    /// The group (control plane) to follow: its id or name.
    #[arg(long)]
    group: String,
    /// Where to write the snapshot (Kong's `declarative_config`).
    #[arg(long)]
    out: PathBuf,
    /// Also POST each snapshot to this Kong admin API (e.g. http://127.0.0.1:8001).
    #[arg(long)]
    kong_admin: Option<String>,
    /// This node's id [default: the hostname].
    #[arg(long)]
    node_id: Option<String>,
    /// Hostname reported in heartbeats [default: this machine's].
    #[arg(long)]
    hostname: Option<String>,
    /// Seconds between heartbeats, and the long-poll length.
    #[arg(long, default_value_t = 10)]
    interval: u64,
    /// Longest wait for Kong's admin API to answer, in seconds.
    #[arg(long, default_value_t = 30)]
    kong_timeout_secs: u64,
    /// A bearer token of a team with the `node` role on the group.
    #[arg(long, env = "RGMERGE_TOKEN", hide_env_values = true)]
    token: Option<String>,
}

impl From<GenArgs> for rgmerge::synth::GenOptions {
    fn from(a: GenArgs) -> Self {
        rgmerge::synth::GenOptions {
            out: a.out,
            members: a.members,
            entities: a.entities,
            conflicts: a.conflicts,
            seed: a.seed,
            format: match a.format {
                GenFormatArg::Json => rgmerge::synth::GenFormat::Json,
                GenFormatArg::Yaml => rgmerge::synth::GenFormat::Yaml,
            },
            shape: match a.shape {
                GenShapeArg::Mixed => rgmerge::synth::GenShape::Mixed,
                GenShapeArg::KeyAuthConsumers => rgmerge::synth::GenShape::KeyAuthConsumers,
            },
        }
    }
}

impl From<BenchArgs> for rgmerge::bench::BenchOptions {
    fn from(a: BenchArgs) -> Self {
        rgmerge::bench::BenchOptions {
            members: a.members,
            entities: a.entities,
            conflicts: a.conflicts,
            seed: a.seed,
            json: a.json,
            startup_runs: a.startup_runs,
            dense_consumers: a.dense_consumers,
            validate_exe: if a.no_validate_memory {
                None
            } else {
                std::env::current_exe().ok()
            },
            postgres: a.postgres,
            postgres_writers: a.postgres_writers,
            postgres_seconds: a.postgres_seconds,
        }
    }
}

impl From<SidecarArgs> for rgmerge::sidecar::SidecarOptions {
    fn from(a: SidecarArgs) -> Self {
        rgmerge::sidecar::SidecarOptions {
            sockets: a.sockets,
            group: a.group,
            out: a.out,
            kong_admin: a.kong_admin,
            node_id: a.node_id,
            hostname: a.hostname,
            interval: a.interval,
            kong_timeout: a.kong_timeout_secs,
            token: a.token,
        }
    }
}
