#!/bin/sh
# devcerts.sh DIR: makes a development CA, a server certificate for
# localhost/127.0.0.1/::1 and client certificates (ECDSA P-256: fast
# handshakes), for tests and the demo only. Existing files in DIR are kept,
# except a server certificate made before ::1 was among its names (it is
# made again, signed by the same CA).
#   DIR/ca.crt ca.key            development CA
#   DIR/server.crt server.key    CN=localhost, SAN DNS:localhost, IP:127.0.0.1, IP:::1
#   DIR/client-NAME.crt .key     one per NAME in $DEVCERTS_CLIENTS [admin publisher viewer]
set -eu
dir=${1:?usage: devcerts.sh DIR}
days=${DEVCERTS_DAYS:-825}
mkdir -p "$dir"
cd "$dir"
umask 077
key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }
if [ ! -f ca.crt ]; then
    key ca.key
    openssl req -x509 -new -key ca.key -sha256 -days "$days" -subj "/CN=dialogue dev CA" \
        -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
        -out ca.crt 2>/dev/null
fi
leaf() { # name cn ext
    [ -f "$1.crt" ] && return 0
    key "$1.key"
    openssl req -new -key "$1.key" -subj "/CN=$2" -out "$1.csr" 2>/dev/null
    printf '%s\n' "$3" > "$1.ext"
    openssl x509 -req -in "$1.csr" -CA ca.crt -CAkey ca.key -CAcreateserial -sha256 \
        -days "$days" -extfile "$1.ext" -out "$1.crt" 2>/dev/null
    rm -f "$1.csr" "$1.ext"
}
# IPv6 loopback too, so `dialoguectl --server [::1]:3000` verifies.
if [ -f server.crt ] && ! openssl x509 -in server.crt -noout -ext subjectAltName 2>/dev/null |
        grep -q 'IP Address:0:0:0:0:0:0:0:1'; then
    rm -f server.crt server.key
fi
leaf server localhost "subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1
extendedKeyUsage=serverAuth
basicConstraints=CA:FALSE"
for c in ${DEVCERTS_CLIENTS:-admin publisher viewer}; do
    leaf "client-$c" "$c" "extendedKeyUsage=clientAuth
basicConstraints=CA:FALSE"
done
chmod 644 ./*.crt
echo "devcerts: $(pwd)"
