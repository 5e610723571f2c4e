#!/usr/bin/env bash
# End-to-end on a throw-away kind cluster (`make kind-e2e`): build the image, install ingress-nginx and
# the chart (Jaeger on), create an order through the ingress and wait until the saga completes it,
# check that the operator logged in and reconciles an applied ProjectionRebuild (and a Snapshot), find
# the API's traces in Jaeger, tear down.
#
# Needs: docker (a running engine), kind, kubectl, helm, curl.
# Environment knobs:
#   EDA_KIND_CLUSTER   cluster name (default eda-e2e)
#   EDA_KIND_KEEP=1    keep the cluster afterwards (for debugging)
#   EDA_KIND_HTTP_PORT host port of the ingress (default 80, from k8s/kind/cluster.yaml)
#   INGRESS_NGINX_VERSION  (default controller-v1.12.1)
set -Eeuo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
CLUSTER="${EDA_KIND_CLUSTER:-eda-e2e}"
NAMESPACE=eda
RELEASE=eda
IMAGE="eda:e2e-$(date +%s)"
HTTP_PORT="${EDA_KIND_HTTP_PORT:-80}"
HOST="eda.localtest.me"
INGRESS_NGINX_VERSION="${INGRESS_NGINX_VERSION:-controller-v1.12.1}"
KUBECTL=(kubectl --context "kind-${CLUSTER}")
HELM=(helm --kube-context "kind-${CLUSTER}")

log() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

for tool in docker kind kubectl helm curl; do
  command -v "$tool" >/dev/null 2>&1 || die "$tool is required"
done
docker info >/dev/null 2>&1 || die "no Docker engine answers (docker info failed)"

dump_state() {
  log "diagnostics"
  "${KUBECTL[@]}" -n "$NAMESPACE" get all,prb,snap -o wide || true
  "${KUBECTL[@]}" -n "$NAMESPACE" get events --sort-by=.lastTimestamp | tail -40 || true
  for deploy in api projector saga operator; do
    "${KUBECTL[@]}" -n "$NAMESPACE" logs "deployment/${RELEASE}-${deploy}" --all-containers --tail=60 || true
  done
}

# Wait until the operator reports condition Succeeded on an applied object; on a timeout print the
# object, its Events and the operator's log, then fail.
wait_reconciled() {
  local object=$1 timeout=$2
  if ! "${KUBECTL[@]}" -n "$NAMESPACE" wait --for=condition=Succeeded "$object" --timeout="$timeout"; then
    "${KUBECTL[@]}" -n "$NAMESPACE" get "$object" -o yaml || true
    "${KUBECTL[@]}" -n "$NAMESPACE" describe "$object" || true
    "${KUBECTL[@]}" -n "$NAMESPACE" logs "deployment/${RELEASE}-operator" --tail=200 || true
    die "the operator did not reconcile ${object} within ${timeout}"
  fi
}

cleanup() {
  local rc=$?
  if [[ $rc -ne 0 ]]; then dump_state; fi
  if [[ "${EDA_KIND_KEEP:-0}" == "1" ]]; then
    log "keeping cluster kind-${CLUSTER} (EDA_KIND_KEEP=1)"
  else
    log "deleting cluster ${CLUSTER}"
    kind delete cluster --name "$CLUSTER" >/dev/null 2>&1 || true
  fi
  exit "$rc"
}
trap cleanup EXIT

log "creating kind cluster ${CLUSTER}"
kind create cluster --name "$CLUSTER" --config "$ROOT/k8s/kind/cluster.yaml" --wait 120s

log "building ${IMAGE}"
docker build -t "$IMAGE" "$ROOT"
kind load docker-image --name "$CLUSTER" "$IMAGE"

log "installing ingress-nginx (${INGRESS_NGINX_VERSION})"
"${KUBECTL[@]}" apply -f "https://raw.githubusercontent.com/kubernetes/ingress-nginx/${INGRESS_NGINX_VERSION}/deploy/static/provider/kind/deploy.yaml"
"${KUBECTL[@]}" -n ingress-nginx wait --for=condition=Available deployment/ingress-nginx-controller --timeout=300s

