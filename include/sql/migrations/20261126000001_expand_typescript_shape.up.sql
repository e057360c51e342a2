-- 20261126000001 expand: add the TypeScript rewrite's shape NEXT TO the Rails one (expand/contract).
--
-- Applied by cutover_kit.db.migrations inside ONE transaction with lock_timeout = 200ms (also
-- runnable by hand: psql -1 -v ON_ERROR_STOP=1 -f <this file>). Every statement is catalog-only
-- or reads rows without rewriting them, so the exclusive locks are held for milliseconds:
-- ADD COLUMN without a default (or with a constant one) does not rewrite the table.
--
-- Blue keeps reading and writing only the legacy columns. Green writes the new ones. The BEFORE
-- triggers keep both shapes equal for every row written from now on, whichever app writes it,
-- so the down migration can drop the new columns without losing a write. Existing rows get their
-- new columns from the batched backfill (cutover_kit.db.migrations.backfill), not here.
-- The new columns stay NULLable until the contract stage.

CREATE TYPE order_status AS ENUM ('pending', 'paid', 'shipped', 'cancelled', 'refunded');

ALTER TABLE orders
    ADD COLUMN amount numeric(12, 2),
    ADD COLUMN currency char(3) DEFAULT 'USD',
    ADD COLUMN status_v2 order_status;

ALTER TABLE line_items
    ADD COLUMN unit_price numeric(12, 2);

ALTER TABLE users
    ADD COLUMN email_normalized varchar;

-- Green looks users up by normalised email, so it must be unique. Checked here, under the lock
-- the ALTER above holds, because the backfill would otherwise fail half-way on the first clash.
DO $$
DECLARE
    clash text;
    copies bigint;
BEGIN
    SELECT lower(btrim(email)), count(*) INTO clash, copies
    FROM users GROUP BY 1 HAVING count(*) > 1 ORDER BY 1 LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'users.email is not unique once normalised: % rows normalise to %; merge them before the expand', copies, clash
            USING ERRCODE = 'unique_violation';
    END IF;
END $$;

CREATE UNIQUE INDEX index_users_on_email_normalized ON users (email_normalized);

-- orders: amount_cents <-> amount, status <-> status_v2.
-- INSERT: a new-shape value present (green) wins, else the legacy one (blue) is copied over.
-- UPDATE: the side whose value changed wins; an unset new column is filled from the legacy one.
CREATE FUNCTION orders_sync_shapes() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        IF NEW.amount IS NOT NULL THEN
            NEW.amount_cents := round(NEW.amount * 100);
        ELSIF NEW.amount_cents IS NOT NULL THEN
            NEW.amount := round(NEW.amount_cents / 100.0, 2);
        END IF;
        IF NEW.status_v2 IS NOT NULL THEN
            NEW.status := NEW.status_v2::text;
        ELSIF NEW.status IS NOT NULL THEN
            NEW.status_v2 := NEW.status::order_status;
        END IF;
    ELSE
        IF NEW.amount IS DISTINCT FROM OLD.amount AND NEW.amount IS NOT NULL THEN
            NEW.amount_cents := round(NEW.amount * 100);
        ELSIF NEW.amount_cents IS DISTINCT FROM OLD.amount_cents OR NEW.amount IS NULL THEN
            NEW.amount := round(NEW.amount_cents / 100.0, 2);
        END IF;
        IF NEW.status_v2 IS DISTINCT FROM OLD.status_v2 AND NEW.status_v2 IS NOT NULL THEN
            NEW.status := NEW.status_v2::text;
        ELSIF NEW.status IS DISTINCT FROM OLD.status OR NEW.status_v2 IS NULL THEN
            NEW.status_v2 := NEW.status::order_status;
        END IF;
    END IF;
    RETURN NEW;
END
$$;

-- WHEN: the function only runs for rows whose two shapes disagree (a one-sided write, or a row
-- not backfilled yet). The condition is evaluated without entering PL/pgSQL, so the backfill,
-- which writes both shapes equal, does not pay for a function call per row.
CREATE TRIGGER orders_sync_shapes BEFORE INSERT OR UPDATE ON orders
    FOR EACH ROW
    WHEN (NEW.amount IS DISTINCT FROM round(NEW.amount_cents / 100.0, 2)
          OR NEW.status_v2::text IS DISTINCT FROM NEW.status)
    EXECUTE FUNCTION orders_sync_shapes();

-- line_items: unit_price_cents <-> unit_price, same rules.
CREATE FUNCTION line_items_sync_shapes() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        IF NEW.unit_price IS NOT NULL THEN
            NEW.unit_price_cents := round(NEW.unit_price * 100);
        ELSIF NEW.unit_price_cents IS NOT NULL THEN
            NEW.unit_price := round(NEW.unit_price_cents / 100.0, 2);
        END IF;
    ELSIF NEW.unit_price IS DISTINCT FROM OLD.unit_price AND NEW.unit_price IS NOT NULL THEN
        NEW.unit_price_cents := round(NEW.unit_price * 100);
    ELSIF NEW.unit_price_cents IS DISTINCT FROM OLD.unit_price_cents OR NEW.unit_price IS NULL THEN
        NEW.unit_price := round(NEW.unit_price_cents / 100.0, 2);
    END IF;
    RETURN NEW;
END
$$;

CREATE TRIGGER line_items_sync_shapes BEFORE INSERT OR UPDATE ON line_items
    FOR EACH ROW
    WHEN (NEW.unit_price IS DISTINCT FROM round(NEW.unit_price_cents / 100.0, 2))
    EXECUTE FUNCTION line_items_sync_shapes();

-- users: email stays the source of truth; its normalised form is derived on every write.
CREATE FUNCTION users_sync_shapes() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.email_normalized := lower(btrim(NEW.email));
    RETURN NEW;
END
$$;

CREATE TRIGGER users_sync_shapes BEFORE INSERT OR UPDATE ON users
    FOR EACH ROW
    WHEN (NEW.email_normalized IS DISTINCT FROM lower(btrim(NEW.email)))
    EXECUTE FUNCTION users_sync_shapes();

INSERT INTO schema_migrations (version) VALUES ('20261126000001');
