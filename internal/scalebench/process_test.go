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
	if u.CPUSeconds <= 0 {
		t.Errorf("CPU %v s, want some", u.CPUSeconds)
	}
	_ = buf[len(buf)-1]
	if _, err := readUsage(-1); err == nil {
		t.Error("reading a process that does not exist succeeds")
	}
}
