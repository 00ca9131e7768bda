-- Grants kept by the node (docs/api.md "Key grants"): a mailbox of signed KeyGrants and
-- PasskeyGrants that owners and managers store and grantees fetch. The car never asks the node:
-- it decides from the grant alone. Each grant was checked before it was stored (signed by the
-- vehicle's owner or a manager at that time); its on-chain status is read when it is listed.
create table node_key_grants (
  vehicle bytea not null,
  grant_id bytea not null,
  grantee bytea,                       -- a KeyGrant's grantee address (20 bytes)
  passkey bytea,                       -- a PasskeyGrant's P-256 public key (65 bytes)
  signer bytea not null,               -- the owner or manager whose signature it carries
  stored_by bytea not null,            -- the signed-in account that stored it
  grant_json jsonb not null,           -- the grant's fields, exactly as signed
  signature bytea not null,
  created_at timestamptz not null default now(),
  primary key (vehicle, grant_id),
  check ((grantee is null) <> (passkey is null))
);
create index node_key_grants_grantee on node_key_grants (grantee) where grantee is not null;
