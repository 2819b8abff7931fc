// Package components wires tend's server components from their
// configuration: the controller manager (proposals, approvals, the gate and
// its policies, revisions, repeats, findings) and the sensor. The local
// stack runs them in one process; `tend controller` and `tend sensor` run
// each in its own, in a cluster or beside one.
//
// It only assembles what other packages implement, from identities the
// caller gives it: a REST config the API server authenticates and a NATS
// connection the server authenticated. It must never create an identity,
// widen one, or decide anything itself.
package components
