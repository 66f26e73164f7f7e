// Which pods the operator watches (core/selector.ts, core/spec.ts): each PgCluster's selector as the API's
// label-selector string, canonical so that equal selectors share a watch; selectors the API would refuse are
// reported as a spec problem instead of a watch that fails for ever; the label on pods written on.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { matchesSelector, selectorProblem, selectorString, type LabelSelector } from '../../src/core/selector.ts';
import { ANNOTATED_SELECTOR, effectiveSpec, podWatches } from '../../src/core/spec.ts';
import { newer } from '../../src/kube/watchSet.ts';

test('selectorString: every operator, canonical order', () => {
  const cases: [LabelSelector, string][] = [
    [{ matchLabels: { app: 'chat' } }, 'app=chat'],
    [{ matchLabels: { tier: 'web', app: 'chat' } }, 'app=chat,tier=web'],
    [{ matchExpressions: [{ key: 'app', operator: 'In', values: ['b', 'a'] }] }, 'app in (a,b)'],
    [{ matchExpressions: [{ key: 'env', operator: 'NotIn', values: ['dev'] }] }, 'env notin (dev)'],
    [{ matchExpressions: [{ key: 'example.com/role', operator: 'Exists' }] }, 'example.com/role'],
    [{ matchExpressions: [{ key: 'canary', operator: 'DoesNotExist' }] }, '!canary'],
    [{ matchLabels: { app: 'chat' }, matchExpressions: [{ key: 'canary', operator: 'DoesNotExist' }, { key: 'app', operator: 'In', values: ['chat'] }] }, '!canary,app in (chat),app=chat'],
  ];
  for (const [sel, want] of cases) assert.equal(selectorString(sel), want, JSON.stringify(sel));
});

test('selectorProblem: what the API server would refuse, said so a person can fix it', () => {
  const bad: [LabelSelector, RegExp][] = [
    [{ matchLabels: { app: 'has space' } }, /label value "has space" of "app"/],
    [{ matchLabels: { 'bad key!': 'x' } }, /label key "bad key!"/],
    [{ matchLabels: { 'UPPER.example.com/app': 'x' } }, /prefix must be a DNS subdomain/],
    [{ matchLabels: { app: 'x'.repeat(64) } }, /at most 63/],
    [{ matchExpressions: [{ key: 'app', operator: 'In', values: [] }] }, /needs at least one value/],
    [{ matchExpressions: [{ key: 'app', operator: 'Exists', values: ['x'] }] }, /takes no values/],
    [{ matchExpressions: [{ key: 'app', operator: 'Gt', values: ['1'] }] }, /must be In, NotIn, Exists or DoesNotExist/],
  ];
  for (const [sel, want] of bad) assert.match(selectorProblem(sel) ?? '(none)', want, JSON.stringify(sel));
  const good: LabelSelector[] = [
    { matchLabels: { app: 'chat', 'app.kubernetes.io/name': 'chat-1.2_x', empty: '' } },
    { matchExpressions: [{ key: 'app', operator: 'In', values: ['a', 'b'] }, { key: 'x', operator: 'DoesNotExist' }] },
  ];
  for (const sel of good) assert.equal(selectorProblem(sel), undefined, JSON.stringify(sel));
  const spec = effectiveSpec({ metadata: { name: 'chat', namespace: 'prod' }, spec: { selector: { matchLabels: { app: 'a,b' } }, postgres: { urlSecretRef: { name: 'db' } } } });
  assert.equal(spec.ok, false);
  assert.match(spec.ok ? '' : spec.message, /^spec\.selector: label value "a,b" of "app"/);
});

test('the string selects what matchesSelector selects (the server filters as the core would)', () => {
  // A minimal reading of the string form, enough for the shapes selectorString writes.
  const parse = (s: string) => (labels: Record<string, string>) => s.split(/,(?![^()]*\))/).every((part) => {
    let m: RegExpMatchArray | null;
    if ((m = part.match(/^(\S+) (in|notin) \((.*)\)$/))) {
      const [, k = '', op, vs = ''] = m;
      const has = Object.hasOwn(labels, k) && vs.split(',').includes(labels[k] as string);
      return op === 'in' ? has : !has;
    }
    if (part.startsWith('!')) return !Object.hasOwn(labels, part.slice(1));
    if ((m = part.match(/^([^=]+)=(.*)$/))) return labels[m[1] as string] === m[2];
    return Object.hasOwn(labels, part);
  });
  const sel: LabelSelector = { matchLabels: { app: 'chat' }, matchExpressions: [{ key: 'env', operator: 'NotIn', values: ['dev', 'qa'] }, { key: 'canary', operator: 'DoesNotExist' }] };
  const pods: Record<string, string>[] = [{ app: 'chat' }, { app: 'chat', env: 'dev' }, { app: 'chat', env: 'prod' }, { app: 'chat', canary: 'y' }, { app: 'web' }, {}];
  for (const labels of pods) assert.equal(parse(selectorString(sel))(labels), matchesSelector(labels, sel), JSON.stringify(labels));
});

