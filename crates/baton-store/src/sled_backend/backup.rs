//! Export to and import from a portable JSON-lines file (`baton backup` / `baton restore`).
//!
//! Line 1 is a header: `{"format":"baton-store","version":1,"schema":N,"next_seq":S}`. Every
//! further line is one row: `{"tree":"queue","key":"<base64>","value":"<base64>"}`. Rows keep the
//! backend's key encodings (see [`super::layout`]); `schema` says which layout, and import runs
//! the migrations from it. `next_seq` keeps FIFO order across a restore: sequence numbers drawn
//! after import are above it.
//!
//! Export reads tree by tree without a global snapshot: take it from a store that is not
//! serving (or accept that a change racing the export may be half in it).

use std::collections::HashMap;
use std::io::{BufRead, Write};
use std::sync::atomic::Ordering;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use serde::{Deserialize, Serialize};

use super::layout::{FIXED_TREES, KEYSPACE_PREFIX, u64_be};
use super::{SEQ_BASE_KEY, SledStore, schema};
use crate::{Collection, StoreError, StoreResult};

const FORMAT: &str = "baton-store";
const FILE_VERSION: u32 = 1;
const BATCH_ROWS: usize = 10_000;

#[derive(Debug, Serialize, Deserialize)]
struct Header {
    format: String,
    version: u32,
    schema: u32,
    next_seq: u64,
}

#[derive(Debug, Serialize, Deserialize)]
struct Line {
    tree: String,
    key: String,
    value: String,
}

/// What an export or import moved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct ExportSummary {
    /// Rows written or read.
    pub rows: u64,
}

fn io_json(e: serde_json::Error) -> StoreError {
    StoreError::Io(std::io::Error::other(e))
}

impl SledStore {
    fn exported_tree_names(&self) -> Vec<String> {
        let mut names: Vec<String> = FIXED_TREES.iter().map(|s| (*s).to_owned()).collect();
        let mut ks: Vec<String> = self
            .db
            .tree_names()
            .into_iter()
            .filter_map(|n| String::from_utf8(n.to_vec()).ok())
            .filter(|n| n.starts_with(KEYSPACE_PREFIX))
            .collect();
        ks.sort();
        names.extend(ks);
        names
    }

    /// Writes every row to `out` as JSON lines.
    pub fn export(&self, out: &mut dyn Write) -> StoreResult<ExportSummary> {
        self.flush_last_seen_rows()?;
        let header = Header {
            format: FORMAT.to_owned(),
            version: FILE_VERSION,
            schema: self.schema_version()?,
            next_seq: self.next_seq()?,
        };
        serde_json::to_writer(&mut *out, &header).map_err(io_json)?;
        out.write_all(b"\n")?;
        let mut rows = 0;
        for name in self.exported_tree_names() {
            let tree = self.db.open_tree(&name)?;
            for kv in tree.iter() {
                let (k, v) = kv?;
                let line = Line {
                    tree: name.clone(),
                    key: B64.encode(&k),
                    value: B64.encode(&v),
                };
                serde_json::to_writer(&mut *out, &line).map_err(io_json)?;
                out.write_all(b"\n")?;
                rows += 1;
            }
        }
        out.flush()?;
        Ok(ExportSummary { rows })
    }

    /// Reads an export into this store, which must be empty, then migrates and flushes.
    pub fn import(&self, input: &mut dyn BufRead) -> StoreResult<ExportSummary> {
        for name in self.exported_tree_names() {
            if !self.db.open_tree(&name)?.is_empty() {
                return Err(StoreError::ImportTargetNotEmpty);
            }
        }
        let bad = |line: usize, reason: String| StoreError::Import { line, reason };
        let mut lines = input.lines();
        let header: Header = match lines.next() {
            Some(l) => serde_json::from_str(&l?).map_err(|e| bad(1, e.to_string()))?,
            None => return Err(bad(1, "empty file".into())),
        };
        if header.format != FORMAT || header.version != FILE_VERSION {
            return Err(bad(1, "not a baton-store export of version 1".into()));
        }
        if header.schema > schema::SCHEMA_VERSION {
            return Err(StoreError::SchemaTooNew {
                found: header.schema,
                supported: schema::SCHEMA_VERSION,
            });
        }
        // Checked before the first write (after that line's own checks) and at the end.
        let migratable = || {
            if schema::can_migrate_from(header.schema) {
                Ok(())
            } else {
                Err(StoreError::Migration {
                    from: header.schema,
                    reason: "no migration step from this version".into(),
                })
            }
        };
        let mut pending: HashMap<String, (sled::Tree, sled::Batch, usize)> = HashMap::new();
        let mut rows = 0;
        for (i, l) in lines.enumerate() {
            let n = i + 2;
            let l = l?;
            if l.trim().is_empty() {
                continue;
            }
            let line: Line = serde_json::from_str(&l).map_err(|e| bad(n, e.to_string()))?;
            let known = FIXED_TREES.contains(&line.tree.as_str())
                || line
                    .tree
                    .strip_prefix(KEYSPACE_PREFIX)
                    .is_some_and(|c| Collection::new(c).is_ok());
            if !known {
                return Err(bad(n, format!("unknown tree {:?}", line.tree)));
            }
            let key = B64.decode(&line.key).map_err(|e| bad(n, e.to_string()))?;
            let value = B64.decode(&line.value).map_err(|e| bad(n, e.to_string()))?;
            if rows == 0 {
                migratable()?;
            }
            let entry = match pending.get_mut(&line.tree) {
                Some(e) => e,
                None => {
                    let tree = self.db.open_tree(&line.tree)?;
                    pending
                        .entry(line.tree.clone())
                        .or_insert((tree, sled::Batch::default(), 0))
                }
            };
            entry.1.insert(key, value);
            entry.2 += 1;
            if entry.2 >= BATCH_ROWS {
                let batch = std::mem::take(&mut entry.1);
                entry.0.apply_batch(batch)?;
                entry.2 = 0;
            }
            rows += 1;
        }
        migratable()?;
        for (_, (tree, batch, _)) in pending {
            tree.apply_batch(batch)?;
        }
        let base = self.seq_base.load(Ordering::SeqCst).max(header.next_seq);
        self.t.meta.insert(SEQ_BASE_KEY, &u64_be(base))?;
        self.seq_base.store(base, Ordering::SeqCst);
        schema::set_version(&self.db, header.schema)?;
        schema::ensure(&self.db)?;
        self.flush()?;
        self.index.replace(self.rebuild_index(true)?);
        Ok(ExportSummary { rows })
    }

    fn flush_last_seen_rows(&self) -> StoreResult<()> {
        use crate::EnrollmentStore;
        self.flush_last_seen()
    }
}
