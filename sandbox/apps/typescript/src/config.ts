/**
 * Process settings from the environment (SANDBOX_* names, set by the sandbox launcher) and
 * command-line flags (sandbox/launcher/apps.py passes them), which win over the
 * environment. Everything is checked before anything starts: a bad value is one clear line.
 */
export const LOOPBACK_HOSTS = new Set(['127.0.0.1', '::1', 'localhost']);
export const FLAG_BACKENDS = ['file', 'unleash'] as const;
export type FlagBackend = (typeof FLAG_BACKENDS)[number];
export const DEFAULT_FLAGS_POLL_MS = 50;

export class ConfigError extends Error {}

export interface AppConfig {
  host: string;
  port: number;
  /** libpq DSN (key=value or postgresql:// URL) of the cutover database. */
  databaseDsn: string;
  redisUrl: string;
  railsUrl: URL;
  pidfile?: string;
  flagBackend: FlagBackend;
  flagsFile?: string;
  flagsPollMs: number;
  unleashUrl?: string;
  unleashClientToken?: string;
}

const FLAG_OPTIONS: Record<string, string> = {
  '--host': 'SANDBOX_APP_HOST', '--port': 'SANDBOX_APP_PORT', '--rails-url': 'SANDBOX_RAILS_URL',
  '--pidfile': 'SANDBOX_APP_PIDFILE', '--color': 'SANDBOX_APP_COLOR',
};

/** `--name value` / `--name=value` flags folded into an environment copy (flags win). */
export function withArgs(env: Record<string, string | undefined>, argv: readonly string[]): Record<string, string | undefined> {
  const merged = { ...env };
  for (let index = 0; index < argv.length; index++) {
    const [flag, inline] = argv[index].split(/=(.*)/s, 2);
    const name = FLAG_OPTIONS[flag];
    if (name === undefined) {
      throw new ConfigError(`unknown argument ${JSON.stringify(argv[index])}; expected ${Object.keys(FLAG_OPTIONS).join(', ')}`);
    }
    const value = inline ?? argv[++index];
    if (value === undefined) throw new ConfigError(`${flag} needs a value`);
    merged[name] = value;
  }
  return merged;
}

export function loadConfig(env: Record<string, string | undefined>): AppConfig {
  const color = env.SANDBOX_APP_COLOR ?? 'green';
  if (color !== 'green') {
    throw new ConfigError(`this is the TypeScript (green) app; --color ${color} is the Rails app's job`);
  }
  const host = env.SANDBOX_APP_HOST || '127.0.0.1';
  if (!LOOPBACK_HOSTS.has(host)) {
    throw new ConfigError(`SANDBOX_APP_HOST=${host}: the sandbox app listens on loopback only (127.0.0.1 or ::1)`);
  }
  const port = parsePort('SANDBOX_APP_PORT', env.SANDBOX_APP_PORT);
  const databaseDsn = required(env, 'SANDBOX_APP_DSN', 'libpq DSN of the cutover database');
  const redisUrl = required(env, 'SANDBOX_REDIS_URL', 'redis://127.0.0.1:PORT/0 of the sandbox Redis (BullMQ jobs)');
  checkLoopbackUrl('SANDBOX_REDIS_URL', redisUrl, ['redis:']);
  const railsText = required(env, 'SANDBOX_RAILS_URL', "blue's base URL (http://127.0.0.1:PORT), where Rails-flagged requests go");
  const railsUrl = checkLoopbackUrl('SANDBOX_RAILS_URL', railsText, ['http:']);
  const flagBackend = (env.SANDBOX_FLAG_BACKEND || 'file') as FlagBackend;
  if (!FLAG_BACKENDS.includes(flagBackend)) {
    throw new ConfigError(`SANDBOX_FLAG_BACKEND=${flagBackend}; expected one of ${FLAG_BACKENDS.join(', ')}`);
  }
  const pollText = env.SANDBOX_FLAGS_POLL_MS || String(DEFAULT_FLAGS_POLL_MS);
  const flagsPollMs = Number(pollText);
  if (!Number.isInteger(flagsPollMs) || flagsPollMs < 10 || flagsPollMs > 60_000) {
    throw new ConfigError(`SANDBOX_FLAGS_POLL_MS=${pollText}: must be an integer in [10, 60000] ms`);
  }
  const config: AppConfig = { host, port, databaseDsn, redisUrl, railsUrl, flagBackend, flagsPollMs,
                              pidfile: env.SANDBOX_APP_PIDFILE || undefined };
  if (flagBackend === 'file') {
    config.flagsFile = required(env, 'SANDBOX_FLAGS_FILE', 'path of the flagd flag file; the launcher writes it');
  } else {
    config.unleashUrl = required(env, 'SANDBOX_UNLEASH_URL', 'Unleash server URL (flag backend unleash)');
    config.unleashClientToken = required(env, 'SANDBOX_UNLEASH_CLIENT_TOKEN', 'Unleash client token');
    if (!config.unleashClientToken.includes(':')) {
      throw new ConfigError('SANDBOX_UNLEASH_CLIENT_TOKEN is malformed (expected <project>:<environment>.<secret>)');
    }
  }
  return config;
}

