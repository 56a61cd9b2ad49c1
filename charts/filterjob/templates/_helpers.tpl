{{/* The chart name, or nameOverride. */}}
{{- define "filterjob.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The full name of the release's objects: "<release>-<chart>", or the release name alone if it has the chart name. */}}
{{- define "filterjob.fullname" -}}
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

{{/* "<chart>-<version>" for the helm.sh/chart label. */}}
{{- define "filterjob.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels of the operator pods; the Deployment, Service and monitors select by these. */}}
{{- define "filterjob.selectorLabels" -}}
app.kubernetes.io/name: {{ include "filterjob.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end }}

{{/* Labels of every object of the chart. */}}
{{- define "filterjob.labels" -}}
helm.sh/chart: {{ include "filterjob.chart" . }}
{{ include "filterjob.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: filterjob
{{- end }}

{{/* Labels of the External metrics API's objects (its APIService, Service, Secret and bindings). */}}
{{- define "filterjob.externalMetricsLabels" -}}
helm.sh/chart: {{ include "filterjob.chart" . }}
app.kubernetes.io/name: {{ include "filterjob.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: external-metrics
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: filterjob
{{- end }}

{{- define "filterjob.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "filterjob.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The image: repository@digest, or repository:tag (tag defaults to the appVersion). */}}
{{- define "filterjob.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/* The Secret the operator and workers read the broker from, in each job's namespace. */}}
{{- define "filterjob.brokerSecretName" -}}
{{- default .Values.broker.secretName .Values.broker.existingSecret }}
{{- end }}

{{/* The namespaces in which the chart creates the broker Secret. */}}
{{- define "filterjob.brokerSecretNamespaces" -}}
{{- $namespaces := .Values.broker.namespaces | default .Values.watchNamespaces | default (list .Release.Namespace) }}
{{- toJson (uniq $namespaces) }}
{{- end }}

{{/*
RBAC: exactly the (apiGroup, resource, verb) triples the operator uses. The operator's
integration tests (tests/integration/k8s/test_operator.py) run it as this ServiceAccount on a
real API server and check, from its audit log, that it used every rule and nothing else.
*/}}

{{/* Rules on namespaced resources: a ClusterRole watching every namespace, a Role per watched namespace otherwise. */}}
{{- define "filterjob.namespacedRules" -}}
# FilterJobs: kopf lists and watches them, patches finalizers and annotations; TTL deletes them.
- apiGroups: ["filterjob.dev"]
  resources: ["filterjobs"]
  verbs: ["list", "watch", "patch", "delete"]
{{- if .Values.externalMetrics.enabled }}
# The External metrics API reads the job an HPA asks about (its queues and broker Secret).
- apiGroups: ["filterjob.dev"]
  resources: ["filterjobs"]
  verbs: ["get"]
{{- end }}
- apiGroups: ["filterjob.dev"]
  resources: ["filterjobs/status"]
  verbs: ["patch"]
# Children are created with blockOwnerDeletion, which the OwnerReferencesPermissionEnforcement
# admission plugin (OpenShift) allows only to whoever may update the owner's finalizers.
- apiGroups: ["filterjob.dev"]
  resources: ["filterjobs/finalizers"]
  verbs: ["update"]
# The worker Deployment: create-or-patch, read replicas, scale.
- apiGroups: ["apps"]
  resources: ["deployments"]
  verbs: ["get", "create", "patch"]
- apiGroups: ["apps"]
  resources: ["deployments/scale"]
  verbs: ["patch"]
# autoscaling.mode: hpa.
- apiGroups: ["autoscaling"]
  resources: ["horizontalpodautoscalers"]
  verbs: ["create", "patch", "delete"]
# The lister Job of a job whose file:// source the operator does not see: create it, read whether it
# failed, delete it to list again when a job that failed on its source is re-driven.
- apiGroups: ["batch"]
  resources: ["jobs"]
  verbs: ["get", "create", "delete"]
# The lister Job's pods: why one has not started (an image that cannot be pulled, a missing
# Secret, unschedulable), shown in the job's Ready condition until the Job's deadline. The worker
# pods: their controller.kubernetes.io/pod-deletion-cost, so that scale-in removes idle ones first.
- apiGroups: [""]
  resources: ["pods"]
  verbs: ["list", "patch"]
# The broker Secret (url, managementUrl) named by the job or FILTERJOB_BROKER_SECRET.
- apiGroups: [""]
  resources: ["secrets"]
  verbs: ["get"]
  {{- with .Values.rbac.secretNames }}
  resourceNames: {{ toJson . }}
  {{- end }}
# Events on FilterJobs (Enqueued, Succeeded, Failed, ...).
- apiGroups: [""]
  resources: ["events"]
  verbs: ["create"]
{{- if .Values.keda.enabled }}
# autoscaling.mode: keda: a job's ScaledObject and TriggerAuthentication, created or patched at each
# attempt, deleted at its end or when it leaves the mode.
- apiGroups: ["keda.sh"]
  resources: ["scaledobjects", "triggerauthentications"]
  verbs: ["create", "patch", "delete"]
# The Secret <job>-keda the TriggerAuthentication reads (the management URL with credentials); it
# is owned by the TriggerAuthentication, so the garbage collector deletes it.
- apiGroups: [""]
  resources: ["secrets"]
  verbs: ["create", "patch"]
{{- end }}
{{- end }}

{{/* Cluster-scoped rules in every mode: kopf follows CRDs to notice the FilterJob CRD appear or change. */}}
{{- define "filterjob.clusterRules" -}}
- apiGroups: ["apiextensions.k8s.io"]
  resources: ["customresourcedefinitions"]
  verbs: ["list", "watch"]
{{- end }}

{{/* Cluster-scoped rules when watching a list of namespaces: kopf follows which of them exist. */}}
{{- define "filterjob.namespaceListRules" -}}
- apiGroups: [""]
  resources: ["namespaces"]
  verbs: ["list", "watch"]
{{- end }}

{{/* The External metrics API's Service (the APIService points at it) and its serving certificate's Secret. */}}
{{- define "filterjob.externalMetricsService" -}}
{{- printf "%s-external-metrics" (include "filterjob.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "filterjob.externalMetricsSecret" -}}
{{- printf "%s-external-metrics-tls" (include "filterjob.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The serving certificate of the External metrics API, base64 as a Secret holds it: {ca, crt, key}.
Kept from the Secret of an earlier install (a new CA at every upgrade would only restart the
operator), or made now, for the names the aggregator checks it against: <service>.<namespace>.svc.
*/}}
{{- define "filterjob.externalMetricsTls" -}}
{{- $service := include "filterjob.externalMetricsService" . }}
{{- $existing := lookup "v1" "Secret" .Release.Namespace (include "filterjob.externalMetricsSecret" .) }}
{{- if and $existing $existing.data (index $existing.data "ca.crt") (index $existing.data "tls.crt") (index $existing.data "tls.key") }}
{{- toJson (dict "ca" (index $existing.data "ca.crt") "crt" (index $existing.data "tls.crt") "key" (index $existing.data "tls.key")) }}
{{- else }}
{{- $ca := genCA (printf "%s-ca" $service) 3650 }}
{{- $names := list $service (printf "%s.%s" $service .Release.Namespace) (printf "%s.%s.svc" $service .Release.Namespace) }}
{{- $cert := genSignedCert (printf "%s.%s.svc" $service .Release.Namespace) nil $names 3650 $ca }}
{{- toJson (dict "ca" ($ca.Cert | b64enc) "crt" ($cert.Cert | b64enc) "key" ($cert.Key | b64enc)) }}
{{- end }}
{{- end }}
