import type { Scenario } from '../lib/context.ts';
export const churn: Scenario = { name: 'churn', title: 'TODO', async run() { throw new Error('not yet'); } };
