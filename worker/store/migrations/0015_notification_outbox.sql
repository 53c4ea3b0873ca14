-- Webhook notifications (ALERT_WEBHOOK_URL), written in the transaction of what they tell of (a flush, a
-- breaker's transition, an experiment's new state, a recorded CI run) and sent by the group leader:
-- one row per incident (dedupe_key), retried with back-off until the receiver takes it, so a crash
-- or a receiver down for minutes loses nothing; the key travels as the Idempotency-Key header.
CREATE TABLE notification_outbox (
    id bigserial PRIMARY KEY,
    dedupe_key text NOT NULL UNIQUE,
    notification jsonb NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    attempts integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    sent_at timestamptz,
    last_error text
);
CREATE INDEX notification_outbox_due ON notification_outbox (next_attempt_at) WHERE sent_at IS NULL;
