// The desired outputs (docs/outputs.md). No timestamps: they change exactly when membership does.
import { createHash } from 'node:crypto';
import { isIP } from 'node:net';
import { byNode, type Peer } from './peerTable.ts';

export interface PeersDocument {
  channel: string;
  peers: Peer[];
}

export function configMapData(channel: string, peers: readonly Peer[]): Record<string, string> {
  const sorted = [...peers].sort(byNode);
  const hosts = [...new Set(sorted.map((p) => p.host))].sort();
  const doc: PeersDocument = {
    channel,
    peers: sorted.map((p) => (p.pod ? { node: p.node, host: p.host, source: p.source, pod: p.pod } : { node: p.node, host: p.host, source: p.source })),
  };
  return {
    peers: sorted.map((p) => `${p.node}\n`).join(''),
    'peers.json': `${JSON.stringify(doc, null, 2)}\n`,
    'hosts.erlang': hosts.map((h) => `${quotedAtom(h)}.\n`).join(''),
  };
}

/**
 * Byte budgets of the outputs (docs/outputs.md, "Output size"): the API server refuses a ConfigMap whose data passes
 * 1 MiB and a pod whose annotations together pass 256 KiB (shared with everyone else's annotations).
 */
export const CONFIGMAP_DATA_BUDGET = 900 * 1024;
export const ANNOTATION_BUDGET = 128 * 1024;

const utf8 = (s: string): number => Buffer.byteLength(s, 'utf8');

/**
 * What one peer adds to each output, in bytes, an upper bound: its line in `peers`, its entry in `peers.json`
 * (JSON escaping and indentation included), its host line in `hosts.erlang` (counted even when shared), and
 * its name plus comma in the annotation.
 */
export function peerBytes(p: Peer): { configMap: number; annotation: number } {
  const entry = p.pod ? { node: p.node, host: p.host, source: p.source, pod: p.pod } : { node: p.node, host: p.host, source: p.source };
  const json = utf8(JSON.stringify(entry, null, 2)) + (Object.keys(entry).length + 2) * 4 + 2; // each line 4 deeper, and ",\n"
  const erlang = utf8(quotedAtom(p.host)) + 2;
  return { configMap: utf8(p.node) + 1 + json + erlang, annotation: utf8(p.node) + 1 };
}

/**
 * The peers that fit both outputs' budgets: members first, then remote peers, each by node name; what does
 * not fit is left out and counted. Sorted by node, like PeerTable.peers().
 */
export function fitPeers(peers: readonly Peer[], channel: string, budgets = { configMap: CONFIGMAP_DATA_BUDGET, annotation: ANNOTATION_BUDGET }): { peers: Peer[]; droppedForSize: number } {
  const ordered = [...peers].sort((a, b) => (a.source === b.source ? byNode(a, b) : a.source === 'member' ? -1 : 1));
  let configMap = utf8(JSON.stringify({ channel, peers: [] }, null, 2)) + 16;
  let annotation = 0;
  const kept: Peer[] = [];
  for (const p of ordered) {
    const b = peerBytes(p);
    if (configMap + b.configMap > budgets.configMap || annotation + b.annotation > budgets.annotation) break;
    configMap += b.configMap;
    annotation += b.annotation;
    kept.push(p);
  }
  kept.sort(byNode);
  return { peers: kept, droppedForSize: ordered.length - kept.length };
}

/** An Erlang quoted atom, as `hosts.erlang` (read by :net_adm.world/0) holds each host. */
function quotedAtom(h: string): string {
  return `'${h.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;
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

/**
 * Whether the API server accepts an IP in an EndpointSlice: not unspecified, loopback, link-local or
 * link-local multicast (one such address would get the whole slice refused).
 */
function endpointAddressAllowed(ip: string): boolean {
  const v = ip.toLowerCase();
  if (isIP(v) === 4) return !/^(0\.|127\.|169\.254\.|224\.0\.0\.)/.test(v);
  return !(v === '::' || v === '::1' || /^fe[89ab][0-9a-f]:/.test(v) || /^ff02:/.test(v) || /^::ffff:/.test(v));
}

/** One address of the DNS output: a peer's host that is an IP, with the pod it belongs to (members). */
export interface PeerAddress {
  ip: string;
  pod?: string;
}

/**
 * The DNS output's addresses (docs/outputs.md, "DNS output"): every published peer whose host is an IP address —
 * members and remote peers alike — once per IP, by family, sorted. A host that is a DNS name is not an
 * address (its own DNS answers for it).
 */
export function peerAddresses(peers: readonly Peer[]): { ipv4: PeerAddress[]; ipv6: PeerAddress[] } {
  const byIp = new Map<string, PeerAddress>();
  for (const p of peers) {
    const family = isIP(p.host);
    if (family === 0 || !endpointAddressAllowed(p.host)) continue;
    const prev = byIp.get(p.host);
    if (!prev || (!prev.pod && p.pod)) byIp.set(p.host, p.pod ? { ip: p.host, pod: p.pod } : { ip: p.host });
  }
  const all = [...byIp.values()].sort((a, b) => (a.ip < b.ip ? -1 : a.ip > b.ip ? 1 : 0));
  return { ipv4: all.filter((a) => isIP(a.ip) === 4), ipv6: all.filter((a) => isIP(a.ip) === 6) };
}

/**
 * The `version` form of the pod annotation (README, "Outputs", spec.output.podAnnotationFormat): the count of
 * names and the first 16 hex digits of the SHA-256 of the ConfigMap's `peers` text as written (one name per
 * line), e.g. `1000/sha256:3f2a…`: what `sha256sum peers | cut -c1-16` says of the mounted file.
 */
export function peersVersion(peersText: string): string {
  let count = 0;
  for (let i = peersText.indexOf('\n'); i !== -1; i = peersText.indexOf('\n', i + 1)) count++;
  return `${count}/sha256:${createHash('sha256').update(peersText).digest('hex').slice(0, 16)}`;
}

/** Whether an annotation value is a `version` (rather than a list of names). */
export const PEERS_VERSION = /^\d+\/sha256:[0-9a-f]{16}$/;

/** The published list rendered once: the ConfigMap's data, its names, and both annotation forms. */
export interface RenderedPeers {
  data: Record<string, string>;
  names: ReadonlySet<string>;
  list: string;
  version: string;
}

const rendered = new WeakMap<readonly Peer[], { channel: string; r: RenderedPeers }>();

/**
 * The outputs of a peer list, memoized on the list's identity (the peer table answers one shared list per
 * version of it; observe fits it once per version): a reconcile that changes nothing renders nothing again.
 */
export function renderPeers(peers: readonly Peer[], channel: string): RenderedPeers {
  const hit = rendered.get(peers);
  if (hit && hit.channel === channel) return hit.r;
  const data = configMapData(channel, peers);
  const r: RenderedPeers = { data, names: new Set(peers.map((p) => p.node)), list: annotationValue(peers), version: peersVersion(data.peers ?? '') };
  rendered.set(peers, { channel, r });
  return r;
}

const fitted = new WeakMap<readonly Peer[], { channel: string; r: { peers: Peer[]; droppedForSize: number } }>();

/** fitPeers with the default budgets, memoized on the list's identity (as renderPeers). */
export function fitPeersOnce(peers: readonly Peer[], channel: string): { peers: Peer[]; droppedForSize: number } {
  const hit = fitted.get(peers);
  if (hit && hit.channel === channel) return hit.r;
  const r = fitPeers(peers, channel);
  fitted.set(peers, { channel, r });
  return r;
}
