-- Failed sign-ins per username (sign-in throttling). Keyed by the lowercase username whether or
-- not an account has it, so a lockout does not tell which accounts exist; no foreign key.
CREATE TABLE failed_sign_ins (
    username        TEXT PRIMARY KEY CHECK (username = lower(username)),
    failures        INTEGER NOT NULL CHECK (failures > 0),
    last_failure_at INTEGER NOT NULL,           -- unix milliseconds
    locked_until    INTEGER                     -- unix milliseconds; NULL: not locked
);
