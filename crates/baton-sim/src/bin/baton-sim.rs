//! `baton-sim`: simulated iOS devices from the command line — enroll and drive a fleet, inspect
//! one device, and run the load benchmark against an MDM server.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use baton_sim::bench::{self, ScenarioReport};
use baton_sim::{
    AdminApi, AppInstallOutcome, AppStoreAccount, DeviceOutcome, Fleet, FleetEnrollment,
    MessageEncoding, NotNowPolicy, Pacing, ServerTrust, SignatureDigest, SimOptions, Transport,
    VppLicences, origin_of,
};
use clap::{Args, Parser, Subcommand, ValueEnum};

/// Simulated iOS devices for Baton (or any MDM server).
#[derive(Debug, Parser)]
#[command(name = "baton-sim", version, about)]
struct Cli {
    /// Pin the server's TLS certificate (PEM); without it any server certificate is accepted.
    #[arg(long, global = true, value_name = "PEM")]
    server_cert: Option<PathBuf>,
    /// No progress bars.
    #[arg(long, global = true)]
    no_progress: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Enroll, drive and list a fleet saved in a directory.
    #[command(subcommand)]
    Fleet(FleetCommand),
    /// Inspect or drive one device of a fleet.
    #[command(subcommand)]
    Device(DeviceCommand),
    /// Run a load scenario and print (and save) the results.
    Bench(BenchArgs),
}

#[derive(Debug, Args)]
struct DirArg {
    /// Fleet directory.
    #[arg(long, default_value = "./sim-fleet", value_name = "DIR")]
    dir: PathBuf,
}

#[derive(Debug, Subcommand)]
enum FleetCommand {
    /// Enroll N new devices (the enrollment profile at --profile-url, or /mdm/enroll if served
    /// without a token, else SCEP at /scep with --challenge).
    Enroll(EnrollArgs),
    /// Every device connects and processes its commands until its queue is empty.
    Connect {
        #[command(flatten)]
        dir: DirArg,
        /// Devices connecting at once.
        #[arg(long, default_value_t = 64)]
        concurrency: usize,
    },
    /// List the devices.
    List {
        #[command(flatten)]
        dir: DirArg,
    },
}

#[derive(Debug, Args)]
struct EnrollArgs {
    /// Server URL (`https://host:port`).
    #[arg(long)]
    server: String,
    /// Devices to add.
    #[arg(long, default_value_t = 1)]
    count: usize,
    #[command(flatten)]
    dir: DirArg,
    /// Enrollment profile URL: a token's enrollment URL with enough uses (`baton
    /// enrollment-token create --uses N`) [default: `<server>/mdm/enroll` when it is served
    /// without a token].
    #[arg(long)]
    profile_url: Option<String>,
    /// SCEP challenge for enrollment without a profile.
    #[arg(long, env = "BATON_SIM_SCEP_CHALLENGE", hide_env_values = true)]
    challenge: Option<String>,
    /// Enrollments in flight at once.
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    #[command(flatten)]
    cms: CmsArgs,
    #[command(flatten)]
    behaviour: BehaviourArgs,
    /// Act as Shared iPads.
    #[arg(long)]
    shared_ipad: bool,
    #[command(flatten)]
    apps: AppArgs,
    #[command(flatten)]
    ios_codes: IosCodeArgs,
    /// The old, lenient device facts: Authenticate with DeviceName/Model/ModelName, no channel
    /// or supervision scope, every Settings item acknowledged, UserList with FullName.
    #[arg(long)]
    lenient_device_facts: bool,
}

