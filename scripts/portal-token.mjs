#!/usr/bin/env node
// Prints a portal JWT (HS256 over tid, sub, iat, exp) for local use against `scripts/dev`:
//   node scripts/portal-token.mjs [tenant] [technician]
// The secret is PORTAL_JWT_SECRET from .dev.vars (the throwaway dev secret by default).
import { createHmac } from "node:crypto";
import { readFileSync } from "node:fs";

const vars = readFileSync(new URL("../.dev.vars", import.meta.url), "utf8");
const secret = /^PORTAL_JWT_SECRET="?([^"\n]*)"?$/m.exec(vars)?.[1];
if (!secret) throw new Error("PORTAL_JWT_SECRET is not set in .dev.vars");
const [tid = "tenant-demo", sub = "technician-demo"] = process.argv.slice(2);
const now = Math.floor(Date.now() / 1000);
const b64 = (o) => Buffer.from(JSON.stringify(o)).toString("base64url");
const input = `${b64({ alg: "HS256", typ: "JWT" })}.${b64({ tid, sub, iat: now, exp: now + 3600 })}`;
console.log(`${input}.${createHmac("sha256", secret).update(input).digest("base64url")}`);
