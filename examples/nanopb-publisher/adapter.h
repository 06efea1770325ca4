/* adapter.h: the gateway side of the nanopb publisher: a connection through
 * libdialogue-client that carries the bytes the device encoded. A device
 * without TLS or libuv would hand the same bytes to such a gateway. */
#ifndef NBP_ADAPTER_H
#define NBP_ADAPTER_H

#include <stddef.h>

#include "dialogue/client.h"

/* Connects to DIALOGUE_SERVER (HOST:PORT) with DIALOGUE_CA and DIALOGUE_TOKEN
 * from the environment, joins room and unsubscribes from all of it (the
 * publisher only sends). Returns 0 with a thread-mode client in *out (send
 * with dlg_sync_trigger, release with dlg_client_free), or DLG_EINVAL (bad
 * environment) or the failing step's DLG_E* code, with the reason in err;
 * on error *out is untouched and nothing is left behind. */
int nbp_adapter_connect(const char *room, dlg_client **out, char *err, size_t errlen);

#endif
