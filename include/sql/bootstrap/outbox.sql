-- Transactional outbox of the Rails app ("blue"): the order confirmation its Sidekiq job writes
-- (sandbox/apps/rails/app/jobs/order_confirmation_job.rb), one row per (topic, key), published
-- later by a relay (published_at). Idempotent, like legacy_schema.sql: replayable on an existing
-- sandbox.

CREATE TABLE IF NOT EXISTS outbox_messages (
    id bigserial PRIMARY KEY,
    topic varchar NOT NULL,
    key varchar NOT NULL,
    payload jsonb NOT NULL,
    created_at timestamp(6) NOT NULL,
    published_at timestamp(6)
);
-- A retried job must not confirm an order twice: it inserts ON CONFLICT (topic, key) DO NOTHING.
CREATE UNIQUE INDEX IF NOT EXISTS index_outbox_messages_on_topic_and_key ON outbox_messages (topic, key);

-- Green's BullMQ job writes its own table for now; the wiring of issue 9 makes both apps share one.

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
