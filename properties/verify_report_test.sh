#!/usr/bin/env bash
# verify's reports: the same seed gives the same report; --json and --junit
# write well-formed files that name each property and the failure.
set -euo pipefail
cli=$1 legacy=$2 work=$3 spec=$4
rm -rf "$work" && mkdir -p "$work"
strip_timing() { grep -v -E ' in [0-9.]+ s \(|^Using configuration' "$1"; }
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
assert j["passed"] is False and j["status"] == "FAILED" and j["exit_status"] == 1, j
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

# A run that checked nothing: exit 3, "verified": false with the reason in
# JSON, <skipped> in JUnit; never a pass.
set +e
"$cli" verify "$spec" --impl spec.decline --axes spatial --cases 2 \
  --json "$work/d.json" --junit "$work/d.xml" > "$work/decline.txt" 2>&1
rc=$?
set -e
[ $rc -eq 3 ] || { echo "declining plugin: exit $rc, expected 3"; cat "$work/decline.txt"; exit 1; }
/usr/bin/python3 - "$work/d.json" "$work/d.xml" <<'PY'
import json, sys, xml.etree.ElementTree as ET
j = json.load(open(sys.argv[1]))
assert j["passed"] is False and j["status"] == "NOT VERIFIED" and j["exit_status"] == 3, j
assert j["cases_checked"] == 0, j
assert len(j["runs"]) == 8 and all(r["verified"] is False and r["checked"] == 0 for r in j["runs"]), j["runs"]
assert all(r["reason"] == "every call declined: spec_plugin declines everything" for r in j["runs"]), j["runs"]
x = ET.parse(sys.argv[2]).getroot()
assert x.get("skipped") == "8" and x.get("failures") == "0", x.attrib
cases = x.findall(".//testcase")
assert len(cases) == 8 and all(c.find("skipped") is not None for c in cases), [ET.tostring(c) for c in cases]
assert cases[0].find("skipped").get("message").startswith("not verified: every call declined"), ET.tostring(cases[0])
print("not-verified reports ok")
PY

# The precision contract in every report: the text names it per dtype, JSON
# has "precision" and each run's "contract" (f32's one contract is
# "input"), JUnit a precision_contract property; the replay repeats it.
"$cli" verify builtin:reference_f32 --dtype bf16,f32 --precision unfused --axes spatial --property semantics \
  --cases 3 --json "$work/p.json" --junit "$work/p.xml" > "$work/p.txt" 2>&1
grep -q "bf16: precision contract unfused (logits and probabilities materialised" "$work/p.txt" \
  || { echo "the text does not name the contract"; cat "$work/p.txt"; exit 1; }
grep -q "bf16 (contract unfused): worst error / bound" "$work/p.txt" \
  || { echo "no per-dtype error figures"; cat "$work/p.txt"; exit 1; }
/usr/bin/python3 - "$work/p.json" "$work/p.xml" <<'PY'
import json, sys, xml.etree.ElementTree as ET
j = json.load(open(sys.argv[1]))
assert j["precision"] == "unfused", j
contracts = {r["dtype"]: r["contract"] for r in j["runs"]}
assert contracts == {"bf16": "unfused", "f32": "input"}, contracts
assert all(0 <= r["worst_error_bound_ratio"] <= 1 and r["worst_error_literal_ratio"] >= 0 for r in j["runs"]), j["runs"]
x = ET.parse(sys.argv[2]).getroot()
props = [p.get("value") for p in x.iter("property") if p.get("name") == "precision_contract"]
assert sorted(props) == ["input", "unfused"], props
print("precision in reports ok")
PY
set +e
out=$("$cli" verify builtin:reference_f32 --precision fast 2>&1)
rc=$?
set -e
[ $rc -eq 2 ] && [ "$out" = "attncheck: unknown precision contract 'fast' (expected fused, unfused or input) (attncheck --help)" ] \
  || { echo "bad --precision: exit $rc: $out"; exit 1; }
