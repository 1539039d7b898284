{{/* The release's full name: "<release>" when it contains the chart name, else "<release>-pullsync". */}}
{{- define "pullsync.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "pullsync.labels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "pullsync.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/* The labels of the operator's pods: the unsharded Deployment's are its selector labels;
a shard's pods are named apart (their own name and a pullsync.dev/shard label), so that no
selector of one Deployment or Service matches the pods of another. (list root shard) */}}
{{- define "pullsync.podLabels" -}}
{{- $root := index . 0 -}}{{- $shard := index . 1 -}}
{{- if $shard -}}
app.kubernetes.io/name: {{ $root.Chart.Name }}-shard
app.kubernetes.io/instance: {{ $root.Release.Name }}
pullsync.dev/shard: {{ $shard | quote }}
{{- else -}}
{{ include "pullsync.selectorLabels" $root }}
{{- end -}}
{{- end -}}

{{- define "pullsync.serviceAccountName" -}}
{{- default (include "pullsync.fullname" .) .Values.serviceAccount.name -}}
{{- end -}}

{{/* Rules every mode needs on pullsync's own kinds, Secrets (git credentials, webhook tokens), events and impersonation. */}}
{{- define "pullsync.ownRules" -}}
- apiGroups: [pullsync.dev]
  resources: [gitrepositories, syncs, previews]
  verbs: [get, list, watch, patch, update]
- apiGroups: [pullsync.dev]
  resources: [gitrepositories/status, syncs/status, previews/status, gitrepositories/finalizers, syncs/finalizers]
  verbs: [get, patch, update]
- apiGroups: [""]
  resources: [secrets]
  verbs: [get, list, watch]  # credentials of GitRepositories, read from a watch
- apiGroups: ["", events.k8s.io]
  resources: [events]
  verbs: [create, patch]
- apiGroups: [""]
  resources: [serviceaccounts]
  verbs: [impersonate]
{{- end -}}
