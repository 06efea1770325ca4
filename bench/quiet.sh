# bench/quiet.sh: sourced by bench/run.sh and bench/cluster.sh; needs
# $quiet_wait (seconds) set by the caller.

# Busy CPU ticks of the whole host (everything but idle and iowait).
host_busy() {
    local _cpu user nice system _idle _iowait irq softirq steal _rest
    read -r _cpu user nice system _idle _iowait irq softirq steal _rest < /proc/stat
    echo $((user + nice + system + irq + softirq + steal))
}

# Benchmarks on a shared machine: wait until the others are (nearly) idle.
wait_quiet() {
    local hz deadline b0 b1
    hz=$(getconf CLK_TCK)
    deadline=$((SECONDS + quiet_wait))
    while :; do
        b0=$(host_busy)
        sleep 1
        b1=$(host_busy)
        # Under 10% of one CPU over the last second.
        [ $(((b1 - b0) * 10)) -lt "$hz" ] && return 0
        if [ "$SECONDS" -ge "$deadline" ]; then
            echo "${0##*/}: the host stayed busy ($(((b1 - b0) * 100 / hz))% of a CPU used by" \
                 "others); measuring anyway" >&2
            return 0
        fi
    done
}

