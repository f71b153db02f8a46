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

{{/* The StatefulSet's governing Service: headless, so each pod gets a stable DNS name. */}}
{{- define "minirbt-stream.headlessName" -}}
{{- printf "%s-headless" (include "minirbt-stream.fullname" . | trunc 54 | trimSuffix "-") }}
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

{{/* The input topics without empty entries (`--set 'stream.inputTopics={}'` yields [""]), as a JSON list. */}}
{{- define "minirbt-stream.inputTopics" -}}
{{- compact .Values.stream.inputTopics | toJson }}
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

{{/*
Checksum of a Secret the chart does not own, for a pod annotation: its name and its data as `helm upgrade`
reads them from the cluster (lookup), so replacing the Secret's content and running `helm upgrade` rolls the
pods. `helm template` and client-side dry runs have no cluster: lookup is empty there, and only a change of
the name changes the checksum. Argument: (list $ secretName).
*/}}
{{- define "minirbt-stream.existingSecretChecksum" -}}
{{- $root := index . 0 }}
{{- $name := index . 1 }}
{{- $secret := lookup "v1" "Secret" $root.Release.Namespace $name | default dict }}
{{- printf "%s\n%s" $name (get $secret "data" | default dict | toJson) | sha256sum }}
{{- end }}

{{/*
The librdkafka properties the ConfigMap sets, as a JSON map from KAFKA_* variable to value: kafka.properties
plus the TLS file locations. Fails when both name the same property, instead of writing a duplicate key.
*/}}
{{- define "minirbt-stream.kafkaEnvironment" -}}
{{- $env := dict }}
{{- range $property, $value := .Values.kafka.properties }}
{{- $_ := set $env (printf "KAFKA_%s" ($property | upper | replace "." "_")) (toString $value) }}
{{- end }}
{{- if .Values.kafka.tls.enabled }}
{{- $tls := .Values.kafka.tls }}
{{- $files := dict "ssl.ca.location" $tls.caKey "ssl.certificate.location" $tls.certKey "ssl.key.location" $tls.keyKey }}
{{- range $property := list "ssl.ca.location" "ssl.certificate.location" "ssl.key.location" }}
{{- with get $files $property }}
{{- if hasKey $.Values.kafka.properties $property }}
{{- fail (printf "kafka.properties.%s conflicts with kafka.tls, which sets %s to the mounted file %s/%s: remove one of them" $property $property $tls.mountPath .) }}
{{- end }}
{{- $_ := set $env (printf "KAFKA_%s" ($property | upper | replace "." "_")) (printf "%s/%s" $tls.mountPath .) }}
{{- end }}
{{- end }}
{{- end }}
{{- toJson $env }}
{{- end }}

{{/* Fails the render, naming the value to fix, on combinations the schema cannot express. */}}
{{- define "minirbt-stream.validate" -}}
{{- $v := .Values }}
{{- if and $v.control.enabled (not (include "minirbt-stream.verifyKeySecret" .)) }}
{{- fail "control.enabled needs control.verifyKey.existingSecret or control.verifyKey.publicKey: unsigned control messages are never accepted" }}
{{- end }}
{{- if and $v.control.enabled (not $v.registry.enabled) }}
{{- fail "control.enabled needs registry.enabled: deployed versions are loaded from the registry volume" }}
{{- end }}
{{- if and (not $v.model.dir) (not $v.control.enabled) }}
{{- fail "set model.dir (the checkpoint to serve) or enable control (the deployed version is served)" }}
{{- end }}
{{- $topics := include "minirbt-stream.inputTopics" . | fromJsonArray }}
{{- if and $topics $v.stream.inputPattern }}
{{- fail "stream.inputTopics and stream.inputPattern are exclusive: empty the topic list (--set 'stream.inputTopics={}') to consume by pattern" }}
{{- end }}
{{- if not (or $topics $v.stream.inputPattern) }}
{{- fail "nothing to consume: set stream.inputTopics (a non-empty topic list) or stream.inputPattern" }}
{{- end }}
{{- if and $v.autoscaling.keda.enabled $v.autoscaling.hpa.enabled }}
{{- fail "autoscaling.keda and autoscaling.hpa are both enabled: they would fight over the replica count; enable one" }}
{{- end }}
{{- range $name := list "keda" "hpa" }}
{{- $scaler := get $v.autoscaling $name }}
{{- if and $scaler.enabled (gt (int $scaler.minReplicas) (int $scaler.maxReplicas)) }}
{{- fail (printf "autoscaling.%s.minReplicas (%d) exceeds autoscaling.%s.maxReplicas (%d)" $name (int $scaler.minReplicas) $name (int $scaler.maxReplicas)) }}
{{- end }}
{{- end }}
{{- if $v.podDisruptionBudget.enabled }}
{{- $pdb := $v.podDisruptionBudget }}
{{- if ne (toString $pdb.minAvailable) "" }}
{{- if eq (trimSuffix "%" (toString $pdb.minAvailable)) "0" }}
{{- fail "podDisruptionBudget.minAvailable: 0 protects nothing: set a count or percentage above 0, or podDisruptionBudget.enabled=false" }}
{{- end }}
{{- else if eq (trimSuffix "%" (toString $pdb.maxUnavailable)) "0" }}
{{- fail "podDisruptionBudget.maxUnavailable: 0 blocks every node drain: set 1 (one rebalance at a time), or podDisruptionBudget.enabled=false" }}
{{- end }}
{{- end }}
{{- range $key := list "app.kubernetes.io/name" "app.kubernetes.io/instance" }}
{{- if hasKey $v.podLabels $key }}
{{- fail (printf "podLabels must not set %s: it is part of the workload's selector, and changing it would orphan the pods" $key) }}
{{- end }}
{{- end }}
{{- if and $v.kafka.tls.enabled (not $v.kafka.tls.existingSecret) }}
{{- fail "kafka.tls.enabled needs kafka.tls.existingSecret: the Secret holding the CA bundle (and the client certificate and key for mTLS)" }}
{{- end }}
{{- range $property, $_ := $v.kafka.properties }}
{{- if not (regexMatch "^[a-z][a-z0-9]*(\\.[a-z0-9]+)*$" $property) }}
{{- fail (printf "kafka.properties.%s is not a librdkafka property name (lower case and dots, e.g. security.protocol)" $property) }}
{{- end }}
{{- end }}
{{- if and $v.kafka.credentials.create (not $v.kafka.credentials.existingSecret) }}
{{- range $name, $_ := $v.kafka.credentials.values }}
{{- if not (regexMatch "^KAFKA_[A-Z0-9_]+$" $name) }}
{{- fail (printf "kafka.credentials.values.%s is not a KAFKA_* variable name (e.g. KAFKA_SASL_PASSWORD for sasl.password)" $name) }}
{{- end }}
{{- $property := $name | trimPrefix "KAFKA_" | lower | replace "_" "." }}
{{- if hasKey $v.kafka.properties $property }}
{{- fail (printf "kafka.properties.%s and kafka.credentials.values.%s set the same librdkafka property: keep secrets in credentials only" $property $name) }}
{{- end }}
{{- end }}
{{- end }}
{{- $reserved := list "tmp" "registry" "verify-key" "kafka-tls" }}
{{- range $v.extraVolumes }}
{{- if has .name $reserved }}
{{- fail (printf "extraVolumes: the name %q is the chart's own volume; choose another" .name) }}
{{- end }}
{{- end }}
{{- if and $v.networkPolicy.enabled (not $v.networkPolicy.kafkaPorts) }}
{{- fail "networkPolicy.kafkaPorts is empty: the pods could not reach the brokers" }}
{{- end }}
{{- end }}
