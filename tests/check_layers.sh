#!/usr/bin/env bash
# The layer rule of docs/architecture.md, checked on every #include "dir/..." line of src/ and apps/: a file may
# include its own layer and the layers below it, never a layer above it or a peer of its own rank.
#   core (the ground) <- io <- ops <- {models, text, sampling, imaging} <- pipelines <- training <- apps
# Tests beside the code obey the same rule. Exit 1 with one line per offending include.
set -u
root=${1:-$(dirname "$0")/..}
declare -A rank=([core]=0 [io]=1 [ops]=2 [models]=3 [text]=3 [sampling]=3 [imaging]=3 [pipelines]=4 [training]=5
                 [apps]=6)
cd "$root" || exit 1
# The layer of a file: apps/... is apps, src/<layer>/... is <layer>.
# (Sets $layer; no subshell, so the check stays fast.)
layer_of() { local rest=${1#*/}; if [ "${1%%/*}" = apps ]; then layer=apps; else layer=${rest%%/*}; fi; }
bad=0 files=0
while IFS= read -r -d '' f; do
  files=$((files + 1))
  layer_of "$f"
  if [ -z "${rank[$layer]+x}" ]; then
    echo "FAIL $f: folder '$layer' is not a known layer (add it to tests/check_layers.sh and docs/architecture.md)"
    bad=$((bad + 1))
  fi
done < <(find src apps -type f \( -name '*.h' -o -name '*.cc' \) -print0 2>/dev/null)
re='^([^:]+):([0-9]+):[[:space:]]*#[[:space:]]*include[[:space:]]*"([a-z_]+)/'
while IFS= read -r hit; do
  [[ $hit =~ $re ]] || continue
  f=${BASH_REMATCH[1]} line=${BASH_REMATCH[2]} dep=${BASH_REMATCH[3]}
  layer_of "$f"
  [ -z "${rank[$dep]+x}" ] || [ -z "${rank[$layer]+x}" ] && continue  # "<lib>/x.h" of a dependency, not a layer
  if [ "$dep" != "$layer" ] && [ "${rank[$dep]}" -ge "${rank[$layer]}" ]; then
    echo "FAIL $f:$line includes $dep/ (layer $layer may use only the layers below it)"
    bad=$((bad + 1))
  fi
done < <(grep -rnE --include='*.h' --include='*.cc' '^[[:space:]]*#[[:space:]]*include[[:space:]]*"[a-z_]+/' src apps 2>/dev/null)
echo "$files files checked, $bad forbidden includes"
[ "$files" -gt 0 ] && [ "$bad" -eq 0 ]
