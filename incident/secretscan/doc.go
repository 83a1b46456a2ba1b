// Package secretscan receives leaked-credential reports from code-hosting
// platforms' secret scanning partner programs and turns each leaked token
// that belongs to the host into an incident.Signal.
//
// The protocol is GitHub's "Secret scanning partner program"
// (docs.github.com, code-security/secret-scanning/secret-scanning-partner-program):
// the platform POSTs a JSON array of matches
//
//	[{"token":"…","type":"…","url":"…","source":"…"}]
//
// signed with ECDSA over NIST P-256 and SHA-256 of the raw body. The base64
// ASN.1 (DER) signature arrives in the Github-Public-Key-Signature header and
// the identifier of the signing key in Github-Public-Key-Identifier; the
// platform publishes its keys as {"public_keys":[{"key_identifier", "key",
// "is_current"}]} at [GitHubKeysURL]. The receiver may answer with a JSON
// array of feedback entries labelling each token "true_positive" or
// "false_positive".
//
// A host mounts a [Handler] (built with [New]) at the URL it registered with
// the platform. The handler verifies the signature with a [KeySet], parses
// and checks the whole batch, asks the host's Resolve function which of its
// credentials each token is, reports one signal per token that is the
// host's to its incident.Reporter (the orchestrator is one), and answers
// with the feedback. A token that is not the host's is labelled a false
// positive and not reported.
//
// The token is the leaked secret itself. It travels only as an
// incident.Secret (Match.Token and Signal.Credential): it never appears in
// a log line, an error message or a response body (feedback carries its
// SHA-256, "token_hash", which the protocol accepts in place of the raw
// token).
package secretscan
