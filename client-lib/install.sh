#!/bin/sh
# install.sh BUILD_DIR: installs libdialogue-client from BUILD_DIR (static and
# shared library with its SONAME links, headers, pkg-config file) under
# $DESTDIR$PREFIX
# (PREFIX defaults to /usr/local, LIBDIR to $PREFIX/lib). Run from the
# repository root; `ninja install-client` does that.
set -eu
b=${1:?usage: install.sh BUILD_DIR}
prefix=${PREFIX:-/usr/local}
libdir=${LIBDIR:-$prefix/lib}
dest=${DESTDIR:-}
version=$(sed -n 's/^#define DLG__VERSION "\(.*\)"$/\1/p' client-lib/src/client_int.h)
[ -n "$version" ] || { echo "install.sh: no DLG__VERSION in client-lib/src/client_int.h" >&2; exit 1; }
install -d "$dest$libdir/pkgconfig" "$dest$prefix/include/dialogue"
install -m 644 "$b/lib/libdialogue-client.a" "$dest$libdir/libdialogue-client.a"
# The usual shared-library layout: the file carries the full ABI version,
# the SONAME link (.so.1) is what programs load, the plain .so is what
# the linker finds for -ldialogue-client.
abi=1.0.0
install -m 644 "$b/lib/libdialogue-client.so.1" "$dest$libdir/libdialogue-client.so.$abi"
ln -sf "libdialogue-client.so.$abi" "$dest$libdir/libdialogue-client.so.1"
ln -sf libdialogue-client.so.1 "$dest$libdir/libdialogue-client.so"
# client.h includes "dlg_err.h" with quotes, found next to it.
install -m 644 client-lib/include/dialogue/client.h "$dest$prefix/include/dialogue/client.h"
install -m 644 lib/base/dlg_err.h "$dest$prefix/include/dialogue/dlg_err.h"
sed -e "s|@PREFIX@|$prefix|g" -e "s|@LIBDIR@|$libdir|g" -e "s|@VERSION@|$version|g" \
    client-lib/dialogue-client.pc.in > "$dest$libdir/pkgconfig/dialogue-client.pc"
echo "install.sh: libdialogue-client $version -> $dest$prefix"
