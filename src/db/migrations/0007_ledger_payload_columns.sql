-- Ledger ingest at volume (docs/ledger.md "Store schema"), measured on both engines:
-- - an event's payload (salt, data, erased_at) moves from its own table into the leaf's row:
--   one row and one index entry per event fewer to write. It is still apart from the envelope
--   (leaf_input), which is all the log and its proofs cover; erasing it nulls these columns.
-- - leaf_hash is found through a hash index instead of a unique btree: lookups are by equality
--   only, entries are 4-byte hash codes instead of 32-byte keys spread at random, and uniqueness
--   already follows from (vehicle, seq) (a leaf hash is the SHA-256 of the envelope holding both).
alter table ledger_leaves add column salt bytea, add column data jsonb, add column erased_at timestamptz;
update ledger_leaves l set salt = p.salt, data = p.data, erased_at = p.erased_at
  from ledger_payloads p where p.leaf_index = l.leaf_index;
-- A payload row erased, or stored without a salt (never written so), is an erased payload.
update ledger_leaves l set erased_at = coalesce(p.erased_at, now())
  from ledger_payloads p where p.leaf_index = l.leaf_index and p.salt is null;
drop table ledger_payloads;
alter table ledger_leaves drop constraint ledger_leaves_leaf_hash_key;
create index ledger_leaves_leaf_hash on ledger_leaves using hash (leaf_hash);
