import fs from 'node:fs';

import type { Queryable, Row } from '../src/db';
import type { Feature, FlagEvaluator } from '../src/routes';

/** A database double: answers by the first registered SQL fragment the statement contains. */
export class FakeDb implements Queryable {
  readonly statements: { sql: string; params: unknown[] }[] = [];
  constructor(private readonly answers: [string, Row[] | Error | ((params: unknown[]) => Row[])][] = []) {}

  async query(sql: string, params: unknown[] = []): Promise<Row[]> {
    this.statements.push({ sql, params });
    for (const [fragment, answer] of this.answers) {
      if (sql.includes(fragment)) {
        if (answer instanceof Error) throw answer;
        return typeof answer === 'function' ? answer(params) : answer;
      }
    }
    if (sql.includes('schema_migrations')) return [{ version: '20261126000001' }];
    return [];
  }

  async transaction<T>(work: (client: Queryable) => Promise<T>): Promise<T> {
    return work(this);
  }

  async close(): Promise<void> {}
}

export function pgError(code: string, message = `pg error ${code}`): Error {
  return Object.assign(new Error(message), { code });
}

/** The flagd document cutover_kit.flags.flagd_file.render writes for a flag state. */
export function flagdDocument(features: { users: boolean; orders: boolean }, rolloutPercent: number, treatmentPercent = 50): object {
  const noUser = { '!': { var: 'targetingKey' } };
  const boolean = (on: boolean, description: string) => ({ state: 'ENABLED', variants: { on: true, off: false },
                                                         defaultVariant: on ? 'on' : 'off', metadata: { description } });
  return {
    $schema: 'https://flagd.dev/schema/v0/flags.json',
    metadata: { generator: 'cutover_kit.flags.flagd_file', format_version: 1 },
    flags: {
      'green.feature.users': boolean(features.users, 'users'),
      'green.feature.orders': boolean(features.orders, 'orders'),
      'green.rollout': {
        ...boolean(false, 'rollout'),
        targeting: { if: [{ '==': [{ var: 'via_router' }, true] }, 'on', noUser, 'off',
                          { fractional: [['on', rolloutPercent], ['off', 100 - rolloutPercent]] }] },
        metadata: { description: 'rollout', rollout_percent: rolloutPercent },
      },
      'experiment.order_summary': {
        state: 'ENABLED', variants: { control: 'control', treatment: 'treatment' }, defaultVariant: 'control',
        targeting: { if: [noUser, 'control', { fractional: [['treatment', treatmentPercent], ['control', 100 - treatmentPercent]] }] },
        metadata: { description: 'experiment', treatment_percent: treatmentPercent },
      },
    },
  };
}

/** Atomic replace, as FlagdFileStore.write does. */
export function writeFlags(file: string, document: object): void {
  const temporary = `${file}.tmp-${process.pid}`;
  fs.writeFileSync(temporary, JSON.stringify(document, null, 2));
  fs.renameSync(temporary, file);
}

export async function eventually(check: () => Promise<boolean>, timeoutMs: number): Promise<number> {
  const started = Date.now();
  while (Date.now() - started < timeoutMs) {
    if (await check()) return Date.now() - started;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  throw new Error(`condition not met within ${timeoutMs} ms`);
}

/** A flag evaluator with fixed answers. */
export function staticFlags(features: Partial<Record<Feature, boolean>>, rollout: (userId: number | undefined, viaRouter: boolean) => boolean): FlagEvaluator {
  return {
    backend: 'test',
    featureOn: (feature) => features[feature] ?? false,
    rolloutOn: rollout,
    experimentVariant: (userId) => (userId !== undefined && userId % 2 ? 'treatment' : 'control'),
    loadedState: async () => ({ provider_status: 'READY' }),
    close: async () => undefined,
  };
}

