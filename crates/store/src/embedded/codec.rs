//! The payload of one log record, in a compact binary form.
//!
//! A record is either a full [`Snapshot`] (always the first record after a file compaction) or one
//! [`Txn`]: the operations of one write. Integers are little-endian, strings and byte strings are
//! prefixed with their `u32` length. Decoding never panics: any malformed input is an error.

use crate::{KeyValue, LeaseId};

const TAG_SNAPSHOT: u8 = 1;
const TAG_TXN: u8 = 2;

const OP_PUT: u8 = 1;
const OP_DELETE: u8 = 2;
const OP_LEASE_GRANT: u8 = 3;
const OP_LEASE_REVOKE: u8 = 4;
const OP_COMPACT: u8 = 5;

/// One durable record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Record {
    Snapshot(Snapshot),
    Txn(Txn),
}

/// The whole state of the store at `revision`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Snapshot {
    pub revision: i64,
    pub compact_revision: i64,
    pub next_lease_id: LeaseId,
    pub kvs: Vec<KeyValue>,
    /// Live leases with their TTL in seconds.
    pub leases: Vec<(LeaseId, i64)>,
}

/// The operations of one write; `revision` is the store revision after it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Txn {
    pub revision: i64,
    pub ops: Vec<Op>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Op {
    Put {
        key: String,
        value: Vec<u8>,
        lease: LeaseId,
    },
    Delete {
        key: String,
    },
    LeaseGrant {
        id: LeaseId,
        ttl: i64,
    },
    LeaseRevoke {
        id: LeaseId,
    },
    /// History before `revision` is discarded.
    Compact {
        revision: i64,
    },
}

impl Record {
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut w = Vec::with_capacity(64);
        match self {
            Record::Snapshot(s) => {
                w.push(TAG_SNAPSHOT);
                put_i64(&mut w, s.revision);
                put_i64(&mut w, s.compact_revision);
                put_i64(&mut w, s.next_lease_id);
                put_u32(&mut w, s.kvs.len());
                for kv in &s.kvs {
                    put_bytes(&mut w, kv.key.as_bytes());
                    put_bytes(&mut w, &kv.value);
                    put_i64(&mut w, kv.create_revision);
                    put_i64(&mut w, kv.mod_revision);
                    put_i64(&mut w, kv.version);
                    put_i64(&mut w, kv.lease);
                }
                put_u32(&mut w, s.leases.len());
                for (id, ttl) in &s.leases {
                    put_i64(&mut w, *id);
                    put_i64(&mut w, *ttl);
                }
            }
            Record::Txn(t) => {
                w.push(TAG_TXN);
                put_i64(&mut w, t.revision);
                put_u32(&mut w, t.ops.len());
                for op in &t.ops {
                    encode_op(&mut w, op);
                }
            }
        }
        w
    }

    pub(crate) fn decode(buf: &[u8]) -> Result<Record, String> {
        let mut r = Reader { buf, pos: 0 };
        let record = match r.u8()? {
            TAG_SNAPSHOT => {
                let revision = r.i64()?;
                let compact_revision = r.i64()?;
                let next_lease_id = r.i64()?;
                let n = r.len()?;
                let mut kvs = Vec::with_capacity(n.min(1 << 16));
                for _ in 0..n {
                    kvs.push(KeyValue {
                        key: r.string()?,
                        value: r.bytes()?.to_vec(),
                        create_revision: r.i64()?,
                        mod_revision: r.i64()?,
                        version: r.i64()?,
                        lease: r.i64()?,
                    });
                }
                let n = r.len()?;
                let mut leases = Vec::with_capacity(n.min(1 << 16));
                for _ in 0..n {
                    leases.push((r.i64()?, r.i64()?));
                }
                Record::Snapshot(Snapshot {
                    revision,
                    compact_revision,
                    next_lease_id,
                    kvs,
                    leases,
                })
            }
            TAG_TXN => {
                let revision = r.i64()?;
                let n = r.len()?;
                let mut ops = Vec::with_capacity(n.min(1 << 16));
                for _ in 0..n {
                    ops.push(decode_op(&mut r)?);
                }
                Record::Txn(Txn { revision, ops })
            }
            tag => return Err(format!("unknown record tag {tag}")),
        };
        if r.pos != buf.len() {
            return Err(format!("{} trailing bytes", buf.len() - r.pos));
        }
        Ok(record)
    }
}

