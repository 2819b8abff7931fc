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

// DefaultSystemNamespace is the namespace tend's components run in by
// default: it holds their service accounts, the gate state, the audit
// key's public half, and the proposals for cluster-scoped targets such as
// nodes. It is protected: nothing in it is approved automatically.
const DefaultSystemNamespace = "tend-system"

// ClusterScopedSubresource is the RBAC subresource of proposals that stands
// for proposals about cluster-scoped objects (nodes): creating, proposing
// (through tend's MCP server) or approving one needs the verb on
// proposals/cluster cluster-wide, through a ClusterRoleBinding, besides the
// right to create it in the system namespace. The API server serves no such
// subresource; RBAC and the admission policies check it by name.
const ClusterScopedSubresource = "cluster"
