//! Group commit: the store job that runs every waiting connection's commands, so the writes
//! of all of them share one transaction and one signature.

use std::collections::HashMap;

use tokio::sync::{mpsc, oneshot};
use tracing::warn;
use weft_storage::{NamespaceId, Op, Store};

use super::cmd::{Data, Out};
use super::resp::Reply;
use crate::NodeHandle;

/// A connection's store commands and where their answers go.
pub(super) type Submission = (Vec<Data>, oneshot::Sender<Vec<Out>>);

/// The most store commands one job runs, so one job's latency stays bounded.
const JOB_COMMANDS: usize = 16 * 1024;

/// Runs the connections' store commands: everything waiting when the store is free goes into
/// one job, in arrival order, so the writes of all connections share one transaction and one
/// signature (group commit across connections). With a write among them the job goes through
/// [`NodeHandle::append`], so what it wrote is gossiped.
pub(super) async fn commit_loop(
    node: NodeHandle,
    ns: NamespaceId,
    mut queue: mpsc::Receiver<Submission>,
) {
    while let Some(first) = queue.recv().await {
        let mut submissions = vec![first];
        let mut commands = submissions[0].0.len();
        while commands < JOB_COMMANDS {
            match queue.try_recv() {
                Ok(next) => {
                    commands += next.0.len();
                    submissions.push(next);
                }
                Err(_) => break,
            }
        }
        let (data, replies): (Vec<Vec<Data>>, Vec<_>) = submissions.into_iter().unzip();
        let lengths: Vec<usize> = data.iter().map(Vec::len).collect();
        let data: Vec<Data> = data.into_iter().flatten().collect();
        let writes = data.iter().any(Data::writes);
        let job = move |store: &Store| Ok(Batch::new(store, ns).run(data));
        let result = if writes {
            node.append(ns, job).await
        } else {
            node.worker()
                .run(job)
                .await
                .map_err(|_| crate::NodeError::Closed)
                .and_then(|r: Result<_, weft_storage::Error>| Ok(r?))
        };
        let mut outs = match result {
            Ok(outs) => outs.into_iter(),
            Err(e) => {
                // The connections answer "the node has shut down" for what is missing.
                warn!(error = %e, "redis: a batch failed");
                Vec::new().into_iter()
            }
        };
        for (length, reply) in lengths.into_iter().zip(replies) {
            let _ = reply.send(outs.by_ref().take(length).collect());
        }
    }
}

/// A batch's store commands on the store's thread. Writes gather in `ops`, and reads see them
/// through `overlay`, until a command that reads many keys (or the end) commits them.
pub(super) struct Batch<'a> {
    pub(super) store: &'a Store,
    /// One read transaction for the reads between commits, rather than one per key.
    snapshot: Option<weft_storage::Snapshot<'a>>,
    pub(super) ns: NamespaceId,
    overlay: HashMap<Vec<u8>, Option<Vec<u8>>>,
    ops: Vec<(Vec<u8>, Op<Vec<u8>>)>,
    /// For each command with uncommitted writes: its index in the outputs and its ops' range.
    writers: Vec<(usize, std::ops::Range<usize>)>,
}

impl<'a> Batch<'a> {
    fn new(store: &'a Store, ns: NamespaceId) -> Batch<'a> {
        Batch {
            store,
            snapshot: None,
            ns,
            overlay: HashMap::new(),
            ops: Vec::new(),
            writers: Vec::new(),
        }
    }

    fn run(mut self, data: Vec<Data>) -> Vec<Out> {
        let mut outs = Vec::with_capacity(data.len());
        for command in data {
            if command.reads_many() {
                self.commit(&mut outs);
            }
            let index = outs.len();
            let first_op = self.ops.len();
            let out = match command.run(&mut self) {
                Ok(out) => out,
                Err(e) => {
                    // Nothing of a refused command stays pending.
                    self.ops.truncate(first_op);
                    Out::Reply(Reply::err(e))
                }
            };
            if self.ops.len() > first_op {
                self.writers.push((index, first_op..self.ops.len()));
            }
            outs.push(out);
        }
        self.commit(&mut outs);
        outs
    }

    /// Writes the pending ops in one transaction. If that fails, each command's ops are tried
    /// alone, so only the commands at fault answer with the error.
    fn commit(&mut self, outs: &mut [Out]) {
        let ops = std::mem::take(&mut self.ops);
        let writers = std::mem::take(&mut self.writers);
        self.overlay.clear();
        if !ops.is_empty() {
            // Reads after the commit must see it.
            self.snapshot = None;
        }
        if ops.is_empty() || self.store.write(&self.ns, ops.clone()).is_ok() {
            return;
        }
        for (index, range) in writers {
            if let Err(e) = self.store.write(&self.ns, ops[range].to_vec()) {
                outs[index] = Out::Reply(Reply::err(e));
            }
        }
    }

    /// The value of `key` as this batch's writes so far leave it.
    pub(super) fn value(&mut self, key: &[u8]) -> weft_storage::Result<Option<Vec<u8>>> {
        if let Some(value) = self.overlay.get(key) {
            return Ok(value.clone());
        }
        let snapshot = match &mut self.snapshot {
            Some(snapshot) => snapshot,
            empty => empty.insert(self.store.snapshot()?),
        };
        snapshot.get(&self.ns, key)
    }

    /// Adds a write to the batch, checked as the store checks it, so a refused command
    /// leaves nothing behind and later reads in the batch never see it.
    pub(super) fn write(&mut self, key: Vec<u8>, op: Op<Vec<u8>>) -> weft_storage::Result<()> {
        self.store.check_write(&self.ns, &key, &op)?;
        self.overlay.insert(
            key.clone(),
            match &op {
                Op::Put(value) => Some(value.clone()),
                Op::Delete => None,
            },
        );
        self.ops.push((key, op));
        Ok(())
    }
}
