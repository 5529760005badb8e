{{/* Names, labels and the settings derived from several values. */}}

{{- define "switchboard.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "switchboard.fullname" -}}
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

{{- define "switchboard.redisName" -}}
{{- printf "%s-redis" (include "switchboard.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels every object carries besides its selector labels. */}}
{{- define "switchboard.commonLabels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: switchboard
{{- end }}

{{- define "switchboard.labels" -}}
{{ include "switchboard.commonLabels" . }}
app.kubernetes.io/name: {{ include "switchboard.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* The server pods; "component" keeps the Redis pods out of the server's selector. */}}
{{- define "switchboard.selectorLabels" -}}
app.kubernetes.io/name: {{ include "switchboard.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: server
{{- end }}

{{- define "switchboard.redisSelectorLabels" -}}
app.kubernetes.io/name: {{ include "switchboard.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: redis
{{- end }}

{{- define "switchboard.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "switchboard.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "switchboard.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/* The Secret the pods read their SWITCHBOARD_* secrets from. */}}
{{- define "switchboard.secretName" -}}
{{- default (include "switchboard.fullname" .) .Values.secrets.existingSecret }}
{{- end }}

{{- define "switchboard.policyConfigMap" -}}
{{- default (printf "%s-policy" (include "switchboard.fullname" .)) .Values.policy.existingConfigMap }}
{{- end }}

{{- define "switchboard.reasonsConfigMap" -}}
{{- default (printf "%s-reasons" (include "switchboard.fullname" .)) .Values.reasons.existingConfigMap }}
{{- end }}

{{- define "switchboard.externalRedis" -}}
{{- if or .Values.redis.external.existingSecret .Values.redis.external.url }}true{{ end }}
{{- end }}

{{/* SWITCHBOARD_PUBLIC_BASE_URL: the value, else the Ingress's first host. */}}
{{- define "switchboard.publicBaseUrl" -}}
{{- if .Values.publicBaseUrl }}
{{- .Values.publicBaseUrl }}
{{- else if and .Values.ingress.enabled .Values.ingress.hosts }}
{{- $host := (first .Values.ingress.hosts).host }}
{{- $scheme := "http" }}
{{- range .Values.ingress.tls }}
{{- if has $host .hosts }}{{ $scheme = "https" }}{{ end }}
{{- end }}
{{- printf "%s://%s" $scheme $host }}
{{- end }}
{{- end }}

{{/* Refuse values that would deploy something broken. */}}
{{- define "switchboard.validate" -}}
{{- if and .Values.redis.enabled (include "switchboard.externalRedis" .) }}
{{- fail "redis.enabled and redis.external are both set: choose the bundled Redis or an external one" }}
{{- end }}
{{- if and .Values.redis.external.existingSecret .Values.redis.external.url }}
{{- fail "redis.external: set existingSecret or url, not both" }}
{{- end }}
{{- if and (not .Values.redis.enabled) (not (include "switchboard.externalRedis" .)) (or .Values.autoscaling.enabled (gt (int .Values.replicaCount) 1)) }}
{{- fail "more than one replica needs a shared store: set redis.enabled=true or redis.external (each pod's own SQLite would split conversations between pods)" }}
{{- end }}
{{- if and .Values.policy.content .Values.policy.existingConfigMap }}
{{- fail "policy: set content or existingConfigMap, not both" }}
{{- end }}
{{- if and .Values.reasons.content .Values.reasons.existingConfigMap }}
{{- fail "reasons: set content or existingConfigMap, not both" }}
{{- end }}
{{- end }}
