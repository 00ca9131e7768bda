-- Core settings of one Carchain node: which chain and contracts it belongs to.
create table node_settings (
  key text primary key,
  value jsonb not null,
  updated_at timestamptz not null default now()
);
