/* device.h: the device side of the nanopb publisher: encodes the dashboard's
 * events with nanopb into buffers the caller owns. Nothing here allocates. */
#ifndef NBP_DEVICE_H
#define NBP_DEVICE_H

#include <stddef.h>
#include <stdint.h>

#include "events/dashboard.pb.h"

/* Encodes m into buf (cap bytes; dialogue_dashboard_MetricsUpdate_size is
 * always enough). Returns 0 with the encoded length in *len, DLG_ETOOBIG
 * when cap is too small, or DLG_EINVAL when nanopb refuses the message; on
 * error err (may be NULL) names the message and the reason, *len is
 * untouched and buf holds garbage. */
int nbp_encode_metrics(const dialogue_dashboard_MetricsUpdate *m, uint8_t *buf, size_t cap,
                       size_t *len, char *err, size_t errlen);

/* As nbp_encode_metrics for an AlertTriggered (its strings are fixed arrays,
 * see dashboard.options; dialogue_dashboard_AlertTriggered_size is enough). */
int nbp_encode_alert(const dialogue_dashboard_AlertTriggered *a, uint8_t *buf, size_t cap,
                     size_t *len, char *err, size_t errlen);

#endif
