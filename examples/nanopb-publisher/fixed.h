/* fixed.h: the fixed values that `nanopb-publisher --dump` (nanopb) and
 * `pbc-check --dump` (protobuf-c) encode, so the two can be compared byte for
 * byte. Exactly representable doubles, so decoded text compares exactly. */
#ifndef NBP_FIXED_H
#define NBP_FIXED_H

#define NBP_FIX_CPU 12.5
#define NBP_FIX_MEMORY 42.25
#define NBP_FIX_REQUESTS 3.0
/* Present although 0: proto2 `optional` has explicit presence, and the
 * daemon's schema rule requires the field. */
#define NBP_FIX_ERRORS 0.0
#define NBP_FIX_LATENCY 1.5

#define NBP_FIX_ALERT_ID "cpu-1700000000000"
#define NBP_FIX_SEVERITY 2 /* Severity.high */
#define NBP_FIX_MESSAGE "CPU usage critical: 95.5%"
#define NBP_FIX_TIMESTAMP 1700000000000ULL

#endif
