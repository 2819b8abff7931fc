// Package policytest runs tests of GatePolicies, as `opa test` does for Rego:
// a test file holds GatePolicyTest documents, each a list of cases; a case is
// one proposal, the facts a gatherer would have found about its target, the
// guards' view of the cluster and the decision the author expects. [Run] loads
// the policies under test into a fresh [policies.Gate], decides every case and
// reports, per case, whether the decision met the expectation and, if not, a
// diff of expected against got.
//
// `tend policy test` is its command line; the format is documented in
// docs/policies.md under "Testing policies".
//
// # What it must never do
//
// The package is pure like the gate it drives: it reads no files (callers
// pass the bytes and a name for messages), talks to no cluster and reads no
// clock (each case carries its time, or [DefaultNow]). It decides with the
// gate itself, never with a copy of its logic, so that a test passes exactly
// when the controller would decide the same.
package policytest