/// How enrolled devices install apps: like iOS unless told otherwise.
#[derive(Debug, Args)]
struct AppArgs {
    /// What the App Store installs for a store id: `ID=BUNDLE` (repeatable). The devices hold
    /// VPP licences for these ids.
    #[arg(long = "app-store-map", value_name = "ID=BUNDLE", value_parser = parse_store_entry)]
    app_store_map: Vec<(String, String)>,
    /// An Apple ID is signed in: PurchaseMethod 0 installs (default: the device refuses them
    /// with 12040, as a device with nobody's Apple ID does when the prompt is declined).
    #[arg(long)]
    apple_id_signed_in: bool,
    /// VPP licences (PurchaseMethod 1): for the `--app-store-map` ids, every id, or none.
    #[arg(long, value_enum, default_value_t = VppArg::AppStoreMap)]
    vpp_licences: VppArg,
    /// How installs end: managed, failed or user-rejected.
    #[arg(long, value_enum, default_value_t = OutcomeArg::Managed)]
    app_install_outcome: OutcomeArg,
    /// The old lenient app installs: any store id with any PurchaseMethod, Managed at the next
    /// session.
    #[arg(long)]
    lenient_apps: bool,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum VppArg {
    AppStoreMap,
    All,
    None,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum OutcomeArg {
    Managed,
    Failed,
    UserRejected,
}

fn parse_store_entry(s: &str) -> Result<(String, String), String> {
    let (id, bundle) = s
        .split_once('=')
        .ok_or_else(|| format!("{s:?} is not ID=BUNDLE"))?;
    id.parse::<u64>()
        .map_err(|_| format!("{id:?} is not a store id"))?;
    Ok((id.to_owned(), bundle.to_owned()))
}

impl AppArgs {
    fn apply(&self, o: &mut SimOptions) {
        o.app_store.extend(self.app_store_map.iter().cloned());
        if self.apple_id_signed_in {
            o.app_store_account = AppStoreAccount::SignedIn;
        }
        o.vpp_licences = match self.vpp_licences {
            VppArg::AppStoreMap => VppLicences::AppStoreMap,
            VppArg::All => VppLicences::All,
            VppArg::None => VppLicences::Missing,
        };
        o.app_install_outcome = match self.app_install_outcome {
            OutcomeArg::Managed => AppInstallOutcome::Managed,
            OutcomeArg::Failed => AppInstallOutcome::Failed,
            OutcomeArg::UserRejected => AppInstallOutcome::UserRejected,
        };
        if self.lenient_apps {
            o.lenient_apps();
        }
    }
}

/// The MDM profile commands and refusal codes, iOS's unless told otherwise.
#[derive(Debug, Args)]
struct IosCodeArgs {
    /// Act as supervised devices (supervised-only commands run, RemoveProfile removes any
    /// profile).
    #[arg(long)]
    supervised: bool,
    /// Refuse InstallProfile/RemoveProfile of the MDM profile, as the old simulator did
    /// (default: iOS replaces it when the invariant fields match, else 12012; removal unenrolls).
    #[arg(long)]
    refuse_mdm_profile_commands: bool,
    /// The old simulator's refusal codes (CommandFormatError for unknown request types, 12021
    /// for any undecodable command, 12075/12070) instead of iOS's.
    #[arg(long)]
    lenient_refusal_codes: bool,
    /// Refuse the removal of an app (bundle id) or profile (PayloadIdentifier) with an iOS
    /// error code, e.g. `com.example.notes=12130` (repeatable): the item stays installed.
    #[arg(long = "refuse-removal", value_name = "ID=CODE", value_parser = parse_refusal)]
    refuse_removal: Vec<(String, i64)>,
}

fn parse_refusal(s: &str) -> Result<(String, i64), String> {
    let (id, code) = s
        .split_once('=')
        .ok_or_else(|| format!("{s:?} is not ID=CODE"))?;
    let code = code
        .parse::<i64>()
        .map_err(|_| format!("{code:?} is not an error code"))?;
    if id.is_empty() {
        return Err(format!("{s:?} has no identifier"));
    }
    Ok((id.to_owned(), code))
}

impl IosCodeArgs {
    fn apply(&self, o: &mut SimOptions) {
        o.supervised |= self.supervised;
        if self.refuse_mdm_profile_commands {
            o.mdm_profile_commands = baton_sim::MdmProfileCommands::Refuse;
        }
        if self.lenient_refusal_codes {
            o.refusal_codes = baton_sim::RefusalCodes::Lenient;
        }
        o.refuse_removals
            .extend(self.refuse_removal.iter().cloned());
    }
}

/// When devices answer NotNow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum NotNowArg {
    /// By lock state, as iOS (passcode-locked / before first unlock).
    Ios,
    /// The simulator's old set, whenever locked.
    Locked,
    /// Never.
    Never,
}

/// How devices behave beyond CMS; the iOS-faithful choice is the default, delays and drops
/// are off unless asked for.
#[derive(Debug, Args)]
struct BehaviourArgs {
    /// When devices answer NotNow.
    #[arg(long, value_enum, default_value = "ios")]
    not_now: NotNowArg,
    /// Do not poll by themselves when unlocked after a connection that ended on NotNow.
    #[arg(long)]
    no_poll_after_not_now: bool,
    /// Forget a result whose reply was lost (open the next connection with Idle, not with the
    /// result again).
    #[arg(long)]
    no_resend_lost_result: bool,
    /// Time to work on each command, milliseconds: `N` or `MIN-MAX` (e.g. `300-2000`).
    #[arg(long, value_name = "MS[-MS]")]
    command_delay_ms: Option<String>,
    /// Time InstallApplication takes to answer (the App Store lookup), milliseconds.
    #[arg(long, default_value_t = 0)]
    app_install_delay_ms: u64,
    /// Chance, per thousand results sent, that the connection drops and the reply is lost.
    #[arg(long, default_value_t = 0)]
    drop_per_mille: u16,
    /// Seed of the delays and drops (the same seed gives the same run).
    #[arg(long, default_value_t = 1)]
    pacing_seed: u64,
}

impl BehaviourArgs {
    fn pacing(&self) -> anyhow::Result<Pacing> {
        let (min, max) = match self.command_delay_ms.as_deref() {
            None => (0, 0),
            Some(text) => {
                let parse = |t: &str| {
                    t.trim()
                        .parse::<u64>()
                        .with_context(|| format!("--command-delay-ms {text:?}: not milliseconds"))
                };
                match text.split_once('-') {
                    Some((a, b)) => (parse(a)?, parse(b)?),
                    None => (parse(text)?, parse(text)?),
                }
            }
        };
        if min > max {
            bail!("--command-delay-ms: {min} is more than {max}");
        }
        if self.drop_per_mille > 1000 {
            bail!("--drop-per-mille is at most 1000");
        }
        Ok(Pacing {
            command_delay_min_ms: min,
            command_delay_max_ms: max,
            install_application_delay_ms: self.app_install_delay_ms,
            drop_per_mille: self.drop_per_mille,
            seed: self.pacing_seed,
        })
    }

