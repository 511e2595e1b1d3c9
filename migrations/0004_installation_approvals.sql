-- Pending installation requests (setup_action=request) remember who asked on GitHub, when the
-- App requests user authorization during installation, so the owner's approval
-- (installation.created with that requester) can be linked to the tenant that asked.
ALTER TABLE installation_requests ADD COLUMN requester_login TEXT;
ALTER TABLE installation_requests ADD COLUMN installation_id INTEGER;  -- set when linked
CREATE INDEX installation_requests_requester ON installation_requests (requester_login, status);
