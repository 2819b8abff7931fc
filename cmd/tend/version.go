package main

import (
	"fmt"
	"runtime"
	"runtime/debug"

	"github.com/spf13/cobra"
)

// buildInfo is what tend version reports.
type buildInfo struct {
	Version   string `json:"version"`
	Commit    string `json:"commit,omitempty"`
	Modified  bool   `json:"modified,omitempty"`
	GoVersion string `json:"goVersion"`
	Platform  string `json:"platform"`
}

func currentBuild() buildInfo {
	b := buildInfo{Version: version, GoVersion: runtime.Version(), Platform: runtime.GOOS + "/" + runtime.GOARCH}
	if info, ok := debug.ReadBuildInfo(); ok {
		for _, s := range info.Settings {
			switch s.Key {
			case "vcs.revision":
				b.Commit = s.Value
			case "vcs.modified":
				b.Modified = s.Value == "true"
			}
		}
	}
	return b
}

func newVersionCommand() *cobra.Command {
	out := &outputOptions{}
	cmd := &cobra.Command{
		Use:   "version",
		Short: "Print tend's version (the one its MCP server reports), commit and Go version",
		Long: `Print tend's version, the same one the MCP server reports to clients in its
initialize answer, with the commit it was built from and the Go version.
-o json|yaml prints a cli.tend.dev/v1alpha1 Version report.`,
		Args:    cobra.NoArgs,
		PreRunE: func(*cobra.Command, []string) error { return out.validate() },
		RunE: func(cmd *cobra.Command, _ []string) error {
			b := currentBuild()
			if !out.table() {
				r, err := report("Version", b)
				if err != nil {
					return err
				}
				return out.print(cmd.OutOrStdout(), r)
			}
			commit := b.Commit
			if commit == "" {
				commit = "unknown"
			} else if len(commit) > 12 {
				commit = commit[:12]
			}
			if b.Modified {
				commit += " (modified)"
			}
			fmt.Fprintf(cmd.OutOrStdout(), "tend %s, commit %s, %s, %s\n", b.Version, commit, b.GoVersion, b.Platform)
			return nil
		},
	}
	out.bind(cmd)
	return cmd
}
