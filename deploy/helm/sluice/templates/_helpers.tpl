{{/*
Name of the namespaced objects and the cluster roles: RELEASE-controller, so `helm install sluice`
creates the objects `kubectl apply -k deploy/` does (sluice-controller, sluice-controller-config,
sluice-controller-metrics).
*/}}
{{- define "sluice.fullname" -}}
{{- default (printf "%s-controller" .Release.Name) .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels that select the controller's pods. */}}
{{- define "sluice.selectorLabels" -}}
app.kubernetes.io/name: sluice-controller
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* Labels of every object: the kustomize install's plus Helm's. */}}
{{- define "sluice.labels" -}}
{{ include "sluice.selectorLabels" . }}
app.kubernetes.io/part-of: sluice
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end }}

{{/*
The document of a kind in one of the kustomize install's files (linked under files/), as YAML:
`include "sluice.document" (list . "files/clusterrole.yaml" "ClusterRole")`. The chart reads the
RBAC rules and the plugin defaults from those files instead of keeping a copy.
*/}}
{{- define "sluice.document" -}}
{{- $root := index . 0 }}
{{- $file := index . 1 }}
{{- $kind := index . 2 }}
{{- $found := dict }}
{{- range splitList "\n---\n" ($root.Files.Get $file) }}
{{- $document := fromYaml . }}
{{- if and (not $found.document) (eq (get $document "kind") $kind) }}
{{- $_ := set $found "document" $document }}
{{- end }}
{{- end }}
{{- if not $found.document }}
{{- fail (printf "no %s in %s" $kind $file) }}
{{- end }}
{{- toYaml $found.document }}
{{- end }}

{{/* The rules of the Role or ClusterRole of a kind in a file, as YAML. */}}
{{- define "sluice.rules" -}}
{{- (include "sluice.document" . | fromYaml).rules | toYaml }}
{{- end }}

{{/* The subject of the bindings: the controller's ServiceAccount. */}}
{{- define "sluice.subjects" -}}
- kind: ServiceAccount
  name: {{ include "sluice.fullname" . }}
  namespace: {{ .Release.Namespace }}
{{- end }}
