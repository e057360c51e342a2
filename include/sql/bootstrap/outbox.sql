-- Transactional outbox shared by both apps: what the service has to tell the outside world, one
-- row per (topic, key), published later by a relay (published_at). Blue's Sidekiq job
-- (sandbox/apps/rails/app/jobs/order_confirmation_job.rb) and green's BullMQ job
-- (sandbox/apps/typescript/src/jobs.ts) both write `order.confirmed` keyed by the order id, so
-- an order is confirmed once whichever color created it; processed_by says which job did.
-- Applied at every sandbox `up` after legacy_schema.sql; idempotent (replayable on a sandbox).

CREATE TABLE IF NOT EXISTS outbox (
    id bigserial PRIMARY KEY,
    topic varchar NOT NULL,
    key varchar NOT NULL,
    payload jsonb NOT NULL,
    processed_by varchar NOT NULL,
    created_at timestamp(6) NOT NULL DEFAULT now(),
    published_at timestamp(6)
);
-- A retried (or the other color's) job must not confirm an order twice: inserts skip an
-- existing (topic, key) (ON CONFLICT DO NOTHING).
CREATE UNIQUE INDEX IF NOT EXISTS index_outbox_on_topic_and_key ON outbox (topic, key);
