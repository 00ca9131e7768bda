-- Ledger ingest at volume (docs/ledger.md "Store schema"): ledger_nodes keeps the perfect
-- subtrees of every 4th level only (4, 8, 12, …): one row per 16 leaves instead of one per leaf.
-- A subtree of another level is hashed on read from at most 8 stored ones below it (level 0 is
-- ledger_leaves.leaf_hash). The rows of the other levels, written before, are no longer read.
delete from ledger_nodes where level % 4 <> 0;
