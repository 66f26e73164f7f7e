import type { Scenario } from '../lib/context.ts';
export const steady: Scenario = { name: 'steady', title: 'TODO', async run() { throw new Error('not yet'); } };
