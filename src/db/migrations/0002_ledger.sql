-- The ledger: an RFC 9162 Merkle log of event envelopes (docs/ledger.md "Store schema").
-- Hashes are 32-byte bytea, vehicles 20-byte bytea, times unix milliseconds.

-- The log head: one row. The one writer locks it (select … for update) for the whole append,
-- so appends are serialized while readers, who read committed rows only, are never blocked.
-- `frontier` holds the hashes of the perfect subtrees covering [0, tree_size), largest first
-- (one per 1-bit of tree_size, 32 bytes each): all an append needs to extend the tree.
create table ledger_log (
  id boolean primary key default true check (id),
  tree_size bigint not null,
  root_hash bytea not null,
  frontier bytea not null,
  updated_at timestamptz not null default now()
);
insert into ledger_log (tree_size, root_hash, frontier) values (0, sha256(''::bytea), ''::bytea);

-- The leaves, in log order. leaf_input is the canonical envelope (RFC 8785), the rest is
-- decoded from it for queries.
create table ledger_leaves (
  leaf_index bigint primary key,
  leaf_hash bytea not null unique,
  leaf_input bytea not null,
  vehicle bytea not null,
  seq bigint not null,
  time_ms bigint not null,
  kind text not null,
  unique (vehicle, seq)
);

-- Perfect subtrees of level ≥ 1: (level, node_index) covers leaves
-- [node_index·2^level, (node_index+1)·2^level). Written once, when complete; level 0 is
-- ledger_leaves.leaf_hash. Every proof is a fold of O(log n) of these.
create table ledger_nodes (
  level smallint not null,
  node_index bigint not null,
  hash bytea not null,
  primary key (level, node_index)
);

-- Where each vehicle's hash chain stands (its newest accepted event).
create table ledger_vehicles (
  vehicle bytea primary key,
  last_seq bigint not null,
  last_leaf_hash bytea not null,
  last_time_ms bigint not null,
  odometer_km double precision,
  updated_at timestamptz not null default now()
);

-- Payloads (salt + data), apart from the log so they can be erased without touching it.
-- Keyed by leaf_index: a sequential key appends to its index instead of splitting random pages.
create table ledger_payloads (
  leaf_index bigint primary key,
  salt bytea,
  data jsonb,
  erased_at timestamptz
);

-- The vehicles' checkpoint signatures (ECDSA P-256 r‖s over the leaf hash of seq).
create table ledger_checkpoints (
  vehicle bytea not null,
  seq bigint not null,
  leaf_hash bytea not null,
  signature bytea not null,
  received_at timestamptz not null default now(),
  primary key (vehicle, seq)
);

-- Evidence: batches refused because they conflict with accepted events (EVENT_FORK).
create table ledger_forks (
  id bigserial primary key,
  vehicle bytea not null,
  seq bigint not null,
  stored_leaf_hash bytea,
  received_leaf_hash bytea,
  batch jsonb not null,
  received_at timestamptz not null default now()
);
create index ledger_forks_vehicle on ledger_forks (vehicle);

-- Tamper alerts (ODOMETER_ROLLBACK, EVENT_FORK) for operators and the dashboard.
create table ledger_alerts (
  id bigserial primary key,
  vehicle bytea not null,
  code text not null,
  seq bigint,
  details jsonb not null,
  created_at timestamptz not null default now()
);
create index ledger_alerts_vehicle on ledger_alerts (vehicle);
