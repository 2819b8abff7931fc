// Package policies is tend's gate: it decides whether a Proposal is applied
// automatically (AutoApprove), waits for human approval (RequireApproval), or is
// refused (Deny).
//
// # What it is for
//
// A [Gate] holds the compiled CEL rules of every GatePolicy plus a fixed list of
// built-in guards, and turns one [Input] (the proposal and the facts a gatherer
// collected about its target) and the current time into a [Result]. Rules are
// boolean CEL expressions over two variables:
//
//	proposal   the typed Input (see [Input] for every field)
//	now        a CEL timestamp, the time the caller passed in
//
// For example:
//
//	proposal.action == "RollbackWorkload" &&
//	    proposal.namespace.labels[?"tend.dev/protected"].orValue("") == "true"
//
// Besides the standard library, rules can use optional values
// (m[?"key"].orValue("")), the strings extension (split, lowerAscii, ...) and
// the sets extension (sets.contains, sets.intersects). Reading a missing map key
// (proposal.target.labels["x"]) is a run-time error and so a Deny; test with
// "x" in m or read with m[?"x"]. As in proto3, has() and ?. treat a zero-valued
// field (0, "", false, empty list or map) as unset.
//
// The CEL environment is built once by [New]. [Gate.Load] compiles every rule,
// checks that it yields a bool and reports per policy whether it is valid, so that
// the caller can set the policy's Ready or Invalid condition. The compiled set is
// swapped in atomically; [Gate.Decide] takes no locks.
//
// # Precedence
//
// Every policy whose actions scope includes the proposal's action (an empty scope
// means every action) is evaluated, every rule of it. Then:
//
//  1. The strongest matching outcome wins: Deny beats RequireApproval beats
//     AutoApprove. Reasons of all matches are recorded, strongest first, and within
//     one strength in policy-name then rule order. Result.Policy and Result.Rule name
//     the first reason of the winning strength.
//  2. When several RequireApproval rules match, the count needed is the largest of
//     their counts and the approver groups are the union of the groups they list (a
//     rule that lists no groups adds none).
//  3. No rule matched: RequireApproval with reason NoMatchingRule. No policy is
//     loaded at all: RequireApproval with reason NoPolicies.
//  4. Built-in guards run last and can only make the outcome stricter: each returns
//     an optional floor (the weakest outcome it allows). ProtectedResource puts a
//     floor of RequireApproval on targets in a protected namespace (one listed in
//     Options.ProtectedNamespaces, or one labelled Options.ProtectedLabel=true)
//     and on targets themselves labelled so; KillSwitch, while engaged, puts a
//     floor of RequireApproval on everything. Guard reasons carry the guard's name. When a
//     guard raised the outcome, Result.Policy and Result.Rule are empty.
//
// # Failing closed
//
// The gate never approves automatically when something is wrong:
//
//   - an action outside the catalogue: Deny, UnknownAction;
//   - an empty target name, a target the gatherer did not find, or the namespace of
//     a namespaced target not found: Deny, TargetNotFound;
//   - a policy that does not compile or validate, and whose scope includes the
//     action: Deny, PolicyInvalid, naming the policy (a policy whose scope itself is
//     invalid applies to every action);
//   - a rule that fails at run time, yields a non-bool, exceeds the cost limit or is
//     interrupted by the context: Deny, EvaluationError, naming policy and rule;
//   - a panic anywhere in a decision: Deny, InternalError.
//
// A user's bad policy is a condition on the policy object (see [PolicyResult]); the
// gate's own failure is a denial.
//
// # What it must never do
//
// The package is pure: it performs no I/O, holds no Kubernetes client, reads no
// clock (the time is passed in) and imports no other tend package than
// api/v1alpha1. It never lets a policy switch a built-in guard off, and never
// returns AutoApprove from a path that saw an error.
//
// Rules may call timestamp functions with a time zone, e.g. now.getHours("Europe/Berlin");
// binaries that run the gate should import time/tzdata so that zones resolve in
// minimal images (a zone that does not resolve is an evaluation error, so a Deny).
package policies
