/** A work-queue key, `<namespace>/<name>`, as its two parts. */
export function splitKey(key: string): [string, string] {
  const i = key.indexOf('/');
  return [key.slice(0, i), key.slice(i + 1)];
}

/** A work-queue key's parts as metric labels. */
export function keyLabels(key: string): { namespace: string; name: string } {
  const [namespace, name] = splitKey(key);
  return { namespace, name };
}
