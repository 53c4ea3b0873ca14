// Secrets out of failure messages and captured requests before they leave the gateway. The common shapes of
// worker/calls/redaction.py, on RE2 (re2js: linear time, no native build), so hostile text stays fast.
import { RE2JS } from "re2js";

const REDACTED = "[REDACTED]";
const RULES: Array<[RE2JS, string]> = [
  [RE2JS.compile("-----BEGIN [A-Z ]*PRIVATE KEY-----(?s:.*?)(?:-----END [A-Z ]*PRIVATE KEY-----|\\z)"), "[REDACTED PRIVATE KEY]"],
  [RE2JS.compile("(?i)\\b([a-z][a-z0-9+.-]*://[^\\s:/@]+):[^\\s/@]+@"), `$1:${REDACTED}@`],
  [RE2JS.compile("\\beyJ[A-Za-z0-9_-]{5,}\\.[A-Za-z0-9_-]{5,}\\.[A-Za-z0-9_-]*"), REDACTED],
  [RE2JS.compile("(?i)\\b(bearer|basic)\\s+[A-Za-z0-9._~+/=-]{8,}"), `$1 ${REDACTED}`],
  [RE2JS.compile("\\bsk-[A-Za-z0-9_*-]{8,}"), REDACTED],
  [RE2JS.compile("\\b(?:AKIA|ASIA)[0-9A-Z]{16}\\b"), REDACTED],
  [RE2JS.compile("\\b(?:sk|rk|pk)_(?:live|test)_[A-Za-z0-9]{10,}"), REDACTED],
  [RE2JS.compile("\\b(?:gh[pousr]_[A-Za-z0-9]{20,}|xox[baprs]-[A-Za-z0-9-]{10,}|AIza[0-9A-Za-z_-]{35})"), REDACTED],
  [RE2JS.compile("(?i)\\b((?:password|passwd|pwd|secret|token|api[_-]?key|apikey|access[_-]?key|access[_-]?token|" +
    "refresh[_-]?token|client[_-]?secret|aws_secret_access_key|aws_session_token|secret[_-]?access[_-]?key|" +
    "session[_-]?token)[\"']?)(\\s*[=:]\\s*[\"']?)[^\\s,;&\"']+"), `$1$2${REDACTED}`],
];

export function redactText(text: string): string {
  let out = text;
  for (const [pattern, replacement] of RULES) out = pattern.matcher(out).replaceAll(replacement);
  return out;
}

/** Keys whose value is blanked whatever it is, as worker/calls/redaction.py's SENSITIVE_KEYS. */
const SENSITIVE_KEYS = new Set([
  "authorization", "proxy-authorization", "cookie", "set-cookie", "password", "passwd", "secret", "api_key", "apikey",
  "api-key", "x-api-key", "access_token", "refresh_token", "id_token", "token", "client_secret", "private_key",
  "aws_secret_access_key", "aws_session_token", "session_token",
]);

/** A copy of a JSON-like value (a captured request) with sensitive keys blanked and every string redacted,
 *  keys included: the same as the Python emitter's redact_payload. */
export function redactPayload(value: unknown): unknown {
  if (typeof value === "string") return redactText(value);
  if (Array.isArray(value)) return value.map(redactPayload);
  if (value !== null && typeof value === "object") {
    return Object.fromEntries(Object.entries(value as Record<string, unknown>).map(([key, v]) =>
      [redactText(key), SENSITIVE_KEYS.has(key.toLowerCase()) ? REDACTED : redactPayload(v)]));
  }
  return value;
}
