-- Which signature scheme stored each row: `signature::Scheme::name`, `webhook` (Standard
-- Webhooks on /webhook) or `stripe` (/stripe). Upgrades the table in place: rows stored before
-- this migration came through /webhook, the only endpoint then, so the default fills them
-- (PostgreSQL 11+ records a constant default without rewriting the table). The default is then
-- dropped, so every later INSERT must say where its row came from.
ALTER TABLE webhook_events
    ADD COLUMN source text NOT NULL DEFAULT 'webhook'
        CONSTRAINT webhook_events_source_known CHECK (source IN ('webhook', 'stripe'));
ALTER TABLE webhook_events ALTER COLUMN source DROP DEFAULT;
