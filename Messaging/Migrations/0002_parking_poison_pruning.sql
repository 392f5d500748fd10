-- Poison outbox rows: a row whose type cannot be resolved or whose payload cannot be read is retried a bounded
-- number of times (unreadable_attempts), then set aside (dead_at) and no longer claimed. Broker failures do not
-- count towards that bound: they are nobody's row's fault.
ALTER TABLE outbox_messages ADD COLUMN IF NOT EXISTS unreadable_attempts integer NOT NULL DEFAULT 0;
ALTER TABLE outbox_messages ADD COLUMN IF NOT EXISTS dead_at timestamptz;
CREATE INDEX IF NOT EXISTS outbox_messages_dead ON outbox_messages (seq) WHERE dead_at IS NOT NULL;

-- The inbox is pruned by age (InboxOptions.Retention, longer than any redelivery can take).
CREATE INDEX IF NOT EXISTS inbox_messages_processed_at ON inbox_messages (processed_at);

-- Parked messages: a message a consumer failed to apply after its short in-memory retries, kept in the consumer's
-- own database and swept back to the consumer's queue with growing delays (ParkingOptions). After MaxAttempts it is
-- 'failed' (kept, listed and replayable through crm.ops.v1.MessagingAdmin). Applying it deletes the row in the same
-- transaction as the effect.
CREATE TABLE IF NOT EXISTS parked_messages (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    message_id      uuid        NOT NULL,
    consumer        text        NOT NULL,
    queue           text        NOT NULL,
    message_type    text        NOT NULL,
    payload         jsonb       NOT NULL,
    headers         jsonb       NOT NULL DEFAULT '{}',
    conversation_id uuid,
    correlation_id  uuid,
    sent_at         timestamptz,
    status          text        NOT NULL DEFAULT 'parked' CHECK (status IN ('parked', 'failed')),
    attempts        integer     NOT NULL,
    first_failed_at timestamptz NOT NULL DEFAULT now(),
    last_failed_at  timestamptz NOT NULL DEFAULT now(),
    next_attempt_at timestamptz NOT NULL,
    last_error      text        NOT NULL,
    CONSTRAINT parked_messages_message UNIQUE (message_id, consumer)
);
CREATE INDEX IF NOT EXISTS parked_messages_due ON parked_messages (next_attempt_at) WHERE status = 'parked';
