#!/usr/bin/env bash
# Builds the real Kubernetes control-plane binaries (and etcd, helm, kwok) from the Go module proxy into a
# per-user cache keyed by version, so that a fresh clone on the same machine reuses them.
# Usage: scripts/build-binaries.sh [component...]   components: kube etcd helm kwok kcm node promtool prometheus coredns
#   (default: all)
#   node: kubelet and kube-scheduler, for the real-node stack (`npm run stack -- up --real-node`)
#   prometheus: the Prometheus server (same module version as promtool) for test/e2e/monitoring.test.ts
#   coredns: the real node's cluster DNS (a slim CoreDNS: only the plugins the stack's Corefile uses)
# Prints the cache directory of each component it ensured.
set -euo pipefail

K8S_VERSION="${K8S_VERSION:-v1.34.4}"
ETCD_VERSION="${ETCD_VERSION:-v3.6.16}"
HELM_VERSION="${HELM_VERSION:-v3.21.4}"
KWOK_VERSION="${KWOK_VERSION:-v0.7.0}"
PROMETHEUS_VERSION="${PROMETHEUS_VERSION:-v0.316.0}"
COREDNS_VERSION="${COREDNS_VERSION:-v1.15.0}"
CACHE="${PGCO_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/pgcluster-operator}"

die() { echo "build-binaries: $*" >&2; exit 1; }
# Go is needed only to build; a warm cache (or KUBEBUILDER_ASSETS) works without it.
need_go() {
  if ! command -v go >/dev/null 2>&1 && [ -x /usr/local/go/bin/go ]; then PATH="/usr/local/go/bin:$PATH"; fi
  command -v go >/dev/null 2>&1 || die "Go is not installed or not on PATH. Install Go >= 1.24 (e.g. 'apt-get install golang' or /usr/local/go/bin on PATH), or set KUBEBUILDER_ASSETS to a directory holding kube-apiserver, etcd and kubectl."
}
# KUBEBUILDER_ASSETS (setup-envtest's dir of kube-apiserver, etcd, kubectl) skips those builds.
ASSETS="${KUBEBUILDER_ASSETS:-}"

export CGO_ENABLED=0 GOFLAGS=-buildvcs=false
minor="${K8S_VERSION#v1.}"; minor="${minor%%.*}"
staging_version="v0.${K8S_VERSION#v1.}"
STAGING="api apiextensions-apiserver apimachinery apiserver cli-runtime client-go cloud-provider cluster-bootstrap
code-generator component-base component-helpers controller-manager cri-api cri-client csi-translation-lib
dynamic-resource-allocation endpointslice externaljwt kms kube-aggregator kube-controller-manager kube-proxy
kube-scheduler kubectl kubelet metrics mount-utils pod-security-admission sample-apiserver sample-cli-plugin
sample-controller"

KUBE_CMDS="kube-apiserver kube-controller-manager kubectl kubelet kube-scheduler"

kube_ldflags() {
  local f="-s -w" p
  for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    f="$f -X $p.gitVersion=$K8S_VERSION -X $p.gitMajor=1 -X $p.gitMinor=$minor -X $p.gitTreeState=clean"
  done
  echo "$f"
}

