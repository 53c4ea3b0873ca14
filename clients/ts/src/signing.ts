// Signed routing records, as worker/routing/signing.py signs them: Ed25519 over a domain tag, the record's
// key and its value (or the mark of a tombstone); the signature and the key's id travel in headers. A table
// given the worker's public keys skips and counts any record not signed by one of them.
import { createHash, createPublicKey, verify, type KeyObject } from "node:crypto";

export const SIGNATURE_HEADER = "signature";
export const KEY_ID_HEADER = "key-id";
const DOMAIN = Buffer.from("gateway-telemetry routing record v1\n");
const SPKI_ED25519 = Buffer.from("302a300506032b6570032100", "hex"); // the DER prefix of a raw Ed25519 public key

export type RecordHeaders = Record<string, Buffer | string | (Buffer | string)[] | undefined>;

export function signedBytes(key: string, value: Buffer | string | null): Buffer {
  const body = value === null ? Buffer.from([0]) : Buffer.concat([Buffer.from([1]), Buffer.from(value)]);
  return Buffer.concat([DOMAIN, Buffer.from(key, "utf8"), Buffer.from("\n"), body]);
}

function header(headers: RecordHeaders | undefined, name: string): Buffer | null {
  const found = headers?.[name];
  const first = Array.isArray(found) ? found[0] : found;
  return first === undefined ? null : Buffer.from(first);
}

export class Verifier {
  private readonly keys = new Map<string, KeyObject>();

  /** `publicKeys`: base64 of the workers' 32-byte Ed25519 public keys (more than one during a rotation). */
  constructor(publicKeys: string[]) {
    if (!publicKeys.length) throw new Error("no public key given: pass at least one, or none at all to accept unsigned records");
    for (const text of publicKeys) {
      const raw = Buffer.from(text, "base64");
      if (raw.length !== 32) throw new Error(`a routing public key must be base64 of 32 bytes, got ${raw.length}`);
      const id = createHash("sha256").update(raw).digest("hex").slice(0, 16);
      this.keys.set(id, createPublicKey({ key: Buffer.concat([SPKI_ED25519, raw]), format: "der", type: "spki" }));
    }
  }

  /** null when the record is signed by a trusted key; else why not. */
  refusal(key: string, value: Buffer | string | null, headers: RecordHeaders | undefined): string | null {
    const signature = header(headers, SIGNATURE_HEADER);
    if (signature === null) return "unsigned record";
    const publicKey = this.keys.get(header(headers, KEY_ID_HEADER)?.toString("ascii") ?? "");
    if (!publicKey) return "signed by a key this router does not trust";
    const ok = verify(null, signedBytes(key, value), publicKey, Buffer.from(signature.toString("ascii"), "base64"));
    return ok ? null : "the signature does not match the record";
  }
}
