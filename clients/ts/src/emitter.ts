// Report model calls to Kafka as v1 call events without ever holding up the gateway: the same
// policy as the Python emitter (worker/gateway/emitter.py). `completed()` / `failed()` validate
// against the schema and throw ContractError before anything reaches Kafka; `emit()` only
// enqueues into a bounded buffer that a background loop sends in batches through an idempotent
// producer (acks=all). When the buffer is full: "drop" (default) counts and drops at once, and
// warns at most every 10 s; "block" lets `emitWait()` wait up to `blockTimeoutMs` first.
import { randomUUID } from "node:crypto";
import { Kafka, type KafkaConfig, type Producer, CompressionTypes, logLevel } from "kafkajs";
import type { CallCompleted } from "./generated/call-completed.js";
import type { CallFailed } from "./generated/call-failed.js";
import type { CallFeedback } from "./generated/call-feedback.js";
import { checkCompleted, checkFailed, checkFeedback } from "./contract.js";
import { redactPayload, redactText } from "./redaction.js";

// events the builders below validated: emit() checks anything else itself, so no raw object reaches Kafka
const checked = new WeakSet<object>();

type Filled<T> = Omit<T, "event_id" | "occurred_at"> & { event_id?: string; occurred_at?: string | Date };

function base<T extends object>(fields: Filled<T>): T {
  const occurred = fields.occurred_at instanceof Date ? fields.occurred_at.toISOString() : fields.occurred_at;
  return { event_id: randomUUID(), ...fields, occurred_at: occurred ?? new Date().toISOString() } as T;
}

/** A call-completed event; event_id and occurred_at (now) are filled in when absent. Throws ContractError. */
export function completed(fields: Filled<CallCompleted>): CallCompleted {
  const event = base<CallCompleted>(fields);
  checkCompleted("call-completed event", event);
  checked.add(event);
  return event;
}

/** A call-failed event, secrets redacted from error_message and the captured request first. Throws ContractError. */
export function failed(fields: Filled<CallFailed>): CallFailed {
  const event = base<CallFailed>(fields);
  if (typeof event.error_message === "string") event.error_message = redactText(event.error_message);
  if (event.request && typeof event.request === "object") event.request = redactPayload(event.request) as CallFailed["request"];
  checkFailed("call-failed event", event);
  checked.add(event);
  return event;
}

/** Feedback on a call's answer (a vote, an eval, a judge), naming the call by `call_event_id` (the call
 *  event's event_id) or `request_id`; event_id and occurred_at (now) are filled in when absent; the comment
 *  is redacted. A later feedback for the same call, name and source replaces the earlier one. Throws ContractError. */
export function feedback(fields: Filled<CallFeedback>): CallFeedback {
  const event = base<CallFeedback>(fields);
  if (typeof event.comment === "string") event.comment = redactText(event.comment);
  checkFeedback("call feedback", event);
  checked.add(event);
  return event;
}

type Emitted = CallCompleted | CallFailed | CallFeedback;

export interface EmitterOptions {
  topicCompleted?: string;
  topicFailed?: string;
  topicFeedback?: string;
  bufferSize?: number;
  whenFull?: "drop" | "block";
  blockTimeoutMs?: number;
  maxBatch?: number;
  lingerMs?: number;
  flushTimeoutMs?: number;
  kafka?: Omit<KafkaConfig, "brokers">;
}

export interface EmitterStats { enqueued: number; sent: number; dropped: number; sendErrors: number }

export class CallEmitter {
  readonly stats: EmitterStats = { enqueued: 0, sent: 0, dropped: 0, sendErrors: 0 };
  private readonly buffer: Emitted[] = [];
  private readonly producer: Producer;
  private readonly o: Required<Omit<EmitterOptions, "kafka">>;
  private loop: Promise<void> | null = null;
  private stopping = false;
  private wake: (() => void) | null = null;
  private room: Array<() => void> = [];
  private lastWarning = 0;