function required(env: Record<string, string | undefined>, name: string, what: string): string {
  const value = env[name];
  if (!value) throw new ConfigError(`${name} is not set (${what})`);
  return value;
}

function parsePort(name: string, text: string | undefined): number {
  const port = Number(text);
  if (!text || !Number.isInteger(port) || port < 1024 || port > 65535) {
    throw new ConfigError(`${name}=${text ?? ''}: give a port in 1024-65535 (--port or ${name})`);
  }
  return port;
}

function checkLoopbackUrl(name: string, text: string, protocols: string[]): URL {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new ConfigError(`${name}=${text} is not a URL`);
  }
  if (!protocols.includes(url.protocol) || !url.port) {
    throw new ConfigError(`${name}=${text}: expected ${protocols[0]}//127.0.0.1:PORT`);
  }
  if (!LOOPBACK_HOSTS.has(url.hostname.replace(/^\[|\]$/g, ''))) {
    throw new ConfigError(`${name}=${text}: sandbox traffic stays on loopback (127.0.0.1)`);
  }
  return url;
}

/**
 * A libpq connection string as node-postgres settings. The launcher gives key=value DSNs
 * (psycopg2's make_dsn: `host=... port=... dbname=... user=... password='...'`); URLs pass through.
 */
export function parseLibpqDsn(dsn: string): Record<string, string> {
  const text = dsn.trim();
  if (/^postgres(ql)?:\/\//.test(text)) {
    return { connectionString: text };
  }
  const settings: Record<string, string> = {};
  let index = 0;
  while (index < text.length) {
    while (/\s/.test(text[index] ?? '')) index++;
    if (index >= text.length) break;
    const keyMatch = /^([A-Za-z_]+)\s*=\s*/.exec(text.slice(index));
    if (!keyMatch) throw new ConfigError(`DSN: expected key=value at ${JSON.stringify(text.slice(index, index + 20))}`);
    index += keyMatch[0].length;
    let value = '';
    if (text[index] === "'") {
      index++;
      for (;;) {
        if (index >= text.length) throw new ConfigError(`DSN: unterminated quoted value for ${keyMatch[1]}`);
        const char = text[index++];
        if (char === "'") break;
        value += char === '\\' ? text[index++] ?? '' : char;
      }
    } else {
      while (index < text.length && !/\s/.test(text[index])) {
        const char = text[index++];
        value += char === '\\' ? text[index++] ?? '' : char;
      }
    }
    settings[keyMatch[1]] = value;
  }
  return settings;
}

const PG_SETTING: Record<string, string> = { host: 'host', hostaddr: 'host', port: 'port', dbname: 'database', user: 'user', password: 'password' };

/** node-postgres pool settings from a libpq DSN; a key it cannot honour is refused by name. */
export function pgSettings(dsn: string): Record<string, string | number> {
  const libpq = parseLibpqDsn(dsn);
  if (libpq.connectionString !== undefined) return libpq;
  const settings: Record<string, string | number> = {};
  for (const [key, value] of Object.entries(libpq)) {
    if (key === 'connect_timeout' || key === 'application_name' || key === 'options') continue; // the pool sets its own
    const name = PG_SETTING[key];
    if (name === undefined) throw new ConfigError(`DSN setting ${key} is not supported by the TypeScript app`);
    settings[name] = name === 'port' ? Number(value) : value;
  }
  return settings;
}
