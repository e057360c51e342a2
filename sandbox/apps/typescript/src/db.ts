/**
 * PostgreSQL through node-postgres: one bounded pool, statements with a timeout, and the error
 * classes the API maps to status codes. The schema gate reads the database's schema version at
 * most once a second: green needs the expanded shape (20261126000001) to serve anything.
 */
import pg from 'pg';

import { pgSettings } from './config';
import { DatabaseUnavailable, HttpError } from './errors';

// Same numbers as the Python app: 20 connections, 5 s to get one, 2 s to connect, 5 s statements.
export const POOL_SIZE = 20;
export const GREEN_REQUIRED_SCHEMA = '20261126000001'; // sandbox/config.py GREEN_REQUIRED_SCHEMA
export const SCHEMA_CHECK_MS = 1000;

// bigint ids as numbers (JSON clients expect numbers; ids stay far below 2^53), and Rails-style
// UTC timestamps: `timestamp without time zone` columns hold UTC, whatever the host's TZ says.
pg.types.setTypeParser(pg.types.builtins.INT8, (text: string) => {
  const value = Number(text);
  if (!Number.isSafeInteger(value)) throw new Error(`bigint ${text} does not fit a JSON number`);
  return value;
});
pg.types.setTypeParser(pg.types.builtins.TIMESTAMP, (text: string) => new Date(`${text.replace(' ', 'T')}Z`));

export type Row = Record<string, unknown>;

export interface Queryable {
  query(sql: string, params?: unknown[]): Promise<Row[]>;
  transaction<T>(work: (client: Queryable) => Promise<T>): Promise<T>;
  close(): Promise<void>;
}

/** SQLSTATE classes that mean "the database cannot serve now", not "this request is wrong". */
const UNAVAILABLE_CLASSES = ['08', '53', '57', '58'];

export function isUnavailable(error: unknown): boolean {
  const code = (error as { code?: unknown })?.code;
  if (typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code)) {
    return UNAVAILABLE_CLASSES.includes(code.slice(0, 2));
  }
  // No SQLSTATE: the socket failed (ECONNREFUSED, reset) or the pool timed out waiting.
  return error instanceof Error;
}

export function sqlState(error: unknown): string | undefined {
  const code = (error as { code?: unknown })?.code;
  return typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code) ? code : undefined;
}

export class Database implements Queryable {
  private readonly pool: pg.Pool;

  constructor(dsn: string, log: (message: string) => void) {
    this.pool = new pg.Pool({
      ...pgSettings(dsn),
      max: POOL_SIZE,
      connectionTimeoutMillis: 5000,
      idleTimeoutMillis: 30_000,
      statement_timeout: 5000,
      application_name: 'sandbox-app-green',
    });
    // An idle connection the server dropped must not crash the process; the next checkout reconnects.
    this.pool.on('error', (error) => log(`idle database connection lost: ${error.message}`));
  }

  async query(sql: string, params: unknown[] = []): Promise<Row[]> {
    try {
      return (await this.pool.query(sql, params)).rows;
    } catch (error) {
      throw classify(error);
    }
  }

  async transaction<T>(work: (client: Queryable) => Promise<T>): Promise<T> {
    let client: pg.PoolClient;
    try {
      client = await this.pool.connect();
    } catch (error) {
      throw classify(error);
    }
    let broken = false;
    const scoped: Queryable = {
      query: async (sql, params = []) => {
        try {
          return (await client.query(sql, params)).rows;
        } catch (error) {
          broken = broken || sqlState(error) === undefined;
          throw classify(error);
        }
      },
      transaction: () => Promise.reject(new Error('nested transactions are not used')),
      close: async () => undefined,
    };
    try {
      await scoped.query('BEGIN');
      const result = await work(scoped);
      await scoped.query('COMMIT');
      return result;
    } catch (error) {
      if (!broken) await client.query('ROLLBACK').catch(() => { broken = true; });
      throw error;
    } finally {
      // A connection whose socket failed goes away instead of back to the pool.
      client.release(broken);
    }
  }

  async close(): Promise<void> {
    await this.pool.end();
  }
}

/** Connection-level failures become 503 DatabaseUnavailable; SQL errors keep their SQLSTATE. */
function classify(error: unknown): unknown {
  if (error instanceof HttpError) return error;
  if (sqlState(error) !== undefined && !isUnavailable(error)) return error;
  if (isUnavailable(error)) return new DatabaseUnavailable((error as Error).message.trim() || String(error));
  return error;
}

/** The database's schema version (max of schema_migrations), cached for `ttlMs`. */
export class SchemaGate {
  private version?: string;
  private checkedAt = 0;
  private inFlight?: Promise<string>;
  queries = 0; // how often the database was really asked (tests check the cache)

  constructor(private readonly db: Pick<Queryable, 'query'>, readonly required: string = GREEN_REQUIRED_SCHEMA,
              private readonly ttlMs: number = SCHEMA_CHECK_MS, private readonly clock: () => number = () => performance.now()) {}

  async currentVersion(): Promise<string> {
    if (this.version !== undefined && this.clock() - this.checkedAt < this.ttlMs) return this.version;
    // One query for all the requests that arrive while it runs.
    this.inFlight ??= (async () => {
      try {
        const rows = await this.db.query("SELECT coalesce(max(version), '') AS version FROM schema_migrations");
        this.queries++;
        this.version = String(rows[0].version);
        this.checkedAt = this.clock();
        return this.version;
      } finally {
        this.inFlight = undefined;
      }
    })();
    return this.inFlight;
  }

  invalidate(): void {
    this.version = undefined;
  }

  /** undefined when the schema is recent enough, else why green cannot serve. */
  async problem(): Promise<string | undefined> {
    const version = await this.currentVersion();
    return version < this.required ? `schema version ${version || '(none)'} < required ${this.required}` : undefined;
  }
}
