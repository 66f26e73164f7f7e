{{/* Chart name, overridable with nameOverride. */}}
{{- define "pgcluster-operator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Full name: the release name, with the chart name appended unless the release name already contains it.
Truncated to 63 characters (the limit of a DNS label, which Service names must be).
*/}}
{{- define "pgcluster-operator.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/* chart label value: name-version. */}}
{{- define "pgcluster-operator.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Selector labels: stable for the life of a release (a Deployment's selector is immutable). */}}
{{- define "pgcluster-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "pgcluster-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* The standard labels, on every object of the chart. */}}
{{- define "pgcluster-operator.labels" -}}
helm.sh/chart: {{ include "pgcluster-operator.chart" . }}
{{ include "pgcluster-operator.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/component: operator
app.kubernetes.io/part-of: pgcluster-operator
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/* The ServiceAccount the operator runs as. */}}
{{- define "pgcluster-operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "pgcluster-operator.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* "true" when leader election is on (the default); off is refused with more than one replica. */}}
{{- define "pgcluster-operator.leaderElect" -}}
{{- if .Values.leaderElection.enabled }}true{{ else }}
{{- if gt (int .Values.replicas) 1 }}
{{- fail "leaderElection.enabled=false needs replicas: 1 (replicas without leader election would all send heartbeats and write outputs)" }}
{{- end }}false{{ end }}
{{- end }}

{{/* Name of the Lease used for leader election. */}}
{{- define "pgcluster-operator.leaseName" -}}
{{- default (include "pgcluster-operator.fullname" .) .Values.leaderElection.leaseName }}
{{- end }}

{{/*
The image reference: repository, then @digest if set, else :tag (default: the chart's appVersion). No image is
published under a default name, so the repository must be set: an install without it fails here, saying so,
instead of creating a pod that can never pull its image.
*/}}
{{- define "pgcluster-operator.image" -}}
{{- $repository := required "image.repository is not set: set it to where you pushed the operator image built by `npm run release` (or `npm run image`, or the Dockerfile), e.g. --set image.repository=registry.example.com/pgcluster-operator (README, \"Install on a cluster\")" .Values.image.repository }}
{{- if .Values.image.digest }}
{{- printf "%s@%s" $repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" $repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/*
The rules the operator needs in every namespace it serves (DESIGN.md sections 3 and 5), and nothing more:
- pgclusters: read and watch; patch/update to add and remove its finalizer; status; finalizers (for
  ownerReferences with blockOwnerDeletion on the ConfigMaps it owns).
- pods: read and watch the selected pods; patch their peers annotation (and the pgcluster.io/annotated label).
- pods/status: patch only - the readiness gate's condition (pgcluster.io/published), on pods that list the gate.
- configmaps: the output ConfigMaps (watched, created, updated, deleted by its finalizer).
- secrets: get only - the Secrets named in a PgCluster (the URL's, spec.auth's key). No list or watch: it never reads other Secrets.
- events: the conditions it reports are also Events.
*/}}
{{- define "pgcluster-operator.rules" -}}
- apiGroups: ["pgcluster.io"]
  resources: ["pgclusters"]
  verbs: ["get", "list", "watch", "patch", "update"]
- apiGroups: ["pgcluster.io"]
  resources: ["pgclusters/status"]
  verbs: ["get", "patch", "update"]
- apiGroups: ["pgcluster.io"]
  resources: ["pgclusters/finalizers"]
  verbs: ["update"]
- apiGroups: [""]
  resources: ["pods"]
  verbs: ["get", "list", "watch", "patch"]
- apiGroups: [""]
  resources: ["pods/status"]
  verbs: ["patch"]
- apiGroups: [""]
  resources: ["configmaps"]
  verbs: ["get", "list", "watch", "create", "patch", "update", "delete"]
- apiGroups: [""]
  resources: ["secrets"]
  verbs: ["get"]
- apiGroups: [""]
  resources: ["events"]
  verbs: ["create", "patch"]
- apiGroups: [""]
  resources: ["services"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
- apiGroups: ["discovery.k8s.io"]
  resources: ["endpointslices"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
{{- end }}

{{/*
The PromQL label matchers that select the operator's own scrape targets (PgClusterOperatorDown): the job the
Prometheus Operator gives them (the Service's name for the ServiceMonitor, <namespace>/<name> for the
PodMonitor) in the release namespace, unless prometheusRule.operatorSelector says otherwise.
*/}}
{{- define "pgcluster-operator.operatorSelector" -}}
{{- if .Values.prometheusRule.operatorSelector }}
{{- .Values.prometheusRule.operatorSelector }}
{{- else if .Values.podMonitor.enabled }}
{{- printf "job=%q, namespace=%q" (printf "%s/%s" .Release.Namespace (include "pgcluster-operator.fullname" .)) .Release.Namespace }}
{{- else }}
{{- printf "job=%q, namespace=%q" (printf "%s-metrics" (include "pgcluster-operator.fullname" .)) .Release.Namespace }}
{{- end }}
{{- end }}
