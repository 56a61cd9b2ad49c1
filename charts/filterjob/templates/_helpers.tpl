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
