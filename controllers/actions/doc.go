// Package actions is tend's action catalogue as the proposal controller
// carries it out: one file per action, each with its validation, the facts
// the gate decides on, its apply, its verification, and its undo, and one
// explicit list of them all (Catalogue). What an action may act on, and
// whether it can be undone, is the table in api/v1alpha1 (Catalogue there).
//
// Every apply is exactly once: it stamps the proposal's attempt on what it
// writes and finds it there after a restart; it reads the live target and
// refuses one that changed since the proposal. An action never writes
// anything but its own change, never acts on a claim of the proposal that
// the cluster does not confirm, and never decides: the gate does.
package actions
