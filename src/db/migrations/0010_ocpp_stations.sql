-- The node's CSMS (OCPP 2.0.1, src/ocpp/csms.ts, docs/ocpp.md): the charging stations it knows,
-- what each said at boot, its connectors' status, and the notifications it sent.
create table ocpp_stations (
  station_id text primary key,       -- the OCPP identity: the last path segment of /ocpp/{stationId}
  password_hash text,                -- HTTP Basic password, scrypt (never stored in clear); null: none set
  revoked_at timestamptz,            -- refused at the handshake from then on
  created_at timestamptz not null default now(),
  vendor_name text,
  model text,
  serial_number text,
  firmware_version text,
  boot_reason text,
  booted_at timestamptz,
  last_seen_at timestamptz,
  connected boolean not null default false,
  security_profile smallint          -- of the current or last connection: 1, 2 or 3
);

create table ocpp_connectors (
  station_id text not null references ocpp_stations (station_id) on delete cascade,
  evse_id integer not null,
  connector_id integer not null,
  status text not null,              -- ConnectorStatusEnumType: Available, Occupied, Reserved, Unavailable, Faulted
  updated_at timestamptz not null,
  primary key (station_id, evse_id, connector_id)
);

create table ocpp_events (
  id bigserial primary key,
  station_id text not null references ocpp_stations (station_id) on delete cascade,
  received_at timestamptz not null default now(),
  kind text not null,                -- NotifyEvent, MeterValues (outside a transaction)
  payload jsonb not null
);
create index ocpp_events_station on ocpp_events (station_id, id);
