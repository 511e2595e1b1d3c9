-- GitLab and Azure DevOps: organizations connected through OAuth (authorization code + PKCE).
--
-- One connection per tenant, provider instance and provider user holds that user's tokens,
-- encrypted with AES-256-GCM (see src/token_crypto.rs: the envelope names its key id, the row's
-- id, provider and column are its associated data). Every GitLab group / Azure DevOps
-- organization connected through it is an `organizations` row pointing at it, with the same
-- repositories, stubs, backup jobs, settings and lifecycle as a GitHub org.

CREATE TABLE provider_connections (
    id               TEXT PRIMARY KEY,
    tenant_id        TEXT NOT NULL,
    provider         TEXT NOT NULL CHECK (provider IN ('gitlab', 'azure_devops')),
    base_url         TEXT NOT NULL,             -- GitLab instance, or the Azure DevOps API base
    user_id          TEXT NOT NULL,             -- the provider user who authorized
    user_name        TEXT,
    status           TEXT NOT NULL CHECK (status IN ('active', 'revoked')),
    key_id           TEXT NOT NULL,             -- TOKEN_KEYS entry that sealed both tokens
    access_token     TEXT NOT NULL,             -- envelope `v1.<kid>.<nonce|ciphertext|tag>`
    refresh_token    TEXT NOT NULL,             -- envelope; single use on GitLab
    expires_at       TEXT NOT NULL,             -- of the access token
    -- Bumped by every write of the tokens. A refresh first claims the row with a
    -- compare-and-swap on it (and a lease), so two isolates never spend one refresh token.
    version          INTEGER NOT NULL DEFAULT 1,
    lease_until      TEXT,                      -- a refresh in progress holds the row until then
    last_error       TEXT,                      -- why it was revoked, or the last refresh failure
    connected_by     TEXT NOT NULL,             -- technician id
    created_at       TEXT NOT NULL,
    updated_at       TEXT NOT NULL,
    UNIQUE (tenant_id, provider, base_url, user_id)
);
CREATE INDEX provider_connections_expiry ON provider_connections (status, expires_at);
CREATE INDEX provider_connections_key ON provider_connections (key_id);

-- For OAuth orgs (installation_id is 0: there is no installation):
--   account_id    the account's key on its provider: the GitLab group's API URL (unique across
--                 instances), the Azure DevOps organization's id (a GUID);
--   api_url       where its repositories are listed from: the GitLab group's API URL, or
--                 `{AZURE_DEVOPS_API_URL}/{organization}`;
--   connection_id the connection whose tokens read it.
ALTER TABLE organizations ADD COLUMN api_url TEXT;
ALTER TABLE organizations ADD COLUMN connection_id TEXT REFERENCES provider_connections (id);
CREATE INDEX organizations_connection ON organizations (connection_id);

-- One tenant per GitHub installation (OAuth orgs have none).
DROP INDEX organizations_installation;
CREATE UNIQUE INDEX organizations_installation ON organizations (installation_id) WHERE provider = 'github';

-- The provider's repository id: GitHub's and GitLab's are integers, Azure DevOps' are GUIDs.
ALTER TABLE repositories RENAME COLUMN github_id TO provider_repo_id;
