import type { Scenario } from '../lib/context.ts';
export const pgload: Scenario = { name: 'pgload', title: 'TODO', async run() { throw new Error('not yet'); } };
