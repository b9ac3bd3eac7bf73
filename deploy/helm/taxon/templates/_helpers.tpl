{{/* Names and labels. */}}
{{- define "taxon.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "taxon.fullname" -}}
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

{{- define "taxon.selectorLabels" -}}
app.kubernetes.io/name: {{ include "taxon.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "taxon.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "taxon.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: taxon
{{- end }}

{{- define "taxon.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "taxon.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The image reference: by digest when one is given, else by tag (default appVersion). */}}
{{- define "taxon.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/* One env entry from a Secret key, when the reference names a Secret:
     (dict "env" "NAME" "ref" (dict "secretName" ... "key" ...)). */}}
{{- define "taxon.secretEnv" -}}
{{- if .ref.secretName }}
- name: {{ .env }}
  valueFrom:
    secretKeyRef:
      name: {{ .ref.secretName }}
      key: {{ .ref.key }}
{{- end }}
{{- end }}

{{/* The environment every taxon container shares: the registry and users databases, the run
     store, the artifact store and its S3 credentials, the Fernet key. Secrets by reference. */}}
{{- define "taxon.stateEnv" -}}
{{- include "taxon.secretEnv" (dict "env" "TAXON_REGISTRY_DB" "ref" .Values.state.registryDb) }}
{{- include "taxon.secretEnv" (dict "env" "TAXON_USERS_DB" "ref" .Values.state.usersDb) }}
{{- include "taxon.secretEnv" (dict "env" "TAXON_RUNS_DB" "ref" .Values.state.runsDb) }}
{{- if .Values.state.artifacts }}
- name: TAXON_REGISTRY_ARTIFACTS
  value: {{ .Values.state.artifacts | quote }}
{{- end }}
{{- if .Values.s3.endpoint }}
- name: AWS_ENDPOINT_URL
  value: {{ .Values.s3.endpoint | quote }}
{{- end }}
- name: AWS_DEFAULT_REGION
  value: {{ .Values.s3.region | quote }}
{{- include "taxon.secretEnv" (dict "env" "AWS_ACCESS_KEY_ID" "ref" (dict "secretName" .Values.s3.credentials.secretName "key" .Values.s3.credentials.accessKeyIdKey)) }}
{{- include "taxon.secretEnv" (dict "env" "AWS_SECRET_ACCESS_KEY" "ref" (dict "secretName" .Values.s3.credentials.secretName "key" .Values.s3.credentials.secretAccessKeyKey)) }}
{{- include "taxon.secretEnv" (dict "env" "TAXON_FERNET_KEY" "ref" .Values.fernet) }}
{{- end }}

{{/* The writable scratch volumes (the root filesystem is read-only). */}}
{{- define "taxon.scratchVolumes" -}}
- name: workdir
  emptyDir:
    sizeLimit: {{ .Values.scratch.workdirSizeLimit }}
- name: tmp
  emptyDir:
    sizeLimit: {{ .Values.scratch.tmpSizeLimit }}
{{- end }}

{{- define "taxon.scratchMounts" -}}
- name: workdir
  mountPath: /var/lib/taxon
- name: tmp
  mountPath: /tmp
{{- end }}

{{/* The model volume of model.source=path with a volume. */}}
{{- define "taxon.modelVolume" -}}
{{- if and (eq .Values.model.source "path") .Values.model.volume }}
- name: model
  {{- toYaml .Values.model.volume | nindent 2 }}
{{- end }}
{{- end }}

{{- define "taxon.modelMount" -}}
{{- if and (eq .Values.model.source "path") .Values.model.volume }}
- name: model
  mountPath: {{ .Values.model.path }}
  readOnly: true
{{- end }}
{{- end }}

{{/* checkov checks skipped for the workloads, each with its reason (scripts/check-deploy.sh
     runs checkov on the rendered chart; these annotations are how checkov reads a skip). */}}
{{- define "taxon.checkovSkips" -}}
checkov.io/skip1: CKV_K8S_43=Pinning by digest is supported (image.digest) but not the default - releases are promoted by changing image.tag in Git and tags of released images are never rewritten
checkov.io/skip2: CKV_K8S_15=IfNotPresent by default so that scaling out does not depend on the registry - released tags are immutable and image.pullPolicy can be set to Always
checkov.io/skip3: CKV_K8S_35=taxon reads its secrets (TAXON_JWT_SECRET, database URLs, AWS keys, TAXON_FERNET_KEY, alert channel secrets) from environment variables - each comes from a Secret by secretKeyRef and none is inlined
{{- end }}
