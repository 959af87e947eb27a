// Package webhook signs and verifies webhooks the Standard Webhooks way
// (standardwebhooks.com) and sends them without letting a callback URL
// reach an internal address (SSRF).
//
// A message carries three headers: webhook-id (the same on every retry),
// webhook-timestamp (Unix seconds of the attempt) and webhook-signature,
// space-separated "v1,<base64 HMAC-SHA256>" entries over
// "{id}.{timestamp}.{body}", one per secret while secrets rotate. A secret
// is written "whsec_" followed by the base64 of its bytes.
package webhook
