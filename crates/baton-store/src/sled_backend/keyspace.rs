//! [`Keyspace`] on sled: one tree per collection (`ks/<name>`).

use std::collections::HashMap;
use std::time::SystemTime;

use sled::Transactional;
use sled::transaction::TransactionalTree;

use super::command_queue::PreparedEnqueue;
use super::{SledStore, tx_error};
use crate::{
    CasOutcome, Collection, Enqueue, Keyspace, KeyspaceBatch, KeyspaceOp, StoreError, StoreResult,
};

impl SledStore {
    fn apply_batch_and_enqueues(
        &self,
        batch: &KeyspaceBatch,
        enqueues: &[PreparedEnqueue],
    ) -> StoreResult<CasOutcome> {
        // COMMANDS is view 0; collections follow.
        let mut index: HashMap<&Collection, usize> = HashMap::new();
        let mut trees = vec![self.t.commands.clone()];
        for op in &batch.ops {
            let c = op.collection();
            if !index.contains_key(c) {
                index.insert(c, trees.len());
                trees.push(self.collection_tree(c)?);
            }
        }
        let slot = |views: &[TransactionalTree], c: &Collection| -> Option<usize> {
            index.get(c).copied().filter(|i| *i < views.len())
        };
        let outcome = trees
            .as_slice()
            .transaction(|views: &Vec<TransactionalTree>| {
                // Preconditions see the state before any write of this batch.
                for op in &batch.ops {
                    if let KeyspaceOp::Expect {
                        collection,
                        key,
                        value,
                    } = op
                    {
                        let Some(i) = slot(views, collection) else {
                            continue;
                        };
                        let current = views[i].get(key)?;
                        if current.as_deref() != value.as_deref() {
                            return Ok(CasOutcome::Conflict {
                                collection: collection.clone(),
                                key: key.clone(),
                                current: current.map(|v| v.to_vec()),
                            });
                        }
                    }
                }
                for op in &batch.ops {
                    match op {
                        KeyspaceOp::Put {
                            collection,
                            key,
                            value,
                        } => {
                            if let Some(i) = slot(views, collection) {
                                views[i].insert(key.as_slice(), value.as_slice())?;
                            }
                        }
                        KeyspaceOp::Delete { collection, key } => {
                            if let Some(i) = slot(views, collection) {
                                views[i].remove(key.as_slice())?;
                            }
                        }
                        KeyspaceOp::Expect { .. } => {}
                    }
                }
                if let Some(commands) = views.first() {
                    for p in enqueues {
                        p.write_in(commands)?;
                    }
                }
                Ok(CasOutcome::Applied)
            })
            .map_err(tx_error)?;
        if outcome == CasOutcome::Applied {
            for p in enqueues {
                self.index_enqueue(p);
            }
        }
        Ok(outcome)
    }
}

impl Keyspace for SledStore {
    fn get(&self, collection: &Collection, key: &[u8]) -> StoreResult<Option<Vec<u8>>> {
        Ok(self
            .collection_tree(collection)?
            .get(key)?
            .map(|v| v.to_vec()))
    }

    fn put(&self, collection: &Collection, key: &[u8], value: &[u8]) -> StoreResult<()> {
        self.collection_tree(collection)?.insert(key, value)?;
        self.commit()
    }

    fn delete(&self, collection: &Collection, key: &[u8]) -> StoreResult<bool> {
        let existed = self.collection_tree(collection)?.remove(key)?.is_some();
        if existed {
            self.commit()?;
        }
        Ok(existed)
    }

    fn scan_prefix(
        &self,
        collection: &Collection,
        prefix: &[u8],
    ) -> StoreResult<Vec<(Vec<u8>, Vec<u8>)>> {
        self.collection_tree(collection)?
            .scan_prefix(prefix)
            .map(|kv| {
                let (k, v) = kv.map_err(StoreError::from)?;
                Ok((k.to_vec(), v.to_vec()))
            })
            .collect()
    }

    fn last_with_prefix(
        &self,
        collection: &Collection,
        prefix: &[u8],
    ) -> StoreResult<Option<(Vec<u8>, Vec<u8>)>> {
        Ok(self
            .collection_tree(collection)?
            .scan_prefix(prefix)
            .next_back()
            .transpose()?
            .map(|(k, v)| (k.to_vec(), v.to_vec())))
    }

    fn scan_page(
        &self,
        collection: &Collection,
        after: Option<&[u8]>,
        limit: usize,
    ) -> StoreResult<Vec<(Vec<u8>, Vec<u8>)>> {
        let tree = self.collection_tree(collection)?;
        let range = match after {
            Some(after) => tree
                .range::<&[u8], _>((std::ops::Bound::Excluded(after), std::ops::Bound::Unbounded)),
            None => tree.iter(),
        };
        range
            .take(limit)
            .map(|kv| {
                let (k, v) = kv.map_err(StoreError::from)?;
                Ok((k.to_vec(), v.to_vec()))
            })
            .collect()
    }

    fn count(&self, collection: &Collection) -> StoreResult<u64> {
        let mut n = 0u64;
        for key in self.collection_tree(collection)?.iter().keys() {
            key?;
            n += 1;
        }
        Ok(n)
    }

    fn compare_and_swap(
        &self,
        collection: &Collection,
        key: &[u8],
        expected: Option<&[u8]>,
        new: Option<&[u8]>,
    ) -> StoreResult<CasOutcome> {
        match self
            .collection_tree(collection)?
            .compare_and_swap(key, expected, new)?
        {
            Ok(()) => {
                self.commit()?;
                Ok(CasOutcome::Applied)
            }
            Err(e) => Ok(CasOutcome::Conflict {
                collection: collection.clone(),
                key: key.to_vec(),
                current: e.current.map(|v| v.to_vec()),
            }),
        }
    }

    fn apply(&self, batch: &KeyspaceBatch) -> StoreResult<CasOutcome> {
        let outcome = self.apply_batch_and_enqueues(batch, &[])?;
        if outcome == CasOutcome::Applied {
            self.commit()?;
        }
        Ok(outcome)
    }

    fn apply_with_enqueue(
        &self,
        batch: &KeyspaceBatch,
        enqueues: &[Enqueue],
        now: SystemTime,
    ) -> StoreResult<CasOutcome> {
        let outcome = {
            // Held across the check, the write and the index update, like `enqueue`.
            let _serial = self
                .enqueue_lock
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let prepared = enqueues
                .iter()
                .map(|e| self.prepare_enqueue(&e.command, &e.to, now))
                .collect::<StoreResult<Vec<_>>>()?;
            self.apply_batch_and_enqueues(batch, &prepared)?
        };
        if outcome == CasOutcome::Applied {
            self.commit()?;
        }
        Ok(outcome)
    }
}
