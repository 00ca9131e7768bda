-- The leaves partitioned by leaf_index range (docs/ledger.md "Store schema", "Partitions"): a log's
-- writes land in its newest partition, whose indexes stay small and hot however long the log
-- grows. The leaf_hash index takes random keys: as one index of a 10-million-entry log it was
-- written page by random page (a full-page WAL image each after every checkpoint), and ingest
-- into a large log ran at 0.7 of the rate into an empty one (docs/performance.md).
-- Partitions are made ahead of the appends by the store (src/ledger/partitions.ts); this
-- migration makes the ones the existing rows need, of 2^22 leaf indexes each.
-- (vehicle, seq) stays indexed but no longer unique as a constraint (a partitioned table's unique
-- constraints must hold the partition key): a vehicle's chain is checked against its head, under
-- its shard's append lock, before any row is written, which is what keeps seq unique.
alter table ledger_leaves rename to ledger_leaves_unpartitioned;
alter index ledger_leaves_pkey rename to ledger_leaves_unpartitioned_pkey;
alter index ledger_leaves_leaf_hash rename to ledger_leaves_unpartitioned_leaf_hash;
alter index ledger_leaves_vehicle_seq_key rename to ledger_leaves_unpartitioned_vehicle_seq;

create table ledger_leaves (
  leaf_index bigint not null,
  leaf_hash bytea not null,
  leaf_input bytea not null,
  vehicle bytea not null,
  seq bigint not null,
  time_ms bigint not null,
  kind text not null,
  salt bytea,
  data jsonb,
  erased_at timestamptz,
  shard smallint not null default 0,
  primary key (shard, leaf_index)
) partition by range (leaf_index);
create index ledger_leaves_leaf_hash on ledger_leaves using hash (leaf_hash);
create index ledger_leaves_vehicle_seq on ledger_leaves (vehicle, seq);

do $$
declare
  span constant bigint := 4194304;
  top bigint;
begin
  select max(leaf_index) into top from ledger_leaves_unpartitioned;
  if top is not null then
    for p in 0 .. top / span loop
      execute format('create table ledger_leaves_%s partition of ledger_leaves for values from (%s) to (%s)',
        p * span, p * span, (p + 1) * span);
    end loop;
  end if;
end $$;

insert into ledger_leaves (leaf_index, leaf_hash, leaf_input, vehicle, seq, time_ms, kind, salt, data, erased_at, shard)
  select leaf_index, leaf_hash, leaf_input, vehicle, seq, time_ms, kind, salt, data, erased_at, shard
    from ledger_leaves_unpartitioned;
drop table ledger_leaves_unpartitioned;
