/**
 * File backend: the OpenFeature server SDK with the flagd provider in in-process mode, reading
 * the flagd JSON file that cutover_kit.flags.flagd_file writes (atomic replace). Every default
 * is the Rails-safe answer: feature off, rollout off, experiment control.
 *
 * The provider watches its file with fs.watchFile at Node's default interval (~5 s). Node keeps
 * one stat watcher per path and uses the interval of the FIRST watchFile call, so this module
 * starts a watcher at `pollMs` before the provider attaches its own listener to it: flag flips
 * reach the app within ~pollMs, like the Python app's 50 ms.
 */
import fs from 'node:fs';
import path from 'node:path';

import { OpenFeature, type Client, type EvaluationContext } from '@openfeature/server-sdk';
import { FlagdProvider } from '@openfeature/flagd-provider';

import { EXPERIMENT_FLAG, EXPERIMENT_VARIANTS, FEATURE_FLAG_PREFIX, type Feature, type FlagEvaluator, ROLLOUT_FLAG } from './routes';

let domains = 0;
const keepWatcher = (): void => undefined;

export function flagContext(userId: number | undefined, viaRouter: boolean): EvaluationContext {
  return { ...(userId === undefined ? {} : { targetingKey: String(userId) }), via_router: viaRouter };
}

export class FlagdFileEvaluator implements FlagEvaluator {
  readonly backend = 'file';
  private constructor(readonly source: string, private readonly provider: FlagdProvider, private readonly client: Client) {}

  static async open(file: string, pollMs: number): Promise<FlagdFileEvaluator> {
    const source = path.resolve(file);
    if (!fs.existsSync(source)) {
      throw new Error(`flag file ${source} does not exist (the sandbox launcher writes it at \`up\`)`);
    }
    fs.watchFile(source, { interval: pollMs, persistent: false }, keepWatcher);
    const provider = new FlagdProvider({ resolverType: 'in-process', offlineFlagSourcePath: source });
    // A domain of its own: the OpenFeature API is process-global, and tests open several evaluators.
    const domain = `cutover-flags-${process.pid}-${++domains}`;
    try {
      await OpenFeature.setProviderAndWait(domain, provider);
    } catch (error) {
      fs.unwatchFile(source);
      throw new Error(`flag file ${source}: the flagd provider cannot load it: ${(error as Error).message}`);
    }
    return new FlagdFileEvaluator(source, provider, OpenFeature.getClient(domain));
  }

  featureOn(feature: Feature, userId: number | undefined, viaRouter: boolean): Promise<boolean> {
    return this.client.getBooleanValue(FEATURE_FLAG_PREFIX + feature, false, flagContext(userId, viaRouter));
  }

  rolloutOn(userId: number | undefined, viaRouter: boolean): Promise<boolean> {
    return this.client.getBooleanValue(ROLLOUT_FLAG, false, flagContext(userId, viaRouter));
  }

  async experimentVariant(userId: number | undefined): Promise<string> {
    const variant = await this.client.getStringValue(EXPERIMENT_FLAG, EXPERIMENT_VARIANTS[0], flagContext(userId, false));
    return (EXPERIMENT_VARIANTS as readonly string[]).includes(variant) ? variant : EXPERIMENT_VARIANTS[0];
  }

  /** The percentages the provider has loaded (from the flags' metadata) and its status. */
  async loadedState(): Promise<Record<string, unknown>> {
    const rollout = await this.client.getBooleanDetails(ROLLOUT_FLAG, false, flagContext(undefined, false));
    const experiment = await this.client.getStringDetails(EXPERIMENT_FLAG, EXPERIMENT_VARIANTS[0], flagContext(undefined, false));
    return {
      source: this.source,
      provider_status: this.client.providerStatus,
      rollout_percent: rollout.flagMetadata?.rollout_percent ?? null,
      experiment_treatment_percent: experiment.flagMetadata?.treatment_percent ?? null,
      error: rollout.errorMessage ?? experiment.errorMessage ?? null,
    };
  }

  async close(): Promise<void> {
    await this.provider.onClose();
    fs.unwatchFile(this.source);
  }
}
