{{/* Chart name, truncated to the 63 characters a label value allows. */}}
{{- define "kslim.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Full name: release-chart, unless the release name already contains the chart name. */}}
{{- define "kslim.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "kslim.selectorLabels" -}}
app.kubernetes.io/name: {{ include "kslim.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end -}}

{{- define "kslim.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{ include "kslim.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: kslim
{{- end -}}

{{- define "kslim.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "kslim.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "kslim.image" -}}
{{- printf "%s:%s" .image.repository (default .appVersion .image.tag) -}}
{{- end -}}

{{/* Rules the operator needs in every namespace it watches. No wildcards. */}}
{{- define "kslim.namespacedRules" -}}
# Every verb here is used by a code path (tests/helm/test_rbac.py): list/watch by Kopf's watches
# and indexes, the rest by operator/kslim_operator/kube.py.
- apiGroups: ["kslim.dev"]
  resources: ["compressionjobs"]
  verbs: ["list", "watch"]
- apiGroups: ["kslim.dev"]
  resources: ["compressionjobs/status"]
  verbs: ["patch"]
- apiGroups: ["batch"]
  resources: ["jobs"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
- apiGroups: [""]
  resources: ["configmaps"]
  verbs: ["create"]
- apiGroups: [""]
  resources: ["pods"]
  verbs: ["list", "watch"]
- apiGroups: [""]
  resources: ["pods/log"]
  verbs: ["get"]
- apiGroups: [""]
  resources: ["persistentvolumeclaims"]
  verbs: ["get"]
# create: Kopf posts the CompressionJob's Events (core/v1); list: a Job's FailedCreate Events (why it
# has no pod), and whether a job's JobCreated Event exists
- apiGroups: [""]
  resources: ["events"]
  verbs: ["create", "list"]
# list: why Kueue holds a job back (its Workload's QuotaReserved condition)
- apiGroups: ["kueue.x-k8s.io"]
  resources: ["workloads"]
  verbs: ["list"]
{{- if .Values.multiNode.enabled }}
# multiNode.enabled: jobs with spec.resources.workers > 1 run as Kubeflow PaddleJobs (training-operator
# must be installed); each gets a Secret holding its workers' hand-over token (create only: the
# operator never reads a Secret back).
- apiGroups: ["kubeflow.org"]
  resources: ["paddlejobs"]
  verbs: ["get", "create", "patch", "delete"]
- apiGroups: [""]
  resources: ["secrets"]
  verbs: ["create"]
{{- end }}
{{- end -}}
