#!/usr/bin/env bash
# Seeds the fuzz corpus with every sample ruleset, valid or not.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
corpus="$here/corpus/ruleset_front"
mkdir -p "$corpus"
cp "$here"/../tests/rulesets/*.nft "$here"/../tests/rulesets/*.inc \
   "$here"/../tests/rulesets/errors/*.nft "$here"/../tests/rulesets/errors/*.inc "$corpus"/
echo "seeded $(ls "$corpus" | wc -l) files into $corpus"
