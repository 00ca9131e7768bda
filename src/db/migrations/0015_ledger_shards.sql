-- Log shards (docs/ledger.md "Shards"): a deployment runs N logs, each vehicle in one of them by a
-- fixed rule. Every row of a log's tree names its shard; shard 0 is the log as it was, so a
-- database of one shard keeps every row where it stood. `ledger_log` holds one row per shard,
-- made when the deployment's shard count is fixed (src/ledger/shards.ts `ensureShards`).
-- Vehicles, checkpoints, forks and alerts need no shard: a vehicle's shard follows from its address.
alter table ledger_log drop column id;
alter table ledger_log add column shard integer not null default 0 primary key check (shard >= 0 and shard < 1024);

alter table ledger_leaves add column shard smallint not null default 0;
alter table ledger_leaves drop constraint ledger_leaves_pkey, add primary key (shard, leaf_index);

alter table ledger_nodes add column shard smallint not null default 0;
alter table ledger_nodes drop constraint ledger_nodes_pkey, add primary key (shard, level, node_index);

alter table ledger_anchors add column shard smallint not null default 0;
alter table ledger_anchors drop constraint ledger_anchors_pkey, add primary key (shard, tree_size);
