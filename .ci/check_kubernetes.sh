#!/usr/bin/env bash
# The Kubernetes manifests as users apply them (docs/operations.md, "Deploy checks"): the base
# deploy/kubernetes alone and with every combination of its components (components/tls, auth,
# monitoring), the overlay deploy/examples/other-namespace (namespace `cache`, all components)
# and the sidecar variant, each rendered by kubectl's kustomize, validated by
# kubernetes-validate --strict (CRD kinds, which it has no schema for, are reported as WARN and
# skipped) and checked by `deploy/check.py rendered`. Then the proxy configs of every render go
# to OUT/*.toml (`deploy/check.py configs`), for tests/deploy_configs.rs
# (RINGCACHE_DEPLOY_CONFIGS=OUT) to validate.
#
# Usage: .ci/check_kubernetes.sh OUT   (needs kubectl, kubernetes-validate and PyYAML)
set -euo pipefail
cd "$(dirname "$0")/.."
out=$1
mkdir -p "$out/overlays"

# Each file of the base and the sidecar alone (a component's files are partial patches: they
# are validated rendered).
kubernetes-validate --strict --quiet deploy/kubernetes/*.yaml deploy/kubernetes/sidecar/*.yaml

rendered=()
# render NAME NAMESPACE DIR [--plain]
render() {
  kubectl kustomize "$3" >"$out/$1.yaml"
  kubernetes-validate --strict --quiet "$out/$1.yaml"
  python3 deploy/check.py rendered "$2" "$out/$1.yaml" "${@:4}"
  rendered+=("$1=$out/$1.yaml")
}

# NAME:COMPONENTS. The overlays are written under OUT: kustomize refuses one inside the base's
# directory, and takes only relative paths. The base, and the base with auth, must need no CRD
# (they apply on any cluster): --plain.
for combo in "base:" "tls:tls" "auth:auth" "monitoring:monitoring" "tls-auth:tls auth" \
  "all:tls auth monitoring"; do
  name=${combo%%:*}
  components=${combo#*:}
  dir="$out/overlays/$name"
  mkdir -p "$dir"
  base=$(realpath --relative-to="$dir" deploy/kubernetes)
  {
    printf 'apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n'
    printf 'resources:\n  - %s\n' "$base"
    if [ -n "$components" ]; then
      printf 'components:\n'
      for c in $components; do printf '  - %s/components/%s\n' "$base" "$c"; done
    fi
  } >"$dir/kustomization.yaml"
  case "$name" in
    base | auth) render "$name" ringcache "$dir" --plain ;;
    *) render "$name" ringcache "$dir" ;;
  esac
done
render other-namespace cache deploy/examples/other-namespace

kubectl kustomize deploy/kubernetes/sidecar >"$out/sidecar.yaml"
kubernetes-validate --strict --quiet "$out/sidecar.yaml"

# The PrometheusRule of the monitoring component holds alerts.yaml's rules.
python3 deploy/check.py prometheusrule
python3 deploy/check.py configs "$out" "${rendered[@]}"
