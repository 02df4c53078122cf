-- The worker each shared session mines for (its first authorized name), so an edge can tell
-- that a worker its own statistics lost is mining on another edge, and not call it offline.
ALTER TABLE edge_sessions ADD COLUMN worker TEXT;
CREATE INDEX edge_sessions_worker ON edge_sessions (worker) WHERE holder IS NOT NULL;
