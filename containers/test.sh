#!/usr/bin/env bash
# Build an image with Podman where no image registry is reachable: the base is a debootstrapped
# Debian 12, and wheels come from this machine's local wheel directories where it has them (else
# PyPI). Then run one rule's command (`prunebench data`) inside the image and check that its records
# equal the host's, byte for byte.   make container-test   (or: bash containers/test.sh gpu)
set -euo pipefail
cd "$(dirname "$0")/.."
kind=${1:-cpu}
work=${CONTAINER_TEST_DIR:-/tmp/prunebench-container-test}
image=localhost/prunebench-$kind:test
mkdir -p "$work"
# runc (crun fails on some cgroup setups) and ulimits that a sandbox may set
export CONTAINERS_CONF="$work/containers.conf"
printf '[containers]\ndefault_ulimits=["nofile=1024:1024","nproc=4096:4096"]\n[engine]\nruntime="runc"\n' \
  > "$CONTAINERS_CONF"

if ! podman image exists localhost/debian:bookworm; then
  rm -rf "$work/rootfs"
  debootstrap --variant=minbase bookworm "$work/rootfs" http://deb.debian.org/debian
  tar -C "$work/rootfs" -c . | podman import - localhost/debian:bookworm
  rm -rf "$work/rootfs"
fi

volumes=() pip_options="" cert_args=()
# a TLS-intercepting proxy's CA, trusted on this host, must be trusted by pip in the build too
ca=$(python3 -c 'import ssl; print(ssl.get_default_verify_paths().openssl_cafile)' 2>/dev/null || true)
if [ -n "$ca" ] && [ -f "$ca" ]; then
  volumes+=(--volume "$ca:/etc/ssl/certs/host-ca.crt:ro") && cert_args=(--build-arg PIP_CERT=/etc/ssl/certs/host-ca.crt)
fi
[ -d /opt/wheels ] && volumes+=(--volume /opt/wheels:/opt/wheels:ro) && pip_options+=" --find-links /opt/wheels"
for index in /opt/pypi /opt/pypi-more; do
  [ -d "$index/simple" ] && volumes+=(--volume "$index:$index:ro") \
    && pip_options+=" --extra-index-url file://$index/simple"
done
start=$(date +%s)
podman build -f "containers/$kind.Containerfile" -t "$image" --build-arg BASE=localhost/debian:bookworm \
  --build-arg TORCH_INDEX=https://pypi.org/simple --build-arg PIP_OPTIONS="$pip_options" "${cert_args[@]}" "${volumes[@]}" .
echo "image built in $(( $(date +%s) - start )) s: $(podman image inspect "$image" --format '{{.Size}}') bytes"

data=$(cd ../shared/data && pwd)
rm -f "$work"/gsm8k.*.jsonl
podman run --rm --network none --volume "$data:/data:ro" --volume "$work:/out" "$image" \
  prunebench data --dataset gsm8k --data-dir /data --out /out/gsm8k.image.jsonl
.venv/bin/prunebench data --dataset gsm8k --data-dir "$data" --out "$work/gsm8k.host.jsonl"
# the first line is provenance (paths and commit differ); the records must not
cmp <(tail -n +2 "$work/gsm8k.image.jsonl") <(tail -n +2 "$work/gsm8k.host.jsonl")
# the GPU image's vLLM imports without a GPU; its kernels need one
check="import torch, transformers; print('torch', torch.__version__, 'transformers', transformers.__version__)"
[ "$kind" = gpu ] && check+="; import vllm; print('vllm', vllm.__version__)"
podman run --rm "$image" python -c "$check"
echo "container test passed ($kind): prunebench data in the image equals the host's ($(( $(wc -l < "$work/gsm8k.host.jsonl") - 1 )) records)"
