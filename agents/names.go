package agents

import "k8s.io/apimachinery/pkg/util/validation"

// Names in telemetry are what the sensor read, but anything on the bus is
// input to check: a name reaches a proposal's text or arguments only if it
// is a valid Kubernetes name, so that no crafted "name" can carry words
// into what a human or a model reads.

// validObject reports whether namespace (may be empty, for cluster-scoped
// objects) and name are valid Kubernetes names.
func validObject(namespace, name string) bool {
	if namespace != "" && len(validation.IsDNS1123Label(namespace)) > 0 {
		return false
	}
	return len(validation.IsDNS1123Subdomain(name)) == 0
}

// textName is a container (or other DNS-label) name as it may appear in
// text: itself when valid, else a placeholder.
func textName(s string) string {
	if len(validation.IsDNS1123Label(s)) > 0 {
		return "(invalid name)"
	}
	return s
}
