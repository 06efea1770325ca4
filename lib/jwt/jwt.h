/* jwt.h: JSON Web Token verification against keys fixed by the server's
 * configuration (HS256, RS256, ES256, EdDSA), and HS256 minting for
 * development (`dialoguectl token`). */
#ifndef DLG_JWT_H
#define DLG_JWT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Algorithms a key can be configured for. The numbers are not the
 * DLG_CFG_ALG_* values of config.h (those start at 0): map them with
 * dlg_jwt_alg_parse(dlg_config_alg_name(alg)) or a switch. */
enum { DLG_JWT_HS256 = 1, DLG_JWT_RS256, DLG_JWT_ES256, DLG_JWT_EDDSA };

/* Tokens longer than this many bytes are rejected before any decoding. */
#define DLG_JWT_MAX_TOKEN 8192
/* HS256 secrets shorter than this are refused (RFC 7518 3.2: a key at least
 * as long as the hash output). */
#define DLG_JWT_MIN_SECRET 32
/* Secret files larger than this are refused (a secret, not a data file). */
#define DLG_JWT_MAX_SECRET 4096
/* Upper bound on sub, on kid and on each role, in bytes. */
#define DLG_JWT_MAX_NAME 255
/* Upper bound on the number of roles one token may carry. */
#define DLG_JWT_MAX_ROLES 64
/* Leeway used until dlg_jwt_set_leeway is called, in seconds. */
#define DLG_JWT_DEFAULT_LEEWAY 30

/* The verifier: a set of keys plus the claim checks. Built once from the
 * configuration, then only read: dlg_jwt_verify takes it const and may run
 * in several threads at once as long as nobody changes the verifier. */
typedef struct dlg_jwt_verifier dlg_jwt_verifier;

/* What a verified token says about its holder. Everything is owned by the
 * struct and released by dlg_jwt_claims_free. */
typedef struct dlg_jwt_claims {
    char *sub;          /* user id: 1..255 bytes, no control characters */
    char **roles;       /* n_roles strings (NULL when n_roles is 0) */
    size_t n_roles;
    int64_t exp;        /* the exp claim, Unix seconds; 0 = the token has none */
} dlg_jwt_claims;

/* "HS256", "RS256", "ES256", "EdDSA" (exact case, as in JOSE headers) ->
 * DLG_JWT_*; -1 for anything else, "none" included. NULL gives -1. */
int dlg_jwt_alg_parse(const char *s);

/* DLG_JWT_* -> its JOSE name ("HS256"); "?" when out of range. Static. */
const char *dlg_jwt_alg_name(int alg);

/* Whether s is acceptable as a sub or kid (1..255 bytes of UTF-8, no
 * control characters), or, with as_role, as a role (the same, and not
 * "*"). NULL is not. For tools that want to name the bad value before
 * calling dlg_jwt_sign_hs256. */
bool dlg_jwt_name_valid(const char *s, bool as_role);

/* Creates an empty verifier: no keys (every token is rejected until a key is
 * added), no issuer or audience check, leeway DLG_JWT_DEFAULT_LEEWAY, roles
 * claim "role", exp required. *out is owned by the caller
 * (dlg_jwt_verifier_free). Returns 0, DLG_EINVAL (out is NULL) or
 * DLG_ENOMEM; on error *out is unchanged. */
int dlg_jwt_verifier_new(dlg_jwt_verifier **out);

/* Frees v, its keys (secrets are wiped first) and its settings. NULL is
 * ignored. */
void dlg_jwt_verifier_free(dlg_jwt_verifier *v);

/* Key ids. A key added with a kid (1..255 bytes) is used only for tokens
 * whose header carries exactly that kid. A key added with kid NULL or "" is
 * a default key: it is used for tokens without a kid, and for tokens whose
 * kid names no configured key (so a single-key setup works whatever kid the
 * issuer stamps). A token whose kid names no key is rejected with
 * "unknown key id" only when there is no default key. Several default keys
 * may be configured (rotation): each whose alg equals the token's is tried
 * in the order they were added. Adding a second key with the same non-empty
 * kid fails with DLG_EEXIST. */

/* Adds an HS256 key. The secret is copied (the caller keeps its buffer) and
 * must be DLG_JWT_MIN_SECRET..DLG_JWT_MAX_SECRET bytes. Returns 0,
 * DLG_EINVAL (NULL argument, bad length, kid too long), DLG_EEXIST or
 * DLG_ENOMEM; on error v is unchanged. */
int dlg_jwt_add_hmac_key(dlg_jwt_verifier *v, const char *kid, const uint8_t *secret,
                         size_t len);

/* Reads an HS256 secret file: its bytes as they are, except that one final
 * "\n" or "\r\n" is dropped (so `echo secret > file` and an editor's final
 * newline do not change the secret). On success *out (owned by the caller;
 * wipe and free it) holds *len bytes. Returns 0, DLG_EIO (cannot be read),
 * DLG_EINVAL (NULL argument; empty, shorter than DLG_JWT_MIN_SECRET or
 * larger than DLG_JWT_MAX_SECRET) or DLG_ENOMEM; err (if errlen > 0) names
 * the file and the problem, never the secret. dialoguectl uses this too, so
 * both sides read a file the same way. */
int dlg_jwt_read_secret_file(const char *path, uint8_t **out, size_t *len, char *err,
                             size_t errlen);

/* dlg_jwt_read_secret_file + dlg_jwt_add_hmac_key. Same returns; err names
 * the file (or the kid for DLG_EEXIST). */
int dlg_jwt_add_secret_file(dlg_jwt_verifier *v, const char *kid, const char *path,
                            char *err, size_t errlen);

