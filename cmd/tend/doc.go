// Command tend is tend's CLI and server: `tend up` runs the local stack,
// `tend demo` shows the whole loop on it, `tend proposals` lists, shows,
// approves and denies proposals on any cluster with any kubeconfig, and `tend
// policy` tests gate policies offline and explains the gate's decisions. It also
// works as the kubectl plugin `kubectl tend` when installed as kubectl-tend.
//
// It wires packages together and holds no logic of its own beyond flags,
// output and the demo's narration.
package main