test('podWatches: per namespace, the pods written on and each distinct selector once; a bad selector adds no watch', () => {
  const pc = (ns: string, name: string, selector: LabelSelector | undefined) => ({ metadata: { name, namespace: ns }, spec: selector ? { selector } : {} });
  const want = podWatches([
    pc('prod', 'chat', { matchLabels: { app: 'chat' } }),
    pc('prod', 'chat2', { matchLabels: { app: 'chat' } }),
    pc('prod', 'web', { matchLabels: { app: 'web' } }),
    pc('dev', 'broken', { matchLabels: { app: 'a b' } }),
    pc('dev', 'none', undefined),
  ]);
  assert.deepEqual([...want].map(([ns, s]) => [ns, [...s].sort()]), [
    ['prod', [ANNOTATED_SELECTOR, 'app=chat', 'app=web'].sort()],
    ['dev', [ANNOTATED_SELECTOR]],
  ]);
});

test('onlyOwnAnnotationsChanged: a PgCluster\'s own write coming back is not news to it; anything else is', async () => {
  const { markerKey, onlyOwnAnnotationsChanged } = await import('../../src/core/ownership.ts');
  const K = 'pgcluster.io/peers';
  const M = markerKey(K);
  const before = { other: 'x' };
  const written = { other: 'x', [K]: 'chat@10.0.0.1', [M]: `chat ${K}` };
  assert.equal(onlyOwnAnnotationsChanged(before, written, 'chat'), true, 'chat wrote its key and marker');
  assert.equal(onlyOwnAnnotationsChanged(written, { ...written, [K]: 'chat@10.0.0.1,chat@10.0.0.2' }, 'chat'), true, 'chat updated its value');
  assert.equal(onlyOwnAnnotationsChanged(written, before, 'chat'), true, 'chat removed its key and marker');
  assert.equal(onlyOwnAnnotationsChanged(before, written, 'web'), false, 'for another PgCluster it is news');
  assert.equal(onlyOwnAnnotationsChanged(written, { ...written, other: 'y' }, 'chat'), false, 'someone else changed an annotation');
  assert.equal(onlyOwnAnnotationsChanged(written, { ...written, 'pgcluster.io/node-name': 'n@h' }, 'chat'), false, 'the node-name override');
  assert.equal(onlyOwnAnnotationsChanged(before, { ...before, [K]: 'foreign' }, 'chat'), false, 'a value under our key without our marker');
  assert.equal(onlyOwnAnnotationsChanged(written, written, 'chat'), true);
});

test('podWatches: a namespace with more distinct selectors than the limit is watched whole, with one watch', async () => {
  const { ALL_PODS, MAX_SELECTOR_WATCHES_PER_NAMESPACE } = await import('../../src/core/spec.ts');
  const pcs = (ns: string, n: number) => Array.from({ length: n }, (_, i) => ({ metadata: { name: `c${i}`, namespace: ns }, spec: { selector: { matchLabels: { app: `c${i}` } } } }));
  const want = podWatches([...pcs('few', MAX_SELECTOR_WATCHES_PER_NAMESPACE), ...pcs('many', MAX_SELECTOR_WATCHES_PER_NAMESPACE + 1)]);
  assert.equal(want.get('few')?.size, MAX_SELECTOR_WATCHES_PER_NAMESPACE + 1, 'one per selector and the label\'s');
  assert.deepEqual([...want.get('many') ?? []], [ALL_PODS]);
});

test('Semaphore: every PgCluster\'s annotation writes share one bound, first come first served', async () => {
  const { Semaphore } = await import('../../src/core/limit.ts');
  const sem = new Semaphore(3);
  let inFlight = 0;
  let most = 0;
  const order: number[] = [];
  const gates: (() => void)[] = [];
  const tasks = Array.from({ length: 10 }, (_, i) => sem.run(async () => {
    inFlight++;
    most = Math.max(most, inFlight);
    order.push(i);
    await new Promise<void>((r) => gates.push(r));
    inFlight--;
    return i;
  }));
  for (let released = 0; released < 10; released++) {
    while (gates.length === 0) await new Promise((r) => setImmediate(r));
    gates.shift()?.();
  }
  assert.deepEqual(await Promise.all(tasks), [...Array(10).keys()]);
  assert.equal(most, 3);
  assert.deepEqual(order, [...Array(10).keys()]);
});

test('newer: of two copies of one pod held by two watches, the later resourceVersion wins (etcd revisions as digits)', () => {
  const at = (rv: string) => ({ metadata: { name: 'p', resourceVersion: rv } });
  const cases: [string, string, string][] = [
    ['9', '10', '10'], ['10', '9', '10'], ['123', '124', '124'], ['124', '123', '124'], ['5', '5', '5'],
    ['99999999999999999999', '100000000000000000000', '100000000000000000000'],
    ['abc', '5', 'abc'], // not digits: opaque, the first copy stays
  ];
  for (const [a, b, want] of cases) assert.equal(newer(at(a), at(b)).metadata.resourceVersion, want, `${a} vs ${b}`);
});
