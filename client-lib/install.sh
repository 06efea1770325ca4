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
# The one version number (the same the library was built with).
version=$(cat VERSION)
[ -n "$version" ] || { echo "install.sh: VERSION is empty" >&2; exit 1; }
install -d "$dest$libdir/pkgconfig" "$dest$prefix/include/dialogue"
install -m 644 "$b/lib/libdialogue-client.a" "$dest$libdir/libdialogue-client.a"
# The usual shared-library layout: the file carries the full ABI version,
# the SONAME link (.so.2) is what programs load, the plain .so is what
# the linker finds for -ldialogue-client.
abi=2.0.0
install -m 644 "$b/lib/libdialogue-client.so.2" "$dest$libdir/libdialogue-client.so.$abi"
ln -sf "libdialogue-client.so.$abi" "$dest$libdir/libdialogue-client.so.2"
ln -sf libdialogue-client.so.2 "$dest$libdir/libdialogue-client.so"
# The public headers: they declare exactly what the .so exports
# (tests/abi/test_abi.py installs them and checks). client.h includes
# "dlg_errno.h" (the error codes) with quotes, found next to it.
install -m 644 client-lib/include/dialogue/client.h "$dest$prefix/include/dialogue/client.h"
install -m 644 lib/base/dlg_errno.h "$dest$prefix/include/dialogue/dlg_errno.h"
sed -e "s|@PREFIX@|$prefix|g" -e "s|@LIBDIR@|$libdir|g" -e "s|@VERSION@|$version|g" \
    client-lib/dialogue-client.pc.in > "$dest$libdir/pkgconfig/dialogue-client.pc"
echo "install.sh: libdialogue-client $version -> $dest$prefix"
