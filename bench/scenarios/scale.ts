import type { Scenario } from '../lib/context.ts';
export const scale: Scenario = { name: 'scale', title: 'TODO', async run() { throw new Error('not yet'); } };
