-- Verified payment webhooks, one row per event id. Every value was validated by hooksink before
-- the INSERT, so no CHECK here can fail for a row hooksink sends; the checks guard other writers.
CREATE TABLE webhook_events (
    event_id     text          PRIMARY KEY CHECK (octet_length(event_id) BETWEEN 1 AND 255),
    event_type   text          NOT NULL,
    category     text          NOT NULL,
    action       text          NOT NULL,
    object_id    text          NOT NULL,
    amount_cents bigint        NOT NULL CHECK (amount_cents BETWEEN 0 AND 1000000000000000),
    currency     char(3)       NOT NULL,
    amount       numeric(20,4) NOT NULL,
    metadata     jsonb         NOT NULL DEFAULT '{}',
    provider_ts  timestamptz   NOT NULL,
    received_at  timestamptz   NOT NULL DEFAULT now()
);
