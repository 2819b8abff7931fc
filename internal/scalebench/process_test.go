package scalebench

import (
	"os"
	"testing"
)

func TestReadUsageOfThisProcess(t *testing.T) {
	buf := make([]byte, 64<<20)
	for i := range buf {
		buf[i] = byte(i)
	}
	u, err := readUsage(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if u.RSSBytes < 64<<20 {
		t.Errorf("RSS %d bytes, want at least the 64 MiB this test touched", u.RSSBytes)
	}
	if u.AnonBytes < 64<<20 || u.AnonBytes > u.RSSBytes {
		t.Errorf("anonymous %d bytes of RSS %d, want at least the 64 MiB this test touched and no more than the RSS", u.AnonBytes, u.RSSBytes)
	}
	if u.FileBytes <= 0 || u.AnonBytes+u.FileBytes > u.RSSBytes {
		t.Errorf("file-backed %d bytes, anonymous %d, RSS %d: want some of the test binary's pages, and the two within the RSS", u.FileBytes, u.AnonBytes, u.RSSBytes)
	}
	if u.PSSBytes < 64<<20 || u.PSSBytes > u.RSSBytes {
		t.Errorf("proportional set %d bytes, RSS %d: want at least the 64 MiB this test touched and no more than the RSS", u.PSSBytes, u.RSSBytes)
	}
	if u.CPUSeconds <= 0 {
		t.Errorf("CPU %v s, want some", u.CPUSeconds)
	}
	_ = buf[len(buf)-1]
	if _, err := readUsage(-1); err == nil {
		t.Error("reading a process that does not exist succeeds")
	}
}

func TestKilobytes(t *testing.T) {
	text := "Name:\ttend\nVmRSS:\t  2048 kB\nRssAnon:\t12 MB\n"
	if got, err := kilobytes(text, "VmRSS:"); err != nil || got != 2048*1024 {
		t.Errorf("VmRSS: %d, %v", got, err)
	}
	for _, prefix := range []string{"RssAnon:", "Pss:"} {
		if got, err := kilobytes(text, prefix); err == nil {
			t.Errorf("%s: %d, want an error", prefix, got)
		}
	}
}