  constructor(brokers: string[], options: EmitterOptions = {}) {
    // an option given as undefined keeps its default (a spread would overwrite the default with undefined)
    const given = Object.fromEntries(Object.entries(options).filter(([, value]) => value !== undefined));
    this.o = { topicCompleted: "gateway.calls.completed", topicFailed: "gateway.calls.failed",
               topicFeedback: "gateway.calls.feedback", bufferSize: 10_000,
               whenFull: "drop", blockTimeoutMs: 50, maxBatch: 500, lingerMs: 20, flushTimeoutMs: 10_000, ...given };
    if (this.o.whenFull !== "drop" && this.o.whenFull !== "block") throw new Error(`whenFull must be "drop" or "block"`);
    const kafka = new Kafka({ clientId: "gateway-telemetry-emitter", logLevel: logLevel.WARN, ...options.kafka, brokers });
    this.producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1, allowAutoTopicCreation: false });
  }

  /** "connecting", "connecting (attempt N failed: ...)", "connected" or "stopped". */
  status = "not started";
  private connected = false;

  /** Resolves at once: the producer connects in the background and retries (1 s doubling to 30 s) while
   *  Kafka is away; events wait in the buffer meanwhile. A gateway never waits for its telemetry to boot. */
  async start(): Promise<void> {
    this.status = "connecting";
    this.loop = this.connectThenDrain();
  }

  private async connectThenDrain(): Promise<void> {
    let delay = 1_000;
    for (let attempt = 1; !this.connected; attempt++) {
      if (this.stopping) return;
      try {
        await this.producer.connect();
        this.connected = true;
      } catch (error) {
        this.status = `connecting (attempt ${attempt} failed: ${(error as Error).message})`.slice(0, 300);
        if (Date.now() - this.lastWarning >= 10_000) {
          this.lastWarning = Date.now();
          console.warn(`call emitter: Kafka not reachable (${(error as Error).message}); retrying, ${this.buffer.length} events buffered`);
        }
        await new Promise<void>((r) => { this.wake = r; setTimeout(r, delay); });
        delay = Math.min(30_000, delay * 2);
      }
    }
    this.status = "connected";
    await this.drain();
  }

  /** Send what is buffered (up to flushTimeoutMs), then disconnect; what is left, or what could never be
   *  sent because Kafka never answered, counts as dropped. */
  async stop(): Promise<void> {
    const deadline = Date.now() + this.o.flushTimeoutMs;
    while (this.buffer.length && this.connected && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    this.stopping = true;
    this.wake?.();
    // a connect attempt in progress is not waited for past the flush timeout
    await Promise.race([this.loop, new Promise((r) => setTimeout(r, Math.max(0, deadline - Date.now())))]);
    this.stats.dropped += this.buffer.length;
    this.buffer.length = 0;
    if (this.connected) await this.producer.disconnect();
    this.status = "stopped";
  }

  /** Enqueue without waiting; false when the buffer is full and the event was dropped. An event not made by
   *  completed(), failed() or feedback() is validated here first: ContractError, and nothing is sent. */
  emit(event: Emitted): boolean {
    if (!checked.has(event)) {
      if ("score" in event) checkFeedback("call feedback", event);
      else if ("error_type" in event) checkFailed("call-failed event", event);
      else checkCompleted("call-completed event", event);
      checked.add(event);
    }
    if (this.buffer.length >= this.o.bufferSize || this.stopping) {
      this.dropped();
      return false;
    }
    this.buffer.push(event);
    this.stats.enqueued += 1;
    this.wake?.();
    return true;
  }

  /** With whenFull "block": wait up to blockTimeoutMs for room; otherwise the same as emit(). */
  async emitWait(event: Emitted): Promise<boolean> {
    if (this.o.whenFull === "block" && this.buffer.length >= this.o.bufferSize) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, this.o.blockTimeoutMs);
        this.room.push(() => { clearTimeout(timer); resolve(); });
      });
    }
    return this.emit(event);
  }

  private dropped(): void {
    this.stats.dropped += 1;
    const now = Date.now();
    if (now - this.lastWarning >= 10_000) {
      this.lastWarning = now;
      const why = this.connected ? "events arrive faster than they are sent: see maxBatch in the README" : this.status;
      console.warn(`call emitter: buffer full (${this.o.bufferSize} events), ${this.stats.dropped} dropped so far (${why})`);
    }
  }

  private async drain(): Promise<void> {
    while (!this.stopping || this.buffer.length) {
      if (!this.buffer.length) {
        if (this.stopping) break;
        await new Promise<void>((r) => { this.wake = r; setTimeout(r, 200); });
        this.wake = null;
        continue;
      }
      await new Promise((r) => setTimeout(r, this.o.lingerMs));
      const batch = this.buffer.splice(0, this.o.maxBatch);
      for (const notify of this.room.splice(0)) notify();
      const byTopic = new Map<string, Array<{ key: string; value: string }>>();
      for (const e of batch) {
        const topic = "score" in e ? this.o.topicFeedback : "error_type" in e ? this.o.topicFailed : this.o.topicCompleted;
        // calls by their own id (spread over every partition), feedback by its call (one call's votes in order)
        const key = "score" in e ? (e.call_event_id ?? e.request_id ?? e.event_id) : e.event_id;
        if (!byTopic.has(topic)) byTopic.set(topic, []);
        byTopic.get(topic)!.push({ key, value: JSON.stringify(e) });
      }
      try {
        await this.producer.sendBatch({ acks: -1, compression: CompressionTypes.None,
                                        topicMessages: [...byTopic].map(([topic, messages]) => ({ topic, messages })) });
        this.stats.sent += batch.length;
      } catch (error) {
        this.stats.sendErrors += batch.length;
        console.warn(`call emitter: a batch of ${batch.length} events was not sent (${(error as Error).name}: ${(error as Error).message})`);
      }
    }
  }
}
