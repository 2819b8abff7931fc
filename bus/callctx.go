package bus

import (
	"context"
	"sync"
	"time"
)

// callContext is the context of one handler call: its parent's values and
// cancellation, and a deadline, as context.WithDeadline gives, but with no
// timer until the handler asks for Done. Most handlers never do (the
// agent's folds a message into its model), and a timer per message was,
// after decoding, the largest allocation on the consumer's path. end
// cancels it when the call returns, as WithDeadline's cancel would.
type callContext struct {
	parent   context.Context
	deadline time.Time

	mu   sync.Mutex
	done chan struct{} // made by Done; closed when err is set
	err  error
	stop []func() bool // the deadline's timer and the parent's AfterFunc
}

func newCallContext(parent context.Context, timeout time.Duration) *callContext {
	d := time.Now().Add(timeout)
	if pd, ok := parent.Deadline(); ok && pd.Before(d) {
		d = pd
	}
	return &callContext{parent: parent, deadline: d}
}

func (c *callContext) Deadline() (time.Time, bool) { return c.deadline, true }

func (c *callContext) Value(key any) any { return c.parent.Value(key) }

func (c *callContext) Done() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.done != nil {
		return c.done
	}
	c.done = make(chan struct{})
	if c.err == nil {
		c.err = c.ended()
	}
	if c.err != nil {
		close(c.done)
		return c.done
	}
	t := time.AfterFunc(time.Until(c.deadline), func() { c.cancel(context.DeadlineExceeded) })
	c.stop = append(c.stop, t.Stop)
	if c.parent.Done() != nil {
		c.stop = append(c.stop, context.AfterFunc(c.parent, func() { c.cancel(c.parent.Err()) }))
	}
	return c.done
}

func (c *callContext) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err == nil {
		if err := c.ended(); err != nil {
			c.setErr(err)
		}
	}
	return c.err
}

// ended is why the call's time is over, or nil while it is not.
func (c *callContext) ended() error {
	if err := c.parent.Err(); err != nil {
		return err
	}
	if !time.Now().Before(c.deadline) {
		return context.DeadlineExceeded
	}
	return nil
}

func (c *callContext) cancel(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err == nil {
		c.setErr(err)
	}
}

// setErr ends the context with err; c.mu is held and c.err is nil.
func (c *callContext) setErr(err error) {
	c.err = err
	if c.done != nil {
		close(c.done)
	}
	for _, stop := range c.stop {
		stop()
	}
	c.stop = nil
}

// end cancels the context when the call returns.
func (c *callContext) end() { c.cancel(context.Canceled) }
