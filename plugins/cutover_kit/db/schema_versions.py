"""Schema versions the cutover knows, defined once and import-free (stage 2 reads them at DAG
parse, where psycopg2 must not be imported; the sandbox's green checks it before serving)."""

BASE_VERSION = "20240101000000"  # the Rails schema as loaded by include/sql/bootstrap/legacy_schema.sql
EXPAND_VERSION = "20261126000001"  # expand to the TypeScript shape (stage 2); green needs it