    fn apply(&self, o: &mut SimOptions) -> anyhow::Result<()> {
        o.not_now = match self.not_now {
            NotNowArg::Ios => NotNowPolicy::IosLockState,
            NotNowArg::Locked => NotNowPolicy::LockedUntilFirstUnlock,
            NotNowArg::Never => NotNowPolicy::Never,
        };
        o.poll_after_not_now = !self.no_poll_after_not_now;
        o.resend_lost_result = !self.no_resend_lost_result;
        o.pacing = self.pacing()?;
        Ok(())
    }
}

/// How enrolled devices sign and encode, iOS's way unless told otherwise.
#[derive(Debug, Args)]
struct CmsArgs {
    /// Sign `Mdm-Signature` with SHA-256 (default SHA-1, like iOS).
    #[arg(long)]
    sha256: bool,
    /// Send strict DER (default: BER with indefinite lengths, as iOS streams its
    /// `Mdm-Signature` and SCEP request).
    #[arg(long)]
    der: bool,
}

impl CmsArgs {
    fn encoding(&self) -> MessageEncoding {
        if self.der {
            MessageEncoding::Der
        } else {
            MessageEncoding::IosBer
        }
    }
}

#[derive(Debug, Subcommand)]
enum DeviceCommand {
    /// Print a device's saved state as JSON (identity, push token, inventory; never the key).
    Show {
        /// UDID.
        udid: String,
        #[command(flatten)]
        dir: DirArg,
    },
    /// The device connects and processes its commands.
    Connect {
        /// UDID.
        udid: String,
        #[command(flatten)]
        dir: DirArg,
    },
    /// Print the URL a web clip opens (the first one, or the one with `--label`).
    TapWebClip {
        /// UDID.
        udid: String,
        /// The clip's label.
        #[arg(long)]
        label: Option<String>,
        #[command(flatten)]
        dir: DirArg,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Scenario {
    Checkin,
    CommandCycle,
    Enroll,
    SignInToReady,
    ShiftChange,
}

#[derive(Debug, Args)]
struct BenchArgs {
    /// Server URL (`https://host:port` or `http://host:port`).
    #[arg(long)]
    server: String,
    /// Scenario to run.
    #[arg(long, value_enum)]
    scenario: Scenario,
    /// Fleet directory (enrolled first, up to --count devices, when it has fewer).
    #[command(flatten)]
    dir: DirArg,
    /// Devices (checkin, command-cycle) or enrollments (enroll).
    #[arg(long, default_value_t = 1000)]
    count: usize,
    /// Keep-alive connections (checkin) or operations in flight (others; for the sign-in
    /// scenarios: people signing in or out at once).
    #[arg(long, visible_alias = "concurrency", default_value_t = 64)]
    connections: usize,
    /// Profile items per person (sign-in-to-ready: 50, shift-change: 5).
    #[arg(long)]
    profiles: Option<usize>,
    /// App items per person (sign-in-to-ready: 30, shift-change: 2).
    #[arg(long)]
    apps: Option<usize>,
    /// Give up on one device's sign-in or sign-out after this many seconds.
    #[arg(long, default_value_t = 120)]
    device_timeout: u64,
    /// Label of the server's sign-in web clip.
    #[arg(long, default_value = "Sign in")]
    sign_in_label: String,
    /// Label of the server's sign-out web clip.
    #[arg(long, default_value = "Sign out")]
    sign_out_label: String,
    /// How long the checkin scenario sends, seconds.
    #[arg(long, default_value_t = 20)]
    duration: u64,
    /// Stop the checkin scenario after this many requests.
    #[arg(long)]
    requests: Option<u64>,
    /// Admin API key (command-cycle, sign-in-to-ready, shift-change).
    #[arg(long, env = "BATON_API_KEY", hide_env_values = true)]
    api_key: Option<String>,
    /// The command for command-cycle, in the admin API's JSON form.
    #[arg(long, default_value = r#"{"request_type":"ProfileList"}"#)]
    command: String,
    /// SCEP challenge (enrollment of the fleet, enroll scenario).
    #[arg(long, env = "BATON_SIM_SCEP_CHALLENGE", hide_env_values = true)]
    challenge: Option<String>,
    /// The server's PID, to report its CPU per request.
    #[arg(long)]
    server_pid: Option<u32>,
    #[command(flatten)]
    cms: CmsArgs,
    /// Device behaviour (for devices the run enrolls; the delay and drop flags apply to every
    /// device of the run and are saved with the fleet).
    #[command(flatten)]
    behaviour: BehaviourArgs,
    /// Where to write the JSON results (default `bench-<scenario>.json`).
    #[arg(long)]
    out: Option<PathBuf>,
}

fn main() -> ExitCode {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn transport(cli: &Cli) -> anyhow::Result<(Transport, ServerTrust)> {
    let trust = match &cli.server_cert {
        None => ServerTrust::AcceptAny,
        Some(path) => {
            let pem = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
            let cert = openssl::x509::X509::from_pem(&pem)
                .with_context(|| format!("{} is not a PEM certificate", path.display()))?;
            ServerTrust::Pinned(cert.to_der()?)
        }
    };
    Ok((Transport::new(&trust)?, trust))
}

fn options(
    cms: &CmsArgs,
    behaviour: &BehaviourArgs,
    shared_ipad: bool,
) -> anyhow::Result<SimOptions> {
    let mut o = SimOptions::default();
    behaviour.apply(&mut o)?;
    if cms.sha256 {
        o.digest = SignatureDigest::Sha256;
    }
    o.encoding = cms.encoding();
    o.shared_ipad = shared_ipad;
    Ok(o)
}

fn summarize<T>(what: &str, outcomes: &[DeviceOutcome<T>]) -> usize {
    let failed: Vec<_> = outcomes.iter().filter(|o| o.result.is_err()).collect();
    let mut times: Vec<f64> = outcomes.iter().map(|o| o.elapsed.as_secs_f64()).collect();
    times.sort_by(f64::total_cmp);
    let p = |q: f64| {
        times
            .get(((q * times.len() as f64).ceil() as usize).saturating_sub(1))
            .copied()
            .unwrap_or(0.0)
    };
    println!(
        "{what}: {} ok, {} failed; per device p50 {:.3} s, p99 {:.3} s, max {:.3} s",
        outcomes.len() - failed.len(),
        failed.len(),
        p(0.5),
        p(0.99),
        times.last().copied().unwrap_or(0.0)
    );
    for o in failed.iter().take(5) {
        if let Err(e) = &o.result {
            println!("  {}: {e}", o.udid);
        }
    }
    failed.len()
}

async fn enroll_up_to(
    fleet: &mut Fleet,
    server: &str,
    count: usize,
    challenge: Option<String>,
    opts: SimOptions,
    progress: bool,
) -> anyhow::Result<()> {
    let missing = count.saturating_sub(fleet.devices().len());
    if missing == 0 {
        return Ok(());
    }
    println!("enrolling {missing} devices into the fleet...");
    let outcomes = fleet
        .enroll(
            &FleetEnrollment {
                server: server.to_owned(),
                profile_url: None,
                challenge,
                count: missing,
                concurrency: 16,
                options: opts,
            },
            progress,
        )
        .await?;
    if summarize("enroll", &outcomes) > 0 {
        bail!("some enrollments failed");
    }
    Ok(())
}

/// The fleet in `--dir` for `origin`, enrolled up to `--count` devices.
async fn open_fleet(
    args: &BenchArgs,
    origin: &str,
    transport: &Transport,
    progress: bool,
) -> anyhow::Result<Fleet> {
    let mut fleet = Fleet::open(&args.dir.dir, Some(origin), transport.clone())?;
    if fleet.server() != origin {
        bail!(
            "fleet {} belongs to {}, not {origin}",
            args.dir.dir.display(),
            fleet.server()
        );
    }
    enroll_up_to(
        &mut fleet,
        origin,
        args.count,
        args.challenge.clone(),
        options(&args.cms, &args.behaviour, false)?,
        progress,
    )
    .await?;
    let pacing = args.behaviour.pacing()?;
    if !pacing.is_off() {
        for device in fleet.devices_mut() {
            device.set_pacing(pacing.clone());
        }
    }
    Ok(fleet)
}

fn save_report(report: &ScenarioReport, out: Option<&Path>) -> anyhow::Result<PathBuf> {
    let path = out.map_or_else(
        || PathBuf::from(format!("bench-{}.json", report.scenario)),
        Path::to_path_buf,
    );
    std::fs::write(&path, serde_json::to_vec_pretty(report)?)
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let (transport, trust) = transport(&cli)?;
    let progress = !cli.no_progress;
    match cli.command {
        Command::Fleet(FleetCommand::Enroll(args)) => {
            let mut fleet = Fleet::open(&args.dir.dir, Some(&args.server), transport)?;
            let outcomes = fleet
                .enroll(
                    &FleetEnrollment {
                        server: args.server.clone(),
                        profile_url: args.profile_url,
                        challenge: args.challenge,
                        count: args.count,
                        concurrency: args.concurrency,
                        options: {
                            let mut o = options(&args.cms, &args.behaviour, args.shared_ipad)?;
                            args.apps.apply(&mut o);
                            args.ios_codes.apply(&mut o);
                            if args.lenient_device_facts {
                                o = o.lenient_device_facts();
                            }
                            o
                        },
                    },
                    progress,
                )
                .await?;
            let failed = summarize("enroll", &outcomes);
            println!(
                "fleet {} now has {} devices",
                args.dir.dir.display(),
                fleet.devices().len()
            );
            Ok(if failed == 0 {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        Command::Fleet(FleetCommand::Connect { dir, concurrency }) => {
            let mut fleet = Fleet::open(&dir.dir, None, transport)?;
            let outcomes = fleet.connect_all(concurrency, progress).await;
            fleet.save()?;
            let commands: usize = outcomes
                .iter()
                .filter_map(|o| o.result.as_ref().ok())
                .map(Vec::len)
                .sum();
            let failed = summarize("connect", &outcomes);
            println!("{commands} commands processed");
            Ok(if failed == 0 {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        Command::Fleet(FleetCommand::List { dir }) => {
            let fleet = Fleet::open(&dir.dir, None, transport)?;
            println!("server {}", fleet.server());
            println!(
                "{:<26} {:>8} {:>5} {:>5} {:>5}",
                "UDID", "profiles", "apps", "clips", "certs"
            );
            for d in fleet.devices() {
                println!(
                    "{:<26} {:>8} {:>5} {:>5} {:>5}",
                    d.udid(),
                    d.profiles().len(),
                    d.apps().len(),
                    d.web_clips().len(),
                    d.certificates().len()
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Device(DeviceCommand::Show { udid, dir }) => {
            let fleet = Fleet::open(&dir.dir, None, transport)?;
            let Some(d) = fleet.devices().iter().find(|d| d.udid() == udid) else {
                bail!("no device {udid} in {}", dir.dir.display());
            };
            let mut record = serde_json::to_value(d.record())?;
            record["push_magic"] = serde_json::Value::String("<redacted>".into());
            println!("{}", serde_json::to_string_pretty(&record)?);
            Ok(ExitCode::SUCCESS)
        }
        Command::Device(DeviceCommand::Connect { udid, dir }) => {
            let mut fleet = Fleet::open(&dir.dir, None, transport)?;
            let Some(d) = fleet.device_mut(&udid) else {
                bail!("no device {udid} in {}", dir.dir.display());
            };
            let processed = d.connect_until_idle().await?;
            for p in &processed {
                println!("{} {} -> {}", p.uuid, p.request_type, p.status);
                for item in p.error_chain.iter().flatten() {
                    println!(
                        "    {} {}: {}",
                        item.domain,
                        item.code,
                        item.localized_description.as_deref().unwrap_or_default()
                    );
                }
            }
            fleet.save()?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Device(DeviceCommand::TapWebClip { udid, label, dir }) => {
            let fleet = Fleet::open(&dir.dir, None, transport)?;
            let Some(d) = fleet.devices().iter().find(|d| d.udid() == udid) else {
                bail!("no device {udid} in {}", dir.dir.display());
            };
            match d.tap_web_clip(label.as_deref()) {
                Some(url) => {
                    println!("{url}");
                    Ok(ExitCode::SUCCESS)
                }
                None => {
                    eprintln!("no such web clip on {udid}");
                    Ok(ExitCode::FAILURE)
                }
            }
        }
        Command::Bench(args) => bench_command(args, transport, trust, progress).await,
    }
}

async fn bench_command(
    args: BenchArgs,
    transport: Transport,
    trust: ServerTrust,
    progress: bool,
) -> anyhow::Result<ExitCode> {
    let origin = origin_of(&args.server)?;
    let report = match args.scenario {
        Scenario::SignInToReady | Scenario::ShiftChange => {
            let Some(key) = args.api_key.as_deref() else {
                bail!("the sign-in scenarios need --api-key (or BATON_API_KEY)");
            };
            let shift = args.scenario == Scenario::ShiftChange;
            let mut fleet = open_fleet(&args, &origin, &transport, progress).await?;
            let admin = AdminApi::new(&origin, key, transport.clone());
            let mut flow = bench::sign_in_flow::FlowSettings::new(&origin)?;
            flow.sign_in_label = args.sign_in_label.clone();
            flow.sign_out_label = args.sign_out_label.clone();
            flow.timeout = Duration::from_secs(args.device_timeout);
            let settings = bench::sign_in_to_ready::SignInBench {
                profiles: args.profiles.unwrap_or(if shift { 5 } else { 50 }),
                apps: args.apps.unwrap_or(if shift { 2 } else { 30 }),
                concurrency: args.connections,
                server_pid: args.server_pid,
                progress,
                flow,
                devices: Some(args.count),
            };
            let report = if shift {
                bench::shift_change::run(&mut fleet, &admin, &settings).await
            } else {
                bench::sign_in_to_ready::run(&mut fleet, &admin, &settings).await
            };
            fleet.save()?;
            report?
        }
        Scenario::Enroll => {
            bench::enroll::run(
                &transport,
                &bench::enroll::EnrollBench {
                    server: origin.clone(),
                    scep_url: None,
                    challenge: args.challenge.clone(),
                    count: args.count,
                    concurrency: args.connections,
                    server_pid: args.server_pid,
                    progress,
                    encoding: args.cms.encoding(),
                },
            )
            .await?
        }
        Scenario::Checkin | Scenario::CommandCycle => {
            let mut fleet = open_fleet(&args, &origin, &transport, progress).await?;
            if args.scenario == Scenario::Checkin {
                bench::checkin::run(
                    &fleet,
                    &bench::checkin::CheckinBench {
                        connections: args.connections,
                        duration: Duration::from_secs(args.duration),
                        max_requests: args.requests,
                        trust,
                        server_pid: args.server_pid,
                        progress,
                    },
                )
                .await?
            } else {
                let Some(key) = args.api_key.as_deref() else {
                    bail!("command-cycle needs --api-key (or BATON_API_KEY)");
                };
                let command: serde_json::Value =
                    serde_json::from_str(&args.command).context("--command is not JSON")?;
                let admin = AdminApi::new(&origin, key, transport.clone());
                let report = bench::command_cycle::run(
                    &mut fleet,
                    &admin,
                    &bench::command_cycle::CommandCycleBench {
                        command,
                        concurrency: args.connections,
                        server_pid: args.server_pid,
                        progress,
                    },
                )
                .await?;
                fleet.save()?;
                report
            }
        }
    };
    println!("{}", report.table());
    let path = save_report(&report, args.out.as_deref())?;
    println!("results written to {}", path.display());
    Ok(if report.status == "ok" {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(2)
    })
}
