//! `baton backup` and `baton restore`: a copy of a data directory, and that copy put back.
//!
//! A backup is a directory: `store.jsonl` (every row of the store, [`SledStore::export`]),
//! every other file of the data directory as it is (`ca/` with the built-in CA's key, `tls/`),
//! and `backup.json` (format, version, time, row count). It is written under a temporary name
//! and renamed when complete, so a backup that exists is whole.
//!
//! A stopped server's directory is copied under its lock ([`crate::data_lock`]), so no server
//! starts meanwhile. A running server's directory is copied by that server: `baton backup`
//! writes the target path to `<data>/backup-request` and sends the server (its pid is in the
//! lock file) SIGUSR1; the server stops serving (in-flight requests finish, background tasks
//! stop, the store is flushed), writes the backup, starts serving again on the same address
//! and writes `<data>/backup-result`. The sled store has no point-in-time snapshot, so this
//! pause is what makes the copy consistent; it lasts as long as the export (devices retry).
//!
//! `baton restore` never touches a directory a running server holds. A restore is built next to
//! the target and renamed into place; the directory it replaces is kept under
//! `<data>.replaced-<unix time>`.

use std::io::IsTerminal as _;
use std::io::{BufReader, BufWriter};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use baton_store::{SledConfig, SledStore};
use clap::Args;
use serde::{Deserialize, Serialize};

use crate::data_lock::{DataLock, LOCK_FILE};

/// The store's directory inside the data directory (as `baton serve` lays it out).
const DB_DIR: &str = baton_server::server::DB_DIR;
/// The rows of the store in a backup.
const STORE_FILE: &str = "store.jsonl";
/// The manifest of a backup.
const MANIFEST: &str = "backup.json";
/// Written by `baton backup` for a running server: the backup's target path.
const REQUEST_FILE: &str = "backup-request";
/// Written by the server when that backup is done: `{"ok": bool, "rows": n, "message": "..."}`.
const RESULT_FILE: &str = "backup-result";
/// How long `baton backup` waits for a running server's backup.
const ONLINE_WAIT: std::time::Duration = std::time::Duration::from_secs(600);
const FORMAT: &str = "baton-backup";
const VERSION: u32 = 1;

/// `baton backup`.
#[derive(Debug, Args)]
pub struct BackupArgs {
    /// The data directory, of a stopped or a running server (which pauses serving while the
    /// copy is made) [default: ./baton-data].
    #[arg(
        long,
        env = "BATON_DATA",
        value_name = "DIR",
        default_value = "./baton-data"
    )]
    data: PathBuf,
    /// Where to write the backup (a new directory; must not exist).
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
}

/// `baton restore`.
#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// A directory written by `baton backup`.
    #[arg(long, value_name = "DIR")]
    from: PathBuf,
    /// The data directory to restore into; no server may be running on it
    /// [default: ./baton-data].
    #[arg(
        long,
        env = "BATON_DATA",
        value_name = "DIR",
        default_value = "./baton-data"
    )]
    data: PathBuf,
    /// Replace a data directory that holds data (it is kept as `<data>.replaced-<unix time>`).
    #[arg(long)]
    replace: bool,
}

/// `backup.json`.
#[derive(Debug, Serialize, Deserialize)]
struct Manifest {
    format: String,
    version: u32,
    /// Unix seconds when the backup was taken.
    created_unix: u64,
    /// The `baton` version that wrote it.
    baton_version: String,
    /// Rows in `store.jsonl`.
    rows: u64,
}

/// Runs `baton backup`: exit 0 when the backup is complete, 1 otherwise.
pub fn run_backup(args: &BackupArgs) -> ExitCode {
    report("backup", backup(args))
}

/// Runs `baton restore`: exit 0 when the data directory holds the backup, 1 otherwise.
pub fn run_restore(args: &RestoreArgs) -> ExitCode {
    report("restore", restore(args))
}

