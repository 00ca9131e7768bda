-- Payload access that cannot be replayed (docs/api.md "Payload access"): each DataGrant carries
-- its signing time (issuedAtMs); the node keeps the newest it accepted per (vehicle, reader) and
-- a record of each removal, and refuses a grant that is not newer than both.
alter table node_readers add column issued_at_ms bigint not null default 0;
create table node_reader_removals (
  vehicle bytea not null,
  reader bytea not null,
  removed_at_ms bigint not null,       -- unix ms: grants issued at or before it are refused
  primary key (vehicle, reader)
);
