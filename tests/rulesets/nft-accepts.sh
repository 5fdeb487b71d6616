#!/usr/bin/env bash
# Loads every valid sample with the real nft, each into a fresh ruleset, and
# says which ones it refuses. Run it in a throwaway namespace:
#   /work/shared/bin/netns-sandbox tests/rulesets/nft-accepts.sh [FILE...]
# Includes are looked up next to the samples (-I), as our loader does.
set -uo pipefail
dir=$(cd "$(dirname "$0")" && pwd)
[ $# -gt 0 ] || set -- "$dir"/*.nft
failed=0
for file in "$@"; do
	nft flush ruleset
	if ! out=$(nft -I "$dir" -f "$file" 2>&1); then
		echo "REFUSED $file"
		echo "$out" | sed 's/^/    /'
		failed=1
	fi
done
nft flush ruleset
exit $failed
