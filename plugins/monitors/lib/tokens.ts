/**
 * Webhook secrets. The token travels in the URL (monitors can only be given a URL), so only its SHA-256
 * is stored. Integrations that can sign use HMAC-SHA256 over `<timestamp>.<raw body>` keyed with the
 * signing secret, which is the hex SHA-256 of the token (shown once at creation).
 */
import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';

/** A new URL-safe token (48 random bytes → 64 characters, like Discord's 68). */
export function newToken(): string {
  return randomBytes(48).toString('base64url');
}

/** Hex SHA-256. */
export function sha256Hex(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}

// Compared when the webhook id is unknown, so a miss costs the same as a wrong token.
const DUMMY_HASH = sha256Hex('solescope-no-such-webhook');

/** Constant-time check of a presented token against a stored hash (or none, for unknown ids). */
export function tokenMatches(token: string, storedHash: string | undefined): boolean {
  const presented = Buffer.from(sha256Hex(token), 'hex');
  const expected = Buffer.from(storedHash ?? DUMMY_HASH, 'hex');
  const equal = presented.length === expected.length && timingSafeEqual(presented, expected);
  return equal && storedHash !== undefined;
}

/** `sha256=<hex>` signature of a body at a timestamp. */
export function sign(signingSecret: string, timestamp: string, rawBody: Buffer | string): string {
  return `sha256=${createHmac('sha256', signingSecret).update(`${timestamp}.`).update(rawBody).digest('hex')}`;
}

/** Constant-time signature check. */
export function signatureMatches(signingSecret: string, timestamp: string, rawBody: Buffer, presented: string): boolean {
  const a = Buffer.from(sign(signingSecret, timestamp, rawBody));
  const b = Buffer.from(presented);
  return a.length === b.length && timingSafeEqual(a, b);
}
