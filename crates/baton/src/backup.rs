//! `baton backup` and `baton restore`: a copy of a data directory, and that copy put back.
//!
//! A backup is a directory: `store.jsonl` (every row of the store, [`SledStore::export`]),
//! every other file of the data directory as it is (`ca/` with the built-in CA's key, `tls/`),
//! and `backup.json` (format, version, time, row count). It is written under a temporary name
//! and renamed when complete, so a backup that exists is whole.
//!
//! Both commands hold the data directory's lock ([`crate::data_lock`]) while they work, so no
//! server starts on it meanwhile and the copy is consistent. A directory a running server holds
//! is refused: `baton backup` says to stop the server first (an online backup of a serving
//! store is not built: the sled store has no point-in-time snapshot), and `baton restore`
//! never overwrites it. A restore is built next to the target and renamed into place; the
//! directory it replaces is kept under `<data>.replaced-<unix time>`.

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
const FORMAT: &str = "baton-backup";
const VERSION: u32 = 1;

/// `baton backup`.
#[derive(Debug, Args)]
pub struct BackupArgs {
    /// The data directory of a stopped server [default: ./baton-data].
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

fn held_message(dir: &Path, e: crate::data_lock::LockError) -> anyhow::Error {
    match e {
        crate::data_lock::LockError::Held { holder, .. } => anyhow::anyhow!(
            "a Baton process is using {} ({holder}): stop it first (e.g. systemctl stop baton); \
             a backup of a serving store is not built",
            dir.display()
        ),
        other => other.into(),
    }
}

fn backup(args: &BackupArgs) -> anyhow::Result<String> {
    let data = &args.data;
    if !data.join(DB_DIR).is_dir() {
        bail!("{} holds no Baton store (no {DB_DIR}/)", data.display());
    }
    if args.out.exists() {
        bail!("{} exists: give a new directory", args.out.display());
    }
    let _lock = DataLock::acquire(data, "baton backup").map_err(|e| held_message(data, e))?;
    let partial = sibling(&args.out, ".partial");
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
        let mut out = BufWriter::new(file);
        let summary = store.export(&mut out).context("exporting the store")?;
        out.into_inner().map_err(|e| e.into_error())?.sync_all()?;
        drop(store);
        for entry in std::fs::read_dir(data)? {
            let entry = entry?;
            let name = entry.file_name();
            if name == DB_DIR || name == LOCK_FILE {
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
        std::fs::rename(&partial, &args.out)
            .with_context(|| format!("cannot rename to {}", args.out.display()))?;
        anyhow::Ok(summary.rows)
    })();
    match written {
        Ok(rows) => Ok(format!(
            "backup of {} written to {} ({rows} store rows, the CA key and the other files); it \
             holds secrets (CA key, push certificate key): keep it like the data directory",
            data.display(),
            args.out.display()
        )),
        Err(e) => {
            let _ = std::fs::remove_dir_all(&partial);
            Err(e)
        }
    }
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