fn encode_op(w: &mut Vec<u8>, op: &Op) {
    match op {
        Op::Put { key, value, lease } => {
            w.push(OP_PUT);
            put_bytes(w, key.as_bytes());
            put_bytes(w, value);
            put_i64(w, *lease);
        }
        Op::Delete { key } => {
            w.push(OP_DELETE);
            put_bytes(w, key.as_bytes());
        }
        Op::LeaseGrant { id, ttl } => {
            w.push(OP_LEASE_GRANT);
            put_i64(w, *id);
            put_i64(w, *ttl);
        }
        Op::LeaseRevoke { id } => {
            w.push(OP_LEASE_REVOKE);
            put_i64(w, *id);
        }
        Op::Compact { revision } => {
            w.push(OP_COMPACT);
            put_i64(w, *revision);
        }
    }
}

fn decode_op(r: &mut Reader<'_>) -> Result<Op, String> {
    Ok(match r.u8()? {
        OP_PUT => Op::Put {
            key: r.string()?,
            value: r.bytes()?.to_vec(),
            lease: r.i64()?,
        },
        OP_DELETE => Op::Delete { key: r.string()? },
        OP_LEASE_GRANT => Op::LeaseGrant {
            id: r.i64()?,
            ttl: r.i64()?,
        },
        OP_LEASE_REVOKE => Op::LeaseRevoke { id: r.i64()? },
        OP_COMPACT => Op::Compact { revision: r.i64()? },
        tag => return Err(format!("unknown operation tag {tag}")),
    })
}

fn put_i64(w: &mut Vec<u8>, v: i64) {
    w.extend_from_slice(&v.to_le_bytes());
}

fn put_u32(w: &mut Vec<u8>, v: usize) {
    // Keys, values and counts are far below 4 GiB; the log refuses bigger records anyway.
    w.extend_from_slice(&u32::try_from(v).unwrap_or(u32::MAX).to_le_bytes());
}

fn put_bytes(w: &mut Vec<u8>, b: &[u8]) {
    put_u32(w, b.len());
    w.extend_from_slice(b);
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|end| *end <= self.buf.len())
            .ok_or_else(|| format!("record ends early at byte {}", self.pos))?;
        let out = &self.buf[self.pos..end];
        self.pos = end;
        Ok(out)
    }

    fn u8(&mut self) -> Result<u8, String> {
        Ok(self.take(1)?[0])
    }

    fn i64(&mut self) -> Result<i64, String> {
        let mut b = [0u8; 8];
        b.copy_from_slice(self.take(8)?);
        Ok(i64::from_le_bytes(b))
    }

    fn len(&mut self) -> Result<usize, String> {
        let mut b = [0u8; 4];
        b.copy_from_slice(self.take(4)?);
        Ok(u32::from_le_bytes(b) as usize)
    }

    fn bytes(&mut self) -> Result<&'a [u8], String> {
        let n = self.len()?;
        self.take(n)
    }

    fn string(&mut self) -> Result<String, String> {
        let b = self.bytes()?;
        String::from_utf8(b.to_vec()).map_err(|_| "key is not UTF-8".to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_garbage_is_an_error() {
        let txn = Record::Txn(Txn {
            revision: 7,
            ops: vec![
                Op::Put {
                    key: "/a".into(),
                    value: b"{}".to_vec(),
                    lease: 3,
                },
                Op::Delete { key: "/b".into() },
                Op::LeaseGrant { id: 3, ttl: 10 },
                Op::LeaseRevoke { id: 3 },
                Op::Compact { revision: 5 },
            ],
        });
        assert_eq!(Record::decode(&txn.encode()), Ok(txn.clone()));
        let snap = Record::Snapshot(Snapshot {
            revision: 9,
            compact_revision: 2,
            next_lease_id: 4,
            kvs: vec![KeyValue {
                key: "/k".into(),
                value: vec![1, 2],
                create_revision: 2,
                mod_revision: 9,
                version: 3,
                lease: 0,
            }],
            leases: vec![(3, 10)],
        });
        assert_eq!(Record::decode(&snap.encode()), Ok(snap));
        let bytes = txn.encode();
        for cut in 0..bytes.len() {
            assert!(Record::decode(&bytes[..cut]).is_err());
        }
        assert!(Record::decode(&[9, 0, 0]).is_err());
    }
}
