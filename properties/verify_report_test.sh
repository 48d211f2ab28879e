#!/usr/bin/env bash
# verify's reports: the same seed gives the same report; --json and --junit
# write well-formed files that name each property and the failure.
set -euo pipefail
cli=$1 legacy=$2 work=$3
rm -rf "$work" && mkdir -p "$work"
strip_timing() { grep -v -E 'cases in [0-9.]+ s|^Using configuration' "$1"; }
"$cli" verify builtin:reference_f32 --cases 5 --seed 42 > "$work/a.txt" 2>/dev/null
"$cli" verify builtin:reference_f32 --cases 5 --seed 42 > "$work/b.txt" 2>/dev/null
diff <(strip_timing "$work/a.txt") <(strip_timing "$work/b.txt") || { echo "same seed, different reports"; exit 1; }
"$cli" verify builtin:reference_f32 --cases 5 --seed 43 > "$work/c.txt" 2>/dev/null
if diff -q <(strip_timing "$work/a.txt") <(strip_timing "$work/c.txt") >/dev/null; then
  echo "another seed gave the very same report (coverage counts should differ)"; exit 1
fi
set +e
"$cli" verify "$legacy" --axes spatial --property semantics,memory --cases 20 \
  --json "$work/r.json" --junit "$work/r.xml" > "$work/legacy.txt" 2>&1
rc=$?
set -e
[ $rc -eq 1 ] || { echo "legacy plugin: exit $rc, expected 1"; exit 1; }
/usr/bin/python3 - "$work/r.json" "$work/r.xml" <<'PY'
import json, sys, xml.etree.ElementTree as ET
j = json.load(open(sys.argv[1]))
assert j["passed"] is False, j
runs = {r["property"]: r for r in j["runs"]}
assert set(runs) == {"semantics", "memory"}, runs.keys()
sem = runs["semantics"]
assert sem["failed"] and "without the permute" in sem["diagnosis"], sem
assert sem["replay"].startswith("attncheck verify "), sem["replay"]
assert sem["case"].startswith("spatial f32 "), sem["case"]
x = ET.parse(sys.argv[2]).getroot()
cases = x.findall(".//testcase")
assert len(cases) == 2, len(cases)
failed = [c for c in cases if c.find("failure") is not None]
assert len(failed) >= 1 and failed[0].get("name") == "semantics.spatial.f32", [c.get("name") for c in failed]
print("reports ok")
PY
