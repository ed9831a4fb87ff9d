-- Sessions of the web dashboard (/ui). The cookie's value is never stored: only its SHA-256
-- (hex), so reading this table gives no usable session. Shared by every hub on the database.
CREATE TABLE ui_sessions (
    id_hash TEXT PRIMARY KEY,
    csrf_token TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX ui_sessions_by_expiry ON ui_sessions (expires_at);
