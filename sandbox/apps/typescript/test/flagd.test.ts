import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';

import { FlagdFileEvaluator } from '../src/flagd';
import { eventually, flagdDocument, writeFlags } from './helpers';

test('the flagd provider evaluates the flag file in-process and follows its changes', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'green-flags-'));
  const file = path.join(dir, 'flagd.json');
  writeFlags(file, flagdDocument({ users: true, orders: false }, 30));
  const flags = await FlagdFileEvaluator.open(file, 50);
  try {
    assert.equal(await flags.featureOn('users', undefined, false), true);
    assert.equal(await flags.featureOn('orders', 5, true), false);
    assert.equal(await flags.rolloutOn(undefined, true), true, 'routed requests: on');
    assert.equal(await flags.rolloutOn(undefined, false), false, 'direct request without a user: Rails');
    const on: number[] = [];
    for (let user = 1; user <= 400; user++) if (await flags.rolloutOn(user, false)) on.push(user);
    assert.ok(on.length > 80 && on.length < 160, `about 30 % of 400 users, got ${on.length}`);
    assert.equal(await flags.rolloutOn(on[0], false), true, 'sticky per user');
    const variants = new Set<string>();
    for (let user = 1; user <= 50; user++) variants.add(await flags.experimentVariant(user));
    assert.deepEqual([...variants].sort(), ['control', 'treatment']);
    assert.equal(await flags.experimentVariant(undefined), 'control');
    const state = await flags.loadedState();
    assert.deepEqual([state.provider_status, state.rollout_percent, state.experiment_treatment_percent], ['READY', 30, 50]);

    writeFlags(file, flagdDocument({ users: false, orders: true }, 100));
    const took = await eventually(async () => !(await flags.featureOn('users', undefined, false)), 2000);
    assert.ok(took < 1000, `a flag flip reaches the app within the poll interval, took ${took} ms`);
    assert.equal(await flags.featureOn('orders', undefined, false), true);
    assert.equal(await flags.rolloutOn(12345, false), true);

    fs.writeFileSync(file, '{"flags": ');
    await new Promise((resolve) => setTimeout(resolve, 200));
    assert.equal(await flags.featureOn('orders', undefined, false), true, 'a malformed file leaves the last good flags');
  } finally {
    await flags.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('a missing flag file is refused at start', async () => {
  await assert.rejects(FlagdFileEvaluator.open('/nonexistent/flagd.json', 50), /does not exist/);
});
