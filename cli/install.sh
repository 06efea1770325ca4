#!/bin/sh
# install.sh BUILD_DIR: installs dialoguectl from BUILD_DIR and its bash
# completion under $DESTDIR$PREFIX (PREFIX defaults to /usr/local):
#   bin/dialoguectl                                  ($BINDIR, default PREFIX/bin)
#   share/bash-completion/completions/dialoguectl   (bash-completion loads it
#   on first use; without that package: source it from ~/.bashrc)
# Run from the repository root; `ninja install-cli` does that.
set -eu
b=${1:?usage: install.sh BUILD_DIR}
prefix=${PREFIX:-/usr/local}
bindir=${BINDIR:-$prefix/bin}
dest=${DESTDIR:-}
install -d "$dest$bindir" "$dest$prefix/share/bash-completion/completions"
install -m 755 "$b/bin/dialoguectl" "$dest$bindir/dialoguectl"
install -m 644 cli/dialoguectl.bash "$dest$prefix/share/bash-completion/completions/dialoguectl"
echo "install.sh: dialoguectl and its bash completion -> $dest$prefix"
