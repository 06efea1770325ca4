/* token.h: `dialoguectl token`, which mints HS256 tokens for development and
 * tests from a shared secret file. */
#ifndef DLG_CLI_TOKEN_H
#define DLG_CLI_TOKEN_H

#include <stdio.h>

/* Runs `dialoguectl token`. argv[0] is the subcommand name ("token"); the
 * options follow:
 *   --secret-file F   (required) HS256 secret, read like the daemon reads
 *                     auth.jwt.keys[].secret_file
 *   --sub NAME        (required) the user id
 *   --role ROLE       a role; repeat for several
 *   --ttl D           lifetime: 45s, 30m, 1h, 2d or plain seconds [1h]
 *   --aud A, --iss I  audience and issuer claims
 *   --kid K           key id for the header (when the daemon's key has one)
 *   --help
 * Options take their value as the next argument or after '='. Prints the
 * token and a newline on stdout. Returns the process exit status: 0 done,
 * 1 the secret file cannot be used or minting failed, 2 usage error (the
 * message names the option). Nothing is kept between calls. */
int dlg_cli_token_main(int argc, char **argv);

/* dlg_cli_token_main writing to out and err instead of stdout and stderr
 * (for tests). Neither stream is closed. */
int dlg_cli_token_run(int argc, char **argv, FILE *out, FILE *err);

#endif
