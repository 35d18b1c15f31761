-- The same schema for the embedded SQLite database. SQLite has no BINARY(16), JSON or
-- DATETIME(6) types: ids are 16-byte BLOBs (checked), JSON is TEXT holding valid JSON
-- (checked), and times are ISO-8601 text written by SQLAlchemy with microseconds.

CREATE TABLE IF NOT EXISTS users (
    id             BLOB         NOT NULL CHECK (length(id) = 16),
    username       VARCHAR(32)  NOT NULL,
    password_hash  VARCHAR(255) NOT NULL,
    created_at     DATETIME     NOT NULL,
    updated_at     DATETIME     NOT NULL,
    PRIMARY KEY (id),
    CONSTRAINT uq_users_username UNIQUE (username)
);

CREATE TABLE IF NOT EXISTS tasks (
    id          BLOB         NOT NULL CHECK (length(id) = 16),
    user_id     BLOB         NOT NULL,
    type        VARCHAR(64)  NOT NULL,
    payload     JSON         NOT NULL CHECK (json_valid(payload)),
    priority    SMALLINT     NOT NULL DEFAULT 5,
    status      VARCHAR(16)  NOT NULL DEFAULT 'PENDING',
    created_at  DATETIME     NOT NULL,
    updated_at  DATETIME     NOT NULL,
    PRIMARY KEY (id),
    CONSTRAINT fk_tasks_user_id FOREIGN KEY (user_id) REFERENCES users (id)
);
CREATE INDEX IF NOT EXISTS ix_tasks_user_id_id ON tasks (user_id, id);
CREATE INDEX IF NOT EXISTS ix_tasks_user_id_status_id ON tasks (user_id, status, id);

CREATE TABLE IF NOT EXISTS idempotency_keys (
    user_id        BLOB         NOT NULL,
    idem_key       VARCHAR(255) NOT NULL,
    request_hash   VARCHAR(64)  NOT NULL,
    task_id        BLOB         NULL,
    status_code    SMALLINT     NULL,
    response_body  JSON         NULL,
    created_at     DATETIME     NOT NULL,
    expires_at     DATETIME     NOT NULL,
    PRIMARY KEY (user_id, idem_key),
    CONSTRAINT fk_idempotency_keys_user_id FOREIGN KEY (user_id) REFERENCES users (id)
);
CREATE INDEX IF NOT EXISTS ix_idempotency_keys_expires_at ON idempotency_keys (expires_at);
