-- Transactional outbox: events written in the same transaction as the change that caused them,
-- published to RabbitMQ by the OutboxRelay. seq orders them; id becomes the MassTransit MessageId.
CREATE TABLE IF NOT EXISTS outbox_messages (
    seq             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id              uuid        NOT NULL UNIQUE,
    message_type    text        NOT NULL,
    payload         jsonb       NOT NULL,
    trace_parent    text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    attempts        integer     NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    last_error      text,
    sent_at         timestamptz
);
CREATE INDEX IF NOT EXISTS outbox_messages_unsent ON outbox_messages (seq) WHERE sent_at IS NULL;

-- Inbox: the messages each consumer has applied, written in the same transaction as their effect.
CREATE TABLE IF NOT EXISTS inbox_messages (
    message_id   uuid        NOT NULL,
    consumer     text        NOT NULL,
    processed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (message_id, consumer)
);
