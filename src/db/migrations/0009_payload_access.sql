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

-- Payloads by title period (docs/api.md "Payload access"): every owner reads and erases only the
-- events of the time it held the title, so a buyer does not read the seller's history and the
-- seller can still erase it. node_title_transfers is the history of VehicleRegistry Transfer
-- events the chain indexer follows (node_titles keeps only the newest); at_ms is the block's
-- timestamp, compared with the car-signed event time.
create table node_title_transfers (
  vehicle bytea not null,
  block_number bigint not null,
  log_index integer not null,
  owner bytea not null,                -- the new owner (zero address: burnt)
  at_ms bigint not null,               -- block timestamp, unix ms
  primary key (vehicle, block_number, log_index)
);
-- The title owner a reader's grant was accepted under: the reader sees that owner's periods only,
-- and the grant ends when the title moves on (null: accepted before this migration).
alter table node_readers add column title_owner bytea;
-- Re-read Transfer events from the deployment once, to fill the history of every title.
delete from node_settings where key = 'indexerCursor';
