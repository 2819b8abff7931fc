package bus

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestCallContextDeadline(t *testing.T) {
	c := newCallContext(context.Background(), 50*time.Millisecond)
	if d, ok := c.Deadline(); !ok || time.Until(d) > 50*time.Millisecond {
		t.Fatalf("Deadline() = %v, %v", d, ok)
	}
	if err := c.Err(); err != nil {
		t.Fatalf("Err() before the deadline = %v", err)
	}
	select {
	case <-c.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("Done not closed after the deadline")
	}
	if err := c.Err(); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Err() after the deadline = %v", err)
	}
	c.end()
	if err := c.Err(); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Err() changed after end: %v", err)
	}
}

func TestCallContextDeadlinePassedWithoutDone(t *testing.T) {
	c := newCallContext(context.Background(), time.Millisecond)
	time.Sleep(5 * time.Millisecond)
	// Err sees the deadline without a timer, and Done then is closed.
	if err := c.Err(); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Err() = %v", err)
	}
	select {
	case <-c.Done():
	default:
		t.Fatal("Done open while Err is set")
	}
}

func TestCallContextParent(t *testing.T) {
	type key struct{}
	parent, cancel := context.WithCancel(context.WithValue(context.Background(), key{}, "v"))
	c := newCallContext(parent, time.Hour)
	if c.Value(key{}) != "v" {
		t.Fatal("parent's value lost")
	}
	done := c.Done()
	cancel()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Done not closed when the parent was cancelled")
	}
	if err := c.Err(); !errors.Is(err, context.Canceled) {
		t.Fatalf("Err() = %v", err)
	}

	// A parent already cancelled, and a parent's earlier deadline.
	c = newCallContext(parent, time.Hour)
	if err := c.Err(); !errors.Is(err, context.Canceled) {
		t.Fatalf("Err() under a cancelled parent = %v", err)
	}
	short, cancelShort := context.WithTimeout(context.Background(), time.Minute)
	defer cancelShort()
	pd, _ := short.Deadline()
	if d, _ := newCallContext(short, time.Hour).Deadline(); !d.Equal(pd) {
		t.Fatalf("Deadline() = %v, want the parent's %v", d, pd)
	}
}

func TestCallContextEnd(t *testing.T) {
	c := newCallContext(context.Background(), time.Hour)
	done := c.Done()
	// A context derived in the handler ends with the call.
	child, cancel := context.WithCancel(c)
	defer cancel()
	c.end()
	for _, ch := range []<-chan struct{}{done, child.Done()} {
		select {
		case <-ch:
		case <-time.After(10 * time.Second):
			t.Fatal("not done after end")
		}
	}
	if err := c.Err(); !errors.Is(err, context.Canceled) {
		t.Fatalf("Err() after end = %v", err)
	}
	// Ended before anyone asked for Done.
	c = newCallContext(context.Background(), time.Hour)
	c.end()
	select {
	case <-c.Done():
	default:
		t.Fatal("Done open after end")
	}
}

func BenchmarkCallContext(b *testing.B) {
	parent := context.WithoutCancel(context.Background())
	b.Run("callContext", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			c := newCallContext(parent, time.Minute)
			_ = c.Err()
			c.end()
		}
	})
	b.Run("WithTimeout", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			c, cancel := context.WithTimeout(parent, time.Minute)
			_ = c.Err()
			cancel()
		}
	})
}
