// What a regression stub checks, embedded in every exported Vitest stub (worker/failures/stubs.py) so
// that a stub is one self-contained file; the pytest suite's conftest.py holds the same checks
// (worker/failures/gateway_checks.py, held to this file by tests/unit/failures/test_gateway_checks.py).
// The gateway is reached over HTTP at GATEWAY_URL, an OpenAI-compatible base URL (the request goes to
// {GATEWAY_URL}/chat/completions; GATEWAY_API_KEY as the bearer token), or in-process: GATEWAY_MODULE
// names a module whose handleRequest(request) returns the answer's body, or {status, body}, and may
// throw. GATEWAY_BUDGET_S (default 60) is how long an answer may take, retries and failover included.
// Only function declarations: the data of the stub are its only constants.

function gatewayBudgetS() {
  return Number(process.env.GATEWAY_BUDGET_S ?? "60");
}

function needsAnAnswer(errorType) {
  return ["timeout", "rate_limit", "api", "auth"].includes(errorType);
}

function asksForJson(request) {
  const kind = request && request.response_format ? request.response_format.type : undefined;
  return kind === "json_object" || kind === "json_schema";
}

// null when the answer is what a fixed gateway gives for this error type, else what is wrong
export function judge(errorType, request, answer, budgetS) {
  if (answer.status >= 500) {
    return `the gateway answered ${answer.status} (an unhandled error): ${JSON.stringify(answer.body).slice(0, 300)}`;
  }
  if (answer.seconds > budgetS) {
    return `the answer took ${answer.seconds.toFixed(1)} s, over the ${budgetS} s budget`;
  }
  const ok = answer.status >= 200 && answer.status < 300;
  if (needsAnAnswer(errorType) && !ok) {
    return `the gateway surfaced ${answer.status} instead of retrying, backing off or failing over`;
  }
  if (errorType === "context_length" && !ok) {
    const message = answer.body && typeof answer.body === "object" ? answer.body.error : answer.body;
    if (![400, 413, 422].includes(answer.status) || !message) {
      return `an oversized request needs an answer or a clear 4xx refusal with a message, got ${answer.status}`;
    }
  }
  if (errorType === "parse" && ok && asksForJson(request)) {
    try {
      JSON.parse(answer.body.choices[0].message.content);
    } catch {
      return "the request asked for JSON and the answer's content does not parse";
    }
  }
  return null;
}

async function send(request) {
  const began = Date.now();
  const seconds = () => (Date.now() - began) / 1000;
  if (process.env.GATEWAY_MODULE) {
    try {
      const gateway = await import(process.env.GATEWAY_MODULE);
      const out = await gateway.handleRequest(request);
      const shaped = out && typeof out === "object" && "status" in out && "body" in out;
      return { status: shaped ? out.status : 200, body: shaped ? out.body : out, seconds: seconds() };
    } catch (error) {
      return { status: 599, body: { error: String(error) }, seconds: seconds() };
    }
  }
  const headers = { "Content-Type": "application/json" };
  if (process.env.GATEWAY_API_KEY) headers.Authorization = `Bearer ${process.env.GATEWAY_API_KEY}`;
  try {
    const response = await fetch(`${process.env.GATEWAY_URL.replace(/\/+$/, "")}/chat/completions`, {
      method: "POST",
      headers,
      body: JSON.stringify(request),
      signal: AbortSignal.timeout(gatewayBudgetS() * 1000),
    });
    const text = await response.text();
    let body = text;
    try {
      body = JSON.parse(text);
    } catch {}
    return { status: response.status, body, seconds: seconds() };
  } catch (error) {
    return { status: 599, body: { error: `no answer: ${error}` }, seconds: seconds() };
  }
}

async function check(pattern, request, expectedBehavior, context) {
  if (!process.env.GATEWAY_URL && !process.env.GATEWAY_MODULE) {
    context.skip("set GATEWAY_URL (an OpenAI-compatible base URL) or GATEWAY_MODULE (a module with handleRequest)");
    return;
  }
  const verdict = judge(pattern.errorType, request, await send(request), gatewayBudgetS());
  if (verdict !== null) throw new Error(`${verdict}. Expected: ${expectedBehavior}`);
}
