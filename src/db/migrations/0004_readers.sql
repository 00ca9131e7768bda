-- Readers an owner or manager admitted to a vehicle's payloads with a signed EIP-712 DataGrant
-- (docs/api.md). A grant counts only while its signer is still the owner or a manager.
create table node_readers (
  vehicle bytea not null,
  reader bytea not null,
  granted_by bytea not null,
  not_after bigint not null,           -- unix seconds
  signature bytea not null,
  created_at timestamptz not null default now(),
  primary key (vehicle, reader)
);