fn report(what: &str, result: anyhow::Result<String>) -> ExitCode {
    match result {
        Ok(done) => {
            println!("{done}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("baton {what}: {}", crate::logging::cause_chain(&e));
            ExitCode::FAILURE
        }
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// `<parent>/<name><suffix>`.
fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(suffix);
    path.with_file_name(name)
}

fn backup(args: &BackupArgs) -> anyhow::Result<String> {
    let data = &args.data;
    if !data.join(DB_DIR).is_dir() {
        bail!("{} holds no Baton store (no {DB_DIR}/)", data.display());
    }
    if args.out.exists() {
        bail!("{} exists: give a new directory", args.out.display());
    }
    let rows = match DataLock::acquire(data, "baton backup") {
        Ok(_lock) => write_backup(data, &args.out)?,
        Err(crate::data_lock::LockError::Held { holder, .. }) => {
            backup_by_running_server(data, &args.out, &holder)?
        }
        Err(other) => return Err(other.into()),
    };
    Ok(format!(
        "backup of {} written to {} ({rows} store rows, the CA key and the other files); it \
         holds secrets (CA key, push certificate key): keep it like the data directory",
        data.display(),
        args.out.display()
    ))
}

/// `backup-result`.
#[derive(Debug, Serialize, Deserialize)]
struct BackupResult {
    ok: bool,
    /// Rows written, when ok.
    rows: u64,
    /// The error, when not ok.
    message: String,
}

/// Asks the `baton serve` holding `data` (`holder` as its lock file names it) to write the
/// backup, and waits for its answer.
fn backup_by_running_server(data: &Path, out: &Path, holder: &str) -> anyhow::Result<u64> {
    let pid: i32 = holder
        .strip_prefix("baton serve, pid ")
        .and_then(|p| p.trim().parse().ok())
        .with_context(|| {
            format!(
                "{} is in use by another Baton process ({holder}); wait for it to finish",
                data.display()
            )
        })?;
    let out = std::path::absolute(out).context("the --out path")?;
    let result_path = data.join(RESULT_FILE);
    let _ = std::fs::remove_file(&result_path);
    std::fs::write(data.join(REQUEST_FILE), out.to_string_lossy().as_bytes())
        .with_context(|| format!("cannot write {}", data.join(REQUEST_FILE).display()))?;
    let signalled = rustix::process::Pid::from_raw(pid)
        .context("the lock file names no valid pid")
        .and_then(|p| {
            rustix::process::kill_process(p, rustix::process::Signal::USR1)
                .map_err(|e| anyhow::Error::from(std::io::Error::from(e)))
        });
    if let Err(error) = signalled {
        let _ = std::fs::remove_file(data.join(REQUEST_FILE));
        bail!(
            "cannot signal the running server (pid {pid}): {error}; run baton backup as the \
             user that runs baton serve"
        );
    }
    eprintln!(
        "baton backup: the running server (pid {pid}) pauses serving while it writes the backup"
    );
    let started = std::time::Instant::now();
    let deadline = started + ONLINE_WAIT;
    // On a terminal, a progress line with the time waited (the server writes the whole store).
    let progress = std::io::stderr().is_terminal();
    let mut shown = 0;
    while std::time::Instant::now() < deadline {
        let waited = started.elapsed().as_secs();
        if progress && waited > shown {
            shown = waited;
            eprint!(
                "\rbaton backup: waiting for the server to write the backup... {waited} s (at most {} s)",
                ONLINE_WAIT.as_secs()
            );
        }
        if let Ok(bytes) = std::fs::read(&result_path) {
            if progress && shown > 0 {
                eprintln!();
            }
            let _ = std::fs::remove_file(&result_path);
            let result: BackupResult =
                serde_json::from_slice(&bytes).context("the server's backup result")?;
            if result.ok {
                return Ok(result.rows);
            }
            bail!(
                "the running server could not write the backup: {}",
                result.message
            );
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    bail!(
        "the running server wrote no backup within {} s; see its log",
        ONLINE_WAIT.as_secs()
    )
}

/// In `baton serve`, on SIGUSR1: stops serving, writes the backup `baton backup` asked for,
/// answers in `backup-result`, and serves again with `config` (the same address).
pub async fn serve_backup_request(
    server: baton_server::server::RunningServer,
    config: &baton_server::config::ServerConfig,
) -> anyhow::Result<baton_server::server::RunningServer> {
    let data = config.data_dir.clone();
    let request = data.join(REQUEST_FILE);
    let Ok(out) = std::fs::read_to_string(&request) else {
        tracing::warn!("SIGUSR1 without a backup request: ignored");
        return Ok(server);
    };
    let _ = std::fs::remove_file(&request);
    let out = PathBuf::from(out.trim());
    tracing::info!(out = %out.display(), "backup requested: pausing service");
    let result = match server.shutdown().await {
        Ok(()) => {
            let data = data.clone();
            let out = out.clone();
            tokio::task::spawn_blocking(move || write_backup(&data, &out))
                .await
                .unwrap_or_else(|e| Err(anyhow::anyhow!("backup task: {e}")))
        }
        Err(e) => Err(anyhow::Error::new(e).context("stopping for the backup")),
    };
    let answer = match &result {
        Ok(rows) => {
            tracing::info!(out = %out.display(), rows, "backup written");
            BackupResult {
                ok: true,
                rows: *rows,
                message: String::new(),
            }
        }
        Err(e) => {
            let message = crate::logging::cause_chain(e);
            tracing::error!(error = %message, "backup failed");
            BackupResult {
                ok: false,
                rows: 0,
                message,
            }
        }
    };
    let partial = data.join(format!("{RESULT_FILE}.partial"));
    let written = serde_json::to_vec(&answer)
        .map_err(std::io::Error::other)
        .and_then(|bytes| std::fs::write(&partial, bytes))
        .and_then(|()| std::fs::rename(&partial, data.join(RESULT_FILE)));
    if let Err(error) = written {
        tracing::warn!(%error, "cannot write the backup result");
    }
    let server = baton_server::server::start(config.clone())
        .await
        .context("serving again after the backup")?;
    tracing::info!("serving again after the backup");
    Ok(server)
}

/// Writes the backup of `data` (whose lock the caller holds, or whose server is stopped) to
/// `out`; returns the store rows.
fn write_backup(data: &Path, out: &Path) -> anyhow::Result<u64> {
    if out.exists() {
        bail!("{} exists: give a new directory", out.display());
    }
    let partial = sibling(out, ".partial");
    if partial.exists() {
        std::fs::remove_dir_all(&partial)
            .with_context(|| format!("cannot remove {}", partial.display()))?;
    }
    std::fs::create_dir_all(&partial)
        .with_context(|| format!("cannot create {}", partial.display()))?;
    let written = (|| {
        // Secrets inside: the directory and the rows are for the owner only.
        owner_only(&partial, 0o700)?;
        let store = SledStore::open_with(&SledConfig::new(data.join(DB_DIR)))
            .context("cannot open the store")?;
        let file = std::fs::File::create(partial.join(STORE_FILE))?;
        owner_only(&partial.join(STORE_FILE), 0o600)?;
        let mut writer = BufWriter::new(file);
        let summary = store.export(&mut writer).context("exporting the store")?;
        writer
            .into_inner()
            .map_err(|e| e.into_error())?
            .sync_all()?;
        drop(store);
        let skip = [DB_DIR, LOCK_FILE, REQUEST_FILE, RESULT_FILE];
        for entry in std::fs::read_dir(data)? {
            let entry = entry?;
            let name = entry.file_name();
            if skip.iter().any(|s| name == *s) || name.to_string_lossy().ends_with(".partial") {
                continue;
            }
            copy_tree(&entry.path(), &partial.join(&name))?;
        }
        let manifest = Manifest {
            format: FORMAT.into(),
            version: VERSION,
            created_unix: unix_now(),
            baton_version: env!("CARGO_PKG_VERSION").into(),
            rows: summary.rows,
        };
        std::fs::write(
            partial.join(MANIFEST),
            serde_json::to_vec_pretty(&manifest)?,
        )?;
        std::fs::rename(&partial, out)
            .with_context(|| format!("cannot rename to {}", out.display()))?;
        anyhow::Ok(summary.rows)
    })();
    if written.is_err() {
        let _ = std::fs::remove_dir_all(&partial);
    }
    written
}

/// Restricts `path` to its owner (`mode` 0o700 or 0o600).
fn owner_only(path: &Path, mode: u32) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
    }
    #[cfg(not(unix))]
    {
        let _ = (path, mode);
        Ok(())
    }
}

/// Copies a file or a directory tree, keeping permissions.
fn copy_tree(from: &Path, to: &Path) -> std::io::Result<()> {
    let meta = std::fs::symlink_metadata(from)?;
    if meta.is_dir() {
        std::fs::create_dir_all(to)?;
        for entry in std::fs::read_dir(from)? {
            let entry = entry?;
            copy_tree(&entry.path(), &to.join(entry.file_name()))?;
        }
        std::fs::set_permissions(to, meta.permissions())
    } else if meta.is_file() {
        std::fs::copy(from, to)?;
        std::fs::File::open(to)?.sync_all()
    } else {
        // Sockets, symlinks: not Baton's files.
        Ok(())
    }
}

fn read_manifest(dir: &Path) -> anyhow::Result<Manifest> {
    let path = dir.join(MANIFEST);
    let bytes = std::fs::read(&path)
        .with_context(|| format!("{} is not a Baton backup (no {MANIFEST})", dir.display()))?;
    let manifest: Manifest = serde_json::from_slice(&bytes)
        .with_context(|| format!("{} is not a Baton backup manifest", path.display()))?;
    if manifest.format != FORMAT || manifest.version != VERSION {
        bail!(
            "{} is a {} backup of version {}; this baton reads {FORMAT} version {VERSION}",
            dir.display(),
            manifest.format,
            manifest.version
        );
    }
    Ok(manifest)
}

fn restore(args: &RestoreArgs) -> anyhow::Result<String> {
    let manifest = read_manifest(&args.from)?;
    let data = &args.data;
    // Held while the target is replaced, so no server starts on it meanwhile.
    let lock =
        if data.exists() {
            Some(DataLock::acquire(data, "baton restore").map_err(|e| match e {
            crate::data_lock::LockError::Held { holder, .. } => anyhow::anyhow!(
                "{} belongs to a running Baton process ({holder}): stop it before restoring \
                 over it",
                data.display()
            ),
            other => other.into(),
        })?)
        } else {
            None
        };
    let holds_data = std::fs::read_dir(data)
        .map(|d| d.filter_map(Result::ok).any(|e| e.file_name() != LOCK_FILE))
        .unwrap_or(false);
    if holds_data && !args.replace {
        bail!(
            "{} holds data: give --replace to replace it (it is kept as {}.replaced-<time>), or \
             restore into a new directory",
            data.display(),
            data.display()
        );
    }
    let staging = sibling(data, &format!(".restoring-{}", std::process::id()));
    if staging.exists() {
        std::fs::remove_dir_all(&staging)?;
    }
    std::fs::create_dir_all(&staging)
        .with_context(|| format!("cannot create {}", staging.display()))?;
    let built = (|| {
        let store = SledStore::open_with(&SledConfig::new(staging.join(DB_DIR)))
            .context("cannot create the store")?;
        let file = std::fs::File::open(args.from.join(STORE_FILE))
            .with_context(|| format!("cannot read {}", args.from.join(STORE_FILE).display()))?;
        let summary = store
            .import(&mut BufReader::new(file))
            .context("importing the store")?;
        if summary.rows != manifest.rows {
            bail!(
                "{STORE_FILE} has {} rows, the manifest says {}: the backup is incomplete",
                summary.rows,
                manifest.rows
            );
        }
        store.verify().context("checking the restored store")?;
        store.flush()?;
        drop(store);
        for entry in std::fs::read_dir(&args.from)? {
            let entry = entry?;
            let name = entry.file_name();
            if name == STORE_FILE || name == MANIFEST {
                continue;
            }
            copy_tree(&entry.path(), &staging.join(&name))?;
        }
        anyhow::Ok(summary.rows)
    })();
    let rows = match built {
        Ok(rows) => rows,
        Err(e) => {
            let _ = std::fs::remove_dir_all(&staging);
            return Err(e);
        }
    };
    let mut kept = None;
    if data.exists() {
        if holds_data {
            let aside = sibling(data, &format!(".replaced-{}", unix_now()));
            std::fs::rename(data, &aside)
                .with_context(|| format!("cannot move {} aside", data.display()))?;
            kept = Some(aside);
        } else {
            std::fs::remove_dir_all(data)?;
        }
    }
    drop(lock);
    std::fs::rename(&staging, data)
        .with_context(|| format!("cannot rename {} to {}", staging.display(), data.display()))?;
    let mut done = format!(
        "restored {} into {} ({rows} store rows, taken at unix time {})",
        args.from.display(),
        data.display(),
        manifest.created_unix
    );
    if let Some(aside) = kept {
        done.push_str(&format!("; the replaced directory is {}", aside.display()));
    }
    Ok(done)
}
