-- Accounts. Usernames are stored lowercase (the CHECK keeps it so); the unique index on
-- lower(username) makes "taken whatever its case" the database's decision, so two sign-ups
-- racing for one name cannot both commit.
CREATE TABLE users (
    user_id       UUID PRIMARY KEY,             -- UUID v7
    username      TEXT NOT NULL CHECK (username = lower(username)),
    display_name  TEXT NOT NULL,
    password_hash TEXT NOT NULL,                -- argon2id, PHC string
    roles         TEXT NOT NULL,                -- space-separated: 'customer', 'admin'
    created_at    TIMESTAMPTZ NOT NULL
);

CREATE UNIQUE INDEX users_username ON users (lower(username));
