#!/bin/sh
# gen-keys.sh DIR: development JWT key material for dialogue, made with the
# openssl CLI: an HS256 secret and RS256 / ES256 / EdDSA key pairs. The
# private keys are for the token issuer (a test harness); the daemon gets
# only the *.pub.pem files (auth.jwt.keys[].public_key_file) or the secret.
# The unit tests make their own keys in C; this is for manual runs and docs.
set -eu
[ $# -eq 1 ] || { echo "usage: $0 DIR" >&2; exit 2; }
dir=$1
mkdir -p "$dir"
umask 077
# 32 random bytes as base64: 44 printable bytes, no final newline to argue about
openssl rand -base64 32 | tr -d '\n' > "$dir/hs256.secret"
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$dir/rs256.key.pem" 2>/dev/null
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$dir/es256.key.pem"
openssl genpkey -algorithm ED25519 -out "$dir/eddsa.key.pem"
for k in rs256 es256 eddsa; do
    openssl pkey -in "$dir/$k.key.pem" -pubout -out "$dir/$k.pub.pem"
    chmod 644 "$dir/$k.pub.pem"
done
echo "wrote $dir/{hs256.secret,rs256,es256,eddsa}.{key,pub}.pem"
