// Follow the compacted heuristics topic: read it from the beginning, keep the highest version per
// key, drop a key on a tombstone, call back on every change, reconnect when the broker goes away.
//
// kafkajs has no group-less consumer (no manual partition assignment), so each subscriber joins a
// consumer group of its own (a random id, never committed): no other member ever shares its
// partitions, which is what reading "without a group" means for the Python client.
import { randomUUID } from "node:crypto";
import { Kafka, type Consumer, type KafkaConfig, logLevel } from "kafkajs";
import type { RoutingHeuristic } from "./generated/routing-heuristic.js";
import type { Experiment } from "./generated/routing-experiment.js";
import { RoutingTable } from "./routing.js";

export interface SubscriberOptions {
  topic?: string;
  onChange?: (record: RoutingHeuristic | Experiment) => void;
  kafka?: Omit<KafkaConfig, "brokers">;
}

export class HeuristicsSubscriber {
  private consumer: Consumer | null = null;
  private readonly kafka: Kafka;
  private readonly topic: string;
  private ends = new Map<number, bigint>();
  private positions = new Map<number, bigint>();
  private resolveCaughtUp!: () => void;
  /** Resolves once every record that existed at start has been read. */
  readonly caughtUp = new Promise<void>((resolve) => { this.resolveCaughtUp = resolve; });
  private stopped = false;
  private lastWarning = 0;

  constructor(brokers: string[], readonly table: RoutingTable, private readonly options: SubscriberOptions = {}) {
    this.topic = options.topic ?? "gateway.routing.heuristics";
    this.kafka = new Kafka({ clientId: "gateway-router", logLevel: logLevel.WARN, ...options.kafka, brokers });
  }

  /** "connecting", "connecting (attempt N failed: ...)", "following" or "stopped". Until the rules arrive,
   *  `table` has none and a gateway routes by its own fallback. */
  status = "not started";

  /** Resolves at once: reading starts in the background and retries (1 s doubling to 30 s) while Kafka or the
   *  topic is not there; `caughtUp` resolves once every record that existed when it got through was read. */
  async start(): Promise<void> {
    if (!this.table.verifier) {
      console.warn("heuristics subscriber: following routing records whoever wrote them; give the table the worker's " +
                   "public key (new RoutingTable({ publicKeys: [...] })) so that only the worker can steer this router");
    }
    this.status = "connecting";
    void this.boot();
  }

  private async boot(): Promise<void> {
    let delay = 1_000;
    for (let attempt = 1; !this.stopped; attempt++) {
      try {
        const admin = this.kafka.admin();
        await admin.connect();
        try {
          for (const p of await admin.fetchTopicOffsets(this.topic)) this.ends.set(p.partition, BigInt(p.high));
        } finally {
          await admin.disconnect();
        }
        this.checkCaughtUp();
        await this.run();
        this.status = "following";
        return;
      } catch (error) {
        this.status = `connecting (attempt ${attempt} failed: ${(error as Error).message})`.slice(0, 300);
        if (Date.now() - this.lastWarning >= 10_000) {
          this.lastWarning = Date.now();
          console.warn(`heuristics subscriber: ${this.status}; routing by the fallback until the rules arrive`);
        }
        await new Promise((r) => setTimeout(r, delay));
        delay = Math.min(30_000, delay * 2);
      }
    }
  }

  private async run(): Promise<void> {
    const consumer = this.kafka.consumer({ groupId: `gateway-router-${randomUUID()}`, allowAutoTopicCreation: false,
                                           retry: { retries: Number.MAX_SAFE_INTEGER, maxRetryTime: 5_000 } });
    this.consumer = consumer;
    consumer.on(consumer.events.CRASH, ({ payload }) => {
      if (!payload.restart && !this.stopped) {
        console.warn(`heuristics subscriber crashed (${payload.error.message}); reconnecting`);
        setTimeout(() => { void this.run(); }, 1_000);
      }
    });
    await consumer.connect();
    await consumer.subscribe({ topic: this.topic, fromBeginning: true });
    await consumer.run({
      autoCommit: false,
      eachMessage: async ({ partition, message }) => {
        this.positions.set(partition, BigInt(message.offset) + 1n);
        const refused = this.table.refused;
        const rule = this.table.apply(message.key?.toString() ?? "", message.value, message.headers);
        if (this.table.refused > refused && Date.now() - this.lastWarning >= 10_000) {
          this.lastWarning = Date.now();
          console.warn(`heuristics subscriber: skipped the record at ${partition}:${message.offset} ` +
                       `(${this.table.refused} skipped so far): ${this.table.lastRefusal}`);
        }
        try {
          if (rule && this.options.onChange) this.options.onChange(rule);
        } catch (error) {
          console.warn(`heuristics subscriber: onChange failed (${(error as Error).message}); the table is updated anyway`);
        }
        this.checkCaughtUp();
      },
    });
  }

  private checkCaughtUp(): void {
    if ([...this.ends].every(([p, end]) => (this.positions.get(p) ?? 0n) >= end)) this.resolveCaughtUp();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.status = "stopped";
    await this.consumer?.disconnect();
  }
}
