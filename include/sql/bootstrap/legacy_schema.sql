-- Schema of the legacy Rails app ("blue") as `rails db:schema:load` would leave it: bigint ids,
-- timestamp(6) audit columns set by the application (no defaults), schema_migrations and
-- ar_internal_metadata bookkeeping. The rewrite ("green") must keep working on exactly this.
-- Idempotent (IF NOT EXISTS / ON CONFLICT) so it can be replayed on an existing sandbox.

CREATE TABLE IF NOT EXISTS schema_migrations (
    version varchar NOT NULL PRIMARY KEY
);

CREATE TABLE IF NOT EXISTS ar_internal_metadata (
    key varchar NOT NULL PRIMARY KEY,
    value varchar,
    created_at timestamp(6) NOT NULL,
    updated_at timestamp(6) NOT NULL
);

CREATE TABLE IF NOT EXISTS users (
    id bigserial PRIMARY KEY,
    email varchar NOT NULL,
    name varchar,
    created_at timestamp(6) NOT NULL,
    updated_at timestamp(6) NOT NULL
);
-- Rails names unique indexes index_<table>_on_<column>; keep that so migrations on either side match.
CREATE UNIQUE INDEX IF NOT EXISTS index_users_on_email ON users (email);

CREATE TABLE IF NOT EXISTS orders (
    id bigserial PRIMARY KEY,
    user_id bigint NOT NULL,
    amount_cents integer NOT NULL,
    status varchar NOT NULL DEFAULT 'pending',
    created_at timestamp(6) NOT NULL,
    updated_at timestamp(6) NOT NULL,
    -- Rails validates the status enum in the model; the check makes the contract explicit for green.
    CONSTRAINT orders_status_check CHECK (status IN ('pending', 'paid', 'shipped', 'cancelled', 'refunded')),
    CONSTRAINT fk_rails_orders_user_id FOREIGN KEY (user_id) REFERENCES users (id)
);
CREATE INDEX IF NOT EXISTS index_orders_on_user_id ON orders (user_id);

-- Rails `has_many :line_items` on Order: integer cents like the parent, one row per SKU.
CREATE TABLE IF NOT EXISTS line_items (
    id bigserial PRIMARY KEY,
    order_id bigint NOT NULL,
    sku varchar NOT NULL,
    quantity integer NOT NULL,
    unit_price_cents integer NOT NULL,
    created_at timestamp(6) NOT NULL,
    updated_at timestamp(6) NOT NULL,
    CONSTRAINT fk_rails_line_items_order_id FOREIGN KEY (order_id) REFERENCES orders (id)
);
CREATE INDEX IF NOT EXISTS index_line_items_on_order_id ON line_items (order_id);

INSERT INTO schema_migrations (version) VALUES ('20240101000000') ON CONFLICT DO NOTHING;
INSERT INTO ar_internal_metadata (key, value, created_at, updated_at)
VALUES ('environment', 'sandbox', now(), now())
ON CONFLICT DO NOTHING;
