// The desired outputs (README, "Outputs"). No timestamps: they change exactly when membership does.
import type { Peer } from './peerTable.ts';

export interface PeersDocument {
  channel: string;
  peers: Peer[];
}

export function configMapData(channel: string, peers: readonly Peer[]): Record<string, string> {
  const sorted = [...peers].sort((a, b) => (a.node < b.node ? -1 : a.node > b.node ? 1 : 0));
  const hosts = [...new Set(sorted.map((p) => p.host))].sort();
  const doc: PeersDocument = {
    channel,
    peers: sorted.map((p) => (p.pod ? { node: p.node, host: p.host, source: p.source, pod: p.pod } : { node: p.node, host: p.host, source: p.source })),
  };
  return {
    peers: sorted.map((p) => `${p.node}\n`).join(''),
    'peers.json': `${JSON.stringify(doc, null, 2)}\n`,
    'hosts.erlang': hosts.map((h) => `'${h.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'.\n`).join(''),
  };
}

export function annotationValue(peers: readonly Peer[]): string {
  return peers.map((p) => p.node).sort().join(',');
}

/** Reads back remote peers from a published peers.json (to survive an operator restart). */
export function remotePeersFromConfigMap(data: Readonly<Record<string, string>> | undefined): { node: string; host: string }[] {
  const raw = data?.['peers.json'];
  if (!raw) return [];
  try {
    const doc: unknown = JSON.parse(raw);
    if (typeof doc !== 'object' || doc === null || !Array.isArray((doc as { peers?: unknown }).peers)) return [];
    const out: { node: string; host: string }[] = [];
    for (const p of (doc as { peers: unknown[] }).peers) {
      if (typeof p !== 'object' || p === null) continue;
      const { node, host, source } = p as Record<string, unknown>;
      if (source === 'remote' && typeof node === 'string' && typeof host === 'string') out.push({ node, host });
    }
    return out;
  } catch {
    return [];
  }
}
