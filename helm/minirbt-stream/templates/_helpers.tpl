{{/* Names and labels shared by every object of the release. */}}

{{- define "minirbt-stream.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Release-qualified name, at most 63 characters (a DNS label). */}}
{{- define "minirbt-stream.fullname" -}}
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

{{- define "minirbt-stream.selectorLabels" -}}
app.kubernetes.io/name: {{ include "minirbt-stream.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "minirbt-stream.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "minirbt-stream.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "minirbt-stream.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{- define "minirbt-stream.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "minirbt-stream.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The Secret holding KAFKA_* credentials, or "" when there is none. */}}
{{- define "minirbt-stream.kafkaCredentialsSecret" -}}
{{- if .Values.kafka.credentials.existingSecret }}
{{- .Values.kafka.credentials.existingSecret }}
{{- else if .Values.kafka.credentials.create }}
{{- printf "%s-kafka-credentials" (include "minirbt-stream.fullname" .) }}
{{- end }}
{{- end }}

{{/* The Secret holding the control-message verification key, or "" when there is none. */}}
{{- define "minirbt-stream.verifyKeySecret" -}}
{{- if .Values.control.verifyKey.existingSecret }}
{{- .Values.control.verifyKey.existingSecret }}
{{- else if .Values.control.verifyKey.publicKey }}
{{- printf "%s-verify-key" (include "minirbt-stream.fullname" .) }}
{{- end }}
{{- end }}

{{/* Fails the render on combinations the schema cannot express. */}}
{{- define "minirbt-stream.validate" -}}
{{- if and .Values.control.enabled (not (include "minirbt-stream.verifyKeySecret" .)) }}
{{- fail "control.enabled needs control.verifyKey.existingSecret or control.verifyKey.publicKey: unsigned control messages are never accepted" }}
{{- end }}
{{- if and .Values.control.enabled (not .Values.registry.enabled) }}
{{- fail "control.enabled needs registry.enabled: deployed versions are loaded from the registry volume" }}
{{- end }}
{{- if and (not .Values.model.dir) (not .Values.control.enabled) }}
{{- fail "set model.dir (the checkpoint to serve) or enable control (the deployed version is served)" }}
{{- end }}
{{- end }}
