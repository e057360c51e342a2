-- Transactional outbox of the apps' background jobs: one row per (order, kind) written by the job
-- that processed it (green: BullMQ, processed_by = 'bullmq'; blue: Sidekiq, 'sidekiq').
-- Idempotent (IF NOT EXISTS) so it can be replayed on an existing sandbox; not part of either
-- app's migrations: both colors share it whatever the schema version.

CREATE TABLE IF NOT EXISTS outbox (
    id bigserial PRIMARY KEY,
    order_id bigint NOT NULL,
    kind varchar NOT NULL,
    payload jsonb NOT NULL,
    created_at timestamp(6) NOT NULL DEFAULT now(),
    processed_by varchar NOT NULL
);
-- A retried job must not confirm an order twice.
CREATE UNIQUE INDEX IF NOT EXISTS index_outbox_on_order_id_and_kind ON outbox (order_id, kind);
