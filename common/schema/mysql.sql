-- The producer's schema for MySQL 8 and MariaDB 10.11. Applied by the runner at start-up;
-- common/models.py must agree with it (common/tests/test_schema.py checks that).
--
-- Ids are UUIDv7 stored as BINARY(16): 16 bytes instead of 36 characters, and, because a
-- UUIDv7 starts with its creation time in milliseconds, every insert appends at the right
-- edge of InnoDB's clustered index instead of splitting pages at random as UUIDv4 would.
-- Times are UTC with microseconds (DATETIME(6)); the application never stores local time.

CREATE TABLE IF NOT EXISTS users (
    id             BINARY(16)   NOT NULL,
    username       VARCHAR(32)  NOT NULL,
    password_hash  VARCHAR(255) NOT NULL,
    created_at     DATETIME(6)  NOT NULL,
    updated_at     DATETIME(6)  NOT NULL,
    PRIMARY KEY (id),
    UNIQUE KEY uq_users_username (username)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE IF NOT EXISTS tasks (
    id          BINARY(16)        NOT NULL,
    user_id     BINARY(16)        NOT NULL,
    type        VARCHAR(64)       NOT NULL,
    payload     JSON              NOT NULL,
    priority    SMALLINT          NOT NULL DEFAULT 5,
    status      VARCHAR(16)       NOT NULL DEFAULT 'PENDING',
    created_at  DATETIME(6)       NOT NULL,
    updated_at  DATETIME(6)       NOT NULL,
    PRIMARY KEY (id),
    -- Serves "this user's tasks, newest first" (ORDER BY id DESC) and the user_id foreign key.
    KEY ix_tasks_user_id_id (user_id, id),
    -- Serves the same listing filtered by status.
    KEY ix_tasks_user_id_status_id (user_id, status, id),
    CONSTRAINT fk_tasks_user_id FOREIGN KEY (user_id) REFERENCES users (id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE IF NOT EXISTS idempotency_keys (
    user_id        BINARY(16)   NOT NULL,
    -- Printable ASCII chosen by the client; ascii_bin makes "Key" and "key" different keys.
    idem_key       VARCHAR(255) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    request_hash   VARCHAR(64)  NOT NULL,
    task_id        BINARY(16)   NULL,
    status_code    SMALLINT     NULL,
    response_body  JSON         NULL,
    created_at     DATETIME(6)  NOT NULL,
    expires_at     DATETIME(6)  NOT NULL,
    PRIMARY KEY (user_id, idem_key),
    -- Lets the expiry sweep delete old keys without a full scan.
    KEY ix_idempotency_keys_expires_at (expires_at),
    CONSTRAINT fk_idempotency_keys_user_id FOREIGN KEY (user_id) REFERENCES users (id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
