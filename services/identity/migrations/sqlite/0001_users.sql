-- Accounts. Usernames are stored lowercase; NOCASE uniqueness is a second line of defence
-- should anything ever write one that is not.
CREATE TABLE users (
    user_id       TEXT PRIMARY KEY,             -- UUID v7
    username      TEXT NOT NULL COLLATE NOCASE CHECK (username = lower(username)),
    display_name  TEXT NOT NULL,
    password_hash TEXT NOT NULL,                -- argon2id, PHC string
    roles         TEXT NOT NULL,                -- space-separated: 'customer', 'admin'
    created_at    INTEGER NOT NULL              -- unix milliseconds
);

CREATE UNIQUE INDEX users_username ON users (username);