log "installing the chart"
"${KUBECTL[@]}" apply -f "$ROOT/k8s/namespace.yaml"
"${HELM[@]}" upgrade --install "$RELEASE" "$ROOT/helm/eda" -n "$NAMESPACE" \
  --set image.repository="${IMAGE%%:*}" --set image.tag="${IMAGE#*:}" --set image.pullPolicy=Never \
  --set jaeger.enabled=true \
  --set auth.mode=disabled \
  --set ingress.enabled=true --set ingress.className=nginx \
  --set "ingress.hosts[0].host=${HOST}" --set "ingress.hosts[0].paths[0].path=/" \
  --set "ingress.hosts[0].paths[0].pathType=Prefix" \
  --wait --timeout 10m

log "waiting for the rollout"
"${KUBECTL[@]}" -n "$NAMESPACE" rollout status statefulset/"${RELEASE}-nats" --timeout=300s
for deploy in api projector saga worker-inventory worker-payment worker-shipping operator jaeger; do
  "${KUBECTL[@]}" -n "$NAMESPACE" rollout status deployment/"${RELEASE}-${deploy}" --timeout=300s
done

log "helm test (order through the API Service)"
"${HELM[@]}" test "$RELEASE" -n "$NAMESPACE" --timeout 5m --logs

API="http://${HOST}:${HTTP_PORT}"
# The ingress answers on the host's port; resolve the ingress host name locally (no DNS needed).
CURL=(curl -fsS --resolve "${HOST}:${HTTP_PORT}:127.0.0.1")
log "order flow through the ingress (${API})"
for _ in $(seq 1 60); do
  "${CURL[@]}" "${API}/readyz" >/dev/null 2>&1 && break
  sleep 2
done
created=$("${CURL[@]}" -X POST "${API}/api/v1/orders" -H 'Content-Type: application/json' \
  -d '{"user_id": 123, "items": [{"product_id": 1, "quantity": 2}], "amount": 199.98}')
echo "$created"
order_id=$(sed -n 's/.*"order_id": *\([0-9][0-9]*\).*/\1/p' <<<"$created")
[[ -n "$order_id" ]] || die "no order_id in: $created"
status=""
for _ in $(seq 1 60); do
  order=$("${CURL[@]}" "${API}/api/v1/orders/${order_id}" || true)
  if grep -Eq '"status": *"completed"' <<<"$order"; then status=completed; break; fi
  sleep 1
done
echo "$order"
[[ "$status" == "completed" ]] || die "order ${order_id} did not complete"
"${CURL[@]}" "${API}/api/v1/orders/${order_id}/events" >/dev/null

log "operator login"
operator_log=$("${KUBECTL[@]}" -n "$NAMESPACE" logs "deployment/${RELEASE}-operator" --tail=-1)
if ! grep -q "with the in-cluster service account" <<<"$operator_log"; then
  tail -50 <<<"$operator_log"
  die "the operator did not log in with its service account"
fi

log "ProjectionRebuild"
"${KUBECTL[@]}" -n "$NAMESPACE" apply -f "$ROOT/k8s/examples/projectionrebuild.yaml"
wait_reconciled prb/orders-rebuild 300s
"${KUBECTL[@]}" -n "$NAMESPACE" get prb
order_after=$("${CURL[@]}" "${API}/api/v1/orders/${order_id}")
grep -Eq '"status": *"completed"' <<<"$order_after" || die "order ${order_id} changed by the rebuild: $order_after"

log "Snapshot"
"${KUBECTL[@]}" -n "$NAMESPACE" apply -f "$ROOT/k8s/examples/snapshot.yaml"
wait_reconciled snap/orders-snapshot 300s
"${KUBECTL[@]}" -n "$NAMESPACE" get snap

log "traces of eda-api in Jaeger"
"${KUBECTL[@]}" -n "$NAMESPACE" port-forward "svc/${RELEASE}-jaeger" 16686:16686 >/dev/null 2>&1 &
pf_pid=$!
traces=""
for _ in $(seq 1 30); do
  traces=$(curl -fsS "http://127.0.0.1:16686/api/traces?service=eda-api&limit=20&lookback=1h" || true)
  if grep -q '"traceID"' <<<"$traces"; then break; fi
  sleep 2
done
kill "$pf_pid" 2>/dev/null || true
grep -q '"traceID"' <<<"$traces" || die "no traces of service eda-api in Jaeger"

log "kind e2e passed"
