-- Durable stream event log: one row per SSE event, numbered per response from 0.
ALTER TABLE responses ADD COLUMN event_seq integer NOT NULL DEFAULT 0;

CREATE TABLE response_events (
    response_id  text NOT NULL REFERENCES responses (id) ON DELETE CASCADE,
    seq          integer NOT NULL,
    step_seq     integer,
    type         text NOT NULL,
    event        jsonb NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (response_id, seq)
);
CREATE INDEX response_events_step_idx ON response_events (response_id, step_seq);
