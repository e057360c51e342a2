/**
 * Unleash backend: the official Node SDK (unleash-client 6) polls the server's client API every
 * second with the client token and evaluates locally, so a request never waits for the network.
 * Context per request: `userId` (sticky rollout and experiment) and the custom property
 * `viaRouter` ("true"/"false") that the `green.rollout` flag's "via router" strategy matches (see
 * plugins/cutover_kit/flags/unleash_store.py). Until the first fetch, and for a flag the server
 * does not know, every answer is the Rails-safe default. Nothing is written to disk (in-memory
 * storage): a restarted app never starts from another process's stale flags.
 */
import { type Context, InMemStorageProvider, Unleash } from 'unleash-client';

import { EXPERIMENT_FLAG, EXPERIMENT_VARIANTS, FEATURE_FLAG_PREFIX, type Feature, type FlagEvaluator, ROLLOUT_FLAG } from './routes';

export function unleashContext(userId: number | undefined, viaRouter: boolean): Context {
  return { ...(userId === undefined ? {} : { userId: String(userId) }), properties: { viaRouter: viaRouter ? 'true' : 'false' } };
}

export class UnleashEvaluator implements FlagEvaluator {
  readonly backend = 'unleash';
  private ready = false;
  private lastError: string | null = null;

  private constructor(private readonly client: Unleash, readonly url: string) {
    client.on('synchronized', () => { this.ready = true; });
    client.on('changed', () => { this.ready = true; });
    client.on('error', (error: Error) => { this.lastError = error.message; });
    client.on('warn', () => undefined); // "unleash: fetch failed" warnings repeat every second; the error event keeps the last
  }

  static async open(url: string, clientToken: string, waitMs = 3000): Promise<UnleashEvaluator> {
    const client = new Unleash({
      url: `${url.replace(/\/+$/, '')}/api`,
      appName: 'cutover-sandbox',
      instanceId: `cutover-sandbox-green-${process.pid}`,
      refreshInterval: 1000,
      timeout: 2000,
      disableMetrics: true,
      customHeaders: { Authorization: clientToken },
      storageProvider: new InMemStorageProvider(),
      skipInstanceCountWarning: true,
    });
    const evaluator = new UnleashEvaluator(client, url);
    // Wait a little for the first fetch so the app starts with the real flags; an unreachable
    // server is not fatal: until it answers, every request is served by Rails.
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, waitMs);
      client.once('synchronized', () => { clearTimeout(timer); resolve(); });
    });
    return evaluator;
  }

  featureOn(feature: Feature, userId: number | undefined, viaRouter: boolean): boolean {
    return this.client.isEnabled(FEATURE_FLAG_PREFIX + feature, unleashContext(userId, viaRouter), false);
  }

  rolloutOn(userId: number | undefined, viaRouter: boolean): boolean {
    return this.client.isEnabled(ROLLOUT_FLAG, unleashContext(userId, viaRouter), false);
  }

  experimentVariant(userId: number | undefined): string {
    const variant = this.client.getVariant(EXPERIMENT_FLAG, unleashContext(userId, false));
    const name = variant.enabled ? variant.name : undefined;
    return name !== undefined && (EXPERIMENT_VARIANTS as readonly string[]).includes(name) ? name : EXPERIMENT_VARIANTS[0];
  }

  async loadedState(): Promise<Record<string, unknown>> {
    return { source: this.url, provider_status: this.ready ? 'READY' : 'NOT_READY', error: this.ready ? null : this.lastError };
  }

  async close(): Promise<void> {
    this.client.destroy();
  }
}
