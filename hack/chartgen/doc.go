// Package main is chartgen: it writes the chart templates that must match
// what the local stack installs (ClusterRoles, admission policies), from
// the one Go source in internal/localstack. It must never write anything
// but those generated templates.
package main