/* Adds a public key for alg (DLG_JWT_RS256, ES256 or EDDSA) from a PEM file
 * holding a "PUBLIC KEY" (SubjectPublicKeyInfo) block or a certificate. The
 * key must fit alg: RS256 an RSA key of 2048..16384 bits, ES256 a P-256 EC
 * key, EdDSA an Ed25519 key. Returns 0, DLG_EINVAL (NULL argument, alg is
 * HS256 or unknown, kid too long), DLG_EIO (file cannot be read or holds no
 * public key), DLG_ECONFIG (key does not fit alg), DLG_EEXIST or
 * DLG_ENOMEM; err names the file and the problem. On error v is unchanged. */
int dlg_jwt_add_public_key_file(dlg_jwt_verifier *v, const char *kid, int alg,
                                const char *pem_path, char *err, size_t errlen);

/* Claim settings. Strings are copied. Each returns 0, or DLG_ENOMEM /
 * DLG_EINVAL (v is NULL) leaving the previous setting in place. */

/* Required value of iss (exact match); NULL or "" = iss is not checked. */
int dlg_jwt_set_issuer(dlg_jwt_verifier *v, const char *iss);
/* Required audience: aud must be this string, or an array holding it.
 * NULL or "" = no audience: a token that carries aud at all is then
 * refused (RFC 7519 4.1.3: it was minted for some other recipient). */
int dlg_jwt_set_audience(dlg_jwt_verifier *v, const char *aud);
/* The top-level claim holding roles (a string or an array of strings);
 * NULL or "" restores "role". The name is matched exactly; no dotted
 * paths, because namespaced claim names contain dots themselves. */
int dlg_jwt_set_roles_claim(dlg_jwt_verifier *v, const char *claim);
/* Clock skew allowed on exp, nbf and iat, 0..3600 seconds (others are
 * clamped into that range). */
void dlg_jwt_set_leeway(dlg_jwt_verifier *v, int64_t seconds);
/* Whether tokens without exp are accepted (default false: a token that
 * never expires cannot be revoked by waiting). */
void dlg_jwt_set_require_exp(dlg_jwt_verifier *v, bool required);

/* Verifies token (len bytes, need not be NUL-terminated) at time now (Unix
 * seconds) and fills *out (caller frees with dlg_jwt_claims_free). Checks,
 * in order: size <= DLG_JWT_MAX_TOKEN, three base64url segments (strict:
 * no padding, no other characters, unused bits zero), a JSON object header
 * with alg (never "none"), typ "JWT" if present (case-insensitive), no crit,
 * a key selected by kid (see above) whose alg equals the header's, the
 * signature, then a JSON object payload (duplicate names rejected) with:
 *   exp (a number; required unless disabled) with now < exp + leeway,
 *   nbf and iat (numbers, optional) not after now + leeway,
 *   iss / aud as configured (aud refused when no audience is set), sub a string of 1..255 bytes without control
 *   characters, the roles claim absent (no roles), a string or an array of
 *   at most DLG_JWT_MAX_ROLES strings; each role 1..255 bytes, no control
 *   characters, not "*" (that means "any client" in the config). Any other
 *   shape of the roles claim rejects the token rather than being ignored,
 *   so a misconfigured issuer shows up at once.
 * Returns 0, DLG_EAUTH (token rejected), DLG_EINVAL (NULL argument) or
 * DLG_ENOMEM. On error *out is zeroed and err (if errlen > 0) gets a short
 * reason that never quotes the token or a secret, e.g.
 *   "token expired at 2026-11-28T10:00:00Z", "token signature invalid",
 *   "unknown key id \"k9\"", "malformed token: 2 segments, expected 3". */
int dlg_jwt_verify(const dlg_jwt_verifier *v, const char *token, size_t len, int64_t now,
                   dlg_jwt_claims *out, char *err, size_t errlen);

/* Releases what c owns and zeroes it. NULL is ignored. */
void dlg_jwt_claims_free(dlg_jwt_claims *c);

/* Deep copy of src into *dst (which is overwritten, not freed first; the
 * caller frees it with dlg_jwt_claims_free). Returns 0, DLG_EINVAL or
 * DLG_ENOMEM; on error *dst is zeroed. */
int dlg_jwt_claims_copy(dlg_jwt_claims *dst, const dlg_jwt_claims *src);

/* When a session authenticated with claims c must end, in Unix seconds:
 * exp plus the verifier's leeway (the same bound dlg_jwt_verify applied, so
 * a token accepted inside the leeway is not cut at once), or 0 when the
 * token has no exp. */
int64_t dlg_jwt_session_deadline(const dlg_jwt_verifier *v, const dlg_jwt_claims *c);

/* Mints an HS256 token for development and tests: header
 * {"alg":"HS256","typ":"JWT"} plus "kid" when kid is not NULL or "", and
 * claims iss (when iss is not NULL or ""), sub, aud (when not NULL or ""),
 * role (a string for one role, an array for several, absent for none), iat,
 * exp = iat + ttl_seconds. secret must be DLG_JWT_MIN_SECRET..
 * DLG_JWT_MAX_SECRET bytes; sub, kid and each role must pass the rules
 * dlg_jwt_verify applies (1..255 bytes of UTF-8, no control characters, a
 * role not "*"), n_roles <= DLG_JWT_MAX_ROLES, ttl_seconds 1..31536000,
 * iat >= 0. On success *out is a NUL-terminated token owned by the caller
 * (free). Returns 0, DLG_EINVAL (bad argument) or DLG_ENOMEM; *out is
 * unchanged on error. */
int dlg_jwt_sign_hs256(const uint8_t *secret, size_t len, const char *kid, const char *sub,
                       const char *const *roles, size_t n_roles, int64_t iat,
                       int64_t ttl_seconds, const char *aud, const char *iss, char **out);

#endif
