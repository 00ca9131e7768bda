-- The chain indexer's view of vehicle titles (VehicleRegistry ERC-721 Transfer events), so the
-- fleet view does not ask the chain for every owner on every request.
create table node_titles (
  vehicle bytea primary key,
  owner bytea not null,
  block_number bigint not null
);
