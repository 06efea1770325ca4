/* load_limits.c: the `limits` section: the caps that protect the daemon,
 * their ranges and defaults. */
#include <stddef.h>

#include "config_int.h"
#include "dlg_err.h"

void dlg__cfg_limits_default(dlg_config_limits *l) {
    *l = (dlg_config_limits){
        .max_frame = 1048576,
        .max_connections = 10000,
        .handshake_timeout_ms = 2000,
        .pre_auth_max_bytes = 16384,
        .pre_auth_max_connections = 1000,
        .max_pending_bytes = 67108864,
        .soft_pending_bytes = 8388608,
        .soft_pending_seconds = 30,
        .write_timeout_ms = 10000,
        .heartbeat_ms = 30000,
        .max_rooms_per_connection = 128,
        .room_ops_per_second = 50,
        .room_ops_burst = 500,
        .max_subscriptions = 1024,
        .max_room_events = 10000,
        .max_streams_per_connection = 100,
    };
}

int dlg__cfg_load_limits(dlg_yaml *y, const dlg_ynode *m) {
    static const struct {
        const char *key;
        size_t off;
        bool wide; /* uint64_t field, else uint32_t */
        uint64_t min, max;
    } tab[] = {
        {"max_frame", offsetof(dlg_config_limits, max_frame), false, 64, 1u << 28},
        {"max_connections", offsetof(dlg_config_limits, max_connections), false, 1, 1000000},
        {"handshake_timeout_ms", offsetof(dlg_config_limits, handshake_timeout_ms), false, 1,
         3600000},
        {"pre_auth_max_bytes", offsetof(dlg_config_limits, pre_auth_max_bytes), false, 64,
         1u << 28},
        {"pre_auth_max_connections", offsetof(dlg_config_limits, pre_auth_max_connections), false,
         1, 1000000},
        {"max_pending_bytes", offsetof(dlg_config_limits, max_pending_bytes), true, 1024,
         DLG_CFG_BYTES_CAP},
        {"soft_pending_bytes", offsetof(dlg_config_limits, soft_pending_bytes), true, 1,
         DLG_CFG_BYTES_CAP},
        {"soft_pending_seconds", offsetof(dlg_config_limits, soft_pending_seconds), false, 1, 3600},
        {"write_timeout_ms", offsetof(dlg_config_limits, write_timeout_ms), false, 1, 3600000},
        {"heartbeat_ms", offsetof(dlg_config_limits, heartbeat_ms), false, 1, 3600000},
        {"max_rooms_per_connection", offsetof(dlg_config_limits, max_rooms_per_connection), false,
         1, 1000000},
        {"room_ops_per_second", offsetof(dlg_config_limits, room_ops_per_second), false, 0,
         1000000},
        {"room_ops_burst", offsetof(dlg_config_limits, room_ops_burst), false, 0, 1000000},
        {"max_subscriptions", offsetof(dlg_config_limits, max_subscriptions), false, 1, 1000000},
        {"max_room_events", offsetof(dlg_config_limits, max_room_events), false, 1, 1000000},
        {"max_streams_per_connection", offsetof(dlg_config_limits, max_streams_per_connection),
         false, 1, 10000},
    };
    enum { NTAB = sizeof(tab) / sizeof(tab[0]) };
    const char *keys[NTAB + 1];
    for (size_t i = 0; i < NTAB; i++)
        keys[i] = tab[i].key;
    keys[NTAB] = NULL;
    size_t mark = y->n_errors;
    int rc = dlg__yaml_want_map(y, m, "limits", keys);
    if (rc < 0)
        return rc;
    dlg_config_limits *l = &dlg__cfg(y)->limits;
    for (size_t i = 0; i < NTAB; i++) {
        dlg_ynode *v = dlg__yaml_get(y, m, tab[i].key);
        if (!v)
            continue;
        char p[DLG_YAML_KEYPATH];
        uint64_t val;
        dlg__yaml_keypath(p, "limits", tab[i].key);
        if (dlg__yaml_uint(y, v, p, tab[i].min, tab[i].max, &val) < 0)
            continue;
        if (tab[i].wide)
            *(uint64_t *)((char *)l + tab[i].off) = val;
        else
            *(uint32_t *)((char *)l + tab[i].off) = (uint32_t)val;
    }
    if (y->n_errors > mark)
        return DLG_ECONFIG;
    dlg_ynode *v;
    if (l->soft_pending_bytes > l->max_pending_bytes) {
        v = dlg__yaml_get(y, m, "soft_pending_bytes");
        return dlg__yaml_fail(
            y, v ? v : m, "limits.soft_pending_bytes", "%llu is above max_pending_bytes (%llu)",
            (unsigned long long)l->soft_pending_bytes, (unsigned long long)l->max_pending_bytes);
    }
    /* One full frame must fit in the output queue, or a legal event would
     * cut every recipient as a slow consumer. */
    if (l->max_pending_bytes < l->max_frame) {
        v = dlg__yaml_get(y, m, "max_pending_bytes");
        return dlg__yaml_fail(y, v ? v : m, "limits.max_pending_bytes",
                              "%llu is below max_frame (%u)",
                              (unsigned long long)l->max_pending_bytes, l->max_frame);
    }
    return 0;
}
