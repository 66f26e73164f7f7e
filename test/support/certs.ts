// Certificates for TLS tests, made with the openssl CLI (EC P-256: fast): private CAs, server certificates for an
// address or name, client certificates for a user (CN), in PEM. Each call works in a temp dir of its own.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface Pem {
  cert: string;
  key: string;
}

function openssl(dir: string, args: string[]): void {
  const r = spawnSync('openssl', args, { cwd: dir, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`openssl ${args.join(' ')} failed (install openssl): ${r.stderr}`);
}

const KEY = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];

function inTemp<T>(f: (dir: string) => T): T {
  const dir = mkdtempSync(join(tmpdir(), 'pgco-certs-'));
  try {
    return f(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** A self-signed CA. */
export function makeCa(cn: string): Pem {
  return inTemp((dir) => {
    openssl(dir, ['req', '-x509', ...KEY, '-days', '3', '-subj', `/CN=${cn}`, '-keyout', 'ca.key', '-out', 'ca.crt',
      '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign']);
    return { cert: readFileSync(join(dir, 'ca.crt'), 'utf8'), key: readFileSync(join(dir, 'ca.key'), 'utf8') };
  });
}

/**
 * A certificate signed by `ca`: `cn` as its subject, `san` (e.g. IP:127.0.0.1, DNS:db.example) for a server,
 * none for a client (its CN is the Postgres user).
 */
export function issue(ca: Pem, o: { cn: string; san?: string; days?: number }): Pem {
  return inTemp((dir) => {
    writeFileSync(join(dir, 'ca.crt'), ca.cert);
    writeFileSync(join(dir, 'ca.key'), ca.key, { mode: 0o600 });
    openssl(dir, ['req', ...KEY, '-subj', `/CN=${o.cn}`, '-keyout', 'leaf.key', '-out', 'leaf.csr']);
    const ext = o.san ? `subjectAltName=${o.san}\n` : 'extendedKeyUsage=clientAuth\n';
    writeFileSync(join(dir, 'ext.cnf'), ext);
    openssl(dir, ['x509', '-req', '-in', 'leaf.csr', '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-days', String(o.days ?? 3),
      '-out', 'leaf.crt', '-extfile', 'ext.cnf']);
    return { cert: readFileSync(join(dir, 'leaf.crt'), 'utf8'), key: readFileSync(join(dir, 'leaf.key'), 'utf8') };
  });
}
