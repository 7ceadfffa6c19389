#!/usr/bin/env bash
# The static checks of `npm test` and `npm run check`: types (tsc), lint (eslint, typed rules) and formatting
# (prettier), run side by side. tsc and eslint keep caches under node_modules/.cache, so a re-run after a small edit
# re-checks little; a fresh clone checks everything. Fails when any of the three fails, after all three finished.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bin=node_modules/.bin
cache=node_modules/.cache/cpa-check
mkdir -p "$cache"

"$bin/tsc" -p tsconfig.json --incremental --tsBuildInfoFile "$cache/tsc.tsbuildinfo" &
tsc=$!
"$bin/eslint" --cache --cache-location "$cache/eslint" . &
eslint=$!
"$bin/prettier" --check --log-level warn --cache --cache-location "$cache/prettier" . &
prettier=$!

failed=()
wait "$tsc" || failed+=(tsc)
wait "$eslint" || failed+=(eslint)
wait "$prettier" || failed+=(prettier)
if ((${#failed[@]})); then
  echo "check failed: ${failed[*]}" >&2
  exit 1
fi
