CREATE TABLE api_keys (
    id          text PRIMARY KEY,
    owner_id    text NOT NULL,
    name        text NOT NULL,
    key_hash    text NOT NULL UNIQUE,
    prefix      text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    revoked_at  timestamptz
);

CREATE TABLE models (
    alias           text PRIMARY KEY,
    base_url        text NOT NULL,
    upstream_model  text NOT NULL,
    api_key         text,
    created_at      timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE tools (
    name                 text PRIMARY KEY,
    description          text NOT NULL DEFAULT '',
    parameters           jsonb NOT NULL,
    url                  text NOT NULL,
    timeout_seconds      double precision NOT NULL,
    secret_header_name   text,
    secret_header_value  text,
    created_at           timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE responses (
    id                    text PRIMARY KEY,
    owner_id              text NOT NULL,
    status                text NOT NULL CHECK (status IN ('queued','in_progress','completed','failed','cancelled','incomplete')),
    model                 text NOT NULL,
    request               jsonb NOT NULL,
    previous_response_id  text,
    idempotency_key       text,
    request_hash          text NOT NULL,
    created_at            timestamptz NOT NULL DEFAULT now(),
    updated_at            timestamptz NOT NULL DEFAULT now(),
    completed_at          timestamptz,
    error                 jsonb,
    incomplete_reason     text,
    input_tokens          integer NOT NULL DEFAULT 0,
    output_tokens         integer NOT NULL DEFAULT 0,
    cached_tokens         integer NOT NULL DEFAULT 0,
    reasoning_tokens      integer NOT NULL DEFAULT 0
);
CREATE INDEX responses_open_idx ON responses (updated_at) WHERE status IN ('queued', 'in_progress');

-- Item ids are not unique: clients re-send earlier items (with their ids) as new input.
CREATE TABLE items (
    response_id  text NOT NULL REFERENCES responses (id) ON DELETE CASCADE,
    direction    text NOT NULL CHECK (direction IN ('input', 'output')),
    position     bigint NOT NULL,
    id           text NOT NULL,
    owner_id     text NOT NULL,
    data         jsonb NOT NULL,
    PRIMARY KEY (response_id, direction, position)
);
CREATE INDEX items_id_idx ON items (id, owner_id);

CREATE TABLE steps (
    response_id  text NOT NULL REFERENCES responses (id) ON DELETE CASCADE,
    seq          integer NOT NULL,
    kind         text NOT NULL CHECK (kind IN ('model_call', 'tool_call')),
    state        text NOT NULL CHECK (state IN ('running', 'completed', 'failed')),
    attempt      integer NOT NULL,
    tool_name    text,
    call_id      text,
    started_at   timestamptz,
    finished_at  timestamptz,
    error        text,
    result       jsonb,
    PRIMARY KEY (response_id, seq)
);
