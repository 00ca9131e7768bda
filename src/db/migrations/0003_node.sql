-- The node's own records: the vehicles it knows (certificate-authenticated), the anchors it sent,
-- and owners' sign-in sessions (EIP-4361).

-- A vehicle known to the node: its certificate (validated against the OEM roots and the on-chain
-- registry at registration) and the P-256 key that signs its checkpoints.
create table node_vehicles (
  vehicle bytea primary key,           -- the vehicle's address (its wallet, bound by the certificate)
  vin text not null,
  certificate bytea not null,          -- DER
  chain bytea[] not null,              -- DER of the intermediates
  fingerprint bytea not null,          -- SHA-256 of the certificate
  public_key bytea not null,           -- P-256 uncompressed point
  registered_at timestamptz not null default now()
);

-- Roots the node sent to LedgerAnchor. A row is written after the transaction is mined; rows
-- whose anchor the chain lost (embedded chain crash, reorg) are removed on reconcile and the
-- next anchor covers them.
create table ledger_anchors (
  tree_size bigint primary key,
  root_hash bytea not null,
  tx_hash bytea not null,
  block_number bigint not null,
  gas_used bigint not null,
  anchored_at timestamptz not null default now()
);

-- Sign-In with Ethereum: single-use nonces and the sessions they open.
create table auth_nonces (
  nonce text primary key,
  expires_at timestamptz not null
);
create table auth_sessions (
  token_hash bytea primary key,
  address bytea not null,
  expires_at timestamptz not null
);
