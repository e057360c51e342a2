-- 20261126000001 down: remove the TypeScript shape; the Rails shape is left exactly as blue needs it.
--
-- Applied by cutover_kit.db.migrations inside ONE transaction with lock_timeout = 200ms (by hand:
-- psql -1 -v ON_ERROR_STOP=1 -f <this file>). Drain green first: it needs these columns.
-- Nothing is lost: while the expand was live, the triggers wrote every change into the legacy
-- columns too, including rows green inserted without amount_cents/status. Dropping a column is
-- catalog-only. IF EXISTS everywhere: a rollback must not be blocked by drift in what it removes.
--
-- One exception, checked first: green accepts orders in any currency, and the Rails shape has none
-- (amount_cents is USD). Dropping `currency` would silently turn those orders into USD, so the
-- down migration refuses while any exists (the whole transaction stops; nothing is changed).

DO $$
DECLARE
    foreign_orders bigint;
    example_ids text;
BEGIN
    IF EXISTS (SELECT 1 FROM information_schema.columns
               WHERE table_schema = current_schema() AND table_name = 'orders' AND column_name = 'currency') THEN
        EXECUTE $q$SELECT count(*), string_agg(id::text, ', ' ORDER BY id) FILTER (WHERE rn <= 5)
                   FROM (SELECT id, row_number() OVER (ORDER BY id) AS rn FROM orders
                         WHERE currency IS NOT NULL AND currency <> 'USD') AS foreign_currency$q$
            INTO foreign_orders, example_ids;
        IF foreign_orders > 0 THEN
            RAISE EXCEPTION 'down migration would lose data: % order(s) have a currency other than USD (ids %), which the Rails shape cannot hold; keep the expand, or move those orders out first',
                foreign_orders, example_ids;
        END IF;
    END IF;
END
$$;

DROP TRIGGER IF EXISTS orders_sync_shapes ON orders;
DROP TRIGGER IF EXISTS line_items_sync_shapes ON line_items;
DROP TRIGGER IF EXISTS users_sync_shapes ON users;
DROP FUNCTION IF EXISTS orders_sync_shapes();
DROP FUNCTION IF EXISTS line_items_sync_shapes();
DROP FUNCTION IF EXISTS users_sync_shapes();

DROP INDEX IF EXISTS index_users_on_email_normalized;

ALTER TABLE orders
    DROP COLUMN IF EXISTS amount,
    DROP COLUMN IF EXISTS currency,
    DROP COLUMN IF EXISTS status_v2;
ALTER TABLE line_items
    DROP COLUMN IF EXISTS unit_price;
ALTER TABLE users
    DROP COLUMN IF EXISTS email_normalized;

DROP TYPE IF EXISTS order_status;

DELETE FROM schema_migrations WHERE version = '20261126000001';
