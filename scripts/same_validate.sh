#!/bin/sh
# Findings must not change with a performance change: runs `rgmerge validate
# --format json` of two builds on every file of DIR (default: the real
# configs in ../shared/fixtures/real), one file at a time and then each
# directory as one composite, and fails at the first whose output or exit
# status differs.
#
# Usage: scripts/same_validate.sh OLD_BINARY NEW_BINARY [DIR]
set -eu
old=$1
new=$2
dir=${3:-$(dirname "$0")/../../shared/fixtures/real}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
n=0
files=$(find "$dir" -type f \( -name '*.yaml' -o -name '*.yml' -o -name '*.json' \) | sort)
for f in $files $(for f in $files; do dirname "$f"; done | sort -u); do
    a=0; b=0
    "$old" validate --format json "$f" >"$tmp/old" 2>&1 || a=$?
    "$new" validate --format json "$f" >"$tmp/new" 2>&1 || b=$?
    if [ "$a" != "$b" ] || ! cmp -s "$tmp/old" "$tmp/new"; then
        echo "differs: $f (exit $a against $b)"
        diff "$tmp/old" "$tmp/new" | head -20
        exit 1
    fi
    n=$((n + 1))
done
echo "same output for $n files and directories"
