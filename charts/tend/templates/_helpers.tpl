{{- define "tend.labels" -}}
app.kubernetes.io/name: tend
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ .Chart.Name }}-{{ .Chart.Version }}
{{- end -}}

{{/* The image of tend's components. */}}
{{- define "tend.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}

{{/* Selector labels of one component: pass (list $ "controller"). */}}
{{- define "tend.selector" -}}
app.kubernetes.io/name: tend
app.kubernetes.io/instance: {{ (index . 0).Release.Name }}
app.kubernetes.io/component: {{ index . 1 }}
{{- end -}}

{{/* The cluster's subject token on the bus: dots become tildes. */}}
{{- define "tend.clusterToken" -}}
{{ .Values.cluster | replace "." "~" }}
{{- end -}}

{{/* The NATS URL the components connect to. */}}
{{- define "tend.natsURL" -}}
{{- if .Values.nats.bundled -}}
nats://{{ .Release.Name }}-nats.{{ .Release.Namespace }}.svc:4222
{{- else -}}
{{ required "nats.url is required when nats.bundled is false" .Values.nats.url }}
{{- end -}}
{{- end -}}

{{/*
The security context of every tend pod: the images' non-root user, and its
group owning the mounted Secrets (they are mode 0400), so that the
components can read their credentials.
*/}}
{{- define "tend.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 65532
runAsGroup: 65532
fsGroup: 65532
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/* The restricted security context every tend container runs with. */}}
{{- define "tend.containerSecurityContext" -}}
runAsNonRoot: true
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
capabilities:
  drop: ["ALL"]
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/*
The NATS arguments, volume mounts and volumes of one component: pass
(list $ "controller").
*/}}
{{- define "tend.natsArgs" -}}
{{- $ := index . 0 -}}{{- $c := index . 1 -}}
- --nats-url={{ include "tend.natsURL" $ }}
{{- if $.Values.nats.bundled }}
- --nats-user={{ $c }}
- --nats-password-file=/etc/tend/nats/{{ $c }}
{{- else }}
- --nats-creds=/etc/tend/nats/{{ $c }}.creds
{{- end }}
{{- if $.Values.nats.caSecret }}
- --nats-ca=/etc/tend/nats-ca/ca.crt
{{- end }}
{{- end -}}

{{- define "tend.natsMounts" -}}
- name: nats-credentials
  mountPath: /etc/tend/nats
  readOnly: true
{{- if .Values.nats.caSecret }}
- name: nats-ca
  mountPath: /etc/tend/nats-ca
  readOnly: true
{{- end }}
{{- end -}}

{{- define "tend.natsVolumes" -}}
{{- $ := index . 0 -}}{{- $c := index . 1 -}}
- name: nats-credentials
  secret:
    secretName: {{ if $.Values.nats.bundled }}{{ $.Release.Name }}-nats-users{{ else }}{{ required "nats.credentialsSecret is required when nats.bundled is false" $.Values.nats.credentialsSecret }}{{ end }}
    defaultMode: 0400
    items:
      - key: {{ $c }}{{ if not $.Values.nats.bundled }}.creds{{ end }}
        path: {{ $c }}{{ if not $.Values.nats.bundled }}.creds{{ end }}
{{- if $.Values.nats.caSecret }}
- name: nats-ca
  secret:
    secretName: {{ $.Values.nats.caSecret }}
{{- end }}
{{- end -}}
