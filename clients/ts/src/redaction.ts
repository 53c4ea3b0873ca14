// Secrets out of failure messages before they leave the gateway. The common shapes of
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
