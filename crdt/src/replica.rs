//! An in-memory replica: the reference model of the key-value view.

use std::collections::BTreeMap;

use crate::ids::{Timestamp, VersionHash, VersionId};
use crate::register::{Applied, Op, Register, Superseded, Write};

/// One live version as [`Replica::snapshot`] lists it.
pub type LiveVersion<V> = (VersionId, Timestamp, Op<V>);

/// Every key's register and superseded set, held in memory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Replica<V> {
    keys: BTreeMap<Vec<u8>, KeyState<V>>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct KeyState<V> {
    register: Register<V>,
    superseded: Superseded,
}

impl<V> Default for KeyState<V> {
    fn default() -> Self {
        KeyState {
            register: Register::default(),
            superseded: Superseded::default(),
        }
    }
}

impl<V> Default for Replica<V> {
    fn default() -> Self {
        Replica {
            keys: BTreeMap::new(),
        }
    }
}

impl<V: Clone> Replica<V> {
    /// An empty replica.
    pub fn new() -> Self {
        Self::default()
    }

    /// Merges a write of `key`, wherever it came from.
    pub fn apply(&mut self, key: &[u8], write: Write<V>) -> Applied {
        let state = self.keys.entry(key.to_vec()).or_default();
        let applied = state.register.apply(write, &mut state.superseded);
        match applied {
            Ok(applied) => applied,
            Err(never) => match never {},
        }
    }

    /// Makes a local write: it supersedes every version of `key` live here now.
    /// The caller assigns `id`, a `timestamp` from its clock and the `hash` of what it wrote.
    pub fn write(
        &mut self,
        key: &[u8],
        id: VersionId,
        timestamp: Timestamp,
        op: Op<V>,
        hash: VersionHash,
    ) -> Write<V> {
        let write = Write {
            version: crate::Version {
                id,
                timestamp,
                op,
                hash,
            },
            supersedes: self.register(key).map(Register::heads).unwrap_or_default(),
        };
        self.apply(key, write.clone());
        write
    }

    /// The register of `key`, if any version of it is known.
    pub fn register(&self, key: &[u8]) -> Option<&Register<V>> {
        self.keys.get(key).map(|state| &state.register)
    }

    /// The last-writer-wins value of `key`.
    pub fn get(&self, key: &[u8]) -> Option<&V> {
        self.register(key)?.value()
    }

    /// Every key with a live version (tombstones included), in byte order.
    pub fn registers(&self) -> impl Iterator<Item = (&[u8], &Register<V>)> {
        self.keys
            .iter()
            .filter(|(_, state)| !state.register.is_empty())
            .map(|(key, state)| (key.as_slice(), &state.register))
    }

    /// The ids some link of `key` names.
    pub fn superseded(&self, key: &[u8]) -> impl Iterator<Item = &VersionId> {
        self.keys
            .get(key)
            .into_iter()
            .flat_map(|state| state.superseded.ids())
    }

    /// Every live value, author and timestamp of every key: two replicas that agree here
    /// agree on every read.
    pub fn snapshot(&self) -> Vec<(Vec<u8>, Vec<LiveVersion<V>>)> {
        self.registers()
            .map(|(key, register)| {
                let live = register
                    .live()
                    .iter()
                    .map(|v| (v.id, v.timestamp, v.op.clone()))
                    .collect();
                (key.to_vec(), live)
            })
            .collect()
    }
}
