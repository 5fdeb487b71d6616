#!/usr/bin/env bash
# Seeds the fuzz corpora with every sample ruleset, valid or not:
# ruleset_front takes them as they are; ruleset_compile reads its first
# byte as the path to take (even: text), so its copies start with a 0 byte.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
samples=("$here"/../tests/rulesets/*.nft "$here"/../tests/rulesets/*.inc
         "$here"/../tests/rulesets/include.d/*.inc
         "$here"/../tests/rulesets/errors/*.nft "$here"/../tests/rulesets/errors/*.inc)
front="$here/corpus/ruleset_front"
compile="$here/corpus/ruleset_compile"
mkdir -p "$front" "$compile"
cp "${samples[@]}" "$front"/
for file in "${samples[@]}"; do
	{ printf '\0'; cat "$file"; } > "$compile/$(basename "$file")"
done
echo "seeded $(ls "$front" | wc -l) files into $front and $compile"
