// TLS failures of a connect attempt (docs/postgres.md, "TLS"): the server's certificate not trusted (wrong or missing CA,
// expired), not issued for the host, the client certificate refused (unknown CA, wrong CN, none given). Each
// message says where the CA or certificate came from and what to change. Pure; no message quotes the server's
// certificate, the host or the user.
import type { TlsContext } from './tls.ts';

export type TlsFailureReason = 'CertificateUntrusted' | 'HostnameMismatch' | 'ClientCertificateRefused';
type Failure = { reason: TlsFailureReason; message: string };

/** The server's certificate chain does not lead to a CA we were given. */
const UNTRUSTED = new Set([
  'SELF_SIGNED_CERT_IN_CHAIN', 'DEPTH_ZERO_SELF_SIGNED_CERT', 'UNABLE_TO_VERIFY_LEAF_SIGNATURE', 'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'UNABLE_TO_GET_ISSUER_CERT', 'CERT_SIGNATURE_FAILURE', 'CERT_UNTRUSTED', 'CERT_REJECTED', 'INVALID_CA', 'CERT_CHAIN_TOO_LONG',
]);
const EXPIRED = new Set(['CERT_HAS_EXPIRED', 'CERT_NOT_YET_VALID']);
/** Alerts the server sends when it refuses our client certificate (TLS 1.2 and 1.3 spellings). */
const CLIENT_REFUSED = /^ERR_SSL_(?:TLSV1|SSLV3|TLSV13)_ALERT_(UNKNOWN_CA|BAD_CERTIFICATE|CERTIFICATE_EXPIRED|CERTIFICATE_REVOKED|CERTIFICATE_UNKNOWN|UNSUPPORTED_CERTIFICATE|CERTIFICATE_REQUIRED|ACCESS_DENIED|DECRYPT_ERROR)$/;

const CA_FROM: Record<TlsContext['ca'], string> = {
  secret: 'the CA in spec.postgres.tls.caSecretRef',
  file: 'the CA in the file named by sslrootcert in the URL',
  system: "any CA of the operator's system CA store (sslrootcert=system)",
  builtin: 'a public CA known to Node.js, and no CA was given',
  none: 'a known CA',
};

const CA_FIX: Record<TlsContext['ca'], string> = {
  secret: 'put the CA that issued the server\'s certificate in that Secret (CloudNativePG: the ca.crt of the <cluster>-ca Secret; RDS: the CA bundle of its region), or, if the server\'s certificate was just replaced by one from another CA, add that CA to the bundle',
  file: 'mount the CA that issued the server\'s certificate at that path, or give it in spec.postgres.tls.caSecretRef',
  system: 'give the server\'s CA in spec.postgres.tls.caSecretRef (a private CA is not in the system store)',
  builtin: 'give the CA that issued the server\'s certificate in spec.postgres.tls.caSecretRef (or sslrootcert), or use sslmode=require to encrypt without verifying',
  none: 'give the CA that issued the server\'s certificate in spec.postgres.tls.caSecretRef',
};

const CERT_FROM: Record<NonNullable<TlsContext['clientCert']>, string> = {
  secret: 'the client certificate of spec.postgres.tls.clientCertSecretRef',
  file: 'the client certificate named by sslcert in the URL',
};

/** A TLS failure of a connect attempt, or undefined (not TLS: classify.ts goes on). */
export function classifyTlsError(e: { code: string | undefined; sqlstate: string | undefined; text: string }, ctx: TlsContext): Failure | undefined {
  const { code, sqlstate, text } = e;
  const cert = ctx.clientCert ? CERT_FROM[ctx.clientCert] : undefined;
  if (code && UNTRUSTED.has(code)) {
    return { reason: 'CertificateUntrusted', message: `the server's TLS certificate is not signed by ${CA_FROM[ctx.ca]} (${code}): ${CA_FIX[ctx.ca]}` };
  }
  if (code && EXPIRED.has(code)) {
    const when = code === 'CERT_HAS_EXPIRED' ? 'has expired' : 'is not valid yet';
    return { reason: 'CertificateUntrusted', message: `the server's TLS certificate ${when} (${code}): renew it on the server${code === 'CERT_NOT_YET_VALID' ? ', or check the clocks of the operator\'s node and the server' : ''}` };
  }
  if (code === 'ERR_TLS_CERT_ALTNAME_INVALID') {
    return {
      reason: 'HostnameMismatch',
      message: 'the server\'s TLS certificate is not issued for the host name in the Secret\'s URL (ERR_TLS_CERT_ALTNAME_INVALID, sslmode=verify-full): '
        + 'connect with a name the certificate holds (CloudNativePG: <cluster>-rw, <cluster>-rw.<namespace> or <cluster>-rw.<namespace>.svc), '
        + 'have the certificate issued for the name you use, or use sslmode=verify-ca to check the CA only',
    };
  }
  const alert = code ? CLIENT_REFUSED.exec(code) : null;
  if (alert) {
    const why = alert[1] === 'UNKNOWN_CA' ? 'it does not trust the CA that issued it'
      : alert[1] === 'CERTIFICATE_EXPIRED' ? 'it has expired'
        : alert[1] === 'CERTIFICATE_REQUIRED' ? 'none was given and the server requires one'
          : 'the server would not accept it';
    const fix = alert[1] === 'CERTIFICATE_REQUIRED'
      ? 'set spec.postgres.tls.clientCertSecretRef to a kubernetes.io/tls Secret holding one'
      : alert[1] === 'CERTIFICATE_EXPIRED' ? 'renew it (cert-manager renews its Secret; the operator reads it again)'
        : `issue ${cert ?? 'the client certificate'} from a CA in the server's ssl_ca_file`;
    return { reason: 'ClientCertificateRefused', message: `the server refused ${cert ?? 'the client certificate'} during the TLS handshake (${code}): ${why}; ${fix}` };
  }
  if (sqlstate === '28000' && /requires a valid client certificate/i.test(text)) {
    return {
      reason: 'ClientCertificateRefused',
      message: cert
        ? `the server did not accept ${cert} for this user (SQLSTATE 28000, "connection requires a valid client certificate"): issue it from a CA in the server's ssl_ca_file`
        : 'the server requires a client certificate for this user and address (pg_hba.conf: cert, or clientcert=verify-ca/verify-full; SQLSTATE 28000): set spec.postgres.tls.clientCertSecretRef to a kubernetes.io/tls Secret holding one',
    };
  }
  if (sqlstate === '28000' && /certificate authentication failed/i.test(text)) {
    return {
      reason: 'ClientCertificateRefused',
      message: `the server trusts ${cert ?? 'the client certificate'} but its common name (CN) is not the user of the Secret's URL (SQLSTATE 28000, "certificate authentication failed"): issue it with CN set to that user, or map the name in the server's pg_ident.conf`,
    };
  }
  return undefined;
}