# build_kube <outdir> <cmd...>: one wrapper module that repeats k8s.io/kubernetes' replace block.
build_kube() {
  local out="$1"; shift
  need_go
  local mod="$CACHE/src/kube-$K8S_VERSION"
  mkdir -p "$mod"
  local tools
  tools="$(printf '//go:build tools\n\npackage tools\n\nimport (\n'; for c in $KUBE_CMDS; do printf '\t_ "k8s.io/kubernetes/cmd/%s"\n' "$c"; done; printf ')\n')"
  # Regenerated when the command list changes, so an older cache learns the new commands' dependencies.
  if [ ! -f "$mod/go.sum" ] || [ "$(cat "$mod/tools.go" 2>/dev/null)" != "$tools" ]; then
    {
      echo "module pgco/kubebuild"
      echo "go 1.24"
      echo "require k8s.io/kubernetes $K8S_VERSION"
      echo "replace ("
      for m in $STAGING; do echo "  k8s.io/$m => k8s.io/$m $staging_version"; done
      echo ")"
    } > "$mod/go.mod"
    printf '%s\n' "$tools" > "$mod/tools.go"
    (cd "$mod" && go mod tidy) || die "go mod tidy for k8s.io/kubernetes $K8S_VERSION failed (is the Go module proxy reachable? see the error above)"
  fi
  local pkgs=() c
  for c in "$@"; do pkgs+=("k8s.io/kubernetes/cmd/$c"); done
  mkdir -p "$out.tmp"
  (cd "$mod" && go build -tags tools -trimpath -pgo=off -ldflags "$(kube_ldflags)" -o "$out.tmp/" "${pkgs[@]}") \
    || die "building ${*} $K8S_VERSION failed (see the Go error above)"
  mkdir -p "$out"; mv "$out.tmp"/* "$out/"; rmdir "$out.tmp"
}

ensure_kube() {
  local out="$CACHE/kube-$K8S_VERSION"
  if [ -n "$ASSETS" ] && [ -x "$ASSETS/kube-apiserver" ] && [ -x "$ASSETS/kubectl" ]; then echo "$ASSETS"; return; fi
  if [ -x "$out/kube-apiserver" ] && [ -x "$out/kubectl" ]; then echo "$out"; return; fi
  echo "build-binaries: building kube-apiserver and kubectl $K8S_VERSION (cold: many minutes on two cores)" >&2
  build_kube "$out" kube-apiserver kubectl
  echo "$out"
}

ensure_kcm() {
  local out="$CACHE/kube-$K8S_VERSION"
  if [ -n "$ASSETS" ] && [ -x "$ASSETS/kube-controller-manager" ]; then echo "$ASSETS"; return; fi
  if [ -x "$out/kube-controller-manager" ]; then echo "$out"; return; fi
  echo "build-binaries: building kube-controller-manager $K8S_VERSION" >&2
  build_kube "$out" kube-controller-manager
  echo "$out"
}

ensure_node() {
  local out="$CACHE/kube-$K8S_VERSION"
  if [ -x "$out/kubelet" ] && [ -x "$out/kube-scheduler" ]; then echo "$out"; return; fi
  echo "build-binaries: building kubelet and kube-scheduler $K8S_VERSION" >&2
  build_kube "$out" kubelet kube-scheduler
  echo "$out"
}

# build_simple <name> <outdir> <module> <version> <pkg> <ldflags> [<fn printing more ldflags, given the module dir>]
#   [<more build tags, comma-separated>]
build_simple() {
  local name="$1" out="$2" module="$3" version="$4" pkg="$5" ldflags="$6" more="${7:-}" tags="tools${8:+,$8}"
  if [ -x "$out/$name" ]; then echo "$out"; return; fi
  echo "build-binaries: building $name $version" >&2
  need_go
  local mod="$CACHE/src/$name-$version"
  mkdir -p "$mod" "$out"
  if [ ! -f "$mod/go.sum" ]; then
    printf 'module pgco/%sbuild\ngo 1.24\nrequire %s %s\n' "$name" "$module" "$version" > "$mod/go.mod"
    printf '//go:build tools\n\npackage tools\n\nimport _ "%s"\n' "$pkg" > "$mod/tools.go"
    (cd "$mod" && go mod tidy) || die "go mod tidy for $module $version failed"
  fi
  [ -z "$more" ] || ldflags="$ldflags $("$more" "$mod")"
  (cd "$mod" && go build -tags "$tags" -trimpath -ldflags "-s -w $ldflags" -o "$out/$name.tmp" "$pkg") \
    || die "building $name $version failed (see the Go error above)"
  mv "$out/$name.tmp" "$out/$name"
  echo "$out"
}

ensure_etcd() {
  if [ -n "$ASSETS" ] && [ -x "$ASSETS/etcd" ]; then echo "$ASSETS"; return; fi
  build_simple etcd "$CACHE/etcd-$ETCD_VERSION" go.etcd.io/etcd/server/v3 "$ETCD_VERSION" go.etcd.io/etcd/server/v3 ""
}
# As helm's own Makefile: the Kubernetes version that `helm template` assumes (.Capabilities.KubeVersion) is
# that of the client-go it was built with, stamped into chartutil and the linter; unstamped it is v1.20.
helm_k8s_ldflags() {
  local v major minor
  v="$(cd "$1" && go list -m -f '{{.Version}}' k8s.io/client-go)" || die "cannot read helm's client-go version"
  v="${v#v}"; major="$((${v%%.*} + 1))"; minor="${v#*.}"; minor="${minor%%.*}"
  local p f=""
  for p in helm.sh/helm/v3/pkg/chartutil helm.sh/helm/v3/pkg/lint/rules; do
    f="$f -X $p.k8sVersionMajor=$major -X $p.k8sVersionMinor=$minor"
  done
  echo "$f"
}
# The -kv suffix: builds before the chartutil stamp are not reused.
ensure_helm() { build_simple helm "$CACHE/helm-$HELM_VERSION-kv" helm.sh/helm/v3 "$HELM_VERSION" helm.sh/helm/v3/cmd/helm "-X helm.sh/helm/v3/internal/version.version=$HELM_VERSION" helm_k8s_ldflags; }
ensure_kwok() { build_simple kwok "$CACHE/kwok-$KWOK_VERSION" sigs.k8s.io/kwok "$KWOK_VERSION" sigs.k8s.io/kwok/cmd/kwok ""; }
# promtool: checks and unit-tests the chart's alerting rules (test/e2e/observability.test.ts).
ensure_promtool() { build_simple promtool "$CACHE/promtool-$PROMETHEUS_VERSION" github.com/prometheus/prometheus "$PROMETHEUS_VERSION" github.com/prometheus/prometheus/cmd/promtool ""; }
# The Prometheus server: scrapes the operator and evaluates the chart's rules (test/e2e/monitoring.test.ts).
# remove_all_sd leaves out every service-discovery plugin (the test's targets are static_configs; static and
# file discovery stay), and without the builtinassets tag the web UI's assets are not embedded: the HTTP API
# answers, the UI pages do not. Both make it far less to compile.
ensure_prometheus() { build_simple prometheus "$CACHE/prometheus-$PROMETHEUS_VERSION" github.com/prometheus/prometheus "$PROMETHEUS_VERSION" github.com/prometheus/prometheus/cmd/prometheus "-X github.com/prometheus/common/version.Version=${PROMETHEUS_VERSION#v}" "" remove_all_sd; }

# CoreDNS as a library (its documented external-plugin pattern): a main package that imports coremain and only
# the plugins the real node's Corefile uses, in CoreDNS's own plugin order (plugin.cfg). The full build links
# every cloud provider's SDK; this one compiles far less. Rebuilt when the plugin list changes.
COREDNS_PLUGINS="bind ready health errors log cache kubernetes"
coredns_main() {
  local p list
  list="$(printf '"%s", ' $COREDNS_PLUGINS)"
  printf '// Generated by scripts/build-binaries.sh: CoreDNS with only these plugins, in plugin.cfg order.\npackage main\n\nimport (\n'
  printf '\t"github.com/coredns/coredns/core/dnsserver"\n\t"github.com/coredns/coredns/coremain"\n\n'
  for p in $COREDNS_PLUGINS; do printf '\t_ "github.com/coredns/coredns/plugin/%s"\n' "$p"; done
  printf ')\n\nfunc init() {\n\tdnsserver.Directives = []string{%s}\n}\n\nfunc main() { coremain.Run() }\n' "${list%, }"
}
ensure_coredns() {
  local out="$CACHE/coredns-$COREDNS_VERSION" main
  main="$(coredns_main)"
  if [ -x "$out/coredns" ] && [ "$(cat "$out/main.go" 2>/dev/null)" = "$main" ]; then echo "$out"; return; fi
  echo "build-binaries: building coredns $COREDNS_VERSION (plugins: $COREDNS_PLUGINS)" >&2
  need_go
  local mod="$CACHE/src/coredns-$COREDNS_VERSION"
  mkdir -p "$mod" "$out"
  if [ ! -f "$mod/go.sum" ] || [ "$(cat "$mod/main.go" 2>/dev/null)" != "$main" ]; then
    printf 'module pgco/corednsbuild\ngo 1.24\nrequire github.com/coredns/coredns %s\n' "$COREDNS_VERSION" > "$mod/go.mod"
    printf '%s\n' "$main" > "$mod/main.go"
    (cd "$mod" && go mod tidy) || die "go mod tidy for github.com/coredns/coredns $COREDNS_VERSION failed (CoreDNS $COREDNS_VERSION needs the Go its go.mod names; see the error above)"
  fi
  (cd "$mod" && go build -trimpath -ldflags "-s -w" -o "$out/coredns.tmp" .) \
    || die "building coredns $COREDNS_VERSION failed (see the Go error above)"
  mv "$out/coredns.tmp" "$out/coredns"
  printf '%s\n' "$main" > "$out/main.go"
  echo "$out"
}

# One build at a time per cache: parallel test runs (or a CI job and a developer) share it.
mkdir -p "$CACHE"
exec 9>"$CACHE/.build.lock"
if ! flock -n 9; then
  echo "build-binaries: waiting for another build in $CACHE to finish" >&2
  flock 9
fi

components=("$@")
[ ${#components[@]} -gt 0 ] || components=(kube etcd helm kwok kcm node promtool prometheus coredns)
for c in "${components[@]}"; do
  case "$c" in
    kube) ensure_kube ;; kcm) ensure_kcm ;; etcd) ensure_etcd ;; helm) ensure_helm ;; kwok) ensure_kwok ;;
    node) ensure_node ;; promtool) ensure_promtool ;; prometheus) ensure_prometheus ;; coredns) ensure_coredns ;;
    *) die "unknown component '$c' (expected: kube etcd helm kwok kcm node promtool prometheus coredns)" ;;
  esac
done
