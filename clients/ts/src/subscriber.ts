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

  async start(): Promise<void> {
    if (!this.table.verifier) {
      console.warn("heuristics subscriber: following routing records whoever wrote them; give the table the worker's " +
                   "public key (new RoutingTable({ publicKeys: [...] })) so that only the worker can steer this router");
    }
    const admin = this.kafka.admin();
    await admin.connect();
    try {
      for (const p of await admin.fetchTopicOffsets(this.topic)) this.ends.set(p.partition, BigInt(p.high));
    } finally {
      await admin.disconnect();
    }
    this.checkCaughtUp();
    await this.run();
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
    await this.consumer?.disconnect();
  }
}
