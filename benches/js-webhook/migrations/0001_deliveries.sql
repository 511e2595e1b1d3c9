-- The JavaScript benchmark worker's one table: each delivery id once.
CREATE TABLE deliveries (
  id TEXT PRIMARY KEY,
  event TEXT NOT NULL,
  received_at INTEGER NOT NULL
);
