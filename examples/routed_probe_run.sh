#!/bin/bash
# docs/routed-probe.md: alternates bridge and routed sandboxes round by
# round at each scale (SCALES, ROUNDS, SAMPLES, PAUSE ms; EXTRA flags).
# The harness, copied out of target/ (see docs/routed-probe.md).
B=${B:-/tmp/routed-probe-bin}
OUT=${OUT:-/tmp/routed-probe-results.txt}
SAMPLES=${SAMPLES:-120}
PAUSE=${PAUSE:-10}
ROUNDS=${ROUNDS:-3}
settle() {
  # The namespaces of the sandbox just ended go in the kernel's own time:
  # wait for the net_namespace slab to come back near where it was.
  local base=$1 t=0
  while [ $t -lt 120 ]; do
    n=$(awk '/^net_namespace /{print $2}' /proc/slabinfo)
    [ "$n" -le $((base + 10)) ] && break
    sleep 1; t=$((t+1))
  done
  echo "# settled after ${t}s (net_namespace $n, base $base)" >> $OUT
}
for scale in ${SCALES:-0 100 1000}; do
  for r in $(seq 1 $ROUNDS); do
    if [ $((r % 2)) = 1 ]; then modes="bridge routed"; else modes="routed bridge"; fi
    for m in $modes; do
      base=$(awk '/^net_namespace /{print $2}' /proc/slabinfo)
      echo "# round $r $(uptime)" >> $OUT
      /work/shared/bin/netns-sandbox $B $m $scale $SAMPLES $PAUSE $EXTRA >> $OUT 2>&1
      settle $base
    done
  done
done
echo "# done $(date)" >> $OUT
