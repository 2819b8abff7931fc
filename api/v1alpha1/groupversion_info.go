package v1alpha1

import (
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/scheme"
)

var (
	// GroupVersion is the group and version of every tend resource.
	GroupVersion = schema.GroupVersion{Group: "tend.dev", Version: "v1alpha1"}

	// SchemeBuilder registers tend's types with a runtime.Scheme.
	SchemeBuilder = &scheme.Builder{GroupVersion: GroupVersion}

	// AddToScheme adds tend's types to a scheme.
	AddToScheme = SchemeBuilder.AddToScheme
)
