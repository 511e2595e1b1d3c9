-- Connections waiting for their technician's confirmation (issue #13).
--
-- A connect callback (GitHub install, GitLab / Azure DevOps OAuth) proves what it can about
-- the installation or the signed-in account, spends its state, and leaves one row here instead
-- of linking anything: nothing in it is visible to the portal and no job is sent. Only the
-- tenant and technician who started the flow can confirm it (`POST /v1/connect/confirm`)
-- before `expires_at`; confirming spends the row's id as a one-time nonce in
-- `consumed_states`, in the same D1 transaction as the writes that link the orgs. Expired rows
-- are purged by the hourly cron and by a late confirmation.
CREATE TABLE pending_connections (
    id               TEXT PRIMARY KEY,          -- 128 random bits, hex; in the confirm URL
    tenant_id        TEXT NOT NULL,
    technician_id    TEXT NOT NULL,
    provider         TEXT NOT NULL CHECK (provider IN ('github', 'gitlab', 'azure_devops')),
    -- What confirming links, as JSON: the installation (GitHub), or the account, the groups /
    -- organizations and the tokens sealed for the connection row they will live in (OAuth).
    -- Never a token in the clear.
    detail           TEXT NOT NULL,
    created_at       TEXT NOT NULL,
    expires_at       TEXT NOT NULL
);
CREATE INDEX pending_connections_expiry ON pending_connections (expires_at);
