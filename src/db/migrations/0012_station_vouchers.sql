-- The charge-point operator's voucher book shared by all its chargers, in whichever processes they
-- run (src/station/database-voucher-book.ts): the newest voucher per channel and what was claimed,
-- and which session holds each channel. One session per channel at a time across the operator, so
-- two sessions never accept vouchers from the same base (docs/payments.md "One session per channel").
create table station_vouchers (
  channel_id bytea primary key,
  cumulative_amount numeric(78, 0) not null,
  meter_wh numeric(20, 0) not null,  -- uint64
  signature bytea not null,
  payer bytea not null,
  payee bytea not null,
  token bytea not null,
  nonce numeric(78, 0) not null,
  claimed numeric(78, 0) not null default 0
);

create table station_channel_holds (
  channel_id bytea primary key,
  holder text not null,              -- drawn by the station per session, never chosen by the car
  expires_at timestamptz not null    -- renewed with every voucher; a dead charger's hold lapses
);
