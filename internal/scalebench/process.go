package scalebench

import (
	"fmt"
	"os"
	"strconv"
	"strings"
)

// clockTicks is the kernel's USER_HZ, the unit of /proc/<pid>/stat times.
const clockTicks = 100

// usage is what one process has used so far.
type usage struct {
	// RSSBytes is its resident set now.
	RSSBytes int64
	// AnonBytes and FileBytes split the resident set: the process's own
	// memory (heap, stacks), and the pages of files it maps that it has
	// touched, chiefly its binary's code and read-only data, which the page
	// cache shares with every process that maps the same file.
	AnonBytes, FileBytes int64
	// PSSBytes is its proportional set: its own pages, plus each shared
	// page divided by the number of processes that map it. Summed over
	// processes that run the same binary, it counts that binary's pages
	// once, which the sum of their resident sets does not.
	PSSBytes int64
	// CPUSeconds is its user and system time so far.
	CPUSeconds float64
}

// readUsage reads pid's resident and proportional sets and CPU time from
// /proc.
func readUsage(pid int) (usage, error) {
	var u usage
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return u, err
	}
	for _, field := range []struct {
		prefix string
		into   *int64
	}{{"VmRSS:", &u.RSSBytes}, {"RssAnon:", &u.AnonBytes}, {"RssFile:", &u.FileBytes}} {
		if *field.into, err = kilobytes(string(status), field.prefix); err != nil {
			return u, fmt.Errorf("/proc/%d/status: %w", pid, err)
		}
	}
	rollup, err := os.ReadFile(fmt.Sprintf("/proc/%d/smaps_rollup", pid))
	if err != nil {
		return u, err
	}
	if u.PSSBytes, err = kilobytes(string(rollup), "Pss:"); err != nil {
		return u, fmt.Errorf("/proc/%d/smaps_rollup: %w", pid, err)
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return u, err
	}
	// The command may hold spaces: fields count from after its ')'.
	s := string(stat)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return u, fmt.Errorf("unexpected /proc/%d/stat", pid)
	}
	fields := strings.Fields(s[i+1:])
	// utime and stime are fields 14 and 15 of the whole line, 12 and 13
	// after the command (state is the first).
	if len(fields) < 13 {
		return u, fmt.Errorf("short /proc/%d/stat", pid)
	}
	ut, err1 := strconv.ParseFloat(fields[11], 64)
	st, err2 := strconv.ParseFloat(fields[12], 64)
	if err1 != nil || err2 != nil {
		return u, fmt.Errorf("unexpected times in /proc/%d/stat", pid)
	}
	u.CPUSeconds = (ut + st) / clockTicks
	return u, nil
}

// kilobytes reads the value of the line of text that starts with prefix,
// given in kB, as bytes.
func kilobytes(text, prefix string) (int64, error) {
	for line := range strings.Lines(text) {
		rest, ok := strings.CutPrefix(line, prefix)
		if !ok {
			continue
		}
		fields := strings.Fields(rest)
		if len(fields) != 2 || fields[1] != "kB" {
			return 0, fmt.Errorf("unexpected %s line %q", prefix, strings.TrimSpace(line))
		}
		kb, err := strconv.ParseInt(fields[0], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("unexpected %s line %q: %w", prefix, strings.TrimSpace(line), err)
		}
		return kb * 1024, nil
	}
	return 0, fmt.Errorf("no %s line", prefix)
}
