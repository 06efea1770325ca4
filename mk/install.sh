#!/bin/sh
# install.sh BUILD_DIR: `ninja install`: everything dialogue installs, under
# $DESTDIR (a staging root, default none) and $PREFIX (default /usr/local):
#   $SBINDIR/dialogued                        [PREFIX/sbin]
#   $BINDIR/dialoguectl, dialogue-bench       [PREFIX/bin]
#   $LIBDIR/libdialogue-client.{a,so.2,so}, pkgconfig/dialogue-client.pc
#                                             [PREFIX/lib]
#   PREFIX/include/dialogue/client.h, dlg_errno.h
#   PREFIX/share/dialogue/proto/...           the .proto files
#   PREFIX/share/dialogue/dashboard.pb        the example's descriptor set
#   $DOCDIR/examples/dialogue.yaml            example config [PREFIX/share/doc/dialogue]
#   $LIBEXECDIR/make-credentials              a fresh install's TLS certificate and
#                                             token secret [PREFIX/libexec/dialogue]
#   PREFIX/share/bash-completion/completions/dialoguectl
#   $MANDIR/man8/dialogued.8, man1/dialoguectl.1, man1/dialogue-bench.1,
#       man5/dialogue.yaml.5                  [PREFIX/share/man]
#   $UNITDIR/dialogued.service                [PREFIX/lib/systemd/system]
#       (its paths: SBINDIR, and SYSCONFDIR/dialogue/dialogue.yaml
#       [/etc when PREFIX is /usr, else PREFIX/etc])
# Run from the repository root; `ninja install` does that (after building).
set -eu
b=${1:?usage: install.sh BUILD_DIR}
prefix=${PREFIX:-/usr/local}
bindir=${BINDIR:-$prefix/bin}
sbindir=${SBINDIR:-$prefix/sbin}
datadir=$prefix/share
docdir=${DOCDIR:-$datadir/doc/dialogue}
unitdir=${UNITDIR:-$prefix/lib/systemd/system}
mandir=${MANDIR:-$datadir/man}
libexecdir=${LIBEXECDIR:-$prefix/libexec/dialogue}
if [ "$prefix" = /usr ]; then sysconfdir=${SYSCONFDIR:-/etc}; else sysconfdir=${SYSCONFDIR:-$prefix/etc}; fi
dest=${DESTDIR:-}
# The one version number, for the man pages' headers.
version=$(cat VERSION)
[ -n "$version" ] || { echo "install.sh: VERSION is empty" >&2; exit 1; }
# The client library (with headers and pkg-config file) and dialoguectl
# have their own scripts (ninja install-client, install-cli).
PREFIX=$prefix client-lib/install.sh "$b"
PREFIX=$prefix BINDIR=$bindir cli/install.sh "$b"
install -d "$dest$sbindir" "$dest$bindir" "$dest$datadir/dialogue" "$dest$docdir/examples"
install -m 755 "$b/bin/dialogued" "$dest$sbindir/dialogued"
install -m 755 "$b/bin/dialogue-bench" "$dest$bindir/dialogue-bench"
# The protocol and the example's events, for clients in other languages.
(cd proto && find . -name '*.proto' | sort) | while read -r f; do
    install -D -m 644 "proto/$f" "$dest$datadir/dialogue/proto/${f#./}"
done
install -m 644 "$b/share/dialogue/dashboard.pb" "$dest$datadir/dialogue/dashboard.pb"
install -m 644 dist/dialogue.yaml "$dest$docdir/examples/dialogue.yaml"
install -D -m 755 dist/make-credentials "$dest$libexecdir/make-credentials"
for page in man/dialogued.8 man/dialoguectl.1 man/dialogue-bench.1 man/dialogue.yaml.5; do
    install -d "$dest$mandir/man${page##*.}"
    sed "s|@VERSION@|$version|g" "$page" > "$dest$mandir/man${page##*.}/${page#man/}"
    chmod 644 "$dest$mandir/man${page##*.}/${page#man/}"
done
install -d "$dest$unitdir"
sed -e "s|@SBINDIR@|$sbindir|g" -e "s|@SYSCONFDIR@|$sysconfdir|g" dist/dialogued.service.in \
    > "$dest$unitdir/dialogued.service"
chmod 644 "$dest$unitdir/dialogued.service"
echo "install.sh: dialogued, dialogue-bench, protocol files, example config, man pages, unit -> $dest$prefix"
