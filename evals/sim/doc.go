// Package sim is the eval suite's node simulator: it turns app profiles (what
// an image needs and serves: valid commands, ports, health paths, working-set
// memory, required environment variables, dependencies, start-up time) into
// the kwok Stages of the local stack, so that a simulated container's state
// follows from its pod spec and its image's profile alone. A missing
// variable crash-loops with exit 1, a memory limit below the working set is
// OOMKilled with exit 137, an unknown command fails to start, a liveness
// probe on the wrong path or port restarts the container, a readiness probe
// on the wrong path or port keeps it unready, an unknown tag cannot be
// pulled. Scheduling, quotas, volumes and node lifecycle are left to the
// real control plane.
//
// It must never key a fault on a label or an annotation, or on anything an
// agent could delete to make the symptom go away without fixing the spec.
package sim
