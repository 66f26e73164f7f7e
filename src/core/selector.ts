// Kubernetes LabelSelector semantics (matchLabels AND matchExpressions).
export interface LabelSelectorRequirement {
  key: string;
  operator: string; // In | NotIn | Exists | DoesNotExist
  values?: string[];
}
export interface LabelSelector {
  matchLabels?: Record<string, string>;
  matchExpressions?: LabelSelectorRequirement[];
}

export function matchesSelector(labels: Readonly<Record<string, string>>, selector: LabelSelector): boolean {
  for (const [k, v] of Object.entries(selector.matchLabels ?? {})) {
    if (labels[k] !== v) return false;
  }
  for (const req of selector.matchExpressions ?? []) {
    const has = Object.hasOwn(labels, req.key);
    const value = labels[req.key];
    const values = req.values ?? [];
    switch (req.operator) {
      case 'In': if (!has || !values.includes(value as string)) return false; break;
      case 'NotIn': if (has && values.includes(value as string)) return false; break;
      case 'Exists': if (!has) return false; break;
      case 'DoesNotExist': if (has) return false; break;
      default: return false; // unknown operators select nothing (the CRD refuses them anyway)
    }
  }
  return true;
}

/** True when the selector has at least one requirement: an empty selector would select every pod. */
export function isNonEmptySelector(selector: LabelSelector | undefined): selector is LabelSelector {
  return !!selector && (Object.keys(selector.matchLabels ?? {}).length > 0 || (selector.matchExpressions ?? []).length > 0);
}

// Label syntax (apimachinery's validation): an optional DNS-subdomain prefix and a name of at most 63.
const LABEL_NAME = /^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)$/;
const LABEL_PREFIX = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const LABEL_VALUE = /^(([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?)$/;

function labelKeyProblem(key: string): string | undefined {
  const slash = key.lastIndexOf('/');
  const prefix = slash >= 0 ? key.slice(0, slash) : undefined;
  const name = slash >= 0 ? key.slice(slash + 1) : key;
  if (prefix !== undefined && (prefix.length > 253 || !LABEL_PREFIX.test(prefix))) return `label key "${key}": the prefix must be a DNS subdomain`;
  if (!LABEL_NAME.test(name)) return `label key "${key}": the name must be 1 to 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit`;
  return undefined;
}

/**
 * Where the selector cannot be sent to the API server as a label selector (the operator watches the selected
 * pods server-side, kube/podCache.ts): what is wrong, for a person to fix; undefined when it can.
 */
export function selectorProblem(selector: LabelSelector): string | undefined {
  for (const [k, v] of Object.entries(selector.matchLabels ?? {})) {
    const p = labelKeyProblem(k);
    if (p) return p;
    if (typeof v !== 'string' || !LABEL_VALUE.test(v)) return `label value "${v}" of "${k}": at most 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit`;
  }
  for (const req of selector.matchExpressions ?? []) {
    const p = labelKeyProblem(req.key);
    if (p) return p;
    const values = req.values ?? [];
    if (req.operator === 'In' || req.operator === 'NotIn') {
      if (values.length === 0) return `matchExpressions "${req.key} ${req.operator}" needs at least one value`;
      const bad = values.find((v) => !LABEL_VALUE.test(v));
      if (bad !== undefined) return `label value "${bad}" of "${req.key}": at most 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit`;
    } else if (req.operator === 'Exists' || req.operator === 'DoesNotExist') {
      if (values.length > 0) return `matchExpressions "${req.key} ${req.operator}" takes no values`;
    } else {
      return `matchExpressions operator "${req.operator}" of "${req.key}" must be In, NotIn, Exists or DoesNotExist`;
    }
  }
  return undefined;
}

/**
 * The selector in the API's string form (`?labelSelector=`), canonical (sorted) so that equal selectors share
 * one watch. Call it only on a selector without a selectorProblem.
 */
export function selectorString(selector: LabelSelector): string {
  const parts: string[] = [];
  for (const [k, v] of Object.entries(selector.matchLabels ?? {})) parts.push(`${k}=${v}`);
  for (const req of selector.matchExpressions ?? []) {
    const values = [...(req.values ?? [])].sort().join(',');
    if (req.operator === 'In') parts.push(`${req.key} in (${values})`);
    else if (req.operator === 'NotIn') parts.push(`${req.key} notin (${values})`);
    else if (req.operator === 'Exists') parts.push(req.key);
    else parts.push(`!${req.key}`);
  }
  return [...new Set(parts)].sort().join(',');
}
