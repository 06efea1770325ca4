"""bench/peers_table.py: the table of bench/run.sh --peers: each workload
and transport with dialogued and every peer server measured in the same
run, the median of the runs metric by metric, the ratios to dialogued, and
issue 23 item 5's two comparisons of the W2 rate.

    peers_table.py OUT_DIR RUNS PEER...

Reads OUT_DIR/NAME-TRANSPORT-RUN.json (dialogued) and
OUT_DIR/NAME-TRANSPORT-PEER-RUN.json, or the .skip file that says why a
peer has none."""
import json
import os
import statistics
import sys

NAMES = {"dialogue": "dialogued", "nats": "nats-server", "redis": "redis-server",
         "mqtt": "mosquitto"}


def load(out, runs, name, tr, tgt):
    tag = "%s-%s" % (name, tr) + ("-" + tgt if tgt != "dialogue" else "")
    rs, skip = [], None
    for n in range(1, runs + 1):
        try:
            with open(os.path.join(out, "%s-%d.json" % (tag, n))) as f:
                rs.append(json.load(f))
        except (OSError, ValueError):
            try:
                with open(os.path.join(out, "%s-%d.skip" % (tag, n))) as f:
                    skip = f.read().strip()
            except OSError:
                pass
    return rs, skip


def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def summary(rs):
    lat = lambda k: med([r["latency_us"][k] for r in rs])
    spans = [(r.get("other_cpu_s"), r["elapsed_s"]) for r in rs]
    return {
        "runs": len(rs),
        "delivered": min(r["delivered"] for r in rs),
        "expected": rs[0]["expected"],
        "p50": lat("p50"), "p99": lat("p99"), "p99_9": lat("p99_9"), "max": lat("max"),
        "p99s": [r["latency_us"]["p99"] for r in rs],
        "rate": med([r["deliveries_per_s"] for r in rs]),
        "scpu": med([r["daemon_cpu_us_per_delivery"] for r in rs]),
        "bcpu": med([r["bench_cpu_us_per_delivery"] for r in rs]),
        "other": med([o / e for o, e in spans if o is not None and e > 0]),
    }


def fmt(v, f, unit=""):
    return (f % v) + unit if v is not None else "?"


def ratio(a, b):
    return "%.2fx" % (a / b) if a is not None and b else "?"


def main():
    out, runs, peers = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
    print("Peers in the same run (median of %d; ratios are this server's value over "
          "dialogued's in the same workload and transport):" % runs)
    print()
    print("| workload | transport | server | runs | delivered / expected | p50 | p99 | p99 range "
          "| p99.9 | max | deliveries/s | server CPU/delivery | bench CPU/delivery | other CPU "
          "| p99 vs dialogued | rate vs dialogued | server CPU vs dialogued |")
    print("| --- " * 17 + "|")
    got = {}
    for name in ("W1", "W2", "W3"):
        for tr in ("tls", "plain"):
            base = None
            for tgt in ["dialogue"] + peers:
                rs, skip = load(out, runs, name, tr, tgt)
                label = (name, "TLS" if tr == "tls" else "plaintext", NAMES.get(tgt, tgt))
                if not rs:
                    if skip and tgt != "dialogue":
                        print("| %s | %s | %s | 0 | %s |" % (label + (skip,)) + " |" * 12)
                    continue
                m = summary(rs)
                got[(name, tr, tgt)] = m
                if tgt == "dialogue":
                    base = m
                b = base or {}
                print("| %s | %s | %s | %d | %d / %d | %s | %s | %s | %s | %s | %s | %s | %s "
                      "| %s | %s | %s | %s |" % (
                          label + (m["runs"], m["delivered"], m["expected"],
                                   fmt(m["p50"] / 1000, "%.2f", " ms"),
                                   fmt(m["p99"] / 1000, "%.2f", " ms"),
                                   "%.2f-%.2f ms" % (min(m["p99s"]) / 1000,
                                                     max(m["p99s"]) / 1000),
                                   fmt(m["p99_9"] / 1000, "%.2f", " ms"),
                                   fmt(m["max"] / 1000, "%.2f", " ms"),
                                   fmt(m["rate"] / 1e6, "%.3f", " M/s"),
                                   fmt(m["scpu"], "%.2f", " us"), fmt(m["bcpu"], "%.2f", " us"),
                                   fmt(m["other"], "%.2f", " CPUs"),
                                   ratio(m["p99"], b.get("p99")), ratio(m["rate"], b.get("rate")),
                                   ratio(m["scpu"], b.get("scpu")))))
    # Issue 23 item 5: the W2 rate against Redis (plaintext) and, with TLS,
    # against NATS without TLS.
    print()
    for tr, peer, ptr, what in (("plain", "redis", "plain", "W2 plaintext >= Redis's"),
                                ("tls", "nats", "plain", "W2 TLS >= NATS's without TLS")):
        d, p = got.get(("W2", tr, "dialogue")), got.get(("W2", ptr, peer))
        if d is None or p is None:
            print("- item 5, %s: not measured in this run" % what)
            continue
        ok = d["rate"] >= p["rate"]
        by = "%+.1f%%" % (100.0 * (d["rate"] / p["rate"] - 1)) if p["rate"] else "n/a"
        print("- item 5, %s: dialogued %.3f M/s, %s %.3f M/s: %s (%s)" % (
            what, d["rate"] / 1e6, NAMES[peer], p["rate"] / 1e6, "met" if ok else "**missed**",
            by))


if __name__ == "__main__":
    main()
