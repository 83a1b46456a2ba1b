package incident

import (
	"math"
	"regexp"
	"strings"
)

// Text people write (notes, reasons) and evidence they attach must not
// carry a credential into the record: a token pasted into a note would be
// kept, exported and reported for ever. LooksLikeCredential and
// RedactCredentials find the credentials that can be told from their text
// alone. They complement, and do not replace, the orchestrator's removal
// of the incident's own credential, which it knows by value.

// credentialPatterns match credentials by their published formats:
// private keys in PEM, JSON Web Tokens, and the prefixed tokens of widely
// used platforms (GitHub, GitLab, Slack, Stripe, Google API keys, Standard
// Webhooks secrets, OpenAI and Anthropic keys, npm).
var credentialPatterns = regexp.MustCompile(strings.Join([]string{
	`(?s)-----BEGIN[A-Z ]*PRIVATE KEY-----.*?(?:-----END[A-Z ]*PRIVATE KEY-----|\z)`,
	`\beyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*`,
	`\b(?:ghp|gho|ghu|ghs|ghr)_[A-Za-z0-9]{30,}`,
	`\bgithub_pat_[A-Za-z0-9_]{22,}`,
	`\bglpat-[A-Za-z0-9_-]{20,}`,
	`\bxox[abposr]-[A-Za-z0-9-]{10,}`,
	`\b(?:sk|rk)_(?:live|test)_[A-Za-z0-9]{16,}`,
	`\bAIza[0-9A-Za-z_-]{35}`,
	`\bwhsec_[A-Za-z0-9+/=]{16,}`,
	`\bsk-(?:proj-|ant-)?[A-Za-z0-9_-]{20,}`,
	`\bnpm_[A-Za-z0-9]{36}`,
	`(?i)\bbearer\s+[A-Za-z0-9._~+/-]{16,}=*`,
}, "|"))

// credentialAssignment matches a value given to a name that says it is a
// secret ("password=…", "api_key: …", "client_secret=…"); the first group
// is the name and separator, which redaction keeps. A value in brackets
// ("[REDACTED]") is not one.
var credentialAssignment = regexp.MustCompile(`(?i)([A-Za-z0-9_.-]*(?:password|passwd|pwd|secret|token|api[_-]?key|access[_-]?key|private[_-]?key)[A-Za-z0-9_.-]*\s*[:=]\s*)([^\s"',;&\[][^\s"',;&]{5,})`)

// Random-looking tokens: at least randomMinLen characters of the base64
// alphabets mixing upper case, lower case and digits, with at least
// randomMinEntropy bits of Shannon entropy per character and fewer vowels
// among the letters than words have (randomMaxVowels; English text has
// about 0.38, random letters 0.19). Hex strings (digests, fingerprints,
// idempotency keys), UUIDs and identifiers made of words do not qualify.
const (
	randomMinLen     = 32
	randomMinEntropy = 4.0
	randomMaxVowels  = 0.3
)

// LooksLikeCredential reports whether s holds text that looks like a
// credential: a private key, a JSON Web Token, a token in the published
// format of a well-known platform (such as "ghp_…", "xoxb-…",
// "sk_live_…", "AIza…", "whsec_…"), a "Bearer" token, a value assigned to
// a name like password, secret, token or api_key, or a long random-looking
// string (at least 32 characters of the base64 alphabets, mixing upper
// case, lower case and digits, of high entropy and with few vowels, such
// as a cloud secret access key). It is a heuristic, tuned to refuse few identifiers: hex
// strings of any length, UUIDs, key IDs such as "AKIA…" and names pass,
// and so does a secret in none of these forms. It is safe for concurrent
// use.
func LooksLikeCredential(s string) bool {
	return credentialPatterns.MatchString(s) || credentialAssignment.MatchString(s) || randomToken(s, "") >= 0
}

// RedactCredentials returns s with what LooksLikeCredential finds replaced
// by Redacted: whole tokens and keys, and the values (not the names) of
// secret assignments. Text without any is returned as it is. It is safe
// for concurrent use.
func RedactCredentials(s string) string {
	s = credentialPatterns.ReplaceAllLiteralString(s, Redacted)
	s = credentialAssignment.ReplaceAllString(s, "${1}"+Redacted)
	for {
		i := randomToken(s, "")
		if i < 0 {
			return s
		}
		j := i + tokenLen(s[i:], "")
		s = s[:i] + Redacted + s[j:]
	}
}

// tokenRune reports whether c belongs to a token of the base64 alphabets
// (standard and URL-safe, with padding), less the separators in extra.
func tokenRune(c byte, extra string) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	case strings.IndexByte("+/=_-", c) >= 0:
		return strings.IndexByte(extra, c) < 0
	}
	return false
}

// tokenLen is the length of the token s starts with.
func tokenLen(s, extra string) int {
	n := 0
	for n < len(s) && tokenRune(s[n], extra) {
		n++
	}
	return n
}

// randomToken returns the offset of the first random-looking token in s,
// or -1. Tokens are split at every byte that is not a tokenRune, and also
// at those in extra.
func randomToken(s, extra string) int {
	for i := 0; i < len(s); {
		n := tokenLen(s[i:], extra)
		if n == 0 {
			i++
			continue
		}
		if n >= randomMinLen && looksRandom(s[i:i+n]) {
			return i
		}
		i += n
	}
	return -1
}

// looksRandom reports whether the token t mixes upper case, lower case and
// digits with high entropy and few vowels.
func looksRandom(t string) bool {
	var upper, lower, digit bool
	var counts [256]int
	letters, vowels := 0, 0
	for i := 0; i < len(t); i++ {
		c := t[i]
		counts[c]++
		switch {
		case 'A' <= c && c <= 'Z':
			upper = true
			letters++
		case 'a' <= c && c <= 'z':
			lower = true
			letters++
		case '0' <= c && c <= '9':
			digit = true
		}
		if strings.IndexByte("aeiouAEIOU", c) >= 0 {
			vowels++
		}
	}
	if !upper || !lower || !digit || float64(vowels) >= randomMaxVowels*float64(letters) {
		return false
	}
	h := 0.0
	for _, n := range counts {
		if n > 0 {
			p := float64(n) / float64(len(t))
			h -= p * math.Log2(p)
		}
	}
	return h >= randomMinEntropy
}
