-- Transactions the node's CSMS saw (TransactionEvent Started/Updated/Ended), with the car-wallet
-- payment they carried (docs/ocpp.md "Payment mapping") and every meter value, signed ones kept.
create table ocpp_transactions (
  station_id text not null references ocpp_stations (station_id) on delete cascade,
  transaction_id text not null,      -- the station's, at most 36 characters
  evse_id integer,
  connector_id integer,
  id_token text,
  id_token_type text,
  vehicle bytea,                     -- the car's wallet, for a Carchain IdToken
  channel_id bytea,                  -- its ChargingChannels channel to this CPO
  channel_token bytea,               -- the channel's key: payer = vehicle, payee = the CPO, token, nonce
  channel_nonce numeric(20, 0),
  authorization_status text,         -- AuthorizationStatusEnumType the CSMS answered
  state text not null,               -- active | ended
  started_at timestamptz not null,
  updated_at timestamptz not null,
  ended_at timestamptz,
  last_seq_no integer not null,
  trigger_reason text,
  stopped_reason text,
  energy_wh numeric(20, 0) not null default 0,
  base_amount numeric(78, 0),        -- the channel's voucher total when the transaction started
  cumulative_amount numeric(78, 0),  -- the newest voucher's total
  amount numeric(78, 0) not null default 0, -- what this transaction's vouchers pay, token base units
  vouchers integer not null default 0,
  primary key (station_id, transaction_id)
);
create index ocpp_transactions_started on ocpp_transactions (started_at desc);

create table ocpp_meter_values (
  id bigserial primary key,
  station_id text not null,
  transaction_id text not null,
  sampled_at timestamptz not null,
  energy_wh numeric(20, 0),          -- Energy.Active.Import.Register in Wh, when the sample has one
  meter_value jsonb not null,        -- the MeterValueType as sent, signedMeterValue included
  signed boolean not null default false,
  foreign key (station_id, transaction_id) references ocpp_transactions (station_id, transaction_id) on delete cascade
);
create index ocpp_meter_values_transaction on ocpp_meter_values (station_id, transaction_id, id);
